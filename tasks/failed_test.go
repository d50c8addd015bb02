package tasks

import (
	"context"
	"testing"
	"time"

	"github.com/linkharvest/linkharvest/internal/testenv"
)

// TestFailedOutcomes: only pages ended failed are listed, sorted, with the
// vendor's message, bounded by limit while the total counts them all.
func TestFailedOutcomes(t *testing.T) {
	rds := testenv.Redis(t)
	s := NewStore(rds.Client(t))
	ctx := context.Background()
	spec := Spec{Providers: []string{"p"}, Endpoints: map[string][]string{"p": {"e"}}}
	if _, err := s.create(ctx, "jf", spec, time.Now()); err != nil {
		t.Fatal(err)
	}
	units := map[string]Outcome{
		"p|e|b.example|1": {Status: "failed", Error: "40501 Invalid Field: 'target'."},
		"p|e|a.example|2": {Status: "failed", Error: `<b>"failed"</b>`},
		"p|e|a.example|1": {Status: "ok", Records: 3, Key: "k"},
		"p|e|c.example|1": {Status: "empty"},
		"p|e|d.example|1": {Status: "failed", Error: "x"},
	}
	var list []string
	for u := range units {
		list = append(list, u)
	}
	if _, err := s.register(ctx, "jf", 0, 0, list); err != nil {
		t.Fatal(err)
	}
	for u, o := range units {
		if _, err := s.end(ctx, "jf", u, o, true, nil); err != nil {
			t.Fatal(err)
		}
	}
	got, total, err := s.FailedOutcomes(ctx, "jf", 2)
	if err != nil {
		t.Fatal(err)
	}
	want := []FailedPage{
		{Provider: "p", Endpoint: "e", Domain: "a.example", Page: 2, Error: `<b>"failed"</b>`},
		{Provider: "p", Endpoint: "e", Domain: "b.example", Page: 1, Error: "40501 Invalid Field: 'target'."},
	}
	if total != 3 || len(got) != 2 || got[0] != want[0] || got[1] != want[1] {
		t.Fatalf("FailedOutcomes = %+v, total %d; want %+v, total 3", got, total, want)
	}
	if got, total, err = s.FailedOutcomes(ctx, "nosuchjob", 10); err != nil || total != 0 || len(got) != 0 {
		t.Fatalf("unknown job: %v %d %v", got, total, err)
	}
}
