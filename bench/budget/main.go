// Command budget measures what the budget costs on the hot path: the
// calls/s of rate-limited workers on jobs without a budget and with one
// (a reservation before each call and its settlement after, two Redis
// scripts), alternated in the same run on the same Redis, sandbox and
// workers, and prints the ratio. The budget is large enough never to stop
// the job: only its bookkeeping is measured.
//
//	go run ./bench/budget                     # about 2 minutes
//	go run ./bench/budget -rate 0 -rounds 2   # unlimited sandbox: the bookkeeping's raw cost
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"time"

	"github.com/linkharvest/linkharvest/bench/internal/benchenv"
)

func main() {
	domains := flag.Int("domains", 1500, "one-page domains per job")
	acct := benchenv.AccountFlags(6000, 30, "")
	workers := flag.Int("workers", 2, "worker processes")
	conc := flag.Int("concurrency", 20, "WORKER_CONCURRENCY")
	rounds := flag.Int("rounds", 3, "jobs of each kind, alternated")
	flag.Parse()
	env, err := benchenv.New("worker", "enqueue", "sandbox")
	check(err)
	defer env.Close()

	if acct.Rate == 0 { // -rate 0 measures the bookkeeping's raw cost: nothing limits
		*acct = benchenv.Unlimited
	}
	sv, err := env.Services(benchenv.Want{Sandbox: acct.SandboxArgs(0)})
	check(err)
	defer sv.Close()
	wenv := benchenv.WorkerEnv(sv.RedisURL, sv.SandboxURL, "SINK_URL="+filepath.Join(env.Dir, "out"), acct.WorkerLimits(), "WORKER_CONCURRENCY="+strconv.Itoa(*conc))
	ws, err := env.Workers(*workers, wenv)
	check(err)
	defer ws.Stop()
	ctx := context.Background()
	check(ws.WaitUp(ctx, sv.RDB))
	run := func(i int, budget bool) float64 {
		job := fmt.Sprintf("plain-%d", i)
		var args []string
		if budget {
			job = fmt.Sprintf("budget-%d", i)
			args = []string{"--budget", "1000000"}
		}
		list := filepath.Join(env.Dir, job+".txt")
		check(benchenv.WriteDomains(list, job, *domains, 10))
		t0 := time.Now()
		_, err := env.Enqueue(wenv, job, list, args...)
		check(err)
		wctx, cancel := context.WithTimeout(ctx, 10*time.Minute)
		defer cancel()
		s, err := benchenv.WaitJob(wctx, sv.Store, job, 20*time.Millisecond, nil)
		check(err)
		if s.Failed > 0 || (budget && s.Charged["dataforseo"] == 0) {
			check(fmt.Errorf("job %s: %d failed, charged %v", job, s.Failed, s.Charged))
		}
		cps := float64(s.Ended) / time.Since(t0).Seconds()
		fmt.Fprintf(os.Stderr, "budget bench: %s %.1f calls/s\n", job, cps)
		return cps
	}
	var plain, held []float64
	for i := range *rounds {
		plain = append(plain, run(i, false))
		held = append(held, run(i, true))
	}
	mp, mh := mean(plain), mean(held)
	fmt.Printf("### Budget on the hot path: %d jobs of each kind alternated, %d one-page domains each, %d workers × %d, sandbox rate %d/1m (0: unlimited)\n\n",
		*rounds, *domains, *workers, *conc, acct.Rate)
	fmt.Println("| jobs | calls/s (mean) | runs |")
	fmt.Println("|---|---|---|")
	fmt.Printf("| without a budget | %.1f | %v |\n", mp, rounded(plain))
	fmt.Printf("| with a budget | %.1f | %v |\n", mh, rounded(held))
	fmt.Printf("\nratio with/without: **%.3f** (target ≥ 0.95); load average %s\n", mh/mp, benchenv.Load())
}

func mean(v []float64) float64 {
	s := 0.0
	for _, x := range v {
		s += x
	}
	return s / float64(len(v))
}

func rounded(v []float64) []string {
	out := make([]string, len(v))
	for i, x := range v {
		out[i] = strconv.FormatFloat(x, 'f', 1, 64)
	}
	return out
}

// check ends the run on an error (benchenv.Checker).
var check = benchenv.Checker("budget bench")
