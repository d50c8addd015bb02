package main

import (
	"context"
	"encoding/json"
	"html"
	"io"
	"log/slog"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/hibiken/asynq"

	"github.com/linkharvest/linkharvest/internal/runner"
	"github.com/linkharvest/linkharvest/internal/testenv"
	"github.com/linkharvest/linkharvest/limiter"
	"github.com/linkharvest/linkharvest/providers/registry"
	"github.com/linkharvest/linkharvest/providers/sandbox"
	"github.com/linkharvest/linkharvest/tasks"
)

// The Jobs view in a real browser: Debian's chromium, headless, loads the
// pages as a person would (basic auth from the URL, the CSP enforced, the
// template's output parsed by a browser) and dumps the DOM it built; a
// screenshot goes to the test's temp dir, and also to
// $LINKHARVEST_SCREENSHOTS when set, for a person to look at.

// chromium finds the browser; without it the test skips, or fails under
// LINKHARVEST_REQUIRE_INTEGRATION=1 (CI, where `make deps` installs it).
func chromium(t *testing.T) string {
	t.Helper()
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome-stable", "google-chrome"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	if os.Getenv("LINKHARVEST_REQUIRE_INTEGRATION") == "1" {
		t.Fatal("chromium not found (make deps installs Debian's chromium)")
	}
	t.Skip("chromium not installed; set LINKHARVEST_REQUIRE_INTEGRATION=1 to make this a failure")
	return ""
}

// browser runs headless chromium, one process per page, each bounded in time.
type browser struct {
	t    *testing.T
	bin  string
	prof string // a private profile: nothing shared with another run
}

func newBrowser(t *testing.T) *browser {
	return &browser{t: t, bin: chromium(t), prof: t.TempDir()}
}

func (b *browser) run(args ...string) string {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	base := []string{"--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--no-default-browser-check",
		"--disable-background-networking", "--disable-component-update", "--disable-sync", "--disable-extensions",
		"--user-data-dir=" + b.prof, "--window-size=1280,1000", "--hide-scrollbars"}
	cmd := exec.CommandContext(ctx, b.bin, append(base, args...)...)
	cmd.WaitDelay = 5 * time.Second
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		b.t.Fatalf("chromium %v: %v\n%s", args, err, stderr.String())
	}
	return string(out)
}

// dom is the DOM chromium built for url, after it loaded.
func (b *browser) dom(url string) string {
	b.t.Helper()
	return b.run("--dump-dom", url)
}

// screenshot saves a PNG of url and returns its path.
func (b *browser) screenshot(url, name string) string {
	b.t.Helper()
	path := filepath.Join(b.t.TempDir(), name)
	b.run("--screenshot="+path, url)
	st, err := os.Stat(path)
	if err != nil || st.Size() == 0 {
		b.t.Fatalf("no screenshot at %s: %v", path, err)
	}
	b.t.Logf("screenshot of %s: %s", redactURL(url), path)
	if dir := os.Getenv("LINKHARVEST_SCREENSHOTS"); dir != "" {
		if data, err := os.ReadFile(path); err == nil && os.MkdirAll(dir, 0o755) == nil {
			keep := filepath.Join(dir, name)
			if os.WriteFile(keep, data, 0o644) == nil {
				b.t.Logf("kept as %s", keep)
			}
		}
	}
	return path
}

func redactURL(u string) string { return regexp.MustCompile(`//[^/@]*@`).ReplaceAllString(u, "//***@") }

var (
	reHidden = regexp.MustCompile(`(?is)<(head|style|script)\b.*?</(head|style|script)>`)
	reTag    = regexp.MustCompile(`(?s)<[^>]*>`)
	reSpace  = regexp.MustCompile(`\s+`)
)

// text is what a DOM shows a reader: its body's text, whitespace folded.
func text(dom string) string {
	s := reHidden.ReplaceAllString(dom, " ")
	s = reTag.ReplaceAllString(s, " ")
	return strings.TrimSpace(reSpace.ReplaceAllString(html.UnescapeString(s), " "))
}

// element returns the outer HTML of the first element with the given id.
func element(dom, id string) string {
	i := strings.Index(dom, `id="`+id+`"`)
	if i < 0 {
		return ""
	}
	start := strings.LastIndex(dom[:i], "<")
	tag := strings.FieldsFunc(dom[start+1:], func(r rune) bool { return r == ' ' || r == '>' })[0]
	end := strings.Index(dom[start:], "</"+tag+">")
	if end < 0 {
		return dom[start:]
	}
	return dom[start : start+end+len(tag)+3]
}

// TestJobsPageInBrowser: a real run (worker and sandbox in this process,
// real Redis) of two jobs: one done, with a page failed by its vendor,
// and one stopped at its budget. A person opening asynqmon's Jobs view
// with its credentials sees each job's progress, rows, spend against
// budget, the failed domain with the vendor's message, and a manifest link
// that opens the manifest.
func TestJobsPageInBrowser(t *testing.T) {
	t.Parallel()
	br := newBrowser(t)
	rds := testenv.Redis(t)
	rdb := rds.Client(t)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()

	sb := registry.Sandbox(sandbox.Options{Seed: 1})
	vendor := httptest.NewServer(sb)
	defer vendor.Close()
	env := registry.SandboxEnv(vendor.URL)
	env["DOMDETAILER_APIKEY"] = sandbox.BadCredential // the vendor refuses every call: a failed page
	lims, err := limiter.ParseLimits("dataforseo=2000/1m:30,domdetailer=2000/1m:30,xovi=2000/1m:30,domaincrawler=2000/1m:30")
	if err != nil {
		t.Fatal(err)
	}
	out := t.TempDir()
	r, err := runner.Start(ctx, runner.Config{Redis: rdb, SinkURL: "file://" + out, Concurrency: 8, Limits: lims,
		Getenv: func(k string) string { return env[k] }, Log: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Shutdown()
	client := asynq.NewClientFromRedisClient(rdb)
	defer client.Close()
	store := tasks.NewStore(rdb)
	sub := &tasks.Submitter{Store: store, Client: client}
	submit := func(job string, spec tasks.Spec, budget map[string]float64, domains ...string) {
		b, err := sub.Begin(ctx, job, spec, nil)
		if err != nil {
			t.Fatal(err)
		}
		b.SetBudget(budget)
		for _, d := range domains {
			if err := b.Add(ctx, d); err != nil {
				t.Fatal(err)
			}
		}
		if _, err := b.Close(ctx); err != nil {
			t.Fatal(err)
		}
	}
	backlinks := func(providers ...string) tasks.Spec {
		s := tasks.Spec{Providers: providers, Endpoints: map[string][]string{}}
		for _, p := range providers {
			s.Endpoints[p] = []string{"backlinks"}
		}
		return s
	}
	// rows-2500 is three DataForSEO pages of at most 1000 rows; DomDetailer's one page fails.
	submit("jp-done", backlinks("dataforseo", "domdetailer"), map[string]float64{"dataforseo": 10}, "rows-2500.example")
	// A budget smaller than one page's reservation: the job stops at once.
	submit("jp-budget", backlinks("dataforseo"), map[string]float64{"dataforseo": 0.01}, "rows-1500.example")
	done := waitState(ctx, t, store, "jp-done", "done")
	waitState(ctx, t, store, "jp-budget", "budget")
	if done.Ended != 4 || done.Tasks != 4 || done.Failed != 1 || done.Records != 2500 {
		t.Fatalf("jp-done ended as %+v; want 4 pages, 1 failed, 2500 rows", done)
	}

	const user, pass = "viewer", "pw-jobs-9f3e-secret"
	srv, err := newServer(config{RedisURL: rds.URL, Addr: "127.0.0.1:0", BasicAuth: user + ":" + pass, ReadOnly: true, Sink: "file://" + out},
		slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	ts := httptest.NewServer(srv.Handler)
	defer func() { ts.Close(); _ = srv.Close() }()
	authed := strings.Replace(ts.URL, "http://", "http://"+user+":"+pass+"@", 1)

	// One job's page.
	dom := br.dom(authed + "/jobs/jp-done")
	seen := text(dom)
	t.Logf("jp-done as the browser shows it: %s", seen)
	for _, want := range []string{
		"Job jp-done done",
		"4 / 4 pages ended (100 %), 0 open",
		"2500 rows written",
		"Failed pages 1",
		// 3 calls at 0.02 USD and 2500 rows at 0.00003 USD
		"dataforseo: 0.135 usd of 10 usd budget",
		"Calls per minute",
		"ETA done",
		"Manifest jobs/jp-done/manifest.json",
	} {
		if !strings.Contains(seen, want) {
			t.Errorf("the job page does not show %q", want)
		}
	}
	row := element(dom, "failed")
	if !strings.Contains(row, "rows-2500.example") || !strings.Contains(row, "API key not found or inactive") ||
		!strings.Contains(text(row), "domdetailer backlinks rows-2500.example 1") {
		t.Errorf("failed pages do not show the domain with the vendor's message: %s", text(row))
	}
	if strings.Contains(dom, pass) {
		t.Error("the page shows the password")
	}
	link := element(dom, "manifest-link")
	if !strings.Contains(link, `href="/jobs/jp-done/manifest.json"`) {
		t.Fatalf("no manifest link: %q", link)
	}
	var manifest struct {
		JobID string `json:"job_id"`
	}
	if err := json.Unmarshal([]byte(text(br.dom(authed+"/jobs/jp-done/manifest.json"))), &manifest); err != nil || manifest.JobID != "jp-done" {
		t.Errorf("the manifest link opens %+v (%v), want the job's manifest", manifest, err)
	}
	shot := br.screenshot(authed+"/jobs/jp-done", "jobs-jp-done.png")
	if data, _ := os.ReadFile(shot); len(data) < 8 || string(data[1:4]) != "PNG" {
		t.Errorf("%s is not a PNG", shot)
	}

	// The list: both jobs, the budget stop said in words.
	seen = text(br.dom(authed + "/jobs"))
	t.Logf("the jobs list as the browser shows it: %s", seen)
	for _, want := range []string{"jp-done done 4 / 4 2500 1 dataforseo: 0.135 usd of 10 usd budget",
		"jp-budget budget 0 / 1 0 0 dataforseo: 0 usd of 0.01 usd budget", "stopped: waits for a larger budget"} {
		if !strings.Contains(seen, want) {
			t.Errorf("the jobs list does not show %q", want)
		}
	}
	seen = text(br.dom(authed + "/jobs/jp-budget"))
	if !strings.Contains(seen, "a larger budget for dataforseo: 0 usd spent of 0.01 usd") {
		t.Errorf("the budget-stopped job does not say what it waits for: %s", seen)
	}
	br.screenshot(authed+"/jobs", "jobs-list.png")

	// Without the credentials the browser is shown nothing of the jobs.
	if seen = text(br.dom(ts.URL + "/jobs/jp-done")); strings.Contains(seen, "jp-done") || strings.Contains(seen, "rows-2500") {
		t.Errorf("without credentials the browser shows: %s", seen)
	}
}

func waitState(ctx context.Context, t *testing.T, store *tasks.Store, job, state string) *tasks.Status {
	t.Helper()
	for {
		st, err := store.Status(ctx, job)
		if err == nil && st.State == state {
			return st
		}
		select {
		case <-ctx.Done():
			t.Fatalf("job %s not %s in time: %+v (%v)", job, state, st, err)
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// TestJobsPageInBrowserEscapes: a vendor's message that is markup is shown
// as text by a browser: no element, no script run.
func TestJobsPageInBrowserEscapes(t *testing.T) {
	t.Parallel()
	br := newBrowser(t)
	ts := testView(fakeJobs(), nil, time.Date(2026, 12, 1, 10, 5, 0, 0, time.UTC))
	defer ts.Close()
	dom := br.dom(ts.URL + "/jobs/run-1")
	failed := element(dom, "failed")
	if strings.Contains(failed, "<img") || strings.Contains(failed, "<script") || strings.Contains(dom, "data-pwned") ||
		strings.Contains(dom, "<title>pwned") {
		t.Fatalf("the vendor's message became markup:\n%s", failed)
	}
	if !strings.Contains(text(failed), `evil.example 1 </td><script>document.title="pwned"</script><img src=x onerror="document.body.dataset.pwned=1">&amp; "quoted"`) {
		t.Errorf("the vendor's message is not shown as it came: %s", text(failed))
	}
}
