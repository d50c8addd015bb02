package dataforseo

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"time"

	"github.com/linkharvest/linkharvest/providers"
)

// A refresh asks DataForSEO only for what changed since a day
// (docs/vendors.md, "DataForSEO: change over time"):
// backlinks/bulk_new_lost_backlinks/live counts each of up to 1000
// targets' new and lost backlinks since date_from in one call, and
// backlinks/live lists them: the live rows first seen since the day, and
// the lost ones (backlinks_status_type "lost") last seen since it, that is
// still live at the start of that day.
// newLostMaxAge is how far back date_from may go.
const newLostMaxAge = 365 * 24 * time.Hour

var delta = &providers.Delta{
	Endpoints: []string{"backlinks"}, CountEndpoint: BulkNewLostEndpoint, CountBatch: MaxBulkTargets, MaxAge: newLostMaxAge,
	Check: checkDelta, Params: deltaParams,
}

// checkDelta refuses options under which a list of changed rows is not
// the change of the job's rows: grouped rows (mode, custom_mode) have no
// identity of their own, and a job of lost rows has no "new" ones.
func checkDelta(endpoint string, params map[string]json.RawMessage) error {
	if endpoint != "backlinks" {
		return fmt.Errorf("%s: not fetched as a delta", endpoint)
	}
	if _, ok := params["custom_mode"]; ok {
		return errors.New("custom_mode groups rows; a refresh lists changed rows one by one: refresh a job without it")
	}
	if v, ok := params["mode"]; ok && string(v) != `"as_is"` {
		return errors.New("mode other than as_is groups rows; a refresh lists changed rows one by one: refresh a job without it")
	}
	if v, ok := params["backlinks_status_type"]; ok && string(v) != `"live"` {
		return errors.New("backlinks_status_type: a refresh tracks live backlinks; refresh a job of live backlinks")
	}
	return nil
}

// deltaParams adds to the job's options the status and the seen-date
// condition of one change, joined to the job's own filters with "and".
func deltaParams(endpoint string, params map[string]json.RawMessage, change string, since time.Time) (map[string]json.RawMessage, error) {
	if err := checkDelta(endpoint, params); err != nil {
		return nil, err
	}
	day := since.UTC().Format("2006-01-02") + " 00:00:00 +00:00"
	var status, cond string
	switch change {
	case providers.ChangeNew:
		status, cond = `"live"`, `["first_seen",">=","`+day+`"]`
	case providers.ChangeLost:
		status, cond = `"lost"`, `["last_seen",">=","`+day+`"]`
	default:
		return nil, fmt.Errorf("change %q: want new or lost", change)
	}
	out := maps.Clone(params)
	if out == nil {
		out = map[string]json.RawMessage{}
	}
	out["backlinks_status_type"] = json.RawMessage(status)
	filters := json.RawMessage(cond)
	if f, ok := params["filters"]; ok {
		filters = json.RawMessage(`[` + string(f) + `,"and",` + cond + `]`)
	}
	if err := checkFilters(filters); err != nil {
		return nil, fmt.Errorf("filters with the refresh's condition: %w", err)
	}
	out["filters"] = filters
	return out, nil
}

type newLostItem struct {
	Target lenientString `json:"target"`
	New    lenientInt    `json:"new_backlinks"`
	Lost   lenientInt    `json:"lost_backlinks"`
}

type newLostResult struct {
	Items []newLostItem `json:"items"`
}

// CountChanges asks for the new and lost backlink counts of each target
// (at most MaxBulkTargets) since the start of day since, in one call. A
// target the answer does not list is absent from the map: the caller
// fetches it in full.
func (c *Client) CountChanges(ctx context.Context, targets []string, since time.Time) (map[string]providers.ChangeCount, float64, error) {
	if len(targets) == 0 {
		return map[string]providers.ChangeCount{}, 0, nil
	}
	extra := []byte(`,"date_from":"` + since.UTC().Format("2006-01-02") + `"`)
	b, sentAt, err := c.bulk(ctx, BulkNewLostEndpoint, bulkNewLostPath, targets, extra)
	if err != nil {
		return nil, 0, err
	}
	if first(b) != '{' {
		return nil, 0, c.redact(liftsAt(providers.BadBody(Name, errors.New("the body is not a JSON object")), sentAt))
	}
	var env envelope[newLostResult]
	uerr := json.Unmarshal(b, &env)
	t, perr := checkStatus(&env, uerr)
	if perr != nil {
		return nil, 0, c.redact(liftsAt(perr, sentAt))
	}
	counts := map[string]providers.ChangeCount{}
	for _, r := range t.Result {
		for _, it := range r.Items {
			if it.Target == "" || !it.New.ok || !it.Lost.ok {
				continue // unknown: fetched in full
			}
			counts[string(it.Target)] = providers.ChangeCount{New: it.New.n, Lost: it.Lost.n}
		}
	}
	return counts, t.Cost.f, nil
}
