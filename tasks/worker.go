package tasks

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"hash/fnv"
	"io"
	"log/slog"
	"strconv"
	"sync"
	"time"

	"github.com/hibiken/asynq"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/trace"

	"github.com/linkharvest/linkharvest/internal/spend"
	"github.com/linkharvest/linkharvest/internal/telemetry"
	"github.com/linkharvest/linkharvest/providers"
	"github.com/linkharvest/linkharvest/sink"
)

// Provider is a vendor client: one call, one page.
type Provider interface {
	Paging(endpoint string) (providers.Paging, error)
	Fetch(ctx context.Context, req providers.Request) (*providers.Page, error)
}

// Throttle is a provider account's shared limiter, told when the vendor
// says the account is over its limit so that every worker slows down.
type Throttle interface {
	Backoff(ctx context.Context, d time.Duration) error
}

// Sink stores output objects.
type Sink interface {
	Put(ctx context.Context, key string, body []byte, contentType string) error
	Delete(ctx context.Context, key string) error
	// PutStream stores what write writes, for objects too big to hold (a
	// big job's manifest).
	PutStream(ctx context.Context, key string, write func(io.Writer) error, contentType string) error
}

// Pauser pauses a provider's queue when its account fails (asynq.Inspector).
type Pauser interface {
	PauseQueue(queue string) error
}

// Worker executes page and finalize tasks.
type Worker struct {
	Store     *Store
	Client    *asynq.Client
	Pauser    Pauser
	Sink      Sink
	Providers map[string]Provider
	Throttles map[string]Throttle
	Log       *slog.Logger
	Now       func() time.Time
	// Retention is how long a finished job's state stays in Redis (0:
	// for ever). Its output in the sink is never touched.
	Retention time.Duration
	// Stage bounds the tasks reading, decoding and encoding a page at
	// once (nil: no bound).
	Stage *Stage
	// Prices are what calls cost (budget.go).
	Prices spend.Table
	// FeedWindow is how many tasks a provider's queue holds pending
	// before this worker's feeder waits (0: DefaultFeedWindow; feed.go).
	FeedWindow int

	jobs sync.Map // job id -> *Job (a job's spec and date never change)

	sinkKeyOnce sync.Once
	sinkKey     string // see sinkDownKey

	feedOnce sync.Once
	feedPipe *asynq.Client
}

// Register mounts the task handlers.
func (w *Worker) Register(mux *asynq.ServeMux) {
	mux.HandleFunc(TypePage, w.handlePage)
	mux.HandleFunc(TypeCheck, w.handleCheck) // refresh.go
	mux.HandleFunc(TypeFinalize, w.processFinalize)
	mux.HandleFunc(TypeResume, w.processResume) // wait.go
}

func (w *Worker) now() time.Time {
	if w.Now != nil {
		return w.Now()
	}
	return time.Now()
}

func (w *Worker) log() *slog.Logger {
	if w.Log != nil {
		return w.Log
	}
	return slog.Default()
}

func (w *Worker) job(ctx context.Context, id string) (*Job, error) {
	if j, ok := w.jobs.Load(id); ok {
		return j.(*Job), nil
	}
	j, err := w.Store.Job(ctx, id)
	if err != nil {
		return nil, err
	}
	w.jobs.Store(id, j)
	return j, nil
}

// fatal marks err as not worth retrying; asynq archives the task. Its
// message is err's alone: users read it in the manifest.
func fatal(err error) error { return permanent{err} }

type permanent struct{ err error }

func (p permanent) Error() string   { return p.err.Error() }
func (p permanent) Unwrap() []error { return []error{p.err, asynq.SkipRetry} }

// handlePage spends the page's failure budget. asynq archives a task once
// its retry count reaches the task's MaxRetry whatever IsFailure says;
// IsFailure only keeps throttles from raising the count. A throttle on the
// last allowed attempt would be archived as a failure, so tasks carry
// asynq's MaxRetry = the failures allowed + retrySlack, and the limit is
// applied here: a failure once the count has reached it is final, a
// throttle never is.
func (w *Worker) handlePage(ctx context.Context, t *asynq.Task) error {
	return spendRetry(ctx, w.processPage(ctx, t))
}

// spendRetry applies a task's failure budget to err (see handlePage).
func spendRetry(ctx context.Context, err error) error {
	if err == nil || errors.Is(err, asynq.SkipRetry) || !IsFailure(err) {
		return err
	}
	retried, _ := asynq.GetRetryCount(ctx)
	maxRetry, ok := asynq.GetMaxRetry(ctx)
	if ok && retried >= maxRetry-retrySlack {
		return fatal(err)
	}
	return err
}

func (w *Worker) processPage(ctx context.Context, t *asynq.Task) (err error) {
	var p PagePayload
	if err := json.Unmarshal(t.Payload(), &p); err != nil {
		return fatal(fmt.Errorf("page task: bad payload: %w", err))
	}
	// Continue the trace that enqueue started.
	ctx = telemetry.Extract(ctx, p.Trace)
	ctx, span := telemetry.Tracer().Start(ctx, "task "+TypePage, trace.WithSpanKind(trace.SpanKindConsumer),
		trace.WithAttributes(attribute.String("job", p.Job), attribute.String("provider", p.Provider),
			attribute.String("endpoint", p.Endpoint), attribute.String("domain", p.Domain), attribute.Int("page", p.Page)))
	start := time.Now()
	defer func() {
		outcome := "ok"
		if err != nil {
			outcome = classOf(err).String()
			span.RecordError(errors.New(errorMessage(err)))
			span.SetStatus(codes.Error, outcome)
		}
		telemetry.M().TaskDuration.Record(ctx, time.Since(start).Seconds(),
			metric.WithAttributes(attribute.String("type", TypePage), attribute.String("provider", p.Provider), attribute.String("outcome", outcome)))
		span.End()
	}()
	job, err := w.job(ctx, p.Job)
	if err != nil {
		if errors.Is(err, ErrNoJob) {
			return fatal(err)
		}
		return err
	}
	prov, ok := w.Providers[p.Provider]
	if !ok {
		return fmt.Errorf("provider %s is not configured on this worker", p.Provider)
	}
	paging, err := prov.Paging(p.Endpoint)
	if err != nil {
		return fatal(err)
	}
	if p.Limit <= 0 && paging.Kind != providers.PagingNone {
		// A first page asks for what the job may keep, not the vendor's
		// maximum: the vendors charge per row returned, and --max-rows 10
		// must not buy 1000 rows (nor reserve less than the call costs).
		p.Limit = pageSize(job.Spec.MaxRows, paging)
	}
	unit := p.Unit()
	ps, err := w.Store.pageState(ctx, p.Job, unit, w.sinkDownKey())
	if err != nil {
		return err
	}
	if ps.ended {
		return nil // a duplicate delivery of a page that has ended
	}
	if ps.reopened != "" {
		// Work was added to a job that had ended: its _SUCCESS goes before
		// any new page runs, so a loader never reads an end that is not.
		if ps.finalizing {
			return &waitError{"the job's previous end is still being written"}
		}
		if err := w.supersede(ctx, p.Job, ps.reopened); err != nil {
			return err
		}
	}
	m := ps.memo
	switch {
	case m == nil:
		if ps.sinkDown != "" {
			// An answer bought now could only be stashed: wait for the sink.
			return &sinkError{errors.New(ps.sinkDown)}
		}
		st, pass, h, err := w.fetch(ctx, job, &p, prov)
		if err != nil {
			return err
		}
		m, err = w.write(ctx, job, &p, st, false)
		w.settle(ctx, &p, h, st.Memo.Cost) // once the ledger holds the page (or it is stashed)
		pass.leave()                       // the encoded page weighed in the stage until written (or stashed)
		if err != nil || m == nil {
			return err
		}
	case m.Stashed:
		body, err := w.Store.unstash(ctx, p.Job, unit)
		if err != nil {
			return err
		}
		if body == nil {
			if err := w.Store.stashExpired(ctx, p.Job, m.Bytes); err != nil {
				return err
			}
			return w.failRefetch(ctx, &p, "its answer waited for the sink longer than the stash is kept, and expired")
		}
		if m, err = w.write(ctx, job, &p, &stashed{Body: body, Memo: *m}, true); err != nil || m == nil {
			return err
		}
	}
	if err := w.fanOut(ctx, job, &p, paging, m); err != nil {
		return err
	}
	o := Outcome{Status: "ok", Key: m.Key, Records: m.Records, Bytes: m.Bytes, Total: m.Total, Spend: m.Cost, Unit: m.CostUnit}
	if m.Records == 0 {
		o.Status = "empty"
	}
	refreshOutcome(&job.Spec, &p, &o)
	w.log().DebugContext(ctx, "page done", "job", p.Job, "provider", p.Provider, "endpoint", p.Endpoint,
		"domain", p.Domain, "page", p.Page, "records", m.Records)
	return w.endUnit(ctx, p.Job, unit, o, true)
}

// stashed is a fetched page: its encoded body and what its call returned.
type stashed struct {
	Body []byte
	Memo memo
}

// write stores a fetched page's object. If the sink refuses it, the page
// is kept in Redis (the stash) until the sink takes writes again, however
// long that is: it was paid for. If it cannot be kept either, the page
// fails (nil memo, nil error) and a resubmission fetches it again.
func (w *Worker) write(ctx context.Context, job *Job, p *PagePayload, st *stashed, fromStash bool) (*memo, error) {
	unit := p.Unit()
	if st.Memo.Key != "" {
		if err := w.put(ctx, p, st); err != nil {
			bg := context.WithoutCancel(ctx)
			why := shorten(err.Error(), 300)
			if derr := w.Store.sinkDown(bg, w.sinkDownKey(), why, sinkDownFor); derr != nil {
				w.log().Warn("recording a sink outage", "err", derr)
			}
			if !fromStash {
				if serr := w.Store.stash(bg, p.Job, unit, st.Body, st.Memo, w.stashTTL(), why); serr != nil {
					return nil, w.failRefetch(ctx, p, fmt.Sprintf("the sink refused its object (%v) and it could not be kept until the sink is back (%v)", err, serr))
				}
			}
			return nil, &sinkError{fmt.Errorf("writing %s: %w", st.Memo.Key, err)}
		}
		if fromStash {
			// The sink takes writes again: let the other pages fetch.
			if err := w.Store.sinkUp(ctx, w.sinkDownKey()); err != nil {
				w.log().Warn("clearing a sink outage", "err", err)
			}
		}
	}
	if err := w.Store.keepMemo(ctx, p.Job, unit, &st.Memo); err != nil {
		return nil, err
	}
	countSpend(ctx, p.Provider, &st.Memo)
	return &st.Memo, nil
}

// failRefetch ends a page as failed because its paid-for answer was lost,
// and records it so that a resubmission of the job fetches it again.
func (w *Worker) failRefetch(ctx context.Context, p *PagePayload, why string) error {
	w.log().Error("a fetched page was lost before it could be written; resubmit the job to fetch it again",
		"job", p.Job, "unit", p.Unit(), "reason", why)
	rp := *p
	rp.Attempt, rp.Trace = 0, nil
	finish, err := w.Store.end(context.WithoutCancel(ctx), p.Job, p.Unit(), Outcome{Status: "failed", Error: why, Refetch: true}, true, &rp)
	if err != nil {
		return err
	}
	if finish {
		return enqueueFinalize(ctx, w.Store, w.Client, p.Job)
	}
	return nil
}

// supersede removes a reopened job's _SUCCESS and marks its manifest as
// describing the job before the new work.
func (w *Worker) supersede(ctx context.Context, job, tag string) error {
	if err := w.Sink.Delete(ctx, sink.SuccessKey(job)); err != nil {
		return &sinkError{fmt.Errorf("removing the _SUCCESS of reopened job %s: %w", job, err)}
	}
	body, err := json.Marshal(map[string]string{"job_id": job, "superseded_at": w.now().UTC().Format(time.RFC3339Nano),
		"reason": "work was added after the job had ended; manifest.json describes the job before it, and is written again when the job ends"})
	if err != nil {
		return err
	}
	if err := w.Sink.Put(ctx, sink.SupersededKey(job), body, "application/json"); err != nil {
		return &sinkError{fmt.Errorf("marking the manifest of reopened job %s: %w", job, err)}
	}
	return w.Store.clearReopen(ctx, job, tag)
}

// sinkDownFor is how long a refused write keeps pages from fetching;
// stashed pages retrying their writes renew it while the outage lasts.
const sinkDownFor = 10 * time.Second

func (w *Worker) sinkDownKey() string {
	// Asked on every page: the sink's name is hashed once.
	w.sinkKeyOnce.Do(func() {
		name := "sink"
		if s, ok := w.Sink.(fmt.Stringer); ok {
			name = s.String()
		}
		h := fnv.New64a()
		h.Write([]byte(name))
		w.sinkKey = "lh:sinkdown:" + strconv.FormatUint(h.Sum64(), 16)
	})
	return w.sinkKey
}

// stashTTL outlives the retention of a job's state, so a page waiting for
// the sink is never dropped while its job is still remembered.
func (w *Worker) stashTTL() time.Duration {
	if w.Retention <= 0 {
		return 0
	}
	return w.Retention + 7*24*time.Hour
}

func shorten(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}

// fetch calls the vendor and encodes its page, holding a place in the
// worker's Stage from the arrival of the answer until it is encoded; the
// pass it returns still holds the encoded page's bytes (leave it once
// the page is written). The call's most possible cost is reserved against
// the job's budget first, before the shared limiter's slot; the hold it
// returns is settled by the caller once the page is written (settle).
func (w *Worker) fetch(ctx context.Context, job *Job, p *PagePayload, prov Provider) (*stashed, *stagePass, *hold, error) {
	params, err := w.deltaParams(job, p) // refresh.go
	if err != nil {
		return nil, nil, nil, fatal(err)
	}
	h, err := w.reserve(ctx, job, p, prov) // budget.go
	if err != nil {
		return nil, nil, nil, err
	}
	pg, _ := prov.Paging(p.Endpoint) // checked by the caller
	sctx, pass := w.Stage.with(ctx, p.Provider, bodyCap(pg))
	page, err := prov.Fetch(sctx, providers.Request{
		Endpoint: p.Endpoint, Domain: p.Domain, Page: p.seq(),
		Offset: p.Offset, Limit: p.Limit, Cursor: p.Cursor,
		Params: params,
	})
	outcome := "ok"
	if err != nil {
		outcome = classOf(err).String()
	}
	telemetry.M().Calls.Add(ctx, 1, metric.WithAttributes(attribute.String("provider", p.Provider), attribute.String("outcome", outcome)))
	if err != nil {
		w.settleFailed(ctx, p, h, err)
		pass.leave() // a throttle's backoff needs no place
		return nil, nil, nil, w.vendorError(ctx, job, p, err)
	}
	st, err := w.encode(job, p, page)
	if err != nil {
		c, _ := w.charge(p, page)
		w.settle(ctx, p, h, c)
		pass.leave()
		return nil, nil, nil, fatal(err)
	}
	pass.encoded(int64(len(st.Body)))
	return st, pass, h, nil
}

func (w *Worker) encode(job *Job, p *PagePayload, page *providers.Page) (*stashed, error) {
	items := page.Items
	if max := job.Spec.MaxRows; max > 0 {
		// Rows before this page count against --max-rows too.
		room := max - p.Offset
		if room < 0 {
			room = 0
		}
		if len(items) > room {
			items = items[:room]
		}
	}
	now := w.now().UTC()
	cost, unit := w.charge(p, page)
	st := &stashed{Memo: memo{Records: len(items), Total: page.Total, Next: page.Next, Cost: cost, CostUnit: unit, FetchedAt: now}}
	if len(items) == 0 {
		return st, nil
	}
	recs := make([]sink.Record, len(items))
	for i, it := range items {
		recs[i] = sink.Record{
			JobID: p.Job, Provider: p.Provider, Endpoint: p.Endpoint, Domain: p.Domain, Page: p.Page,
			FetchedAt: now, Kind: it.Kind,
			SourceURL: it.SourceURL, TargetURL: it.TargetURL, Anchor: it.Anchor, Nofollow: it.Nofollow, SourceTitle: it.SourceTitle,
			Change: p.Change, Raw: it.Raw,
		}
	}
	body, err := sink.EncodePage(recs)
	if err != nil {
		return nil, fmt.Errorf("encoding page %d of %s: %w", p.Page, p.Domain, err)
	}
	st.Body = body
	st.Memo.Key = sink.PageKey(p.Provider, p.Endpoint, job.Date, p.Job, p.Domain, p.Page)
	st.Memo.Bytes = int64(len(body))
	return st, nil
}

// vendorError turns a classified vendor failure into what asynq should do.
func (w *Worker) vendorError(ctx context.Context, job *Job, p *PagePayload, err error) error {
	pe, _ := providers.AsError(err)
	if isVendorWait(pe) { // wait.go: a stop until a known time, or a vendor not ready
		return w.vendorWait(ctx, p, pe)
	}
	switch classOf(err) {
	case providers.Throttled:
		telemetry.M().Throttles.Add(ctx, 1, metric.WithAttributes(attribute.String("provider", p.Provider)))
		// Someone else shares the account, or our limits are set too high:
		// slow every worker, not only this one.
		if th, ok := w.Throttles[p.Provider]; ok {
			d := time.Second
			if pe != nil && pe.RetryAfter > d {
				d = pe.RetryAfter
			}
			if berr := th.Backoff(context.WithoutCancel(ctx), d); berr != nil {
				w.log().Warn("sharing a vendor throttle", "provider", p.Provider, "err", berr)
			}
		}
		return err
	case providers.Fatal:
		if pe != nil && pe.Account && w.Pauser != nil {
			// Every call on this account fails the same way: stop the
			// provider's queue before a million tasks burn on it.
			reason := pe.Error()
			if perr := w.Pauser.PauseQueue(p.Provider); perr != nil {
				w.log().Error("pausing provider queue", "provider", p.Provider, "err", perr)
			}
			if err := w.Store.pause(context.WithoutCancel(ctx), p.Job, p.Provider, reason); err != nil {
				w.log().Error("recording a provider's pause", "provider", p.Provider, "job", p.Job, "err", err)
			}
			w.log().Error("provider account failure: queue paused; fix the account, then unpause the queue (asynqmon or `enqueue resume`)",
				"provider", p.Provider, "job", p.Job, "err", reason)
		}
		return fatal(err)
	}
	return err
}

// fanOut enqueues the pages that follow p: all remaining offset pages from
// the first page once the total is known, and the next cursor page from
// each page that must be chained. Task ids are deterministic, so a retried
// page enqueues nothing twice and a chain never forks.
func (w *Worker) fanOut(ctx context.Context, job *Job, p *PagePayload, pg providers.Paging, m *memo) error {
	next := nextPages(job.Spec.MaxRows, p, pg, m)
	if len(next) == 0 {
		return nil
	}
	return enqueuePages(ctx, w.Store, w.Client, p.Job, job.Spec.maxRetry(), next)
}

// nextPages plans the pages that p's result makes known. Page 1 plans
// every offset page its total needs. The vendor's index moves while a job
// runs, so every later page checks its own total against the one it was
// planned with (Plan): a total that grew adds the pages past the plan
// (deterministic ids: pages that several pages add are enqueued once); a
// total that shrank needs nothing, the pages past the rows come back empty.
// Every page asks for a full page (only --max-rows cuts a limit): the
// vendors charge for the rows they return, and a last page planned short
// would miss the rows a growing total puts behind it.
//
// Known limit: rows past the vendor's largest offset can only be reached
// from a cursor, which the page at that offset returns; if the total grows
// past it after that page was fetched, those rows are not reached.
func nextPages(maxRows int, p *PagePayload, pg providers.Paging, m *memo) []PagePayload {
	size := pageSize(maxRows, pg)
	if size <= 0 {
		size = p.Limit
	}
	if size <= 0 {
		return nil
	}
	seq := p.seq() // the page's place in its chain (a refresh's delta has two)
	child := func(page, offset int, cursor string, limit int) PagePayload {
		return PagePayload{Job: p.Job, Provider: p.Provider, Endpoint: p.Endpoint, Domain: p.Domain,
			Page: p.pageAt(page), Offset: offset, Limit: limit, Cursor: cursor, Plan: m.Total, Change: p.Change, Trace: p.Trace}
	}
	limitAt := func(offset int) int {
		l := size
		if maxRows > 0 && maxRows-offset < l {
			l = maxRows - offset
		}
		return l
	}
	capped := func(total int) int {
		if total >= 0 && maxRows > 0 && total > maxRows {
			return maxRows
		}
		return total
	}
	switch pg.Kind {
	case providers.PagingOffset:
		total := capped(m.Total)
		if total < 0 {
			// The vendor does not say how many: walk until a short page.
			if m.Records < size || (maxRows > 0 && p.Offset+size >= maxRows) {
				return nil
			}
			off := p.Offset + size
			return []PagePayload{child(seq+1, off, "", limitAt(off))}
		}
		pages := (total + size - 1) / size
		planned := pages // pages someone else has planned
		switch {
		case seq == 1:
			planned = 1
		case p.Plan > 0 && total > capped(p.Plan):
			planned = (capped(p.Plan) + size - 1) / size
		}
		var out []PagePayload
		for k := planned + 1; k <= pages; k++ {
			off := (k - 1) * size
			if pg.MaxOffset > 0 && off > pg.MaxOffset {
				break
			}
			if k == seq {
				continue
			}
			out = append(out, child(k, off, "", limitAt(off)))
		}
		// Past the vendor's largest offset, each page needs its predecessor's cursor.
		off := seq * size
		if seq < pages && pg.MaxOffset > 0 && off > pg.MaxOffset && pg.CursorPastMax {
			if m.Next == "" {
				return out // the vendor gave no cursor: nothing more can be reached
			}
			out = append(out, child(seq+1, off, m.Next, limitAt(off)))
		}
		return out
	case providers.PagingCursor:
		if m.Next == "" || m.Records == 0 {
			return nil
		}
		off := p.Offset + m.Records
		if maxRows > 0 && off >= maxRows {
			return nil
		}
		if m.Total >= 0 && off >= m.Total {
			return nil
		}
		return []PagePayload{child(seq+1, off, m.Next, limitAt(off))}
	}
	return nil
}

// pageSize is the rows per call: the vendor's maximum, or --max-rows when smaller.
func pageSize(maxRows int, pg providers.Paging) int {
	size := pg.PageSize
	if maxRows > 0 && (size <= 0 || maxRows < size) {
		size = maxRows
	}
	return size
}

// endUnit ends a unit and, if it was the job's last, enqueues the finalize task.
func (w *Worker) endUnit(ctx context.Context, job, unit string, o Outcome, page bool) error {
	finish, err := w.Store.end(ctx, job, unit, o, page, nil)
	if err != nil {
		return err
	}
	if finish {
		return enqueueFinalize(ctx, w.Store, w.Client, job)
	}
	return nil
}

// put writes a page's object, traced and counted.
func (w *Worker) put(ctx context.Context, p *PagePayload, st *stashed) error {
	ctx, span := telemetry.Tracer().Start(ctx, "sink put", trace.WithAttributes(attribute.String("key", st.Memo.Key), attribute.Int("bytes", len(st.Body))))
	defer span.End()
	if err := w.Sink.Put(ctx, st.Memo.Key, st.Body, "application/x-ndjson"); err != nil {
		span.RecordError(err)
		span.SetStatus(codes.Error, "sink put failed")
		return err
	}
	attrs := metric.WithAttributes(attribute.String("provider", p.Provider), attribute.String("endpoint", p.Endpoint))
	telemetry.M().Rows.Add(ctx, int64(st.Memo.Records), attrs)
	telemetry.M().Bytes.Add(ctx, int64(len(st.Body)), attrs)
	return nil
}
