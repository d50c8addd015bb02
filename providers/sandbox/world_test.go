package sandbox

import (
	"fmt"
	"testing"
	"time"
)

// A domain's changes keep to the model the clients rely on: at most one
// an epoch, on a day of it before the day seen on, 1 ≤ k ≤ max(1, N/5),
// and the row arithmetic follows the starts.
func TestHistory(t *testing.T) {
	today := time.Date(2026, 8, 15, 0, 0, 0, 0, time.UTC)
	for _, tc := range []struct {
		n     int
		churn float64
	}{{0, 1}, {1, 1}, {4, 0.5}, {100, 0.3}, {25000, 1}, {1000, 0}} {
		t.Run(fmt.Sprint(tc.n, "/", tc.churn), func(t *testing.T) {
			w := World{Seed: 3, Churn: tc.churn, Today: today}
			for d := range 50 {
				h := w.History(fmt.Sprintf("d%d.example", d), tc.n)
				if (tc.n == 0 || tc.churn == 0) && len(h.Events) != 0 {
					t.Fatalf("%d changes", len(h.Events))
				}
				if tc.churn == 1 && tc.n > 0 && len(h.Events) < 30 {
					t.Fatalf("churn 1: %d changes in 31 epochs", len(h.Events))
				}
				prevEpoch, start := -1, 0
				for j, e := range h.Events {
					epoch := int(e.Day.Sub(ChurnStart).Hours()/24) / EpochDays
					if epoch <= prevEpoch || !e.Day.Before(today) || e.K < 1 || e.K > max(1, tc.n/5) || e.Start != start+e.K {
						t.Fatalf("change %d: %+v after epoch %d, start %d", j, e, prevEpoch, start)
					}
					// The rows this change lost and brought in.
					if lj, ok := h.LostAt(start); !ok || lj != j {
						t.Fatalf("row %d lost at %d, want %d", start, lj, j)
					}
					if ej, ok := h.Entered(start + tc.n); !ok || ej != j {
						t.Fatalf("row %d entered at %d, want %d", start+tc.n, ej, j)
					}
					prevEpoch, start = epoch, e.Start
				}
				lo, hi := h.Live()
				if lo != start || hi-lo != tc.n {
					t.Fatalf("live [%d, %d), want %d rows from %d", lo, hi, tc.n, start)
				}
				if _, ok := h.LostAt(lo); ok {
					t.Fatalf("live row %d lost", lo)
				}
				if _, ok := h.Entered(tc.n - 1); ok {
					t.Fatal("an initial row entered at a change")
				}
				// Since a day before every change: all that changed; since today: nothing.
				if a, b := h.EnteredSince(ChurnStart); b-a != min(tc.n, start) {
					t.Fatalf("entered since the start [%d, %d)", a, b)
				}
				if a, b := h.LostSince(ChurnStart); a != 0 || b != start {
					t.Fatalf("lost since the start [%d, %d)", a, b)
				}
				if a, b := h.EnteredSince(today); a != b {
					t.Fatalf("entered since today [%d, %d)", a, b)
				}
			}
		})
	}
}

func TestParseDay(t *testing.T) {
	for _, tc := range []struct {
		s  string
		ok bool
	}{{"2024-01-01", true}, {"2099-12-31", true}, {"2023-12-31", false}, {"2100-01-01", false},
		{"2025-02-29", false}, {"2025-2-1", false}, {"2025-02-01 00:00:00", false}, {"", false}} {
		d, err := ParseDay(tc.s)
		if err == nil {
			err = CheckToday(d)
		}
		if (err == nil) != tc.ok {
			t.Errorf("%q: %v", tc.s, err)
		}
	}
}
