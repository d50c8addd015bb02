package tasks

import (
	"context"
	"testing"
	"time"

	"github.com/linkharvest/linkharvest/internal/testenv"
)

// TestUnitsEndOnce: the open set cannot drift under retries, duplicate
// deliveries and resubmissions (DESIGN-NOTES "Knowing when a job has ended").
func TestUnitsEndOnce(t *testing.T) {
	rds := testenv.Redis(t)
	s := NewStore(rds.Client(t))
	ctx := context.Background()
	spec := Spec{Providers: []string{"p"}, Endpoints: map[string][]string{"p": {"e"}}}
	if _, err := s.create(ctx, "job1", spec, time.Date(2026, 11, 22, 23, 59, 0, 0, time.UTC)); err != nil {
		t.Fatal(err)
	}
	states, err := s.register(ctx, "job1", []string{"a", "b", "a"})
	if err != nil {
		t.Fatal(err)
	}
	if want := []int64{1, 1, 2}; !equal(states, want) {
		t.Fatalf("register = %v, want %v", states, want)
	}
	open, err := s.end(ctx, "job1", "a", Outcome{Status: "ok", Records: 5, Key: "k"}, true)
	if err != nil || open != 1 {
		t.Fatalf("end a: open %d, %v", open, err)
	}
	// A duplicate delivery of a ends nothing twice.
	if open, _ = s.end(ctx, "job1", "a", Outcome{Status: "ok", Records: 5, Key: "k"}, true); open != 1 {
		t.Fatalf("second end of a: open %d, want 1", open)
	}
	// A retried parent registering a again does not reopen it.
	if states, _ = s.register(ctx, "job1", []string{"a"}); states[0] != 0 {
		t.Fatalf("re-registering an ended unit: %v, want 0", states)
	}
	if open, _ = s.end(ctx, "job1", "b", Outcome{Status: "failed", Error: "x"}, true); open != 0 {
		t.Fatalf("open %d after the last end", open)
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
	if j, _ := s.Job(ctx, "job1"); j.Date != "2026-11-22" || j.Gen != 2 {
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
