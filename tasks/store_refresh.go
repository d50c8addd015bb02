package tasks

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"

	"github.com/redis/go-redis/v9"

	"github.com/linkharvest/linkharvest/providers"
)

// The job store's side of refresh jobs (refresh.go).

// How a refresh fetched a domain (Outcome.Refresh).
const (
	RefreshUnchanged = "unchanged" // the vendor counted no change: no call
	RefreshDelta     = "delta"     // its new and lost rows
	RefreshFull      = "full"      // all its rows (RefreshReason says why)
)

// refreshCounter is the meta counter a first page's outcome adds to.
func refreshCounter(refresh string) string {
	switch refresh {
	case RefreshUnchanged:
		return fUnchanged
	case RefreshDelta:
		return fChanged
	case RefreshFull:
		return fFull
	}
	return ""
}

// openUnits reports, per unit, whether it is still open (not ended).
func (s *Store) openUnits(ctx context.Context, job string, units []string) ([]bool, error) {
	args := make([]any, len(units))
	for i, u := range units {
		args[i] = u
	}
	open, err := s.rdb.SMIsMember(ctx, keysFor(job).open, args...).Result()
	if err != nil {
		return nil, fmt.Errorf("job %s: %w", job, redisErr(err))
	}
	return open, nil
}

// BaseState reports, per domain of a refresh's batch, whether its base job
// fetched it (its first page ended there) and whether the base holds its
// rows whole (not in the base's incomplete set).
func (s *Store) BaseState(ctx context.Context, base, provider, endpoint string, domains []string) (known, whole []bool, err error) {
	k := keysFor(base)
	units := make([]string, len(domains))
	members := make([]any, len(domains))
	for i, d := range domains {
		p := PagePayload{Provider: provider, Endpoint: endpoint, Domain: d, Page: 1}
		units[i] = p.Unit()
		members[i] = incompleteMember(provider, endpoint, d)
	}
	ended := make([]*redis.BoolCmd, len(units))
	var inc *redis.BoolSliceCmd
	_, err = s.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		for i, u := range units {
			ended[i] = p.HExists(ctx, k.bucket(u), u)
		}
		inc = p.SMIsMember(ctx, k.incomplete, members...)
		return nil
	})
	if err != nil {
		return nil, nil, fmt.Errorf("base job %s: %w", base, redisErr(err))
	}
	known, whole = make([]bool, len(domains)), make([]bool, len(domains))
	for i, c := range ended {
		known[i] = c.Val()
		whole[i] = known[i] && !inc.Val()[i]
	}
	return known, whole, nil
}

func incompleteMember(provider, endpoint, domain string) string {
	return provider + "|" + endpoint + "|" + domain
}

// setIncomplete records, when a job's manifest is written, the domains
// whose rows it does not hold whole, for a refresh of it.
func (s *Store) setIncomplete(ctx context.Context, job string, outs []*ManifestOutcome, first bool) error {
	k := keysFor(job)
	var members []any
	for _, o := range outs {
		if o.Status == "failed" {
			members = append(members, incompleteMember(o.Provider, o.Endpoint, o.Domain))
		}
	}
	_, err := s.rdb.TxPipelined(ctx, func(p redis.Pipeliner) error {
		if first {
			p.Del(ctx, k.incomplete)
		}
		if len(members) > 0 {
			p.SAdd(ctx, k.incomplete, members...)
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("job %s: %w", job, redisErr(err))
	}
	return nil
}

// checkMemo is a change count's answer, kept so that a check task run
// again (a crash after the call) does not pay for the call twice.
type checkMemo struct {
	Counts map[string]providers.ChangeCount `json:"counts"`
	Cost   float64                          `json:"cost,omitempty"`
}

// keepCheckScript keeps the first answer of a check and counts its cost
// in the ledger once. KEYS: memo, meta; ARGV: field, memo, cost field or
// "", cost. Returns the memo kept.
var keepCheckScript = redis.NewScript(`
if redis.call('HSETNX', KEYS[1], ARGV[1], ARGV[2]) == 1 then
  if ARGV[3] ~= '' then redis.call('HINCRBYFLOAT', KEYS[2], ARGV[3], ARGV[4]) end
  return ARGV[2]
end
return redis.call('HGET', KEYS[1], ARGV[1])
`)

func checkField(id string) string { return "check|" + id }

// loadCheck returns a check's kept answer, or nil.
func (s *Store) loadCheck(ctx context.Context, job, id string) (*checkMemo, error) {
	v, err := s.rdb.HGet(ctx, keysFor(job).memo, checkField(id)).Result()
	if err == redis.Nil {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("job %s: %w", job, redisErr(err))
	}
	var m checkMemo
	if err := json.Unmarshal([]byte(v), &m); err != nil {
		return nil, fmt.Errorf("job %s: check %s: %w", job, id, err)
	}
	return &m, nil
}

// keepCheck keeps a check's answer (the first one, if two ran) and
// returns the one kept.
func (s *Store) keepCheck(ctx context.Context, job, provider, id string, m *checkMemo) (*checkMemo, error) {
	k := keysFor(job)
	b, err := json.Marshal(m)
	if err != nil {
		return nil, err
	}
	costField := ""
	if m.Cost > 0 {
		costField = fCostPrefix + provider
	}
	v, err := keepCheckScript.Run(ctx, s.rdb, []string{k.memo, k.meta}, checkField(id), b, costField, m.Cost).Text()
	if err != nil {
		return nil, fmt.Errorf("job %s: check %s: %w", job, id, redisErr(err))
	}
	var kept checkMemo
	if err := json.Unmarshal([]byte(v), &kept); err != nil {
		return nil, fmt.Errorf("job %s: check %s: %w", job, id, err)
	}
	return &kept, nil
}

// dropCheck forgets a check whose domains have all been dealt with.
func (s *Store) dropCheck(ctx context.Context, job, id string) error {
	if err := s.rdb.HDel(ctx, keysFor(job).memo, checkField(id)).Err(); err != nil {
		return fmt.Errorf("job %s: %w", job, redisErr(err))
	}
	return nil
}

// Domains calls fn with every domain of a finished job, once each: the
// domains of its first provider and endpoint's first pages (every domain
// has one), from its outcomes.
func (s *Store) Domains(ctx context.Context, job string, fn func(domain string) error) error {
	j, err := s.Job(ctx, job)
	if err != nil {
		return err
	}
	if len(j.Spec.Providers) == 0 || len(j.Spec.Endpoints[j.Spec.Providers[0]]) == 0 {
		return nil
	}
	prefix := j.Spec.Providers[0] + "|" + j.Spec.Endpoints[j.Spec.Providers[0]][0] + "|"
	return s.eachBucket(ctx, job, func(unit, _ string) error {
		if !strings.HasPrefix(unit, prefix) || !strings.HasSuffix(unit, "|1") {
			return nil
		}
		return fn(strings.TrimSuffix(strings.TrimPrefix(unit, prefix), "|1"))
	})
}
