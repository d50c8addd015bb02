package dataforseo

import (
	"encoding/json"
	"fmt"
	"sort"
	"strconv"
	"strings"

	"github.com/linkharvest/linkharvest/internal/jsonstr"
	"github.com/linkharvest/linkharvest/providers/sandbox"
)

// bulkEP is backlinks/bulk_backlinks/live as the sandbox serves it: the
// same envelope, auth, limits and injected faults as the live endpoints,
// one task of up to MaxBulkTargets targets.
var bulkEP = &endpoint{name: BulkBacklinksEndpoint, function: "bulk_backlinks", path: bulkBacklinksPath,
	params: map[string]func(json.RawMessage) error{"tag": checkTag}}

// mountBulk serves the bulk counts. Each target's count is the rows
// backlinks/live pages it through (a rows-N domain counts N), so
// an estimate made from the counts agrees with what paging it costs. The
// call is charged the bulk price for its targets (one row each).
func mountBulk(s *sandbox.Server, m *sandbox.Meter) {
	s.Handle("POST "+bulkEP.path, &sbHandler{m: m, e: bulkEP, run: runBulk})
}

func runBulk(seed int64, raw json.RawMessage) sbResult {
	var t map[string]json.RawMessage
	if first(raw) != '{' || json.Unmarshal(raw, &t) != nil {
		return taskError(40503, "POST Data Is Invalid.")
	}
	var unknown []string
	for k := range t {
		if _, ok := bulkEP.params[k]; !ok && k != "targets" {
			unknown = append(unknown, k)
		}
	}
	if len(unknown) > 0 {
		sort.Strings(unknown)
		return taskError(40506, "Unknown Fields in POST Data: "+strings.Join(unknown, ", ")+".")
	}
	var targets []string
	if first(t["targets"]) != '[' || json.Unmarshal(t["targets"], &targets) != nil || len(targets) == 0 {
		return invalidField("targets", "")
	}
	if len(targets) > MaxBulkTargets {
		return invalidField("targets", fmt.Sprintf("You can specify no more than %d targets.", MaxBulkTargets))
	}
	for _, tg := range targets {
		if strings.TrimSpace(tg) == "" {
			return invalidField("targets", "A target is empty.")
		}
	}
	if v, ok := t["tag"]; ok {
		if err := checkTag(v); err != nil {
			return invalidField("tag", err.Error())
		}
	}
	return sbResult{code: statusOK, cost: bulkPrice.For(len(targets)), write: func(b []byte) []byte {
		b = append(b, `{"items_count":`...)
		b = strconv.AppendInt(b, int64(len(targets)), 10)
		b = append(b, `,"items":[`...)
		for i, tg := range targets {
			if i > 0 {
				b = append(b, ',')
			}
			b = append(b, `{"type":"backlinks_bulk_backlinks","target":`...)
			b = jsonstr.Append(b, tg)
			b = append(b, `,"backlinks":`...)
			b = strconv.AppendInt(b, int64(sandbox.Total(seed, Name, "backlinks", tg)), 10)
			b = append(b, '}')
		}
		return append(b, "]}"...)
	}}
}
