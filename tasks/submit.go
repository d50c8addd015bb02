package tasks

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hibiken/asynq"
)

// Reject is an input line that was not submitted.
type Reject struct {
	Line   int    `json:"line"`
	Input  string `json:"input"`
	Reason string `json:"reason"`
}

// Submitter puts jobs on the queue.
type Submitter struct {
	Store  *Store
	Client *asynq.Client
	// Parallel is how many enqueue calls are in flight at once
	// (default 64: deep enough to fill a pipeline, see pageClient).
	Parallel int
	// FeedAfter is how many domains of a submission are enqueued at once;
	// the rest wait in the job's feed for the workers (feed.go).
	// 0: DefaultFeedAfter; negative: feed them all.
	FeedAfter int
	Now       func() time.Time

	pipeOnce sync.Once
	pipe     *asynq.Client
}

// pageClient is the client page tasks are enqueued with. An asynq enqueue
// is one script call and one round trip; enqueue spent most of its time in
// the system calls of those round trips (pprof in bench/enqueue). When the
// store holds a plain *redis.Client, the enqueues go through go-redis's
// AutoPipeliner instead, which writes the calls in flight at once as one
// pipeline: about twice the tasks/s for half the CPU. It is safe to
// resend: asynq enqueues a task id once, so a pipeline retried after a
// network error adds no task twice (it only reads as an existing id).
func (s *Submitter) pageClient() *asynq.Client {
	s.pipeOnce.Do(func() { s.pipe = s.Store.pipelinedClient() })
	if s.pipe != nil {
		return s.pipe
	}
	return s.Client
}

// Submission streams one submission of a job's domain list. The job is
// created when the first valid domain is flushed, so an input with none
// creates nothing. Until Close (or Abort) the submission holds a lease
// that keeps the job from finishing; if its process dies the lease
// expires and the job can end (marked interrupted until a resubmission of
// the list closes cleanly). Its methods are safe for concurrent use.
type Submission struct {
	s     *Submitter
	jobID string
	spec  Spec
	trace map[string]string

	mu      sync.Mutex
	Job     *Job  // nil until the job exists
	gen     int64 // this submission's generation, once the job exists
	pending []string
	direct  int // domains enqueued at once (the rest are fed)
	rejects []Reject
	stats   SubmitStats
	stop    context.CancelFunc
	renewed chan struct{}
	// refetched are the units this submission opened again, with tasks
	// of their own: flush must not add a second task for them.
	refetched map[string]bool
	// budget, if set, is set on the job before its first task exists.
	budget map[string]float64
	// leaseLost is set by the renewal goroutine (not under mu: Close
	// holds mu while it waits for that goroutine).
	leaseLost atomic.Bool
}

// SubmitStats counts what a submission added.
type SubmitStats struct {
	Domains    int // valid domains submitted
	NewDomains int // of which new to the job
	Tasks      int // first-page tasks created
	Refetched  int // pages fetched again because their answer was lost
	Rejected   int
	// Fed are the domains left in the job's feed, for the workers to
	// register and enqueue as they drain the queue: they are not counted
	// in NewDomains or Tasks.
	Fed int
}

const submitBatch = 512

// ErrNoDomain is returned by Close when the input held no valid domain:
// no job was created (or a resubmission changed nothing).
var ErrNoDomain = errors.New("no valid domain in the input")

// Begin starts a submission. It checks that a resubmission asks for what
// the job asked for, and changes nothing in Redis until a domain is added.
func (s *Submitter) Begin(ctx context.Context, jobID string, spec Spec, trace map[string]string) (*Submission, error) {
	if err := ValidJobID(jobID); err != nil {
		return nil, err
	}
	specJSON, err := json.Marshal(spec)
	if err != nil {
		return nil, fmt.Errorf("job %s: encoding its spec: %w", jobID, err)
	}
	if _, err := s.Store.checkSpec(ctx, jobID, specJSON); err != nil {
		return nil, err
	}
	return &Submission{s: s, jobID: jobID, spec: spec, trace: trace}, nil
}

// start creates the job (or joins it), opens the lease and its renewal,
// and opens again the pages whose answers were lost. Called with b.mu held.
func (b *Submission) start(ctx context.Context) error {
	if b.Job != nil {
		return nil
	}
	now := time.Now()
	if b.s.Now != nil {
		now = b.s.Now()
	}
	job, err := b.s.Store.create(ctx, b.jobID, b.spec, now)
	if err != nil {
		return err
	}
	if err := b.s.Store.SetBudget(ctx, b.jobID, b.budget); err != nil {
		return err
	}
	gen, err := b.s.Store.openSub(ctx, b.jobID)
	if err != nil {
		return err
	}
	b.Job, b.gen = job, gen
	b.Job.Gen = gen
	if err := b.s.Store.clearRejects(ctx, b.jobID); err != nil {
		return err
	}
	rctx, stop := context.WithCancel(context.WithoutCancel(ctx))
	b.stop = stop
	b.renewed = make(chan struct{})
	go b.renew(rctx)
	pages, err := b.s.Store.reopenRefetch(ctx, b.jobID, gen)
	if err != nil {
		return err
	}
	b.refetched = map[string]bool{}
	for i := range pages {
		b.refetched[pages[i].Unit()] = true
		pages[i].Attempt = int(gen) // a new task id: the failed task may still be archived
		if _, err := enqueuePage(ctx, b.s.pageClient(), &pages[i], b.spec.maxRetry()); err != nil {
			return err
		}
		b.stats.Refetched++
	}
	return nil
}

// renew keeps the lease alive while the process lives.
func (b *Submission) renew(ctx context.Context) {
	defer close(b.renewed)
	tick(ctx, submissionTTL/5, func() bool {
		err := b.s.Store.renewSub(ctx, b.jobID, b.gen)
		if errors.Is(err, errLeaseLost) {
			b.leaseLost.Store(true)
			return false
		}
		// Other errors (Redis restarting): the next tick tries again; the
		// lease outlives a few missed renewals.
		return true
	})
}

func (b *Submission) stopRenewing() {
	if b.stop != nil {
		b.stop()
		<-b.renewed
		b.stop = nil
	}
}

// SetBudget gives the job a budget per provider (ParseBudget), set before
// any task of this submission is enqueued. Without it, a job keeps the
// budget it has.
func (b *Submission) SetBudget(limits map[string]float64) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.budget = limits
}

// Add submits one normalised domain.
func (b *Submission) Add(ctx context.Context, domain string) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.pending = append(b.pending, domain)
	b.stats.Domains++
	if len(b.pending) >= submitBatch {
		return b.flush(ctx)
	}
	return nil
}

// MaxListedRejects caps the rejected lines a manifest lists (all are
// counted): a binary file fed by mistake must not make a gigabyte manifest.
const MaxListedRejects = 10000

// Reject records a rejected input line for the manifest.
func (b *Submission) Reject(ctx context.Context, r Reject) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.stats.Rejected++
	if b.stats.Rejected > MaxListedRejects {
		return nil
	}
	b.rejects = append(b.rejects, r)
	if len(b.rejects) >= submitBatch && b.Job != nil {
		return b.flushRejects(ctx)
	}
	return nil
}

func (b *Submission) flushRejects(ctx context.Context) error {
	if len(b.rejects) == 0 {
		return nil
	}
	vals := make([]any, len(b.rejects))
	for i, r := range b.rejects {
		v, err := json.Marshal(r)
		if err != nil {
			return fmt.Errorf("job %s: recording a rejected line: %w", b.jobID, err)
		}
		vals[i] = v
	}
	b.rejects = b.rejects[:0]
	return b.s.Store.addRejects(ctx, b.jobID, vals)
}

func (b *Submission) flush(ctx context.Context) error {
	if len(b.pending) == 0 {
		return nil
	}
	if b.leaseLost.Load() {
		return errLeaseLost
	}
	if err := b.start(ctx); err != nil {
		return err
	}
	if err := b.flushRejects(ctx); err != nil {
		return err
	}
	feedAfter := b.s.FeedAfter
	if feedAfter == 0 {
		feedAfter = DefaultFeedAfter
	}
	now, fed := b.pending, []string(nil)
	if feedAfter < 0 {
		now, fed = nil, b.pending
	} else if left := feedAfter - b.direct; left < len(now) {
		now, fed = b.pending[:max(left, 0)], b.pending[max(left, 0):]
	}
	b.pending = b.pending[:0]
	if len(fed) > 0 {
		// Fed before this batch's tasks exist: the job cannot finish
		// between the two.
		if err := b.s.Store.appendFeed(ctx, b.jobID, b.gen, fed); err != nil {
			return err
		}
		b.stats.Fed += len(fed)
	}
	if len(now) == 0 {
		return nil
	}
	b.direct += len(now)
	newDomains, tasks, err := enqueueDomains(ctx, b.s.Store, b.s.pageClient(), b.Job, b.gen, b.s.Parallel, now, b.trace, b.refetched)
	b.stats.NewDomains += newDomains
	b.stats.Tasks += tasks
	if err != nil {
		return err
	}
	return b.s.Store.batchDone(ctx, b.jobID, b.gen)
}

// Close enqueues what is buffered, records the rejects, and ends the
// submission (which finalizes the job if nothing else is open). With no
// valid domain in the whole input it returns ErrNoDomain, and a new job
// has not been created.
func (b *Submission) Close(ctx context.Context) (SubmitStats, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	defer b.stopRenewing()
	if err := b.flush(ctx); err != nil {
		return b.stats, err
	}
	if b.Job == nil {
		return b.stats, ErrNoDomain
	}
	if err := b.flushRejects(ctx); err != nil {
		return b.stats, err
	}
	if err := b.s.Store.setRejected(ctx, b.jobID, b.stats.Rejected); err != nil {
		return b.stats, err
	}
	if b.leaseLost.Load() {
		return b.stats, errLeaseLost
	}
	finish, err := b.s.Store.closeSub(ctx, b.jobID, b.gen)
	if err != nil {
		return b.stats, err
	}
	if finish {
		if err := enqueueFinalize(ctx, b.s.Store, b.s.Client, b.jobID); err != nil {
			return b.stats, fmt.Errorf("job %s: %w", b.jobID, err)
		}
	}
	return b.stats, nil
}

// Abort ends an interrupted submission (Ctrl-C, an input error): what was
// submitted stays; its lease ends now, so a worker enqueues whatever it
// left without a task and the job can end, marked interrupted until a
// resubmission of the same list closes. Safe after Close (does nothing).
func (b *Submission) Abort(ctx context.Context) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.Job == nil || b.stop == nil {
		return nil
	}
	b.stopRenewing()
	return b.s.Store.expireSub(ctx, b.jobID, b.gen) // if this fails too, the lease expires by itself
}

// Stats is what the submission has added so far.
func (b *Submission) Stats() SubmitStats {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.stats
}
