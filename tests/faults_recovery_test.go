package tests

import (
	"context"
	"fmt"
	"os"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/linkharvest/linkharvest/internal/recovery"
	"github.com/linkharvest/linkharvest/internal/testenv"
)

// Recovery cases (issue 13): a job of 20 one-page domains, 4 s vendor
// latency, two workers of concurrency 10, so every page is running at
// once, 10 on each worker; then one worker is SIGKILLed, or SIGSTOPped
// for less than its lease.

// recoveryRig is a fault rig over 20 domains of 500 rows (one page each).
func recoveryRig(t *testing.T) *faultRig {
	t.Helper()
	r := newFaultRig(t, testenv.MinIO(t), 0, []string{"WORKER_CONCURRENCY=10"}, "--latency", "4s")
	r.domains = nil
	var b strings.Builder
	for i := range 20 {
		d := fmt.Sprintf("rows-500.r%02d.example", i)
		r.domains = append(r.domains, d)
		b.WriteString(d + "\n")
	}
	if err := os.WriteFile(r.file, []byte(b.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	return r
}

// activeOwners maps each active page task to the worker process that runs
// it (the owner internal/recovery records in the task's asynq hash).
func activeOwners(t *testing.T, rdb *redis.Client) map[string]string {
	t.Helper()
	ctx := context.Background()
	ids, err := rdb.LRange(ctx, "asynq:{dataforseo}:active", 0, -1).Result()
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]string{}
	for _, id := range ids {
		out[id], _ = rdb.HGet(ctx, "asynq:{dataforseo}:t:"+id, recovery.OwnerField).Result()
	}
	return out
}

// ownedBy is the ids among owners run by process pid.
func ownedBy(owners map[string]string, pid int) []string {
	var ids []string
	for id, o := range owners {
		if strings.Contains(o, ":"+strconv.Itoa(pid)+":") {
			ids = append(ids, id)
		}
	}
	return ids
}

// allRunning waits until every page runs, each with its owner recorded,
// and both workers run some.
func allRunning(r *faultRig, rdb *redis.Client) map[string]string {
	r.t.Helper()
	deadline := time.Now().Add(time.Minute)
	for time.Now().Before(deadline) {
		o := activeOwners(r.t, rdb)
		ok := len(o) == len(r.domains)
		for _, w := range r.workers {
			ok = ok && len(ownedBy(o, w.cmd.Process.Pid)) > 0
		}
		for _, owner := range o {
			ok = ok && owner != ""
		}
		if ok {
			return o
		}
		time.Sleep(50 * time.Millisecond)
	}
	r.t.Fatalf("the pages never all ran at once on both workers: %v", activeOwners(r.t, rdb))
	return nil
}

// TestFaultWorkerKilledRecovery: SIGKILL one of two workers while its 10
// tasks run; its tasks run again on the other within seconds (not after
// the 30 s lease and asynq's minute-long recoverer), each page is fetched
// once more and no retry is spent.
func TestFaultWorkerKilledRecovery(t *testing.T) {
	faultsEnabled(t)
	r := recoveryRig(t)
	rdb := r.redis.Client(t)
	r.startWorkers(2)
	done := r.enqueueAsync("killed")
	owners := allRunning(r, rdb)
	time.Sleep(time.Second)
	victim := r.workers[0]
	ids := ownedBy(owners, victim.cmd.Process.Pid)
	dead := owners[ids[0]]
	victim.kill()
	tKill := time.Now()
	r.logf("SIGKILL: pid %d with %d tasks running", victim.cmd.Process.Pid, len(ids))

	// Ran again: every one of its tasks is running under another owner,
	// or done. Seen running again, each must have been handed back by
	// internal/recovery (not by asynq's recoverer) with no retry spent.
	ctx := context.Background()
	var rerun time.Duration
	seen := map[string]bool{}
	for rerun == 0 {
		if time.Since(tKill) > 2*time.Minute {
			t.Fatal("the killed worker's tasks did not run again within 2 minutes")
		}
		for _, id := range ids {
			if seen[id] {
				continue
			}
			key := "asynq:{dataforseo}:t:" + id
			h, _ := rdb.HMGet(ctx, key, "state", recovery.OwnerField).Result()
			state, _ := h[0].(string)
			owner, _ := h[1].(string)
			switch {
			case h[0] == nil:
				seen[id] = true // done before we looked
			case state == "active" && owner != "" && owner != dead:
				seen[id] = true
				if ti, err := r.insp.GetTaskInfo("dataforseo", id); err == nil && ti.Retried != 0 {
					t.Errorf("task %s runs again with %d retries spent, want 0", id, ti.Retried)
				}
				if n, _ := rdb.HGet(ctx, key, recovery.TakeoversField).Int(); n != 1 {
					t.Errorf("task %s runs again, handed back %d times by internal/recovery, want 1", id, n)
				}
			}
		}
		if len(seen) == len(ids) {
			rerun = time.Since(tKill)
		}
		time.Sleep(100 * time.Millisecond)
	}
	r.logf("all %d of its tasks running again %.1fs after the kill", len(ids), rerun.Seconds())
	r.wait(done, 2*time.Minute, 0)
	ended := time.Since(tKill)
	calls := sandboxStats(t, r.base)["dataforseo"].Calls
	r.proof("worker-killed-recovery", "killed")
	t.Logf("FAULT-RESULT case=worker-killed-recovery killed_tasks=%d rerun_seconds=%.1f job_end_seconds=%.1f calls=%d pages=%d",
		len(ids), rerun.Seconds(), ended.Seconds(), calls, len(r.domains))
	// Each orphaned page was fetched once more, and nothing else was: no
	// retry (and its delay) stood between the kill and the rerun.
	if want := int64(len(r.domains) + len(ids)); calls != want {
		t.Errorf("the sandbox saw %d calls, want %d (every page once, the killed worker's again)", calls, want)
	}
	r.workers[1].stop(t, 10*time.Second)
}

// TestFaultWorkerStoppedRecovery: SIGSTOP one of two workers for 15 s,
// longer than its heartbeat lives (10 s) but less than its task lease
// (30 s from its last heartbeat), then SIGCONT. Its process and its
// connections to Redis stay, so no other worker takes its tasks: each
// page is fetched exactly once (no task ran twice, at once or after), and
// the resumed worker finishes its own tasks.
func TestFaultWorkerStoppedRecovery(t *testing.T) {
	faultsEnabled(t)
	r := recoveryRig(t)
	rdb := r.redis.Client(t)
	r.startWorkers(2)
	done := r.enqueueAsync("stopped")
	owners := allRunning(r, rdb)
	stopped := r.workers[0]
	ids := ownedBy(owners, stopped.cmd.Process.Pid)
	mine := owners[ids[0]]
	if err := stopped.cmd.Process.Signal(syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	tStop := time.Now()
	r.logf("SIGSTOP: pid %d with %d tasks running", stopped.cmd.Process.Pid, len(ids))
	heartbeatGone := false
	for time.Since(tStop) < 15*time.Second {
		if servers, err := r.insp.Servers(); err == nil && len(servers) == 1 {
			heartbeatGone = true
		}
		time.Sleep(200 * time.Millisecond)
	}
	// Still its own, after its heartbeat expired.
	taken := 0
	for _, id := range ids {
		if o, _ := rdb.HGet(context.Background(), "asynq:{dataforseo}:t:"+id, recovery.OwnerField).Result(); o != mine {
			taken++
		}
	}
	if err := stopped.cmd.Process.Signal(syscall.SIGCONT); err != nil {
		t.Fatal(err)
	}
	r.logf("SIGCONT after %.1fs; heartbeat gone meanwhile: %v; tasks taken by another worker: %d of %d",
		time.Since(tStop).Seconds(), heartbeatGone, taken, len(ids))
	if !heartbeatGone {
		t.Error("the stopped worker's heartbeat never expired: the case tested nothing")
	}
	if taken != 0 {
		t.Errorf("%d of a stopped worker's %d tasks were taken from it", taken, len(ids))
	}
	r.wait(done, 2*time.Minute, 0)
	calls := sandboxStats(t, r.base)["dataforseo"].Calls
	r.proof("worker-stopped-recovery", "stopped")
	t.Logf("FAULT-RESULT case=worker-stopped-recovery stopped_tasks=%d stop_seconds=15 taken=%d calls=%d pages=%d job_end_seconds=%.1f",
		len(ids), taken, calls, len(r.domains), time.Since(tStop).Seconds())
	if calls != int64(len(r.domains)) {
		t.Errorf("the sandbox saw %d calls for %d pages: a page ran twice", calls, len(r.domains))
	}
	for _, w := range r.workers {
		w.stop(t, 10*time.Second)
	}
}

// TestFaultWorkerResetRecovery: the one case where a live worker looks
// dead. One of two workers reaches Redis through a line that drops every
// connection (as a failing proxy or load balancer does, unlike a network
// that only loses packets) for 15 s, less than its lease. With the default
// WORKER_STALE_AFTER (8 s) its heartbeat goes stale while its connections
// are gone, so its tasks are handed to the other worker and may run twice:
// the output must still be exact, the job must end, asynq's queues must be
// left clean and the cut-off worker must carry on. With
// WORKER_STALE_AFTER=20s no other worker takes its tasks during the cut.
func TestFaultWorkerResetRecovery(t *testing.T) {
	faultsEnabled(t)
	for _, c := range []struct {
		name      string
		env       []string
		keepsThem bool
	}{
		{"default", nil, false},
		{"stale-after-20s", []string{"WORKER_STALE_AFTER=20s"}, true},
	} {
		t.Run(c.name, func(t *testing.T) { resetCase(t, c.env, c.keepsThem) })
	}
}

func resetCase(t *testing.T, env []string, keepsThem bool) {
	r := recoveryRig(t)
	r.env = append(r.env, env...)
	rdb := r.redis.Client(t)
	proxy := newCutProxy(t, r.redis.Addr)
	viaProxy := append(append([]string{}, r.env...), "REDIS_URL=redis://"+proxy.addr()+"/0")
	cutOff := start(t, viaProxy, "worker")
	r.workers = append(r.workers, cutOff)
	r.startWorkers(1)
	done := r.enqueueAsync("reset")
	owners := allRunning(r, rdb)
	ids := ownedBy(owners, cutOff.cmd.Process.Pid)
	mine := owners[ids[0]]
	time.Sleep(time.Second) // its calls are under way
	proxy.setCut(true)
	tCut := time.Now()
	r.logf("line cut; the worker behind it had %d tasks running", len(ids))
	taken := map[string]bool{}
	for time.Since(tCut) < 15*time.Second {
		for _, id := range ids {
			h, _ := rdb.HMGet(context.Background(), "asynq:{dataforseo}:t:"+id, "state", recovery.OwnerField).Result()
			if o, _ := h[1].(string); h[0] == nil || o != mine {
				taken[id] = true
			}
		}
		time.Sleep(200 * time.Millisecond)
	}
	proxy.setCut(false)
	r.logf("line mended; %d of its %d tasks were handed to the other worker meanwhile", len(taken), len(ids))
	r.wait(done, 2*time.Minute, 0)
	ended := time.Since(tCut)
	calls := sandboxStats(t, r.base)["dataforseo"].Calls
	r.proof("worker-reset-recovery", "reset")
	// The cut-off worker's write-backs (asynq's Done or Retry of tasks it
	// no longer holds) have had time to land; nothing may be left behind.
	time.Sleep(6 * time.Second)
	if qi, err := r.insp.GetQueueInfo("dataforseo"); err != nil {
		t.Error(err)
	} else if qi.Active+qi.Pending+qi.Retry+qi.Archived+qi.Scheduled != 0 {
		t.Errorf("queue left with %d active, %d pending, %d retry, %d archived, %d scheduled", qi.Active, qi.Pending,
			qi.Retry, qi.Archived, qi.Scheduled)
	}
	later := sandboxStats(t, r.base)["dataforseo"].Calls
	t.Logf("FAULT-RESULT case=worker-reset-recovery env=%v cut_tasks=%d taken=%d calls=%d calls_6s_later=%d pages=%d job_end_seconds=%.1f",
		env, len(ids), len(taken), calls, later, len(r.domains), ended.Seconds())
	// Not "one call per page": the cut-off worker's handlers fail on Redis
	// errors during the cut, and asynq loses their write-back (it retries it
	// with a context already cancelled), so those tasks stay active until
	// their lease expires and then run again by the lease path.
	if keepsThem && len(taken) != 0 {
		t.Errorf("with %v the cut-off worker lost %d of its %d tasks during a 15 s cut", env, len(taken), len(ids))
	}
	for _, w := range r.workers {
		w.stop(t, 15*time.Second) // both alive, and stop cleanly
	}
}

// TestFaultRedisOutageRecovery: Redis (append-only) is down for 15 s with
// every page running, longer than any heartbeat lives; when it is back,
// every worker's connections come back too, and none is taken for dead:
// no task is handed back by the owner path (a lease may still expire, for
// tasks whose write-back the outage lost). The job ends with the usual
// proof.
func TestFaultRedisOutageRecovery(t *testing.T) {
	faultsEnabled(t)
	r := recoveryRig(t)
	rdb := r.redis.Client(t)
	r.startWorkers(2)
	done := r.enqueueAsync("outage")
	allRunning(r, rdb)
	time.Sleep(time.Second)
	r.redis.Stop(t)
	r.logf("redis stopped")
	time.Sleep(15 * time.Second)
	r.redis.Start(t)
	r.logf("redis started")
	r.wait(done, 3*time.Minute, 0)
	r.proof("redis-outage-recovery", "outage")
	owner, lease := 0, 0
	for _, w := range r.workers {
		out := w.out.String()
		owner += strings.Count(out, `"path":"owner"`)
		lease += strings.Count(out, `"path":"lease"`)
	}
	t.Logf("FAULT-RESULT case=redis-outage-recovery outage_seconds=15 handed_back_owner_path=%d handed_back_lease_path=%d calls=%d pages=%d",
		owner, lease, sandboxStats(t, r.base)["dataforseo"].Calls, len(r.domains))
	if owner != 0 {
		t.Errorf("%d tasks of live workers were handed back as if their workers had died", owner)
	}
	for _, w := range r.workers {
		w.stop(t, 15*time.Second)
	}
}
