package tasks

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"reflect"
	"sort"
	"testing"
	"time"

	"github.com/linkharvest/linkharvest/internal/testenv"
)

// TestManifestInParts: a job too big to hold is written in parts (one
// pass over its outcomes per part); the manifest is the same, as a set, as
// the one written in one part, which is fully sorted; every object and
// every (provider, endpoint, domain) outcome appears once, with its pages,
// records, failed pages and error, and the totals agree.
func TestManifestInParts(t *testing.T) {
	rds := testenv.Redis(t)
	s := NewStore(rds.Client(t))
	ctx := context.Background()
	spec := Spec{Providers: []string{"dataforseo", "xovi"}, Endpoints: map[string][]string{"dataforseo": {"backlinks"}, "xovi": {"backlinks"}}}
	if _, err := s.create(ctx, "parts", spec, time.Date(2026, 11, 22, 10, 0, 0, 0, time.UTC)); err != nil {
		t.Fatal(err)
	}
	type want struct {
		pages, records int
		status         string
		failed         []int
	}
	wantOut := map[string]*want{}
	var units []string
	var outcomes []Outcome
	for d := 0; d < 40; d++ {
		for _, prov := range []string{"dataforseo", "xovi"} {
			domain := fmt.Sprintf("d%02d.example", d)
			w := &want{status: "empty"}
			wantOut[prov+"|"+domain] = w
			for page := 1; page <= d%4+1; page++ {
				o := Outcome{Status: "ok", Records: (d * page) % 7, Bytes: 100}
				switch {
				case d%9 == 0 && page == 2:
					o = Outcome{Status: "failed", Error: "vendor said no"}
				case o.Records == 0:
					o.Status = "empty"
				default:
					o.Key = fmt.Sprintf("provider=%s/endpoint=backlinks/dt=2026-11-22/job=parts/%s.%05d.ndjson.gz", prov, domain, page)
				}
				units = append(units, fmt.Sprintf("%s|backlinks|%s|%d", prov, domain, page))
				outcomes = append(outcomes, o)
				w.pages++
				w.records += o.Records
				switch {
				case o.Status == "failed":
					w.status = "failed"
					w.failed = append(w.failed, page)
				case w.status != "failed" && o.Records > 0:
					w.status = "ok"
				}
			}
		}
	}
	if _, err := s.register(ctx, "parts", 0, 0, units); err != nil {
		t.Fatal(err)
	}
	for i, u := range units {
		if _, err := s.end(ctx, "parts", u, outcomes[i], true, nil); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.rdb.RPush(ctx, keysFor("parts").rejected, `{"line":3,"input":"x y","reason":"invalid character"}`).Err(); err != nil {
		t.Fatal(err)
	}
	s.rdb.HSet(ctx, keysFor("parts").meta, "rejected", 1)

	write := func(partUnits int) (*Manifest, []byte) {
		t.Helper()
		old := manifestPartUnits
		manifestPartUnits = partUnits
		defer func() { manifestPartUnits = old }()
		var buf bytes.Buffer
		totals, err := s.writeManifest(ctx, &buf, "parts", "2026-11-22T10:05:00Z")
		if err != nil {
			t.Fatal(err)
		}
		var m Manifest
		if err := json.Unmarshal(buf.Bytes(), &m); err != nil {
			t.Fatalf("manifest in parts of %d is not JSON: %v\n%s", partUnits, err, buf.String())
		}
		if m.Totals != totals {
			t.Errorf("returned totals %+v, written %+v", totals, m.Totals)
		}
		return &m, buf.Bytes()
	}
	one, _ := write(1 << 20)
	many, _ := write(7) // about 30 parts

	// The one-part manifest is right and sorted.
	if !sort.SliceIsSorted(one.Objects, func(a, b int) bool { return one.Objects[a].Key < one.Objects[b].Key }) {
		t.Error("objects of a one-part manifest are not sorted by key")
	}
	if len(one.Outcomes) != len(wantOut) {
		t.Fatalf("%d outcomes, want %d", len(one.Outcomes), len(wantOut))
	}
	objects, records, failed := 0, 0, 0
	for _, w := range wantOut {
		if w.status == "failed" {
			failed++
		}
	}
	for _, o := range outcomes {
		if o.Key != "" {
			objects++
		}
		records += o.Records
	}
	for _, o := range one.Outcomes {
		w := wantOut[o.Provider+"|"+o.Domain]
		if w == nil || o.Pages != w.pages || o.Records != w.records || o.Status != w.status || !reflect.DeepEqual(o.FailedPages, w.failed) ||
			(o.Status == "failed") != (o.Error == "vendor said no") {
			t.Errorf("outcome %+v, want %+v", o, w)
		}
	}
	wantTotals := ManifestTotals{Domains: 40, Rejected: 1, Tasks: len(units), Objects: objects, Records: int64(records), Bytes: int64(objects * 100), Failed: failed}
	if one.Totals != wantTotals || failed == 0 {
		t.Errorf("totals %+v, want %+v", one.Totals, wantTotals)
	}
	if len(one.Rejected) != 1 || one.Rejected[0].Input != "x y" || one.JobID != "parts" || one.Date != "2026-11-22" ||
		one.FinishedAt != "2026-11-22T10:05:00Z" || !reflect.DeepEqual(one.Spec.Providers, spec.Providers) {
		t.Errorf("manifest header or rejects: %+v", one)
	}

	// In parts: the same content.
	norm := func(m *Manifest) *Manifest {
		c := *m
		c.Objects = append([]ManifestObject{}, m.Objects...)
		c.Outcomes = append([]ManifestOutcome{}, m.Outcomes...)
		sort.Slice(c.Objects, func(a, b int) bool { return c.Objects[a].Key < c.Objects[b].Key })
		sort.Slice(c.Outcomes, func(a, b int) bool {
			return c.Outcomes[a].Provider+c.Outcomes[a].Domain < c.Outcomes[b].Provider+c.Outcomes[b].Domain
		})
		return &c
	}
	if a, b := norm(one), norm(many); !reflect.DeepEqual(a, b) {
		t.Errorf("the manifest in parts differs from the one in one part:\n%+v\n%+v", b.Totals, a.Totals)
	}
}

// TestManifestEmptyJob: a job with nothing ended still has a valid manifest.
func TestManifestEmptyJob(t *testing.T) {
	rds := testenv.Redis(t)
	s := NewStore(rds.Client(t))
	ctx := context.Background()
	if _, err := s.create(ctx, "empty", Spec{Providers: []string{"xovi"}}, time.Now()); err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	if _, err := s.writeManifest(ctx, &buf, "empty", "2026-11-22T10:05:00Z"); err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(buf.Bytes(), &m); err != nil {
		t.Fatalf("%v\n%s", err, buf.String())
	}
	for _, k := range []string{"objects", "outcomes", "rejected"} {
		if v, ok := m[k].([]any); !ok || len(v) != 0 {
			t.Errorf("%s = %#v, want []", k, m[k])
		}
	}
}
