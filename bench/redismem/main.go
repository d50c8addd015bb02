// Command redismem measures what a job costs in Redis by its size: the
// baseline for jobs of any size. For each size N (-n), on a fresh
// redis-server:
//
//  1. a list of N one-page domains (rows-1.mI-NNNNNNN.example) goes through
//     the real `enqueue --job J LIST` (no --wait, no worker running): its
//     wall time and peak RSS (wait4's ru_maxrss), and Redis's used_memory
//     before and used_memory_peak after (INFO memory), per domain;
//  2. for N up to -finish, -workers workers run the job to its end against
//     the unlimited zero-latency sandbox (--rate 0 --concurrency 0
//     --latency 0, PROVIDER_LIMITS=dataforseo=0:0, a local directory as
//     the sink) and are stopped; then Redis's used_memory is what the
//     finished job keeps until JOB_RETENTION (30 days by default). Asynq
//     keeps no page task once it has succeeded (no retention); the
//     finalize task stays 24 h in its completed set.
//
// With -keys (the default) it also prints where the bytes are, after the
// submission and after the finish: every key (SCAN) grouped by kind
// (lh:{job:J}:ended, asynq:{dataforseo}:t:*, ...), MEMORY USAGE … SAMPLES 0
// of up to -samples keys of each kind, and the kind's estimated total.
//
// Then one Markdown table over the sizes. Targets (stated, not asserted):
// submitting 1,000,000 domains leaves Redis under 150 MB, 10,000,000 under
// 300 MB, and a finished job keeps under 100 bytes a domain.
//
//	go run ./bench/redismem                        # 1M with its finish, 10M without: tens of minutes, ~10 GB of RAM
//	go run ./bench/redismem -n 100000              # a few minutes
//
// It is its own program rather than a mode of bench/scale: it measures
// memory, not throughput, none of scale's flags apply to it, and its 10M
// run wants a machine to itself.
package main

import (
	"bufio"
	"cmp"
	"context"
	"errors"
	"flag"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/linkharvest/linkharvest/bench/internal/benchenv"
)

func main() {
	var o opts
	sizes := flag.String("n", "1000000,10000000", "job sizes, in one-page domains")
	finish := flag.Int("finish", 1000000, "run the job to its end for sizes up to this many domains (0: never)")
	flag.IntVar(&o.workers, "workers", 2, "worker processes of the finish")
	flag.IntVar(&o.conc, "concurrency", 30, "WORKER_CONCURRENCY of each worker")
	flag.BoolVar(&o.keys, "keys", true, "print MEMORY USAGE of sampled keys by kind after the submission and after the finish")
	flag.IntVar(&o.samples, "samples", 20, "keys sampled per kind with -keys")
	flag.BoolVar(&o.random, "random", false, "domains with random names (rows-1.<6 to 16 random letters and digits>.<com|net|org|de|co.uk>): "+
		"they compress in the job's feed about as a real list does; the default sequential names compress far better")
	flag.Parse()
	o.samples = max(o.samples, 1)

	env, err := benchenv.New("worker", "enqueue", "sandbox")
	check(err)
	defer env.Close()
	fmt.Printf("## redismem (%d CPUs, load average %s)\n\n", runtime.NumCPU(), benchenv.Load())

	var rs []result
	for i, s := range strings.Split(*sizes, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(s))
		check(err)
		o.finish = *finish > 0 && n <= *finish
		rs = append(rs, measure(env, i, n, o))
	}

	fmt.Println("### Redis memory per job size")
	fmt.Println()
	fmt.Println("One-page domains (rows-1.mI-NNNNNNN.example); enqueue without --wait and no worker running during the submission; a fresh redis-server per size (no persistence).")
	fmt.Println("Bytes per domain are over the empty server's used_memory. Targets: submitting 1,000,000 under 150 MB, 10,000,000 under 300 MB; a finished job under 100 bytes a domain.")
	fmt.Println()
	fmt.Println("| domains | enqueue time | enqueue peak RSS | Redis peak during submission | per domain | Redis after submission | finish (workers) | Redis after finish | per domain | load average |")
	fmt.Println("|---|---|---|---|---|---|---|---|---|---|")
	for _, r := range rs {
		fin, after, per := "—", "—", "—"
		if r.finished {
			fin = fmt.Sprintf("%.1f s", r.finishWall.Seconds())
			after = benchenv.MB(r.usedFin)
			per = fmt.Sprintf("%.0f B", perDomain(r.usedFin, r.used0, r.n))
		}
		fmt.Printf("| %d | %.1f s (%.0f/s) | %s | %s | %.0f B | %s | %s | %s | %s | %s |\n", r.n, r.enqWall.Seconds(), float64(r.n)/r.enqWall.Seconds(),
			benchenv.MB(r.enqRSS), benchenv.MB(r.peakSub), perDomain(r.peakSub, r.used0, r.n), benchenv.MB(r.usedSub), fin, after, per, r.load)
	}
	fmt.Println()
}

type opts struct {
	finish        bool
	workers, conc int
	keys          bool
	samples       int
	random        bool
}

type result struct {
	n                int
	used0            int64 // the empty server
	enqWall          time.Duration
	enqRSS           int64
	usedSub, peakSub int64 // after the submission; the most during it
	finished         bool
	finishWall       time.Duration
	usedFin, peakFin int64 // after the finish; the most over the job
	load             string
}

// measure submits n domains as one job on a fresh Redis and, if asked,
// runs it to its end.
func measure(env *benchenv.Env, run, n int, o opts) result {
	fmt.Fprintf(os.Stderr, "redismem: %d domains (finish: %v)\n", n, o.finish)
	var want benchenv.Want
	if o.finish {
		want.Sandbox = benchenv.Unlimited.SandboxArgs(0)
	}
	sv, err := env.Services(want)
	check(err)
	defer sv.Close()
	ctx := context.Background()
	job := fmt.Sprintf("mem-%d", run)
	list := filepath.Join(env.Dir, job+".txt")
	if o.random {
		check(writeRandomDomains(list, uint64(run), n))
	} else {
		check(benchenv.WriteDomains(list, fmt.Sprintf("m%d-", run), n, 1))
	}
	out := filepath.Join(env.Dir, job+"-out")
	// Removed after each size, so that a 1M finish's objects do not stay
	// on disk through the next size.
	defer os.RemoveAll(out)
	wenv := benchenv.WorkerEnv(sv.RedisURL, sv.SandboxURL, "SINK_URL="+out,
		benchenv.Unlimited.WorkerLimits(), "WORKER_CONCURRENCY="+strconv.Itoa(o.conc))

	r := result{n: n}
	r.used0, _, err = benchenv.RedisMemory(ctx, sv.RDB)
	check(err)
	t0 := time.Now()
	p, err := env.Start("enqueue", wenv, filepath.Join(env.Bin, "enqueue"), "--job", job, list)
	check(err)
	if err := p.Wait(); err != nil {
		check(fmt.Errorf("enqueue: %w\n%s", err, p.Tail()))
	}
	r.enqWall = time.Since(t0)
	r.enqRSS = p.MaxRSS()
	r.usedSub, r.peakSub, err = benchenv.RedisMemory(ctx, sv.RDB)
	check(err)
	st, err := sv.Store.Status(ctx, job)
	check(err)
	// The domains past enqueue's --feed-after wait in the job's feed.
	if st.Domains+st.Unfed != int64(n) || st.Tasks != st.Domains {
		check(fmt.Errorf("job %s: %d domains with %d page tasks and %d in the feed, want %d in all", job, st.Domains, st.Tasks, st.Unfed, n))
	}
	srv, err := benchenv.RedisInfo(ctx, sv.RDB, "server")
	check(err)
	fmt.Printf("### %d domains\n\n", n)
	names := fmt.Sprintf("rows-1.m%d-0000000.example", run)
	if o.random {
		names = "rows-1.k3x9qz2m.com (random)"
	}
	fmt.Printf("Redis %s; domains like %s. Empty server %s. After `enqueue` (%.1f s, peak RSS %s): used_memory %s, peak %s: %.0f bytes a domain at the peak, %.0f after.\n\n",
		srv["redis_version"], names, benchenv.MB(r.used0), r.enqWall.Seconds(), benchenv.MB(r.enqRSS), benchenv.MB(r.usedSub), benchenv.MB(r.peakSub),
		perDomain(r.peakSub, r.used0, n), perDomain(r.usedSub, r.used0, n))
	if o.keys {
		where(ctx, sv.RDB, "submitted, no task run yet", n, o.samples)
	}

	if o.finish {
		ws, err := env.Workers(o.workers, wenv)
		check(err)
		t1 := time.Now()
		wctx, cancel := context.WithTimeout(ctx, 3*time.Hour)
		s, err := benchenv.WaitJob(wctx, sv.Store, job, 500*time.Millisecond, nil)
		cancel()
		check(err)
		r.finishWall = time.Since(t1)
		if s.Failed > 0 || s.Ended != int64(n) {
			check(fmt.Errorf("job %s: %d of %d pages ended, %d failed", job, s.Ended, n, s.Failed))
		}
		// Stopped as a deployment stops them: the finalize task's own
		// completion is written back before they exit.
		ws.Stop()
		r.finished = true
		r.usedFin, r.peakFin, err = benchenv.RedisMemory(ctx, sv.RDB)
		check(err)
		fmt.Printf("Finished by %d workers in %.1f s, workers stopped: used_memory %s (%.0f bytes a domain); peak over the whole job %s.\n\n",
			o.workers, r.finishWall.Seconds(), benchenv.MB(r.usedFin), perDomain(r.usedFin, r.used0, n), benchenv.MB(r.peakFin))
		if o.keys {
			where(ctx, sv.RDB, "finished, workers stopped", n, o.samples)
		}
	}
	r.load = benchenv.Load()
	return r
}

func perDomain(b, base int64, n int) float64 { return float64(b-base) / float64(n) }

// kind is a group of keys that differ only in an id.
type kind struct {
	name   string
	keys   int64
	sample []string
	bytes  int64 // MEMORY USAGE of the sampled keys
	sized  int   // sampled keys MEMORY USAGE answered for
	err    error // why a sampled key was not sized (not one that expired)
	typ    string
	elems  int64 // elements of the first sampled key
}

// where prints every key's kind, how many keys of it, and what they take.
func where(ctx context.Context, rdb *redis.Client, when string, n, samples int) {
	kinds := map[string]*kind{}
	var cursor uint64
	for {
		ks, next, err := rdb.Scan(ctx, cursor, "*", 10000).Result()
		check(err)
		for _, k := range ks {
			name := kindOf(k)
			g := kinds[name]
			if g == nil {
				g = &kind{name: name}
				kinds[name] = g
			}
			g.keys++
			if len(g.sample) < samples {
				g.sample = append(g.sample, k)
			}
		}
		if cursor = next; cursor == 0 {
			break
		}
	}
	slowOpt := *rdb.Options()
	slowOpt.ReadTimeout = 5 * time.Minute
	slow := redis.NewClient(&slowOpt)
	defer slow.Close()
	var gs []*kind
	var total float64
	for _, g := range kinds {
		for _, k := range g.sample {
			// SAMPLES 0 walks every element: a 10,000,000-member set
			// takes longer than the client's read timeout, so it gets its own.
			b, err := slow.MemoryUsage(ctx, k, 0).Result()
			switch {
			case err == nil:
				g.bytes += b
				g.sized++
			case errors.Is(err, redis.Nil): // a key may expire between SCAN and here
			default:
				g.err = err
			}
		}
		g.typ, g.elems = describe(ctx, rdb, g.sample[0])
		total += g.estimate()
		gs = append(gs, g)
	}
	slices.SortFunc(gs, func(a, b *kind) int { return cmp.Compare(b.estimate(), a.estimate()) })
	m, err := benchenv.RedisInfo(ctx, rdb, "memory")
	check(err)
	fmt.Printf("Where the bytes are (%s): INFO memory has used_memory %s = dataset %s + overhead %s (clients %s, Lua scripts %s); "+
		"MEMORY USAGE … SAMPLES 0 of up to %d keys of each kind, times the kind's keys:\n\n",
		when, m["used_memory"], m["used_memory_dataset"], m["used_memory_overhead"], m["mem_clients_normal"], m["used_memory_scripts"], samples)
	fmt.Println("| key kind | type | keys | bytes a key (sampled) | elements (first key) | total | bytes a domain |")
	fmt.Println("|---|---|---|---|---|---|---|")
	for _, g := range gs {
		fmt.Printf("| `%s` | %s | %d | %.0f | %d | %.2f MB | %.1f |\n", g.name, g.typ, g.keys, g.estimate()/float64(g.keys), g.elems,
			g.estimate()/1e6, g.estimate()/float64(n))
	}
	fmt.Printf("| all keys | | | | | %.2f MB | %.1f |\n\n", total/1e6, total/float64(n))
	for _, g := range gs {
		if g.err != nil {
			fmt.Printf("Not sized (%d of %d sampled keys of `%s`; its total counts only those sized): %v\n\n",
				len(g.sample)-g.sized, len(g.sample), g.name, g.err)
		}
	}
	// What one entry of a job's per-unit hash (ended, memo) holds.
	for _, g := range gs {
		if g.typ == "hash" && g.elems > 100 && strings.HasPrefix(g.name, "lh:") {
			kv, err := rdb.HRandFieldWithValues(ctx, g.sample[0], 1).Result()
			if err == nil && len(kv) == 1 {
				fmt.Printf("An entry of `%s` (%d + %d bytes): `%s` → `%s`\n\n", g.name, len(kv[0].Key), len(kv[0].Value), kv[0].Key, kv[0].Value)
			}
		}
	}
}

// estimate is the kind's bytes: its sampled keys' mean times its keys.
func (g *kind) estimate() float64 {
	if g.sized == 0 {
		return 0
	}
	return float64(g.bytes) / float64(g.sized) * float64(g.keys)
}

// kindOf names a key's kind: a hash-tagged key by its tag and the next
// part (lh:{job:J}:ended, lh:{job:J}:batch:*, asynq:{dataforseo}:t:*), an
// id in braces after two parts by those parts (asynq:servers:*), any
// other by its first two parts (lh:sinkdown:*).
func kindOf(k string) string {
	open, end := strings.IndexByte(k, '{'), strings.IndexByte(k, '}')
	if open >= 0 && end > open {
		if strings.Count(k[:open], ":") >= 2 {
			return k[:open] + "*"
		}
		return firstParts(k, end+2, 1)
	}
	return firstParts(k, 0, 2)
}

// firstParts keeps k up to its first parts ':'-separated parts from
// offset from, and marks a cut-off rest with "*".
func firstParts(k string, from, parts int) string {
	if from >= len(k) {
		return k
	}
	i := from
	for range parts {
		j := strings.IndexByte(k[i:], ':')
		if j < 0 {
			return k
		}
		i += j + 1
	}
	return k[:i] + "*"
}

// describe is a key's type and element count (bytes for a string).
func describe(ctx context.Context, rdb *redis.Client, k string) (string, int64) {
	typ, err := rdb.Type(ctx, k).Result()
	if err != nil {
		return "?", 0
	}
	var c *redis.IntCmd
	switch typ {
	case "hash":
		c = rdb.HLen(ctx, k)
	case "set":
		c = rdb.SCard(ctx, k)
	case "zset":
		c = rdb.ZCard(ctx, k)
	case "list":
		c = rdb.LLen(ctx, k)
	case "string":
		c = rdb.StrLen(ctx, k)
	default:
		return typ, 0
	}
	return typ, c.Val()
}

// check ends the run on an error (benchenv.Checker).
var check = benchenv.Checker("redismem")

// writeRandomDomains writes n distinct one-page domains with random
// labels: about as much entropy a name as a real list has.
func writeRandomDomains(path string, seed uint64, n int) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	w := bufio.NewWriterSize(f, 1<<20)
	rng := rand.New(rand.NewPCG(seed, 42))
	tlds := []string{"com", "net", "org", "de", "co.uk"}
	const alphabet = "abcdefghijklmnopqrstuvwxyz0123456789"
	label := make([]byte, 16)
	for i := 0; i < n; i++ {
		l := 6 + rng.IntN(11)
		for j := range l {
			label[j] = alphabet[rng.IntN(len(alphabet))]
		}
		// The index keeps names distinct, as a deduplicated list is.
		fmt.Fprintf(w, "rows-1.%s%x.%s\n", label[:l], i, tlds[rng.IntN(len(tlds))])
	}
	if err := w.Flush(); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}
