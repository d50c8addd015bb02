package tests

import (
	"bytes"
	"context"
	"encoding/json"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/linkharvest/linkharvest/providers"
	"github.com/linkharvest/linkharvest/providers/registry"
	"github.com/linkharvest/linkharvest/sink"
	"github.com/linkharvest/linkharvest/tasks"
)

// expectedRows pages through the sandbox with the vendor's client as the
// vendor's docs prescribe (DataForSEO: limit 1000, offset up to 20,000,
// then search_after_token; XOVI: skip pages; DomainCrawler: offset/limit
// or the next token) and returns each domain's rows, each as its compact
// raw JSON. It does not use the pipeline's planner: it is the reference.
func expectedRows(t *testing.T, base, provider, endpoint string, params map[string]json.RawMessage, domains []string) map[string][]string {
	t.Helper()
	env := registry.SandboxEnv(base)
	c, err := registry.New(provider, func(k string) string { return env[k] }, nil)
	if err != nil {
		t.Fatal(err)
	}
	pg, err := c.Paging(endpoint)
	if err != nil {
		t.Fatal(err)
	}
	fetch := func(req providers.Request) *providers.Page {
		req.Endpoint, req.Params = endpoint, params
		for attempt := 0; ; attempt++ {
			page, err := c.Fetch(context.Background(), req)
			if err == nil {
				return page
			}
			if attempt > 30 || providers.ClassOf(err) == providers.Fatal {
				t.Fatalf("paging %s %s %s at offset %d: %v", provider, endpoint, req.Domain, req.Offset, err)
			}
			time.Sleep(100 * time.Millisecond) // the sandbox's own limits
		}
	}
	out := map[string][]string{}
	for _, d := range domains {
		rows := []string{}
		add := func(p *providers.Page) {
			for _, it := range p.Items {
				rows = append(rows, compact(t, it.Raw))
			}
		}
		switch pg.Kind {
		case providers.PagingNone:
			add(fetch(providers.Request{Domain: d, Page: 1, Limit: pg.PageSize}))
		case providers.PagingOffset:
			offset, cursor := 0, ""
			for n := 1; ; n++ {
				p := fetch(providers.Request{Domain: d, Page: n, Offset: offset, Limit: pg.PageSize, Cursor: cursor})
				add(p)
				offset += len(p.Items)
				if len(p.Items) == 0 || (p.Total >= 0 && offset >= p.Total) || (p.Total < 0 && len(p.Items) < pg.PageSize) {
					break
				}
				if pg.MaxOffset > 0 && offset > pg.MaxOffset {
					cursor = p.Next
				}
			}
		case providers.PagingCursor:
			cursor := ""
			for n := 1; ; n++ {
				p := fetch(providers.Request{Domain: d, Page: n, Limit: pg.PageSize, Cursor: cursor})
				add(p)
				if p.Next == "" || len(p.Items) == 0 {
					break
				}
				cursor = p.Next
			}
		}
		out[d] = rows
	}
	return out
}

func compact(t *testing.T, raw []byte) string {
	var b bytes.Buffer
	if err := json.Compact(&b, raw); err != nil {
		t.Fatalf("raw is not JSON: %v: %q", err, raw)
	}
	return b.String()
}

var pageKey = regexp.MustCompile(`^provider=([^/]+)/endpoint=([^/]+)/dt=\d{4}-\d{2}-\d{2}/job=([^/]+)/([^/]+)\.(\d{5})\.ndjson\.gz$`)

// verifyOutput proves a job's output holds every expected row exactly once
// (expected: "provider/endpoint" → domain → rows), that the manifest
// agrees with the objects, and that _SUCCESS came last. It returns the
// number of rows.
func verifyOutput(t *testing.T, snk *sink.Sink, job string, expected map[string]map[string][]string, rejected int) int64 {
	t.Helper()
	ctx := context.Background()
	objs, err := snk.List(ctx, "")
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]map[string]map[string]int{} // pe -> domain -> raw -> count
	sizes := map[string]int64{}
	counts := map[string]int{}
	var lastData, success, manifestTime time.Time
	var total int64
	for _, o := range objs {
		switch {
		case o.Key == sink.SuccessKey(job):
			success = o.LastModified
			continue
		case o.Key == sink.ManifestKey(job):
			manifestTime = o.LastModified
			continue
		case !strings.Contains(o.Key, "/job="+job+"/"):
			continue
		}
		m := pageKey.FindStringSubmatch(o.Key)
		if m == nil {
			t.Errorf("object key %s does not follow the layout", o.Key)
			continue
		}
		provider, endpoint, domain := m[1], m[2], m[4]
		page, _ := strconv.Atoi(m[5])
		pe := provider + "/" + endpoint
		if expected[pe] == nil {
			t.Errorf("unexpected object %s", o.Key)
			continue
		}
		body, err := snk.Get(ctx, o.Key)
		if err != nil {
			t.Fatal(err)
		}
		recs, err := sink.DecodePage(body)
		if err != nil {
			t.Fatalf("%s: %v", o.Key, err)
		}
		sizes[o.Key], counts[o.Key] = int64(len(body)), len(recs)
		if o.LastModified.After(lastData) {
			lastData = o.LastModified
		}
		for _, r := range recs {
			if r.JobID != job || r.Provider != provider || r.Endpoint != endpoint || r.Domain != domain || r.Page != page || r.Kind == "" {
				t.Fatalf("%s: record %+v does not match its key", o.Key, r)
			}
			if r.FetchedAt.IsZero() {
				t.Fatalf("%s: record without fetched_at", o.Key)
			}
			if got[pe] == nil {
				got[pe] = map[string]map[string]int{}
			}
			if got[pe][domain] == nil {
				got[pe][domain] = map[string]int{}
			}
			got[pe][domain][compact(t, r.Raw)]++
			total++
		}
	}
	var want int64
	for pe, byDomain := range expected {
		dups, lost := 0, 0
		for d, rows := range byDomain {
			want += int64(len(rows))
			exp := map[string]int{}
			for _, r := range rows {
				exp[r]++
			}
			for r, n := range exp {
				g := got[pe][d][r]
				if g < n {
					lost += n - g
				}
				if g > n {
					dups += g - n
				}
			}
			for r, g := range got[pe][d] {
				if exp[r] == 0 {
					dups += g // a row the sandbox never served for this domain
				}
			}
		}
		if dups != 0 || lost != 0 {
			t.Errorf("%s: %d rows duplicated or foreign, %d lost", pe, dups, lost)
		}
	}
	if total != want {
		t.Errorf("rows: %d written, %d expected", total, want)
	}

	mb, err := snk.Get(ctx, sink.ManifestKey(job))
	if err != nil {
		t.Fatalf("manifest: %v", err)
	}
	var man tasks.Manifest
	if err := json.Unmarshal(mb, &man); err != nil {
		t.Fatal(err)
	}
	if len(man.Objects) != len(counts) {
		t.Errorf("manifest lists %d objects, the sink holds %d", len(man.Objects), len(counts))
	}
	for _, o := range man.Objects {
		if counts[o.Key] != o.Records || sizes[o.Key] != o.Bytes {
			t.Errorf("manifest object %s: %d records %d bytes; actual %d records %d bytes", o.Key, o.Records, o.Bytes, counts[o.Key], sizes[o.Key])
		}
	}
	if man.Totals.Records != total {
		t.Errorf("manifest total records %d, objects hold %d", man.Totals.Records, total)
	}
	outcomes := map[string]tasks.ManifestOutcome{}
	for _, o := range man.Outcomes {
		outcomes[o.Provider+"/"+o.Endpoint+"/"+o.Domain] = o
	}
	for pe, byDomain := range expected {
		for d, rows := range byDomain {
			o, ok := outcomes[pe+"/"+d]
			wantStatus := "ok"
			if len(rows) == 0 {
				wantStatus = "empty"
			}
			if !ok || o.Status != wantStatus || o.Records != len(rows) {
				t.Errorf("manifest outcome of %s %s = %+v, want status %s with %d records", pe, d, o, wantStatus, len(rows))
			}
		}
	}
	if rejected >= 0 && len(man.Rejected) != rejected {
		t.Errorf("manifest lists %d rejected lines, want %d", len(man.Rejected), rejected)
	}
	// _SUCCESS is written after the manifest, which is written after the data.
	if success.IsZero() || manifestTime.IsZero() || success.Before(manifestTime) || manifestTime.Before(lastData) {
		t.Errorf("order: last data %v, manifest %v, _SUCCESS %v", lastData, manifestTime, success)
	}
	return total
}
