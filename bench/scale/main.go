// Command scale measures how throughput grows with worker processes, and
// how close a rate-limited job comes to the account's limit:
//
//  1. 1, 2 and 4 worker processes on the unlimited, zero-latency sandbox
//     (--rate 0 --concurrency 0) with a MinIO sink, each run over the same
//     -pages one-page domains of 1000 rows: pages/s and rows/s overall,
//     per process, and per CPU-second of the workers.
//
//  2. The same with a vendor's latency (-latency, 1 s by default, like
//     the real APIs) and -latency-rows rows per page: there a worker's
//     throughput is its concurrency ÷ latency, and should grow with the
//     processes while the CPU is not the limit.
//
//  3. A -domains one-page-each job under DataForSEO's limit (sandbox
//     --rate 2000/1m --concurrency 30, workers with
//     PROVIDER_LIMITS=dataforseo=2000/1m:30): the time from the start of
//     enqueue to the job's end against the ideal calls ÷ rate (5 minutes
//     for 10,000), with the sandbox's own counters as the judge. All but
//     its first -feed-after domains (1,000) are fed by the workers as the
//     queue drains (FEED_WINDOW), as a large job's are.
//
//     go run ./bench/scale                                  # about 8 minutes
//     go run ./bench/scale -domains 2000 -n 1,2 -pages 300  # about 2 minutes
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"time"

	"github.com/linkharvest/linkharvest/bench/internal/benchenv"
	"github.com/linkharvest/linkharvest/tasks"
)

func main() {
	ns := flag.String("n", "1,2,4", "worker process counts for the unlimited runs")
	pages := flag.Int("pages", 600, "1000-row pages per unlimited run")
	conc := flag.Int("concurrency", 30, "WORKER_CONCURRENCY of each worker")
	domains := flag.Int("domains", 10000, "one-page domains of the limited job (0 skips it)")
	limWorkers := flag.Int("limited-workers", 2, "worker processes of the limited job")
	feedAfter := flag.Int("feed-after", 1000, "enqueue --feed-after of the limited job: the rest of its domains are fed by the workers")
	acct := benchenv.AccountFlags(2000, 30, " of the limited job")
	latency := flag.Duration("latency", time.Second, "sandbox latency of the latency runs")
	latPages := flag.Int("latency-pages", 1200, "pages per latency run (0 skips them)")
	latRows := flag.Int("latency-rows", 100, "rows per page of the latency runs")
	flag.Parse()

	env, err := benchenv.New("worker", "enqueue", "sandbox")
	check(err)
	defer env.Close()
	fmt.Printf("## scale (%d CPUs, load average %s)\n\n", runtime.NumCPU(), benchenv.Load())

	if *pages > 0 && *ns != "" {
		scaling(env, *ns, *pages, 1000, 0, *conc)
	}
	if *latPages > 0 && *ns != "" {
		scaling(env, *ns, *latPages, *latRows, *latency, *conc)
	}
	if *domains > 0 {
		limited(env, *domains, *limWorkers, *acct, *conc, *feedAfter)
	}
}

// scaling runs 1, 2, 4 (ns) workers over the same pages on an unlimited
// sandbox with the given latency, and prints one table.
func scaling(env *benchenv.Env, ns string, pages, rows int, latency time.Duration, conc int) {
	// The deferred kills run when this function returns: the sandbox and
	// MinIO of one table stop before the next table starts its own.
	s3, err := env.MinIO()
	check(err)
	defer s3.Proc.Kill()
	sb, base, err := env.Sandbox(benchenv.Unlimited.SandboxArgs(latency)...)
	check(err)
	defer sb.Kill()
	fmt.Printf("### Unlimited sandbox with latency %s, MinIO sink, %d pages of %d rows per run, WORKER_CONCURRENCY=%d\n\n", latency, pages, rows, conc)
	fmt.Println("| workers | pages/s | rows/s | rows/s per process | speed-up over 1 | workers' CPU (cores busy) | rows per worker CPU-second | peak RSS per worker | load average |")
	fmt.Println("|---|---|---|---|---|---|---|---|---|")
	var one float64
	for _, s := range strings.Split(ns, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(s))
		check(err)
		r := unlimited(env, s3, base, runs, n, pages, rows, conc)
		runs++
		if one == 0 {
			one = r.rowsPerSec / float64(n) // per-process rate of the first run
		}
		fmt.Printf("| %d | %.1f | %.0f | %.0f | %.2f | %.1f s (%.2f) | %.0f | %s | %s |\n", n, r.pagesPerSec, r.rowsPerSec, r.rowsPerSec/float64(n),
			r.rowsPerSec/one, r.cpu.Seconds(), r.cpu.Seconds()/r.wall.Seconds(), r.rowsPerSec*r.wall.Seconds()/r.cpu.Seconds(), benchenv.MB(r.hwm), benchenv.Load())
	}
	if latency > 0 {
		fmt.Printf("\nWhen the vendor's latency is the limit, a worker's ceiling is WORKER_CONCURRENCY ÷ latency = %.1f pages/s.\n",
			float64(conc)/latency.Seconds())
	}
	fmt.Println()
}

// runs numbers the unlimited runs (each has its own job and domains).
var runs int

type unlimitedResult struct {
	pagesPerSec, rowsPerSec float64
	wall, cpu               time.Duration
	hwm                     int64
}

// unlimited runs n workers over pages one-page domains on a fresh Redis.
func unlimited(env *benchenv.Env, s3 *benchenv.S3, base string, run, n, pages, rows, conc int) unlimitedResult {
	fmt.Fprintf(os.Stderr, "scale: %d worker(s), %d pages\n", n, pages)
	sv, err := env.Services(benchenv.Want{})
	check(err)
	defer sv.Close()
	job := fmt.Sprintf("scale-%d", run)
	list := filepath.Join(env.Dir, job+".txt")
	check(benchenv.WriteDomains(list, fmt.Sprintf("s%d-", run), pages, rows))
	wenv := benchenv.WorkerEnv(sv.RedisURL, base, append(s3.Env(), benchenv.Unlimited.WorkerLimits(), "WORKER_CONCURRENCY="+strconv.Itoa(conc))...)
	_, err = env.Enqueue(wenv, job, list)
	check(err)
	ws, err := env.Workers(n, wenv)
	check(err)
	defer ws.Stop()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Minute)
	defer cancel()
	warm := int64(max(pages/20, 5))
	s0, err := benchenv.WaitJob(ctx, sv.Store, job, 20*time.Millisecond, func(s *tasks.Status) bool { return s.Ended >= warm })
	check(err)
	t0 := time.Now()
	cpu0, err := ws.CPU()
	check(err)
	s1, err := benchenv.WaitJob(ctx, sv.Store, job, 20*time.Millisecond, func(s *tasks.Status) bool { return s.Open == 0 })
	check(err)
	wall := time.Since(t0)
	cpu1, err := ws.CPU()
	check(err)
	cpu := cpu1 - cpu0
	if s1.Failed > 0 {
		check(fmt.Errorf("%d pages failed", s1.Failed))
	}
	var hwm int64
	for _, w := range ws {
		if _, h, err := benchenv.Mem(w.Pid()); err == nil {
			hwm = max(hwm, h)
		}
	}
	return unlimitedResult{
		pagesPerSec: float64(s1.Ended-s0.Ended) / wall.Seconds(),
		rowsPerSec:  float64(s1.Records-s0.Records) / wall.Seconds(),
		wall:        wall, cpu: cpu, hwm: hwm,
	}
}

// limited runs a one-page-each job under the account's limits, workers
// started first, and times it from the start of enqueue to the job's end.
func limited(env *benchenv.Env, domains, nw int, acct benchenv.Account, conc int, feedAfter int) {
	ideal := time.Duration(float64(domains) / float64(acct.Rate) * float64(time.Minute))
	fmt.Fprintf(os.Stderr, "scale: limited job of %d domains, %d workers (ideal %s)\n", domains, nw, ideal)
	sv, err := env.Services(benchenv.Want{Sandbox: acct.SandboxArgs(0)})
	check(err)
	defer sv.Close()
	base := sv.SandboxURL
	list := filepath.Join(env.Dir, "limited.txt")
	check(benchenv.WriteDomains(list, "l", domains, 10))
	wenv := benchenv.WorkerEnv(sv.RedisURL, base, "SINK_URL="+filepath.Join(env.Dir, "out"),
		acct.WorkerLimits(), "WORKER_CONCURRENCY="+strconv.Itoa(conc))
	ws, err := env.Workers(nw, wenv)
	check(err)
	defer ws.Stop()
	check(ws.WaitUp(context.Background(), sv.RDB))
	t0 := time.Now()
	_, err = env.Enqueue(wenv, "limited", list, "--feed-after", strconv.Itoa(feedAfter))
	check(err)
	enq := time.Since(t0)
	ctx, cancel := context.WithTimeout(context.Background(), 4*ideal+5*time.Minute)
	defer cancel()
	s, err := benchenv.WaitJob(ctx, sv.Store, "limited", 50*time.Millisecond, nil)
	check(err)
	total := time.Since(t0)
	st, err := benchenv.SandboxStats(base)
	check(err)
	calls, throttled, maxIn, maxWin := st.Calls, st.Throttled, st.MaxInFlight, st.MaxCallsInWindow
	fmt.Printf("### Rate-limited job: %d one-page domains, sandbox --rate %d/1m --concurrency %d, %d workers with PROVIDER_LIMITS=dataforseo=%d/1m:%d\n\n",
		domains, acct.Rate, acct.InFlight, nw, acct.Rate, acct.InFlight)
	fmt.Println("| measure | value |")
	fmt.Println("|---|---|")
	fmt.Printf("| ideal (calls ÷ rate) | %.1f s |\n", ideal.Seconds())
	fmt.Printf("| job time (enqueue start → job done) | %.1f s (enqueue itself %.1f s) |\n", total.Seconds(), enq.Seconds())
	fmt.Printf("| ratio to ideal | %.3f |\n", total.Seconds()/ideal.Seconds())
	fmt.Printf("| calls/min achieved | %.0f |\n", float64(calls)/total.Minutes())
	fmt.Printf("| sandbox calls / throttled | %d / %d |\n", calls, throttled)
	fmt.Printf("| sandbox max_calls_in_window (limit %d) / max_in_flight (limit %d) | %d / %d |\n", acct.Rate, acct.InFlight, maxWin, maxIn)
	fmt.Printf("| pages ended / failed | %d / %d |\n", s.Ended, s.Failed)
	fmt.Printf("| load average after | %s |\n\n", benchenv.Load())
}

// check ends the run on an error (benchenv.Checker).
var check = benchenv.Checker("scale")
