package limiter

import (
	"context"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/go-redis/redis_rate/v10"
	"github.com/redis/go-redis/v9"

	"github.com/linkharvest/linkharvest/internal/settings"
)

// The account's real limit. A vendor may state the account's limit on
// every answer (DataForSEO's X-RateLimit-Limit: calls a minute for that
// endpoint); accounts differ from the published figure both ways. A
// process that reads a statement writes it, per request path, into the
// account HASH next to the limiter's other state, with an expiry by Redis
// TIME; every Acquire of every process reads the lowest live statement in
// the same script that grants its slot, and rates the call by the lower of
// it and the configured limit. So once any worker has seen the account's
// real limit, no call of the fleet is granted at the configured one. (Calls
// granted before the first answer arrived were rated by the configured
// limit: at most the calls in flight at that moment.) A statement above
// the configured limit changes nothing: the configured limit is the
// operator's choice, and a log line says the account allows more.
//
// Each process logs once per value: when the limit it applies drops below
// the configured one (or changes again), and the first time a statement
// is above it.

const (
	// accountTTL is how long a statement counts after the last answer
	// that made it: a limit support has raised, or an endpoint no longer
	// called, stops holding the account down.
	accountTTL = 10 * time.Minute
	// accountRefresh is how often a process rewrites an unchanged
	// statement (a changed one is written at once).
	accountRefresh = time.Minute
)

// accountScript records one statement: field = request path, value =
// "limit:expiry ms" by Redis TIME.
//
// KEYS: account HASH. ARGV: path, limit, TTL ms.
var accountScript = redis.NewScript(luaNow + `
local ttl = tonumber(ARGV[3])
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2] .. ':' .. string.format('%.0f', now + ttl))
redis.call('PEXPIRE', KEYS[1], ttl)
return 1
`)

// WithAccountLimitHeader makes the limiter read the account's limit from
// the named response header, as calls per per (see above). An empty
// header leaves it off.
func WithAccountLimitHeader(header string, per time.Duration) Option {
	return func(l *Limiter) {
		if header != "" && per > 0 {
			l.acct.header, l.acct.per = http.CanonicalHeaderKey(header), per
		}
	}
}

type accountLimit struct {
	header string
	per    time.Duration

	mu          sync.Mutex
	seen        map[string]stated // path -> last statement written
	aboveLogged bool
	applied     atomic.Int64 // the rate last applied; 0 before the first grant
	logged      atomic.Int64 // the lowered rate last logged
}

type stated struct {
	n  int64
	at time.Time
}

// rateOf converts a statement (calls per per) to calls per the limit's
// Period, rounding down.
func (l *Limiter) rateOf(n int64) int64 {
	per := l.acct.per
	if per <= 0 {
		per = time.Minute // another process stated it; the header's unit
	}
	return n * int64(l.limit.Period) / int64(per)
}

// bucketFor is the bucket a call is rated by, given the lowest statement
// in Redis (0: none).
func (l *Limiter) bucketFor(lowest int64) redis_rate.Limit {
	rate := int64(l.limit.Rate)
	if lowest > 0 {
		if r := max(l.rateOf(lowest), 1); r < rate {
			rate = r
		}
	}
	l.acct.applied.Store(rate)
	if rate == int64(l.limit.Rate) {
		return l.bucket
	}
	if old := l.acct.logged.Swap(rate); old != rate {
		l.log.Warn("shared limiter: the vendor states a lower limit for the account than configured; using it",
			"provider", l.name, "configured", l.limit.String(), "applied", strconv.FormatInt(rate, 10)+"/"+settings.BriefDuration(l.limit.Period),
			"stated", strconv.FormatInt(lowest, 10)+"/"+settings.BriefDuration(l.acct.per))
	}
	lim := l.limit
	lim.Rate = int(rate)
	return lim.bucket()
}

// Applied is the limit the last granted call was rated by: the configured
// one, or the account's own when the vendor states a lower one.
func (l *Limiter) Applied() Limit {
	lim := l.limit
	if r := l.acct.applied.Load(); r > 0 {
		lim.Rate = int(r)
	}
	return lim
}

// observe reads the account's limit from an answer's header (see above).
func (l *Limiter) observe(path string, h http.Header) {
	if l.acct.header == "" || l.limit.Rate == 0 {
		return
	}
	v := strings.TrimSpace(h.Get(l.acct.header))
	if v == "" {
		return
	}
	n, err := strconv.ParseInt(v, 10, 64)
	if err != nil || n <= 0 || n > maxCount {
		return
	}
	now := time.Now()
	a := &l.acct
	a.mu.Lock()
	if a.seen == nil {
		a.seen = map[string]stated{}
	}
	last, ok := a.seen[path]
	fresh := ok && last.n == n && now.Sub(last.at) < accountRefresh
	if !fresh {
		a.seen[path] = stated{n: n, at: now}
	}
	above := !a.aboveLogged && l.rateOf(n) > int64(l.limit.Rate)
	if above {
		a.aboveLogged = true
	}
	a.mu.Unlock()
	if above {
		l.log.Info("shared limiter: the vendor states a higher limit for the account than configured; raise --limit to use it",
			"provider", l.name, "configured", l.limit.String(), "stated", v+"/"+settings.BriefDuration(a.per))
	}
	if fresh {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), redisTimeout)
	defer cancel()
	if err := accountScript.Run(ctx, l.rdb, []string{l.keyAccount}, path, n, accountTTL.Milliseconds()).Err(); err != nil {
		l.st.redisErrors.Add(1)
		a.mu.Lock()
		delete(a.seen, path) // try again with the next answer
		a.mu.Unlock()
	}
}
