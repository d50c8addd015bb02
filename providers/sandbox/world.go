package sandbox

import (
	"fmt"
	"sort"
	"strconv"
	"time"
)

// The world: a domain's rows as they change over time, the same on every
// run (docs/vendors.md, "DataForSEO: the sandbox's world over time").
// Think of a domain's rows as an endless sequence 0, 1, 2, …; on any day
// N of them are live (N = Total), a window [Start, Start+N) that moves
// forward at each of the domain's changes: a change of K rows loses the K
// oldest live rows and brings in the next K.

// ChurnStart is the first day of the first churn epoch. Every initial row
// of a domain was first seen before it, so no change predates a row.
var ChurnStart = time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC)

// EpochDays is the length of a churn epoch: a domain changes at most once
// in each.
const EpochDays = 30

// LastDay is the latest day the world can be seen on; it bounds the
// epochs a request walks (about 900).
var LastDay = time.Date(2099, 12, 31, 0, 0, 0, 0, time.UTC)

const daySeconds = 86400

// Day returns the day t falls on: its 00:00:00 UTC.
func Day(t time.Time) time.Time {
	y, m, d := t.UTC().Date()
	return time.Date(y, m, d, 0, 0, 0, 0, time.UTC)
}

// ParseDay reads a day written "YYYY-MM-DD" (UTC).
func ParseDay(s string) (time.Time, error) {
	d, err := time.Parse(time.DateOnly, s)
	if err != nil {
		return time.Time{}, fmt.Errorf("%q is not a day written YYYY-MM-DD", s)
	}
	return d, nil
}

// CheckToday refuses a day the world cannot be seen on: before
// ChurnStart (rows would have been first seen after it) or after LastDay.
func CheckToday(d time.Time) error {
	if d.Before(ChurnStart) || d.After(LastDay) {
		return fmt.Errorf("the day must be from %s to %s", ChurnStart.Format(time.DateOnly), LastDay.Format(time.DateOnly))
	}
	return nil
}

// World is the sandbox's index as seen on one day.
type World struct {
	Seed int64
	// Churn is the chance that a domain changes in an epoch, 0..1; 0: the
	// world never changes.
	Churn float64
	// Today is the day the world is seen on, at 00:00:00 UTC: the changes
	// of earlier days are visible, those of Today not yet.
	Today time.Time
}

// World is the world the options describe; a zero Today is the current
// UTC date, read now (a sandbox left running sees the next day's world
// after midnight).
func (o Options) World() World {
	d := o.Today
	if d.IsZero() {
		d = time.Now()
	}
	return World{Seed: o.Seed, Churn: o.Churn, Today: Day(d)}
}

// Event is one change of a domain: on Day the K oldest live rows are lost
// and K new rows enter.
type Event struct {
	Day time.Time
	K   int
	// Start is the first live row after the change.
	Start int
}

// History is a domain's changes before the day its world is seen on.
type History struct {
	N      int       // live rows, the same every day
	Today  time.Time // the day seen on
	Events []Event   // oldest first, at most one an epoch
}

// History returns the changes of a domain with n live rows (a domain
// without rows never changes). In epoch e the domain changes iff
// Hash(seed, "churn", domain, e) maps to a fraction below Churn; the
// change is on day e×30 + hash%30 after ChurnStart and replaces k rows,
// 1 ≤ k ≤ max(1, n/5) (n/10 on average), from a second hash.
func (w World) History(domain string, n int) History {
	h := History{N: n, Today: w.Today}
	if n <= 0 || w.Churn <= 0 {
		return h
	}
	today := w.Today.Unix()
	kMax := uint64(max(1, n/5))
	start := 0
	for e := 0; ; e++ {
		epoch := ChurnStart.Unix() + int64(e)*EpochDays*daySeconds
		if epoch >= today {
			break
		}
		es := strconv.Itoa(e)
		x := Hash(w.Seed, "churn", domain, es)
		if float64(x>>11)/(1<<53) >= w.Churn {
			continue
		}
		day := epoch + int64(x%EpochDays)*daySeconds
		if day >= today {
			break
		}
		k := 1 + int(Hash(w.Seed, "churn-k", domain, es)%kMax)
		start += k
		h.Events = append(h.Events, Event{Day: time.Unix(day, 0).UTC(), K: k, Start: start})
	}
	return h
}

// Start is the first live row.
func (h History) Start() int {
	if len(h.Events) == 0 {
		return 0
	}
	return h.Events[len(h.Events)-1].Start
}

// Live is the live rows, [lo, hi): hi-lo is always N.
func (h History) Live() (lo, hi int) {
	s := h.Start()
	return s, s + h.N
}

// startBefore is the first live row before event j.
func (h History) startBefore(j int) int {
	if j == 0 {
		return 0
	}
	return h.Events[j-1].Start
}

// Entered is the change at which row i entered (an index into Events);
// false for an initial row (i < N) and for a row not yet entered.
func (h History) Entered(i int) (int, bool) {
	if i < h.N {
		return 0, false
	}
	j := sort.Search(len(h.Events), func(j int) bool { return h.Events[j].Start+h.N > i })
	return j, j < len(h.Events)
}

// LostAt is the change at which row i was lost; false while it is live
// (or not yet entered).
func (h History) LostAt(i int) (int, bool) {
	j := sort.Search(len(h.Events), func(j int) bool { return h.Events[j].Start > i })
	return j, j < len(h.Events)
}

// since is the first change on or after day.
func (h History) since(day time.Time) int {
	return sort.Search(len(h.Events), func(j int) bool { return !h.Events[j].Day.Before(day) })
}

// EnteredSince is the live rows that entered at a change on or after day,
// [lo, hi): the rows a harvest on that day did not have.
func (h History) EnteredSince(day time.Time) (lo, hi int) {
	s := h.Start()
	return max(s, h.startBefore(h.since(day))+h.N), s + h.N
}

// LostSince is the rows lost at a change on or after day, [lo, hi). Rows
// that entered after day and went again are among them: a harvest on
// that day did not have them either.
func (h History) LostSince(day time.Time) (lo, hi int) {
	return h.startBefore(h.since(day)), h.Start()
}
