package tests

import (
	"maps"
	"slices"
	"testing"
	"time"
)

// TestFaultRefreshWorkerCrash: a refresh whose workers are SIGKILLed every
// few seconds (checks and delta pages cut mid-call, their tasks recovered
// by the survivors) writes exactly the delta of a refresh that ran
// without a fault: the same rows, the same changes, the same outcomes.
func TestFaultRefreshWorkerCrash(t *testing.T) {
	faultsEnabled(t)
	w := newRefreshWorld(t, 300)
	_, _, _ = w.run(w.day1, "--job", "day1", w.file)
	_, _, _ = w.run(w.day2, "--job", "calm", "--refresh", "day1", "--since", refreshDay1)

	// The same world on day 2, slow (2 s a call) and with few calls at
	// once, so that the kills cut the check and delta pages mid-call.
	slow, _ := startSandbox(t, "--seed", "7", "--churn", "0.1", "--today", refreshDay2, "--latency", "2s")
	env := append(w.env(slow), "WORKER_CONCURRENCY=3")
	workers := []*proc{start(t, env, "worker"), start(t, env, "worker")}
	enq := start(t, env, "enqueue", "--job", "crashed", "--refresh", "day1", "--since", refreshDay1, "--wait")
	const maxKills = 10
	kills := 0
	deadline := time.After(6 * time.Minute)
loop:
	for {
		select {
		case <-enq.done:
			break loop
		case <-deadline:
			t.Fatalf("the refresh did not end\n%s", tail(enq.out.String(), 2000))
		case <-time.After(4 * time.Second):
			if kills == maxKills {
				continue // let the survivors finish
			}
			i := kills % len(workers)
			workers[i].kill()
			workers[i] = start(t, env, "worker")
			kills++
		}
	}
	if enq.err != nil {
		t.Fatalf("enqueue: %v\n%s", enq.err, tail(enq.out.String(), 2000))
	}
	t.Logf("the refresh ended after %d SIGKILLs", kills)
	if kills == 0 {
		t.Fatal("no worker was killed: the case tested nothing")
	}
	calm, crashed := w.rows("calm"), w.rows("crashed")
	for _, d := range w.domains {
		if !maps.Equal(calm[d], crashed[d]) {
			t.Errorf("%s: the crashed refresh wrote %d delta rows, the calm one %d (or other changes)", d, len(crashed[d]), len(calm[d]))
		}
	}
	mc, mx := w.manifest("calm"), w.manifest("crashed")
	a, b := map[string]string{}, map[string]string{}
	for _, o := range mc.Outcomes {
		a[o.Domain] = o.Status + "/" + o.Refresh
	}
	for _, o := range mx.Outcomes {
		b[o.Domain] = o.Status + "/" + o.Refresh
	}
	if !maps.Equal(a, b) {
		diff := 0
		for _, d := range slices.Sorted(maps.Keys(a)) {
			if a[d] != b[d] {
				diff++
			}
		}
		t.Errorf("%d domains' outcomes differ between the calm and the crashed refresh", diff)
	}
	for _, p := range workers {
		p.stop(t, 40*time.Second)
	}
}
