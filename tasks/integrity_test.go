package tasks

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"

	"github.com/linkharvest/linkharvest/internal/testenv"
	"github.com/linkharvest/linkharvest/providers"
	"github.com/linkharvest/linkharvest/sink"
)

// The integrity tests run a job's tasks one at a time, in this process,
// against a real Redis: a fake vendor whose totals can move, and a sink
// that can refuse writes. drain plays the worker fleet deterministically.

// movingVendor pages rows 0..n-1 of a domain, 10 a page; its total is
// first at offset 0 and then at every later offset.
type movingVendor struct {
	mu     sync.Mutex
	first  map[string]int
	then   map[string]int
	calls  map[string]int // domain|offset -> calls
	limits []int          // the limit of every call, in order
}

func (v *movingVendor) Paging(string) (providers.Paging, error) {
	return providers.Paging{Kind: providers.PagingOffset, PageSize: 10}, nil
}

func (v *movingVendor) Fetch(_ context.Context, r providers.Request) (*providers.Page, error) {
	v.mu.Lock()
	defer v.mu.Unlock()
	v.calls[fmt.Sprintf("%s|%d", r.Domain, r.Offset)]++
	v.limits = append(v.limits, r.Limit)
	total := v.then[r.Domain]
	if r.Offset == 0 {
		total = v.first[r.Domain]
	}
	limit := r.Limit
	if limit <= 0 {
		limit = 10
	}
	p := &providers.Page{Total: total}
	for i := r.Offset; i < min(total, r.Offset+limit); i++ {
		u := fmt.Sprintf("https://src.example/%s/%d", r.Domain, i)
		p.Items = append(p.Items, providers.Item{Kind: "backlink", SourceURL: &u, Raw: json.RawMessage(fmt.Sprintf(`{"i":%d}`, i))})
	}
	return p, nil
}

func (v *movingVendor) totalCalls() int {
	v.mu.Lock()
	defer v.mu.Unlock()
	n := 0
	for _, c := range v.calls {
		n += c
	}
	return n
}

// memSink keeps objects in memory and refuses every write while down.
type memSink struct {
	mu   sync.Mutex
	objs map[string][]byte
	down bool
	log  []string // "put KEY" / "delete KEY", in order
}

func (s *memSink) String() string { return "mem://test" }

func (s *memSink) Put(_ context.Context, key string, body []byte, _ string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.down {
		return errors.New("connection refused")
	}
	s.objs[key] = append([]byte(nil), body...)
	s.log = append(s.log, "put "+key)
	return nil
}

func (s *memSink) PutStream(ctx context.Context, key string, write func(io.Writer) error, ct string) error {
	var b strings.Builder
	if err := write(&b); err != nil {
		return err
	}
	return s.Put(ctx, key, []byte(b.String()), ct)
}

func (s *memSink) Delete(_ context.Context, key string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.down {
		return errors.New("connection refused")
	}
	delete(s.objs, key)
	s.log = append(s.log, "delete "+key)
	return nil
}

func (s *memSink) has(key string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	_, ok := s.objs[key]
	return ok
}

func (s *memSink) setDown(d bool) { s.mu.Lock(); s.down = d; s.mu.Unlock() }

type rig struct {
	t       *testing.T
	rdb     *redis.Client
	w       *Worker
	sub     *Submitter
	vendor  *movingVendor
	sink    *memSink
	insp    *asynq.Inspector
	feedJob string // the job feedAll waits for
}

func newRig(t *testing.T) *rig {
	rdb := testenv.Redis(t).Client(t)
	v := &movingVendor{first: map[string]int{}, then: map[string]int{}, calls: map[string]int{}}
	snk := &memSink{objs: map[string][]byte{}}
	client := asynq.NewClientFromRedisClient(rdb)
	t.Cleanup(func() { client.Close() })
	store := NewStore(rdb)
	w := &Worker{Store: store, Client: client, Sink: snk, Providers: map[string]Provider{"v": v},
		Log: slog.New(slog.NewTextHandler(io.Discard, nil))}
	return &rig{t: t, rdb: rdb, w: w, sub: &Submitter{Store: store, Client: client}, vendor: v, sink: snk,
		insp: asynq.NewInspectorFromRedisClient(rdb)}
}

var vSpec = Spec{Providers: []string{"v"}, Endpoints: map[string][]string{"v": {"backlinks"}}}

// domain adds a domain whose total is first, then then.
func (r *rig) domain(d string, first, then int) { r.vendor.first[d], r.vendor.then[d] = first, then }

func (r *rig) submit(job string, domains ...string) SubmitStats {
	r.t.Helper()
	return r.submitWith(job, vSpec, domains...)
}

func (r *rig) submitWith(job string, spec Spec, domains ...string) SubmitStats {
	r.t.Helper()
	ctx := context.Background()
	b, err := r.sub.Begin(ctx, job, spec, nil)
	if err != nil {
		r.t.Fatal(err)
	}
	for _, d := range domains {
		if err := b.Add(ctx, d); err != nil {
			r.t.Fatal(err)
		}
	}
	st, err := b.Close(ctx)
	if err != nil {
		r.t.Fatal(err)
	}
	return st
}

// runOnce runs every task now pending (pages, then finalize) once and
// returns the errors of those that asked to be retried; those stay queued.
func (r *rig) runOnce(queues ...string) []error {
	r.t.Helper()
	if len(queues) == 0 {
		queues = r.queues()
	}
	var errs []error
	for _, q := range queues {
		infos, err := r.insp.ListPendingTasks(q, asynq.PageSize(1000))
		if err != nil && !errors.Is(err, asynq.ErrQueueNotFound) {
			r.t.Fatal(err)
		}
		for _, ti := range infos {
			task := asynq.NewTask(ti.Type, ti.Payload)
			var err error
			switch ti.Type {
			case TypePage:
				err = r.w.handlePage(context.Background(), task)
			case TypeCheck:
				err = r.w.handleCheck(context.Background(), task)
			default:
				err = r.w.processFinalize(context.Background(), task)
			}
			if err != nil {
				if errors.Is(err, asynq.SkipRetry) {
					r.t.Fatalf("task %s failed for good: %v", ti.ID, err)
				}
				errs = append(errs, err)
				continue
			}
			if err := r.insp.DeleteTask(q, ti.ID); err != nil {
				r.t.Fatal(err)
			}
		}
	}
	return errs
}

// queues are the provider queues the rig's worker serves, and the control queue.
func (r *rig) queues() []string {
	var qs []string
	for p := range r.w.Providers {
		qs = append(qs, p)
	}
	sort.Strings(qs)
	return append(qs, ControlQueue)
}

// drain runs tasks until none is pending.
func (r *rig) drain() {
	r.t.Helper()
	for i := 0; i < 50; i++ {
		if errs := r.runOnce(); len(errs) > 0 {
			r.t.Fatalf("tasks asked to be retried: %v", errs)
		}
		n := 0
		for _, q := range r.queues() {
			if qi, err := r.insp.GetQueueInfo(q); err == nil {
				n += qi.Pending
			}
		}
		if n == 0 {
			return
		}
	}
	r.t.Fatal("tasks keep coming")
}

// rows decodes every data object of the job: source URLs, each once.
func (r *rig) rows(job string) map[string]int {
	r.t.Helper()
	out := map[string]int{}
	for _, rec := range r.records(job) {
		out[*rec.SourceURL]++
	}
	return out
}

func (r *rig) manifest(job string) Manifest {
	r.t.Helper()
	r.sink.mu.Lock()
	b := r.sink.objs[sink.ManifestKey(job)]
	r.sink.mu.Unlock()
	var m Manifest
	if err := json.Unmarshal(b, &m); err != nil {
		r.t.Fatalf("manifest of %s: %v", job, err)
	}
	return m
}

func (r *rig) status(job string) *Status {
	r.t.Helper()
	st, err := r.w.Store.Status(context.Background(), job)
	if err != nil {
		r.t.Fatal(err)
	}
	return st
}

// wantRows requires rows 0..n-1 of domain d, each exactly once.
func wantRows(t *testing.T, got map[string]int, d string, n int) {
	t.Helper()
	for i := 0; i < n; i++ {
		u := fmt.Sprintf("https://src.example/%s/%d", d, i)
		if got[u] != 1 {
			t.Errorf("%s row %d: %d copies, want 1", d, i, got[u])
		}
	}
	extra := 0
	for u := range got {
		if strings.Contains(u, "/"+d+"/") {
			extra++
		}
	}
	if extra != n {
		t.Errorf("%s: %d rows, want %d", d, extra, n)
	}
}

// TestTotalsThatMove: a total that grows between pages adds the missing
// pages, once; one that shrinks ends the domain when the rows end; the
// manifest records the totals seen.
func TestTotalsThatMove(t *testing.T) {
	cases := []struct {
		name        string
		first, then int
		calls       int
	}{
		{"steady", 25, 25, 3},
		{"grows", 15, 35, 4},
		{"shrinks", 35, 15, 4}, // pages 3 and 4 were planned and come back empty
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r := newRig(t)
			d := "d.example"
			r.domain(d, c.first, c.then)
			r.submit("move", d)
			r.drain()
			wantRows(t, r.rows("move"), d, c.then)
			if n := r.vendor.totalCalls(); n != c.calls {
				t.Errorf("%d vendor calls, want %d", n, c.calls)
			}
			m := r.manifest("move")
			if len(m.Outcomes) != 1 || m.Outcomes[0].Records != c.then {
				t.Fatalf("outcomes %+v", m.Outcomes)
			}
			seen := m.Outcomes[0].TotalsSeen
			if c.first != c.then && fmt.Sprint(seen) != fmt.Sprint(sorted(c.first, c.then)) {
				t.Errorf("totals seen %v, want %v", seen, sorted(c.first, c.then))
			}
			if !r.sink.has(sink.SuccessKey("move")) || r.status("move").State != "done" {
				t.Error("the job did not end")
			}
		})
	}
}

func sorted(a ...int) []int { sort.Ints(a); return a }

// TestSinkOutageKeepsPaidPages: a sink that refuses writes for longer
// than any retry budget loses nothing and buys nothing twice: the fetched
// page waits in the stash without spending a retry, pages not yet fetched
// are not bought meanwhile, the status says why the job waits, and every
// row lands once the sink is back.
func TestSinkOutageKeepsPaidPages(t *testing.T) {
	r := newRig(t)
	r.domain("a.example", 25, 25)
	r.domain("b.example", 5, 5)
	r.sink.setDown(true)
	r.submit("out", "a.example")
	errs := r.runOnce()
	if len(errs) != 1 {
		t.Fatalf("errors %v, want one page waiting", errs)
	}
	var se *sinkError
	if !errors.As(errs[0], &se) || IsFailure(errs[0]) {
		t.Fatalf("a refused write is %v (failure %v): it must wait, not spend a retry", errs[0], IsFailure(errs[0]))
	}
	st := r.status("out")
	if st.Stashed != 1 || st.StashBytes == 0 || !strings.Contains(st.WaitingFor(), "sink") {
		t.Fatalf("status while the sink is down: stashed %d (%d bytes), waiting for %q", st.Stashed, st.StashBytes, st.WaitingFor())
	}
	if pages, bytes, err := r.w.Store.StashTotals(context.Background()); err != nil || pages != 1 || bytes != st.StashBytes {
		t.Fatalf("the metrics' stash totals: %d pages, %d bytes, %v; want 1 page of %d bytes", pages, bytes, err, st.StashBytes)
	}
	// Many more rounds than a retry budget: no new call, no loss.
	r.submit("out", "b.example")
	for i := 0; i < 3*MaxRetry; i++ {
		for _, err := range r.runOnce() {
			if IsFailure(err) {
				t.Fatalf("round %d: %v counts as a failure", i, err)
			}
		}
	}
	if n := r.vendor.totalCalls(); n != 1 {
		t.Fatalf("%d vendor calls while the sink was down, want 1 (the page already fetched)", n)
	}
	r.sink.setDown(false)
	// The stashed page clears the outage flag when it lands; the rest follow.
	r.drain()
	wantRows(t, r.rows("out"), "a.example", 25)
	wantRows(t, r.rows("out"), "b.example", 5)
	if n := r.vendor.totalCalls(); n != 4 {
		t.Errorf("%d vendor calls, want 4 (one per page)", n)
	}
	if st := r.status("out"); st.State != "done" || st.Stashed != 0 || st.StashBytes != 0 || st.SinkDown != "" {
		t.Errorf("after the outage: %+v", st)
	}
	if pages, bytes, _ := r.w.Store.StashTotals(context.Background()); pages != 0 || bytes != 0 {
		t.Errorf("the metrics' stash totals after the outage: %d pages, %d bytes", pages, bytes)
	}
}

// TestLostStashIsFetchedAgain: a page whose stash expired fails with that
// reason, and a resubmission fetches it (and only it) again.
func TestLostStashIsFetchedAgain(t *testing.T) {
	r := newRig(t)
	r.domain("a.example", 25, 25)
	r.sink.setDown(true)
	r.submit("lost", "a.example")
	r.runOnce()
	ctx := context.Background()
	if err := r.rdb.Del(ctx, keysFor("lost").stash("v|backlinks|a.example|1")).Err(); err != nil {
		t.Fatal(err)
	}
	r.sink.setDown(false)
	r.rdb.Del(ctx, r.w.sinkDownKey())
	r.drain()
	m := r.manifest("lost")
	if len(m.Outcomes) != 1 || m.Outcomes[0].Status != "failed" || !strings.Contains(m.Outcomes[0].Error, "expired") {
		t.Fatalf("outcome of a page whose stash expired: %+v", m.Outcomes)
	}
	if st := r.status("lost"); st.Stashed != 0 || st.StashBytes != 0 {
		t.Errorf("an expired stash still counts: %d pages, %d bytes", st.Stashed, st.StashBytes)
	}
	calls := r.vendor.totalCalls()
	if st := r.submit("lost", "a.example"); st.Refetched != 1 || st.Tasks != 0 {
		t.Fatalf("resubmission: %+v, want 1 page fetched again and no new domain", st)
	}
	r.drain()
	wantRows(t, r.rows("lost"), "a.example", 25)
	if n := r.vendor.totalCalls() - calls; n != 3 {
		t.Errorf("the resubmission made %d calls, want 3 (the lost page 1 and the two pages it plans)", n)
	}
	m = r.manifest("lost")
	if m.Outcomes[0].Status != "ok" || m.Totals.Failed != 0 || r.status("lost").Failed != 0 {
		t.Errorf("after the refetch: %+v, totals %+v", m.Outcomes, m.Totals)
	}
}

// TestResubmissionReopensTheJob: work added to an ended job puts it back
// to running before its first task exists, removes _SUCCESS (and marks
// the manifest superseded) before any new page runs, and the next end
// writes the manifest, then _SUCCESS, again.
func TestResubmissionReopensTheJob(t *testing.T) {
	r := newRig(t)
	r.domain("a.example", 5, 5)
	r.domain("b.example", 15, 15)
	r.submit("grow", "a.example")
	r.drain()
	if r.status("grow").State != "done" || !r.sink.has(sink.SuccessKey("grow")) {
		t.Fatal("the first run did not end")
	}
	// Nothing new: still done, nothing enqueued.
	if st := r.submit("grow", "a.example"); st.Tasks != 0 || r.status("grow").State != "done" {
		t.Fatalf("a resubmission of the same list changed the job: %+v, %s", st, r.status("grow").State)
	}
	r.submit("grow", "a.example", "b.example")
	if st := r.status("grow"); st.State != "running" {
		t.Fatalf("state after a resubmission that adds work: %s", st.State)
	}
	r.sink.mu.Lock()
	r.sink.log = nil
	r.sink.mu.Unlock()
	r.drain()
	r.sink.mu.Lock()
	log := strings.Join(r.sink.log, "\n")
	r.sink.mu.Unlock()
	// Order: _SUCCESS removed, manifest superseded, pages, manifest, marker gone, _SUCCESS.
	want := []string{"delete jobs/grow/_SUCCESS", "put jobs/grow/_SUPERSEDED", "put provider=v", "put jobs/grow/manifest.json",
		"delete jobs/grow/_SUPERSEDED", "put jobs/grow/_SUCCESS"}
	at := 0
	for _, w := range want {
		i := strings.Index(log[at:], w)
		if i < 0 {
			t.Fatalf("sink writes out of order: %q not after position %d in\n%s", w, at, log)
		}
		at += i + len(w)
	}
	if r.status("grow").State != "done" || len(r.manifest("grow").Outcomes) != 2 {
		t.Errorf("after the grown run: %s, %d outcomes", r.status("grow").State, len(r.manifest("grow").Outcomes))
	}
}

// TestReopenWaitsForAFinalizer: a page of work added while the job's
// manifest is being written waits (without spending a retry) until the
// finalizer is done, then removes its _SUCCESS.
func TestReopenWaitsForAFinalizer(t *testing.T) {
	r := newRig(t)
	r.domain("a.example", 5, 5)
	r.domain("b.example", 5, 5)
	r.submit("fin", "a.example")
	r.runOnce("v") // the page; finalize is queued
	ctx := context.Background()
	if ok, err := r.w.Store.beginFinalize(ctx, "fin"); err != nil || !ok {
		t.Fatalf("beginFinalize: %v %v", ok, err)
	}
	r.submit("fin", "b.example")
	infos, _ := r.insp.ListPendingTasks("v")
	if len(infos) != 1 {
		t.Fatalf("%d pending pages, want 1", len(infos))
	}
	err := r.w.handlePage(ctx, asynq.NewTask(infos[0].Type, infos[0].Payload))
	var we *waitError
	if !errors.As(err, &we) || IsFailure(err) || r.vendor.totalCalls() != 1 {
		t.Fatalf("a page added during finalization ran: %v (calls %d)", err, r.vendor.totalCalls())
	}
	if _, err := r.w.finalize(ctx, "fin", "now"); err != nil {
		t.Fatal(err)
	}
	if done, err := r.w.Store.commitFinalize(ctx, "fin", "now"); err != nil || done {
		t.Fatalf("commit of a finalize overtaken by new work: done %v, %v", done, err)
	}
	r.drain()
	if st := r.status("fin"); st.State != "done" || len(r.manifest("fin").Outcomes) != 2 || !r.sink.has(sink.SuccessKey("fin")) {
		t.Errorf("after the added work: %+v", st)
	}
}

// TestInterruptedSubmission: a submitter that dies holds its job open
// only for its lease; the job then ends, marked interrupted, and a
// resubmission of the list completes it and clears the mark.
func TestInterruptedSubmission(t *testing.T) {
	old := submissionTTL
	submissionTTL = 500 * time.Millisecond
	t.Cleanup(func() { submissionTTL = old })
	r := newRig(t)
	for _, d := range []string{"a.example", "b.example"} {
		r.domain(d, 5, 5)
	}
	ctx := context.Background()
	b, err := r.sub.Begin(ctx, "kill", vSpec, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := b.Add(ctx, "a.example"); err != nil {
		t.Fatal(err)
	}
	b.mu.Lock()
	if err := b.flush(ctx); err != nil {
		t.Fatal(err)
	}
	// It dies between registering a batch and enqueueing its tasks, and
	// its lease is no longer renewed.
	if _, err := r.w.Store.register(ctx, "kill", b.gen, 0, []string{"v|backlinks|c.example|1"}); err != nil {
		t.Fatal(err)
	}
	r.domain("c.example", 5, 5)
	b.stopRenewing()
	b.mu.Unlock()
	r.drain()
	st := r.status("kill")
	if st.State != "running" || st.Submissions != 1 || !strings.Contains(st.WaitingFor(), "submission") {
		t.Fatalf("while the lease lives: %s, %d submissions, waiting for %q", st.State, st.Submissions, st.WaitingFor())
	}
	time.Sleep(submissionTTL + 100*time.Millisecond)
	if err := r.w.sweepSubmissions(ctx); err != nil {
		t.Fatal(err)
	}
	r.drain()
	if st := r.status("kill"); st.State != "done" || st.Interrupted == 0 || !r.manifest("kill").Interrupted {
		t.Fatalf("after the lease: %+v", st)
	}
	if got := r.rows("kill"); got["https://src.example/c.example/0"] != 1 {
		t.Error("a unit the dead submission registered without its task was never run")
	}
	// The dead submission can add nothing more.
	if err := b.Add(ctx, "z.example"); err == nil {
		b.mu.Lock()
		err = b.flush(ctx)
		b.mu.Unlock()
		if !errors.Is(err, errLeaseLost) {
			t.Fatalf("a submission past its lease added work: %v", err)
		}
	}
	r.submit("kill", "a.example", "b.example")
	r.drain()
	st = r.status("kill")
	m := r.manifest("kill")
	if st.State != "done" || st.Interrupted != 0 || m.Interrupted || len(m.Outcomes) != 3 {
		t.Fatalf("after the resubmission: %+v, manifest interrupted %v, %d outcomes", st, m.Interrupted, len(m.Outcomes))
	}
	time.Sleep(submissionTTL + 100*time.Millisecond)
	if err := r.w.sweepSubmissions(ctx); err != nil {
		t.Fatal(err)
	}
	if n, _ := r.rdb.ZCard(ctx, subsIndex).Result(); n != 0 {
		t.Errorf("%d jobs left in the submission index", n)
	}
}

// TestEmptySubmissionCreatesNothing: an input without a valid domain
// leaves no job behind.
func TestEmptySubmissionCreatesNothing(t *testing.T) {
	r := newRig(t)
	ctx := context.Background()
	b, err := r.sub.Begin(ctx, "empty", vSpec, nil)
	if err != nil {
		t.Fatal(err)
	}
	_ = b.Reject(ctx, Reject{Line: 1, Input: "not a domain", Reason: "invalid"})
	if _, err := b.Close(ctx); !errors.Is(err, ErrNoDomain) {
		t.Fatalf("Close = %v, want ErrNoDomain", err)
	}
	if n, _ := r.rdb.Exists(ctx, keysFor("empty").meta).Result(); n != 0 {
		t.Fatal("an empty submission created its job")
	}
	if ids, _ := r.w.Store.Jobs(ctx, 10); len(ids) != 0 {
		t.Fatalf("jobs %v", ids)
	}
}

// TestWaitsAreNotFailures: what a page waits for spends no retry; a
// vendor's fault does.
func TestWaitsAreNotFailures(t *testing.T) {
	oom := errors.New("OOM command not allowed when used memory > 'maxmemory'")
	cases := []struct {
		name string
		err  error
		want bool
	}{
		{"sink refused", &sinkError{errors.New("connection refused")}, false},
		{"finalizer running", &waitError{"finalizing"}, false},
		{"redis at maxmemory", fmt.Errorf("ending x: %w", redisErr(oom)), false},
		{"vendor throttle", &providers.Error{Class: providers.Throttled}, false},
		{"vendor 5xx", &providers.Error{Class: providers.Retryable}, true},
		{"redis down", errors.New("dial tcp: connection refused"), true},
	}
	for _, c := range cases {
		if got := IsFailure(c.err); got != c.want {
			t.Errorf("%s: IsFailure = %v, want %v", c.name, got, c.want)
		}
	}
	if !strings.Contains(redisErr(oom).Error(), "out of memory") {
		t.Errorf("OOM message: %v", redisErr(oom))
	}
}

// TestFatalKeepsTheMessage: a page failed for good reads as its cause in
// the manifest, without asynq's wrapping.
func TestFatalKeepsTheMessage(t *testing.T) {
	err := fatal(errors.New("HTTP 401: bad credentials"))
	if !errors.Is(err, asynq.SkipRetry) || errorMessage(err) != "HTTP 401: bad credentials" {
		t.Errorf("fatal: %q (skip retry %v)", errorMessage(err), errors.Is(err, asynq.SkipRetry))
	}
}

// TestMaxRowsBuysNoMore: with --max-rows below a page, the first call asks
// for that many rows, not the vendor's page: rows are paid for.
func TestMaxRowsBuysNoMore(t *testing.T) {
	r := newRig(t)
	r.domain("a.example", 25, 25)
	spec := vSpec
	spec.MaxRows = 4
	ctx := context.Background()
	b, err := r.sub.Begin(ctx, "few", spec, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := b.Add(ctx, "a.example"); err != nil {
		t.Fatal(err)
	}
	if _, err := b.Close(ctx); err != nil {
		t.Fatal(err)
	}
	r.drain()
	if fmt.Sprint(r.vendor.limits) != "[4]" {
		t.Errorf("calls asked for %v rows, want one call for 4", r.vendor.limits)
	}
	wantRows(t, r.rows("few"), "a.example", 4)
}

// TestStashOutlivesRetention: a page waiting for the sink is never
// dropped while its job's state is still kept.
func TestStashOutlivesRetention(t *testing.T) {
	for _, ret := range []time.Duration{time.Hour, 720 * time.Hour} {
		if ttl := (&Worker{Retention: ret}).stashTTL(); ttl <= ret {
			t.Errorf("retention %v: stash kept %v", ret, ttl)
		}
	}
	if ttl := (&Worker{}).stashTTL(); ttl != 0 {
		t.Errorf("state kept for ever, stash for %v", ttl)
	}
}
