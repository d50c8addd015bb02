package main

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/linkharvest/linkharvest/internal/testenv"
	"github.com/linkharvest/linkharvest/providers"
	"github.com/linkharvest/linkharvest/providers/registry"
	"github.com/linkharvest/linkharvest/providers/sandbox"
)

func TestPagesFor(t *testing.T) {
	t.Parallel()
	offset := providers.Paging{Kind: providers.PagingOffset, PageSize: 1000, MaxOffset: 20000, CursorPastMax: true}
	for _, tc := range []struct {
		n, maxRows  int
		pg          providers.Paging
		calls, rows int
	}{
		{2500, 0, offset, 3, 2500},
		{2000, 0, offset, 2, 2000},
		{0, 0, offset, 1, 0}, // the first call is made whatever the count
		{50000, 0, offset, 50, 50000},
		{2500, 1500, offset, 2, 1500},
		{2500, 300, offset, 1, 300},
		{100, 300, offset, 1, 100},
		{2500, 0, providers.Paging{Kind: providers.PagingNone}, 1, 1},
	} {
		if c, r := pagesFor(tc.n, tc.maxRows, tc.pg); c != tc.calls || r != tc.rows {
			t.Errorf("pagesFor(%d, max %d, %v) = %d calls %d rows, want %d %d", tc.n, tc.maxRows, tc.pg.Kind, c, r, tc.calls, tc.rows)
		}
	}
}

// TestDryRunEstimate: the estimate counts at DataForSEO one call per
// thousand domains, reckons the calls and money from the counts, the page
// size and --max-rows, gives the lower bound where a vendor has no count,
// and reports what the counting cost as the sandbox billed it.
func TestDryRunEstimate(t *testing.T) {
	sb := registry.Sandbox(sandbox.Options{Seed: 1})
	srv := httptest.NewServer(sb)
	t.Cleanup(srv.Close)
	for k, v := range registry.SandboxEnv(srv.URL) {
		t.Setenv(k, v)
	}
	t.Setenv("PROVIDER_PRICES", "")
	var b strings.Builder
	const n = 2001 // three counting calls: 1000, 1000, 1
	for i := range n {
		fmt.Fprintf(&b, "rows-%d.est-%04d.example\n", 500*(i%6), i) // 0, 500, ..., 2500 rows
	}
	list := filepath.Join(t.TempDir(), "d.txt")
	if err := os.WriteFile(list, []byte(b.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	code, out, errs := runEnqueue(t, "--dry-run", "--estimate", "--json", "--max-rows", "2000",
		"--provider", "dataforseo,xovi", "--endpoint", "backlinks", list)
	if code != exitOK {
		t.Fatalf("exit %d\n%s%s", code, out, errs)
	}
	var sum struct {
		Calls          int64              `json:"estimated_calls"`
		EstimatedSpend map[string]float64 `json:"estimated_spend"`
		EstimateSpend  map[string]float64 `json:"estimate_spend"`
		State          string             `json:"state"`
	}
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if err := json.Unmarshal([]byte(lines[len(lines)-1]), &sum); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	// Per domain at DataForSEO, under --max-rows 2000: rows 0, 500, ...,
	// 2000, 2000; calls 1, 1, 1, 2, 2, 2.
	var calls int64
	var money float64
	for i := range n {
		rows := min(500*(i%6), 2000)
		c := max((rows+999)/1000, 1)
		calls += int64(c)
		money += 0.02*float64(c) + 0.00003*float64(rows)
	}
	if sum.Calls != calls+n || math.Abs(sum.EstimatedSpend["dataforseo"]-money) > 1e-6 || sum.EstimatedSpend["xovi"] != n {
		t.Errorf("estimated %d calls, spend %v; want %d calls (%d at xovi), dataforseo %.6f, xovi %d\n%s", sum.Calls, sum.EstimatedSpend, calls+n, n, money, n, out)
	}
	st := sb.Stats()["dataforseo"]
	wantCost := 3*0.02 + n*0.00003
	if st.Calls != 3 || math.Abs(st.Cost-wantCost) > 1e-9 || math.Abs(sum.EstimateSpend["dataforseo"]-st.Cost) > 1e-9 {
		t.Errorf("the sandbox saw %d calls costing %v; the estimate says it cost %v; want 3 calls, %v", st.Calls, st.Cost, sum.EstimateSpend, wantCost)
	}
	if sb.Stats()["xovi"].Calls != 0 {
		t.Error("the estimate called xovi")
	}
	for _, want := range []string{"estimate dataforseo: ", "estimate xovi: at least 2001 calls", "no cheap count", "the estimate cost 0.12003 usd: 3 bulk_backlinks call(s)"} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}

	// Without credentials it says what it needs; without --dry-run it is
	// refused; with --dev and no base URL it asks the built-in sandbox.
	t.Setenv("DATAFORSEO_LOGIN", "")
	if code, _, errs := runEnqueue(t, "--dry-run", "--estimate", list); code != exitUsage || !strings.Contains(errs, "DATAFORSEO_LOGIN") {
		t.Errorf("no credentials: exit %d, %s", code, errs)
	}
	if code, _, errs := runEnqueue(t, "--estimate", list); code != exitUsage || !strings.Contains(errs, "--dry-run") {
		t.Errorf("--estimate alone: exit %d, %s", code, errs)
	}
	for _, k := range []string{"DATAFORSEO_BASE_URL", "DOMDETAILER_BASE_URL", "XOVI_BASE_URL", "DOMAINCRAWLER_BASE_URL"} {
		t.Setenv(k, "")
	}
	before := sb.Stats()["dataforseo"].Calls
	if code, out, errs := runEnqueue(t, "--dev", "--dry-run", "--estimate", list); code != exitOK || !strings.Contains(out, "the estimate cost 0.12003 usd") {
		t.Errorf("--dev: exit %d\n%s%s", code, out, errs)
	}
	if sb.Stats()["dataforseo"].Calls != before {
		t.Error("--dev asked the sandbox of the environment, not its own")
	}
}

// TestEstimateMaxRowsAgreesWithRun: under --max-rows smaller than a page,
// every page (the first too) asks for no more rows than that, so what the
// run is charged is what the estimate said.
func TestEstimateMaxRowsAgreesWithRun(t *testing.T) {
	sb := registry.Sandbox(sandbox.Options{Seed: 1})
	srv := httptest.NewServer(sb)
	t.Cleanup(srv.Close)
	for k, v := range registry.SandboxEnv(srv.URL) {
		t.Setenv(k, v)
	}
	t.Setenv("PROVIDER_PRICES", "")
	list := filepath.Join(t.TempDir(), "d.txt")
	if err := os.WriteFile(list, []byte("rows-2500.a.example\nrows-2500.b.example\nrows-100.c.example\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	var est, run struct {
		EstimatedSpend map[string]float64 `json:"estimated_spend"`
		Spend          map[string]float64 `json:"spend"`
	}
	decodeLast := func(out string, v any) {
		t.Helper()
		lines := strings.Split(strings.TrimSpace(out), "\n")
		if err := json.Unmarshal([]byte(lines[len(lines)-1]), v); err != nil {
			t.Fatalf("%v\n%s", err, out)
		}
	}
	code, out, errs := runEnqueue(t, "--dry-run", "--estimate", "--json", "--max-rows", "300", "--budget", "0.05", list)
	if code != exitOK || !strings.Contains(out, "over the budget of 0.05 usd") {
		t.Fatalf("estimate: exit %d\n%s%s", code, out, errs)
	}
	decodeLast(out, &est)
	code, out, errs = runEnqueue(t, "--dev", "--sink", t.TempDir(), "--json", "--max-rows", "300", list)
	if code != exitOK {
		t.Fatalf("run: exit %d\n%s%s", code, out, errs)
	}
	decodeLast(out, &run)
	want := 2*(0.02+300*0.00003) + (0.02 + 100*0.00003)
	if math.Abs(est.EstimatedSpend["dataforseo"]-want) > 1e-9 || math.Abs(run.Spend["dataforseo"]-want) > 1e-9 {
		t.Errorf("estimated %v, the run spent %v; want %v for both", est.EstimatedSpend, run.Spend, want)
	}
}

// TestEstimateThroughSharedLimiter: with Redis named, the counting calls
// take the shared limiter's capacity as the workers' calls do; with a
// Redis that does not answer, the estimate says so and goes on.
func TestEstimateThroughSharedLimiter(t *testing.T) {
	rds := testenv.Redis(t)
	sb := registry.Sandbox(sandbox.Options{Seed: 1})
	srv := httptest.NewServer(sb)
	t.Cleanup(srv.Close)
	for k, v := range registry.SandboxEnv(srv.URL) {
		t.Setenv(k, v)
	}
	t.Setenv("PROVIDER_PRICES", "")
	t.Setenv("PROVIDER_LIMITS", "")
	list := filepath.Join(t.TempDir(), "d.txt")
	if err := os.WriteFile(list, []byte("rows-10.a.example\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	code, out, errs := runEnqueue(t, "--redis", rds.URL, "--dry-run", "--estimate", list)
	if code != exitOK || strings.Contains(errs, "around the shared limiter") {
		t.Fatalf("exit %d\n%s%s", code, out, errs)
	}
	keys, err := rds.Client(t).Keys(context.Background(), "*lh:limit:dataforseo*").Result()
	if err != nil || len(keys) == 0 {
		t.Errorf("no shared limiter state in Redis after the estimate (%v): %v", err, keys)
	}
	code, out, errs = runEnqueue(t, "--redis", "redis://127.0.0.1:1/0", "--dry-run", "--estimate", list)
	if code != exitOK || !strings.Contains(errs, "around the shared limiter") || !strings.Contains(out, "estimate dataforseo: 1 calls") {
		t.Errorf("redis away: exit %d\n%s%s", code, out, errs)
	}
}
