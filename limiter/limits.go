package limiter

import (
	"fmt"
	"math"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/go-redis/redis_rate/v10"

	"github.com/linkharvest/linkharvest/internal/settings"
)

// Limit is one provider account's limits, as the vendor states them.
type Limit struct {
	// Rate calls in any window of Period; 0 = not limited.
	Rate   int
	Period time.Duration
	// InFlight calls at once; 0 = not limited.
	InFlight int
}

// String writes the limit in ParseLimits' form, e.g. "2000/1m:30".
func (l Limit) String() string {
	rate := "0"
	if l.Rate > 0 {
		rate = strconv.Itoa(l.Rate) + "/" + settings.BriefDuration(l.Period)
	}
	return rate + ":" + strconv.Itoa(l.InFlight)
}

// Bounds on what ParseLimits accepts: beyond them a value is a typo, and
// the arithmetic below stays far from overflow.
const (
	maxCount  = 1_000_000_000
	minPeriod = time.Millisecond
	maxPeriod = 31 * 24 * time.Hour
)

var nameRE = regexp.MustCompile(`^[a-z0-9][a-z0-9_-]{0,63}$`)

// ParseLimits reads --limit / PROVIDER_LIMITS (docs/contract.md):
//
//	dataforseo=2000/1m:30,domdetailer=60/1m:5
//
// Each entry is NAME=RATE/PERIOD:INFLIGHT. PERIOD is a Go duration, and a
// bare unit means one of it ("1m", "60s", "m", "1h30m"). A RATE of 0 means
// the rate is not limited (write "0:5"); an INFLIGHT of 0, or leaving out
// ":INFLIGHT", means calls at once are not limited. Names are lowercased.
// Empty input gives an empty map (the caller merges the vendors'
// published limits, providers.Vendor.Limits); whitespace and empty
// entries are ignored; anything else that does not parse, or names a
// provider twice, is an error that quotes the entry.
func ParseLimits(s string) (map[string]Limit, error) {
	out := map[string]Limit{}
	for _, entry := range strings.Split(s, ",") {
		entry = strings.TrimSpace(entry)
		if entry == "" {
			continue
		}
		name, l, err := parseEntry(entry)
		if err != nil {
			return nil, fmt.Errorf("limits: %q: %w (want NAME=CALLS/PERIOD:INFLIGHT, e.g. dataforseo=2000/1m:30)", entry, err)
		}
		if _, dup := out[name]; dup {
			return nil, fmt.Errorf("limits: %q: provider %s is given twice", entry, name)
		}
		out[name] = l
	}
	return out, nil
}

func parseEntry(entry string) (string, Limit, error) {
	name, spec, ok := strings.Cut(entry, "=")
	if !ok {
		return "", Limit{}, fmt.Errorf("no '='")
	}
	name = strings.ToLower(strings.TrimSpace(name))
	if !nameRE.MatchString(name) {
		return "", Limit{}, fmt.Errorf("bad provider name %q (letters, digits, '-', '_')", name)
	}
	spec = strings.TrimSpace(spec)
	rateSpec, inflight, hasInflight := strings.Cut(spec, ":")
	var l Limit
	if hasInflight {
		n, err := parseCount(inflight)
		if err != nil {
			return "", Limit{}, fmt.Errorf("calls in flight: %w", err)
		}
		l.InFlight = n
	}
	count, per, hasPer := strings.Cut(strings.TrimSpace(rateSpec), "/")
	n, err := parseCount(count)
	if err != nil {
		return "", Limit{}, fmt.Errorf("calls per period: %w", err)
	}
	l.Rate = n
	switch {
	case hasPer:
		p, err := parsePeriod(per)
		if err != nil {
			return "", Limit{}, err
		}
		l.Period = p
	case n > 0:
		return "", Limit{}, fmt.Errorf("calls per period: %q has no period", count)
	default:
		l.Period = time.Minute // unused while Rate is 0; keeps String() tidy
	}
	return name, l, nil
}

func parseCount(s string) (int, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return 0, fmt.Errorf("missing number")
	}
	n, err := strconv.Atoi(s)
	if err != nil {
		return 0, fmt.Errorf("%q is not a whole number", s)
	}
	if n < 0 || n > maxCount {
		return 0, fmt.Errorf("%d is out of range 0..%d", n, maxCount)
	}
	return n, nil
}

func parsePeriod(s string) (time.Duration, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return 0, fmt.Errorf("missing period after '/'")
	}
	if s[0] < '0' || s[0] > '9' {
		s = "1" + s // "m" is one minute
	}
	d, err := time.ParseDuration(s)
	if err != nil {
		return 0, fmt.Errorf("period %q is not a duration like 1m, 60s or 1h", s)
	}
	if d < minPeriod || d > maxPeriod {
		return 0, fmt.Errorf("period %s is out of range %s..%s", d, minPeriod, maxPeriod)
	}
	return d, nil
}

// The rate bucket.
//
// redis_rate is a GCRA: with emission interval I = Period/Rate and burst b,
// a call at time t is allowed when the theoretical arrival time TAT is at
// most t + (b−1)·I, and then TAT = max(TAT, t) + I. Over any closed window
// [s, s+T] holding n granted calls, TAT rises by at least n·I from at least
// s, and after the last grant it is at most s+T+b·I, so
//
//	n ≤ b + T/I    (b + r·T with r = 1/I).
//
// PerMinute(2000) (b = 2000) would thus let 4000 calls into 61 s. We keep b
// tiny and size I so that a window of Period can never reach L+1 calls:
//
//	b = 2 when L ≥ 100, else 1. One spare token lets a waiter that wakes a
//	    little late (timers, scheduling, a Redis round trip) make up the
//	    lost time instead of losing throughput; it costs one call of L.
//	I = Period·1.01 / (L+1−b), i.e. redis_rate.Limit{Rate: L+1−b,
//	    Period: Period + Period/100, Burst: b}.
//
// Then b + Period/I = b + (L+1−b)/1.01 < L+1, and n is a whole number, so
// no closed window of Period holds more than L calls: 1981 of 2000 a
// minute, 298 of 300 per 10 s, 60 of 60 a minute, 5 of 5 a minute. (For
// L ≥ 102 even b + r·Period ≤ L holds literally; the +1 only matters to
// small limits, where it is worth a fifth of 5/min.) The 1% is the safety
// margin for arrival jitter: a vendor window of Period maps onto a limiter
// window of at most Period+J when calls reach the vendor up to J later or
// earlier than Redis granted them, and b + (L+1−b)·(1+J/Period)/1.01 stays
// below L+1 while J < Period/100 (600 ms on a minute, 100 ms on 10 s).
// The steady rate is (L+1−b)/1.01 per Period: 98.96% of 2000/min, 98.7% of
// 300/10s, 99.0% of 60/min and of 5/min, 98.0% of 100/min, the worst case.
// (redis_rate stores TAT with 14 significant digits, about 10 µs; even if
// every rounding of a window's 2000 grants went the same way, the 20 ms of
// drift would only shave the jitter margin.)
func (l Limit) bucket() redis_rate.Limit {
	burst := 1
	if l.Rate >= 100 {
		burst = 2
	}
	return redis_rate.Limit{
		Rate:   max(l.Rate+1-burst, 1),
		Burst:  burst,
		Period: l.Period + l.Period/100,
	}
}

// maxPerWindow is the most calls the bucket lets into any closed window
// of Period (the bound above, floored).
func (l Limit) maxPerWindow() int {
	b := l.bucket()
	interval := float64(b.Period) / float64(b.Rate)
	return b.Burst + int(math.Floor(float64(l.Period)/interval))
}

// steadyRate is the calls per second the bucket allows in the long run.
func (l Limit) steadyRate() float64 {
	b := l.bucket()
	return float64(b.Rate) / b.Period.Seconds()
}
