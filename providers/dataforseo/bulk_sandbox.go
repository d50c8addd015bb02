package dataforseo

import (
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/linkharvest/linkharvest/internal/jsonstr"
	"github.com/linkharvest/linkharvest/providers/sandbox"
)

// bulkEP is backlinks/bulk_backlinks/live as the sandbox serves it: the
// same envelope, auth, limits and injected faults as the live endpoints,
// one task of up to MaxBulkTargets targets.
var bulkEP = &endpoint{name: BulkBacklinksEndpoint, function: "bulk_backlinks", path: bulkBacklinksPath,
	params: map[string]func(json.RawMessage) error{"tag": checkTag}}

// newLostEP is backlinks/bulk_new_lost_backlinks/live, served alike;
// date_from's range depends on the day, so runNewLost checks it.
var newLostEP = &endpoint{name: BulkNewLostEndpoint, function: "bulk_new_lost_backlinks", path: bulkNewLostPath,
	params: map[string]func(json.RawMessage) error{"tag": checkTag, "date_from": checkDay}}

// mountBulk serves the bulk counts. Each target's count is the rows
// backlinks/live pages it through (a rows-N domain counts N), so
// an estimate made from the counts agrees with what paging it costs; the
// new and lost counts are the rows backlinks/live lists for them. A call
// is charged its price for its targets (one row each).
func mountBulk(s *sandbox.Server, m *sandbox.Meter) {
	s.Handle("POST "+bulkEP.path, &sbHandler{m: m, e: bulkEP, run: runBulk})
	s.Handle("POST "+newLostEP.path, &sbHandler{m: m, e: newLostEP, run: runNewLost})
}

// bulkTask reads a bulk task: members ep takes and 1 to MaxBulkTargets
// targets, none empty. A refused task returns its result, ok false.
func bulkTask(ep *endpoint, raw json.RawMessage) (t map[string]json.RawMessage, targets []string, res sbResult, ok bool) {
	if first(raw) != '{' || json.Unmarshal(raw, &t) != nil {
		return nil, nil, taskError(40503, "POST Data Is Invalid."), false
	}
	var unknown []string
	for k := range t {
		if _, ok := ep.params[k]; !ok && k != "targets" {
			unknown = append(unknown, k)
		}
	}
	if len(unknown) > 0 {
		sort.Strings(unknown)
		return nil, nil, taskError(40506, "Unknown Fields in POST Data: "+strings.Join(unknown, ", ")+"."), false
	}
	if first(t["targets"]) != '[' || json.Unmarshal(t["targets"], &targets) != nil || len(targets) == 0 {
		return nil, nil, invalidField("targets", ""), false
	}
	if len(targets) > MaxBulkTargets {
		return nil, nil, invalidField("targets", fmt.Sprintf("You can specify no more than %d targets.", MaxBulkTargets)), false
	}
	for _, tg := range targets {
		if strings.TrimSpace(tg) == "" {
			return nil, nil, invalidField("targets", "A target is empty."), false
		}
	}
	keys := make([]string, 0, len(t))
	for k := range t {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		if check := ep.params[k]; check != nil {
			if err := check(t[k]); err != nil {
				return nil, nil, invalidField(k, err.Error()), false
			}
		}
	}
	return t, targets, sbResult{}, true
}

func runBulk(o sandbox.Options, raw json.RawMessage) sbResult {
	_, targets, res, ok := bulkTask(bulkEP, raw)
	if !ok {
		return res
	}
	return bulkItems(targets, bulkPrice.For(len(targets)), "backlinks_bulk_backlinks", func(b []byte, tg string) []byte {
		b = append(b, `,"backlinks":`...)
		return strconv.AppendInt(b, int64(sandbox.Total(o.Seed, Name, "backlinks", tg)), 10)
	})
}

// bulkItems writes one item per target: its type and target, then what
// item adds.
func bulkItems(targets []string, cost float64, typ string, item func(b []byte, target string) []byte) sbResult {
	return sbResult{code: statusOK, cost: cost, write: func(b []byte) []byte {
		b = append(b, `{"items_count":`...)
		b = strconv.AppendInt(b, int64(len(targets)), 10)
		b = append(b, `,"items":[`...)
		for i, tg := range targets {
			if i > 0 {
				b = append(b, ',')
			}
			b = append(b, `{"type":"`...)
			b = append(b, typ...)
			b = append(b, `","target":`...)
			b = jsonstr.Append(b, tg)
			b = item(b, tg)
			b = append(b, '}')
		}
		return append(b, "]}"...)
	}}
}

// Days date_from may go back: the vendor keeps a year of history.
const (
	newLostMaxDays     = 365
	newLostDefaultDays = 30
)

// runNewLost answers bulk_new_lost_backlinks: for each target the live
// rows first seen on or after date_from (default 30 days before the
// world's day; at most 365 days back, not after the day) and the lost rows
// last seen on or after it.
func runNewLost(o sandbox.Options, raw json.RawMessage) sbResult {
	t, targets, res, ok := bulkTask(newLostEP, raw)
	if !ok {
		return res
	}
	today := o.World().Today
	from := today.AddDate(0, 0, -newLostDefaultDays)
	if v, ok := t["date_from"]; ok {
		var s string
		json.Unmarshal(v, &s) // checkDay accepted it
		from, _ = sandbox.ParseDay(s)
		if earliest := today.AddDate(0, 0, -newLostMaxDays); from.Before(earliest) || from.After(today) {
			return invalidField("date_from", fmt.Sprintf("date_from must be from %s to %s (at most %d days back).",
				earliest.Format(time.DateOnly), today.Format(time.DateOnly), newLostMaxDays))
		}
	}
	return bulkItems(targets, newLostPrice.For(len(targets)), "backlinks_bulk_new_lost_backlinks", func(b []byte, tg string) []byte {
		added, lost := newLostCounts(o, tg, from)
		b = append(b, `,"new_backlinks":`...)
		b = strconv.AppendInt(b, int64(added), 10)
		b = append(b, `,"lost_backlinks":`...)
		return strconv.AppendInt(b, int64(lost), 10)
	})
}

// checkDay accepts a day written "YYYY-MM-DD".
func checkDay(v json.RawMessage) error {
	var s string
	if first(v) != '"' || json.Unmarshal(v, &s) != nil {
		return errors.New(`must be a day written "YYYY-MM-DD"`)
	}
	if _, err := sandbox.ParseDay(s); err != nil {
		return errors.New(`must be a day written "YYYY-MM-DD"`)
	}
	return nil
}
