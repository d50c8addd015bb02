package tasks

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"
)

// A job's state lives in Redis under one hash tag, so its scripts run on
// one Redis Cluster slot:
//
//	meta     HASH   job_id, dt, created_at, spec, gen, counters, state, paused:{provider}
//	open     SET    units created and not yet ended
//	ended    HASH   unit -> outcome (JSON); a unit ends once, whatever delivers it
//	memo     HASH   unit -> what its call returned and where it was written, so a
//	                redelivered page is not fetched (and paid for) again
//	stash:U  STRING a page's encoded body, kept while the sink is unreachable
//	rejected LIST   rejected input lines (JSON)
//
// The job completes when open is empty. Units are added before their
// task is enqueued and only if they have not ended, and end exactly once
// (HSETNX), so retries and duplicate deliveries cannot make the count
// drift (DESIGN-NOTES: "Knowing when a job has ended").
type jobKeys struct{ meta, open, ended, memo, rejected, prefix string }

func keysFor(job string) jobKeys {
	p := "lh:{job:" + job + "}:"
	return jobKeys{meta: p + "meta", open: p + "open", ended: p + "ended", memo: p + "memo", rejected: p + "rejected", prefix: p}
}

func (k jobKeys) stash(unit string) string { return k.prefix + "stash:" + unit }

// jobsIndex lists jobs by creation time, for `enqueue status` without an id.
const jobsIndex = "lh:jobs"

// register adds units that have not ended to the open set. It returns,
// per unit, 0 if it already ended, 1 if it is new, 2 if it was already open.
var registerScript = redis.NewScript(`
local out = {}
local added = 0
for i, u in ipairs(ARGV) do
  if redis.call('HEXISTS', KEYS[2], u) == 1 then
    out[i] = 0
  elseif redis.call('SADD', KEYS[1], u) == 1 then
    out[i] = 1
    added = added + 1
  else
    out[i] = 2
  end
end
if added > 0 then redis.call('HINCRBY', KEYS[3], 'units', added) end
return out
`)

// end records a unit's outcome once and returns the number of open units.
// The unit's memo goes: once ended, a delivery stops at the ended check,
// and a million-page job would otherwise keep a million memos.
// KEYS: open, ended, meta, memo
// ARGV: unit, outcome, records, bytes, failed(0/1), objects(0/1), page(0/1)
var endScript = redis.NewScript(`
if redis.call('HSETNX', KEYS[2], ARGV[1], ARGV[2]) == 1 then
  redis.call('SREM', KEYS[1], ARGV[1])
  redis.call('HDEL', KEYS[4], ARGV[1])
  if ARGV[7] == '1' then
    redis.call('HINCRBY', KEYS[3], 'ended', 1)
    redis.call('HINCRBY', KEYS[3], 'records', ARGV[3])
    redis.call('HINCRBY', KEYS[3], 'bytes', ARGV[4])
    redis.call('HINCRBY', KEYS[3], 'failed', ARGV[5])
    redis.call('HINCRBY', KEYS[3], 'objects', ARGV[6])
  end
end
return redis.call('SCARD', KEYS[1])
`)

// Outcome is how a unit ended.
type Outcome struct {
	Status  string  `json:"status"` // ok, empty, failed
	Key     string  `json:"key,omitempty"`
	Records int     `json:"records"`
	Bytes   int64   `json:"bytes,omitempty"`
	Total   int     `json:"total,omitempty"`
	Cost    float64 `json:"cost,omitempty"`
	Unit    string  `json:"cost_unit,omitempty"`
	Error   string  `json:"error,omitempty"`
}

// memo is what a page's call returned, kept once its object is written.
type memo struct {
	Key       string    `json:"key,omitempty"`
	Records   int       `json:"records"`
	Bytes     int64     `json:"bytes"`
	Total     int       `json:"total"`
	Next      string    `json:"next,omitempty"`
	Cost      float64   `json:"cost,omitempty"`
	CostUnit  string    `json:"cost_unit,omitempty"`
	FetchedAt time.Time `json:"fetched_at"`
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

// Job loads a job's description.
func (s *Store) Job(ctx context.Context, id string) (*Job, error) {
	vals, err := s.rdb.HMGet(ctx, keysFor(id).meta, "dt", "created_at", "spec", "gen").Result()
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
// KEYS: meta, open, ended, memo, rejected; ARGV: spec, id, dt, created_at
var createScript = redis.NewScript(`
if redis.call('HSETNX', KEYS[1], 'spec', ARGV[1]) == 0 then return 0 end
redis.call('DEL', KEYS[2], KEYS[3], KEYS[4], KEYS[5])
redis.call('HSET', KEYS[1], 'job_id', ARGV[2], 'dt', ARGV[3], 'created_at', ARGV[4], 'state', 'running')
return 1
`)

// create stores a new job or checks that an existing one asks for the same
// thing, and starts a new submission generation.
func (s *Store) create(ctx context.Context, id string, spec Spec, now time.Time) (*Job, error) {
	k := keysFor(id)
	specJSON, err := json.Marshal(spec)
	if err != nil {
		return nil, err
	}
	created, err := createScript.Run(ctx, s.rdb, []string{k.meta, k.open, k.ended, k.memo, k.rejected},
		specJSON, id, now.UTC().Format("2006-01-02"), now.UTC().Format(time.RFC3339Nano)).Bool()
	if err != nil {
		return nil, fmt.Errorf("creating job %s: %w", id, err)
	}
	if created {
		s.rdb.ZAdd(ctx, jobsIndex, redis.Z{Score: float64(now.Unix()), Member: id})
	} else {
		old, err := s.rdb.HGet(ctx, k.meta, "spec").Result()
		if err != nil {
			return nil, fmt.Errorf("loading job %s: %w", id, err)
		}
		if old != string(specJSON) {
			return nil, fmt.Errorf("job %s already exists with other providers, endpoints, options or --max-rows; use a new --job id", id)
		}
	}
	// A resubmission of a finished job keeps its state until it ends again.
	if err := s.persist(ctx, id); err != nil {
		return nil, err
	}
	gen, err := s.rdb.HIncrBy(ctx, k.meta, "gen", 1).Result()
	if err != nil {
		return nil, fmt.Errorf("job %s: %w", id, err)
	}
	j, err := s.Job(ctx, id)
	if err != nil {
		return nil, err
	}
	j.Gen = gen
	return j, nil
}

// expire lets a finished job's state go after ttl (0: keep it). Until
// then `enqueue status` reports it and a resubmission of the same job id
// adds only what is not done; after it, the same id is a new job.
func (s *Store) expire(ctx context.Context, job string, ttl time.Duration) error {
	if ttl <= 0 {
		return nil
	}
	k := keysFor(job)
	_, err := s.rdb.TxPipelined(ctx, func(p redis.Pipeliner) error {
		for _, key := range []string{k.meta, k.open, k.ended, k.memo, k.rejected} {
			p.Expire(ctx, key, ttl)
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("job %s: setting its retention: %w", job, err)
	}
	return nil
}

// persist undoes expire.
func (s *Store) persist(ctx context.Context, job string) error {
	k := keysFor(job)
	_, err := s.rdb.TxPipelined(ctx, func(p redis.Pipeliner) error {
		for _, key := range []string{k.meta, k.open, k.ended, k.memo, k.rejected} {
			p.Persist(ctx, key)
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("job %s: %w", job, err)
	}
	return nil
}

// register adds units to a job; see registerScript.
func (s *Store) register(ctx context.Context, job string, units []string) ([]int64, error) {
	k := keysFor(job)
	args := make([]any, len(units))
	for i, u := range units {
		args[i] = u
	}
	res, err := registerScript.Run(ctx, s.rdb, []string{k.open, k.ended, k.meta}, args...).Int64Slice()
	if err != nil {
		return nil, fmt.Errorf("registering %d tasks of job %s: %w", len(units), job, err)
	}
	return res, nil
}

// end records a unit's outcome (once) and returns how many units are open.
func (s *Store) end(ctx context.Context, job, unit string, o Outcome, page bool) (int64, error) {
	k := keysFor(job)
	b, _ := json.Marshal(o)
	failed, objects, isPage := 0, 0, 0
	if o.Status == "failed" {
		failed = 1
	}
	if o.Key != "" {
		objects = 1
	}
	if page {
		isPage = 1
	}
	n, err := endScript.Run(ctx, s.rdb, []string{k.open, k.ended, k.meta, k.memo},
		unit, b, o.Records, o.Bytes, failed, objects, isPage).Int64()
	if err != nil {
		return 0, fmt.Errorf("ending %s of job %s: %w", unit, job, err)
	}
	return n, nil
}

func (s *Store) ended(ctx context.Context, job, unit string) (bool, error) {
	return s.rdb.HExists(ctx, keysFor(job).ended, unit).Result()
}

func (s *Store) memo(ctx context.Context, job, unit string) (*memo, error) {
	v, err := s.rdb.HGet(ctx, keysFor(job).memo, unit).Result()
	if errors.Is(err, redis.Nil) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var m memo
	if err := json.Unmarshal([]byte(v), &m); err != nil {
		return nil, fmt.Errorf("memo of %s: %w", unit, err)
	}
	return &m, nil
}

// keepMemo records a written page and drops its stash.
func (s *Store) keepMemo(ctx context.Context, job, unit string, m *memo) error {
	k := keysFor(job)
	b, _ := json.Marshal(m)
	_, err := s.rdb.TxPipelined(ctx, func(p redis.Pipeliner) error {
		p.HSet(ctx, k.memo, unit, b)
		p.Del(ctx, k.stash(unit))
		if m.Cost > 0 {
			provider, _, _, _, _ := parseUnit(unit)
			p.HIncrByFloat(ctx, k.meta, "cost:"+provider, m.Cost)
		}
		return nil
	})
	return err
}

// stashTTL bounds how long a fetched page waits for the sink to come back.
const stashTTL = 7 * 24 * time.Hour

type stashed struct {
	Body []byte `json:"body"`
	Memo memo   `json:"memo"`
}

func (s *Store) stash(ctx context.Context, job, unit string, st *stashed) error {
	b, _ := json.Marshal(st)
	return s.rdb.Set(ctx, keysFor(job).stash(unit), b, stashTTL).Err()
}

func (s *Store) unstash(ctx context.Context, job, unit string) (*stashed, error) {
	b, err := s.rdb.Get(ctx, keysFor(job).stash(unit)).Bytes()
	if errors.Is(err, redis.Nil) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var st stashed
	if err := json.Unmarshal(b, &st); err != nil {
		return nil, err
	}
	return &st, nil
}

// Pause records why a provider's queue was paused for a job.
func (s *Store) pause(ctx context.Context, job, provider, reason string) error {
	return s.rdb.HSet(ctx, keysFor(job).meta, "paused:"+provider, reason).Err()
}

// Redis returns the store's connection.
func (s *Store) Redis() redis.UniversalClient { return s.rdb }
