package tests

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	_ "github.com/duckdb/duckdb-go/v2"

	"github.com/linkharvest/linkharvest/internal/testenv"
	"github.com/linkharvest/linkharvest/internal/warehouse"
	"github.com/linkharvest/linkharvest/sink"
	"github.com/linkharvest/linkharvest/tasks"
)

// The refresh's days: the sandbox's world seen 45 days apart.
const (
	refreshDay1 = "2026-09-01"
	refreshDay2 = "2026-10-16"
)

// refreshWorld is one sandbox world (seed 7, a tenth of the domains
// changing every 30 days) seen on two days, with Redis and MinIO.
type refreshWorld struct {
	t          *testing.T
	rdsURL     string
	s3         *testenv.S3
	sinkURL    string
	day1, day2 string // the sandboxes' base URLs
	domains    []string
	file       string
}

func newRefreshWorld(t *testing.T, n int, sandboxArgs ...string) *refreshWorld {
	rds := testenv.Redis(t)
	s3 := testenv.MinIO(t)
	s3.Setenv(t)
	w := &refreshWorld{t: t, rdsURL: rds.URL, s3: s3, sinkURL: s3.SinkURL("refresh")}
	w.day1, _ = startSandbox(t, append([]string{"--seed", "7", "--churn", "0.1", "--today", refreshDay1}, sandboxArgs...)...)
	w.day2, _ = startSandbox(t, append([]string{"--seed", "7", "--churn", "0.1", "--today", refreshDay2}, sandboxArgs...)...)
	var b strings.Builder
	for i := range n {
		d := fmt.Sprintf("refresh-%03d.example", i)
		if i%50 == 0 {
			d = fmt.Sprintf("rows-%d.refresh-%03d.example", 1000+10*i, i)
		}
		w.domains = append(w.domains, d)
		b.WriteString(d + "\n")
	}
	w.file = filepath.Join(t.TempDir(), "domains.txt")
	if err := os.WriteFile(w.file, []byte(b.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	return w
}

// env is a worker's or enqueue's environment against the sandbox of base.
func (w *refreshWorld) env(base string) []string {
	return append(append(w.s3.Env(), vendorEnv(base)...), "REDIS_URL="+w.rdsURL, "SINK_URL="+w.sinkURL, "METRICS_ADDR=", "WORKER_CONCURRENCY=20")
}

// run runs one job to its end on the sandbox of base with two workers and
// returns the vendor calls and cost it took (the sandbox's counters).
func (w *refreshWorld) run(base string, args ...string) (calls int64, cost float64, sum map[string]any) {
	t := w.t
	t.Helper()
	resetStats(t, base)
	env := w.env(base)
	w1, w2 := start(t, env, "worker"), start(t, env, "worker")
	stdout, stderr, code := runCmd(t, env, nil, 4*time.Minute, "enqueue", append([]string{"--wait", "--json"}, args...)...)
	if code != 0 {
		t.Fatalf("enqueue %v: exit %d\nstdout: %s\nstderr: %s", args, code, tail(stdout, 2000), tail(stderr, 2000))
	}
	lastJSON(t, stdout, &sum)
	w1.stop(t, 40*time.Second)
	w2.stop(t, 40*time.Second)
	st := sandboxStats(t, base)["dataforseo"]
	return st.Calls, st.Cost, sum
}

// rows reads a job's records per domain: key (source_url, target_url) -> change.
func (w *refreshWorld) rows(job string) map[string]map[string]string {
	t := w.t
	t.Helper()
	snk, err := sink.Open(context.Background(), w.sinkURL)
	if err != nil {
		t.Fatal(err)
	}
	objs, err := snk.List(context.Background(), "")
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]map[string]string{}
	for _, o := range objs {
		if !strings.Contains(o.Key, "/job="+job+"/") {
			continue
		}
		b, err := snk.Get(context.Background(), o.Key)
		if err != nil {
			t.Fatal(err)
		}
		recs, err := sink.DecodePage(b)
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range recs {
			if out[r.Domain] == nil {
				out[r.Domain] = map[string]string{}
			}
			key := *r.SourceURL + " -> " + *r.TargetURL
			if _, dup := out[r.Domain][key]; dup {
				t.Errorf("job %s: %s: row %s twice", job, r.Domain, key)
			}
			out[r.Domain][key] = r.Change
		}
	}
	return out
}

// listing is the keys of a job's objects with their sizes and times.
func (w *refreshWorld) listing(job string) map[string]string {
	w.t.Helper()
	snk, err := sink.Open(context.Background(), w.sinkURL)
	if err != nil {
		w.t.Fatal(err)
	}
	objs, err := snk.List(context.Background(), "")
	if err != nil {
		w.t.Fatal(err)
	}
	out := map[string]string{}
	for _, o := range objs {
		if strings.Contains(o.Key, "/job="+job+"/") || strings.HasPrefix(o.Key, "jobs/"+job+"/") {
			out[o.Key] = fmt.Sprint(o.Size, o.LastModified.UnixNano())
		}
	}
	return out
}

// download copies the jobs' objects, manifests and _SUCCESS to a local
// directory laid out as the sink.
func (w *refreshWorld) download(jobs ...string) string {
	t := w.t
	t.Helper()
	ctx := context.Background()
	snk, err := sink.Open(ctx, w.sinkURL)
	if err != nil {
		t.Fatal(err)
	}
	objs, err := snk.List(ctx, "")
	if err != nil {
		t.Fatal(err)
	}
	root := t.TempDir()
	for _, o := range objs {
		keep := false
		for _, j := range jobs {
			keep = keep || strings.Contains(o.Key, "/job="+j+"/") || strings.HasPrefix(o.Key, "jobs/"+j+"/")
		}
		if !keep {
			continue
		}
		b, err := snk.Get(ctx, o.Key)
		if err != nil {
			t.Fatal(err)
		}
		path := filepath.Join(root, filepath.FromSlash(o.Key))
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return root
}

func (w *refreshWorld) manifest(job string) tasks.Manifest {
	w.t.Helper()
	snk, err := sink.Open(context.Background(), w.sinkURL)
	if err != nil {
		w.t.Fatal(err)
	}
	b, err := snk.Get(context.Background(), sink.ManifestKey(job))
	if err != nil {
		w.t.Fatal(err)
	}
	var m tasks.Manifest
	if err := json.Unmarshal(b, &m); err != nil {
		w.t.Fatal(err)
	}
	return m
}

// TestRefreshEndToEnd: a full job on day 1; on day 2 (45 days later) a
// full job and a refresh of the day-1 job. For every domain, the day-1
// rows minus the refresh's lost plus its new are the day-2 rows; domains
// the vendor counts no change for are listed unchanged; the refresh takes
// at most 30 % of the full job's calls and cost, by the sandbox's counters.
func TestRefreshEndToEnd(t *testing.T) {
	w := newRefreshWorld(t, 300)
	_, _, _ = w.run(w.day1, "--job", "day1", w.file)
	fullCalls, fullCost, _ := w.run(w.day2, "--job", "day2", w.file)
	// The estimate makes the refresh's change count and reckons what the
	// refresh will take: the count again, and its changed domains' pages.
	resetStats(t, w.day2)
	stdout, stderr, code := runCmd(t, w.env(w.day2), nil, time.Minute, "enqueue", "--dry-run", "--estimate", "--json", "--refresh", "day1", "--since", refreshDay1)
	var est struct {
		Calls         int64              `json:"estimated_calls"`
		Spend         map[string]float64 `json:"estimated_spend"`
		EstimateSpend map[string]float64 `json:"estimate_spend"`
	}
	if code != 0 {
		t.Fatalf("estimate: exit %d\n%s\n%s", code, stdout, stderr)
	}
	lastJSON(t, stdout, &est)
	if st := sandboxStats(t, w.day2)["dataforseo"]; st.Calls != 1 || !near(st.Cost, est.EstimateSpend["dataforseo"]) {
		t.Errorf("the estimate made %d calls costing %.6f; it says it cost %v", st.Calls, st.Cost, est.EstimateSpend)
	}
	before := w.listing("day1")
	calls, cost, sum := w.run(w.day2, "--job", "refresh", "--refresh", "day1", "--since", refreshDay1)
	if after := w.listing("day1"); !maps.Equal(before, after) {
		t.Errorf("the refresh changed its base job's objects: %d before, %d after", len(before), len(after))
	}
	// The same refresh submitted again buys nothing.
	if again, _, _ := w.run(w.day2, "--job", "refresh", "--refresh", "day1", "--since", refreshDay1); again != 0 {
		t.Errorf("the refresh submitted again made %d calls, want 0", again)
	}
	if est.Calls != calls || !near(est.Spend["dataforseo"], cost) {
		t.Errorf("the estimate said %d calls and %v; the refresh took %d calls and %.6f USD\n%s", est.Calls, est.Spend, calls, cost, stdout)
	}
	t.Logf("day-2 full job: %d calls, %.4f USD; refresh: %d calls, %.4f USD (%.1f %%, %.1f %%); summary unchanged %v changed %v full %v",
		fullCalls, fullCost, calls, cost, 100*float64(calls)/float64(fullCalls), 100*cost/fullCost, sum["unchanged"], sum["changed"], sum["full"])
	if float64(calls) > 0.3*float64(fullCalls) || cost > 0.3*fullCost {
		t.Errorf("the refresh took %d calls and %.4f USD; a full job %d and %.4f: want at most 30 %%", calls, cost, fullCalls, fullCost)
	}
	if sum["base_job"] != "day1" || sum["state"] != "done" {
		t.Errorf("summary %v", sum)
	}

	day1, day2, delta := w.rows("day1"), w.rows("day2"), w.rows("refresh")
	m := w.manifest("refresh")
	if m.BaseJob != "day1" || m.Since != refreshDay1 {
		t.Errorf("manifest: base_job %q since %q", m.BaseJob, m.Since)
	}
	modes := map[string]string{}
	for _, o := range m.Outcomes {
		modes[o.Domain] = o.Refresh
		if (o.Refresh == "unchanged") != (o.Status == "unchanged") {
			t.Errorf("%s: status %s, refresh %s", o.Domain, o.Status, o.Refresh)
		}
	}
	count := map[string]int{}
	for _, d := range w.domains {
		count[modes[d]]++
		current := maps.Clone(day1[d])
		if current == nil {
			current = map[string]string{}
		}
		for k, ch := range delta[d] {
			switch ch {
			case "new":
				if _, ok := day1[d][k]; ok {
					t.Errorf("%s: new row %s was in the base job", d, k)
				}
				current[k] = ""
			case "lost":
				if _, ok := day1[d][k]; !ok {
					t.Errorf("%s: lost row %s was not in the base job", d, k)
				}
				delete(current, k)
			default:
				t.Errorf("%s: a refresh row without change (%s)", d, modes[d])
			}
		}
		if modes[d] == "unchanged" && len(delta[d]) > 0 {
			t.Errorf("%s: unchanged, yet %d rows written", d, len(delta[d]))
		}
		got, want := slices.Sorted(maps.Keys(current)), slices.Sorted(maps.Keys(day2[d]))
		if !slices.Equal(got, want) {
			t.Errorf("%s (%s): day-1 rows − lost + new: %d rows; the day-2 job has %d", d, modes[d], len(got), len(want))
		}
	}
	// The warehouse's rebuild (docs/warehouse.md, run on DuckDB over a copy
	// of the output) gives the rows of the day-2 full harvest.
	root := w.download("day1", "refresh")
	db, err := sql.Open("duckdb", "?autoinstall_known_extensions=false&autoload_known_extensions=false")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	cur, err := warehouse.CurrentRows(context.Background(), db, root, []string{"day1", "refresh"})
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range w.domains {
		got := map[string]bool{}
		for _, r := range cur[warehouse.Key{Provider: "dataforseo", Endpoint: "backlinks", Domain: d}] {
			got[*r.SourceURL+" -> "+*r.TargetURL] = true
		}
		if g, want := slices.Sorted(maps.Keys(got)), slices.Sorted(maps.Keys(day2[d])); !slices.Equal(g, want) {
			t.Errorf("%s (%s): the warehouse's rebuild has %d rows; the day-2 job %d", d, modes[d], len(g), len(want))
		}
	}
	t.Logf("refresh outcomes: %v", count)
	if count["unchanged"] == 0 || count["delta"] == 0 || count["unchanged"]+count["delta"] != len(w.domains) {
		t.Errorf("refresh outcomes %v: want every domain unchanged or a delta, some of each", count)
	}
}

func near(a, b float64) bool { return a-b < 1e-6 && b-a < 1e-6 }
