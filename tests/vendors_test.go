package tests

import (
	"context"
	"encoding/json"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hibiken/asynq"

	"github.com/linkharvest/linkharvest/internal/runner"
	"github.com/linkharvest/linkharvest/internal/testenv"
	"github.com/linkharvest/linkharvest/limiter"
	"github.com/linkharvest/linkharvest/providers/registry"
	"github.com/linkharvest/linkharvest/providers/sandbox"
	"github.com/linkharvest/linkharvest/sink"
	"github.com/linkharvest/linkharvest/tasks"
)

// allLimits gives every vendor the sandbox's limits.
var allLimits = func() string {
	var l []string
	for _, n := range registry.Names() {
		l = append(l, n+"=2000/1m:30")
	}
	return strings.Join(l, ",")
}()

// TestEndToEndAllVendors runs one job over all four vendors through two
// worker processes, Redis and MinIO: DataForSEO backlinks and summary,
// DomDetailer, XOVI, and DomainCrawler backlinks (offset pages),
// exportbacklinks (next token), a summary endpoint and a histogram.
func TestEndToEndAllVendors(t *testing.T) {
	rds := testenv.Redis(t)
	s3 := testenv.MinIO(t)
	s3.Setenv(t)
	base, _ := startSandbox(t)
	sinkURL := s3.SinkURL("vendors")
	env := append(append(s3.Env(), vendorEnv(base)...), "REDIS_URL="+rds.URL, "SINK_URL="+sinkURL,
		"METRICS_ADDR=", "WORKER_CONCURRENCY=20", "PROVIDER_LIMITS="+allLimits)
	w1 := start(t, env, "worker")
	w2 := start(t, env, "worker")

	domains := []string{"rows-0.example", "rows-3.example", "rows-2500.example", "rows-25000.example", "alpha.example.com", "beta.example.org"}
	file := filepath.Join(t.TempDir(), "domains.txt")
	if err := os.WriteFile(file, []byte(strings.Join(domains, "\n")+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	const job = "e2e-vendors"
	histFrom := json.RawMessage(`"20260101"`)
	stdout, stderr, code := runCmd(t, env, nil, 5*time.Minute, "enqueue", "--job", job, "--wait", "--json",
		"--provider", "dataforseo,domdetailer,xovi,domaincrawler",
		"--endpoint", "backlinks,summary,exportbacklinks,anabacklinks,backlinks-histogram",
		"--param", "domaincrawler.backlinks-histogram.from="+string(histFrom), file)
	if code != 0 {
		t.Fatalf("enqueue exit %d\nstdout: %s\nstderr: %s", code, stdout, stderr)
	}
	var sum struct {
		Domains int `json:"domains"`
		Failed  int `json:"failed"`
	}
	lastJSON(t, stdout, &sum)
	if sum.Domains != len(domains) || sum.Failed != 0 {
		t.Fatalf("summary %+v", sum)
	}
	expected := map[string]map[string][]string{
		"dataforseo/backlinks":              expectedRows(t, base, "dataforseo", "backlinks", nil, domains),
		"dataforseo/summary":                expectedRows(t, base, "dataforseo", "summary", nil, domains),
		"domdetailer/backlinks":             expectedRows(t, base, "domdetailer", "backlinks", nil, domains),
		"xovi/backlinks":                    expectedRows(t, base, "xovi", "backlinks", nil, domains),
		"domaincrawler/backlinks":           expectedRows(t, base, "domaincrawler", "backlinks", nil, domains),
		"domaincrawler/exportbacklinks":     expectedRows(t, base, "domaincrawler", "exportbacklinks", nil, domains),
		"domaincrawler/anabacklinks":        expectedRows(t, base, "domaincrawler", "anabacklinks", nil, domains),
		"domaincrawler/backlinks-histogram": expectedRows(t, base, "domaincrawler", "backlinks-histogram", map[string]json.RawMessage{"from": histFrom}, domains),
	}
	for pe, byDomain := range expected {
		if len(byDomain["rows-25000.example"]) == 0 && strings.HasSuffix(pe, "backlinks") {
			t.Errorf("%s: the sandbox served no rows for rows-25000.example", pe)
		}
	}
	snk, err := sink.Open(context.Background(), sinkURL)
	if err != nil {
		t.Fatal(err)
	}
	verifyOutput(t, snk, job, expected, 0)
	w1.stop(t, 40*time.Second)
	w2.stop(t, 40*time.Second)
}

// inProcess runs a sandbox and a worker node in this process.
type inProcess struct {
	base  string
	sb    *sandbox.Server
	store *tasks.Store
	sub   *tasks.Submitter
	r     *runner.Runner
	rdb   interface{ Close() error }
	sink  string
}

func startInProcess(t *testing.T, opts sandbox.Options, env map[string]string, sinkURL string) *inProcess {
	t.Helper()
	rds := testenv.Redis(t)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	sb := registry.Sandbox(opts)
	hs := &http.Server{Handler: sb}
	go hs.Serve(ln)
	t.Cleanup(func() { hs.Close() })
	base := "http://" + ln.Addr().String()
	full := registry.SandboxEnv(base)
	for k, v := range env {
		full[k] = strings.ReplaceAll(v, "{base}", base) // a value may name the sandbox's address
	}
	rdb := rds.Client(t)
	lims, err := limiter.ParseLimits(allLimits)
	if err != nil {
		t.Fatal(err)
	}
	r, err := runner.Start(context.Background(), runner.Config{Redis: rdb, SinkURL: sinkURL, Concurrency: 16, Limits: lims,
		Getenv: func(k string) string { return full[k] }, Log: slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelError}))})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(r.Shutdown)
	client := asynq.NewClientFromRedisClient(rdb)
	t.Cleanup(func() { client.Close() })
	store := tasks.NewStore(rdb)
	return &inProcess{base: base, sb: sb, store: store, sub: &tasks.Submitter{Store: store, Client: client}, r: r, sink: sinkURL}
}

func (ip *inProcess) submit(t *testing.T, job string, spec tasks.Spec, domains ...string) {
	t.Helper()
	ctx := context.Background()
	b, err := ip.sub.Begin(ctx, job, spec, nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range domains {
		if err := b.Add(ctx, d); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := b.Close(ctx); err != nil {
		t.Fatal(err)
	}
}

func oneEndpoint(provider, endpoint string) tasks.Spec {
	return tasks.Spec{Providers: []string{provider}, Endpoints: map[string][]string{provider: {endpoint}}}
}

// TestVendorAuthFailureStopsAtOnce: each vendor's auth failure is not
// retried, ends the page as failed with the vendor's message, and pauses
// the provider's queue so that the rest of the job does not burn on it.
func TestVendorAuthFailureStopsAtOnce(t *testing.T) {
	cases := []struct {
		provider, envKey, message string
	}{
		{"dataforseo", "DATAFORSEO_PASSWORD", "40100"},
		{"domdetailer", "DOMDETAILER_APIKEY", "API key not found or inactive"},
		{"xovi", "XOVI_KEY", "no permission"},
		{"domaincrawler", "DOMAINCRAWLER_PASSWORD", "401"},
	}
	for _, c := range cases {
		t.Run(c.provider, func(t *testing.T) {
			ip := startInProcess(t, sandbox.Options{Seed: 1}, map[string]string{c.envKey: "bad"}, "file://"+t.TempDir())
			ip.submit(t, "auth-"+c.provider, oneEndpoint(c.provider, "backlinks"), "rows-10.example")
			st := waitDone(t, ip.store, "auth-"+c.provider, time.Minute)
			if st.Failed != 1 {
				t.Fatalf("status %+v: want the page failed", st)
			}
			if calls := ip.sb.Stats()[c.provider].Calls; calls != 1 {
				t.Errorf("%d calls with bad credentials, want exactly 1 (no retry)", calls)
			}
			why := st.Paused[c.provider]
			if !strings.Contains(why, c.message) {
				t.Errorf("pause reason %q lacks the vendor's message %q", why, c.message)
			}
			if strings.Contains(why, "bad") && c.envKey != "" && strings.Contains(why, "=bad") {
				t.Errorf("pause reason leaks the credential: %q", why)
			}
			insp := asynq.NewInspectorFromRedisClient(ip.store.Redis())
			qi, err := insp.GetQueueInfo(c.provider)
			if err != nil || !qi.Paused {
				t.Errorf("queue %s not paused (%v)", c.provider, err)
			}
		})
	}
}

// TestVendorTransientFailuresRetried: throttles, 5xx, truncated and
// malformed bodies and dropped connections are retried until every row
// is written exactly once.
func TestVendorTransientFailuresRetried(t *testing.T) {
	for _, provider := range []string{"dataforseo", "domdetailer", "xovi", "domaincrawler"} {
		t.Run(provider, func(t *testing.T) {
			dir := t.TempDir()
			ip := startInProcess(t, sandbox.Options{Seed: 7, Fail: 0.3}, nil, "file://"+dir)
			domains := []string{"rows-1.example", "rows-2500.example", "gamma.example.com", "rows-0.example", "delta.example.com", "epsilon.example.net", "rows-1200.example", "zeta.example.org"}
			ip.submit(t, "storm-"+provider, oneEndpoint(provider, "backlinks"), domains...)
			st := waitDone(t, ip.store, "storm-"+provider, 3*time.Minute)
			if st.Failed != 0 {
				t.Fatalf("status %+v: pages failed despite retries", st)
			}
			if ip.sb.Stats()[provider].InjectedFailures == 0 {
				t.Fatal("no failure was injected")
			}
			clean := startInProcess(t, sandbox.Options{Seed: 7}, nil, "file://"+t.TempDir())
			snk, err := sink.Open(context.Background(), "file://"+dir)
			if err != nil {
				t.Fatal(err)
			}
			verifyOutput(t, snk, "storm-"+provider, map[string]map[string][]string{
				provider + "/backlinks": expectedRows(t, clean.base, provider, "backlinks", nil, domains)}, 0)
		})
	}
}
