package tasks

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/linkharvest/linkharvest/internal/testenv"
	"github.com/linkharvest/linkharvest/sink"
)

// BenchmarkLedger measures what a finished job's ledger keeps in Redis, a
// domain, for LINKHARVEST_BENCH_DOMAINS one-page domains (default
// 200,000), against the baseline of the same outcomes as JSON in one hash
// (the layout before the bucketed ledger), each on a fresh redis-server:
//
//	go test -run '^$' -bench Ledger -benchtime 1x ./tasks/
//	LINKHARVEST_BENCH_DOMAINS=1000000 go test -run '^$' -bench Ledger -benchtime 1x -timeout 30m ./tasks/
//
// The ledger's units are registered and ended through the store's own
// scripts, as pages end; the figure is used_memory after, less before.
func BenchmarkLedger(b *testing.B) {
	n := benchDomains(b, 200_000)
	ctx := context.Background()
	const job = "mem-0"
	dt := time.Now().UTC().Format("2006-01-02")
	unitOf := func(i int) (string, string) {
		d := fmt.Sprintf("rows-1.m0-%07d.example", i) // as bench/redismem names them
		return "dataforseo|backlinks|" + d + "|1", d
	}
	outcomeOf := func(i int, d string) Outcome {
		return Outcome{Status: "ok", Key: sink.PageKey("dataforseo", "backlinks", dt, job, d, 1), Records: 1, Bytes: 680, Total: 1, Spend: 0.02003, Unit: "usd"}
	}
	var perDomain [2]float64
	for m, mode := range []string{"ledger", "one JSON hash"} {
		b.Run(mode, func(b *testing.B) {
			for b.Loop() {
				rds := testenv.Redis(b)
				s := NewStore(rds.Client(b))
				if _, err := s.create(ctx, job, Spec{Providers: []string{"dataforseo"}, Endpoints: map[string][]string{"dataforseo": {"backlinks"}}}, time.Now()); err != nil {
					b.Fatal(err)
				}
				before := usedMemory(b, s)
				const batch = 1000
				for i := 0; i < n; i += batch {
					var units []string
					var outs []Outcome
					for j := i; j < min(i+batch, n); j++ {
						u, d := unitOf(j)
						units = append(units, u)
						outs = append(outs, outcomeOf(j, d))
					}
					if mode == "ledger" {
						if _, err := s.register(ctx, job, 0, 1, units); err != nil {
							b.Fatal(err)
						}
						g, gctx := errgroup.WithContext(ctx)
						g.SetLimit(32)
						for j := range units {
							g.Go(func() error { _, err := s.end(gctx, job, units[j], outs[j], true, nil); return err })
						}
						if err := g.Wait(); err != nil {
							b.Fatal(err)
						}
						continue
					}
					vals := make([]any, 0, 2*len(units))
					for j := range units {
						v, _ := json.Marshal(outs[j])
						vals = append(vals, units[j], v)
					}
					if err := s.rdb.HSet(ctx, keysFor(job).prefix+"ended", vals...).Err(); err != nil {
						b.Fatal(err)
					}
				}
				perDomain[m] = float64(usedMemory(b, s)-before) / float64(n)
				b.ReportMetric(perDomain[m], "B/domain")
			}
		})
	}
	if perDomain[1] > 0 {
		fmt.Printf("ledger of %d one-page domains: %.1f B a domain, one JSON hash %.1f B: %.2f of the baseline\n",
			n, perDomain[0], perDomain[1], perDomain[0]/perDomain[1])
	}
}

func usedMemory(b *testing.B, s *Store) int64 {
	info, err := s.rdb.Info(context.Background(), "memory").Result()
	if err != nil {
		b.Fatal(err)
	}
	for _, l := range strings.Split(info, "\r\n") {
		if v, ok := strings.CutPrefix(l, "used_memory:"); ok {
			n, _ := strconv.ParseInt(v, 10, 64)
			return n
		}
	}
	b.Fatal("INFO memory has no used_memory")
	return 0
}

// benchDomains is LINKHARVEST_BENCH_DOMAINS, or def.
func benchDomains(b *testing.B, def int) int {
	v := os.Getenv("LINKHARVEST_BENCH_DOMAINS")
	if v == "" {
		return def
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 1 {
		b.Fatalf("LINKHARVEST_BENCH_DOMAINS=%q: want a number of domains ≥ 1", v)
	}
	return n
}
