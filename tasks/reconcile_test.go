package tasks

import (
	"context"
	"testing"
	"time"

	"github.com/hibiken/asynq"

	"github.com/linkharvest/linkharvest/internal/testenv"
)

// TestReconcileArchived: a page task that asynq archived without calling
// the error handler (its recoverer does so for a task whose worker died
// on its last retry) is ended as failed by the sweep, so the job still
// finishes; a unit that had ended already is left as it was, and a second
// sweep ends nothing.
func TestReconcileArchived(t *testing.T) {
	rds := testenv.Redis(t)
	rdb := rds.Client(t)
	ctx := context.Background()
	s := NewStore(rdb)
	client := asynq.NewClientFromRedisClient(rdb)
	insp := asynq.NewInspectorFromRedisClient(rdb)
	w := &Worker{Store: s, Client: client}

	spec := Spec{Providers: []string{"dataforseo"}, Endpoints: map[string][]string{"dataforseo": {"backlinks"}}}
	if _, err := s.create(ctx, "arch", spec, time.Now()); err != nil {
		t.Fatal(err)
	}
	lost := PagePayload{Job: "arch", Provider: "dataforseo", Endpoint: "backlinks", Domain: "lost.example", Page: 1}
	done := PagePayload{Job: "arch", Provider: "dataforseo", Endpoint: "backlinks", Domain: "done.example", Page: 1}
	if err := enqueuePages(ctx, s, client, "arch", 1, []PagePayload{lost, done}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.end(ctx, "arch", done.Unit(), Outcome{Status: "ok", Records: 3, Key: "k"}, true, nil); err != nil {
		t.Fatal(err)
	}
	for _, p := range []PagePayload{lost, done} {
		if err := insp.ArchiveTask("dataforseo", p.TaskID()); err != nil {
			t.Fatal(err)
		}
	}

	// A queue that never existed is no error.
	n, err := w.ReconcileArchived(ctx, insp, []string{"dataforseo", "xovi"})
	if err != nil || n != 1 {
		t.Fatalf("ReconcileArchived = %d, %v; want 1 unit ended", n, err)
	}
	st, err := s.Status(ctx, "arch")
	if err != nil {
		t.Fatal(err)
	}
	if st.Open != 0 || st.Ended != 2 || st.Failed != 1 || st.Records != 3 {
		t.Fatalf("status after the sweep: %+v (want 0 open, 2 ended, 1 failed, 3 records)", st)
	}
	if qi, err := insp.GetQueueInfo(ControlQueue); err != nil || qi.Pending != 1 {
		t.Fatalf("the job's finalize task was not enqueued: %+v, %v", qi, err)
	}
	if n, err := w.ReconcileArchived(ctx, insp, []string{"dataforseo"}); err != nil || n != 0 {
		t.Fatalf("second sweep = %d, %v; want 0", n, err)
	}
}
