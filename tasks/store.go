package tasks

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"

	"github.com/linkharvest/linkharvest/internal/spend"
)

// A job's state lives in Redis under one hash tag, so its scripts run on
// one Redis Cluster slot:
//
//	meta     HASH   job_id, dt, created_at, spec, gen, counters, state, paused:{provider},
//	                reopened (work was added after the job ended or while it was being
//	                finalized), finalizing (deadline of a running finalizer), interrupted
//	                (the last submission that ended without closing), stashed/stash_bytes,
//	                unfed (domains in the feed), feed_seq
//	open     SET    page units created and not yet ended
//	ended:N  HASH   the ledger: unit -> outcome, in ledgerBuckets small hashes (ledger.go);
//	                a unit ends once, whatever delivers it
//	endedb   STRING bitmap of the ledger's buckets that exist
//	feed     LIST   batches of domains submitted but not yet registered (feed.go)
//	feeder   STRING the lease of the worker feeding the job
//	memo     HASH   unit -> what its call returned, and whether its object is written
//	                or only stashed, so a redelivered page is not fetched (and paid
//	                for) again
//	stash:U  STRING a page's encoded body, kept while the sink is unreachable
//	subs     ZSET   submission generation -> lease deadline (ms, Redis clock)
//	refetch  HASH   unit -> page payload: pages that failed after their answer was
//	                lost (a stash that could not be kept); a resubmission fetches them again
//	rejected LIST   rejected input lines (JSON)
//	budget   HASH   per provider: limit, charged, reserved (billionths of the unit), blocked (see Budget below)
//	resv     ZSET   the budget's reservations: "provider|amount|id" -> lease deadline (ms, Redis clock)
//	incomplete SET  "provider|endpoint|domain" whose rows the finished job does not hold
//	                whole (a page failed or waits on the budget): a refresh of the job
//	                fetches them in full (written with the manifest)
//
// The job completes when open is empty and no submission holds a live
// lease. Units are added before their task is enqueued and only if they
// have not ended, and end exactly once (HSETNX), so retries and duplicate
// deliveries cannot make the count drift. A submission is a lease, not a
// unit: a submitter that dies (SIGKILL, OOM, a lost machine) stops renewing
// it and the job is no longer held open once it expires.
type jobKeys struct {
	meta, open, buckets, memo, rejected, subs, refetch, budget, resv, incomplete, feed, feeder, prefix string
}

func keysFor(job string) jobKeys {
	p := "lh:{job:" + job + "}:"
	return jobKeys{meta: p + "meta", open: p + "open", buckets: p + "endedb", memo: p + "memo", rejected: p + fRejected,
		subs: p + "subs", refetch: p + "refetch", budget: p + "budget", resv: p + "resv", incomplete: p + "incomplete",
		feed: p + "feed", feeder: p + "feeder", prefix: p}
}

// all is every key of the job but the stashes (which expire on their own)
// and the ledger's buckets (named by the bitmap k.buckets).
func (k jobKeys) all() []string {
	return []string{k.meta, k.open, k.buckets, k.memo, k.rejected, k.subs, k.refetch, k.budget, k.resv, k.incomplete, k.feed}
}

func (k jobKeys) stash(unit string) string { return k.prefix + "stash:" + unit }

// batch holds the units a submission has registered but may not yet have
// enqueued: if its process dies between the two, a worker enqueues them
// (Worker.sweepSubmissions), or they would stay open with no task.
func (k jobKeys) batch(gen int64) string { return k.prefix + "batch:" + strconv.FormatInt(gen, 10) }

// The fields of a job's meta hash (the scripts above name the same).
const (
	fJobID        = "job_id"
	fDT           = "dt"
	fCreatedAt    = "created_at"
	fFinishedAt   = "finished_at"
	fSpec         = "spec"
	fGen          = "gen"
	fState        = "state" // running, done
	fReopened     = "reopened"
	fFinalizing   = "finalizing"
	fInterrupted  = "interrupted"
	fUnits        = "units"
	fEnded        = "ended"
	fRecords      = "records"
	fBytes        = "bytes"
	fFailed       = "failed"
	fObjects      = "objects"
	fDomains      = "domains"
	fRejected     = "rejected"
	fStashed      = "stashed"
	fStashBytes   = "stash_bytes"
	fSinkError    = "sink_error"
	fPausedPrefix = "paused:" // paused:{provider} -> why
	fCostPrefix   = "cost:"   // cost:{provider} -> spend
	fUnchanged    = "unchanged"
	fChanged      = "changed"
	fFull         = "full"
	fUnfed        = "unfed"
)

// jobsIndex lists jobs by creation time, for `enqueue status` without an id.
const jobsIndex = "lh:jobs"

// subsIndex holds, per job with an open submission, the latest lease
// deadline (ms), so workers can find submissions that died
// (Worker.SweepSubmissions). It lives outside the job's hash tag; it is
// only a hint: the job's own subs set decides.
const subsIndex = "lh:subs"

// luaNow is the Redis server's clock in ms: one clock for every process.
const luaNow = `local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
`

// luaReopen marks a job that gains work as running again. A job that had
// ended (or whose finalizer is writing its manifest) is fReopened: its
// next page removes _SUCCESS before it runs (Worker.supersede).
const luaReopen = `local function reopen(meta, tag)
  local st = redis.call('HGET', meta, 'state')
  if st ~= 'running' or redis.call('HEXISTS', meta, 'finalizing') == 1 then
    redis.call('HSET', meta, 'state', 'running', 'reopened', tag)
    redis.call('HDEL', meta, 'finished_at')
  end
end
`

// register adds units that have not ended to the open set. It returns,
// per unit, 0 if it already ended, 1 if it is new, 2 if it was already
// open. A submission registers under its lease (ARGV[1], its generation):
// a submission whose lease was lost (it was paused past it, or cut from
// Redis) adds nothing, so a job that ended meanwhile is not changed
// behind its back; workers pass "".
// A submission's open units are also kept in its batch key until their
// tasks exist. A submission's units come in groups of ARGV[2] per domain
// (0: not domains' first pages); a domain is new when its group's first
// unit is, and is counted here, in the same step, so that a submission
// killed between two calls cannot register a domain without counting it.
// KEYS: open, meta, subs, batch, then each unit's ledger bucket;
// ARGV: gen or "", per-domain, units...
var registerScript = redis.NewScript(luaNow + luaReopen + `
local sub = ARGV[1] ~= ''
if sub then
  local s = redis.call('ZSCORE', KEYS[3], ARGV[1])
  if not s or tonumber(s) < now then return redis.error_reply('LEASE submission lease lost') end
end
local per = tonumber(ARGV[2])
local out = {}
local added = 0
local domains = 0
for i = 3, #ARGV do
  local u = ARGV[i]
  local j = i - 2
  if redis.call('HEXISTS', KEYS[4 + j], u) == 1 then
    out[j] = 0
  elseif redis.call('SADD', KEYS[1], u) == 1 then
    out[j] = 1
    added = added + 1
    if per > 0 and (j - 1) % per == 0 then domains = domains + 1 end
  else
    out[j] = 2
  end
  if sub and out[j] > 0 then redis.call('SADD', KEYS[4], u) end
end
if domains > 0 then redis.call('HINCRBY', KEYS[2], 'domains', domains) end
if added > 0 then
  redis.call('HINCRBY', KEYS[2], 'units', added)
  reopen(KEYS[2], ARGV[1] ~= '' and ARGV[1] or 'w')
end
return out
`)

// live is the number of submissions whose lease has not expired. Dead
// ones (expired, not closed) mark the job interrupted unless a later
// submission closed cleanly; they are removed by the sweeper, once it has
// enqueued what they left registered (Worker.sweepSubmissions).
const luaLive = `local function live(subs, meta)
  local dead = redis.call('ZRANGEBYSCORE', subs, '-inf', '(' .. now)
  if #dead > 0 then
    local closed = tonumber(redis.call('HGET', meta, 'closed') or '0')
    local g = tonumber(redis.call('HGET', meta, 'interrupted') or '0')
    for _, d in ipairs(dead) do
      if tonumber(d) > closed then g = math.max(g, tonumber(d)) end
    end
    if g > 0 then redis.call('HSET', meta, 'interrupted', g) end
  end
  return redis.call('ZCOUNT', subs, now, '+inf')
end
local function finishable(open, subs, meta)
  return redis.call('SCARD', open) == 0 and live(subs, meta) == 0
    and tonumber(redis.call('HGET', meta, 'unfed') or '0') <= 0
    and redis.call('HGET', meta, 'state') == 'running' and redis.call('HEXISTS', meta, 'finalizing') == 0
end
`

// end records a unit's outcome once and returns 1 if the job can now be
// finalized. The unit's memo goes: once ended, a delivery stops at the
// ended check, and a million-page job would otherwise keep a million memos.
// The outcome is kept in its short form (its key left out) when the date
// of its standard key is the job's (encodeOutcome).
// KEYS: open, bucket, meta, memo, subs, refetch, buckets bitmap
// ARGV: unit, outcome, records, bytes, failed(0/1), objects(0/1), page(0/1), refetch payload or "",
// a refresh counter to add one to or "", bucket number, the key's date or "", short outcome
var endScript = redis.NewScript(luaNow + luaLive + `
local v = ARGV[2]
if ARGV[11] ~= '' and redis.call('HGET', KEYS[3], 'dt') == ARGV[11] then v = ARGV[12] end
if redis.call('HSETNX', KEYS[2], ARGV[1], v) == 1 then
  redis.call('SETBIT', KEYS[7], ARGV[10], 1)
  redis.call('SREM', KEYS[1], ARGV[1])
  redis.call('HDEL', KEYS[4], ARGV[1])
  if ARGV[9] ~= '' then redis.call('HINCRBY', KEYS[3], ARGV[9], 1) end
  if ARGV[7] == '1' then
    redis.call('HINCRBY', KEYS[3], 'ended', 1)
    redis.call('HINCRBY', KEYS[3], 'records', ARGV[3])
    redis.call('HINCRBY', KEYS[3], 'bytes', ARGV[4])
    redis.call('HINCRBY', KEYS[3], 'failed', ARGV[5])
    redis.call('HINCRBY', KEYS[3], 'objects', ARGV[6])
  end
  if ARGV[8] ~= '' then redis.call('HSET', KEYS[6], ARGV[1], ARGV[8]) end
end
if finishable(KEYS[1], KEYS[5], KEYS[3]) then return 1 end
return 0
`)

// Outcome is how a unit ended.
type Outcome struct {
	Status  string  `json:"status"` // ok, empty, failed, unchanged
	Key     string  `json:"key,omitempty"`
	Records int     `json:"records"`
	Bytes   int64   `json:"bytes,omitempty"`
	Total   int     `json:"total,omitempty"`
	Spend   float64 `json:"spend,omitempty"` // what the page's call cost, in Unit
	Unit    string  `json:"unit,omitempty"`
	Error   string  `json:"error,omitempty"`
	// Refetch: the page failed after its answer was lost; a resubmission
	// of the job fetches it again.
	Refetch bool `json:"refetch,omitempty"`
	// Refresh, on a refresh job's first page of a domain, is how the
	// domain was fetched (RefreshUnchanged, RefreshDelta, RefreshFull),
	// and RefreshReason why in full.
	Refresh       string `json:"refresh,omitempty"`
	RefreshReason string `json:"refresh_reason,omitempty"`
}

// memo is what a page's call returned. Stashed: the object is not yet
// written; its body waits in the stash for the sink.
type memo struct {
	Key       string    `json:"key,omitempty"`
	Records   int       `json:"records"`
	Bytes     int64     `json:"bytes"`
	Total     int       `json:"total"`
	Next      string    `json:"next,omitempty"`
	Cost      float64   `json:"cost,omitempty"`
	CostUnit  string    `json:"cost_unit,omitempty"`
	FetchedAt time.Time `json:"fetched_at"`
	Stashed   bool      `json:"stashed,omitempty"`
}

// Store reads and writes jobs' state in Redis.
type Store struct{ rdb redis.UniversalClient }

// NewStore returns a Store on rdb.
func NewStore(rdb redis.UniversalClient) *Store { return &Store{rdb: rdb} }

// Job is a job's stored description.
type Job struct {
	ID        string
	Date      string // dt= partition: the job's first submission date, UTC
	CreatedAt time.Time
	Spec      Spec
	Gen       int64
}

// ErrNoJob is returned for an unknown job id.
var ErrNoJob = errors.New("no such job")

// ShortID is a job id as error messages echo it: an id is at most 64
// characters, but input that failed validation may be anything.
func ShortID(id string) string {
	if len(id) <= 40 {
		return id
	}
	return id[:32] + "…(" + strconv.Itoa(len(id)) + " bytes)"
}

// Job loads a job's description.
func (s *Store) Job(ctx context.Context, id string) (*Job, error) {
	vals, err := s.rdb.HMGet(ctx, keysFor(id).meta, fDT, fCreatedAt, fSpec, fGen).Result()
	if err != nil {
		return nil, fmt.Errorf("loading job %s: %w", id, err)
	}
	if vals[0] == nil || vals[2] == nil {
		return nil, fmt.Errorf("job %s: %w", id, ErrNoJob)
	}
	j := &Job{ID: id, Date: vals[0].(string)}
	if v, ok := vals[1].(string); ok {
		j.CreatedAt, _ = time.Parse(time.RFC3339Nano, v)
	}
	if err := json.Unmarshal([]byte(vals[2].(string)), &j.Spec); err != nil {
		return nil, fmt.Errorf("job %s: bad spec: %w", id, err)
	}
	if v, ok := vals[3].(string); ok {
		j.Gen, _ = strconv.ParseInt(v, 10, 64)
	}
	return j, nil
}

// createScript creates a job unless its meta exists, atomically, so that
// concurrent submissions of one new job agree on it. Leftovers of an
// expired job of the same id (its keys expire one by one) are deleted:
// they are not this job's.
// The ledger's buckets are the ones the leftover bitmap names.
// KEYS: meta, then the job's other keys (jobKeys.all); ARGV: spec, id, dt, created_at,
// the bitmap's key, the buckets' key prefix
var createScript = redis.NewScript(`
if redis.call('HSETNX', KEYS[1], 'spec', ARGV[1]) == 0 then return 0 end
local bm = redis.call('GET', ARGV[5])
if bm then
  for i = 1, #bm do
    local b = string.byte(bm, i)
    for j = 0, 7 do
      if b >= 2 ^ (7 - j) then
        b = b - 2 ^ (7 - j)
        redis.call('DEL', ARGV[6] .. ((i - 1) * 8 + j))
      end
    end
  end
end
redis.call('DEL', unpack(KEYS, 2))
redis.call('HSET', KEYS[1], 'job_id', ARGV[2], 'dt', ARGV[3], 'created_at', ARGV[4], 'state', 'running')
return 1
`)

var errSpecDiffers = errors.New("already exists with other providers, endpoints, options or --max-rows; use a new --job id")

// checkSpec reports whether a job exists, and refuses one that asks for
// something else. It changes nothing.
func (s *Store) checkSpec(ctx context.Context, id string, specJSON []byte) (bool, error) {
	old, err := s.rdb.HGet(ctx, keysFor(id).meta, fSpec).Result()
	if errors.Is(err, redis.Nil) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("loading job %s: %w", id, err)
	}
	if old != string(specJSON) {
		return true, fmt.Errorf("job %s %w", id, errSpecDiffers)
	}
	return true, nil
}

// create stores a new job or checks that an existing one asks for the same
// thing. A resubmission of a finished job keeps its state until it ends again.
func (s *Store) create(ctx context.Context, id string, spec Spec, now time.Time) (*Job, error) {
	k := keysFor(id)
	specJSON, err := json.Marshal(spec)
	if err != nil {
		return nil, fmt.Errorf("job %s: encoding its spec: %w", id, err)
	}
	created, err := createScript.Run(ctx, s.rdb, k.all(),
		specJSON, id, now.UTC().Format("2006-01-02"), now.UTC().Format(time.RFC3339Nano), k.buckets, k.prefix+"ended:").Bool()
	if err != nil {
		return nil, fmt.Errorf("creating job %s: %w", id, redisErr(err))
	}
	if created {
		if err := s.rdb.ZAdd(ctx, jobsIndex, redis.Z{Score: float64(now.Unix()), Member: id}).Err(); err != nil {
			return nil, fmt.Errorf("job %s: %w", id, redisErr(err))
		}
	} else if _, err := s.checkSpec(ctx, id, specJSON); err != nil {
		return nil, err
	}
	if err := s.persist(ctx, id); err != nil {
		return nil, err
	}
	return s.Job(ctx, id)
}

// openSub starts a submission: a new generation of the job, holding a
// lease of ttl. KEYS: meta, subs; ARGV: ttl ms. Returns {gen, deadline}.
var openSubScript = redis.NewScript(luaNow + `
local gen = redis.call('HINCRBY', KEYS[1], 'gen', 1)
redis.call('ZADD', KEYS[2], now + tonumber(ARGV[1]), gen)
return {gen, now + tonumber(ARGV[1])}
`)

// renewSub extends a live lease; 0 if it was lost. KEYS: subs; ARGV: gen, ttl ms.
var renewSubScript = redis.NewScript(luaNow + `
local s = redis.call('ZSCORE', KEYS[1], ARGV[1])
if not s or tonumber(s) < now then return 0 end
redis.call('ZADD', KEYS[1], now + tonumber(ARGV[2]), ARGV[1])
return now + tonumber(ARGV[2])
`)

// closeSub ends a submission whose whole list was read: it covers every
// earlier submission of the same list, so an interrupted mark goes (and an
// ended job's manifest, which carries it, is written again). Returns 1 if
// the job can now be finalized. KEYS: subs, open, meta, batch; ARGV: gen
var closeSubScript = redis.NewScript(luaNow + luaLive + `
redis.call('ZREM', KEYS[1], ARGV[1])
redis.call('DEL', KEYS[4])
local gen = tonumber(ARGV[1])
if gen > tonumber(redis.call('HGET', KEYS[3], 'closed') or '0') then redis.call('HSET', KEYS[3], 'closed', gen) end
local g = tonumber(redis.call('HGET', KEYS[3], 'interrupted') or '0')
if g > 0 and g <= gen then
  redis.call('HDEL', KEYS[3], 'interrupted')
  if redis.call('HGET', KEYS[3], 'state') == 'done' then redis.call('HSET', KEYS[3], 'state', 'running') end
end
if finishable(KEYS[2], KEYS[1], KEYS[3]) then return 1 end
return 0
`)

// expireSubScript ends a submission's lease now, as if its process had
// died: the sweeper then enqueues what it left registered and ends it.
// KEYS: subs; ARGV: gen. Returns the new deadline.
var expireSubScript = redis.NewScript(luaNow + `
if redis.call('ZSCORE', KEYS[1], ARGV[1]) then redis.call('ZADD', KEYS[1], now - 1, ARGV[1]) end
return now - 1
`)

// sweepSub drops the job's dead submissions (their batches enqueued by
// then). Returns {finish (0/1), live submissions, latest live deadline}.
// KEYS: subs, open, meta
var sweepSubScript = redis.NewScript(luaNow + luaLive + `
live(KEYS[1], KEYS[3]) -- marks the job interrupted
local f = 0
if finishable(KEYS[2], KEYS[1], KEYS[3]) then f = 1 end
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', '(' .. now)
local n = redis.call('ZCARD', KEYS[1])
local last = 0
if n > 0 then last = tonumber(redis.call('ZRANGE', KEYS[1], -1, -1, 'WITHSCORES')[2]) end
return {f, n, last}
`)

// submissionTTL is how long a submission holds its job open without
// renewing its lease; it renews every submissionTTL/5.
var submissionTTL = 15 * time.Second // a var: tests shorten it

func (s *Store) openSub(ctx context.Context, job string) (gen int64, err error) {
	k := keysFor(job)
	res, err := openSubScript.Run(ctx, s.rdb, []string{k.meta, k.subs}, submissionTTL.Milliseconds()).Int64Slice()
	if err != nil {
		return 0, fmt.Errorf("job %s: starting a submission: %w", job, redisErr(err))
	}
	s.indexSub(ctx, job, res[1])
	return res[0], nil
}

func (s *Store) indexSub(ctx context.Context, job string, deadline int64) {
	// Best effort: a lost index entry is restored by the next renewal.
	s.rdb.ZAdd(ctx, subsIndex, redis.Z{Score: float64(deadline), Member: job})
}

// errLeaseLost: the submission's lease expired before it could renew it.
var errLeaseLost = errors.New("the submission's lease expired (the process was paused or cut from Redis for longer than " +
	"its lease); nothing more was added")

func (s *Store) renewSub(ctx context.Context, job string, gen int64) error {
	d, err := renewSubScript.Run(ctx, s.rdb, []string{keysFor(job).subs}, gen, submissionTTL.Milliseconds()).Int64()
	if err != nil {
		return fmt.Errorf("job %s: renewing the submission's lease: %w", job, redisErr(err))
	}
	if d == 0 {
		return errLeaseLost
	}
	s.indexSub(ctx, job, d)
	return nil
}

func (s *Store) closeSub(ctx context.Context, job string, gen int64) (bool, error) {
	k := keysFor(job)
	f, err := closeSubScript.Run(ctx, s.rdb, []string{k.subs, k.open, k.meta, k.batch(gen)}, gen).Int()
	if err != nil {
		return false, fmt.Errorf("job %s: ending the submission: %w", job, redisErr(err))
	}
	return f == 1, nil
}

func (s *Store) expireSub(ctx context.Context, job string, gen int64) error {
	d, err := expireSubScript.Run(ctx, s.rdb, []string{keysFor(job).subs}, gen).Int64()
	if err != nil {
		return fmt.Errorf("job %s: ending the submission: %w", job, redisErr(err))
	}
	s.indexSub(ctx, job, d)
	return nil
}

// batchDone forgets a batch whose tasks all exist.
func (s *Store) batchDone(ctx context.Context, job string, gen int64) error {
	if err := s.rdb.Del(ctx, keysFor(job).batch(gen)).Err(); err != nil {
		return fmt.Errorf("job %s: %w", job, redisErr(err))
	}
	return nil
}

// deadBatches returns, per dead submission of the job, the units it had
// registered without knowing their tasks exist.
func (s *Store) deadBatches(ctx context.Context, job string) (map[int64][]string, error) {
	k := keysFor(job)
	now, err := s.rdb.Time(ctx).Result()
	if err != nil {
		return nil, err
	}
	gens, err := s.rdb.ZRangeByScore(ctx, k.subs, &redis.ZRangeBy{Min: "-inf", Max: "(" + strconv.FormatInt(now.UnixMilli(), 10)}).Result()
	if err != nil {
		return nil, fmt.Errorf("job %s: %w", job, err)
	}
	out := map[int64][]string{}
	for _, g := range gens {
		gen, _ := strconv.ParseInt(g, 10, 64)
		units, err := s.rdb.SMembers(ctx, k.batch(gen)).Result()
		if err != nil {
			return nil, fmt.Errorf("job %s: %w", job, err)
		}
		out[gen] = units
	}
	return out, nil
}

// removeIndexIf drops a job from subsIndex unless a submission renewed it
// since it was read (its score changed).
var removeIndexIf = redis.NewScript(`
if redis.call('ZSCORE', KEYS[1], ARGV[1]) == ARGV[2] then redis.call('ZREM', KEYS[1], ARGV[1]) end
return 0
`)

// expiredSubmissions returns jobs whose latest submission lease has expired.
func (s *Store) expiredSubmissions(ctx context.Context, limit int64) ([]redis.Z, error) {
	now, err := s.rdb.Time(ctx).Result()
	if err != nil {
		return nil, err
	}
	return s.rdb.ZRangeByScoreWithScores(ctx, subsIndex, &redis.ZRangeBy{Min: "-inf", Max: "(" + strconv.FormatInt(now.UnixMilli(), 10), Count: limit}).Result()
}

// sweepSub ends the job's dead submissions; finish reports that the job
// can now be finalized.
func (s *Store) sweepSub(ctx context.Context, z redis.Z) (finish bool, err error) {
	job := z.Member.(string)
	k := keysFor(job)
	res, err := sweepSubScript.Run(ctx, s.rdb, []string{k.subs, k.open, k.meta}).Int64Slice()
	if err != nil {
		return false, fmt.Errorf("job %s: sweeping its submissions: %w", job, redisErr(err))
	}
	if res[1] == 0 {
		err = removeIndexIf.Run(ctx, s.rdb, []string{subsIndex}, job, strconv.FormatFloat(z.Score, 'f', -1, 64)).Err()
	} else {
		s.indexSub(ctx, job, res[2])
	}
	return res[0] == 1, err
}

// expire lets a finished job's state go after ttl (0: keep it). Until
// then `enqueue status` reports it and a resubmission of the same job id
// adds only what is not done; after it, the same id is a new job.
func (s *Store) expire(ctx context.Context, job string, ttl time.Duration) error {
	if ttl <= 0 {
		return nil
	}
	return s.expireAt(ctx, job, time.Now().Add(ttl))
}

// persist undoes expire.
func (s *Store) persist(ctx context.Context, job string) error {
	_, err := s.rdb.TxPipelined(ctx, func(p redis.Pipeliner) error {
		for _, key := range keysFor(job).all() {
			p.Persist(ctx, key)
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("job %s: %w", job, redisErr(err))
	}
	return s.eachLedgerKey(ctx, job, func(p redis.Pipeliner, key string) { p.Persist(ctx, key) })
}

// register adds units to a job; see registerScript. gen 0: a worker.
// perDomain > 0: units are the first pages of domains, perDomain each,
// and domains new to the job are counted.
func (s *Store) register(ctx context.Context, job string, gen int64, perDomain int, units []string) ([]int64, error) {
	k := keysFor(job)
	args := make([]any, 0, len(units)+2)
	if gen > 0 {
		args = append(args, gen)
	} else {
		args = append(args, "")
	}
	args = append(args, perDomain)
	for _, u := range units {
		args = append(args, u)
	}
	keys := make([]string, 0, len(units)+4)
	keys = append(keys, k.open, k.meta, k.subs, k.batch(gen))
	for _, u := range units {
		keys = append(keys, k.bucket(u))
	}
	res, err := registerScript.Run(ctx, s.rdb, keys, args...).Int64Slice()
	if err != nil {
		if strings.Contains(err.Error(), "LEASE") {
			return nil, errLeaseLost
		}
		return nil, fmt.Errorf("registering %d tasks of job %s: %w", len(units), job, redisErr(err))
	}
	return res, nil
}

// end records a unit's outcome (once) and reports whether the job can now
// be finalized. refetch, if not nil, is the page to fetch again on the
// next submission.
func (s *Store) end(ctx context.Context, job, unit string, o Outcome, page bool, refetch *PagePayload) (bool, error) {
	k := keysFor(job)
	long, short, dt := encodeOutcome(job, unit, o)
	var rf []byte
	var err error
	if refetch != nil {
		if rf, err = json.Marshal(refetch); err != nil {
			return false, fmt.Errorf("ending %s of job %s: %w", unit, job, err)
		}
	}
	failed, objects, isPage := 0, 0, 0
	if o.Status == fFailed {
		failed = 1
	}
	if o.Key != "" {
		objects = 1
	}
	if page {
		isPage = 1
	}
	n, err := endScript.Run(ctx, s.rdb, []string{k.open, k.bucket(unit), k.meta, k.memo, k.subs, k.refetch, k.buckets},
		unit, long, o.Records, o.Bytes, failed, objects, isPage, rf, refreshCounter(o.Refresh), bucketOf(unit), dt, short).Int64()
	if err != nil {
		return false, fmt.Errorf("ending %s of job %s: %w", unit, job, redisErr(err))
	}
	return n == 1, nil
}

// reopenScript opens again a page that failed for want of its answer
// (refetch), for a resubmission. KEYS: open, its ledger bucket, meta, refetch, subs;
// ARGV: gen, unit. Returns the page's payload, or false.
var reopenScript = redis.NewScript(luaNow + luaReopen + `
local s = redis.call('ZSCORE', KEYS[5], ARGV[1])
if not s or tonumber(s) < now then return redis.error_reply('LEASE submission lease lost') end
local p = redis.call('HGET', KEYS[4], ARGV[2])
if not p then return false end
redis.call('HDEL', KEYS[4], ARGV[2])
if redis.call('HDEL', KEYS[2], ARGV[2]) == 1 then
  redis.call('HINCRBY', KEYS[3], 'ended', -1)
  redis.call('HINCRBY', KEYS[3], 'failed', -1)
end
redis.call('SADD', KEYS[1], ARGV[2])
reopen(KEYS[3], ARGV[1])
return p
`)

// reopenRefetch opens again, under submission gen, every page that
// failed because its answer was lost, and returns their payloads.
func (s *Store) reopenRefetch(ctx context.Context, job string, gen int64) ([]PagePayload, error) {
	k := keysFor(job)
	units, err := s.rdb.HKeys(ctx, k.refetch).Result()
	if err != nil {
		return nil, fmt.Errorf("job %s: %w", job, redisErr(err))
	}
	var out []PagePayload
	for _, u := range units {
		raw, err := reopenScript.Run(ctx, s.rdb, []string{k.open, k.bucket(u), k.meta, k.refetch, k.subs}, gen, u).Text()
		if errors.Is(err, redis.Nil) {
			continue // another submission took it
		}
		if err != nil {
			if strings.Contains(err.Error(), "LEASE") {
				return nil, errLeaseLost
			}
			return nil, fmt.Errorf("job %s: reopening %s: %w", job, u, redisErr(err))
		}
		var p PagePayload
		if err := json.Unmarshal([]byte(raw), &p); err != nil {
			return nil, fmt.Errorf("job %s: page to fetch again %s: %w", job, u, err)
		}
		out = append(out, p)
	}
	return out, nil
}

// pageState is what a page task needs to know before it does anything.
type pageState struct {
	ended      bool
	memo       *memo
	reopened   string // set: the job gained work after it ended (see Worker.supersede)
	finalizing bool   // a finalizer is writing the manifest and _SUCCESS
	sinkDown   string // why the sink refused its last write, while that is recent
}

// pageState reads a page's state in one round trip.
func (s *Store) pageState(ctx context.Context, job, unit, sinkDownKey string) (*pageState, error) {
	k := keysFor(job)
	var ended *redis.BoolCmd
	var mm *redis.StringCmd
	var meta *redis.SliceCmd
	var down *redis.StringCmd
	var now *redis.TimeCmd
	_, err := s.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		ended = p.HExists(ctx, k.bucket(unit), unit)
		mm = p.HGet(ctx, k.memo, unit)
		meta = p.HMGet(ctx, k.meta, fReopened, fFinalizing)
		down = p.Get(ctx, sinkDownKey)
		now = p.Time(ctx)
		return nil
	})
	if err != nil && !errors.Is(err, redis.Nil) {
		return nil, fmt.Errorf("reading the state of %s of job %s: %w", unit, job, err)
	}
	st := &pageState{ended: ended.Val()}
	if v, err := mm.Result(); err == nil {
		var m memo
		if err := json.Unmarshal([]byte(v), &m); err != nil {
			return nil, fmt.Errorf("memo of %s: %w", unit, err)
		}
		st.memo = &m
	}
	if v := meta.Val(); len(v) == 2 {
		st.reopened, _ = v[0].(string)
		if f, ok := v[1].(string); ok {
			deadline, _ := strconv.ParseInt(f, 10, 64)
			st.finalizing = now.Val().UnixMilli() < deadline
		}
	}
	st.sinkDown = down.Val()
	return st, nil
}

// clearReopen forgets a reopening once _SUCCESS is gone, unless the job
// was reopened again since.
var clearReopenScript = redis.NewScript(`
if redis.call('HGET', KEYS[1], 'reopened') == ARGV[1] then redis.call('HDEL', KEYS[1], 'reopened') end
return 0
`)

func (s *Store) clearReopen(ctx context.Context, job, tag string) error {
	return clearReopenScript.Run(ctx, s.rdb, []string{keysFor(job).meta}, tag).Err()
}

// beginFinalize claims the job's end: nothing open, no live submission,
// running. It holds fFinalizing for lease so that pages of work added
// meanwhile wait until _SUCCESS is written and can be removed.
// KEYS: open, subs, meta; ARGV: lease ms
var beginFinalizeScript = redis.NewScript(luaNow + luaLive + `
if redis.call('SCARD', KEYS[1]) > 0 or live(KEYS[2], KEYS[3]) > 0 or redis.call('HGET', KEYS[3], 'state') ~= 'running'
  or tonumber(redis.call('HGET', KEYS[3], 'unfed') or '0') > 0 then return 0 end
redis.call('HSET', KEYS[3], 'finalizing', now + tonumber(ARGV[1]))
redis.call('HDEL', KEYS[3], 'reopened')
return 1
`)

// commitFinalize marks the job done once its manifest and _SUCCESS are
// written, unless work was added meanwhile (then it stays running and its
// new pages remove _SUCCESS). KEYS: open, meta; ARGV: finished_at
var commitFinalizeScript = redis.NewScript(`
redis.call('HDEL', KEYS[2], 'finalizing')
if redis.call('SCARD', KEYS[1]) > 0 or redis.call('HEXISTS', KEYS[2], 'reopened') == 1
  or tonumber(redis.call('HGET', KEYS[2], 'unfed') or '0') > 0 then return 0 end
redis.call('HSET', KEYS[2], 'state', 'done', 'finished_at', ARGV[1])
return 1
`)

// finalizeLease bounds how long pages of added work wait for a finalizer
// that died.
const finalizeLease = 10 * time.Minute

func (s *Store) beginFinalize(ctx context.Context, job string) (bool, error) {
	k := keysFor(job)
	ok, err := beginFinalizeScript.Run(ctx, s.rdb, []string{k.open, k.subs, k.meta}, finalizeLease.Milliseconds()).Int()
	if err != nil {
		return false, fmt.Errorf("job %s: %w", job, redisErr(err))
	}
	return ok == 1, nil
}

// releaseFinalize drops a failed finalizer's claim.
func (s *Store) releaseFinalize(ctx context.Context, job string) error {
	return s.rdb.HDel(ctx, keysFor(job).meta, fFinalizing).Err()
}

func (s *Store) commitFinalize(ctx context.Context, job, finishedAt string) (bool, error) {
	k := keysFor(job)
	ok, err := commitFinalizeScript.Run(ctx, s.rdb, []string{k.open, k.meta}, finishedAt).Int()
	if err != nil {
		return false, fmt.Errorf("job %s: %w", job, redisErr(err))
	}
	return ok == 1, nil
}

// writtenScript records a written page's memo and drops its stash.
// KEYS: memo, stash, meta; ARGV: unit, memo, cost field, cost
var writtenScript = redis.NewScript(`
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
local n = redis.call('STRLEN', KEYS[2])
local gone = -1
if redis.call('DEL', KEYS[2]) == 1 then
  if redis.call('HINCRBY', KEYS[3], 'stashed', -1) <= 0 then redis.call('HDEL', KEYS[3], 'sink_error') end
  redis.call('HINCRBY', KEYS[3], 'stash_bytes', -n)
  gone = n
end
if ARGV[3] ~= '' then redis.call('HINCRBYFLOAT', KEYS[3], ARGV[3], ARGV[4]) end
return gone
`)

// keepMemo records a written page and drops its stash.
func (s *Store) keepMemo(ctx context.Context, job, unit string, m *memo) error {
	k := keysFor(job)
	m.Stashed = false
	b, err := json.Marshal(m)
	if err != nil {
		return fmt.Errorf("memo of %s: %w", unit, err)
	}
	costField := ""
	if m.Cost > 0 {
		provider, _, _, _, _ := parseUnit(unit)
		costField = fCostPrefix + provider
	}
	gone, err := writtenScript.Run(ctx, s.rdb, []string{k.memo, k.stash(unit), k.meta}, unit, b, costField, m.Cost).Int64()
	if err != nil {
		return fmt.Errorf("recording page %s of job %s: %w", unit, job, redisErr(err))
	}
	if gone >= 0 {
		s.countStash(ctx, -1, -gone)
	}
	return nil
}

// stashScript keeps a fetched page's body until the sink takes it, and
// marks its memo as stashed, in one step: a memo that says stashed has its
// body, or the body has expired. KEYS: stash, memo, meta; ARGV: unit,
// body, memo, ttl ms (0: none), why the sink refused it
var stashScript = redis.NewScript(`
local had = redis.call('EXISTS', KEYS[1])
redis.call('HSET', KEYS[3], 'sink_error', ARGV[5])
if tonumber(ARGV[4]) > 0 then
  redis.call('SET', KEYS[1], ARGV[2], 'PX', ARGV[4])
else
  redis.call('SET', KEYS[1], ARGV[2])
end
redis.call('HSET', KEYS[2], ARGV[1], ARGV[3])
if had == 0 then
  redis.call('HINCRBY', KEYS[3], 'stashed', 1)
  redis.call('HINCRBY', KEYS[3], 'stash_bytes', string.len(ARGV[2]))
  return 1
end
return 0
`)

func (s *Store) stash(ctx context.Context, job, unit string, body []byte, m memo, ttl time.Duration, why string) error {
	k := keysFor(job)
	m.Stashed = true
	b, err := json.Marshal(m)
	if err != nil {
		return err
	}
	added, err := stashScript.Run(ctx, s.rdb, []string{k.stash(unit), k.memo, k.meta}, unit, body, b, ttl.Milliseconds(), why).Int()
	if err != nil {
		return fmt.Errorf("stashing page %s of job %s: %w", unit, job, redisErr(err))
	}
	if added == 1 {
		s.countStash(ctx, 1, int64(len(body)))
	}
	return nil
}

// stashTotals counts every job's stashed pages and bytes, for the
// workers' metrics. It lives outside the jobs' hash tags, so it is kept
// next to the scripts (not in them) and may drift if a worker dies between
// the two; the jobs' own counters (enqueue status) are exact.
const stashTotals = "lh:stash"

func (s *Store) countStash(ctx context.Context, pages, bytes int64) {
	_, _ = s.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		p.HIncrBy(ctx, stashTotals, "pages", pages)
		p.HIncrBy(ctx, stashTotals, "bytes", bytes)
		return nil
	})
}

// StashTotals returns the pages (and their bytes) that wait in the stash
// for the sink, over every job.
func (s *Store) StashTotals(ctx context.Context) (pages, bytes int64, err error) {
	v, err := s.rdb.HMGet(ctx, stashTotals, "pages", "bytes").Result()
	if err != nil {
		return 0, 0, err
	}
	n := func(x any) int64 {
		str, _ := x.(string)
		i, _ := strconv.ParseInt(str, 10, 64)
		return max(i, 0)
	}
	return n(v[0]), n(v[1]), nil
}

// stashExpired takes a page whose stash expired out of the counts.
func (s *Store) stashExpired(ctx context.Context, job string, bytes int64) error {
	k := keysFor(job)
	_, err := s.rdb.TxPipelined(ctx, func(p redis.Pipeliner) error {
		p.HIncrBy(ctx, k.meta, fStashed, -1)
		p.HIncrBy(ctx, k.meta, fStashBytes, -bytes)
		return nil
	})
	if err != nil {
		return fmt.Errorf("job %s: %w", job, redisErr(err))
	}
	s.countStash(ctx, -1, -bytes)
	return nil
}

// unstash returns a stashed body, nil if it is gone.
func (s *Store) unstash(ctx context.Context, job, unit string) ([]byte, error) {
	b, err := s.rdb.Get(ctx, keysFor(job).stash(unit)).Bytes()
	if errors.Is(err, redis.Nil) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("reading the stash of %s of job %s: %w", unit, job, err)
	}
	return b, nil
}

// sinkDown records (for ttl) that the sink refused a write, so pages stop
// buying answers that could only be stashed.
func (s *Store) sinkDown(ctx context.Context, key, why string, ttl time.Duration) error {
	return s.rdb.Set(ctx, key, why, ttl).Err()
}

func (s *Store) sinkUp(ctx context.Context, key string) error { return s.rdb.Del(ctx, key).Err() }

// Pause records why a provider's queue was paused for a job.
func (s *Store) pause(ctx context.Context, job, provider, reason string) error {
	if err := s.rdb.HSet(ctx, keysFor(job).meta, fPausedPrefix+provider, reason).Err(); err != nil {
		return fmt.Errorf("job %s: recording the pause of %s: %w", job, provider, err)
	}
	return nil
}

// Redis returns the store's connection.
func (s *Store) Redis() redis.UniversalClient { return s.rdb }

// redisErr makes Redis's out-of-memory refusal say what it means.
func redisErr(err error) error {
	if err != nil && strings.Contains(err.Error(), "OOM command not allowed") {
		return &redisFullError{err}
	}
	return err
}

// redisFullError: Redis refuses writes at its maxmemory. Not a fault of
// the page: it waits (IsFailure) until memory is raised or freed.
type redisFullError struct{ err error }

func (e *redisFullError) Error() string {
	return "redis is out of memory (maxmemory reached; raise it or free memory): " + e.err.Error()
}
func (e *redisFullError) Unwrap() error { return e.err }

// Status reads a job's progress.
func (s *Store) Status(ctx context.Context, job string) (*Status, error) {
	k := keysFor(job)
	vals, err := s.rdb.HGetAll(ctx, k.meta).Result()
	if err != nil {
		return nil, fmt.Errorf("job %s: %w", job, err)
	}
	if len(vals) == 0 {
		return nil, fmt.Errorf("job %s: %w", job, ErrNoJob)
	}
	var open *redis.IntCmd
	var now *redis.TimeCmd
	_, err = s.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		now = p.Time(ctx)
		open = p.SCard(ctx, k.open)
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("job %s: %w", job, err)
	}
	live, err := s.rdb.ZCount(ctx, k.subs, strconv.FormatInt(now.Val().UnixMilli(), 10), "+inf").Result()
	if err != nil {
		return nil, fmt.Errorf("job %s: %w", job, err)
	}
	n := func(f string) int64 { v, _ := strconv.ParseInt(vals[f], 10, 64); return v }
	st := &Status{JobID: job, State: vals[fState], Date: vals[fDT], CreatedAt: vals[fCreatedAt], FinishedAt: vals[fFinishedAt],
		Domains: n(fDomains), Rejected: n(fRejected), Tasks: n(fUnits), Ended: n(fEnded), Open: open.Val(),
		Records: n(fRecords), Objects: n(fObjects), Bytes: n(fBytes), Failed: n(fFailed),
		Submissions: live, Interrupted: n(fInterrupted), Stashed: n(fStashed), StashBytes: n(fStashBytes),
		SinkDown: vals[fSinkError], Finalizing: n(fFinalizing) > now.Val().UnixMilli(),
		Unchanged: n(fUnchanged), Changed: n(fChanged), Full: n(fFull), Unfed: n(fUnfed)}
	if st.Unfed > 0 && st.State == "done" {
		st.State = "running" // a resubmission's domains wait in the feed
	}
	for f, v := range vals {
		switch {
		case strings.HasPrefix(f, fPausedPrefix):
			if st.Paused == nil {
				st.Paused = map[string]string{}
			}
			st.Paused[strings.TrimPrefix(f, fPausedPrefix)] = v
		case strings.HasPrefix(f, fCostPrefix):
			if st.Spend == nil {
				st.Spend = map[string]float64{}
			}
			st.Spend[strings.TrimPrefix(f, fCostPrefix)], _ = strconv.ParseFloat(v, 64)
		}
	}
	if strings.Contains(vals[fSpec], `"refresh"`) {
		var spec struct{ Refresh *Refresh }
		if json.Unmarshal([]byte(vals[fSpec]), &spec) == nil && spec.Refresh != nil {
			st.BaseJob = spec.Refresh.BaseJob
		}
	}
	if err := s.budgetStatus(ctx, st); err != nil {
		return nil, err
	}
	return st, nil
}

// Jobs lists the most recent job ids, newest first; jobs whose state has
// expired (Worker.Retention) are dropped from the index.
func (s *Store) Jobs(ctx context.Context, n int64) ([]string, error) {
	ids, err := s.rdb.ZRevRange(ctx, jobsIndex, 0, n-1).Result()
	if err != nil {
		return nil, err
	}
	live := ids[:0]
	for _, id := range ids {
		ok, err := s.rdb.Exists(ctx, keysFor(id).meta).Result()
		if err != nil {
			return nil, err
		}
		if ok == 0 {
			s.rdb.ZRem(ctx, jobsIndex, id)
			continue
		}
		live = append(live, id)
	}
	return live, nil
}

// ClearPause forgets a provider's pause reason on every job that recorded it.
func (s *Store) ClearPause(ctx context.Context, provider string) error {
	ids, err := s.Jobs(ctx, 1000)
	if err != nil {
		return err
	}
	for _, id := range ids {
		if err := s.rdb.HDel(ctx, keysFor(id).meta, fPausedPrefix+provider).Err(); err != nil {
			return err
		}
	}
	return nil
}

// gen is the job's latest submission generation (0: none yet).
func (s *Store) gen(ctx context.Context, job string) (int64, error) {
	gen, err := s.rdb.HGet(ctx, keysFor(job).meta, fGen).Int64()
	if errors.Is(err, redis.Nil) {
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("job %s: %w", job, redisErr(err))
	}
	return gen, nil
}

// isOpen reports whether a unit is open.
func (s *Store) isOpen(ctx context.Context, job, unit string) (bool, error) {
	open, err := s.rdb.SIsMember(ctx, keysFor(job).open, unit).Result()
	if err != nil {
		return false, fmt.Errorf("job %s: %w", job, err)
	}
	return open, nil
}

// pipelinedClient is an asynq client whose enqueues go through go-redis's
// AutoPipeliner when the store holds a plain *redis.Client (nil
// otherwise): see Submitter.pageClient.
func (s *Store) pipelinedClient() *asynq.Client {
	if rc, ok := s.rdb.(*redis.Client); ok {
		if ap, err := rc.AutoPipeline(); err == nil {
			return asynq.NewClientFromRedisClient(ap)
		}
	}
	return nil
}

// clearRejects drops the rejected lines of an earlier submission.
func (s *Store) clearRejects(ctx context.Context, job string) error {
	if err := s.rdb.Del(ctx, keysFor(job).rejected).Err(); err != nil {
		return fmt.Errorf("job %s: %w", job, redisErr(err))
	}
	return nil
}

// addRejects appends rejected input lines (JSON).
func (s *Store) addRejects(ctx context.Context, job string, lines []any) error {
	if err := s.rdb.RPush(ctx, keysFor(job).rejected, lines...).Err(); err != nil {
		return fmt.Errorf("job %s: recording rejected lines: %w", job, redisErr(err))
	}
	return nil
}

// rejectedLines returns the rejected input lines (at most MaxListedRejects).
func (s *Store) rejectedLines(ctx context.Context, job string) ([]string, error) {
	rej, err := s.rdb.LRange(ctx, keysFor(job).rejected, 0, -1).Result()
	if err != nil && !errors.Is(err, redis.Nil) {
		return nil, fmt.Errorf("job %s: %w", job, err)
	}
	return rej, nil
}

// setRejected records how many input lines the last submission rejected.
func (s *Store) setRejected(ctx context.Context, job string, n int) error {
	if err := s.rdb.HSet(ctx, keysFor(job).meta, fRejected, n).Err(); err != nil {
		return fmt.Errorf("job %s: %w", job, redisErr(err))
	}
	return nil
}

// countWait counts a page's waits for its vendor (kept for ttl).
func (s *Store) countWait(ctx context.Context, job, unit string, ttl time.Duration) (int64, error) {
	key := keysFor(job).prefix + "wait:" + unit
	pipe := s.rdb.TxPipeline()
	incr := pipe.Incr(ctx, key)
	pipe.Expire(ctx, key, ttl)
	if _, err := pipe.Exec(ctx); err != nil {
		return 0, fmt.Errorf("counting a page's waits: %w", err)
	}
	return incr.Val(), nil
}

// scanOutcomes calls fn for every ended page unit of a job, in no order.
func (s *Store) scanOutcomes(ctx context.Context, job string, fn func(provider, endpoint, domain string, page int, o Outcome) error) error {
	dt, err := s.rdb.HGet(ctx, keysFor(job).meta, fDT).Result()
	if err != nil && !errors.Is(err, redis.Nil) {
		return fmt.Errorf("reading outcomes of job %s: %w", job, redisErr(err))
	}
	return s.eachBucket(ctx, job, func(unit, v string) error {
		provider, endpoint, domain, page, ok := parseUnit(unit)
		if !ok {
			return nil
		}
		o, err := decodeOutcome(job, dt, unit, v)
		if err != nil {
			return fmt.Errorf("reading outcomes of job %s: %w", job, err)
		}
		return fn(provider, endpoint, domain, page, o)
	})
}

// ---- Budget and ledger ------------------------------------------------
//
// A job's budget holds, per provider, in billionths of the provider's unit
// (integers: sums stay exact), in the budget hash:
//
//	limit:{p}    what the job may spend ("enqueue --budget", "enqueue budget")
//	charged:{p}  what the vendor billed for the job's calls (settled reservations)
//	reserved:{p} what calls in flight may still cost (live reservations)
//	blocked:{p}  set (ms, Redis clock) when a reservation could not fit even
//	             with no call in flight; cleared by one that fits or by a new budget
//
// A reservation is a member "p|amount|id" of the resv zset scored with its
// lease deadline: a holder that dies stops renewing it, and the next
// reservation against the job frees it. Every step reads the Redis clock.
// The ledger (what each page cost, counted once per page) is the meta
// hash's cost:{p}, added when a page's memo is written (keepMemo).

const (
	fBudgetLimit    = "limit:"
	fBudgetCharged  = "charged:"
	fBudgetReserved = "reserved:"
	fBudgetBlocked  = "blocked:"
)

// luaPurge frees the reservations whose lease has expired.
const luaPurge = `local function purge(budget, resv)
  local dead = redis.call('ZRANGEBYSCORE', resv, '-inf', '(' .. now)
  for _, m in ipairs(dead) do
    local p, amt = string.match(m, '^([^|]*)|(%d+)|')
    if p then redis.call('HINCRBY', budget, 'reserved:' .. p, '-' .. amt) end
    redis.call('ZREM', resv, m)
  end
end
`

// reserveScript holds amount against the provider's remaining budget if it
// fits: charged + reserved + amount <= limit. Returns {1, deadline} when
// held, {2} when the provider has no budget (nothing held), {0, charged,
// limit, reserved} when it does not fit.
// KEYS: budget, resv; ARGV: provider, amount, lease ms, reservation id
var reserveScript = redis.NewScript(luaNow + luaPurge + `
purge(KEYS[1], KEYS[2])
local p = ARGV[1]
local lim = redis.call('HGET', KEYS[1], 'limit:' .. p)
if not lim then return {2} end
local charged = tonumber(redis.call('HGET', KEYS[1], 'charged:' .. p) or '0')
local reserved = tonumber(redis.call('HGET', KEYS[1], 'reserved:' .. p) or '0')
if charged + reserved + tonumber(ARGV[2]) > tonumber(lim) then
  -- Blocked only if it could not fit even with no call in flight: then
  -- nothing but a larger budget lets it go on.
  if charged + tonumber(ARGV[2]) > tonumber(lim) then redis.call('HSET', KEYS[1], 'blocked:' .. p, now) end
  return {0, charged, tonumber(lim), reserved}
end
redis.call('ZADD', KEYS[2], now + tonumber(ARGV[3]), p .. '|' .. ARGV[2] .. '|' .. ARGV[4])
redis.call('HINCRBY', KEYS[1], 'reserved:' .. p, ARGV[2])
redis.call('HDEL', KEYS[1], 'blocked:' .. p)
return {1, now + tonumber(ARGV[3])}
`)

// settleScript replaces a reservation by the call's actual charge, in one
// step. A reservation already freed (its lease expired) frees nothing
// again. Returns the provider's charged total.
// KEYS: budget, resv; ARGV: provider, member, reserved amount, charge
var settleScript = redis.NewScript(`
if redis.call('ZREM', KEYS[2], ARGV[2]) == 1 then
  redis.call('HINCRBY', KEYS[1], 'reserved:' .. ARGV[1], '-' .. ARGV[3])
end
return redis.call('HINCRBY', KEYS[1], 'charged:' .. ARGV[1], ARGV[4])
`)

// renewResvScript extends a live reservation's lease; 0 if it had expired.
// KEYS: resv; ARGV: member, lease ms
var renewResvScript = redis.NewScript(luaNow + `
local s = redis.call('ZSCORE', KEYS[1], ARGV[1])
if not s or tonumber(s) < now then return 0 end
redis.call('ZADD', KEYS[1], 'XX', now + tonumber(ARGV[2]), ARGV[1])
return 1
`)

// setBudgetScript sets limits anew and lifts the blocks, so the job's
// state reads running again while its waiting pages retry.
// KEYS: budget; ARGV: provider, limit, ...
var setBudgetScript = redis.NewScript(`
for i = 1, #ARGV, 2 do
  redis.call('HSET', KEYS[1], 'limit:' .. ARGV[i], ARGV[i+1])
  redis.call('HDEL', KEYS[1], 'blocked:' .. ARGV[i])
end
return 0
`)

// Reservation is budget held for one call.
type Reservation struct {
	Provider string
	Member   string
	Amount   int64 // billionths
}

// reserveResult is what a reservation attempt found.
type reserveResult struct {
	held      bool
	unlimited bool  // the provider has no budget in this job
	charged   int64 // when it did not fit
	limit     int64
	reserved  int64
}

// reserve tries to hold amount (billionths) for a call to provider.
func (s *Store) reserve(ctx context.Context, job, provider string, amount int64, lease time.Duration, id string) (*Reservation, reserveResult, error) {
	k := keysFor(job)
	v, err := reserveScript.Run(ctx, s.rdb, []string{k.budget, k.resv}, provider, amount, lease.Milliseconds(), id).Int64Slice()
	if err != nil {
		return nil, reserveResult{}, fmt.Errorf("job %s: reserving budget for %s: %w", job, provider, redisErr(err))
	}
	switch v[0] {
	case 1:
		return &Reservation{Provider: provider, Member: provider + "|" + strconv.FormatInt(amount, 10) + "|" + id, Amount: amount},
			reserveResult{held: true}, nil
	case 2:
		return nil, reserveResult{unlimited: true}, nil
	}
	return nil, reserveResult{charged: v[1], limit: v[2], reserved: v[3]}, nil
}

// settle replaces r by the call's charge (billionths) and returns the
// provider's charged total.
func (s *Store) settle(ctx context.Context, job string, r *Reservation, charge int64) (int64, error) {
	k := keysFor(job)
	n, err := settleScript.Run(ctx, s.rdb, []string{k.budget, k.resv}, r.Provider, r.Member, r.Amount, charge).Int64()
	if err != nil {
		return 0, fmt.Errorf("job %s: settling a call to %s: %w", job, r.Provider, redisErr(err))
	}
	return n, nil
}

// renewReservation extends r's lease; false if it had already expired.
func (s *Store) renewReservation(ctx context.Context, job string, r *Reservation, lease time.Duration) (bool, error) {
	ok, err := renewResvScript.Run(ctx, s.rdb, []string{keysFor(job).resv}, r.Member, lease.Milliseconds()).Int()
	if err != nil {
		return false, fmt.Errorf("job %s: renewing a reservation: %w", job, redisErr(err))
	}
	return ok == 1, nil
}

// SetBudget sets a job's budget per provider (in the provider's unit);
// providers not named keep theirs.
func (s *Store) SetBudget(ctx context.Context, job string, limits map[string]float64) error {
	if len(limits) == 0 {
		return nil
	}
	args := make([]any, 0, 2*len(limits))
	for _, p := range slices.Sorted(maps.Keys(limits)) {
		args = append(args, p, spend.ToNano(limits[p]))
	}
	if err := setBudgetScript.Run(ctx, s.rdb, []string{keysFor(job).budget}, args...).Err(); err != nil {
		return fmt.Errorf("job %s: setting its budget: %w", job, redisErr(err))
	}
	return nil
}

// BudgetState is a job's budget as status shows it, per provider.
type BudgetState struct {
	Limit   map[string]float64 // the budget
	Charged map[string]float64 // billed so far for the job's calls
	// Blocked: a reservation did not fit and no call of the provider is in
	// flight: its pages wait for a larger budget.
	Blocked map[string]bool
}

// budgetState reads the job's budget and its live reservations.
func (s *Store) budgetState(ctx context.Context, job string) (*BudgetState, error) {
	k := keysFor(job)
	var all *redis.MapStringStringCmd
	var now *redis.TimeCmd
	_, err := s.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		all = p.HGetAll(ctx, k.budget)
		now = p.Time(ctx)
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("job %s: reading its budget: %w", job, err)
	}
	vals := all.Val()
	if len(vals) == 0 {
		return nil, nil
	}
	live, err := s.rdb.ZRangeByScore(ctx, k.resv, &redis.ZRangeBy{Min: strconv.FormatInt(now.Val().UnixMilli(), 10), Max: "+inf"}).Result()
	if err != nil {
		return nil, fmt.Errorf("job %s: reading its reservations: %w", job, err)
	}
	inFlight := map[string]bool{}
	for _, m := range live {
		p, _, _ := strings.Cut(m, "|")
		inFlight[p] = true
	}
	b := &BudgetState{Limit: map[string]float64{}, Charged: map[string]float64{}, Blocked: map[string]bool{}}
	for f, v := range vals {
		n, _ := strconv.ParseInt(v, 10, 64)
		switch {
		case strings.HasPrefix(f, fBudgetLimit):
			b.Limit[strings.TrimPrefix(f, fBudgetLimit)] = spend.FromNano(n)
		case strings.HasPrefix(f, fBudgetCharged):
			b.Charged[strings.TrimPrefix(f, fBudgetCharged)] = spend.FromNano(n)
		case strings.HasPrefix(f, fBudgetBlocked):
			if p := strings.TrimPrefix(f, fBudgetBlocked); !inFlight[p] {
				b.Blocked[p] = true
			}
		}
	}
	return b, nil
}

// openOutside reports whether an open unit of the job belongs to a
// provider not in blocked (read only when some provider is blocked).
func (s *Store) openOutside(ctx context.Context, job string, blocked map[string]bool) (bool, error) {
	var cursor uint64
	for {
		units, next, err := s.rdb.SScan(ctx, keysFor(job).open, cursor, "", 1000).Result()
		if err != nil {
			return false, fmt.Errorf("job %s: %w", job, err)
		}
		for _, u := range units {
			if p, _, _ := strings.Cut(u, "|"); !blocked[p] {
				return true, nil
			}
		}
		if cursor = next; cursor == 0 {
			return false, nil
		}
	}
}

// budgetStatus adds the job's budget to st, and reads its state as
// "budget" when every page left waits on one: some provider's reservation
// did not fit, none of its calls is in flight, no other provider has
// pages open, and no page waits for the sink (a stashed page was paid for
// and is not yet in the ledger: it waits for the sink, not the budget).
func (s *Store) budgetStatus(ctx context.Context, st *Status) error {
	b, err := s.budgetState(ctx, st.JobID)
	if err != nil || b == nil {
		return err
	}
	st.Budget, st.Charged = b.Limit, b.Charged
	if st.State != "running" || len(b.Blocked) == 0 || st.Open == 0 || st.Submissions > 0 || st.Finalizing || st.Stashed > 0 || st.Unfed > 0 {
		return nil
	}
	outside, err := s.openOutside(ctx, st.JobID, b.Blocked)
	if err != nil {
		return err
	}
	if !outside {
		st.State = "budget"
		st.BudgetBlocked = slices.Sorted(maps.Keys(b.Blocked))
	}
	return nil
}

// ---- Failed pages, for the job page of asynqmon ---------------------------

// FailedPage is a page that failed for good, with the vendor's message.
type FailedPage struct {
	Provider string `json:"provider"`
	Endpoint string `json:"endpoint"`
	Domain   string `json:"domain"`
	Page     int    `json:"page"`
	Error    string `json:"error"`
}

// FailedOutcomes returns up to limit of a job's failed pages, sorted by
// provider, endpoint, domain and page, and how many failed in all. It reads
// the ledger in batches, so a large job costs a scan, not a ledger held
// in memory.
func (s *Store) FailedOutcomes(ctx context.Context, job string, limit int) ([]FailedPage, int, error) {
	var out []FailedPage
	total := 0
	err := s.scanOutcomes(ctx, job, func(provider, endpoint, domain string, page int, o Outcome) error {
		if o.Status != "failed" {
			return nil
		}
		total++
		out = append(out, FailedPage{Provider: provider, Endpoint: endpoint, Domain: domain, Page: page, Error: o.Error})
		return nil
	})
	if err != nil {
		return nil, 0, err
	}
	slices.SortFunc(out, func(a, b FailedPage) int {
		return cmp.Or(strings.Compare(a.Provider, b.Provider), strings.Compare(a.Endpoint, b.Endpoint),
			strings.Compare(a.Domain, b.Domain), cmp.Compare(a.Page, b.Page))
	})
	if limit >= 0 && len(out) > limit {
		out = out[:limit]
	}
	return out, total, nil
}
