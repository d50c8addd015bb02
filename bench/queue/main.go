// Command queue measures what linkharvest's task handling costs on top of
// Asynq: the tasks/s of the real page handler (tasks.Worker, with a no-op
// vendor: an in-process Provider that returns an empty page at once, and a
// no-op sink) against Asynq's own no-op handler, on the same Redis
// (a redis-server child), at the same concurrency, in the same run.
//
// Each round enqueues -tasks tasks first (the real ones through
// tasks.Submitter, as enqueue does; the no-op ones with the same payload
// and options through asynq.Client), then starts an asynq.Server with the
// worker's settings and times it from start to the last task handled.
// Modes alternate over rounds; the median round is shown.
//
//	go run ./bench/queue                          # about a minute
//	go run ./bench/queue -tasks 5000 -rounds 1
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"runtime"
	"runtime/pprof"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"

	"github.com/linkharvest/linkharvest/bench/internal/benchenv"
	"github.com/linkharvest/linkharvest/internal/telemetry"
	"github.com/linkharvest/linkharvest/providers"
	"github.com/linkharvest/linkharvest/tasks"
)

func main() {
	n := flag.Int("tasks", 20000, "tasks per round")
	rounds := flag.Int("rounds", 3, "rounds per mode (median shown)")
	concs := flag.String("concurrency", "40", "asynq server concurrency (the worker's default is 40); a list runs each")
	cpuprofile := flag.String("cpuprofile", "", "write a CPU profile of the real handler's rounds to this file")
	flag.Parse()
	if *cpuprofile != "" {
		f, err := os.Create(*cpuprofile)
		check(err)
		defer f.Close()
		profileTo = f
	}

	env, err := benchenv.New()
	check(err)
	defer env.Close()
	redisProc, redisURL, err := env.Redis()
	check(err)
	// The real worker runs with telemetry set up (Prometheus metrics, no
	// trace exporter): so do the handlers here.
	os.Setenv("OTEL_TRACES_EXPORTER", "none")
	shutdown, err := telemetry.Setup(context.Background(), "bench-queue")
	check(err)
	defer shutdown(context.Background())

	fmt.Printf("## queue (GOMAXPROCS %d, %d tasks per round, load average %s)\n\n", runtime.GOMAXPROCS(0), *n, benchenv.Load())
	fmt.Println("| concurrency | handler | tasks/s (median) | rounds | process CPU µs/task | redis CPU µs/task | ratio to asynq no-op |")
	fmt.Println("|---|---|---|---|---|---|---|")
	for _, cs := range strings.Split(*concs, ",") {
		conc, err := strconv.Atoi(strings.TrimSpace(cs))
		check(err)
		var noop, real []result
		for r := 0; r < *rounds; r++ {
			noop = append(noop, runRound(redisURL, redisProc.Pid(), "noop", *n, conc))
			real = append(real, runRound(redisURL, redisProc.Pid(), "real", *n, conc))
		}
		a, b := med(noop), med(real)
		fmt.Printf("| %d | asynq no-op handler | %.0f | %s | %.0f | %.0f | 1.00 |\n", conc, a.rate, rates(noop), a.cpu, a.redis)
		fmt.Printf("| %d | linkharvest page handler (no-op vendor, no-op sink) | %.0f | %s | %.0f | %.0f | %.2f |\n", conc, b.rate, rates(real), b.cpu, b.redis, b.rate/a.rate)
	}
	fmt.Printf("\nload average after: %s\n", benchenv.Load())
}

type result struct{ rate, cpu, redis float64 }

func med(rs []result) result {
	s := append([]result(nil), rs...)
	sort.Slice(s, func(i, j int) bool { return s[i].rate < s[j].rate })
	return s[len(s)/2]
}

func rates(rs []result) string {
	var p []string
	for _, r := range rs {
		p = append(p, fmt.Sprintf("%.0f", r.rate))
	}
	return strings.Join(p, ", ")
}

// noopProvider is a vendor that answers every call with an empty page.
type noopProvider struct{}

func (noopProvider) Paging(string) (providers.Paging, error) {
	return providers.Paging{Kind: providers.PagingOffset, PageSize: 1000, MaxOffset: 20000, CursorPastMax: true}, nil
}

func (noopProvider) Fetch(context.Context, providers.Request) (*providers.Page, error) {
	return &providers.Page{Total: 0}, nil
}

type noopSink struct{}

func (noopSink) Put(context.Context, string, []byte, string) error { return nil }
func (noopSink) Delete(context.Context, string) error              { return nil }
func (noopSink) PutStream(_ context.Context, _ string, write func(io.Writer) error, _ string) error {
	return write(io.Discard)
}

var jobSeq atomic.Int64

// profileTo, when set, receives a CPU profile of the real handler's rounds
// (the first one's; a profile holds one run).
var profileTo *os.File

func runRound(redisURL string, redisPid int, mode string, n, conc int) result {
	opt, err := redis.ParseURL(redisURL)
	check(err)
	opt.PoolSize = max(opt.PoolSize, 64) // as runner.OpenRedis
	rdb := redis.NewClient(opt)
	defer rdb.Close()
	ctx := context.Background()
	check(rdb.FlushAll(ctx).Err())
	client := asynq.NewClientFromRedisClient(rdb)
	defer client.Close()
	job := fmt.Sprintf("bench-%d", jobSeq.Add(1))
	domain := func(i int) string { return fmt.Sprintf("d%07d.example.com", i) }

	var handled atomic.Int64
	all := make(chan struct{})
	count := func() {
		if handled.Add(1) == int64(n) {
			close(all)
		}
	}
	mux := asynq.NewServeMux()
	switch mode {
	case "noop":
		// The same payloads and options as page tasks, another type.
		g := make(chan struct{}, 16)
		var wg sync.WaitGroup
		for i := 0; i < n; i++ {
			p := tasks.PagePayload{Job: job, Provider: "dataforseo", Endpoint: "backlinks", Domain: domain(i), Page: 1}
			b, _ := json.Marshal(p)
			g <- struct{}{}
			wg.Add(1)
			go func() {
				defer func() { <-g; wg.Done() }()
				_, err := client.Enqueue(asynq.NewTask("bench:noop", b), asynq.TaskID(p.TaskID()), asynq.Queue(p.Provider),
					asynq.MaxRetry(tasks.MaxRetry), asynq.Timeout(tasks.TaskTimeout))
				check(err)
			}()
		}
		wg.Wait()
		mux.HandleFunc("bench:noop", func(context.Context, *asynq.Task) error { count(); return nil })
	case "real":
		store := tasks.NewStore(rdb)
		sub := &tasks.Submitter{Store: store, Client: client}
		spec := tasks.Spec{Providers: []string{"dataforseo"}, Endpoints: map[string][]string{"dataforseo": {"backlinks"}}}
		b, err := sub.Begin(ctx, job, spec, nil)
		check(err)
		for i := 0; i < n; i++ {
			check(b.Add(ctx, domain(i)))
		}
		st, err := b.Close(ctx)
		check(err)
		if st.Tasks != n {
			check(fmt.Errorf("submitted %d tasks, want %d", st.Tasks, n))
		}
		w := &tasks.Worker{Store: store, Client: client, Pauser: asynq.NewInspectorFromRedisClient(rdb), Sink: noopSink{},
			Providers: map[string]tasks.Provider{"dataforseo": noopProvider{}}, Throttles: map[string]tasks.Throttle{},
			Log: slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))}
		w.Register(mux)
		mux.Use(func(h asynq.Handler) asynq.Handler {
			return asynq.HandlerFunc(func(ctx context.Context, t *asynq.Task) error {
				err := h.ProcessTask(ctx, t)
				if err == nil && t.Type() == tasks.TypePage {
					count()
				}
				return err
			})
		})
	}
	// The worker's server settings (internal/runner).
	srv := asynq.NewServerFromRedisClient(rdb, asynq.Config{
		Concurrency:              conc,
		Queues:                   map[string]int{tasks.ControlQueue: 5, "dataforseo": 3},
		IsFailure:                tasks.IsFailure,
		TaskCheckInterval:        100 * time.Millisecond,
		DelayedTaskCheckInterval: time.Second,
		LogLevel:                 asynq.WarnLevel,
	})
	runtime.GC()
	c0, r0 := benchenv.SelfCPU(), must(benchenv.CPU(redisPid))
	if mode == "real" && profileTo != nil {
		check(pprof.StartCPUProfile(profileTo))
		defer func() { pprof.StopCPUProfile(); profileTo = nil }()
	}
	t0 := time.Now()
	check(srv.Start(mux))
	select {
	case <-all:
	case <-time.After(10 * time.Minute):
		check(fmt.Errorf("%s: only %d of %d tasks handled in 10 minutes", mode, handled.Load(), n))
	}
	el := time.Since(t0)
	c1, r1 := benchenv.SelfCPU(), must(benchenv.CPU(redisPid))
	srv.Shutdown()
	if mode == "real" {
		// The job must have completed: every unit ended, the finalizer queued.
		s, err := tasks.NewStore(rdb).Status(ctx, job)
		check(err)
		if s.Ended != int64(n) {
			check(fmt.Errorf("job ended %d of %d pages", s.Ended, n))
		}
	}
	res := result{rate: float64(n) / el.Seconds(), cpu: float64((c1 - c0).Microseconds()) / float64(n), redis: float64((r1 - r0).Microseconds()) / float64(n)}
	fmt.Fprintf(os.Stderr, "queue: %s concurrency %d: %d tasks in %.2fs = %.0f/s\n", mode, conc, n, el.Seconds(), res.rate)
	return res
}

func must[T any](v T, err error) T {
	check(err)
	return v
}

// check ends the run on an error (benchenv.Checker).
var check = benchenv.Checker("queue")
