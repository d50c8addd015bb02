package tasks

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"hash/fnv"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/hibiken/asynq"
	"golang.org/x/sync/errgroup"

	"github.com/linkharvest/linkharvest/providers"
	"github.com/linkharvest/linkharvest/providers/registry"
)

// A refresh harvests a finished job's list again and pays only for what
// changed (docs/architecture.md, "Refresh"). Its domains' first pages are
// registered as any job's; where the vendor counts changes
// (providers.Delta), they are not enqueued one by one but in check tasks
// of up to CountBatch domains. A check makes one counting call and then,
// per domain: ends it unchanged (no other call), or enqueues its delta,
// two page chains of their own (the rows new since the day, on odd
// pages; the rows lost since it, on even pages), or, for a domain its
// base job does not hold whole, its full first page. Every step is
// idempotent (deterministic task ids, outcomes kept once, the count's
// answer kept until its domains are dealt with), so a check that crashes
// and runs again makes the same delta and pays for the count once.

// Refresh names a refresh job's base job and the day its changes are
// counted from.
type Refresh struct {
	BaseJob string `json:"base_job"`
	Since   string `json:"since"` // YYYY-MM-DD
}

func (r *Refresh) since() time.Time {
	t, _ := time.Parse(time.DateOnly, r.Since) // checked by NewRefreshSpec
	return t
}

// TypeCheck is a refresh's change count of a batch of domains.
const TypeCheck = "lh:check"

// CheckPayload is a check task's payload: up to a count call's worth of
// domains of one provider's endpoint.
type CheckPayload struct {
	Job      string            `json:"job"`
	Provider string            `json:"provider"`
	Endpoint string            `json:"endpoint"`
	Domains  []string          `json:"domains"`
	Trace    map[string]string `json:"trace,omitempty"`
}

// id names the check by its domains: the same batch submitted again is
// the same task.
func (c *CheckPayload) id() string {
	h := fnv.New64a()
	for _, d := range c.Domains {
		h.Write([]byte(d))
		h.Write([]byte{0})
	}
	return c.Provider + "|" + c.Endpoint + "|" + strconv.FormatUint(h.Sum64(), 16) + "-" + strconv.Itoa(len(c.Domains))
}

// TaskID is the Asynq task id of a check.
func (c *CheckPayload) TaskID() string { return "lh:" + c.Job + ":check:" + c.id() }

// seq is a page's place in its chain: a delta's two chains share the
// domain's page numbers, the new rows on odd pages, the lost on even.
func (p *PagePayload) seq() int {
	switch p.Change {
	case providers.ChangeNew:
		return (p.Page + 1) / 2
	case providers.ChangeLost:
		return p.Page / 2
	}
	return p.Page
}

// pageAt is the page number of the k-th page of p's chain.
func (p *PagePayload) pageAt(k int) int {
	switch p.Change {
	case providers.ChangeNew:
		return 2*k - 1
	case providers.ChangeLost:
		return 2 * k
	}
	return k
}

// RefreshRequest is what a submitter asks of a refresh.
type RefreshRequest struct {
	Base  *Job
	State string // the base job's state: it must have ended
	Since string // "" : the base job's date
	Now   time.Time
}

// NewRefreshSpec makes a refresh's spec: its base job's providers,
// endpoints and options, the base job and the day changes count from.
func NewRefreshSpec(r RefreshRequest) (Spec, error) {
	spec := r.Base.Spec
	if r.State != "done" {
		return spec, fmt.Errorf("--refresh %s: the base job has not ended (it is %s); refresh a job once it is done", r.Base.ID, r.State)
	}
	if spec.MaxRows > 0 {
		return spec, fmt.Errorf("--refresh %s: the base job kept at most %d rows a domain (--max-rows); the change of a part is not defined: run a full harvest", r.Base.ID, spec.MaxRows)
	}
	since := r.Since
	if since == "" {
		since = r.Base.Date
	}
	day, err := time.Parse(time.DateOnly, since)
	if err != nil {
		return spec, fmt.Errorf("--since %q: want YYYY-MM-DD", since)
	}
	if day.After(r.Now.UTC()) {
		return spec, fmt.Errorf("--since %s: a day in the future", since)
	}
	for _, p := range spec.Providers {
		v, err := registry.Describe(p)
		if err != nil {
			return spec, err
		}
		for _, e := range spec.Endpoints[p] {
			if !v.Delta.Supports(e) {
				continue
			}
			if err := v.Delta.Check(e, spec.params(p, e)); err != nil {
				return spec, fmt.Errorf("--refresh %s: %s.%s: %w", r.Base.ID, p, e, err)
			}
			if v.Delta.MaxAge > 0 && r.Now.Sub(day) > v.Delta.MaxAge {
				return spec, fmt.Errorf("--since %s: %s counts changes over at most %d days; run a full harvest", since, p, int(v.Delta.MaxAge.Hours()/24))
			}
		}
	}
	spec.Refresh = &Refresh{BaseJob: r.Base.ID, Since: day.Format(time.DateOnly)}
	return spec, nil
}

// delta is the vendor's delta support for an endpoint of a refresh job
// (nil: fetched in full).
func (s *Spec) delta(provider, endpoint string) *providers.Delta {
	if s.Refresh == nil {
		return nil
	}
	v, err := registry.Describe(provider)
	if err != nil || !v.Delta.Supports(endpoint) {
		return nil
	}
	return v.Delta
}

// route splits first pages to enqueue: in a refresh, those the vendor
// counts changes of go into check tasks, the others are enqueued as they
// are (in full, and said so).
func (s *Spec) route(pages []PagePayload) (direct []PagePayload, checks []CheckPayload) {
	if s.Refresh == nil {
		return pages, nil
	}
	open := map[string]int{} // provider|endpoint -> index in checks of the batch filling
	for _, p := range pages {
		d := s.delta(p.Provider, p.Endpoint)
		if d == nil {
			p.Full = "the vendor gives no change signal for this endpoint"
			direct = append(direct, p)
			continue
		}
		key := p.Provider + "|" + p.Endpoint
		i, ok := open[key]
		if !ok || len(checks[i].Domains) >= max(d.CountBatch, 1) {
			checks = append(checks, CheckPayload{Job: p.Job, Provider: p.Provider, Endpoint: p.Endpoint, Trace: p.Trace})
			i = len(checks) - 1
			open[key] = i
		}
		checks[i].Domains = append(checks[i].Domains, p.Domain)
	}
	return direct, checks
}

func enqueueCheck(ctx context.Context, client *asynq.Client, c *CheckPayload, maxRetry int) (bool, error) {
	return enqueueTask(ctx, client, TypeCheck, c.TaskID(), c.Provider, c, maxRetry)
}

// enqueueFirst enqueues a submission's first pages, through checks in a
// refresh, par pages at once (64 if 0); it returns how many tasks it
// created.
func enqueueFirst(ctx context.Context, client *asynq.Client, spec *Spec, pages []PagePayload, par int) (int, error) {
	direct, checks := spec.route(pages)
	var n atomic.Int64
	for i := range checks {
		created, err := enqueueCheck(ctx, client, &checks[i], spec.maxRetry())
		if err != nil {
			return int(n.Load()), err
		}
		if created {
			n.Add(1)
		}
	}
	if par <= 0 {
		par = 64
	}
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(par)
	for i := range direct {
		g.Go(func() error {
			created, err := enqueuePage(gctx, client, &direct[i], spec.maxRetry())
			if created {
				n.Add(1)
			}
			return err
		})
	}
	err := g.Wait()
	return int(n.Load()), err
}

// ChangeCounter is a client whose vendor counts many targets' changes
// since a day in one call (providers.Delta).
type ChangeCounter interface {
	CountChanges(ctx context.Context, targets []string, since time.Time) (map[string]providers.ChangeCount, float64, error)
}

func (w *Worker) handleCheck(ctx context.Context, t *asynq.Task) error {
	return spendRetry(ctx, w.processCheck(ctx, t))
}

func (w *Worker) processCheck(ctx context.Context, t *asynq.Task) error {
	var c CheckPayload
	if err := json.Unmarshal(t.Payload(), &c); err != nil {
		return fatal(fmt.Errorf("check task: bad payload: %w", err))
	}
	job, err := w.job(ctx, c.Job)
	if err != nil {
		if errors.Is(err, ErrNoJob) {
			return fatal(err)
		}
		return err
	}
	d := job.Spec.delta(c.Provider, c.Endpoint)
	if d == nil {
		return fatal(fmt.Errorf("job %s: %s.%s is not refreshed as a delta", c.Job, c.Provider, c.Endpoint))
	}
	first := make([]PagePayload, len(c.Domains))
	units := make([]string, len(c.Domains))
	for i, dom := range c.Domains {
		first[i] = PagePayload{Job: c.Job, Provider: c.Provider, Endpoint: c.Endpoint, Domain: dom, Page: 1, Trace: c.Trace}
		units[i] = first[i].Unit()
	}
	open, err := w.Store.openUnits(ctx, c.Job, units)
	if err != nil {
		return err
	}
	var todo []int // the domains not yet dealt with
	for i := range first {
		if open[i] {
			todo = append(todo, i)
		}
	}
	if len(todo) == 0 {
		return w.Store.dropCheck(ctx, c.Job, c.id())
	}
	doms := make([]string, len(todo))
	for j, i := range todo {
		doms[j] = c.Domains[i]
	}
	known, whole, err := w.Store.BaseState(ctx, job.Spec.Refresh.BaseJob, c.Provider, c.Endpoint, doms)
	if err != nil {
		return err
	}
	var counted []string
	for j := range doms {
		if whole[j] {
			counted = append(counted, doms[j])
		}
	}
	counts, err := w.countChanges(ctx, job, &c, counted)
	if err != nil {
		return err
	}
	maxRetry := job.Spec.maxRetry()
	for j, i := range todo {
		p := first[i]
		n, ok := counts[p.Domain]
		switch {
		case !known[j]:
			p.Full = "not in the base job"
		case !whole[j]:
			p.Full = "the base job does not hold its rows whole"
		case !ok:
			p.Full = "the vendor did not count its changes"
		case n.New == 0 && n.Lost == 0:
			if err := w.endUnit(ctx, c.Job, units[i], Outcome{Status: "unchanged", Refresh: RefreshUnchanged}, true); err != nil {
				return err
			}
			continue
		default:
			if err := w.enqueueDelta(ctx, p, n, maxRetry); err != nil {
				return err
			}
			continue
		}
		if _, err := enqueuePage(ctx, w.Client, &p, maxRetry); err != nil {
			return err
		}
	}
	return w.Store.dropCheck(ctx, c.Job, c.id())
}

// countChanges makes (or finds the kept answer of) a check's counting
// call, reserved against the job's budget like a page's call.
func (w *Worker) countChanges(ctx context.Context, job *Job, c *CheckPayload, targets []string) (map[string]providers.ChangeCount, error) {
	if len(targets) == 0 {
		return nil, nil
	}
	if m, err := w.Store.loadCheck(ctx, c.Job, c.id()); err != nil || m != nil {
		if m != nil {
			return m.Counts, nil
		}
		return nil, err
	}
	prov, ok := w.Providers[c.Provider]
	if !ok {
		return nil, fmt.Errorf("provider %s is not configured on this worker", c.Provider)
	}
	counter, ok := prov.(ChangeCounter)
	if !ok {
		return nil, fatal(fmt.Errorf("provider %s: this client cannot count changes", c.Provider))
	}
	d := job.Spec.delta(c.Provider, c.Endpoint)
	call := &PagePayload{Job: c.Job, Provider: c.Provider, Endpoint: d.CountEndpoint, Domain: strconv.Itoa(len(targets)) + " domains", Limit: len(targets)}
	h, err := w.reserve(ctx, job, call, prov)
	if err != nil {
		return nil, err
	}
	got, cost, err := counter.CountChanges(ctx, targets, job.Spec.Refresh.since())
	// A row a target, for the prices that charge by the row.
	page := &providers.Page{Cost: cost, Items: make([]providers.Item, len(targets))}
	if err != nil {
		w.settleFailed(ctx, call, h, err)
		return nil, w.vendorError(ctx, job, call, err)
	}
	m := &checkMemo{Counts: got}
	m.Cost, _ = w.charge(call, page)
	kept, err := w.Store.keepCheck(ctx, c.Job, c.Provider, c.id(), m)
	w.settle(ctx, call, h, m.Cost) // once the ledger holds the check
	if err != nil {
		return nil, err
	}
	return kept.Counts, nil
}

// enqueueDelta enqueues a changed domain's chains: the lost rows' first
// page is registered before the domain's first page can end, so the job
// cannot look finished in between; a chain with nothing to fetch is not
// called (its first page ends empty).
func (w *Worker) enqueueDelta(ctx context.Context, p PagePayload, n providers.ChangeCount, maxRetry int) error {
	news := p
	news.Change = providers.ChangeNew
	if n.Lost > 0 {
		lost := p
		lost.Change, lost.Page = providers.ChangeLost, 2
		if err := enqueuePages(ctx, w.Store, w.Client, p.Job, maxRetry, []PagePayload{lost}); err != nil {
			return err
		}
	}
	if n.New == 0 {
		return w.endUnit(ctx, p.Job, news.Unit(), Outcome{Status: "empty", Refresh: RefreshDelta}, true)
	}
	_, err := enqueuePage(ctx, w.Client, &news, maxRetry)
	return err
}

// deltaParams are the vendor options of a delta page: the job's own with
// the change's condition (providers.Delta.Params).
func (w *Worker) deltaParams(job *Job, p *PagePayload) (map[string]json.RawMessage, error) {
	params := job.Spec.params(p.Provider, p.Endpoint)
	if p.Change == "" {
		return params, nil
	}
	d := job.Spec.delta(p.Provider, p.Endpoint)
	if d == nil {
		return nil, fmt.Errorf("job %s: %s.%s is not refreshed as a delta", p.Job, p.Provider, p.Endpoint)
	}
	return d.Params(p.Endpoint, params, p.Change, job.Spec.Refresh.since())
}

// refreshOutcome marks a refresh's first page of a domain with how the
// domain was fetched.
func refreshOutcome(spec *Spec, p *PagePayload, o *Outcome) {
	if spec.Refresh == nil || p.Page != 1 {
		return
	}
	switch {
	case p.Change != "":
		o.Refresh = RefreshDelta
	default:
		o.Refresh, o.RefreshReason = RefreshFull, p.Full
	}
}

// failCheck ends, when a check has failed for good, its domains that are
// still open as failed: without it they would hold the job open.
func (w *Worker) failCheck(ctx context.Context, t *asynq.Task, msg string) {
	var c CheckPayload
	if json.Unmarshal(t.Payload(), &c) != nil {
		return
	}
	units := make([]string, len(c.Domains))
	for i, d := range c.Domains {
		p := PagePayload{Job: c.Job, Provider: c.Provider, Endpoint: c.Endpoint, Domain: d, Page: 1}
		units[i] = p.Unit()
	}
	open, err := w.Store.openUnits(ctx, c.Job, units)
	if err != nil {
		w.log().Error("ending the domains of a failed check", "job", c.Job, "err", err)
		return
	}
	for i, u := range units {
		if !open[i] {
			continue
		}
		o := Outcome{Status: "failed", Error: "counting its changes: " + msg, Refresh: RefreshDelta}
		if err := w.endUnit(ctx, c.Job, u, o, true); err != nil {
			w.log().Error("ending a domain of a failed check", "job", c.Job, "unit", u, "err", err)
		}
	}
}
