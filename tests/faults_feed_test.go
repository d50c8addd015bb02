package tests

import (
	"context"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/linkharvest/linkharvest/internal/testenv"
)

// TestFaultFeederKilled: a job of 1,100 domains of which the submission
// enqueues 10 at once and feeds the rest (three batches), with a window of
// 20 tasks a queue, so the feed lasts most of the job. Twice, the worker
// holding the job's feeder lease (it holds it while it feeds a batch) is
// SIGKILLed (and replaced) while domains still wait in the feed: another worker takes the lease when it expires and
// feeds on from the batch the dead one may have half fed. Every row is
// in the output exactly once, and the job ends.
func TestFaultFeederKilled(t *testing.T) {
	faultsEnabled(t)
	r := newFaultRig(t, testenv.MinIO(t), 1100, []string{"FEED_WINDOW=20"}, "--latency", "300ms")
	r.startWorkers(2)
	done := r.enqueueAsync("feedkill", "--feed-after", "10")
	rdb := r.redis.Client(t)
	ctx := context.Background()
	deadline := time.After(6 * time.Minute)
	kills := 0
	for kills < 2 {
		select {
		case res := <-done:
			t.Fatalf("the job ended after %d of 2 feeder kills: the case tests nothing\n%s", kills, tail(res.out, 2000))
		case <-deadline:
			t.Fatalf("no feeder to kill: %+v", r.status("feedkill"))
		case <-time.After(10 * time.Millisecond):
		}
		st := r.status("feedkill")
		if st.Unfed == 0 || st.Ended < int64(20*(kills+1)) {
			time.Sleep(200 * time.Millisecond)
			continue
		}
		owner, err := rdb.Get(ctx, "lh:{job:feedkill}:feeder").Result()
		if err != nil {
			continue // between two feeds
		}
		parts := strings.Split(owner, ":") // host:pid:start:seq
		pid, _ := strconv.Atoi(parts[len(parts)-3])
		for i, w := range r.workers {
			if w.cmd.Process.Pid != pid {
				continue
			}
			w.kill()
			r.workers[i] = start(t, r.env, "worker")
			kills++
			r.logf("SIGKILL #%d: the feeder, pid %d, with %d domains unfed; %d of %d pages ended", kills, pid, st.Unfed, st.Ended, st.Tasks)
		}
	}
	select {
	case res := <-done:
		if res.code != 0 {
			t.Fatalf("enqueue exit %d\n%s", res.code, tail(res.out, 3000))
		}
	case <-deadline:
		t.Fatalf("the job did not finish: %+v", r.status("feedkill"))
	}
	if st := r.status("feedkill"); st.Domains != int64(len(r.domains)) || st.Unfed != 0 {
		t.Fatalf("job: %d domains, %d unfed; want %d, 0", st.Domains, st.Unfed, len(r.domains))
	}
	r.proof("feeder-killed", "feedkill")
}
