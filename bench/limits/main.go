// Command limits measures how fully N worker processes use one account's
// limits, and that they never exceed them: the sandbox runs with
// --rate 2000/1m --concurrency 30 and a chosen latency, N workers share
// the Redis limiter, and the sandbox's own counters are the judge.
//
//	go run ./bench/limits                      # the full table (about 35 minutes)
//	go run ./bench/limits -duration 30s -n 1,3 -latency 100ms -kill=false -local=false
//
// Each run prints: achieved calls/min ÷ the bound min(2000, 30·60/latency),
// and the sandbox's max_calls_in_window, max_in_flight and throttled.
package main

import (
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/linkharvest/linkharvest/bench/internal/benchenv"
	"github.com/linkharvest/linkharvest/providers/sandbox"
)

type result struct {
	mode      string
	n         int
	latency   time.Duration
	perMin    float64
	bound     float64
	stats     sandbox.Stats
	recovered string
}

func main() {
	duration := flag.Duration("duration", 3*time.Minute, "measured time per run")
	warmup := flag.Duration("warmup", 15*time.Second, "time before measuring")
	ns := flag.String("n", "1,3,6", "worker process counts")
	lats := flag.String("latency", "100ms,1s", "sandbox latencies")
	kill := flag.Bool("kill", true, "also run N=3 with one worker SIGKILLed half-way")
	local := flag.Bool("local", true, "also run per-process limiting (x/time/rate at limit/N) side by side")
	acct := benchenv.AccountFlags(2000, 30, "")
	flag.Parse()

	env, err := benchenv.New("worker", "enqueue", "sandbox")
	check(err)
	defer env.Close()

	var results []result
	for _, l := range strings.Split(*lats, ",") {
		lat, err := time.ParseDuration(strings.TrimSpace(l))
		check(err)
		for _, s := range strings.Split(*ns, ",") {
			n, err := strconv.Atoi(strings.TrimSpace(s))
			check(err)
			results = append(results, runOnce(env, "shared", n, lat, *acct, *warmup, *duration, false))
			if *local {
				results = append(results, runOnce(env, "per-process", n, lat, *acct, *warmup, *duration, false))
			}
		}
		if *kill {
			results = append(results, runOnce(env, "shared+SIGKILL", 3, lat, *acct, *warmup, *duration, true))
		}
	}
	fmt.Println()
	fmt.Println("| limiter | N | latency | calls/min | bound | utilisation | max_calls_in_window | max_in_flight | throttled | recovery after SIGKILL |")
	fmt.Println("|---|---|---|---|---|---|---|---|---|---|")
	for _, r := range results {
		fmt.Printf("| %s | %d | %v | %.0f | %.0f | %.3f | %d | %d | %d | %s |\n", r.mode, r.n, r.latency, r.perMin, r.bound,
			r.perMin/r.bound, r.stats.MaxCallsInWindow, r.stats.MaxInFlight, r.stats.Throttled, r.recovered)
	}
}

// runs numbers the runs (each has its own Redis, sandbox, list and output).
var runs int

func runOnce(env *benchenv.Env, mode string, n int, lat time.Duration, acct benchenv.Account, warmup, dur time.Duration, kill bool) result {
	bound := min(float64(acct.Rate), float64(acct.InFlight)*float64(time.Minute)/float64(lat))
	fmt.Fprintf(os.Stderr, "run: %s N=%d latency=%v (bound %.0f/min)\n", mode, n, lat, bound)
	run := runs
	runs++
	sv, err := env.Services(benchenv.Want{Sandbox: acct.SandboxArgs(lat)})
	check(err)
	defer sv.Close()
	base := sv.SandboxURL

	// Enough one-page domains to keep the workers busy past the window.
	calls := int(bound*(warmup+dur).Minutes()*1.3) + 200
	list := filepath.Join(env.Dir, fmt.Sprintf("domains-%d.txt", run))
	check(benchenv.WriteDomains(list, "d", calls, 1))
	wenv := benchenv.WorkerEnv(sv.RedisURL, base, "SINK_URL="+filepath.Join(env.Dir, fmt.Sprintf("out-%d", run)),
		acct.WorkerLimits(), "WORKER_CONCURRENCY=40")
	if mode == "per-process" {
		wenv = append(wenv, "LINKHARVEST_LIMITER=local:"+strconv.Itoa(n))
	}
	_, err = env.Enqueue(wenv, "bench", list)
	check(err)
	ws, err := env.Workers(n, wenv)
	check(err)
	defer ws.Stop()
	check(benchenv.ResetStats(base))
	time.Sleep(warmup)
	t0, s0 := time.Now(), stats(base)
	r := result{mode: mode, n: n, latency: lat, bound: bound, recovered: "-"}
	if kill {
		time.Sleep(dur / 2)
		ws[0].Kill()
		killedAt := time.Now()
		prev := stats(base).Calls
		r.recovered = "not within 60s"
		for i := 1; i <= 12; i++ {
			time.Sleep(5 * time.Second)
			c := stats(base).Calls
			perMin := float64(c-prev) / 5 * 60
			prev = c
			if perMin >= 0.97*bound {
				r.recovered = fmt.Sprintf("%.0fs", time.Since(killedAt).Seconds())
				break
			}
		}
		time.Sleep(time.Until(t0.Add(dur)))
	} else {
		time.Sleep(dur)
	}
	s1 := stats(base)
	r.perMin = float64(s1.Calls-s0.Calls) / time.Since(t0).Minutes()
	r.stats = s1
	fmt.Fprintf(os.Stderr, "  %.0f calls/min = %.3f of bound; max_calls_in_window %d, max_in_flight %d, throttled %d, recovery %s\n",
		r.perMin, r.perMin/bound, s1.MaxCallsInWindow, s1.MaxInFlight, s1.Throttled, r.recovered)
	return r
}

func stats(base string) sandbox.Stats {
	s, err := benchenv.SandboxStats(base)
	check(err)
	return s
}

// check ends the run on an error (benchenv.Checker).
var check = benchenv.Checker("limits")
