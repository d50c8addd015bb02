// Package recovery hands the running tasks of a dead worker back to their
// queue within seconds, instead of asynq's ~105 s (a 30 s lease, a
// recoverer that runs once a minute and only takes leases expired 30 s
// ago, then a retry delay and a spent retry).
//
// Every worker runs a Recovery. It does three things:
//
//   - Presence: it holds one Redis connection of its own, named after the
//     process ("linkharvest-worker:<host>:<pid>:<random>"), and pings on it
//     every second, recording its CLIENT ID under linkharvest:presence:{…}
//     so a sweep can ask about one owner without listing every client. The
//     kernel closes the connection when the process dies (SIGKILL, OOM
//     kill, crash), so Redis drops it at once; a stopped, paused or
//     partitioned process keeps it.
//   - Ownership: a task middleware records that token in the task's own
//     asynq hash (field OwnerField) when the handler starts.
//   - Sweep: every Interval it looks at every queue's active tasks and hands
//     one back to pending (asynq's own requeue transition, so no retry is
//     spent) when no live server runs it and either
//     (owner path) its owner's presence connection has been gone for Grace,
//     no server with a heartbeat fresher than StaleAfter lists it, and its
//     lease was not renewed within StaleAfter (asynq renews it at every
//     heartbeat); or
//     (lease path) its lease expired more than SkewMargin ago by Redis's
//     clock, whoever owned it.
//
// What this guarantees (asynq v0.26.0: heartbeat every 5 s, server key TTL
// 10 s, lease 30 s renewed by each heartbeat):
//
//   - A process that died on a host that lives: its tasks go back to pending
//     within StaleAfter + Interval of its death (defaults 8 s + 2 s; Grace,
//     5 s, runs meanwhile), and a free worker picks them up within its
//     TaskCheckInterval.
//   - A live worker never loses a task: while it heartbeats, its workers
//     list names the task and the task is not touched. A slow call does not
//     stop the heartbeat.
//   - A process that is stopped (SIGSTOP), paused (a long GC or swap) or cut
//     from Redis keeps its connections open on the Redis side, so only the
//     lease path can take its tasks: a pause or cut shorter than its lease
//     (30 s after its last heartbeat) loses nothing. Past the lease, asynq
//     itself stops the worker from writing anything back for the task (it
//     checks its lease before every write), and the task runs elsewhere.
//   - A lost host or a network partition looks the same from Redis: those
//     tasks come back by the lease path, 30 s + SkewMargin + Interval after
//     the last heartbeat (not 105 s), again without spending a retry.
//   - Weaker: a worker whose connections are reset (not merely stalled) and
//     that cannot reconnect for longer than StaleAfter looks dead (from
//     Redis it is a dead worker) and its tasks may run a second time; the
//     page handler is idempotent (fixed object keys, an ended check), so
//     the output stays exactly once. A larger StaleAfter widens that window
//     at the cost of a slower recovery.
//   - A task whose handler ended while Redis was unreachable: asynq queues
//     its write-back (Done, Retry) for later with a context that is already
//     cancelled (processor.go), so it never lands, and the task stays active
//     with nobody running it. The lease path brings it back, about 35 s
//     after its last heartbeat, without a retry.
//   - A task handed back MaxTakeovers times (one that kills its workers) is
//     left to asynq's recoverer, which spends a retry, so it ends some day.
//
// The decision is made from a snapshot; the hand-back itself is one Lua
// script that checks again that the task is active, its lease score is the
// one seen (so a heartbeat or a new dequeue since then wins), and its owner
// is the one judged dead (or, on the lease path, that the lease has expired
// by Redis's TIME), so races with asynq's recoverer, another worker's sweep
// or the owner resuming end with the task touched at most once. The key
// layout this relies on is asynq's and is pinned by this package's tests.
package recovery

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"
)

// asynq v0.26.0 internals this package relies on (pinned by tests).
const (
	// leaseDuration is asynq's rdb.LeaseDuration: a lease's score is the
	// Unix second it expires, set at dequeue and at every heartbeat.
	leaseDuration = 30 * time.Second
	// serverTTL is the TTL asynq gives a server's info and worker list:
	// twice its 5 s heartbeat interval.
	serverTTL = 10 * time.Second
)

// OwnerField is the field of asynq's task hash (asynq:{queue}:t:<id>) where
// the middleware records which process runs the task. asynq ignores fields
// it does not know, and deletes the hash with the task.
const OwnerField = "lh_owner"

// TakeoversField (in the task hash) counts how often a task was handed back.
const TakeoversField = "lh_takeovers"

// PresencePrefix starts the client name of every worker's presence connection.
const PresencePrefix = "linkharvest-worker:"

// Options tune the sweep. Zero values take the defaults.
type Options struct {
	// StaleAfter: a server whose last heartbeat is older is not alive
	// (default 8 s, from 1 s to MaxStaleAfter). Past 10 s asynq's server
	// key has expired anyway, and what counts is the lease's last renewal
	// (at each heartbeat): a larger value lets a worker whose connections
	// are reset stay away longer without losing its tasks, and recovers a
	// dead worker's tasks that much later.
	StaleAfter time.Duration
	// Interval between sweeps (default 2 s).
	Interval time.Duration
	// Grace: how long an owner's presence connection must have been
	// missing before it counts as dead (default 5 s; a live worker pings
	// on it every second, dialling for at most a second), so a reconnect
	// after a Redis restart is not mistaken for a death. It runs while the
	// heartbeat goes stale, so it adds nothing to a recovery by default.
	Grace time.Duration
	// SkewMargin: the lease path takes a task only once its lease expired
	// this long ago by Redis's clock, covering workers' clock skew
	// (default 5 s).
	SkewMargin time.Duration
	// MaxTakeovers: after this many hand-backs a task is left to asynq's
	// recoverer (default 3).
	MaxTakeovers int
	Log          *slog.Logger
}

// Defaults.
const (
	DefaultStaleAfter   = 8 * time.Second
	MaxStaleAfter       = 25 * time.Second // under the lease, 30 s
	DefaultInterval     = 2 * time.Second
	DefaultGrace        = 5 * time.Second
	DefaultSkewMargin   = 5 * time.Second
	DefaultMaxTakeovers = 3
)

func (o *Options) defaults() error {
	if o.StaleAfter == 0 {
		o.StaleAfter = DefaultStaleAfter
	}
	if o.StaleAfter < time.Second || o.StaleAfter > MaxStaleAfter {
		return fmt.Errorf("heartbeat staleness %v: want 1s to %v", o.StaleAfter, MaxStaleAfter)
	}
	if o.Interval <= 0 {
		o.Interval = DefaultInterval
	}
	if o.Grace <= 0 {
		o.Grace = DefaultGrace
	}
	if o.SkewMargin <= 0 {
		o.SkewMargin = DefaultSkewMargin
	}
	if o.MaxTakeovers <= 0 {
		o.MaxTakeovers = DefaultMaxTakeovers
	}
	if o.Log == nil {
		o.Log = slog.Default()
	}
	return nil
}

// Recovery is one worker's part: its presence, its middleware, its sweep.
type Recovery struct {
	rdb      redis.UniversalClient
	presence *redis.Client // nil when the connection's options are unknown
	insp     *asynq.Inspector
	token    string
	opts     Options

	mu          sync.Mutex
	absentSince map[string]time.Time // owner token → when (Redis time) first seen without presence
	warned      map[string]bool      // tasks said to be handed back too often
	listFailed  bool                 // CLIENT LIST refused: owner path off, said once
	clientID    atomic.Int64         // the presence connection's CLIENT ID
	fullLists   atomic.Int64         // sweeps that listed every client
	lastErr     time.Time
}

// New prepares a worker's recovery and opens its presence connection.
// With a client other than *redis.Client (a cluster, a ring) there is no
// presence and only the lease path runs.
func New(ctx context.Context, rdb redis.UniversalClient, opts Options) (*Recovery, error) {
	if err := opts.defaults(); err != nil {
		return nil, err
	}
	host, err := os.Hostname()
	if err != nil {
		host = "unknown-host"
	}
	var b [6]byte
	_, _ = rand.Read(b[:])
	// Client names may not hold spaces; host names do not.
	token := fmt.Sprintf("%s:%d:%s", strings.ReplaceAll(host, " ", "_"), os.Getpid(), hex.EncodeToString(b[:]))
	r := &Recovery{rdb: rdb, insp: asynq.NewInspectorFromRedisClient(rdb), token: token, opts: opts,
		absentSince: map[string]time.Time{}, warned: map[string]bool{}}
	if c, ok := rdb.(*redis.Client); ok {
		po := *c.Options()
		po.PoolSize, po.MinIdleConns, po.MaxIdleConns = 1, 0, 1
		po.ConnMaxIdleTime = -1 // kept busy by the pings anyway
		po.DialTimeout, po.ReadTimeout, po.WriteTimeout = time.Second, time.Second, time.Second
		po.MaxRetries = -1                     // the next ping, a second later, is the retry
		po.ClientName = PresencePrefix + token // set on every (re)connect
		po.PushNotificationProcessor = nil     // the original's; this client makes its own
		orig := po.OnConnect
		po.OnConnect = func(ctx context.Context, cn *redis.Conn) error {
			if orig != nil {
				if err := orig(ctx, cn); err != nil {
					return err
				}
			}
			if id, err := cn.ClientID(ctx).Result(); err == nil {
				r.clientID.Store(id)
			}
			return nil
		}
		r.presence = redis.NewClient(&po)
		// Present before the first task can start; a failure here is
		// retried by Run (without presence only the lease path applies).
		r.announce(ctx)
	}
	return r, nil
}

// Token identifies this process's recovery (the OwnerField value it writes).
func (r *Recovery) Token() string { return r.token }

// claimCmd records the owner of a task that is active.
// KEYS[1] task hash; ARGV[1] owner token.
var claimCmd = redis.NewScript(`
if redis.call("HGET", KEYS[1], "state") == "active" then
	redis.call("HSET", KEYS[1], "` + OwnerField + `", ARGV[1])
	return 1
end
return 0`)

// Middleware records this process as the task's owner before the handler
// runs. Without the record (Redis unreachable) the task can only be taken
// by the lease path, which is the safe side.
func (r *Recovery) Middleware(h asynq.Handler) asynq.Handler {
	return asynq.HandlerFunc(func(ctx context.Context, t *asynq.Task) error {
		id, _ := asynq.GetTaskID(ctx)
		q, _ := asynq.GetQueueName(ctx)
		if id != "" && q != "" {
			if err := claimCmd.Run(ctx, r.rdb, []string{taskKey(q, id)}, r.token).Err(); err != nil {
				r.opts.Log.Debug("recording the task's owner", "task", id, "err", err)
			}
		}
		return h.ProcessTask(ctx, t)
	})
}

// Run sweeps every Interval and keeps the presence connection up, until
// ctx ends; then it closes the presence connection.
func (r *Recovery) Run(ctx context.Context) {
	tick := time.NewTicker(r.opts.Interval)
	defer tick.Stop()
	ping := time.NewTicker(time.Second)
	defer ping.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-ping.C:
			if r.presence != nil {
				r.announce(ctx)
			}
		case <-tick.C:
			sctx, cancel := context.WithTimeout(ctx, r.opts.Interval*2)
			if _, err := r.Sweep(sctx); err != nil && ctx.Err() == nil && time.Since(r.lastErr) > time.Minute {
				r.lastErr = time.Now()
				r.opts.Log.Warn("recovery sweep failed; retried", "err", err)
			}
			cancel()
		}
	}
}

// Close drops the presence connection: call it after the server has
// stopped, so tasks still finishing keep their owner alive.
func (r *Recovery) Close() error {
	if r.presence != nil {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		_ = r.presence.Del(ctx, presenceKey(r.token)).Err()
		return r.presence.Close()
	}
	return nil
}

// presenceKeyTTL is how long a worker's presence record outlives its last
// renewal (every second).
const presenceKeyTTL = time.Minute

func presenceKey(token string) string { return "linkharvest:presence:{" + token + "}" }

// announce keeps the presence connection open and records its CLIENT ID,
// so a sweep asks Redis about the few owners it needs (CLIENT LIST ID)
// instead of listing every client of the fleet. A new connection is named
// as it opens (ClientName) and its id noted (OnConnect).
func (r *Recovery) announce(ctx context.Context) {
	pctx, cancel := context.WithTimeout(ctx, time.Second)
	defer cancel()
	if err := r.presence.Ping(pctx).Err(); err != nil {
		return
	}
	_ = r.presence.Set(pctx, presenceKey(r.token), r.clientID.Load(), presenceKeyTTL).Err()
}

// handBackCmd is asynq's requeue (rdb.Requeue: remove from active and the
// lease set, push to the head of pending, state pending), guarded.
// KEYS: active list, lease zset, pending list, task hash.
// ARGV: id, lease score seen, owner seen ("" on the lease path), path
// ("owner" or "lease"), skew margin in seconds, max takeovers.
// Returns 1 handed back, 0 not (changed meanwhile), -1 too many takeovers.
var handBackCmd = redis.NewScript(`
if redis.call("HGET", KEYS[4], "state") ~= "active" then return 0 end
local score = redis.call("ZSCORE", KEYS[2], ARGV[1])
if not score or tonumber(score) ~= tonumber(ARGV[2]) then return 0 end
local t = redis.call("TIME")
if ARGV[4] == "lease" then
	if tonumber(score) + tonumber(ARGV[5]) >= tonumber(t[1]) then return 0 end
elseif redis.call("HGET", KEYS[4], "` + OwnerField + `") ~= ARGV[3] then
	return 0
end
local n = tonumber(redis.call("HGET", KEYS[4], "` + TakeoversField + `") or "0")
if n >= tonumber(ARGV[6]) then return -1 end
if redis.call("LREM", KEYS[1], 0, ARGV[1]) == 0 then return 0 end
redis.call("ZREM", KEYS[2], ARGV[1])
redis.call("RPUSH", KEYS[3], ARGV[1])
redis.call("HSET", KEYS[4], "state", "pending", "` + TakeoversField + `", n + 1,
	"pending_since", t[1] .. string.format("%06d", tonumber(t[2])) .. "000")
redis.call("HDEL", KEYS[4], "` + OwnerField + `")
return 1`)

// Taken is one task handed back by a sweep.
type Taken struct {
	Queue, ID, Owner, Path string
}

// Sweep looks once and hands back what it may; it returns what it took.
func (r *Recovery) Sweep(ctx context.Context) ([]Taken, error) {
	now, err := r.rdb.Time(ctx).Result()
	if err != nil {
		return nil, fmt.Errorf("redis TIME: %w", err)
	}
	servers, err := r.insp.Servers()
	if err != nil {
		return nil, fmt.Errorf("listing asynq servers: %w", err)
	}
	// Fresh servers: heartbeat within StaleAfter, by the key's remaining
	// TTL (Redis's clock, not the writer's).
	listed := map[string]bool{} // queue/id run by a fresh server
	pipe := r.rdb.Pipeline()
	ttls := make([]*redis.DurationCmd, len(servers))
	for i, s := range servers {
		ttls[i] = pipe.PTTL(ctx, serverKey(s.Host, s.PID, s.ID))
	}
	if _, err := pipe.Exec(ctx); err != nil && !errors.Is(err, redis.Nil) {
		return nil, fmt.Errorf("reading heartbeats: %w", err)
	}
	for i, s := range servers {
		ttl := ttls[i].Val()
		if ttl <= 0 || serverTTL-ttl > r.opts.StaleAfter {
			continue
		}
		for _, w := range s.ActiveWorkers {
			listed[w.Queue+"/"+w.TaskID] = true
		}
	}
	queues, err := r.rdb.SMembers(ctx, allQueues).Result()
	if err != nil {
		return nil, fmt.Errorf("listing queues: %w", err)
	}
	type cand struct {
		q, id, owner string
		score        float64
	}
	var cands []cand
	owned := map[string]bool{}
	for _, q := range queues {
		ids, err := r.rdb.LRange(ctx, activeKey(q), 0, -1).Result()
		if err != nil {
			return nil, fmt.Errorf("queue %s: active tasks: %w", q, err)
		}
		var unlisted []string
		for _, id := range ids {
			if !listed[q+"/"+id] {
				unlisted = append(unlisted, id)
			}
		}
		if len(unlisted) == 0 {
			continue
		}
		pipe := r.rdb.Pipeline()
		scores := make([]*redis.FloatCmd, len(unlisted))
		owners := make([]*redis.StringCmd, len(unlisted))
		for i, id := range unlisted {
			scores[i] = pipe.ZScore(ctx, leaseKey(q), id)
			owners[i] = pipe.HGet(ctx, taskKey(q, id), OwnerField)
		}
		_, _ = pipe.Exec(ctx) // redis.Nil for missing values, read below
		for i, id := range unlisted {
			score, err := scores[i].Result()
			if err != nil {
				continue // no lease (not dequeued by asynq, or just finished)
			}
			owner, _ := owners[i].Result()
			cands = append(cands, cand{q: q, id: id, owner: owner, score: score})
			if owner != "" {
				owned[owner] = true
			}
		}
	}
	present, presenceKnown := r.present(ctx, owned)

	var taken []Taken
	for _, c := range cands {
		q, id, owner, score := c.q, c.id, c.owner, c.score
		dead := false
		if owner != "" && presenceKnown && !present[owner] {
			// Counted from the first sweep that missed it, whatever else holds.
			dead = r.absentFor(owner, now) >= r.opts.Grace
		}
		path := ""
		leaseExpiry := time.Unix(int64(score), 0)
		switch {
		case now.After(leaseExpiry.Add(r.opts.SkewMargin)):
			path = "lease"
		case dead &&
			// Not renewed within StaleAfter: no heartbeat (and no
			// dequeue) touched it lately. With the listing above, this
			// is what keeps a live worker's task: a worker lists a task
			// from its first heartbeat after the dequeue, and renews its
			// lease in the same beat.
			!leaseExpiry.After(now.Add(leaseDuration-r.opts.StaleAfter)):
			path = "owner"
		default:
			continue
		}
		seenOwner := owner
		if path == "lease" {
			seenOwner = ""
		}
		n, err := handBackCmd.Run(ctx, r.rdb,
			[]string{activeKey(q), leaseKey(q), pendingKey(q), taskKey(q, id)},
			id, strconv.FormatFloat(score, 'f', -1, 64), seenOwner, path,
			int64(r.opts.SkewMargin/time.Second), r.opts.MaxTakeovers).Int()
		if err != nil {
			return taken, fmt.Errorf("queue %s: handing back task %s: %w", q, id, err)
		}
		switch n {
		case 1:
			taken = append(taken, Taken{Queue: q, ID: id, Owner: owner, Path: path})
			r.opts.Log.Info("handed a dead worker's task back to its queue", "queue", q, "task", id,
				"owner", owner, "path", path)
		case -1:
			if r.warnedOnce(q + "/" + id) {
				continue
			}
			r.opts.Log.Warn("task handed back too often; left to asynq's recoverer", "queue", q, "task", id,
				"takeovers", r.opts.MaxTakeovers)
		}
	}
	if presenceKnown {
		r.forget(present)
	}
	return taken, nil
}

// present reads which of owners have a presence connection. It asks
// about their recorded client ids (CLIENT LIST ID, Redis 6.2), and lists
// every client only when one of them is not found that way (no record:
// Redis refused the write, as when it is out of memory, or the owner is
// long gone; an id that is not the owner's; Redis without CLIENT LIST ID),
// so a fleet's sweeps do not list every client every 2 s. known is false when Redis refuses CLIENT LIST (an
// ACL, an embedded Redis): then nobody counts as dead and only the lease
// path runs.
func (r *Recovery) present(ctx context.Context, owners map[string]bool) (present map[string]bool, known bool) {
	present = map[string]bool{}
	if len(owners) == 0 {
		return present, true
	}
	names := make([]string, 0, len(owners))
	for o := range owners {
		names = append(names, o)
	}
	pipe := r.rdb.Pipeline()
	gets := make([]*redis.StringCmd, len(names))
	for i, o := range names {
		gets[i] = pipe.Get(ctx, presenceKey(o))
	}
	_, _ = pipe.Exec(ctx)
	args := []any{"CLIENT", "LIST", "ID"}
	unrecorded := false
	for i := range names {
		if id, err := gets[i].Int64(); err == nil && id > 0 {
			args = append(args, id)
		} else {
			unrecorded = true
		}
	}
	full := unrecorded
	if len(args) > 3 {
		list, err := r.rdb.Do(ctx, args...).Text()
		if err != nil {
			full = true
		} else {
			namesIn(list, present)
		}
		// An owner not found by its id (gone, or an id from before a Redis
		// restart) is looked for by name: a death is rare, a list is sure.
		for _, o := range names {
			full = full || !present[o]
		}
	}
	if full {
		r.fullLists.Add(1)
		list, err := r.rdb.ClientList(ctx).Result()
		if err != nil {
			r.mu.Lock()
			defer r.mu.Unlock()
			if !r.listFailed {
				r.listFailed = true
				r.opts.Log.Info("Redis refuses CLIENT LIST: a dead worker's tasks come back only when their lease expires",
					"err", err)
			}
			return nil, false
		}
		namesIn(list, present)
	}
	return present, true
}

// namesIn notes the owner of every presence connection in a CLIENT LIST
// answer. The name, not the id, decides: ids start again when Redis does.
func namesIn(list string, present map[string]bool) {
	for _, line := range strings.Split(list, "\n") {
		for _, f := range strings.Fields(line) {
			if name, ok := strings.CutPrefix(f, "name="+PresencePrefix); ok {
				present[name] = true
			}
		}
	}
}

// warnedOnce reports whether task was already warned about, and notes it.
func (r *Recovery) warnedOnce(task string) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.warned[task] {
		return true
	}
	if len(r.warned) > 10000 {
		clear(r.warned)
	}
	r.warned[task] = true
	return false
}

// absentFor is how long owner has been seen without presence, by Redis's
// clock, counting from the first sweep that missed it.
func (r *Recovery) absentFor(owner string, now time.Time) time.Duration {
	r.mu.Lock()
	defer r.mu.Unlock()
	since, ok := r.absentSince[owner]
	if !ok {
		r.absentSince[owner] = now
		return 0
	}
	return now.Sub(since)
}

// forget drops owners that are present again, so a later absence starts a
// new grace period.
func (r *Recovery) forget(present map[string]bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for o := range r.absentSince {
		if present[o] {
			delete(r.absentSince, o)
		}
	}
	if len(r.absentSince) > 10000 { // owners long gone whose tasks ended
		clear(r.absentSince)
	}
}

// asynq v0.26.0's key layout (internal/base/base.go).
const allQueues = "asynq:queues"

func queuePrefix(q string) string { return "asynq:{" + q + "}:" }
func activeKey(q string) string   { return queuePrefix(q) + "active" }
func pendingKey(q string) string  { return queuePrefix(q) + "pending" }
func leaseKey(q string) string    { return queuePrefix(q) + "lease" }
func taskKey(q, id string) string { return queuePrefix(q) + "t:" + id }
func serverKey(host string, pid int, id string) string {
	return fmt.Sprintf("asynq:servers:{%s:%d:%s}", host, pid, id)
}

// StaleAfterEnv names the setting of Options.StaleAfter.
const StaleAfterEnv = "WORKER_STALE_AFTER"

// OptionsFromEnv reads the settings (WORKER_STALE_AFTER, a Go duration
// from 1s to 25s); a bad value is an error naming it.
func OptionsFromEnv(getenv func(string) string) (Options, error) {
	var o Options
	if v := getenv(StaleAfterEnv); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil || d < time.Second || d > MaxStaleAfter {
			return o, fmt.Errorf("%s=%q: want a duration from 1s to %v", StaleAfterEnv, v, MaxStaleAfter)
		}
		o.StaleAfter = d
	}
	return o, nil
}
