package tasks

import (
	"context"
	"encoding/json"
	"fmt"
	"strconv"
	"sync"
	"time"

	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"
	"golang.org/x/sync/errgroup"
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
	Now      func() time.Time

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
	s.pipeOnce.Do(func() {
		if rc, ok := s.Store.rdb.(*redis.Client); ok {
			if ap, err := rc.AutoPipeline(); err == nil {
				s.pipe = asynq.NewClientFromRedisClient(ap)
			}
		}
	})
	if s.pipe != nil {
		return s.pipe
	}
	return s.Client
}

// Submission streams one submission of a job's domain list.
type Submission struct {
	s       *Submitter
	Job     *Job
	unit    string
	trace   map[string]string
	pending []string
	rejects []Reject
	stats   SubmitStats
}

// SubmitStats counts what a submission added.
type SubmitStats struct {
	Domains    int // valid domains submitted
	NewDomains int // of which new to the job
	Tasks      int // first-page tasks created
	Rejected   int
}

const submitBatch = 512

// Begin creates the job (or checks a resubmission asks for the same thing)
// and opens a submission unit, so the job cannot complete while its list
// is still being read.
func (s *Submitter) Begin(ctx context.Context, jobID string, spec Spec, trace map[string]string) (*Submission, error) {
	if err := ValidJobID(jobID); err != nil {
		return nil, err
	}
	now := time.Now()
	if s.Now != nil {
		now = s.Now()
	}
	job, err := s.Store.create(ctx, jobID, spec, now)
	if err != nil {
		return nil, err
	}
	unit := "submit|" + strconv.FormatInt(job.Gen, 10)
	if _, err := s.Store.register(ctx, jobID, []string{unit}); err != nil {
		return nil, err
	}
	k := keysFor(jobID)
	if err := s.Store.rdb.Del(ctx, k.rejected).Err(); err != nil {
		return nil, err
	}
	return &Submission{s: s, Job: job, unit: unit, trace: trace}, nil
}

// Add submits one normalised domain.
func (b *Submission) Add(ctx context.Context, domain string) error {
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
	b.stats.Rejected++
	if b.stats.Rejected > MaxListedRejects {
		return nil
	}
	b.rejects = append(b.rejects, r)
	if len(b.rejects) >= submitBatch {
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
		v, _ := json.Marshal(r)
		vals[i] = v
	}
	b.rejects = b.rejects[:0]
	return b.s.Store.rdb.RPush(ctx, keysFor(b.Job.ID).rejected, vals...).Err()
}

func (b *Submission) flush(ctx context.Context) error {
	if len(b.pending) == 0 {
		return nil
	}
	spec := b.Job.Spec
	var pages []PagePayload
	for _, d := range b.pending {
		for _, prov := range spec.Providers {
			for _, ep := range spec.Endpoints[prov] {
				pages = append(pages, PagePayload{Job: b.Job.ID, Provider: prov, Endpoint: ep, Domain: d, Page: 1, Trace: b.trace})
			}
		}
	}
	perDomain := len(pages) / len(b.pending)
	b.pending = b.pending[:0]
	units := make([]string, len(pages))
	for i := range pages {
		units[i] = pages[i].Unit()
	}
	states, err := b.s.Store.register(ctx, b.Job.ID, units)
	if err != nil {
		return err
	}
	newDomains := 0
	for i := 0; i < len(pages); i += perDomain {
		if states[i] == 1 {
			newDomains++
		}
	}
	if newDomains > 0 {
		if err := b.s.Store.rdb.HIncrBy(ctx, keysFor(b.Job.ID).meta, "domains", int64(newDomains)).Err(); err != nil {
			return err
		}
	}
	b.stats.NewDomains += newDomains
	par := b.s.Parallel
	if par <= 0 {
		par = 64
	}
	client := b.s.pageClient()
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(par)
	var mu sync.Mutex
	for i := range pages {
		if states[i] == 0 {
			continue
		}
		g.Go(func() error {
			created, err := enqueuePage(gctx, client, &pages[i], spec.maxRetry())
			if created {
				mu.Lock()
				b.stats.Tasks++
				mu.Unlock()
			}
			return err
		})
	}
	return g.Wait()
}

// Close enqueues what is buffered, records the rejects, and ends the
// submission unit (which finalizes the job if nothing else is open).
func (b *Submission) Close(ctx context.Context) (SubmitStats, error) {
	if err := b.flush(ctx); err != nil {
		return b.stats, err
	}
	if err := b.flushRejects(ctx); err != nil {
		return b.stats, err
	}
	if err := b.s.Store.rdb.HSet(ctx, keysFor(b.Job.ID).meta, "rejected", b.stats.Rejected).Err(); err != nil {
		return b.stats, err
	}
	open, err := b.s.Store.end(ctx, b.Job.ID, b.unit, Outcome{Status: "ok"}, false)
	if err != nil {
		return b.stats, err
	}
	if open == 0 {
		if err := enqueueFinalize(ctx, b.s.Store, b.s.Client, b.Job.ID); err != nil {
			return b.stats, fmt.Errorf("job %s: %w", b.Job.ID, err)
		}
	}
	return b.stats, nil
}
