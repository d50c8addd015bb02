package tasks

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/hibiken/asynq"
	"github.com/klauspost/compress/zstd"
	"github.com/redis/go-redis/v9"
)

// Feeding. A job's tasks wait in Redis, and Asynq's task hash costs about
// 600 bytes: a list of millions of domains enqueued up front takes
// gigabytes while almost all of it only waits for the vendor's limit. A
// submission therefore enqueues its first FeedAfter domains at once and
// appends the rest to the job's feed: a list of batches of domains,
// compressed (about 12 bytes a domain of random names). Workers top the
// providers' queues up from it (Worker.Feed) to a window that keeps them
// busy, one feeder a job at a time under a lease.
//
// Exactly once: a feeder registers a batch's units and enqueues their
// tasks (deterministic ids) before it removes the batch, in a script that
// checks it still holds the lease and that the batch is the one it fed; a
// feeder that dies mid-batch leaves the batch at the head, and the next
// one feeds it again, which creates nothing twice. The job's meta counts
// the domains not yet fed (unfed); a job with any cannot finish.

// DefaultFeedAfter is how many domains of a submission are enqueued at
// once before the rest is fed: small jobs start without a feeder's step.
const DefaultFeedAfter = 10000

// DefaultFeedWindow is how many tasks a provider's queue holds pending
// before a feeder waits: DataForSEO's 2,000 calls a minute is a minute of
// work; a queue drained faster than the feeder's tick refills it.
const DefaultFeedWindow = 2000

// feedIndex lists jobs whose feed holds domains (a hint outside the jobs'
// hash tags: the job's unfed counter decides).
const feedIndex = "lh:feeding"

// feederLease bounds how long a feeder that died holds a job's feed.
var feederLease = 15 * time.Second // a var: tests shorten it

// appendFeedScript adds a batch to a job's feed under the submission's
// lease (as registerScript does). KEYS: meta, feed, subs; ARGV: gen,
// domains, batch. Returns the batch's sequence number.
var appendFeedScript = redis.NewScript(luaNow + `
local s = redis.call('ZSCORE', KEYS[3], ARGV[1])
if not s or tonumber(s) < now then return redis.error_reply('LEASE submission lease lost') end
local seq = redis.call('HINCRBY', KEYS[1], 'feed_seq', 1)
redis.call('RPUSH', KEYS[2], seq .. '|' .. ARGV[2] .. '|' .. ARGV[3])
redis.call('HINCRBY', KEYS[1], 'unfed', ARGV[2])
return seq
`)

// popFeedScript removes the head batch once it is fed, if the feeder
// still holds the lease and the head is that batch. Returns -1 if not,
// else 1 if the job can now be finalized, 0 if not.
// KEYS: feeder lease, feed, meta, open, subs; ARGV: owner, seq|domains|
var popFeedScript = redis.NewScript(luaNow + luaLive + `
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return -1 end
local head = redis.call('LRANGE', KEYS[2], 0, 0)[1]
if not head or string.sub(head, 1, #ARGV[2]) ~= ARGV[2] then return -1 end
redis.call('LPOP', KEYS[2])
local n = tonumber(string.match(ARGV[2], '^%d+|(%d+)|'))
redis.call('HINCRBY', KEYS[3], 'unfed', -n)
if finishable(KEYS[4], KEYS[5], KEYS[3]) then return 1 end
return 0
`)

// leaseScript takes or renews a lease held by ARGV[1] for ARGV[2] ms.
var leaseScript = redis.NewScript(`
local v = redis.call('GET', KEYS[1])
if v and v ~= ARGV[1] then return 0 end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
return 1
`)

var releaseScript = redis.NewScript(`
if redis.call('GET', KEYS[1]) == ARGV[1] then redis.call('DEL', KEYS[1]) end
return 0
`)

// unindexScript forgets a job in feedIndex once nothing waits in its feed.
var unindexScript = redis.NewScript(`
if tonumber(redis.call('HGET', KEYS[1], 'unfed') or '0') <= 0 then redis.call('SREM', KEYS[2], ARGV[1]) end
return 0
`)

var (
	zstdEnc, _ = zstd.NewWriter(nil, zstd.WithEncoderLevel(zstd.SpeedBetterCompression))
	zstdDec, _ = zstd.NewReader(nil, zstd.WithDecoderConcurrency(0))
)

// appendFeed adds domains to the job's feed under submission gen.
func (s *Store) appendFeed(ctx context.Context, job string, gen int64, domains []string) error {
	k := keysFor(job)
	// Listed first: a submission that dies between the two leaves a job
	// listed with nothing to feed (the feeder unlists it), never domains
	// that no feeder looks for.
	if err := s.rdb.SAdd(ctx, feedIndex, job).Err(); err != nil {
		return fmt.Errorf("job %s: %w", job, redisErr(err))
	}
	batch := zstdEnc.EncodeAll([]byte(strings.Join(domains, "\n")), nil)
	if err := appendFeedScript.Run(ctx, s.rdb, []string{k.meta, k.feed, k.subs}, gen, len(domains), batch).Err(); err != nil {
		if strings.Contains(err.Error(), "LEASE") {
			return errLeaseLost
		}
		return fmt.Errorf("job %s: adding %d domains to its feed: %w", job, len(domains), redisErr(err))
	}
	return nil
}

// feedJobs lists the jobs whose feed may hold domains.
func (s *Store) feedJobs(ctx context.Context) ([]string, error) {
	jobs, err := s.rdb.SMembers(ctx, feedIndex).Result()
	if err != nil {
		return nil, fmt.Errorf("reading the jobs to feed: %w", redisErr(err))
	}
	return jobs, nil
}

// takeFeeder takes or renews the job's feeder lease for owner.
func (s *Store) takeFeeder(ctx context.Context, job, owner string) (bool, error) {
	ok, err := leaseScript.Run(ctx, s.rdb, []string{keysFor(job).feeder}, owner, feederLease.Milliseconds()).Int()
	if err != nil {
		return false, fmt.Errorf("job %s: taking its feeder lease: %w", job, redisErr(err))
	}
	return ok == 1, nil
}

func (s *Store) releaseFeeder(ctx context.Context, job, owner string) {
	_ = releaseScript.Run(ctx, s.rdb, []string{keysFor(job).feeder}, owner).Err() // else it expires
}

// unlistFeed forgets the job in feedIndex unless domains wait in its feed
// (or its meta is gone: an expired job).
func (s *Store) unlistFeed(ctx context.Context, job string) error {
	if err := unindexScript.Run(ctx, s.rdb, []string{keysFor(job).meta, feedIndex}, job).Err(); err != nil {
		return fmt.Errorf("job %s: %w", job, redisErr(err))
	}
	return nil
}

// feedBatch is the head of a job's feed.
type feedBatch struct {
	tag     string // "seq|domains|": what popFeed checks the head against
	domains []string
}

func (s *Store) feedHead(ctx context.Context, job string) (*feedBatch, error) {
	raw, err := s.rdb.LIndex(ctx, keysFor(job).feed, 0).Bytes()
	if errors.Is(err, redis.Nil) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("job %s: reading its feed: %w", job, redisErr(err))
	}
	i := bytes.IndexByte(raw, '|')
	j := -1
	if i >= 0 {
		j = bytes.IndexByte(raw[i+1:], '|')
	}
	if j < 0 {
		return nil, fmt.Errorf("job %s: a batch of its feed has no header", job)
	}
	j += i + 1
	n, err := strconv.Atoi(string(raw[i+1 : j]))
	if err != nil {
		return nil, fmt.Errorf("job %s: a batch of its feed: %w", job, err)
	}
	text, err := zstdDec.DecodeAll(raw[j+1:], nil)
	if err != nil {
		return nil, fmt.Errorf("job %s: a batch of its feed: %w", job, err)
	}
	b := &feedBatch{tag: string(raw[:j+1]), domains: strings.Split(string(text), "\n")}
	if len(b.domains) != n {
		return nil, fmt.Errorf("job %s: a batch of its feed holds %d domains, its header says %d", job, len(b.domains), n)
	}
	return b, nil
}

// popFeed removes a fed batch; ok is false if the feeder lost its lease
// (the next one feeds the batch again).
func (s *Store) popFeed(ctx context.Context, job, owner string, b *feedBatch) (ok, finish bool, err error) {
	k := keysFor(job)
	n, err := popFeedScript.Run(ctx, s.rdb, []string{k.feeder, k.feed, k.meta, k.open, k.subs}, owner, b.tag).Int()
	if err != nil {
		return false, false, fmt.Errorf("job %s: %w", job, redisErr(err))
	}
	return n >= 0, n == 1, nil
}

// queuePending is how many tasks wait in a provider's queue. It reads
// Asynq's pending list directly (asynq:{queue}:pending, its Redis layout
// since v0.18): the Inspector's GetQueueInfo reads a dozen keys for what
// is one LLEN.
func (s *Store) queuePending(ctx context.Context, queue string) (int64, error) {
	n, err := s.rdb.LLen(ctx, "asynq:{"+queue+"}:pending").Result()
	if err != nil {
		return 0, fmt.Errorf("queue %s: %w", queue, redisErr(err))
	}
	return n, nil
}

var feederSeq atomic.Int64

// feedClient is the client a feeder enqueues with: pipelined as a
// submission's (Submitter.pageClient).
func (w *Worker) feedClient() *asynq.Client {
	w.feedOnce.Do(func() { w.feedPipe = w.Store.pipelinedClient() })
	if w.feedPipe != nil {
		return w.feedPipe
	}
	return w.Client
}

// Feed tops up, every interval until ctx ends, the queues of the jobs
// whose feed holds domains. Any number of workers may feed: a job has one
// feeder at a time.
func (w *Worker) Feed(ctx context.Context, every time.Duration) {
	host, _ := os.Hostname()
	owner := fmt.Sprintf("%s:%d:%d:%d", host, os.Getpid(), time.Now().UnixNano(), feederSeq.Add(1))
	tick(ctx, every, func() bool {
		if err := w.feed(ctx, owner); err != nil && ctx.Err() == nil {
			w.log().Warn("feeding queues", "err", err)
		}
		return true
	})
}

func (w *Worker) feed(ctx context.Context, owner string) error {
	jobs, err := w.Store.feedJobs(ctx)
	if err != nil {
		return err
	}
	var errs []error
	for _, job := range jobs {
		if err := w.feedJob(ctx, job, owner); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// feedJob feeds batches of one job while its providers' queues are below
// the window and it holds the job's feeder lease.
func (w *Worker) feedJob(ctx context.Context, job, owner string) error {
	lease := func() (bool, error) { return w.Store.takeFeeder(ctx, job, owner) }
	if ok, err := lease(); err != nil || !ok {
		return err
	}
	defer w.Store.releaseFeeder(context.WithoutCancel(ctx), job, owner)
	j, err := w.job(ctx, job)
	if errors.Is(err, ErrNoJob) {
		return w.Store.unlistFeed(ctx, job)
	}
	if err != nil {
		return err
	}
	window := int64(w.FeedWindow)
	if window <= 0 {
		window = DefaultFeedWindow
	}
	for ctx.Err() == nil {
		for _, prov := range j.Spec.Providers {
			n, err := w.Store.queuePending(ctx, prov)
			if err != nil {
				return err
			}
			if n >= window {
				return nil
			}
		}
		b, err := w.Store.feedHead(ctx, job)
		if err != nil {
			return err
		}
		if b == nil {
			return w.Store.unlistFeed(ctx, job)
		}
		if ok, err := lease(); err != nil || !ok {
			return err
		}
		if _, _, err := enqueueDomains(ctx, w.Store, w.feedClient(), j, 0, 0, b.domains, nil, nil); err != nil {
			return err
		}
		ok, finish, err := w.Store.popFeed(ctx, job, owner, b)
		if err != nil || !ok {
			return err
		}
		if finish {
			if err := enqueueFinalize(ctx, w.Store, w.Client, job); err != nil {
				return err
			}
		}
	}
	return nil
}

// enqueueDomains registers the first pages of domains with their job
// (under submission gen, or 0 for a feeder) and enqueues those that have
// not ended, through checks in a refresh, par at once (64 if 0). skip
// names units that have tasks of their own already. It returns the
// domains new to the job and the tasks created.
func enqueueDomains(ctx context.Context, store *Store, client *asynq.Client, job *Job, gen int64, par int,
	domains []string, trace map[string]string, skip map[string]bool) (newDomains, tasks int, err error) {
	spec := &job.Spec
	var pages []PagePayload
	for _, d := range domains {
		for _, prov := range spec.Providers {
			for _, ep := range spec.Endpoints[prov] {
				pages = append(pages, PagePayload{Job: job.ID, Provider: prov, Endpoint: ep, Domain: d, Page: 1, Trace: trace})
			}
		}
	}
	if len(pages) == 0 {
		return 0, 0, nil
	}
	perDomain := len(pages) / len(domains)
	units := make([]string, len(pages))
	for i := range pages {
		units[i] = pages[i].Unit()
	}
	states, err := store.register(ctx, job.ID, gen, perDomain, units)
	if err != nil {
		return 0, 0, err
	}
	for i := 0; i < len(pages); i += perDomain {
		if states[i] == 1 {
			newDomains++
		}
	}
	var todo []PagePayload
	for i := range pages {
		if states[i] == 0 || (states[i] == 2 && skip[units[i]]) {
			continue
		}
		todo = append(todo, pages[i])
	}
	tasks, err = enqueueFirst(ctx, client, spec, todo, par)
	return newDomains, tasks, err
}
