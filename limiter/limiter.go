// Package limiter shares a vendor account's limits among every worker
// process, on every machine, through Redis: calls per period (a GCRA bucket,
// sized so that no sliding window of the period ever holds more than the
// limit) and calls in flight (leases that expire unless their holder renews
// them, so a killed worker's slots come back within seconds). A throttle
// seen by one worker pauses all of them (Backoff).
//
// All state lives under one Redis Cluster hash tag per provider account:
//
//	{lh:limit:NAME}:inflight   ZSET lease id -> expiry (ms, Redis TIME)
//	{lh:limit:NAME}:wake       LIST, one entry per released slot (wakes one waiter)
//	{lh:limit:NAME}:cooldown   STRING, end of the shared pause (ms, Redis TIME)
//	{lh:limit:NAME}:account    HASH path -> the account's limit the vendor states (account.go)
//	rate:{lh:limit:NAME}:rate  redis_rate's GCRA state (redis_rate adds "rate:")
//
// Every clock reading is Redis TIME inside a script; workers' clocks are
// never compared with each other.
//
// How a call waits (Acquire): in each process one goroutine per account at
// a time asks Redis, the others queue locally in FIFO order. An attempt
// checks the cooldown and takes a slot in one script, then asks redis_rate
// for a token; with no token it gives the slot back at once and sleeps
// until the bucket's RetryAfter (plus up to 1 ms of jitter). With no slot
// it blocks on the wake list (BLPOP): each Release pushes one entry, and
// Redis hands it to the longest-blocked process, so a freed slot is taken
// again within a few round trips (about 1-3 ms on a LAN) without a herd
// and without polling; a 50-150 ms timeout covers holders that died.
package limiter

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/go-redis/redis_rate/v10"
	"github.com/redis/go-redis/v9"
)

const (
	// DefaultLeaseTTL is how long an in-flight slot outlives its holder's
	// last renewal: a SIGKILLed worker's slots come back within it.
	DefaultLeaseTTL = 5 * time.Second
	// defaultPoll bounds a waiter's sleep when no release wakes it (a
	// holder that died, a wake-up lost to a race); it is jittered ±50%.
	defaultPoll = 100 * time.Millisecond
	// DefaultMaxHold is how long a lease is renewed without Release: far
	// past any vendor call (DataForSEO times out live calls at 120 s, a
	// task at 10 min), so only a leaked lease reaches it; it then expires
	// instead of taking a slot for the life of the process.
	DefaultMaxHold = 30 * time.Minute
	// maxBackoff caps one Backoff: a bogus Retry-After must not stop an
	// account for a day.
	maxBackoff = time.Hour
	// redisTimeout bounds the bookkeeping calls made without the caller's
	// deadline (Release after the task's context ended, giving a slot back).
	redisTimeout = 2 * time.Second
)

// Option changes a Limiter's defaults.
type Option func(*Limiter)

// WithLeaseTTL sets how long an unrenewed lease lives (default 5 s; at
// least 500 ms). Holders renew every TTL/5.
func WithLeaseTTL(d time.Duration) Option {
	return func(l *Limiter) { l.ttl = max(d, 500*time.Millisecond) }
}

// WithMaxHold sets how long a lease is renewed at most (default 30 min).
func WithMaxHold(d time.Duration) Option {
	return func(l *Limiter) {
		if d > 0 {
			l.maxHold = d
		}
	}
}

// WithLogger sets the logger (default slog.Default()).
func WithLogger(log *slog.Logger) Option {
	return func(l *Limiter) {
		if log != nil {
			l.log = log
		}
	}
}

// Limiter is one provider account's shared limits. It is safe for
// concurrent use; make one per account and process.
type Limiter struct {
	rdb     redis.UniversalClient
	name    string
	limit   Limit
	bucket  redis_rate.Limit
	rate    *redis_rate.Limiter
	log     *slog.Logger
	ttl     time.Duration
	maxHold time.Duration
	poll    time.Duration

	keyInflight, keyWake, keyCooldown, keyRate, keyAccount string

	acct accountLimit // the vendor's stated limit (account.go)

	// gate lets one goroutine of this process at a time ask Redis for
	// capacity; the others queue here in FIFO order. A process thus puts
	// at most one waiter per account on Redis, however many tasks it runs,
	// and a released slot wakes one waiter (the longest-blocked process),
	// not a herd. nil when nothing is limited.
	gate chan struct{}

	mu       sync.Mutex
	leases   map[string]*Lease // held by this process, renewed in the background
	renewing bool
	renewMu  sync.Mutex // held during a renewal round (see renewOnce)

	st struct {
		acquired, waited, waitNanos              atomic.Int64
		slotWaits, rateWaits, cooldownWaits      atomic.Int64
		lostLeases, redisErrors, backoffs, fails atomic.Int64
		leaked                                   atomic.Int64
	}
}

// New returns the limiter of the named provider account. Rate 0 or
// InFlight 0 leave that dimension unlimited; a Period of 0 means a minute.
// Every process that shares an account must be given the same Limit.
func New(rdb redis.UniversalClient, name string, lim Limit, opts ...Option) *Limiter {
	lim.Rate, lim.InFlight = max(lim.Rate, 0), max(lim.InFlight, 0)
	if lim.Period <= 0 {
		lim.Period = time.Minute
	}
	tag := "{lh:limit:" + name + "}"
	l := &Limiter{
		rdb: rdb, name: name, limit: lim, bucket: lim.bucket(),
		rate: redis_rate.NewLimiter(rdb),
		log:  slog.Default(), ttl: DefaultLeaseTTL, maxHold: DefaultMaxHold, poll: defaultPoll,
		keyInflight: tag + ":inflight", keyWake: tag + ":wake", keyCooldown: tag + ":cooldown",
		keyRate: tag + ":rate", keyAccount: tag + ":account",
		leases: map[string]*Lease{},
	}
	for _, o := range opts {
		o(l)
	}
	if lim.Rate > 0 || lim.InFlight > 0 {
		l.gate = make(chan struct{}, 1)
	}
	return l
}

// Name is the provider account's name.
func (l *Limiter) Name() string { return l.name }

// Limit is the limit the limiter enforces.
func (l *Limiter) Limit() Limit { return l.limit }

// Lease is one call's capacity: a rate token spent and, when calls in
// flight are limited, a slot held until Release.
type Lease struct {
	l     *Limiter
	id    string // "" when calls in flight are not limited
	since time.Time
	once  sync.Once
	stop  func() bool // unhooks the release on ctx end
	// Waited is how long Acquire waited (for spans and logs).
	Waited time.Duration
}

// Acquire waits until the account has both a rate token and an in-flight
// slot, then returns a lease on them. Waiting is not a failure: Acquire
// blocks until it gets capacity or ctx ends (then its error wraps
// ErrWaitEnded and ctx.Err(), in an *Error). A shared
// Backoff in force holds it too. It never holds a slot while it waits for
// a token: a slot taken when no token is left is given back at once.
//
// The lease lives until Release or until ctx ends, whichever is first, so
// pass the context of the work the call belongs to (the task's). It is
// renewed in the background meanwhile, for at most WithMaxHold (30 min).
func (l *Limiter) Acquire(ctx context.Context) (*Lease, error) {
	start := time.Now()
	if ctx.Err() != nil {
		return nil, l.waitEnded(ctx, start, nil)
	}
	waited := false
	if l.gate != nil {
		select {
		case l.gate <- struct{}{}:
		default:
			waited = true
			select {
			case l.gate <- struct{}{}:
			case <-ctx.Done():
				return nil, l.waitEnded(ctx, start, nil)
			}
		}
		defer func() { <-l.gate }()
	}
	var lastErr error
	for attempt := 0; ; {
		id := ""
		if l.limit.InFlight > 0 {
			id = newLeaseID()
		}
		st, wait, err := l.try(ctx, id)
		if err != nil {
			if ctx.Err() != nil {
				return nil, l.waitEnded(ctx, start, err)
			}
			l.st.redisErrors.Add(1)
			if !transient(err) {
				l.st.fails.Add(1)
				return nil, &Error{Provider: l.name, Message: "acquiring capacity", Err: fmt.Errorf("%w: %w", ErrUnavailable, err)}
			}
			// Redis is restarting or out of reach: no capacity can be
			// proven, so none is used. Keep trying until ctx ends.
			lastErr = err
			if attempt == 0 || attempt%20 == 0 {
				l.log.Warn("shared limiter: redis error; retrying", "provider", l.name, "err", err)
			}
			attempt++
			waited = true
			if !sleep(ctx, jitter(min(50*time.Millisecond<<min(attempt, 5), time.Second), 0.5)) {
				return nil, l.waitEnded(ctx, start, lastErr)
			}
			continue
		}
		attempt, lastErr = 0, nil
		switch st {
		case granted:
			if ctx.Err() != nil { // too late to use it; the token is spent anyway
				l.giveBack(ctx, id, true)
				return nil, l.waitEnded(ctx, start, nil)
			}
			return l.grant(ctx, id, start, waited), nil
		case cooling:
			// Everyone wakes at the same moment after a cooldown; the
			// bucket spreads them, the jitter spares Redis the stampede.
			waited = true
			l.st.cooldownWaits.Add(1)
			if !sleep(ctx, wait+randDur(time.Millisecond+wait/50)) {
				return nil, l.waitEnded(ctx, start, nil)
			}
		case noToken:
			waited = true
			l.st.rateWaits.Add(1)
			if !sleep(ctx, wait+randDur(time.Millisecond)) {
				return nil, l.waitEnded(ctx, start, nil)
			}
		case full:
			waited = true
			l.st.slotWaits.Add(1)
			l.waitForRelease(ctx, wait)
			if ctx.Err() != nil {
				return nil, l.waitEnded(ctx, start, nil)
			}
		}
	}
}

type outcome int

const (
	full outcome = iota
	granted
	cooling
	noToken
)

// try makes one attempt: the cooldown and a slot in one script, then a
// token. On noToken the slot has been given back. wait is how long to wait
// before the next attempt (for full: until the earliest lease expires).
func (l *Limiter) try(ctx context.Context, id string) (outcome, time.Duration, error) {
	inflight := l.limit.InFlight
	if id == "" {
		inflight = 0
	}
	res, err := acquireScript.Run(ctx, l.rdb, []string{l.keyInflight, l.keyCooldown, l.keyAccount},
		inflight, l.ttl.Milliseconds(), id).Int64Slice()
	if err != nil {
		return 0, 0, fmt.Errorf("limiter %s: in-flight slot: %w", l.name, err)
	}
	if len(res) < 2 {
		return 0, 0, fmt.Errorf("limiter %s: in-flight slot: unexpected reply %v", l.name, res)
	}
	st, wait := outcome(res[0]), time.Duration(res[1])*time.Millisecond
	if st != granted || l.limit.Rate == 0 {
		return st, wait, nil
	}
	var stated int64
	if len(res) > 2 {
		stated = res[2]
	}
	r, err := l.rate.Allow(ctx, l.keyRate, l.bucketFor(stated))
	if err != nil {
		l.giveBack(ctx, id, true)
		return 0, 0, fmt.Errorf("limiter %s: rate token: %w", l.name, err)
	}
	if r.Allowed == 0 {
		// No wake-up for this one: the slot was free before we took it,
		// and waking a slot waiter now would only send it into the same
		// empty bucket.
		l.giveBack(ctx, id, false)
		return noToken, max(r.RetryAfter, 0), nil
	}
	return granted, 0, nil
}

// waitForRelease blocks until a released slot wakes this waiter (BLPOP on
// the wake list: Redis serves blocked clients first come, first served, so
// each release wakes the longest-waiting process), until the earliest
// lease could expire, or for the jittered poll interval, whichever is
// first. The poll covers holders that died and wake-ups that raced.
func (l *Limiter) waitForRelease(ctx context.Context, untilExpiry time.Duration) {
	d := jitter(l.poll, 0.5)
	if untilExpiry > 0 {
		d = min(d, untilExpiry+time.Millisecond)
	}
	if dl, ok := ctx.Deadline(); ok {
		d = min(d, time.Until(dl))
	}
	d = max(d, 2*time.Millisecond) // BLPOP's 0 would block for ever
	err := l.rdb.Do(ctx, "BLPOP", l.keyWake, strconv.FormatFloat(d.Seconds(), 'f', 3, 64)).Err()
	if err != nil && !errors.Is(err, redis.Nil) && ctx.Err() == nil {
		l.st.redisErrors.Add(1)
		sleep(ctx, jitter(20*time.Millisecond, 0.5))
	}
}

func (l *Limiter) grant(ctx context.Context, id string, start time.Time, waited bool) *Lease {
	le := &Lease{l: l, id: id, since: time.Now(), Waited: time.Since(start)}
	l.st.acquired.Add(1)
	l.st.waitNanos.Add(int64(le.Waited))
	if waited {
		l.st.waited.Add(1)
	}
	if id != "" {
		l.register(le)
		le.stop = context.AfterFunc(ctx, func() { le.release(context.Background()) })
	}
	return le
}

// giveBack frees a slot taken by an attempt that did not become a lease.
func (l *Limiter) giveBack(ctx context.Context, id string, wake bool) {
	if id == "" {
		return
	}
	rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), redisTimeout)
	defer cancel()
	if err := l.release(rctx, id, wake); err != nil {
		// It expires within the lease TTL: it is not renewed.
		l.st.redisErrors.Add(1)
	}
}

func (l *Limiter) release(ctx context.Context, id string, wake bool) error {
	w := 0
	if wake {
		w = 1
	}
	return releaseScript.Run(ctx, l.rdb, []string{l.keyInflight, l.keyWake},
		id, w, max(l.limit.InFlight, 1), l.ttl.Milliseconds()).Err()
}

// Release gives the slot back and stops renewing it. It may be called any
// number of times, on a nil lease too, and with a context that has ended
// (the bookkeeping gets its own short deadline). If Redis cannot be
// reached the slot still comes back when its lease expires.
func (le *Lease) Release(ctx context.Context) {
	if le == nil {
		return
	}
	if le.stop != nil {
		le.stop() // the holder's goroutine: Acquire's write of stop happened before
	}
	le.release(ctx)
}

func (le *Lease) release(ctx context.Context) {
	le.once.Do(func() {
		if le.id == "" {
			return
		}
		le.l.unregister(le.id)
		le.l.renewMu.Lock() // wait out a renewal that may carry this lease
		le.l.renewMu.Unlock()
		le.l.giveBack(ctx, le.id, true)
	})
}

// register starts renewing a lease; one goroutine per limiter renews all
// of the process's leases in one script call, and exits when none is left.
func (l *Limiter) register(le *Lease) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.leases[le.id] = le
	if !l.renewing {
		l.renewing = true
		go l.renewLoop()
	}
}

func (l *Limiter) unregister(id string) {
	l.mu.Lock()
	delete(l.leases, id)
	l.mu.Unlock()
}

func (l *Limiter) held(id string) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	_, ok := l.leases[id]
	return ok
}

func (l *Limiter) renewLoop() {
	every := l.ttl / 5
	t := time.NewTicker(every)
	defer t.Stop()
	for range t.C {
		if !l.renewOnce(every) {
			return
		}
	}
}

// renewOnce renews the process's leases; false when none is left (the
// loop ends; the next register starts another). It holds renewMu for the
// whole round, so that Release, which waits on renewMu after dropping its
// lease from the map, removes the lease from Redis after any renewal that
// could have carried it, never before: a released lease is not brought
// back.
func (l *Limiter) renewOnce(every time.Duration) bool {
	l.renewMu.Lock()
	defer l.renewMu.Unlock()
	l.mu.Lock()
	if len(l.leases) == 0 {
		l.renewing = false
		l.mu.Unlock()
		return false
	}
	ids := make([]string, 0, len(l.leases))
	for id, le := range l.leases {
		if time.Since(le.since) > l.maxHold {
			delete(l.leases, id) // leaked: let it expire
			l.st.leaked.Add(1)
			l.log.Error("shared limiter: a lease was held past the maximum without Release; no longer renewed",
				"provider", l.name, "max_hold", l.maxHold.String())
			continue
		}
		ids = append(ids, id)
	}
	l.mu.Unlock()
	if len(ids) > 0 {
		l.renew(every, ids)
	}
	return true
}

// renew pushes the expiry of the given leases to now+TTL. A lease that was
// gone is put back: its holder stalled past the TTL, or Redis lost it (a
// restart that dropped the last second of its AOF, a failover), while the
// call still runs; the slot is really taken, and counting it again keeps
// the account from going further over. (A lease released meanwhile,
// which renewMu rules out, would be removed again.)
func (l *Limiter) renew(timeout time.Duration, ids []string) {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	args := make([]any, 0, len(ids)+1)
	args = append(args, l.ttl.Milliseconds())
	for _, id := range ids {
		args = append(args, id)
	}
	back, err := renewScript.Run(ctx, l.rdb, []string{l.keyInflight}, args...).StringSlice()
	if err != nil {
		l.st.redisErrors.Add(1)
		l.log.Warn("shared limiter: renewing in-flight leases", "provider", l.name, "leases", len(ids), "err", err)
		return
	}
	for _, id := range back {
		if l.held(id) {
			l.st.lostLeases.Add(1)
			l.log.Warn("shared limiter: a lease expired while its call ran (process stalled or Redis unreachable longer than the lease TTL); counted again",
				"provider", l.name, "ttl", l.ttl.String())
			continue
		}
		if err := l.release(ctx, id, true); err != nil {
			l.st.redisErrors.Add(1)
		}
	}
}

// Backoff makes every worker of the account pause new calls until d after
// now, by Redis TIME: a throttle seen by one worker slows them all. A
// longer pause already in force is kept. d is capped at an hour.
func (l *Limiter) Backoff(ctx context.Context, d time.Duration) error {
	if d <= 0 {
		return nil
	}
	ms := max(min(d, maxBackoff).Milliseconds(), 1)
	if err := cooldownScript.Run(ctx, l.rdb, []string{l.keyCooldown}, ms).Err(); err != nil {
		return &Error{Provider: l.name, Message: "sharing a backoff", Err: fmt.Errorf("%w: %w", ErrUnavailable, err)}
	}
	l.st.backoffs.Add(1)
	return nil
}

// Stats are a limiter's counters in this process, for metrics.
type Stats struct {
	Acquired      int64         // leases granted
	Waited        int64         // of those, how many did not get capacity at once
	WaitTime      time.Duration // total time spent in Acquire by granted leases
	SlotWaits     int64         // attempts that found every slot taken
	RateWaits     int64         // attempts that found the bucket empty
	CooldownWaits int64         // attempts that found a shared backoff in force
	Backoffs      int64         // Backoff calls
	LostLeases    int64         // leases that expired while their call still ran
	Leaked        int64         // leases held past the maximum hold, left to expire
	RedisErrors   int64
	Failures      int64 // Acquire calls that failed for a reason other than ctx
	Held          int   // leases this process holds now
}

// Stats returns the counters.
func (l *Limiter) Stats() Stats {
	l.mu.Lock()
	held := len(l.leases)
	l.mu.Unlock()
	return Stats{
		Acquired: l.st.acquired.Load(), Waited: l.st.waited.Load(),
		WaitTime:  time.Duration(l.st.waitNanos.Load()),
		SlotWaits: l.st.slotWaits.Load(), RateWaits: l.st.rateWaits.Load(), CooldownWaits: l.st.cooldownWaits.Load(),
		Backoffs: l.st.backoffs.Load(), LostLeases: l.st.lostLeases.Load(), Leaked: l.st.leaked.Load(), RedisErrors: l.st.redisErrors.Load(),
		Failures: l.st.fails.Load(), Held: held,
	}
}

// waitEnded is Acquire's error when ctx ended before capacity was found.
func (l *Limiter) waitEnded(ctx context.Context, start time.Time, last error) error {
	err := fmt.Errorf("%w: %w", ErrWaitEnded, context.Cause(ctx))
	if last != nil {
		err = fmt.Errorf("%w (last redis error: %w)", err, last)
	}
	return &Error{Provider: l.name, Message: "waited " + time.Since(start).Round(time.Millisecond).String() + " for capacity", Err: err}
}

// transient tells Redis errors worth waiting out (network, restart,
// failover) from those that will not go away (a script error, no
// permission, a key of the wrong type).
func transient(err error) bool {
	var re redis.Error
	if !errors.As(err, &re) {
		return true // network, pool timeout, ...
	}
	msg := re.Error()
	for _, p := range []string{"LOADING", "READONLY", "CLUSTERDOWN", "TRYAGAIN", "MASTERDOWN", "BUSY", "MOVED", "ASK", "OOM"} {
		if strings.HasPrefix(msg, p) {
			return true
		}
	}
	return false
}

var pid = strconv.Itoa(os.Getpid())

// newLeaseID is unique across processes: 64 random bits (the process id
// only helps a human reading the ZSET).
func newLeaseID() string {
	return pid + "-" + strconv.FormatUint(rand.Uint64(), 36)
}

// jitter returns d ± frac·d.
func jitter(d time.Duration, frac float64) time.Duration {
	span := time.Duration(float64(d) * frac)
	if span <= 0 {
		return d
	}
	return d - span + randDur(2*span)
}

func randDur(d time.Duration) time.Duration {
	if d <= 0 {
		return 0
	}
	return rand.N(d)
}

// sleep waits d or until ctx ends; false if ctx ended.
func sleep(ctx context.Context, d time.Duration) bool {
	if d <= 0 {
		return ctx.Err() == nil
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}
