package tasks

import (
	"context"
	"fmt"
	"testing"

	"github.com/linkharvest/linkharvest/sink"
)

// feedAll runs the rig's feeder until the job's feed is empty.
func (r *rig) feedAll(owner string) {
	r.t.Helper()
	for i := 0; i < 100; i++ {
		if err := r.w.feed(context.Background(), owner); err != nil {
			r.t.Fatal(err)
		}
		r.drain()
		if r.status(r.feedJob).Unfed == 0 {
			return
		}
	}
	r.t.Fatal("the feed does not empty")
}

func (r *rig) pendingPages() int {
	r.t.Helper()
	n, err := r.w.Store.queuePending(context.Background(), "v")
	if err != nil {
		r.t.Fatal(err)
	}
	return int(n)
}

// TestFeedingIsExactlyOnce: a submission beyond FeedAfter leaves the rest
// of its list in the feed; the job does not finish while domains wait
// there; a feeder that dies after enqueueing a batch but before removing
// it is replaced, and its batch fed again creates no task twice; every
// row is written once and the manifest lists every domain.
func TestFeedingIsExactlyOnce(t *testing.T) {
	ctx := context.Background()
	r := newRig(t)
	r.feedJob = "feed"
	r.sub.FeedAfter = 5
	r.w.FeedWindow = 1_000_000
	var domains []string
	for i := range 30 {
		d := fmt.Sprintf("d%02d.example", i)
		r.domain(d, 1+i%3, 1+i%3)
		domains = append(domains, d)
	}
	st := r.submit("feed", domains...)
	if st.Tasks != 5 || st.NewDomains != 5 || st.Fed != 25 {
		t.Fatalf("submission: %+v, want 5 tasks and 5 new domains now, 25 fed", st)
	}
	if s := r.status("feed"); s.Unfed != 25 || s.Domains != 5 {
		t.Fatalf("status: %d unfed, %d domains; want 25, 5", s.Unfed, s.Domains)
	}
	r.drain() // the 5 enqueued at once end; 25 still wait in the feed
	if s := r.status("feed"); s.State != "running" || r.sink.has(sink.SuccessKey("feed")) {
		t.Fatalf("the job looks finished with 25 domains unfed: %s", s.State)
	}

	// A feeder that dies mid-batch: its batch's tasks exist, the batch is still at the head.
	b, err := r.w.Store.feedHead(ctx, "feed")
	if err != nil || b == nil || len(b.domains) != 25 {
		t.Fatalf("feed head: %v, %v", b, err)
	}
	j, _ := r.w.job(ctx, "feed")
	if _, _, err := enqueueDomains(ctx, r.w.Store, r.w.Client, j, 0, 0, b.domains[:10], nil, nil); err != nil {
		t.Fatal(err)
	}
	if n := r.pendingPages(); n != 10 {
		t.Fatalf("%d pages pending after the dead feeder, want 10", n)
	}
	// Its pop, once its lease went to another, does nothing.
	if ok, _, err := r.w.Store.popFeed(ctx, "feed", "dead-feeder", b); err != nil || ok {
		t.Fatalf("a feeder without the lease removed the batch: %v, %v", ok, err)
	}
	r.feedAll("second-feeder")
	s := r.status("feed")
	if s.State != "done" || s.Domains != 30 || s.Unfed != 0 || !r.sink.has(sink.SuccessKey("feed")) {
		t.Fatalf("after feeding: %s, %d domains, %d unfed", s.State, s.Domains, s.Unfed)
	}
	rows := r.rows("feed")
	for i, d := range domains {
		wantRows(t, rows, d, 1+i%3)
	}
	if n := r.vendor.totalCalls(); n != 30 {
		t.Errorf("%d vendor calls for 30 one-page domains, want 30", n)
	}
	if m := r.manifest("feed"); len(m.Outcomes) != 30 {
		t.Errorf("manifest lists %d outcomes, want 30", len(m.Outcomes))
	}
	if n, _ := r.rdb.SCard(ctx, feedIndex).Result(); n != 0 {
		t.Errorf("%d jobs still listed to feed", n)
	}

	// A grown resubmission, all of it fed: only the new domains are fetched,
	// and the job is running (not done over stale output) until they end.
	r.sub.FeedAfter = -1
	r.domain("new.example", 2, 2)
	st = r.submit("feed", append(domains, "new.example")...)
	if st.Tasks != 0 || st.Fed != 31 {
		t.Fatalf("resubmission: %+v, want everything fed", st)
	}
	if s := r.status("feed"); s.State != "running" || s.Done() {
		t.Fatalf("a grown resubmission reads %s before its domains are fed", s.State)
	}
	r.feedAll("third-feeder")
	if s := r.status("feed"); s.State != "done" || s.Domains != 31 {
		t.Fatalf("after the grown run: %s, %d domains", s.State, s.Domains)
	}
	wantRows(t, r.rows("feed"), "new.example", 2)
	if n := r.vendor.totalCalls(); n != 31 {
		t.Errorf("%d vendor calls after the grown run, want 31: an old domain was fetched again", n)
	}
}

// TestFeedWindow: a feeder stops while the provider's queue holds the
// window, and goes on once it drains.
func TestFeedWindow(t *testing.T) {
	r := newRig(t)
	r.feedJob = "win"
	r.sub.FeedAfter = -1
	r.w.FeedWindow = 1
	var domains []string
	for i := range 2*submitBatch + 10 { // three batches
		d := fmt.Sprintf("w%04d.example", i)
		r.domain(d, 1, 1)
		domains = append(domains, d)
	}
	r.submit("win", domains...)
	if err := r.w.feed(context.Background(), "f"); err != nil {
		t.Fatal(err)
	}
	if n := r.pendingPages(); n != submitBatch {
		t.Fatalf("%d pages pending after one feed with a window of 1, want one batch (%d)", n, submitBatch)
	}
	r.feedAll("f")
	if s := r.status("win"); s.State != "done" || s.Domains != int64(len(domains)) {
		t.Fatalf("%s, %d domains", s.State, s.Domains)
	}
}
