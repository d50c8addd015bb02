package dataforseo

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/linkharvest/linkharvest/internal/jsonstr"
	"github.com/linkharvest/linkharvest/providers"
)

// BulkBacklinksEndpoint is the price key of backlinks/bulk_backlinks/live
// (internal/spend), which counts the live backlinks of up to
// MaxBulkTargets targets in one call. It is not a job endpoint: the
// estimate calls it, never a page task.
const (
	BulkBacklinksEndpoint = "bulk_backlinks"
	bulkBacklinksPath     = "/v3/backlinks/bulk_backlinks/live"
	MaxBulkTargets        = 1000
)

// BulkNewLostEndpoint is the price key of
// backlinks/bulk_new_lost_backlinks/live, which counts the new and lost
// backlinks since a day of up to MaxBulkTargets targets in one call (the
// client's CountChanges, for a refresh; the sandbox serves it).
const (
	BulkNewLostEndpoint = "bulk_new_lost_backlinks"
	bulkNewLostPath     = "/v3/backlinks/bulk_new_lost_backlinks/live"
)

// bulkItem is one target's count. backlinks is read leniently: a target
// the vendor knows nothing about may come back with null.
type bulkItem struct {
	Target    lenientString `json:"target"`
	Backlinks lenientInt    `json:"backlinks"`
}

type bulkResult struct {
	Items []bulkItem `json:"items"`
}

// BulkBacklinks asks for the live backlink count of each target (domains
// as the pipeline normalised them) in one call, and returns the counts by
// target and what the call cost (the answer's cost, in USD). A target the
// answer does not list is absent from the map: the caller decides what an
// unknown count means. More than MaxBulkTargets targets is an error: the
// caller splits the list (one call per thousand).
func (c *Client) BulkBacklinks(ctx context.Context, targets []string) (map[string]int, float64, error) {
	if len(targets) == 0 {
		return map[string]int{}, 0, nil
	}
	b, sentAt, err := c.bulk(ctx, BulkBacklinksEndpoint, bulkBacklinksPath, targets, nil)
	if err != nil {
		return nil, 0, err
	}
	counts, cost, perr := decodeBulk(b)
	if perr != nil {
		return nil, 0, c.redact(liftsAt(perr, sentAt))
	}
	return counts, cost, nil
}

// bulk posts one task of targets (and the task's other members, extra:
// `,"name":value` pairs) to a bulk endpoint and returns the answer's body,
// checked for its HTTP status only.
func (c *Client) bulk(ctx context.Context, name, path string, targets []string, extra []byte) ([]byte, time.Time, error) {
	if len(targets) > MaxBulkTargets {
		return nil, time.Time{}, &providers.Error{Provider: Name, Class: providers.Fatal, Code: "request",
			Message: fmt.Sprintf("%s: %d targets, the vendor takes at most %d a call", name, len(targets), MaxBulkTargets)}
	}
	body := append([]byte(nil), `[{"targets":[`...)
	for i, t := range targets {
		if strings.TrimSpace(t) == "" {
			return nil, time.Time{}, &providers.Error{Provider: Name, Class: providers.Fatal, Code: "request", Message: name + ": an empty target"}
		}
		if i > 0 {
			body = append(body, ',')
		}
		body = jsonstr.Append(body, t)
	}
	body = append(body, ']')
	body = append(body, extra...)
	body = append(body, "}]"...)

	return c.post(ctx, path, body)
}

// decodeBulk reads a bulk_backlinks answer: both status levels as for
// the other endpoints, then result[0].items[] of {type, target, backlinks}.
func decodeBulk(body []byte) (map[string]int, float64, *providers.Error) {
	if first(body) != '{' {
		return nil, 0, providers.BadBody(Name, errors.New("the body is not a JSON object"))
	}
	var env envelope[bulkResult]
	uerr := json.Unmarshal(body, &env)
	t, perr := checkStatus(&env, uerr)
	if perr != nil {
		return nil, 0, perr
	}
	counts := map[string]int{}
	for _, r := range t.Result {
		for _, it := range r.Items {
			if it.Target == "" || !it.Backlinks.ok {
				continue
			}
			counts[string(it.Target)] = it.Backlinks.n
		}
	}
	return counts, t.Cost.f, nil
}
