package warehouse

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	_ "github.com/duckdb/duckdb-go/v2"

	"github.com/linkharvest/linkharvest/sink"
	"github.com/linkharvest/linkharvest/tasks"
)

// openDB opens an in-memory DuckDB that may not fetch extensions: what the
// documented SQL needs is built in.
func openDB(t *testing.T) *sql.DB {
	t.Helper()
	db, err := sql.Open("duckdb", "?autoinstall_known_extensions=false&autoload_known_extensions=false")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

// fixture writes jobs as the sink lays them out: each page an object at
// sink.PageKey, each manifest at sink.ManifestKey, _SUCCESS last.
type fixture struct {
	t    *testing.T
	root string
}

// job is one job of a fixture: its base job and, per domain, its outcome
// and its pages' records.
type job struct {
	id, base, dt string
	domains      []domain
	unfinished   bool // no _SUCCESS
}

type domain struct {
	provider, endpoint, name string
	status, refresh          string
	pages                    map[int][]sink.Record
}

func (f *fixture) write(j job) {
	f.t.Helper()
	m := tasks.Manifest{JobID: j.id, Date: j.dt, BaseJob: j.base, Objects: []tasks.ManifestObject{}}
	if j.base != "" {
		m.Since = "2025-06-01"
	}
	for _, d := range j.domains {
		o := tasks.ManifestOutcome{Provider: d.provider, Endpoint: d.endpoint, Domain: d.name, Status: d.status, Refresh: d.refresh}
		for page, recs := range d.pages {
			body, err := sink.EncodePage(recs)
			if err != nil {
				f.t.Fatal(err)
			}
			key := sink.PageKey(d.provider, d.endpoint, j.dt, j.id, d.name, page)
			f.put(key, body)
			m.Objects = append(m.Objects, tasks.ManifestObject{Key: key, Records: len(recs), Bytes: int64(len(body))})
			o.Pages++
			o.Records += len(recs)
		}
		m.Outcomes = append(m.Outcomes, o)
	}
	body, err := json.MarshalIndent(m, "", " ") // over many lines, as the workers write it
	if err != nil {
		f.t.Fatal(err)
	}
	f.put(sink.ManifestKey(j.id), body)
	if !j.unfinished {
		f.put(sink.SuccessKey(j.id), nil)
	}
}

func (f *fixture) put(key string, body []byte) {
	f.t.Helper()
	p := filepath.Join(f.root, filepath.FromSlash(key))
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		f.t.Fatal(err)
	}
	if err := os.WriteFile(p, body, 0o644); err != nil {
		f.t.Fatal(err)
	}
}

const dfs, bl = "dataforseo", "backlinks"

// link is a backlink record of job j, page p, from source s (to the
// domain's page after a "/" in s, else its home page), with change c; its
// anchor and raw name the job, so that the test sees which job's row was
// kept.
func link(j string, p int, d, s, c string) sink.Record {
	s, path, _ := strings.Cut(s, "/")
	src, tgt, anchor := "https://"+s+"/", "https://"+d+"/"+path, s+" in "+j
	nofollow := strings.HasPrefix(s, "nf")
	return sink.Record{
		JobID: j, Provider: dfs, Endpoint: bl, Domain: d, Page: p,
		FetchedAt: stamp(j, p), Kind: sink.KindBacklink,
		SourceURL: &src, TargetURL: &tgt, Anchor: &anchor, Nofollow: &nofollow,
		Change: c, Raw: json.RawMessage(fmt.Sprintf(`{"job":%q,"page":%d}`, j, p)),
	}
}

// stamp is a job's page's fetch time, with nanoseconds (the sink keeps them).
func stamp(j string, p int) time.Time {
	day := map[string]int{"base": 1, "r1": 10, "r2": 20}[j]
	return time.Date(2025, 6, day, 12, 0, p, 123456789, time.UTC)
}

func pages(recs ...sink.Record) map[int][]sink.Record {
	m := map[int][]sink.Record{}
	for _, r := range recs {
		m[r.Page] = append(m[r.Page], r)
	}
	return m
}

func ok(name string, recs ...sink.Record) domain {
	return domain{dfs, bl, name, "ok", "", pages(recs...)}
}

func refreshed(name, status, refresh string, recs ...sink.Record) domain {
	return domain{dfs, bl, name, status, refresh, pages(recs...)}
}

// summary is a row without a key, of an endpoint that has no change
// signal.
func summary(j, d string) sink.Record {
	return sink.Record{JobID: j, Provider: "domdetailer", Endpoint: "summary", Domain: d, Page: 1,
		FetchedAt: stamp(j, 1), Kind: "summary", Raw: json.RawMessage(fmt.Sprintf(`{"job":%q}`, j))}
}

// plain is a delta's record as a current row.
func plain(r sink.Record) sink.Record { r.Change = ""; return r }

// chainFixture is a base job and two refreshes, base → r1 → r2, with a
// domain for each way a refresh can leave a domain.
func chainFixture(t *testing.T) (root string) {
	f := &fixture{t: t, root: t.TempDir()}
	// an endpoint without a change signal: every refresh fetches it whole
	sum := func(j, d string) domain {
		return domain{"domdetailer", "summary", d, "ok", "full", pages(summary(j, d))}
	}
	baseSum := sum("base", "s.com")
	baseSum.refresh = ""

	f.write(job{id: "base", dt: "2025-06-01", domains: []domain{
		ok("unchanged.com", link("base", 1, "unchanged.com", "a", ""), link("base", 1, "unchanged.com", "b", ""),
			link("base", 2, "unchanged.com", "c", "")),
		ok("delta.com", link("base", 1, "delta.com", "a", ""), link("base", 1, "delta.com", "a/page", ""),
			link("base", 1, "delta.com", "b", ""), link("base", 2, "delta.com", "c", "")),
		// failed in the base job: the first refresh fetches it whole
		refreshed("full.com", "failed", "", link("base", 1, "full.com", "a", ""), link("base", 1, "full.com", "b", "")),
		ok("failed.com", link("base", 1, "failed.com", "a", "")),
		ok("again.com", link("base", 1, "again.com", "a", "")),
		ok("gone.com", link("base", 1, "gone.com", "a", "")),
		// failed in the base job, and in each refresh since, or absent from it: its partial rows stay
		refreshed("partial.com", "failed", "", link("base", 1, "partial.com", "a", "")),
		ok("refull.com", link("base", 1, "refull.com", "a", ""), link("base", 1, "refull.com", "b", "")),
		baseSum,
	}})
	f.write(job{id: "r1", base: "base", dt: "2025-06-10", domains: []domain{
		refreshed("unchanged.com", "unchanged", "unchanged"),
		// lost b (and x, which it never had); new d, and a again: an upsert, not a second row
		refreshed("delta.com", "ok", "delta",
			link("r1", 1, "delta.com", "d", "new"), link("r1", 1, "delta.com", "a", "new"),
			link("r1", 2, "delta.com", "b", "lost"), link("r1", 2, "delta.com", "x", "lost")),
		refreshed("full.com", "ok", "full", link("r1", 1, "full.com", "a", ""), link("r1", 1, "full.com", "c", "")),
		// not in the base job: fetched whole
		refreshed("new.com", "ok", "full", link("r1", 1, "new.com", "a", "")),
		// its lost page was written, its new pages failed: nothing of it counts
		refreshed("failed.com", "failed", "delta", link("r1", 2, "failed.com", "a", "lost")),
		// lost and found again within one refresh, and new twice (two pages): one row, live
		refreshed("again.com", "ok", "delta", link("r1", 1, "again.com", "a", "new"),
			link("r1", 2, "again.com", "a", "lost"), link("r1", 3, "again.com", "a", "new")),
		// fetched whole and found empty: no rows left
		refreshed("gone.com", "empty", "full"),
		refreshed("partial.com", "failed", "full", link("r1", 1, "partial.com", "z", "")),
		refreshed("refull.com", "ok", "delta", link("r1", 1, "refull.com", "c", "new"), link("r1", 2, "refull.com", "a", "lost")),
		sum("r1", "s.com"),
	}})
	f.write(job{id: "r2", base: "r1", dt: "2025-06-20", domains: []domain{
		refreshed("unchanged.com", "unchanged", "unchanged"),
		// lost d (r1's), new e, a to another page, and b back
		refreshed("delta.com", "ok", "delta", link("r2", 1, "delta.com", "e", "new"), link("r2", 1, "delta.com", "a/other", "new"),
			link("r2", 1, "delta.com", "b", "new"), link("r2", 2, "delta.com", "d", "lost")),
		// a delta on r1's full fetch
		refreshed("full.com", "ok", "delta", link("r2", 1, "full.com", "nfd", "new"), link("r2", 2, "full.com", "a", "lost")),
		refreshed("new.com", "unchanged", "unchanged"),
		// r1 did not hold it whole: fetched whole again, then failed part way: the base job's rows stay
		refreshed("failed.com", "failed", "full", link("r2", 1, "failed.com", "z", "")),
		refreshed("again.com", "unchanged", "unchanged"),
		refreshed("gone.com", "unchanged", "unchanged"),
		// fetched whole after a delta: the delta is past
		refreshed("refull.com", "ok", "full", link("r2", 1, "refull.com", "a", ""), link("r2", 1, "refull.com", "d", "")),
		sum("r2", "s.com"),
	}})

	return f.root
}

func TestCurrentRows(t *testing.T) {
	root := chainFixture(t)
	db := openDB(t)
	for _, tc := range []struct {
		chain []string
		want  map[Key][]sink.Record
	}{
		{[]string{"base", "r1", "r2"}, map[Key][]sink.Record{
			{dfs, bl, "unchanged.com"}: {link("base", 1, "unchanged.com", "a", ""), link("base", 1, "unchanged.com", "b", ""),
				link("base", 2, "unchanged.com", "c", "")},
			{dfs, bl, "delta.com"}: {plain(link("r1", 1, "delta.com", "a", "new")), plain(link("r2", 1, "delta.com", "a/other", "new")),
				link("base", 1, "delta.com", "a/page", ""), plain(link("r2", 1, "delta.com", "b", "new")), link("base", 2, "delta.com", "c", ""),
				plain(link("r2", 1, "delta.com", "e", "new"))},
			{dfs, bl, "full.com"}:   {link("r1", 1, "full.com", "c", ""), plain(link("r2", 1, "full.com", "nfd", "new"))},
			{dfs, bl, "new.com"}:    {link("r1", 1, "new.com", "a", "")},
			{dfs, bl, "failed.com"}: {link("base", 1, "failed.com", "a", "")},
			// the later of the two new records
			{dfs, bl, "again.com"}:              {plain(link("r1", 3, "again.com", "a", "new"))},
			{dfs, bl, "partial.com"}:            {link("base", 1, "partial.com", "a", "")},
			{dfs, bl, "refull.com"}:             {link("r2", 1, "refull.com", "a", ""), link("r2", 1, "refull.com", "d", "")},
			{"domdetailer", "summary", "s.com"}: {summary("r2", "s.com")},
		}},
		// a prefix of the chain is the state after its last job
		{[]string{"base", "r1"}, map[Key][]sink.Record{
			{dfs, bl, "unchanged.com"}: {link("base", 1, "unchanged.com", "a", ""), link("base", 1, "unchanged.com", "b", ""),
				link("base", 2, "unchanged.com", "c", "")},
			{dfs, bl, "delta.com"}: {plain(link("r1", 1, "delta.com", "a", "new")), link("base", 1, "delta.com", "a/page", ""),
				link("base", 2, "delta.com", "c", ""), plain(link("r1", 1, "delta.com", "d", "new"))},
			{dfs, bl, "full.com"}:               {link("r1", 1, "full.com", "a", ""), link("r1", 1, "full.com", "c", "")},
			{dfs, bl, "new.com"}:                {link("r1", 1, "new.com", "a", "")},
			{dfs, bl, "failed.com"}:             {link("base", 1, "failed.com", "a", "")},
			{dfs, bl, "again.com"}:              {plain(link("r1", 3, "again.com", "a", "new"))},
			{dfs, bl, "partial.com"}:            {link("base", 1, "partial.com", "a", "")},
			{dfs, bl, "refull.com"}:             {link("base", 1, "refull.com", "b", ""), plain(link("r1", 1, "refull.com", "c", "new"))},
			{"domdetailer", "summary", "s.com"}: {summary("r1", "s.com")},
		}},
	} {
		t.Run(strings.Join(tc.chain, "→"), func(t *testing.T) {
			got, err := CurrentRows(context.Background(), db, root, tc.chain)
			if err != nil {
				t.Fatal(err)
			}
			for k := range tc.want {
				if !reflect.DeepEqual(got[k], tc.want[k]) {
					t.Errorf("%v:\n got  %s\n want %s", k, show(got[k]), show(tc.want[k]))
				}
			}
			for k := range got {
				if _, ok := tc.want[k]; !ok {
					t.Errorf("%v: unexpected rows %s", k, show(got[k]))
				}
			}
		})
	}
}

func TestCurrentRowsRefusesABrokenChain(t *testing.T) {
	root := chainFixture(t)
	f := &fixture{t: t, root: root}
	f.write(job{id: "r3", base: "r2", dt: "2025-06-30", unfinished: true, domains: []domain{
		refreshed("unchanged.com", "unchanged", "unchanged"),
	}})
	db := openDB(t)
	for _, tc := range []struct {
		name  string
		chain []string
		want  string
	}{
		{"out of order", []string{"base", "r2", "r1"}, "job r1 refreshes base, not r2"},
		{"a refresh missing", []string{"base", "r2"}, "job r2 refreshes r1, not base"},
		{"starts at a refresh", []string{"r1", "r2"}, "job r1 is a refresh of base"},
		{"a job without _SUCCESS", []string{"base", "r1", "r2", "r3"}, "jobs/r3/_SUCCESS"},
		{"a job without manifest", []string{"base", "r9"}, "jobs/r9/manifest.json"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := CurrentRows(context.Background(), db, root, tc.chain)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %v, want one that says %q", err, tc.want)
			}
		})
	}
}

func TestCurrentRowsWithoutObjects(t *testing.T) {
	f := &fixture{t: t, root: t.TempDir()}
	f.write(job{id: "base", dt: "2025-06-01", domains: []domain{{dfs, bl, "empty.com", "empty", "", nil}}})
	f.write(job{id: "r1", base: "base", dt: "2025-06-10", domains: []domain{refreshed("empty.com", "unchanged", "unchanged")}})
	got, err := CurrentRows(context.Background(), openDB(t), f.root, []string{"base", "r1"})
	if err != nil || len(got) != 0 {
		t.Fatalf("got %v, %v; want no rows", got, err)
	}
}

func TestBlock(t *testing.T) {
	doc := "text\n<!-- warehouse-test: a -->\n```sql\nSELECT 1;\nSELECT 2;\n```\n\n<!-- warehouse-test: b -->\ntext\n"
	for _, tc := range []struct{ name, want, err string }{
		{"a", "SELECT 1;\nSELECT 2;", ""},
		{"b", "", "not followed by"},
		{"c", "", "no \"c\" block"},
	} {
		got, err := Block(doc, tc.name)
		if got != tc.want || (err == nil) != (tc.err == "") || (err != nil && !strings.Contains(err.Error(), tc.err)) {
			t.Errorf("Block(%q) = %q, %v; want %q, error containing %q", tc.name, got, err, tc.want, tc.err)
		}
	}
}

func show(recs []sink.Record) string {
	var b strings.Builder
	for _, r := range recs {
		fmt.Fprintf(&b, "\n   %s p%d %s %v", r.JobID, r.Page, r.FetchedAt.Format(time.RFC3339Nano), str0(r.Anchor))
	}
	return b.String()
}

func str0(s *string) string {
	if s == nil {
		return "<nil>"
	}
	return *s
}
