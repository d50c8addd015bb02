package tests

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/linkharvest/linkharvest/internal/testenv"
	"github.com/linkharvest/linkharvest/sink"
)

// Fault cases of issue 12: a job ends, and ends right, whatever ends an
// enqueue (SIGKILL, Ctrl-C, Redis out of memory), when a resubmission
// grows a finished job, when the sink is down longer than any retry
// budget, and when a domain's total moves while it is paged. Each ends in
// the suite's usual proof.

// setDomains replaces the rig's list (and its file).
func (r *faultRig) setDomains(ds []string) {
	r.t.Helper()
	r.domains = ds
	if err := os.WriteFile(r.file, []byte(strings.Join(ds, "\n")+"\n"), 0o644); err != nil {
		r.t.Fatal(err)
	}
}

// expectedSkipEmpty is r.expected for lists of many rows-0 domains: the
// sandbox serves exactly N rows for a rows-N domain, so those need no
// reference call (the manifest check still requires their outcomes).
func (r *faultRig) expectedSkipEmpty() map[string][]string {
	var ask []string
	out := map[string][]string{}
	for _, d := range r.domains {
		if strings.HasPrefix(d, "rows-0.") {
			out[d] = []string{}
		} else {
			ask = append(ask, d)
		}
	}
	for d, rows := range expectedRows(r.t, r.ref, "dataforseo", "backlinks", nil, ask) {
		out[d] = rows
	}
	return out
}

// pipedEnqueue runs enqueue reading its list from a pipe the test writes.
type pipedEnqueue struct {
	cmd  *exec.Cmd
	in   io.WriteCloser
	out  *lockedBuffer
	done chan struct{}
	err  error
}

func (r *faultRig) enqueuePiped(args ...string) *pipedEnqueue {
	r.t.Helper()
	cmd := exec.Command(filepath.Join(binDir, "enqueue"), args...)
	cmd.Env = append(os.Environ(), r.env...)
	out := &lockedBuffer{}
	cmd.Stdout, cmd.Stderr = out, out
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	in, err := cmd.StdinPipe()
	if err != nil {
		r.t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		r.t.Fatal(err)
	}
	p := &pipedEnqueue{cmd: cmd, in: in, out: out, done: make(chan struct{})}
	go func() { p.err = cmd.Wait(); close(p.done) }()
	r.t.Cleanup(func() {
		select {
		case <-p.done:
		default:
			_ = cmd.Process.Kill()
			<-p.done
		}
	})
	return p
}

// waitDomains waits until the job has registered at least n domains.
func (r *faultRig) waitDomains(job string, n int64, d time.Duration) {
	r.t.Helper()
	deadline := time.Now().Add(d)
	for time.Now().Before(deadline) {
		if st := r.status(job); st.Domains >= n {
			r.logf("job %s has %d domains registered", job, st.Domains)
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
	r.t.Fatalf("job %s did not register %d domains within %v: %+v", job, n, d, r.status(job))
}

// waitState waits for the job's state.
func (r *faultRig) waitState(job, state string, d time.Duration) {
	r.t.Helper()
	deadline := time.Now().Add(d)
	for time.Now().Before(deadline) {
		if r.status(job).State == state {
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
	st := r.status(job)
	r.t.Fatalf("job %s is %q after %v, want %q (waiting for: %s)", job, st.State, d, state, st.WaitingFor())
}

func manyEmpty(n int, extra ...string) []string {
	ds := append([]string(nil), extra...)
	for i := 0; len(ds) < n; i++ {
		ds = append(ds, fmt.Sprintf("rows-0.k%06d.example", i))
	}
	return ds
}

// TestFaultEnqueueKilled: enqueue is SIGKILLed half way through a
// 150,000-line list. The job does not stay open for ever: once the dead
// submission's lease expires it ends, marked interrupted; resubmitting the
// same list under the same id completes it.
func TestFaultEnqueueKilled(t *testing.T) {
	faultsEnabled(t)
	r := newFaultRig(t, testenv.MinIO(t), 0, []string{"PROVIDER_LIMITS=dataforseo=1000000/1m:200"}, "--rate", "0", "--concurrency", "0")
	r.setDomains(manyEmpty(150_000, "rows-1.example", "rows-2500.example", "rows-25000.example"))
	r.startWorkers(2)
	p := r.enqueuePiped("--job", "killed")
	half := strings.Join(r.domains[:75_000], "\n") + "\n"
	go func() { _, _ = io.WriteString(p.in, half) }() // the rest never comes
	r.waitDomains("killed", 60_000, 2*time.Minute)
	_ = p.cmd.Process.Kill()
	<-p.done
	t1 := time.Now()
	r.logf("enqueue SIGKILLed with %d domains registered", r.status("killed").Domains)
	r.waitState("killed", "done", 3*time.Minute)
	st := r.status("killed")
	r.logf("the job ended %.0fs after the kill, interrupted=%d, %d domains", time.Since(t1).Seconds(), st.Interrupted, st.Domains)
	if st.Interrupted == 0 || !r.manifest("killed").Interrupted {
		t.Error("a job whose submission died is not marked interrupted")
	}
	res := r.wait(r.enqueueAsync("killed"), 6*time.Minute, 0)
	if !strings.Contains(res.out, `"state":"done"`) {
		t.Errorf("summary: %s", tail(res.out, 500))
	}
	if st := r.status("killed"); st.Interrupted != 0 || st.Domains != int64(len(r.domains)) || r.manifest("killed").Interrupted {
		t.Errorf("after the resubmission: interrupted %d, %d domains of %d", st.Interrupted, st.Domains, len(r.domains))
	}
	r.proofWith("enqueue-sigkill", "killed", r.expectedSkipEmpty())
}

// TestFaultEnqueueInterrupted: Ctrl-C while enqueue waits on a silent
// pipe stops it at once with the way to resume; the resubmission
// completes the job.
func TestFaultEnqueueInterrupted(t *testing.T) {
	faultsEnabled(t)
	r := newFaultRig(t, testenv.MinIO(t), 1200, nil)
	r.startWorkers(1)
	p := r.enqueuePiped("--job", "ctrl-c", "--wait")
	if _, err := io.WriteString(p.in, strings.Join(r.domains[:700], "\n")+"\n"); err != nil {
		t.Fatal(err)
	}
	r.waitDomains("ctrl-c", 512, time.Minute)
	_ = p.cmd.Process.Signal(syscall.SIGINT)
	t1 := time.Now()
	select {
	case <-p.done:
	case <-time.After(5 * time.Second):
		t.Fatalf("enqueue still reads its pipe 5 s after SIGINT\n%s", p.out.String())
	}
	r.logf("enqueue stopped %.2fs after SIGINT", time.Since(t1).Seconds())
	var ee *exec.ExitError
	if !errors.As(p.err, &ee) || ee.ExitCode() != 3 || !strings.Contains(p.out.String(), "--job ctrl-c") {
		t.Errorf("exit %v, output %q: want exit 3 and how to resume", p.err, p.out.String())
	}
	r.waitState("ctrl-c", "done", 2*time.Minute)
	if r.status("ctrl-c").Interrupted == 0 {
		t.Error("an interrupted submission is not marked")
	}
	r.wait(r.enqueueAsync("ctrl-c"), 4*time.Minute, 0)
	r.proof("enqueue-sigint", "ctrl-c")
}

// TestFaultRedisFull: Redis reaches maxmemory during a submission. enqueue
// fails with a clear message; once memory is raised, the resubmission
// completes the job.
func TestFaultRedisFull(t *testing.T) {
	faultsEnabled(t)
	r := newFaultRig(t, testenv.MinIO(t), 0, []string{"PROVIDER_LIMITS=dataforseo=1000000/1m:200"}, "--rate", "0", "--concurrency", "0")
	r.setDomains(manyEmpty(30_000, "rows-1.example", "rows-2500.example"))
	rdb := r.store.Redis()
	ctx := context.Background()
	info, err := rdb.Info(ctx, "memory").Result()
	if err != nil {
		t.Fatal(err)
	}
	var usedMem int64
	for _, l := range strings.Split(info, "\n") {
		if v, ok := strings.CutPrefix(strings.TrimSpace(l), "used_memory:"); ok {
			fmt.Sscan(v, &usedMem)
		}
	}
	limit := usedMem + 6<<20 // room for a few thousand domains, not 30,000
	if err := rdb.ConfigSet(ctx, "maxmemory", fmt.Sprint(limit)).Err(); err != nil {
		t.Fatal(err)
	}
	rdb.ConfigSet(ctx, "maxmemory-policy", "noeviction")
	r.startWorkers(2)
	out, errOut, code := runCmd(t, r.env, nil, 2*time.Minute, "enqueue", "--job", "full", r.file)
	r.logf("enqueue at maxmemory %d: exit %d", limit, code)
	if code != 3 || !strings.Contains(errOut, "out of memory") || !strings.Contains(errOut, "--job full") {
		t.Fatalf("enqueue against a full Redis: exit %d\nstdout %s\nstderr %s", code, tail(out, 500), tail(errOut, 1000))
	}
	time.Sleep(3 * time.Second) // the workers meet the full Redis too
	if err := rdb.ConfigSet(ctx, "maxmemory", "0").Err(); err != nil {
		t.Fatal(err)
	}
	r.logf("maxmemory lifted; resubmitting")
	r.wait(r.enqueueAsync("full"), 6*time.Minute, 0)
	r.proofWith("redis-maxmemory", "full", r.expectedSkipEmpty())
}

// TestFaultGrownResubmission: a finished job resubmitted with 400 more
// domains is running again before its first new page, has no _SUCCESS
// while the new pages run, and enqueue --wait returns only after them.
func TestFaultGrownResubmission(t *testing.T) {
	faultsEnabled(t)
	r := newFaultRig(t, testenv.MinIO(t), 500, nil, "--latency", "100ms")
	all := r.domains
	r.setDomains(all[:100])
	r.startWorkers(2)
	r.wait(r.enqueueAsync("grow"), 4*time.Minute, 0)
	ctx := context.Background()
	snk := r.sink()
	if _, err := snk.Get(ctx, sink.SuccessKey("grow")); err != nil {
		t.Fatalf("the first run wrote no _SUCCESS: %v", err)
	}
	before := r.status("grow").Ended
	r.setDomains(all)
	done := r.enqueueAsync("grow")
	checks, during := 0, 0
	for {
		select {
		case res := <-done:
			if res.code != 0 {
				t.Fatalf("enqueue exit %d\n%s", res.code, tail(res.out, 2000))
			}
			st := r.status("grow")
			r.logf("--wait returned: %s, %d of %d pages ended; %d checks while new pages ran", st.State, st.Ended, st.Tasks, during)
			if st.State != "done" || st.Ended != st.Tasks || st.Domains != int64(len(all)) {
				t.Errorf("--wait returned before the new work ended: %+v", st)
			}
			if during == 0 {
				t.Error("no check caught the new pages running: the case tested nothing")
			}
			r.proof("grown-resubmission", "grow")
			return
		case <-time.After(100 * time.Millisecond):
		}
		st := r.status("grow")
		if st.State != "running" || st.Ended <= before {
			continue
		}
		checks++
		if st.Open == 0 {
			continue // the end is being written
		}
		during++
		if _, err := snk.Get(ctx, sink.SuccessKey("grow")); !errors.Is(err, sink.ErrNotFound) {
			t.Fatalf("_SUCCESS is there while %d new pages are open (err %v)", st.Open, err)
		}
		if _, err := snk.Get(ctx, sink.SupersededKey("grow")); err != nil {
			t.Fatalf("the old manifest is not marked superseded: %v", err)
		}
	}
}

// TestFaultLongSinkOutage: the sink refuses writes for 75 s, far past a
// page's retry budget at RETRY_BASE_DELAY=10ms; then it is back. Every row
// lands and the vendor saw one call per page.
func TestFaultLongSinkOutage(t *testing.T) {
	faultsEnabled(t)
	s3 := testenv.OwnMinIO(t)
	r := newFaultRig(t, s3, 150, []string{"PROVIDER_LIMITS=dataforseo=2000/1m:3", "RETRY_BASE_DELAY=10ms"}, "--latency", "200ms")
	r.startWorkers(2)
	done := r.enqueueAsync("long-outage")
	r.waitProgress("long-outage", 10, 2*time.Minute)
	s3.Stop(t)
	r.logf("minio stopped")
	time.Sleep(75 * time.Second)
	st := r.status("long-outage")
	r.logf("after 75 s without S3: %d pages stashed (%d bytes); %d of %d pages ended, %d failed; waiting for: %s",
		st.Stashed, st.StashBytes, st.Ended, st.Tasks, st.Failed, st.WaitingFor())
	if st.Stashed == 0 || !strings.Contains(st.WaitingFor(), "sink") {
		t.Error("no page waits for the sink: the case tested nothing")
	}
	if st.Failed != 0 {
		t.Errorf("%d pages failed during the outage", st.Failed)
	}
	s3.Start(t)
	r.logf("minio started")
	r.wait(done, 4*time.Minute, 0)
	r.proof("long-sink-outage", "long-outage")
	vs := sandboxStats(t, r.base)["dataforseo"]
	pages := int64(r.manifest("long-outage").Totals.Tasks)
	r.logf("vendor calls %d (throttled %d, injected %d) for %d pages", vs.Calls, vs.Throttled, vs.InjectedFailures, pages)
	if vs.Calls > pages+vs.Throttled+vs.InjectedFailures {
		t.Errorf("the vendor saw %d calls for %d pages: pages were fetched again", vs.Calls, pages)
	}
}

// TestFaultTotalsMove: domains whose totals grow or shrink while they are
// paged (the sandbox's grow-A-B: A rows at offset 0, B after) end with
// every row the vendor has once; the manifest records the totals seen.
func TestFaultTotalsMove(t *testing.T) {
	faultsEnabled(t)
	r := newFaultRig(t, testenv.MinIO(t), 0, []string{"PROVIDER_LIMITS=dataforseo=1000000/1m:60"}, "--rate", "0", "--concurrency", "0")
	moving := []string{"grow-1500-2500.example", "grow-1200-4200.example", "grow-20500-23000.example",
		"grow-2500-1500.example", "grow-5000-1000.example"}
	r.setDomains(append(moving, "rows-2500.example", "rows-1.example"))
	r.startWorkers(2)
	r.wait(r.enqueueAsync("moving"), 4*time.Minute, 0)
	r.proof("totals-move", "moving")
	for _, o := range r.manifest("moving").Outcomes {
		if strings.HasPrefix(o.Domain, "grow-") && len(o.TotalsSeen) != 2 {
			t.Errorf("%s: totals seen %v, want both", o.Domain, o.TotalsSeen)
		}
	}
}
