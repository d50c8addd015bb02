package tasks

import (
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"math/bits"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/linkharvest/linkharvest/sink"
)

// The ledger: how each unit of a job ended, kept for the job's retention.
//
// One hash of a million entries costs Redis about 330 bytes an entry (a
// hashtable: a dict entry and two allocations per field, and JSON
// values). The ledger is instead split into ledgerBuckets hashes per job
// (lh:{job:J}:ended:N, N = fnv32a(unit) mod ledgerBuckets), small enough
// that Redis keeps each as a listpack (hash-max-listpack-entries, 128 by
// default; 10,000,000 units are about 150 a bucket), one allocation per
// bucket with entries packed end to end; and each outcome is a short
// positional string, not JSON, with the object's key left out when it is
// the page's standard key (sink.PageKey of the job's own date). Which
// buckets exist is a bitmap (lh:{job:J}:endedb, 8 KiB), so that reading
// a small job's ledger reads only the buckets it has.
const ledgerBuckets = 1 << 16

func bucketOf(unit string) int {
	h := fnv.New32a()
	h.Write([]byte(unit))
	return int(h.Sum32() & (ledgerBuckets - 1))
}

func (k jobKeys) bucket(unit string) string { return k.bucketN(bucketOf(unit)) }

func (k jobKeys) bucketN(n int) string { return k.prefix + "ended:" + strconv.Itoa(n) }

// usedBuckets reads which of a job's ledger buckets exist.
func (s *Store) usedBuckets(ctx context.Context, job string) ([]int, error) {
	bm, err := s.rdb.Get(ctx, keysFor(job).buckets).Bytes()
	if err != nil && !errors.Is(err, redis.Nil) {
		return nil, fmt.Errorf("job %s: reading its ledger: %w", job, redisErr(err))
	}
	var out []int
	for i, b := range bm { // SETBIT numbers bits from the most significant
		for b != 0 {
			j := bits.LeadingZeros8(b)
			out = append(out, i*8+j)
			b &^= 0x80 >> j
		}
	}
	return out, nil
}

// eachBucket calls fn with every entry of the job's ledger, reading the
// buckets in pipelined batches.
func (s *Store) eachBucket(ctx context.Context, job string, fn func(unit, value string) error) error {
	used, err := s.usedBuckets(ctx, job)
	if err != nil {
		return err
	}
	k := keysFor(job)
	const batch = 512
	for i := 0; i < len(used); i += batch {
		cmds := make([]*redis.MapStringStringCmd, 0, batch)
		_, err := s.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
			for _, n := range used[i:min(i+batch, len(used))] {
				cmds = append(cmds, p.HGetAll(ctx, k.bucketN(n)))
			}
			return nil
		})
		if err != nil {
			return fmt.Errorf("job %s: reading its ledger: %w", job, redisErr(err))
		}
		for _, c := range cmds {
			for u, v := range c.Val() {
				if err := fn(u, v); err != nil {
					return err
				}
			}
		}
	}
	return nil
}

// eachLedgerKey calls fn with every key of the job's ledger buckets, in
// batches for one pipeline each (expire, persist).
func (s *Store) eachLedgerKey(ctx context.Context, job string, fn func(p redis.Pipeliner, key string)) error {
	used, err := s.usedBuckets(ctx, job)
	if err != nil {
		return err
	}
	k := keysFor(job)
	const batch = 4096
	for i := 0; i < len(used); i += batch {
		_, err := s.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
			for _, n := range used[i:min(i+batch, len(used))] {
				fn(p, k.bucketN(n))
			}
			return nil
		})
		if err != nil {
			return fmt.Errorf("job %s: %w", job, redisErr(err))
		}
	}
	return nil
}

// expireAt gives every key of the job the same deadline, so that none
// outlives the others (a job created again under the same id deletes only
// the keys it names; the buckets it cannot name are gone by then).
// The buckets go first: a finalizer that dies between the two is retried
// and sets them all again, but a bitmap that expired before its buckets
// would leave them behind for good.
func (s *Store) expireAt(ctx context.Context, job string, at time.Time) error {
	if err := s.eachLedgerKey(ctx, job, func(p redis.Pipeliner, key string) { p.PExpireAt(ctx, key, at) }); err != nil {
		return fmt.Errorf("setting its retention: %w", err)
	}
	_, err := s.rdb.TxPipelined(ctx, func(p redis.Pipeliner) error {
		for _, key := range keysFor(job).all() {
			p.PExpireAt(ctx, key, at)
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("job %s: setting its retention: %w", job, redisErr(err))
	}
	return nil
}

// Outcome statuses as the ledger writes them.
var statusCodes = map[string]string{"ok": "o", "empty": "e", "failed": "f", "unchanged": "u"}

// ledgerEscaper keeps '|' out of a text field.
var ledgerEscaper = strings.NewReplacer(`\`, `\\`, `|`, `\p`)

func ledgerUnescape(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+1 < len(s) {
			i++
			if s[i] == 'p' {
				b.WriteByte('|')
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

// encodeOutcome writes an outcome as the ledger keeps it:
//
//	status|records|bytes|total|spend|unit|key|flags|refresh|refresh reason|error
//
// with empty trailing fields dropped; status is one letter for the usual
// ones (statusCodes); key "=" is the unit's standard key under the job's
// date. It returns the value with the key written out, and, when the key
// is a standard key under some date, that date and the value with "=":
// the end script keeps the short one if the date is the job's.
func encodeOutcome(job, unit string, o Outcome) (long, short, dt string) {
	status := o.Status
	if c, ok := statusCodes[status]; ok {
		status = c
	} else {
		status = ledgerEscaper.Replace(status)
	}
	flags := ""
	if o.Refetch {
		flags = "r"
	}
	num := func(n int64) string {
		if n == 0 {
			return ""
		}
		return strconv.FormatInt(n, 10)
	}
	spendS := ""
	if o.Spend != 0 {
		spendS = strconv.FormatFloat(o.Spend, 'g', -1, 64)
	}
	build := func(key string) string {
		f := []string{status, num(int64(o.Records)), num(o.Bytes), num(int64(o.Total)), spendS, ledgerEscaper.Replace(o.Unit), key,
			flags, ledgerEscaper.Replace(o.Refresh), ledgerEscaper.Replace(o.RefreshReason), ledgerEscaper.Replace(o.Error)}
		n := len(f)
		for n > 1 && f[n-1] == "" {
			n--
		}
		return strings.Join(f[:n], "|")
	}
	long = build(ledgerEscaper.Replace(o.Key))
	if prov, ep, domain, page, ok := parseUnit(unit); ok && o.Key != "" {
		// provider=P/endpoint=E/dt=YYYY-MM-DD/...: the date is the 10 bytes after "dt=".
		pre := "provider=" + prov + "/endpoint=" + ep + "/dt="
		if len(o.Key) > len(pre)+10 && strings.HasPrefix(o.Key, pre) {
			d := o.Key[len(pre) : len(pre)+10]
			if o.Key == sink.PageKey(prov, ep, d, job, domain, page) {
				return long, build("="), d
			}
		}
	}
	return long, "", ""
}

// decodeOutcome reads what encodeOutcome wrote; dt is the job's date.
func decodeOutcome(job, dt, unit, v string) (Outcome, error) {
	f := strings.Split(v, "|")
	for len(f) < 11 {
		f = append(f, "")
	}
	if len(f) > 11 {
		return Outcome{}, fmt.Errorf("ledger entry of %s: %d fields, want at most 11", unit, len(f))
	}
	var o Outcome
	o.Status = ledgerUnescape(f[0])
	for s, c := range statusCodes {
		if f[0] == c {
			o.Status = s
		}
	}
	num := func(s string) (int64, error) {
		if s == "" {
			return 0, nil
		}
		return strconv.ParseInt(s, 10, 64)
	}
	r, err1 := num(f[1])
	b, err2 := num(f[2])
	t, err3 := num(f[3])
	var err4 error
	if f[4] != "" {
		o.Spend, err4 = strconv.ParseFloat(f[4], 64)
	}
	if err := errors.Join(err1, err2, err3, err4); err != nil {
		return Outcome{}, fmt.Errorf("ledger entry of %s: %w", unit, err)
	}
	o.Records, o.Bytes, o.Total = int(r), b, int(t)
	o.Unit = ledgerUnescape(f[5])
	o.Key = ledgerUnescape(f[6])
	if f[6] == "=" {
		prov, ep, domain, page, ok := parseUnit(unit)
		if !ok {
			return Outcome{}, fmt.Errorf("ledger entry of %s: a standard key for a unit that is not a page", unit)
		}
		o.Key = sink.PageKey(prov, ep, dt, job, domain, page)
	}
	o.Refetch = strings.Contains(f[7], "r")
	o.Refresh, o.RefreshReason, o.Error = ledgerUnescape(f[8]), ledgerUnescape(f[9]), ledgerUnescape(f[10])
	return o, nil
}
