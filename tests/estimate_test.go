package tests

import (
	"fmt"
	"io"
	"math"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/linkharvest/linkharvest/internal/testenv"
)

// TestEstimateEndToEnd: `enqueue --dry-run --estimate` of 120 domains of
// 2500 rows asks the sandbox for their counts in one bulk call, and what it
// predicts is within 2 % of what the full run then costs by the sandbox's
// own cost, two workers fetching it; the estimate's own cost is what the
// sandbox charged for the bulk call.
func TestEstimateEndToEnd(t *testing.T) {
	rds := testenv.Redis(t)
	base, _ := startSandbox(t)
	out := t.TempDir()
	env := append(vendorEnv(base), "REDIS_URL="+rds.URL, "SINK_URL="+out, "WORKER_CONCURRENCY=10")

	var b strings.Builder
	for i := range 120 {
		fmt.Fprintf(&b, "rows-2500.estimate-%03d.example\n", i)
	}
	file := filepath.Join(t.TempDir(), "domains.txt")
	if err := os.WriteFile(file, []byte(b.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	type summary struct {
		State          string             `json:"state"`
		Calls          int64              `json:"estimated_calls"`
		EstimatedSpend map[string]float64 `json:"estimated_spend"`
		EstimateSpend  map[string]float64 `json:"estimate_spend"`
		Spend          map[string]float64 `json:"spend"`
		Records        int64              `json:"records"`
	}
	stdout, stderr, code := runCmd(t, env, nil, time.Minute, "enqueue", "--dry-run", "--estimate", "--json", file)
	var est summary
	lastJSON(t, stdout, &est)
	st := sandboxStats(t, base)["dataforseo"]
	t.Logf("estimate: %d calls, %v; it cost %v (sandbox: %d calls, %.6f)\n%s", est.Calls, est.EstimatedSpend, est.EstimateSpend, st.Calls, st.Cost, stdout)
	if code != 0 || est.State != "dry-run" {
		t.Fatalf("exit %d, %+v\n%s", code, est, stderr)
	}
	if st.Calls != 1 || math.Abs(est.EstimateSpend["dataforseo"]-st.Cost) > 1e-9 || st.Cost <= 0 {
		t.Errorf("the estimate made %d calls costing %.6f; it reports %v; want one bulk call, its cost reported", st.Calls, st.Cost, est.EstimateSpend)
	}
	if !strings.Contains(stdout, "estimate dataforseo: 360 calls") {
		t.Errorf("the estimate does not say 360 calls (three pages of 120 domains):\n%s", stdout)
	}
	resetStats(t, base)

	m1, m2 := fmt.Sprintf("127.0.0.1:%d", testenv.FreePort(t)), fmt.Sprintf("127.0.0.1:%d", testenv.FreePort(t))
	w1 := start(t, append(env, "METRICS_ADDR="+m1), "worker")
	w2 := start(t, append(env, "METRICS_ADDR="+m2), "worker")
	stdout, stderr, code = runCmd(t, env, nil, 3*time.Minute, "enqueue", "--job", "e2e-estimate", "--wait", "--json", file)
	var run summary
	lastJSON(t, stdout, &run)
	cost := sandboxStats(t, base)["dataforseo"].Cost
	t.Logf("full run: exit %d, %d records, spend %v, sandbox cost %.6f", code, run.Records, run.Spend, cost)
	if code != 0 || run.State != "done" || run.Records != 120*2500 {
		t.Fatalf("exit %d, %+v\nstdout: %s\nstderr: %s", code, run, tail(stdout, 2000), tail(stderr, 2000))
	}
	if e := est.EstimatedSpend["dataforseo"]; cost <= 0 || math.Abs(e-cost)/cost > 0.02 {
		t.Errorf("estimated %.6f USD, the run cost %.6f: off by more than 2 %%", e, cost)
	}
	// The account's limit, which the dashboard draws the calls against.
	resp, err := http.Get("http://" + m1 + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if !regexp.MustCompile(`(?m)^linkharvest_limiter_limit\{[^}]*provider="dataforseo"[^}]*\} 2000$`).Match(body) {
		t.Errorf("the worker does not export linkharvest_limiter_limit{provider=\"dataforseo\"} 2000:\n%s", tail(string(body), 3000))
	}
	w1.stop(t, 40*time.Second)
	w2.stop(t, 40*time.Second)
}
