package dataforseo

import (
	"encoding/json"
	"strings"
	"time"

	"github.com/linkharvest/linkharvest/providers/sandbox"
)

// The sandbox's world over time as DataForSEO shows it (docs/vendors.md,
// "DataForSEO: the sandbox's world over time"): which rows backlinks/live
// lists for a backlinks_status_type and filters on the dates, and what
// the dates say.

// sbSeen is what a row states about when it was seen.
type sbSeen struct {
	first, prev, last int64 // Unix seconds
	isNew, isLost     bool
}

// sbWorld is one target's rows in the world one request sees.
type sbWorld struct {
	g *rowGen
	h sandbox.History
	// churn: the dates follow the world; at churn 0 they are the ones the
	// generator has always drawn.
	churn bool
	today int64 // the day seen on, 00:00:00 UTC
	// keys seed the rows' times, one for each date: hashed once a
	// request, then mixed with the row's index (a hash of every part for
	// every row would cost most of a filtered request).
	keys [3]uint64
}

// The dates keys are for.
const (
	keyFirst = iota
	keyLast
	keyPrev
)

func newSBWorld(o sandbox.Options, target string) *sbWorld {
	w := o.World()
	sw := &sbWorld{
		g:     newRowGen(o.Seed, target),
		h:     w.History(target, sandbox.Total(o.Seed, Name, "backlinks", target)),
		churn: o.Churn > 0,
		today: w.Today.Unix(),
	}
	for k, kind := range [...]string{"first_seen", "last_seen", "prev_seen"} {
		sw.keys[k] = sandbox.Hash(o.Seed, Name, kind, target)
	}
	return sw
}

// candidates are the rows a status lists, [lo, hi) by index, live ones
// counted as nLive (the total, or a grow- domain's total at the offset):
// live ones from the first live row, lost ones below it, all of them both,
// lost then live.
func (w *sbWorld) candidates(status string, nLive int) (lo, hi int) {
	s := w.h.Start()
	switch status {
	case "lost":
		return 0, s
	case "all":
		return 0, s + nLive
	}
	return s, s + nLive
}

// page is the rows among candidates [lo, hi) that pass filter (nil: all),
// in index order: their number and the indices of those at positions
// [offset, offset+limit). Only the dates are computed for the rows it
// passes over.
func (w *sbWorld) page(lo, hi int, filter *sbFilter, offset, limit int) (total int, rows []int) {
	if filter == nil {
		total = hi - lo
		for i := lo + offset; i < min(lo+offset+limit, hi); i++ {
			rows = append(rows, i)
		}
		return total, rows
	}
	for i := lo; i < hi; i++ {
		s := w.seen(i)
		if !filter.match(&s) {
			continue
		}
		if total >= offset && total < offset+limit {
			rows = append(rows, i)
		}
		total++
	}
	return total, rows
}

// appendRow writes row i with the dates the world gives it.
func (w *sbWorld) appendRow(b []byte, i int) []byte {
	if !w.churn {
		return w.g.appendRow(b, i)
	}
	s := w.seen(i)
	return w.g.appendRowSeen(b, i, &s)
}

// seen is row i's dates. With churn: an initial row (i < N) keeps its
// drawn first_seen, a later row was first seen on the day of the change
// that brought it in; a lost row was last seen on the day of the change
// that took it, a live one the day before the world's day (never before
// its first_seen); prev_seen lies between; is_new says first seen within
// the 30 days before the world's day.
func (w *sbWorld) seen(i int) sbSeen {
	if !w.churn {
		var s sbSeen
		s.first, s.prev, s.last, s.isNew = w.g.drawnSeen(i)
		return s
	}
	var s sbSeen
	if j, ok := w.h.Entered(i); ok {
		s.first = w.timeOn(w.h.Events[j].Day.Unix(), keyFirst, i)
	} else {
		s.first, _, _, _ = w.g.drawnSeen(i)
	}
	if j, ok := w.h.LostAt(i); ok {
		s.isLost = true
		s.last = w.timeOn(w.h.Events[j].Day.Unix(), keyLast, i)
	} else {
		s.last = w.timeOn(w.today-day, keyLast, i)
	}
	s.last = max(s.last, s.first)
	s.prev = s.first + int64(w.hash(keyPrev, i)%uint64(s.last-s.first+1))
	s.isNew = s.first >= w.today-30*day
	return s
}

// hash is row i's value for a date: its key and index mixed (SplitMix64's
// finaliser).
func (w *sbWorld) hash(key, i int) uint64 {
	x := w.keys[key] ^ uint64(i)*0x9e3779b97f4a7c15
	x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9
	x = (x ^ (x >> 27)) * 0x94d049bb133111eb
	return x ^ (x >> 31)
}

// timeOn is a time on a day (00:00:00 UTC in Unix seconds), the same for
// the row and date every time.
func (w *sbWorld) timeOn(day0 int64, key, i int) int64 {
	return day0 + int64(w.hash(key, i)%uint64(day))
}

// drawnSeen is what appendRow draws for row i's is_new and dates, drawn
// without writing the row: the same draws in the same order (a test holds
// the two together).
func (g *rowGen) drawnSeen(i int) (first, prev, last int64, isNew bool) {
	r := g.rand(i)
	sandbox.SkipSourceURL(r)
	if !g.isPage && r.IntN(3) > 0 {
		sandbox.Word(r)
	}
	isNew = r.IntN(20) == 0
	for _, n := range [...]int{60, 400, 300, 900, len(platforms), 254, 254, 254, 254, len(countries), 200, 300, 200000, len(languages)} {
		r.IntN(n)
	}
	sandbox.Word(r)
	sandbox.Word(r)
	r.IntN(len(titleEnds))
	first, prev, last = drawSeen(r)
	return first, prev, last, isNew
}

// sbFilter is filters compiled for the rows' dates: a condition on
// first_seen, prev_seen or last_seen, or on is_lost or is_new (= or <>
// with true or false), or a group. A group holds its members as "or" of
// "and" lists: "and" binds before "or", as in SQL. Conditions on any other
// field are not applied: they hold for every row.
type sbFilter struct {
	field string // "" for a group
	op    string
	at    int64 // a date condition's value, Unix seconds
	b     bool  // a flag condition's value
	or    [][]*sbFilter
}

// compileFilters compiles filters that checkFilters accepted; nil when
// no condition is applied.
func compileFilters(v json.RawMessage) *sbFilter {
	var f []any
	if json.Unmarshal(v, &f) != nil {
		return nil
	}
	return compileFilter(f)
}

func compileFilter(f []any) *sbFilter {
	if len(f) == 0 {
		return nil
	}
	if field, ok := f[0].(string); ok { // a condition
		if len(f) != 3 {
			return nil
		}
		op, _ := f[1].(string)
		switch field {
		case "first_seen", "prev_seen", "last_seen":
			at, ok := parseSeen(f[2])
			if !ok {
				return nil
			}
			return &sbFilter{field: field, op: op, at: at}
		case "is_lost", "is_new":
			b, ok := f[2].(bool)
			if !ok || (op != "=" && op != "<>") {
				return nil
			}
			return &sbFilter{field: field, op: op, b: b}
		}
		return nil
	}
	g := &sbFilter{}
	var and []*sbFilter
	always := false // an "and" list of conditions not applied: true for every row
	end := func() {
		if len(and) == 0 {
			always = true
		}
		g.or = append(g.or, and)
		and = nil
	}
	for k, e := range f {
		if k%2 == 1 {
			if s, _ := e.(string); strings.EqualFold(s, "or") {
				end()
			}
			continue
		}
		sub, _ := e.([]any)
		if c := compileFilter(sub); c != nil {
			and = append(and, c)
		}
	}
	end()
	if always {
		return nil
	}
	return g
}

func (f *sbFilter) match(s *sbSeen) bool {
	switch f.field {
	case "":
		for _, and := range f.or {
			all := true
			for _, c := range and {
				if !c.match(s) {
					all = false
					break
				}
			}
			if all {
				return true
			}
		}
		return false
	case "is_lost":
		return (s.isLost == f.b) == (f.op == "=")
	case "is_new":
		return (s.isNew == f.b) == (f.op == "=")
	}
	v := s.first
	switch f.field {
	case "prev_seen":
		v = s.prev
	case "last_seen":
		v = s.last
	}
	switch f.op {
	case "=":
		return v == f.at
	case "<>":
		return v != f.at
	case "<":
		return v < f.at
	case "<=":
		return v <= f.at
	case ">":
		return v > f.at
	}
	return v >= f.at
}

// SandboxChanges tells what the sandbox's world (o's seed, churn and day,
// as sandbox.Options.World resolves them) holds for target, in the order
// backlinks/live lists the rows: the url_from of its live rows, of the live
// rows first seen on or after since's day (new since, what a harvest on
// that day did not have), and of the rows last seen on or after it among
// the lost (lost since: rows that harvest had, and rows that came and went
// after it). The same rows as backlinks/live with backlinks_status_type
// live, live with ["first_seen",">=",since], and lost with
// ["last_seen",">=",since].
func SandboxChanges(o sandbox.Options, target string, since time.Time) (live, added, lost []string) {
	w := newSBWorld(o, target)
	from := sandbox.Day(since).Unix()
	list := func(status string, f *sbFilter) []string {
		lo, hi := w.candidates(status, w.h.N)
		_, rows := w.page(lo, hi, f, 0, hi-lo)
		urls := make([]string, len(rows))
		for k, i := range rows {
			urls[k] = w.g.sourceURL(i)
		}
		return urls
	}
	return list("live", nil), list("live", &sbFilter{field: "first_seen", op: ">=", at: from}),
		list("lost", &sbFilter{field: "last_seen", op: ">=", at: from})
}

// newLostCounts is bulk_new_lost_backlinks' count for one target: live
// rows first seen on or after the day from, and lost rows last seen on or
// after it, from the changes alone (no row is visited), as
// sandbox.History's EnteredSince and LostSince give them.
func newLostCounts(o sandbox.Options, target string, from time.Time) (added, lost int) {
	w := newSBWorld(o, target)
	lo, hi := w.h.EnteredSince(from)
	added = hi - lo
	if f := from.Unix(); f < seenEpoch+initialSeenDays*day {
		// Initial rows may be first seen after from: only when the world
		// is seen on a day CheckToday refuses. Count them one by one.
		live, _ := w.h.Live()
		for i := live; i < w.h.N; i++ {
			if s := w.seen(i); s.first >= f {
				added++
			}
		}
	}
	lo, hi = w.h.LostSince(from)
	return added, hi - lo
}
