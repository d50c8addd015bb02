package tasks

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hibiken/asynq"

	"github.com/linkharvest/linkharvest/internal/spend"
	"github.com/linkharvest/linkharvest/internal/testenv"
	"github.com/linkharvest/linkharvest/providers"
	"github.com/linkharvest/linkharvest/sink"
)

// changingVendor stands in for DataForSEO across two days: the rows live
// on the base job's day (then) and now, as row numbers of a domain. It
// answers what the delta options ask: the live rows (the job's plain
// request), the new ones (status live with a seen-date filter), the lost
// ones (status lost), and counts them in CountChanges.
type changingVendor struct {
	mu        sync.Mutex
	then, now map[string][]int
	calls     []string // "fetch DOMAIN CHAIN OFFSET" / "count N"
	// maxOffset > 0: past it, pages are reached by the cursor of the
	// page before (as DataForSEO's past 20,000 rows).
	maxOffset int
}

func (v *changingVendor) Paging(string) (providers.Paging, error) {
	return providers.Paging{Kind: providers.PagingOffset, PageSize: 10, MaxOffset: v.maxOffset, CursorPastMax: v.maxOffset > 0}, nil
}

func (v *changingVendor) rows(domain, chain string) []int {
	then, now := v.then[domain], v.now[domain]
	switch chain {
	case "new":
		return slices.DeleteFunc(slices.Clone(now), func(i int) bool { return slices.Contains(then, i) })
	case "lost":
		return slices.DeleteFunc(slices.Clone(then), func(i int) bool { return slices.Contains(now, i) })
	}
	return now
}

func chainOf(params map[string]json.RawMessage) string {
	switch string(params["backlinks_status_type"]) {
	case `"lost"`:
		return "lost"
	case `"live"`:
		if strings.Contains(string(params["filters"]), "first_seen") {
			return "new"
		}
	}
	return "full"
}

func (v *changingVendor) Fetch(_ context.Context, r providers.Request) (*providers.Page, error) {
	v.mu.Lock()
	defer v.mu.Unlock()
	chain := chainOf(r.Params)
	v.calls = append(v.calls, fmt.Sprintf("fetch %s %s %d", r.Domain, chain, r.Offset))
	rows := v.rows(r.Domain, chain)
	if v.maxOffset > 0 && r.Offset > v.maxOffset && r.Cursor != fmt.Sprintf("%s@%d", chain, r.Offset) {
		return nil, fmt.Errorf("offset %d past %d without the cursor of the page before (got %q)", r.Offset, v.maxOffset, r.Cursor)
	}
	p := &providers.Page{Total: len(rows)}
	if end := r.Offset + r.Limit; end < len(rows) {
		p.Next = fmt.Sprintf("%s@%d", chain, end)
	}
	for _, i := range rows[min(r.Offset, len(rows)):min(r.Offset+r.Limit, len(rows))] {
		u := fmt.Sprintf("https://src.example/%s/%d", r.Domain, i)
		p.Items = append(p.Items, providers.Item{Kind: "backlink", SourceURL: &u, Raw: json.RawMessage(fmt.Sprintf(`{"i":%d}`, i))})
	}
	return p, nil
}

func (v *changingVendor) CountChanges(_ context.Context, targets []string, _ time.Time) (map[string]providers.ChangeCount, float64, error) {
	v.mu.Lock()
	defer v.mu.Unlock()
	v.calls = append(v.calls, fmt.Sprintf("count %d", len(targets)))
	out := map[string]providers.ChangeCount{}
	for _, t := range targets {
		out[t] = providers.ChangeCount{New: len(v.rows(t, "new")), Lost: len(v.rows(t, "lost"))}
	}
	return out, 0.02, nil
}

func span(a, b int) []int {
	var out []int
	for i := a; i < b; i++ {
		out = append(out, i)
	}
	return out
}

// TestRefreshFetchesOnlyTheChange: a refresh of a finished job counts the
// changes of its domains in one call, makes no other call for an
// unchanged domain, fetches a changed one's new and lost rows (each chain
// paged on its own pages), a domain new to the list in full, and the base
// job's rows minus the lost plus the new are the rows live now.
func TestRefreshFetchesOnlyTheChange(t *testing.T) {
	// The refresh's domains enqueued at once, and all of them fed by a
	// worker's feeder: the same calls and the same delta.
	for _, fed := range []bool{false, true} {
		t.Run(fmt.Sprintf("fed=%v", fed), func(t *testing.T) { refreshFetchesOnlyTheChange(t, fed) })
	}
}

func refreshFetchesOnlyTheChange(t *testing.T, fed bool) {
	r := newRig(t)
	v := &changingVendor{
		then: map[string][]int{"same.example": span(0, 15), "grown.example": span(0, 20), "shrunk.example": span(0, 5)},
		now: map[string][]int{"same.example": span(0, 15), "grown.example": span(3, 45), "shrunk.example": span(2, 5),
			"added.example": span(0, 7)},
	}
	r.w.Providers = map[string]Provider{"dataforseo": v}
	ctx := context.Background()
	spec := Spec{Providers: []string{"dataforseo"}, Endpoints: map[string][]string{"dataforseo": {"backlinks"}}}
	v.now, v.then = v.then, v.now // the base job sees the first day
	r.submitWith("base", spec, "same.example", "grown.example", "shrunk.example")
	r.drain()
	v.now, v.then = v.then, v.now
	base, err := r.w.Store.Job(ctx, "base")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := NewRefreshSpec(RefreshRequest{Base: base, State: "running", Now: time.Now()}); err == nil {
		t.Error("a refresh of a job that has not ended was accepted")
	}
	rspec, err := NewRefreshSpec(RefreshRequest{Base: base, State: "done", Since: time.Now().Format(time.DateOnly), Now: time.Now()})
	if err != nil {
		t.Fatal(err)
	}
	v.calls = nil
	if fed {
		r.sub.FeedAfter, r.feedJob = -1, "refresh"
	}
	r.submitWith("refresh", rspec, "same.example", "grown.example", "shrunk.example", "added.example")
	if fed {
		if st := r.status("refresh"); st.Unfed != 4 || st.Tasks != 0 {
			t.Fatalf("refresh submitted with %d unfed, %d tasks; want 4, 0", st.Unfed, st.Tasks)
		}
		r.feedAll("feeder")
	}
	r.drain()

	// Calls: one count for the three domains the base holds, none more
	// for the unchanged one, the grown one's 25 new rows in 3 pages and
	// its 3 lost in 1, the shrunk one's lost only, the added one in full.
	want := []string{"count 3", "fetch added.example full 0", "fetch grown.example lost 0", "fetch grown.example new 0",
		"fetch grown.example new 10", "fetch grown.example new 20", "fetch shrunk.example lost 0"}
	got := slices.Sorted(slices.Values(v.calls))
	if !slices.Equal(got, want) {
		t.Errorf("calls\n got %v\nwant %v", got, want)
	}
	// Base − lost + new = now, by source URL, and each change row once.
	current := map[string]map[string]bool{}
	for _, rec := range r.records("base") {
		if current[rec.Domain] == nil {
			current[rec.Domain] = map[string]bool{}
		}
		current[rec.Domain][*rec.SourceURL] = true
	}
	pages := map[string][]int{}
	for _, rec := range r.records("refresh") {
		if current[rec.Domain] == nil {
			current[rec.Domain] = map[string]bool{}
		}
		switch rec.Change {
		case "new":
			if current[rec.Domain][*rec.SourceURL] {
				t.Errorf("%s: new row %s was in the base job", rec.Domain, *rec.SourceURL)
			}
			current[rec.Domain][*rec.SourceURL] = true
			if rec.Page%2 != 1 {
				t.Errorf("a new row on page %d", rec.Page)
			}
		case "lost":
			if !current[rec.Domain][*rec.SourceURL] {
				t.Errorf("%s: lost row %s was not in the base job", rec.Domain, *rec.SourceURL)
			}
			delete(current[rec.Domain], *rec.SourceURL)
			if rec.Page%2 != 0 {
				t.Errorf("a lost row on page %d", rec.Page)
			}
		case "":
			if rec.Domain != "added.example" {
				t.Errorf("%s: a row without change", rec.Domain)
			}
			current[rec.Domain][*rec.SourceURL] = true
		}
		if !slices.Contains(pages[rec.Domain], rec.Page) {
			pages[rec.Domain] = append(pages[rec.Domain], rec.Page)
		}
	}
	for d, rows := range v.now {
		var want []string
		for _, i := range rows {
			want = append(want, fmt.Sprintf("https://src.example/%s/%d", d, i))
		}
		if got := slices.Sorted(maps.Keys(current[d])); !slices.Equal(got, slices.Sorted(slices.Values(want))) {
			t.Errorf("%s: base − lost + new has %d rows, now %d", d, len(got), len(want))
		}
	}
	if p := slices.Sorted(slices.Values(pages["grown.example"])); !slices.Equal(p, []int{1, 2, 3, 5}) {
		t.Errorf("grown.example's pages %v, want [1 2 3 5]", p)
	}
	st := r.status("refresh")
	if st.State != "done" || st.BaseJob != "base" || st.Unchanged != 1 || st.Changed != 2 || st.Full != 1 {
		t.Errorf("status: state %s base %q unchanged %d changed %d full %d", st.State, st.BaseJob, st.Unchanged, st.Changed, st.Full)
	}
	m := r.manifest("refresh")
	if m.BaseJob != "base" || m.Since == "" {
		t.Errorf("manifest: base_job %q since %q", m.BaseJob, m.Since)
	}
	byDomain := map[string]ManifestOutcome{}
	for _, o := range m.Outcomes {
		byDomain[o.Domain] = o
	}
	for d, want := range map[string][2]string{"same.example": {"unchanged", "unchanged"}, "grown.example": {"ok", "delta"},
		"shrunk.example": {"ok", "delta"}, "added.example": {"ok", "full"}} {
		if o := byDomain[d]; o.Status != want[0] || o.Refresh != want[1] {
			t.Errorf("%s: status %s refresh %s, want %v", d, o.Status, o.Refresh, want)
		}
	}
	if byDomain["added.example"].RefreshReason == "" {
		t.Error("a domain fetched in full does not say why")
	}
}

// TestRefreshCheckRunsAgain: a check that runs again (a crash after its
// count, a duplicate delivery) pays for the count once and changes nothing.
func TestRefreshCheckRunsAgain(t *testing.T) {
	r := newRig(t)
	v := &changingVendor{then: map[string][]int{"x.example": span(0, 3)}, now: map[string][]int{"x.example": span(1, 4)}}
	r.w.Providers = map[string]Provider{"dataforseo": v}
	ctx := context.Background()
	spec := Spec{Providers: []string{"dataforseo"}, Endpoints: map[string][]string{"dataforseo": {"backlinks"}}}
	v.now, v.then = v.then, v.now
	r.submitWith("base2", spec, "x.example")
	r.drain()
	v.now, v.then = v.then, v.now
	base, _ := r.w.Store.Job(ctx, "base2")
	rspec, err := NewRefreshSpec(RefreshRequest{Base: base, State: "done", Now: time.Now()})
	if err != nil {
		t.Fatal(err)
	}
	r.submitWith("refresh2", rspec, "x.example")
	c := CheckPayload{Job: "refresh2", Provider: "dataforseo", Endpoint: "backlinks", Domains: []string{"x.example"}}
	job, _ := r.w.job(ctx, "refresh2")
	// The count is kept before its domains are dealt with: run it as a
	// crash would leave it, then the whole check twice.
	if _, err := r.w.countChanges(ctx, job, &c, c.Domains); err != nil {
		t.Fatal(err)
	}
	r.drain()
	b, _ := json.Marshal(c)
	if err := r.w.processCheck(ctx, asynq.NewTask(TypeCheck, b)); err != nil {
		t.Fatal(err)
	}
	counts := 0
	for _, call := range v.calls {
		if strings.HasPrefix(call, "count") {
			counts++
		}
	}
	if counts != 1 {
		t.Errorf("%d counting calls, want 1: %v", counts, v.calls)
	}
	st := r.status("refresh2")
	if st.State != "done" || st.Changed != 1 || st.Records != 2 {
		t.Errorf("status %+v", st)
	}
	if spend := st.Spend["dataforseo"]; spend < 0.02 || spend > 0.0201 {
		t.Errorf("the ledger holds %v for the count, want 0.02 once", spend)
	}
}

// records decodes the job's data objects.
func (r *rig) records(job string) []sink.Record {
	r.t.Helper()
	r.sink.mu.Lock()
	defer r.sink.mu.Unlock()
	var out []sink.Record
	for k, b := range r.sink.objs {
		if !strings.Contains(k, "job="+job+"/") {
			continue
		}
		recs, err := sink.DecodePage(b)
		if err != nil {
			r.t.Fatal(err)
		}
		out = append(out, recs...)
	}
	return out
}

// TestRefreshRoute: in a refresh, the first pages of endpoints the vendor
// counts changes of go into checks of at most a count call's worth of
// domains; every other endpoint is fetched in full and says why; a job
// that is not a refresh enqueues its pages as they are.
func TestRefreshRoute(t *testing.T) {
	pages := func(eps ...string) []PagePayload {
		var out []PagePayload
		for i := range 2500 {
			for _, ep := range eps {
				p, e, _ := strings.Cut(ep, ".")
				out = append(out, PagePayload{Job: "j", Provider: p, Endpoint: e, Domain: fmt.Sprintf("d%d.example", i), Page: 1})
			}
		}
		return out
	}
	refresh := &Refresh{BaseJob: "b", Since: "2026-01-01"}
	tests := []struct {
		name    string
		refresh *Refresh
		eps     []string
		direct  int
		checks  []int // domains per check
	}{
		{"not a refresh", nil, []string{"dataforseo.backlinks"}, 2500, nil},
		{"dataforseo backlinks", refresh, []string{"dataforseo.backlinks"}, 0, []int{1000, 1000, 500}},
		{"summary and another vendor in full", refresh, []string{"dataforseo.backlinks", "dataforseo.summary", "xovi.backlinks"}, 5000, []int{1000, 1000, 500}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			spec := Spec{Refresh: tt.refresh}
			direct, checks := spec.route(pages(tt.eps...))
			if len(direct) != tt.direct {
				t.Errorf("%d pages enqueued as they are, want %d", len(direct), tt.direct)
			}
			for _, p := range direct {
				if (p.Full != "") != (tt.refresh != nil) {
					t.Errorf("page %s: full %q", p.Unit(), p.Full)
					break
				}
			}
			var sizes []int
			for _, c := range checks {
				sizes = append(sizes, len(c.Domains))
				if c.Provider != "dataforseo" || c.Endpoint != "backlinks" {
					t.Errorf("a check of %s.%s", c.Provider, c.Endpoint)
				}
			}
			if !slices.Equal(sizes, tt.checks) {
				t.Errorf("checks of %v domains, want %v", sizes, tt.checks)
			}
			if len(checks) > 1 && checks[0].TaskID() == checks[1].TaskID() {
				t.Error("two checks share a task id")
			}
		})
	}
}

// TestRefreshDeltaPastMaxOffset: a delta chain longer than the vendor's
// largest offset is walked on by cursor, as a full harvest is, each row once.
func TestRefreshDeltaPastMaxOffset(t *testing.T) {
	r := newRig(t)
	v := &changingVendor{maxOffset: 20,
		then: map[string][]int{"big.example": span(0, 50)}, now: map[string][]int{"big.example": span(0, 100)}}
	r.w.Providers = map[string]Provider{"dataforseo": v}
	ctx := context.Background()
	spec := Spec{Providers: []string{"dataforseo"}, Endpoints: map[string][]string{"dataforseo": {"backlinks"}}}
	v.now, v.then = v.then, v.now
	r.submitWith("base3", spec, "big.example")
	r.drain()
	v.now, v.then = v.then, v.now
	base, _ := r.w.Store.Job(ctx, "base3")
	rspec, err := NewRefreshSpec(RefreshRequest{Base: base, State: "done", Now: time.Now()})
	if err != nil {
		t.Fatal(err)
	}
	r.submitWith("refresh3", rspec, "big.example")
	r.drain()
	got := map[int]bool{}
	pages := map[int]bool{}
	for _, rec := range r.records("refresh3") {
		var raw struct{ I int }
		json.Unmarshal(rec.Raw, &raw)
		if rec.Change != "new" || got[raw.I] {
			t.Errorf("row %d: change %q, or twice", raw.I, rec.Change)
		}
		got[raw.I] = true
		pages[rec.Page] = true
	}
	if len(got) != 50 || !got[50] || !got[99] {
		t.Errorf("%d new rows written, want rows 50..99", len(got))
	}
	if want := []int{1, 3, 5, 7, 9}; !slices.Equal(slices.Sorted(maps.Keys(pages)), want) {
		t.Errorf("pages %v, want %v", slices.Sorted(maps.Keys(pages)), want)
	}
}

// TestBaseHoldsWhole: a job's manifest records the domains whose rows it
// does not hold whole, and a refresh's look-up of its base says so (such a
// domain is fetched in full); a domain the base never had is not known.
func TestBaseHoldsWhole(t *testing.T) {
	s := NewStore(testenv.Redis(t).Client(t))
	ctx := context.Background()
	spec := Spec{Providers: []string{"dataforseo"}, Endpoints: map[string][]string{"dataforseo": {"backlinks"}}}
	if _, err := s.create(ctx, "b", spec, time.Now()); err != nil {
		t.Fatal(err)
	}
	units := []string{"dataforseo|backlinks|ok.example|1", "dataforseo|backlinks|part.example|1", "dataforseo|backlinks|part.example|2"}
	if _, err := s.register(ctx, "b", 0, 0, units); err != nil {
		t.Fatal(err)
	}
	for i, o := range []Outcome{{Status: "ok", Records: 3}, {Status: "ok", Records: 10}, {Status: "failed", Error: "x"}} {
		if _, err := s.end(ctx, "b", units[i], o, true, nil); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := s.writeManifest(ctx, io.Discard, "b", "now"); err != nil {
		t.Fatal(err)
	}
	known, whole, err := s.BaseState(ctx, "b", "dataforseo", "backlinks", []string{"ok.example", "part.example", "new.example"})
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(known, []bool{true, true, false}) || !slices.Equal(whole, []bool{true, false, false}) {
		t.Errorf("known %v whole %v, want [true true false] [true false false]", known, whole)
	}
}

// failingCounter counts nothing: the account's key is refused.
type failingCounter struct{ *changingVendor }

func (*failingCounter) CountChanges(context.Context, []string, time.Time) (map[string]providers.ChangeCount, float64, error) {
	return nil, 0, &providers.Error{Provider: "dataforseo", Class: providers.Fatal, Code: "40100", Message: "not authorized"}
}

// TestRefreshCheckFailsForGood: a check that fails for good ends its
// domains as failed, with the vendor's message, so the job ends.
func TestRefreshCheckFailsForGood(t *testing.T) {
	r := newRig(t)
	v := &changingVendor{then: map[string][]int{"x.example": span(0, 3), "y.example": span(0, 2)}}
	v.now = v.then
	r.w.Providers = map[string]Provider{"dataforseo": v}
	ctx := context.Background()
	spec := Spec{Providers: []string{"dataforseo"}, Endpoints: map[string][]string{"dataforseo": {"backlinks"}}}
	r.submitWith("base4", spec, "x.example", "y.example")
	r.drain()
	base, _ := r.w.Store.Job(ctx, "base4")
	rspec, err := NewRefreshSpec(RefreshRequest{Base: base, State: "done", Now: time.Now()})
	if err != nil {
		t.Fatal(err)
	}
	r.w.Providers = map[string]Provider{"dataforseo": &failingCounter{v}}
	r.submitWith("refresh4", rspec, "x.example", "y.example")
	c := CheckPayload{Job: "refresh4", Provider: "dataforseo", Endpoint: "backlinks", Domains: []string{"x.example", "y.example"}}
	b, _ := json.Marshal(c)
	task := asynq.NewTask(TypeCheck, b)
	err = r.w.handleCheck(ctx, task)
	if !errors.Is(err, asynq.SkipRetry) {
		t.Fatalf("check: %v, want a failure for good", err)
	}
	r.w.HandleError(ctx, task, err)
	r.drain() // the finalize
	st := r.status("refresh4")
	if st.State != "done" || st.Failed != 2 {
		t.Fatalf("status: state %s, %d failed; want done, 2", st.State, st.Failed)
	}
	for _, o := range r.manifest("refresh4").Outcomes {
		if o.Status != "failed" || !strings.Contains(o.Error, "not authorized") {
			t.Errorf("%s: %s %q", o.Domain, o.Status, o.Error)
		}
	}
}

// TestRefreshCountWithinBudget: the count is a call like a page's: one
// that does not fit in the job's budget waits, and is not made.
func TestRefreshCountWithinBudget(t *testing.T) {
	r := newRig(t)
	v := &changingVendor{then: map[string][]int{"x.example": span(0, 3)}}
	v.now = v.then
	r.w.Providers = map[string]Provider{"dataforseo": v}
	r.w.Prices = spend.Default()
	ctx := context.Background()
	spec := Spec{Providers: []string{"dataforseo"}, Endpoints: map[string][]string{"dataforseo": {"backlinks"}}}
	r.submitWith("base5", spec, "x.example")
	r.drain()
	base, _ := r.w.Store.Job(ctx, "base5")
	rspec, _ := NewRefreshSpec(RefreshRequest{Base: base, State: "done", Now: time.Now()})
	r.submitWith("refresh5", rspec, "x.example")
	if err := r.w.Store.SetBudget(ctx, "refresh5", map[string]float64{"dataforseo": 0.01}); err != nil {
		t.Fatal(err)
	}
	v.calls = nil
	c := CheckPayload{Job: "refresh5", Provider: "dataforseo", Endpoint: "backlinks", Domains: []string{"x.example"}}
	b, _ := json.Marshal(c)
	err := r.w.handleCheck(ctx, asynq.NewTask(TypeCheck, b))
	var be *budgetError
	if !errors.As(err, &be) || IsFailure(err) {
		t.Errorf("a count over the budget: %v, want a wait for budget", err)
	}
	if len(v.calls) != 0 {
		t.Errorf("calls made over the budget: %v", v.calls)
	}
}
