package tests

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/linkharvest/linkharvest/internal/testenv"
	"github.com/linkharvest/linkharvest/sink"
	"github.com/linkharvest/linkharvest/tasks"
)

// The fault suite (make test-faults): each case runs a job through worker
// processes while something breaks, and ends in the same proof: the job
// completes, every row the sandbox serves is in the output exactly once,
// the manifest agrees, _SUCCESS is last.

func faultsEnabled(t *testing.T) {
	if os.Getenv("LINKHARVEST_FAULTS") != "1" {
		t.Skip("fault suite: run with LINKHARVEST_FAULTS=1 (make test-faults)")
	}
}

// faultRig is one job's world: Redis, a bucket, the sandbox, workers.
type faultRig struct {
	t       *testing.T
	redis   *testenv.RedisServer
	s3      *testenv.S3
	base    string
	sinkURL string
	env     []string
	workers []*proc
	domains []string
	file    string
}

func newFaultRig(t *testing.T, s3 *testenv.S3, nDomains int, sandboxArgs ...string) *faultRig {
	t.Helper()
	r := &faultRig{t: t, redis: testenv.Redis(t), s3: s3}
	s3.Setenv(t)
	r.base, _ = startSandbox(t, sandboxArgs...)
	r.sinkURL = s3.SinkURL("faults")
	r.env = append(append(s3.Env(), vendorEnv(r.base)...), "REDIS_URL="+r.redis.URL, "SINK_URL="+r.sinkURL,
		"METRICS_ADDR=", "WORKER_CONCURRENCY=20", "RETRY_BASE_DELAY=200ms", "WORKER_SHUTDOWN_TIMEOUT=5s")
	var b strings.Builder
	r.domains = []string{"rows-0.example", "rows-1.example", "rows-2500.example", "rows-25000.example"}
	for i := 0; len(r.domains) < nDomains; i++ {
		r.domains = append(r.domains, fmt.Sprintf("f%04d.example.com", i))
	}
	for _, d := range r.domains {
		b.WriteString(d + "\n")
	}
	r.file = filepath.Join(t.TempDir(), "domains.txt")
	if err := os.WriteFile(r.file, []byte(b.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	return r
}

func (r *faultRig) startWorkers(n int) {
	for i := 0; i < n; i++ {
		r.workers = append(r.workers, start(r.t, r.env, "worker"))
	}
}

type enqueueResult struct {
	stdout, stderr string
	code           int
}

// enqueueAsync runs `enqueue --wait --json` in the background.
func (r *faultRig) enqueueAsync(job string, extra ...string) (*proc, <-chan enqueueResult) {
	args := append([]string{"--job", job, "--wait", "--json"}, extra...)
	p := start(r.t, r.env, "enqueue", append(args, r.file)...)
	ch := make(chan enqueueResult, 1)
	go func() {
		<-p.done
		code := 0
		if p.err != nil {
			code = p.cmd.ProcessState.ExitCode()
		}
		out := p.out.String()
		ch <- enqueueResult{stdout: out, stderr: out, code: code}
	}()
	return p, ch
}

func (r *faultRig) wait(ch <-chan enqueueResult, d time.Duration) enqueueResult {
	r.t.Helper()
	select {
	case res := <-ch:
		return res
	case <-time.After(d):
		r.t.Fatalf("the job did not finish within %v", d)
	}
	return enqueueResult{}
}

// waitProgress blocks until the job has ended at least n pages.
func (r *faultRig) waitProgress(job string, n int64, d time.Duration) {
	r.t.Helper()
	store := tasks.NewStore(r.redis.Client(r.t))
	deadline := time.Now().Add(d)
	for time.Now().Before(deadline) {
		if st, err := store.Status(context.Background(), job); err == nil && st.Ended >= n {
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
	r.t.Fatalf("job %s did not reach %d pages within %v", job, n, d)
}

func (r *faultRig) proof(job string) int64 {
	r.t.Helper()
	snk, err := sink.Open(context.Background(), r.sinkURL)
	if err != nil {
		r.t.Fatal(err)
	}
	expected := map[string]map[string][]string{"dataforseo/backlinks": expectedRows(r.t, r.base, "dataforseo", "backlinks", nil, r.domains)}
	rows := verifyOutput(r.t, snk, job, expected, 0)
	if !r.t.Failed() {
		r.t.Logf("proof: %d domains, %d rows expected, %d written, 0 duplicated, 0 lost", len(r.domains), rows, rows)
	}
	return rows
}

func TestFaultWorkerCrash(t *testing.T) {
	faultsEnabled(t)
	r := newFaultRig(t, testenv.MinIO(t), 500, "--latency", "50ms")
	r.startWorkers(3)
	_, done := r.enqueueAsync("crash")
	deadline := time.After(8 * time.Minute)
	kills := 0
	for {
		select {
		case res := <-done:
			if res.code != 0 {
				t.Fatalf("enqueue exit %d\n%s", res.code, tail(res.stdout, 3000))
			}
			rows := r.proof("crash")
			t.Logf("%d SIGKILLs; %d rows exactly once", kills, rows)
			if kills == 0 {
				t.Error("the job ended before any worker was killed")
			}
			return
		case <-deadline:
			t.Fatal("the job did not finish")
		case <-time.After(10 * time.Second):
			i := kills % len(r.workers)
			r.workers[i].kill()
			r.workers[i] = start(t, r.env, "worker")
			kills++
		}
	}
}

func TestFaultGracefulStop(t *testing.T) {
	faultsEnabled(t)
	r := newFaultRig(t, testenv.MinIO(t), 300, "--latency", "300ms")
	r.startWorkers(2)
	_, done := r.enqueueAsync("graceful")
	r.waitProgress("graceful", 20, 2*time.Minute)
	// Every worker is told to stop mid-job; each must exit within its
	// shutdown timeout (5 s) plus a margin.
	for _, w := range r.workers {
		_ = w.cmd.Process.Signal(sigterm)
	}
	limit := time.After(15 * time.Second)
	for _, w := range r.workers {
		select {
		case <-w.done:
			if w.err != nil {
				t.Errorf("worker exited with %v after SIGTERM", w.err)
			}
		case <-limit:
			t.Fatal("a worker ran past its grace period")
		}
	}
	r.workers = nil
	r.startWorkers(2)
	res := r.wait(done, 6*time.Minute)
	if res.code != 0 {
		t.Fatalf("enqueue exit %d\n%s", res.code, tail(res.stdout, 3000))
	}
	r.proof("graceful")
}

func TestFaultRedisRestart(t *testing.T) {
	faultsEnabled(t)
	r := newFaultRig(t, testenv.MinIO(t), 300, "--latency", "100ms")
	r.startWorkers(2)
	_, done := r.enqueueAsync("redis-restart")
	r.waitProgress("redis-restart", 20, 2*time.Minute)
	r.redis.Stop(t)
	time.Sleep(5 * time.Second)
	r.redis.Start(t)
	res := r.wait(done, 6*time.Minute)
	if res.code != 0 {
		t.Fatalf("enqueue exit %d\n%s", res.code, tail(res.stdout, 3000))
	}
	r.proof("redis-restart")
	for _, w := range r.workers {
		w.stop(t, 20*time.Second) // still alive after the restart
	}
}

func TestFaultS3Outage(t *testing.T) {
	faultsEnabled(t)
	s3 := testenv.OwnMinIO(t)
	r := newFaultRig(t, s3, 200, "--latency", "100ms")
	r.startWorkers(2)
	_, done := r.enqueueAsync("s3-outage")
	r.waitProgress("s3-outage", 10, 2*time.Minute)
	s3.Stop(t)
	time.Sleep(30 * time.Second)
	s3.Start(t)
	res := r.wait(done, 8*time.Minute)
	if res.code != 0 {
		t.Fatalf("enqueue exit %d\n%s", res.code, tail(res.stdout, 3000))
	}
	calls := sandboxStats(t, r.base)["dataforseo"].Calls
	rows := r.proof("s3-outage")
	// Pages fetched while the sink was down were kept, not fetched again:
	// the vendor saw one call per page (the sandbox injects no failure here).
	var man tasks.Manifest
	snk, _ := sink.Open(context.Background(), r.sinkURL)
	b, _ := snk.Get(context.Background(), sink.ManifestKey("s3-outage"))
	_ = json.Unmarshal(b, &man)
	if int64(man.Totals.Tasks) != calls {
		t.Errorf("the vendor saw %d calls for %d pages: pages were fetched again", calls, man.Totals.Tasks)
	}
	t.Logf("%d rows exactly once, %d calls for %d pages", rows, calls, man.Totals.Tasks)
}

// TestFaultVendorStorm: 30 % of calls fail (throttles, 5xx, timeouts,
// truncated or malformed bodies, dropped connections) and a page may fail
// only once more: pages that stay broken are listed as failed with the
// vendor's error, every other row is written exactly once.
func TestFaultVendorStorm(t *testing.T) {
	faultsEnabled(t)
	r := newFaultRig(t, testenv.MinIO(t), 150, "--fail", "0.3", "--seed", "3")
	r.startWorkers(2)
	_, done := r.enqueueAsync("storm", "--max-retries", "1")
	res := r.wait(done, 6*time.Minute)
	if res.code != 1 && res.code != 0 {
		t.Fatalf("enqueue exit %d\n%s", res.code, tail(res.stdout, 3000))
	}
	snk, err := sink.Open(context.Background(), r.sinkURL)
	if err != nil {
		t.Fatal(err)
	}
	b, err := snk.Get(context.Background(), sink.ManifestKey("storm"))
	if err != nil {
		t.Fatal(err)
	}
	var man tasks.Manifest
	if err := json.Unmarshal(b, &man); err != nil {
		t.Fatal(err)
	}
	// The reference rows, minus the pages the manifest lists as failed.
	clean, _ := startSandbox(t, "--seed", "3")
	all := expectedRows(t, clean, "dataforseo", "backlinks", nil, r.domains)
	failedPages := 0
	expected := map[string][]string{}
	for _, o := range man.Outcomes {
		rows := all[o.Domain]
		if o.Status != "failed" {
			expected[o.Domain] = rows
			continue
		}
		if o.Error == "" || len(o.FailedPages) == 0 {
			t.Errorf("failed outcome without the vendor's error or pages: %+v", o)
		}
		failed := map[int]bool{}
		for _, p := range o.FailedPages {
			failed[p] = true
			failedPages++
		}
		// A failed first page plans nothing after it; a failed cursor page
		// (past offset 20,000) ends its chain.
		cut := 1 << 30
		for p := range failed {
			if p == 1 || p > 21 {
				cut = min(cut, p)
			}
		}
		var keep []string
		for i, row := range rows {
			if p := i/1000 + 1; !failed[p] && p < cut {
				keep = append(keep, row)
			}
		}
		if keep == nil {
			keep = []string{}
		}
		expected[o.Domain] = keep
	}
	if failedPages == 0 {
		t.Fatal("no page stayed broken: the storm tested nothing")
	}
	if res.code != 1 {
		t.Errorf("enqueue exit %d with failed pages, want 1", res.code)
	}
	if man.Totals.Failed == 0 {
		t.Error("manifest totals count no failure")
	}
	verifyStormOutput(t, snk, "storm", expected)
	t.Logf("%d pages failed for good and are listed; the rest exactly once", failedPages)
}

// verifyStormOutput is verifyOutput where a domain may have failed pages
// (its outcome is "failed", not ok/empty).
func verifyStormOutput(t *testing.T, snk *sink.Sink, job string, expected map[string][]string) {
	t.Helper()
	objs, err := snk.List(context.Background(), "")
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]map[string]int{}
	for _, o := range objs {
		if !strings.Contains(o.Key, "/job="+job+"/") {
			continue
		}
		body, err := snk.Get(context.Background(), o.Key)
		if err != nil {
			t.Fatal(err)
		}
		recs, err := sink.DecodePage(body)
		if err != nil {
			t.Fatal(err)
		}
		for _, rec := range recs {
			if got[rec.Domain] == nil {
				got[rec.Domain] = map[string]int{}
			}
			got[rec.Domain][compact(t, rec.Raw)]++
		}
	}
	dups, lost := 0, 0
	for d, rows := range expected {
		for _, row := range rows {
			switch got[d][row] {
			case 0:
				lost++
			case 1:
			default:
				dups++
			}
		}
		if len(got[d]) != len(rows) {
			t.Errorf("%s: %d distinct rows written, want %d", d, len(got[d]), len(rows))
		}
	}
	if dups != 0 || lost != 0 {
		t.Errorf("%d rows duplicated, %d lost", dups, lost)
	}
}
