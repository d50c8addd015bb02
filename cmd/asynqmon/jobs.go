package main

import (
	"cmp"
	"context"
	_ "embed"
	"encoding/json"
	"errors"
	"fmt"
	"html/template"
	"log/slog"
	"maps"
	"math"
	"net/http"
	"slices"
	"sync"
	"time"

	"github.com/linkharvest/linkharvest/sink"
	"github.com/linkharvest/linkharvest/tasks"
)

// The Jobs view: what the Asynq UI cannot show, a linkharvest job's
// progress, spend, rate, ETA and failed pages. Every route is a GET and
// changes nothing, so read-only or not it only reads; it sits behind the
// same basic auth as the Asynq UI.
//
//	GET /jobs                      recent jobs (HTML)      GET /jobs.json            the same (JSON)
//	GET /jobs/{job}                one job (HTML)          GET /jobs/{job}/status.json the same (JSON)
//	GET /jobs/{job}/manifest.json  the job's manifest, read from the sink (with --sink)
const (
	maxListedJobs   = 50
	maxFailedListed = 100
	// rateWindow is how far back the calls per minute look: long enough
	// to smooth a page of retries, short enough to follow a budget stop.
	rateWindow = 5 * time.Minute
	// minRateSpan: below it the samples say too little and the average
	// since the job's creation is shown.
	minRateSpan = 10 * time.Second
	// refreshSeconds: the HTML pages reload themselves (meta refresh, no script).
	refreshSeconds = 10
	// maxManifestBytes bounds a manifest served whole: the sink reads an
	// object into memory, and a job of millions of domains has a manifest
	// of hundreds of MB, which a viewer reads from the sink instead.
	maxManifestBytes = 64 << 20
	// maxRemembered bounds the jobs whose samples and failed pages the
	// view keeps in memory.
	maxRemembered = 1000
)

//go:embed jobs.html
var jobsHTML string

var jobsTmpl = template.Must(template.New("jobs").Funcs(template.FuncMap{
	"pct": func(a, b int64) string {
		if b <= 0 {
			return "0"
		}
		return fmt.Sprintf("%.0f", math.Min(100, 100*float64(a)/float64(b)))
	},
}).Parse(jobsHTML))

// jobStore is what the view reads from tasks.Store.
type jobStore interface {
	Jobs(ctx context.Context, n int64) ([]string, error)
	Status(ctx context.Context, job string) (*tasks.Status, error)
	FailedOutcomes(ctx context.Context, job string, limit int) ([]tasks.FailedPage, int, error)
}

// manifestReader is what the view reads from the sink.
type manifestReader interface {
	List(ctx context.Context, prefix string) ([]sink.ObjectInfo, error)
	Get(ctx context.Context, key string) ([]byte, error)
}

// SpendLine is one provider's spend against its budget.
type SpendLine struct {
	Provider string  `json:"provider"`
	Spent    float64 `json:"spent"`             // the ledger: each page counted once
	Charged  float64 `json:"charged,omitempty"` // what the vendor billed against the budget
	Budget   float64 `json:"budget,omitempty"`  // 0: no budget
	Text     string  `json:"text"`              // in words, with units
	Percent  float64 `json:"percent,omitempty"` // charged (or spent) of budget
	Blocked  bool    `json:"blocked,omitempty"` // pages wait for a larger budget
}

// RefreshView is a refresh job's base and what its change count found.
type RefreshView struct {
	BaseJob   string `json:"base_job"`
	Unchanged int64  `json:"unchanged"`
	Changed   int64  `json:"changed"`
	Full      int64  `json:"full"`
}

// JobView is what the Jobs view shows of a job; /jobs.json serves it as is.
type JobView struct {
	ID         string `json:"job_id"`
	State      string `json:"state"` // running, budget, done
	CreatedAt  string `json:"created_at,omitempty"`
	FinishedAt string `json:"finished_at,omitempty"`
	Domains    int64  `json:"domains"`
	Pages      int64  `json:"pages"` // page tasks known so far
	Ended      int64  `json:"pages_ended"`
	Open       int64  `json:"pages_open"`
	// Unfed are domains still in the job's feed (not yet paged).
	Unfed       int64   `json:"domains_unfed,omitempty"`
	Records     int64   `json:"rows"`
	Failed      int64   `json:"pages_failed"`
	WaitingFor  string  `json:"waiting_for,omitempty"`
	CallsPerMin float64 `json:"calls_per_minute"`
	// RateBasis says what CallsPerMin was measured over.
	RateBasis string `json:"rate_basis"`
	// ETASeconds is the time the pages known so far still take at that
	// rate (-1: unknown, 0: done); ETA says it in words.
	ETASeconds  int64              `json:"eta_seconds"`
	ETA         string             `json:"eta"`
	Spend       []SpendLine        `json:"spend,omitempty"`
	FailedPages []tasks.FailedPage `json:"failed_pages,omitempty"`
	// FailedTruncated: FailedPages holds only the first maxFailedListed.
	FailedTruncated bool `json:"failed_truncated,omitempty"`
	// Refresh, for a refresh job: its base job and its domains so far
	// unchanged, changed (new and lost rows) and fetched in full.
	Refresh     *RefreshView `json:"refresh,omitempty"`
	ManifestKey string       `json:"manifest_key"`
	ManifestURL string       `json:"manifest_url,omitempty"` // set when asynqmon can read the sink
}

// jobsView serves the Jobs view.
type jobsView struct {
	store jobStore
	sink  manifestReader // nil: no --sink
	log   *slog.Logger
	now   func() time.Time

	mu      sync.Mutex
	samples map[string][]sample   // job -> recent (time, pages ended), for the rate
	failed  map[string]failedMemo // job -> its failed pages, while its failed count holds
}

type sample struct {
	at    time.Time
	ended int64
}

// failedMemo spares a scan of a big job's outcomes on every reload: a
// page fails once, so the list changes only when the count does.
type failedMemo struct {
	count int64
	pages []tasks.FailedPage
	total int
}

func newJobsView(store jobStore, snk manifestReader, log *slog.Logger) *jobsView {
	return &jobsView{store: store, sink: snk, log: log, now: time.Now,
		samples: map[string][]sample{}, failed: map[string]failedMemo{}}
}

func (v *jobsView) register(mux *http.ServeMux) {
	mux.HandleFunc("GET /jobs", v.list)
	mux.HandleFunc("GET /jobs.json", v.list)
	mux.HandleFunc("GET /jobs/{job}", v.one)
	mux.HandleFunc("GET /jobs/{job}/status.json", v.one)
	mux.HandleFunc("GET /jobs/{job}/manifest.json", v.manifest)
}

func isJSON(r *http.Request) bool {
	p := r.URL.Path
	return len(p) > 5 && p[len(p)-5:] == ".json"
}

func (v *jobsView) list(w http.ResponseWriter, r *http.Request) {
	ids, err := v.store.Jobs(r.Context(), maxListedJobs)
	if err != nil {
		v.fail(w, r, http.StatusServiceUnavailable, "reading the jobs from Redis", err)
		return
	}
	jobs := make([]*JobView, 0, len(ids))
	for _, id := range ids {
		jv, err := v.job(r.Context(), id, false)
		if errors.Is(err, tasks.ErrNoJob) {
			continue // expired between the index and its state
		}
		if err != nil {
			v.fail(w, r, http.StatusServiceUnavailable, "reading job "+id, err)
			return
		}
		jobs = append(jobs, jv)
	}
	if isJSON(r) {
		writeJSON(w, map[string]any{"jobs": jobs})
		return
	}
	v.render(w, http.StatusOK, map[string]any{"Jobs": jobs, "Refresh": refreshSeconds})
}

func (v *jobsView) one(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("job")
	if tasks.ValidJobID(id) != nil {
		v.fail(w, r, http.StatusNotFound, "no such job", nil)
		return
	}
	jv, err := v.job(r.Context(), id, true)
	if errors.Is(err, tasks.ErrNoJob) {
		v.fail(w, r, http.StatusNotFound, "no such job (or its state has expired from Redis)", nil)
		return
	}
	if err != nil {
		v.fail(w, r, http.StatusServiceUnavailable, "reading the job from Redis", err)
		return
	}
	if isJSON(r) {
		writeJSON(w, jv)
		return
	}
	v.render(w, http.StatusOK, map[string]any{"Job": jv, "Refresh": refreshSeconds})
}

// manifest sends the job's manifest from the sink. Sink errors are logged,
// not shown: they may name a bucket or a path the viewer need not know.
func (v *jobsView) manifest(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("job")
	if v.sink == nil {
		v.fail(w, r, http.StatusNotFound, "asynqmon has no --sink: the manifest is at "+sink.ManifestKey(id)+" in the sink", nil)
		return
	}
	if tasks.ValidJobID(id) != nil {
		v.fail(w, r, http.StatusNotFound, "no such job", nil)
		return
	}
	key := sink.ManifestKey(id)
	objs, err := v.sink.List(r.Context(), key)
	var size int64 = -1
	for _, o := range objs {
		if o.Key == key {
			size = o.Size
		}
	}
	var body []byte
	switch {
	case err != nil:
	case size < 0:
		err = sink.ErrNotFound
	case size > maxManifestBytes:
		v.fail(w, r, http.StatusNotImplemented, fmt.Sprintf("the manifest is %d MiB, more than asynqmon serves (%d MiB): read %s from the sink",
			size>>20, maxManifestBytes>>20, key), nil)
		return
	default:
		body, err = v.sink.Get(r.Context(), key)
	}
	if errors.Is(err, sink.ErrNotFound) {
		v.fail(w, r, http.StatusNotFound, "no manifest yet: it is written when the job ends", nil)
		return
	}
	if err != nil {
		v.log.Warn("reading a manifest from the sink", "job", id, "err", err)
		v.fail(w, r, http.StatusBadGateway, "the sink did not answer; see asynqmon's log", nil)
		return
	}
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.Header().Set("Content-Disposition", `inline; filename="manifest.json"`)
	_, _ = w.Write(body)
}

// job builds a job's view; withFailed lists its failed pages too (a scan
// of its outcomes, so only on the job's own page).
func (v *jobsView) job(ctx context.Context, id string, withFailed bool) (*JobView, error) {
	st, err := v.store.Status(ctx, id)
	if err != nil {
		return nil, err
	}
	jv := &JobView{ID: st.JobID, State: st.State, CreatedAt: st.CreatedAt, FinishedAt: st.FinishedAt,
		Domains: st.Domains, Pages: st.Tasks, Ended: st.Ended, Open: st.Open, Unfed: st.Unfed, Records: st.Records,
		Failed: st.Failed, WaitingFor: st.WaitingFor(), ManifestKey: sink.ManifestKey(st.JobID)}
	if v.sink != nil {
		jv.ManifestURL = "/jobs/" + st.JobID + "/manifest.json"
	}
	if st.BaseJob != "" {
		jv.Refresh = &RefreshView{BaseJob: st.BaseJob, Unchanged: st.Unchanged, Changed: st.Changed, Full: st.Full}
	}
	jv.Spend = spendLines(st)
	v.rate(jv, st)
	if withFailed && st.Failed > 0 {
		pages, total, err := v.failedPages(ctx, id, st.Failed)
		if err != nil {
			return nil, err
		}
		jv.FailedPages, jv.FailedTruncated = pages, total > len(pages)
	}
	return jv, nil
}

func (v *jobsView) failedPages(ctx context.Context, id string, count int64) ([]tasks.FailedPage, int, error) {
	v.mu.Lock()
	m, ok := v.failed[id]
	v.mu.Unlock()
	if ok && m.count == count {
		return m.pages, m.total, nil
	}
	pages, total, err := v.store.FailedOutcomes(ctx, id, maxFailedListed)
	if err != nil {
		return nil, 0, err
	}
	v.mu.Lock()
	if len(v.failed) >= maxRemembered {
		clear(v.failed)
	}
	v.failed[id] = failedMemo{count: count, pages: pages, total: total}
	v.mu.Unlock()
	return pages, total, nil
}

// rate sets the calls per minute and the ETA. A page is one call (its
// retries are not counted): the rate is pages ended per minute, over the
// samples of the last rateWindow this process took, or, before it has
// enough of them, the average since the job was created (or over its
// whole run once done).
func (v *jobsView) rate(jv *JobView, st *tasks.Status) {
	now := v.now()
	created, _ := time.Parse(time.RFC3339Nano, st.CreatedAt)
	if st.Done() {
		jv.ETASeconds, jv.ETA = 0, "done"
		finished, err := time.Parse(time.RFC3339Nano, st.FinishedAt)
		if err == nil && !created.IsZero() && finished.After(created) {
			jv.CallsPerMin = round1(float64(st.Ended) / finished.Sub(created).Minutes())
			jv.RateBasis = "average over the whole run"
		}
		v.mu.Lock()
		delete(v.samples, st.JobID)
		v.mu.Unlock()
		return
	}
	v.mu.Lock()
	ss := append(v.samples[st.JobID], sample{at: now, ended: st.Ended})
	for len(ss) > 1 && now.Sub(ss[0].at) > rateWindow {
		ss = ss[1:]
	}
	if len(ss) > 64 { // reloads from many viewers: keep every other sample
		thin := make([]sample, 0, len(ss)/2+1)
		for i, s := range ss {
			if i%2 == 0 || i == len(ss)-1 {
				thin = append(thin, s)
			}
		}
		ss = thin
	}
	if _, ok := v.samples[st.JobID]; !ok && len(v.samples) >= maxRemembered {
		clear(v.samples) // jobs long expired from Redis: start again
	}
	v.samples[st.JobID] = ss
	v.mu.Unlock()
	if span := now.Sub(ss[0].at); span >= minRateSpan {
		jv.CallsPerMin = round1(float64(st.Ended-ss[0].ended) / span.Minutes())
		jv.RateBasis = fmt.Sprintf("over the last %s", span.Round(time.Second))
	} else if !created.IsZero() && now.Sub(created) > time.Second {
		jv.CallsPerMin = round1(float64(st.Ended) / now.Sub(created).Minutes())
		jv.RateBasis = "average since the job was created"
	}
	jv.ETASeconds, jv.ETA = -1, "unknown"
	switch {
	case st.BudgetStopped():
		jv.ETA = "stopped: waits for a larger budget"
	case jv.CallsPerMin > 0:
		d := time.Duration(float64(st.Open) / jv.CallsPerMin * float64(time.Minute)).Round(time.Second)
		jv.ETASeconds = int64(d / time.Second)
		jv.ETA = "about " + d.String() + " for the pages known so far"
		if st.Unfed > 0 {
			jv.ETA += fmt.Sprintf(", not counting the %d domains still to feed", st.Unfed)
		}
	}
}

func round1(f float64) float64 { return math.Round(f*10) / 10 }

func spendLines(st *tasks.Status) []SpendLine {
	providers := map[string]bool{}
	for _, m := range []map[string]float64{st.Spend, st.Budget, st.Charged} {
		for p := range m {
			providers[p] = true
		}
	}
	blocked := map[string]bool{}
	for _, p := range st.BudgetBlocked {
		blocked[p] = true
	}
	var out []SpendLine
	for _, p := range slices.Sorted(maps.Keys(providers)) {
		l := SpendLine{Provider: p, Spent: st.Spend[p], Charged: st.Charged[p], Budget: st.Budget[p], Blocked: blocked[p]}
		l.Text = tasks.FormatAmount(l.Spent, p) + " spent"
		if l.Budget > 0 {
			billed := cmp.Or(l.Charged, l.Spent)
			l.Text = fmt.Sprintf("%s of %s budget", tasks.FormatAmount(billed, p), tasks.FormatAmount(l.Budget, p))
			if l.Charged != l.Spent {
				l.Text += " (" + tasks.FormatAmount(l.Spent, p) + " in the ledger)"
			}
			l.Percent = math.Min(100, round1(100*billed/l.Budget))
		}
		out = append(out, l)
	}
	return out
}

func (v *jobsView) render(w http.ResponseWriter, code int, data map[string]any) {
	h := w.Header()
	h.Set("Content-Type", "text/html; charset=utf-8")
	// No script at all, and nothing fetched from elsewhere: untrusted text
	// (vendors' messages) that escaped the template still could not run.
	h.Set("Content-Security-Policy", "default-src 'none'; style-src 'unsafe-inline'; img-src data:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Cache-Control", "no-store")
	w.WriteHeader(code)
	if err := jobsTmpl.Execute(w, data); err != nil {
		v.log.Warn("rendering the jobs view", "err", err)
	}
}

func (v *jobsView) fail(w http.ResponseWriter, r *http.Request, code int, msg string, err error) {
	if err != nil {
		v.log.Warn("jobs view: "+msg, "err", err)
		msg += ": " + err.Error()
	}
	if isJSON(r) {
		w.Header().Set("Content-Type", "application/json; charset=utf-8")
		w.WriteHeader(code)
		_ = json.NewEncoder(w).Encode(map[string]string{"error": msg})
		return
	}
	v.render(w, code, map[string]any{"Error": msg})
}

func writeJSON(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	_ = enc.Encode(v)
}
