package tasks

import (
	"context"
	"testing"
	"time"

	"github.com/linkharvest/linkharvest/internal/testenv"
)

// TestUnitsEndOnce: the open set cannot drift under retries, duplicate
// deliveries and resubmissions (docs/hazards.md, "Knowing when a job has ended").
func TestUnitsEndOnce(t *testing.T) {
	rds := testenv.Redis(t)
	s := NewStore(rds.Client(t))
	ctx := context.Background()
	spec := Spec{Providers: []string{"p"}, Endpoints: map[string][]string{"p": {"e"}}}
	if _, err := s.create(ctx, "job1", spec, time.Date(2026, 11, 22, 23, 59, 0, 0, time.UTC)); err != nil {
		t.Fatal(err)
	}
	states, err := s.register(ctx, "job1", 0, 0, []string{"a", "b", "a"})
	if err != nil {
		t.Fatal(err)
	}
	if want := []int64{1, 1, 2}; !equal(states, want) {
		t.Fatalf("register = %v, want %v", states, want)
	}
	finish, err := s.end(ctx, "job1", "a", Outcome{Status: "ok", Records: 5, Key: "k"}, true, nil)
	if err != nil || finish {
		t.Fatalf("end a: finish %v, %v", finish, err)
	}
	// A duplicate delivery of a ends nothing twice.
	if finish, _ = s.end(ctx, "job1", "a", Outcome{Status: "ok", Records: 5, Key: "k"}, true, nil); finish {
		t.Fatal("second end of a finished the job")
	}
	// A retried parent registering a again does not reopen it.
	if states, _ = s.register(ctx, "job1", 0, 0, []string{"a"}); states[0] != 0 {
		t.Fatalf("re-registering an ended unit: %v, want 0", states)
	}
	if finish, _ = s.end(ctx, "job1", "b", Outcome{Status: "failed", Error: "x"}, true, nil); !finish {
		t.Fatal("the last end did not finish the job")
	}
	st, err := s.Status(ctx, "job1")
	if err != nil {
		t.Fatal(err)
	}
	if st.Tasks != 2 || st.Ended != 2 || st.Records != 5 || st.Failed != 1 || st.Objects != 1 || st.Date != "2026-11-22" {
		t.Fatalf("status %+v", st)
	}
	// A resubmission keeps the job's date and must ask for the same thing.
	if _, err := s.create(ctx, "job1", spec, time.Date(2026, 11, 23, 1, 0, 0, 0, time.UTC)); err != nil {
		t.Fatal(err)
	}
	if j, _ := s.Job(ctx, "job1"); j.Date != "2026-11-22" {
		t.Fatalf("job after resubmission: %+v", j)
	}
	other := spec
	other.MaxRows = 10
	if _, err := s.create(ctx, "job1", other, time.Now()); err == nil {
		t.Fatal("a resubmission with other options was accepted")
	}
}

func equal(a, b []int64) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func TestJobIDs(t *testing.T) {
	for id, ok := range map[string]bool{"01HZX": true, "my-job_1.2": true, "": false, "a/b": false, "..": false, "a b": false, "ü": false} {
		if err := ValidJobID(id); (err == nil) != ok {
			t.Errorf("ValidJobID(%q) = %v", id, err)
		}
	}
}

// TestJobRetention: a finished job's state expires after the retention
// (all its keys), a resubmission before that keeps it, a page's memo goes
// when the page ends, and after expiry the same id is a new job: leftovers
// of the old one (keys expire one by one) do not count as ended.
func TestJobRetention(t *testing.T) {
	rds := testenv.Redis(t)
	s := NewStore(rds.Client(t))
	ctx := context.Background()
	spec := Spec{Providers: []string{"p"}}
	k := keysFor("ret")
	if _, err := s.create(ctx, "ret", spec, time.Now()); err != nil {
		t.Fatal(err)
	}
	if _, err := s.register(ctx, "ret", 0, 0, []string{"p|e|a.example|1", "p|e|b.example|1"}); err != nil {
		t.Fatal(err)
	}
	if err := s.keepMemo(ctx, "ret", "p|e|a.example|1", &memo{Key: "k", Records: 1}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.end(ctx, "ret", "p|e|a.example|1", Outcome{Status: "ok", Records: 1, Key: "k"}, true, nil); err != nil {
		t.Fatal(err)
	}
	if ps, err := s.pageState(ctx, "ret", "p|e|a.example|1", "lh:sinkdown:test"); err != nil || ps.memo != nil || !ps.ended {
		t.Fatalf("state after the page ended: %+v, %v; want ended without a memo", ps, err)
	}
	s.rdb.RPush(ctx, k.rejected, `{"line":1}`)
	s.rdb.HSet(ctx, k.memo, "p|e|b.example|1", `{}`)

	if err := s.expire(ctx, "ret", time.Hour); err != nil {
		t.Fatal(err)
	}
	for _, key := range []string{k.meta, k.open, k.buckets, k.bucket("p|e|a.example|1"), k.memo, k.rejected} {
		if ttl := s.rdb.TTL(ctx, key).Val(); ttl <= 0 || ttl > time.Hour {
			t.Errorf("TTL of %s = %v, want about an hour", key, ttl)
		}
	}
	// A resubmission before the expiry keeps the job.
	if _, err := s.create(ctx, "ret", spec, time.Now()); err != nil {
		t.Fatal(err)
	}
	for _, key := range []string{k.meta, k.open, k.buckets, k.bucket("p|e|a.example|1"), k.memo, k.rejected} {
		if ttl := s.rdb.TTL(ctx, key).Val(); ttl != -1 {
			t.Errorf("TTL of %s after a resubmission = %v, want none", key, ttl)
		}
	}
	if ids, _ := s.Jobs(ctx, 10); len(ids) != 1 || ids[0] != "ret" {
		t.Fatalf("Jobs = %v", ids)
	}
	// The meta key expired first; the outcomes are still there.
	s.rdb.Del(ctx, k.meta)
	if ids, _ := s.Jobs(ctx, 10); len(ids) != 0 {
		t.Fatalf("Jobs lists an expired job: %v", ids)
	}
	if _, err := s.create(ctx, "ret", spec, time.Now()); err != nil {
		t.Fatal(err)
	}
	states, err := s.register(ctx, "ret", 0, 0, []string{"p|e|a.example|1"})
	if err != nil || states[0] != 1 {
		t.Fatalf("a page of the expired job still counts: register = %v, %v; want [1]", states, err)
	}
	if n := s.rdb.LLen(ctx, k.rejected).Val(); n != 0 {
		t.Errorf("the expired job's %d rejected lines came back", n)
	}
}

// TestRegisterCountsDomains: a domain is counted in the same step that
// registers its first pages, so a submission killed between two calls
// cannot leave registered domains uncounted (the resubmission would then
// see them as known and the job would report fewer domains than it has).
func TestRegisterCountsDomains(t *testing.T) {
	rds := testenv.Redis(t)
	s := NewStore(rds.Client(t))
	ctx := context.Background()
	spec := Spec{Providers: []string{"p"}, Endpoints: map[string][]string{"p": {"e", "f"}}}
	if _, err := s.create(ctx, "dom", spec, time.Now()); err != nil {
		t.Fatal(err)
	}
	steps := []struct {
		units []string
		want  int64
	}{
		{[]string{"p|e|a.example|1", "p|f|a.example|1", "p|e|b.example|1", "p|f|b.example|1"}, 2},
		{[]string{"p|e|b.example|1", "p|f|b.example|1", "p|e|c.example|1", "p|f|c.example|1"}, 3},
		{[]string{"p|e|a.example|1", "p|f|a.example|1"}, 3},
	}
	for i, st := range steps {
		if _, err := s.register(ctx, "dom", 0, 2, st.units); err != nil {
			t.Fatal(err)
		}
		got, err := s.Status(ctx, "dom")
		if err != nil {
			t.Fatal(err)
		}
		if got.Domains != st.want {
			t.Errorf("step %d: %d domains, want %d", i, got.Domains, st.want)
		}
	}
	// Later pages (a worker's, per-domain 0) never count a domain.
	if _, err := s.register(ctx, "dom", 0, 0, []string{"p|e|d.example|2"}); err != nil {
		t.Fatal(err)
	}
	if got, _ := s.Status(ctx, "dom"); got.Domains != 3 {
		t.Errorf("a worker's page counted a domain: %d", got.Domains)
	}
}
