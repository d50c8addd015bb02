package main

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/linkharvest/linkharvest/sink"
	"github.com/linkharvest/linkharvest/tasks"
)

// fakeStore serves fixed statuses, for what the view computes and escapes.
type fakeStore struct {
	ids    []string
	status map[string]*tasks.Status
	failed map[string][]tasks.FailedPage
	scans  int
}

func (f *fakeStore) Jobs(context.Context, int64) ([]string, error) { return f.ids, nil }
func (f *fakeStore) Status(_ context.Context, id string) (*tasks.Status, error) {
	if s, ok := f.status[id]; ok {
		c := *s
		return &c, nil
	}
	return nil, tasks.ErrNoJob
}
func (f *fakeStore) FailedOutcomes(_ context.Context, id string, limit int) ([]tasks.FailedPage, int, error) {
	f.scans++
	p := f.failed[id]
	if len(p) > limit {
		return p[:limit], len(p), nil
	}
	return p, len(p), nil
}

type fakeSink map[string][]byte

func (f fakeSink) List(_ context.Context, prefix string) ([]sink.ObjectInfo, error) {
	var out []sink.ObjectInfo
	for k, b := range f {
		if strings.HasPrefix(k, prefix) {
			size := int64(len(b))
			if string(b) == "huge" {
				size = maxManifestBytes + 1
			}
			out = append(out, sink.ObjectInfo{Key: k, Size: size})
		}
	}
	return out, nil
}

func (f fakeSink) Get(_ context.Context, key string) ([]byte, error) {
	if b, ok := f[key]; ok {
		return b, nil
	}
	return nil, sink.ErrNotFound
}

// hostile is a vendor's message a page must show as text, never run.
const hostile = `</td><script>document.title="pwned"</script><img src=x onerror="document.body.dataset.pwned=1">&amp; "quoted"`

func fakeJobs() *fakeStore {
	return &fakeStore{
		ids: []string{"run-1", "done-1"},
		status: map[string]*tasks.Status{
			"run-1": {JobID: "run-1", State: "budget", CreatedAt: "2026-12-01T10:00:00Z", Domains: 3, Tasks: 10, Ended: 4, Open: 6,
				Records: 4000, Failed: 2, Spend: map[string]float64{"dataforseo": 0.2}, Charged: map[string]float64{"dataforseo": 0.25},
				Budget: map[string]float64{"dataforseo": 0.25}, BudgetBlocked: []string{"dataforseo"}},
			"done-1": {JobID: "done-1", State: "done", CreatedAt: "2026-12-01T10:00:00Z", FinishedAt: "2026-12-01T10:02:00Z",
				Domains: 1, Tasks: 30, Ended: 30, Records: 29000, Spend: map[string]float64{"domdetailer": 3},
				BaseJob: "month-1", Unchanged: 270, Changed: 25, Full: 5},
		},
		failed: map[string][]tasks.FailedPage{"run-1": {
			{Provider: "xovi", Endpoint: "backlinks", Domain: "evil.example", Page: 1, Error: hostile},
			{Provider: "xovi", Endpoint: "backlinks", Domain: "other.example", Page: 2, Error: "param invalid"},
		}},
	}
}

func testView(store jobStore, snk manifestReader, now time.Time) *httptest.Server {
	v := newJobsView(store, snk, slog.New(slog.NewTextHandler(io.Discard, nil)))
	v.now = func() time.Time { return now }
	mux := http.NewServeMux()
	v.register(mux)
	return httptest.NewServer(mux)
}

func TestJobsViewHTMLAndJSON(t *testing.T) {
	t.Parallel()
	store := fakeJobs()
	ts := testView(store, fakeSink{"jobs/done-1/manifest.json": []byte(`{"job_id":"done-1"}`), "jobs/big/manifest.json": []byte("huge"),
		"jobs/run-1/manifest.json.part": []byte("{")},
		time.Date(2026, 12, 1, 10, 5, 0, 0, time.UTC))
	defer ts.Close()

	r := do(t, "GET", ts.URL+"/jobs/run-1", nil)
	if r.status != 200 || !strings.HasPrefix(r.header.Get("Content-Type"), "text/html") {
		t.Fatalf("GET /jobs/run-1 = %d %q", r.status, r.header.Get("Content-Type"))
	}
	if csp := r.header.Get("Content-Security-Policy"); !strings.Contains(csp, "default-src 'none'") || strings.Contains(csp, "script-src") {
		t.Errorf("CSP %q: want no script and nothing fetched", csp)
	}
	for _, want := range []string{
		"4 / 10 pages ended (40 %), 6 open",
		"4000 rows written",
		"dataforseo: 0.25 usd of 0.25 usd budget (0.2 usd in the ledger)",
		"waits for a larger budget",
		"stopped: waits for a larger budget",
		"evil.example",
		"&lt;/td&gt;&lt;script&gt;document.title=&#34;pwned&#34;&lt;/script&gt;&lt;img src=x onerror=&#34;document.body.dataset.pwned=1&#34;&gt;&amp;amp; &#34;quoted&#34;",
		"param invalid",
		`<a href="/jobs/run-1/status.json">JSON</a>`,
		"jobs/run-1/manifest.json</a>", // not done: no link
	} {
		if want == "jobs/run-1/manifest.json</a>" {
			if strings.Contains(r.body, want) {
				t.Errorf("a running job links a manifest that is not written yet")
			}
			continue
		}
		if !strings.Contains(r.body, want) {
			t.Errorf("job page lacks %q", want)
		}
	}
	if strings.Contains(r.body, "<script") || strings.Contains(r.body, "<img") {
		t.Errorf("the vendor's message reached the page unescaped:\n%s", r.body)
	}

	var jv JobView
	r = do(t, "GET", ts.URL+"/jobs/run-1/status.json", nil)
	if err := json.Unmarshal([]byte(r.body), &jv); err != nil || r.status != 200 {
		t.Fatalf("status.json = %d %v: %s", r.status, err, r.body)
	}
	if jv.Ended != 4 || jv.Pages != 10 || jv.Records != 4000 || len(jv.FailedPages) != 2 || jv.FailedPages[0].Error != hostile ||
		len(jv.Spend) != 1 || jv.Spend[0].Percent != 100 || !jv.Spend[0].Blocked || jv.ETASeconds != -1 {
		t.Errorf("status.json = %+v", jv)
	}
	// The failed pages are not scanned again while their count holds.
	scans := store.scans
	do(t, "GET", ts.URL+"/jobs/run-1", nil)
	if store.scans != scans {
		t.Errorf("failed pages scanned again with an unchanged count")
	}

	r = do(t, "GET", ts.URL+"/jobs/done-1", nil)
	for _, want := range []string{`<a href="/jobs/done-1/manifest.json" id="manifest-link">jobs/done-1/manifest.json</a>`,
		"domdetailer: 3 credits spent", "15 <span", "average over the whole run", ">done<",
		"month-1: 270 unchanged, 25 changed, 5 fetched in full"} {
		if !strings.Contains(r.body, want) {
			t.Errorf("done job page lacks %q", want)
		}
	}
	r = do(t, "GET", ts.URL+"/jobs/done-1/manifest.json", nil)
	if r.status != 200 || r.body != `{"job_id":"done-1"}` || r.header.Get("X-Content-Type-Options") != "nosniff" {
		t.Errorf("manifest = %d %q %v", r.status, r.body, r.header)
	}
	if r = do(t, "GET", ts.URL+"/jobs/run-1/manifest.json", nil); r.status != 404 || !strings.Contains(r.body, "written when the job ends") {
		t.Errorf("manifest of a running job = %d %q", r.status, r.body)
	}
	if r = do(t, "GET", ts.URL+"/jobs/big/manifest.json", nil); r.status != http.StatusNotImplemented || !strings.Contains(r.body, "jobs/big/manifest.json from the sink") {
		t.Errorf("a manifest too big to serve = %d %q", r.status, r.body)
	}

	var list struct{ Jobs []JobView }
	r = do(t, "GET", ts.URL+"/jobs.json", nil)
	if err := json.Unmarshal([]byte(r.body), &list); err != nil || len(list.Jobs) != 2 || list.Jobs[0].ID != "run-1" || list.Jobs[1].Records != 29000 ||
		list.Jobs[0].Refresh != nil || list.Jobs[1].Refresh == nil || *list.Jobs[1].Refresh != (RefreshView{BaseJob: "month-1", Unchanged: 270, Changed: 25, Full: 5}) {
		t.Fatalf("jobs.json = %v %s", err, r.body)
	}
	r = do(t, "GET", ts.URL+"/jobs", nil)
	if !strings.Contains(r.body, `<a href="/jobs/done-1">done-1</a>`) || !strings.Contains(r.body, "30 / 30") {
		t.Errorf("jobs list lacks done-1:\n%s", r.body)
	}
	for _, path := range []string{"/jobs/nosuch", "/jobs/nosuch/status.json", "/jobs/..%2Fetc/manifest.json"} {
		if r = do(t, "GET", ts.URL+path, nil); r.status != 404 {
			t.Errorf("GET %s = %d, want 404", path, r.status)
		}
	}
	if r = do(t, "POST", ts.URL+"/jobs", nil); r.status != http.StatusMethodNotAllowed {
		t.Errorf("POST /jobs = %d, want 405", r.status)
	}
}

// TestJobsViewWithoutSink: the manifest's key is shown, not linked.
func TestJobsViewWithoutSink(t *testing.T) {
	t.Parallel()
	ts := testView(fakeJobs(), nil, time.Now())
	defer ts.Close()
	r := do(t, "GET", ts.URL+"/jobs/done-1", nil)
	if !strings.Contains(r.body, "<code>jobs/done-1/manifest.json</code>") || strings.Contains(r.body, "manifest-link") {
		t.Errorf("without --sink: want the key shown, no link:\n%s", r.body)
	}
	if r = do(t, "GET", ts.URL+"/jobs/done-1/manifest.json", nil); r.status != 404 || !strings.Contains(r.body, "--sink") {
		t.Errorf("manifest without --sink = %d %q", r.status, r.body)
	}
}

// TestJobsRate: the rate follows the samples once they span minRateSpan;
// before, the average since creation; the ETA divides the open pages by it.
func TestJobsRate(t *testing.T) {
	t.Parallel()
	created := time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC)
	v := newJobsView(nil, nil, slog.New(slog.NewTextHandler(io.Discard, nil)))
	st := &tasks.Status{JobID: "j", State: "running", CreatedAt: created.Format(time.RFC3339Nano), Tasks: 1000, Ended: 100, Open: 900}
	for _, tc := range []struct {
		at         time.Duration // since created
		ended      int64
		rate       float64
		basis, eta string
		etaSeconds int64
	}{
		{10 * time.Minute, 100, 10, "average since the job was created", "about 1h30m0s for the pages known so far", 5400},
		{10*time.Minute + 5*time.Second, 110, 120, "average since", "", 0}, // 5 s of samples: still the average (110/10m5s ≈ 10.9)
		{11 * time.Minute, 400, 300, "over the last 1m0s", "about 2m0s for the pages known so far", 120},
	} {
		v.now = func() time.Time { return created.Add(tc.at) }
		st.Ended, st.Open = tc.ended, 1000-tc.ended
		jv := &JobView{}
		v.rate(jv, st)
		if !strings.HasPrefix(jv.RateBasis, tc.basis) {
			t.Errorf("at %v: basis %q, want %q", tc.at, jv.RateBasis, tc.basis)
		}
		if tc.eta == "" {
			continue
		}
		if jv.CallsPerMin != tc.rate || jv.ETA != tc.eta || jv.ETASeconds != tc.etaSeconds {
			t.Errorf("at %v: %v/min, ETA %q (%d s); want %v, %q", tc.at, jv.CallsPerMin, jv.ETA, jv.ETASeconds, tc.rate, tc.eta)
		}
	}
}
