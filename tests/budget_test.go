package tests

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/linkharvest/linkharvest/internal/testenv"
	"github.com/linkharvest/linkharvest/sink"
	"github.com/linkharvest/linkharvest/tasks"
)

// TestBudgetEndToEnd: two workers on the sandbox, 120 domains of 2500 rows
// (three pages each: 0.05 + 0.05 + 0.035 USD at DataForSEO's price, 16.20
// for the list). Under a third of that the job stops at its budget (exit
// 4) having spent, by the sandbox's own cost, at most the budget and at
// least the budget minus one page's price; raised, the same job finishes
// with every row exactly once, and in all it cost no more than one full run.
func TestBudgetEndToEnd(t *testing.T) {
	rds := testenv.Redis(t)
	s3 := testenv.MinIO(t)
	s3.Setenv(t)
	base, _ := startSandbox(t)
	sinkURL := s3.SinkURL("budget")
	env := append(append(s3.Env(), vendorEnv(base)...), "REDIS_URL="+rds.URL, "SINK_URL="+sinkURL, "METRICS_ADDR=", "WORKER_CONCURRENCY=10")
	m1, m2 := fmt.Sprintf("127.0.0.1:%d", testenv.FreePort(t)), fmt.Sprintf("127.0.0.1:%d", testenv.FreePort(t))
	w1 := start(t, append(env, "METRICS_ADDR="+m1), "worker")
	w2 := start(t, append(env, "METRICS_ADDR="+m2), "worker")

	var domains []string
	var b strings.Builder
	for i := range 120 {
		d := fmt.Sprintf("rows-2500.budget-%03d.example", i)
		domains = append(domains, d)
		b.WriteString(d + "\n")
	}
	file := filepath.Join(t.TempDir(), "domains.txt")
	if err := os.WriteFile(file, []byte(b.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	const (
		job      = "e2e-budget"
		fullRun  = 120 * (0.05 + 0.05 + 0.035)
		budget   = fullRun / 3
		pageMost = 0.05 // a page of 1000 rows
		eps      = 1e-6
	)
	type summary struct {
		State   string             `json:"state"`
		Records int64              `json:"records"`
		Failed  int                `json:"failed"`
		Spend   map[string]float64 `json:"spend"`
		Budget  map[string]float64 `json:"budget"`
	}
	stdout, stderr, code := runCmd(t, env, nil, 3*time.Minute, "enqueue", "--job", job, "--budget", fmt.Sprint(budget), "--wait", "--json", file)
	var sum summary
	lastJSON(t, stdout, &sum)
	cost := sandboxStats(t, base)["dataforseo"].Cost
	t.Logf("stopped: exit %d, state %s, spend %v of %v, sandbox cost %.6f", code, sum.State, sum.Spend, sum.Budget, cost)
	if code != 4 || sum.State != "budget" || sum.Failed != 0 {
		t.Fatalf("exit %d, summary %+v; want exit 4, state budget, nothing failed\nstdout: %s\nstderr: %s", code, sum, tail(stdout, 2000), tail(stderr, 2000))
	}
	if cost > budget+eps || cost < budget-pageMost-eps {
		t.Errorf("the sandbox charged %.6f under a budget of %.6f: want between the budget minus a page (%.2f) and the budget", cost, budget, pageMost)
	}
	if d := sum.Spend["dataforseo"] - cost; d > eps || d < -eps || sum.Budget["dataforseo"] != budget {
		t.Errorf("summary spend %v budget %v; the sandbox charged %.6f", sum.Spend, sum.Budget, cost)
	}
	if !strings.Contains(stdout, fmt.Sprintf("spent %s", strings.TrimRight(strings.TrimRight(fmt.Sprintf("%.6f", cost), "0"), "."))) {
		t.Errorf("the output does not say how much was spent:\n%s", tail(stdout, 1500))
	}

	// Raised to more than the rest needs: the same pages go on, and a
	// resubmission without --budget keeps it.
	stdout, stderr, code = runCmd(t, env, nil, 30*time.Second, "enqueue", "budget", job, fmt.Sprint(fullRun*1.5))
	if code != 0 {
		t.Fatalf("enqueue budget: exit %d\n%s\n%s", code, stdout, stderr)
	}
	stdout, stderr, code = runCmd(t, env, nil, 3*time.Minute, "enqueue", "--job", job, "--wait", "--json", file)
	lastJSON(t, stdout, &sum)
	if code != 0 || sum.State != "done" || sum.Budget["dataforseo"] != fullRun*1.5 {
		t.Fatalf("after raising: exit %d, summary %+v\nstdout: %s\nstderr: %s", code, sum, tail(stdout, 2000), tail(stderr, 2000))
	}
	cost = sandboxStats(t, base)["dataforseo"].Cost
	t.Logf("finished: spend %v, sandbox cost %.6f, a full run %.2f", sum.Spend, cost, fullRun)
	if cost > fullRun+eps {
		t.Errorf("the job cost %.6f in all, more than one full run (%.2f)", cost, fullRun)
	}
	if d := sum.Spend["dataforseo"] - cost; d > eps || d < -eps {
		t.Errorf("ledger %v, the sandbox charged %.6f", sum.Spend, cost)
	}

	// Each worker counts the pages it wrote: together, the ledger.
	metric := scrapeSpend(t, m1) + scrapeSpend(t, m2)
	if d := metric - cost; d > eps || d < -eps {
		t.Errorf("linkharvest_spend_total of the two workers: %.6f; the sandbox charged %.6f", metric, cost)
	}

	snk, err := sink.Open(context.Background(), sinkURL)
	if err != nil {
		t.Fatal(err)
	}
	expected := map[string]map[string][]string{"dataforseo/backlinks": expectedRows(t, base, "dataforseo", "backlinks", nil, domains)}
	if got := verifyOutput(t, snk, job, expected, 0); got != 120*2500 || sum.Records != got {
		t.Errorf("output holds %d rows, summary %d; want %d", got, sum.Records, 120*2500)
	}
	// The manifest: spend per outcome (three pages: 0.135) and per provider.
	raw, err := snk.Get(context.Background(), sink.ManifestKey(job))
	if err != nil {
		t.Fatal(err)
	}
	var man tasks.Manifest
	if err := json.Unmarshal(raw, &man); err != nil {
		t.Fatal(err)
	}
	if d := man.Spend["dataforseo"] - cost; d > eps || d < -eps || man.Budget["dataforseo"] != fullRun*1.5 {
		t.Errorf("manifest spend %v budget %v; the sandbox charged %.6f", man.Spend, man.Budget, cost)
	}
	for _, o := range man.Outcomes {
		if d := o.Spend - 0.135; d > eps || d < -eps {
			t.Errorf("outcome %s spend %.6f, want 0.135", o.Domain, o.Spend)
			break
		}
	}
	w1.stop(t, 40*time.Second)
	w2.stop(t, 40*time.Second)
}

// scrapeSpend reads linkharvest_spend_total{provider="dataforseo"} from a
// worker's /metrics.
func scrapeSpend(t *testing.T, addr string) float64 {
	t.Helper()
	resp, err := http.Get("http://" + addr + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	sum := 0.0
	for _, line := range strings.Split(string(body), "\n") {
		if !strings.HasPrefix(line, "linkharvest_spend_total{") || !strings.Contains(line, `provider="dataforseo"`) {
			continue
		}
		if !strings.Contains(line, `unit="usd"`) {
			t.Errorf("spend metric without the unit: %s", line)
		}
		f := strings.Fields(line)
		v, err := strconv.ParseFloat(f[len(f)-1], 64)
		if err != nil {
			t.Fatalf("%s: %v", line, err)
		}
		sum += v
	}
	return sum
}
