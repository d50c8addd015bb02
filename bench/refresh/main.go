// Command refresh measures what a refresh saves: for a sandbox world in
// which a fraction of the domains change every 30 days (churn 1 %, 10 %,
// 50 %), a full harvest on day 1, then 30 days later a full harvest and a
// refresh of the day-1 job, on the same sandbox, workers and Redis; it
// prints the calls and the cost of each (the sandbox's own counters) and
// their ratio, side by side.
//
//	go run ./bench/refresh                  # about 2 minutes
//	go run ./bench/refresh -domains 5000 -churn 0.01,0.1,0.5,1
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/linkharvest/linkharvest/bench/internal/benchenv"
	"github.com/linkharvest/linkharvest/tasks"
)

const (
	day1 = "2026-09-01"
	day2 = "2026-10-01" // 30 days on: one churn window
)

func main() {
	domains := flag.Int("domains", 2000, "domains in the list (row counts as the sandbox deals them: 0 to 2499)")
	churns := flag.String("churn", "0.01,0.1,0.5", "churn fractions to measure, comma-separated")
	workers := flag.Int("workers", 2, "worker processes")
	flag.Parse()
	env, err := benchenv.New("worker", "enqueue", "sandbox")
	check(err)
	defer env.Close()
	sv, err := env.Services(benchenv.Want{})
	check(err)
	defer sv.Close()

	list := filepath.Join(env.Dir, "domains.txt")
	var b strings.Builder
	for i := range *domains {
		fmt.Fprintf(&b, "refresh-bench-%06d.example\n", i)
	}
	check(os.WriteFile(list, []byte(b.String()), 0o644))

	type row struct {
		churn                   float64
		fullCalls, refCalls     int64
		fullCost, refCost       float64
		unchanged, changed, all int64
	}
	var rows []row
	for _, f := range strings.Split(*churns, ",") {
		churn, err := strconv.ParseFloat(strings.TrimSpace(f), 64)
		check(err)
		tag := strings.ReplaceAll(strconv.FormatFloat(churn, 'f', -1, 64), ".", "_")
		run := func(today, job string, args ...string) (int64, float64, *tasks.Status) {
			sb, base, err := env.Sandbox(append(benchenv.Unlimited.SandboxArgs(0),
				"--seed", "7", "--churn", strconv.FormatFloat(churn, 'f', -1, 64), "--today", today)...)
			check(err)
			defer sb.Kill()
			wenv := benchenv.WorkerEnv(sv.RedisURL, base, "SINK_URL="+filepath.Join(env.Dir, "out"), benchenv.Unlimited.WorkerLimits(), "WORKER_CONCURRENCY=20")
			ws, err := env.Workers(*workers, wenv)
			check(err)
			defer ws.Stop()
			_, err = env.Enqueue(wenv, job, list, args...)
			check(err)
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Minute)
			defer cancel()
			s, err := benchenv.WaitJob(ctx, sv.Store, job, 50*time.Millisecond, nil)
			check(err)
			if s.Failed > 0 {
				check(fmt.Errorf("job %s: %d pages failed", job, s.Failed))
			}
			st, err := benchenv.SandboxStats(base)
			check(err)
			return st.Calls, st.Cost, s
		}
		_, _, _ = run(day1, "day1-"+tag)
		fc, fcost, _ := run(day2, "day2-"+tag)
		rc, rcost, s := run(day2, "refresh-"+tag, "--refresh", "day1-"+tag, "--since", day1)
		rows = append(rows, row{churn, fc, rc, fcost, rcost, s.Unchanged, s.Changed, s.Unchanged + s.Changed + s.Full})
		fmt.Fprintf(os.Stderr, "refresh bench: churn %v: full %d calls %.2f USD, refresh %d calls %.2f USD\n", churn, fc, fcost, rc, rcost)
	}
	fmt.Printf("### Refresh against a full harvest: %d domains, the sandbox's world 30 days after the base job, %d workers\n\n", *domains, *workers)
	fmt.Println("| churn (per 30 days) | domains changed | full: calls | refresh: calls | calls ratio | full: USD | refresh: USD | cost ratio |")
	fmt.Println("|---|---|---|---|---|---|---|---|")
	for _, r := range rows {
		fmt.Printf("| %.0f %% | %d of %d | %d | %d | %.3f | %.2f | %.2f | %.3f |\n", 100*r.churn, r.changed, r.all, r.fullCalls, r.refCalls,
			float64(r.refCalls)/float64(r.fullCalls), r.fullCost, r.refCost, r.refCost/r.fullCost)
	}
	fmt.Printf("\nload average %s\n", benchenv.Load())
}

// check ends the run on an error (benchenv.Checker).
var check = benchenv.Checker("refresh bench")
