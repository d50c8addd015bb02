// Command enqueue measures the real `enqueue` binary on a generated list of
// a million domains (normalised, deduplicated, enqueued on a redis-server
// child): wall time, domains/s, its peak RSS (wait4 rusage maxrss) and CPU;
// against, in the same run and on the same Redis, a bare loop of asynq
// Client.Enqueue over the same count with the same payloads and options,
// one at a time and with the parallelism enqueue uses. `enqueue --dry-run`
// (read and normalise only, no Redis) shows what the list alone costs.
// Redis is flushed between runs.
//
//	go run ./bench/enqueue                        # about 3 minutes
//	go run ./bench/enqueue -domains 200000
//	go run ./bench/enqueue -profile /tmp/prof     # also CPU and heap profiles of the same path in process
package main

import (
	"bufio"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"runtime/pprof"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"

	"github.com/linkharvest/linkharvest/bench/internal/benchenv"
	"github.com/linkharvest/linkharvest/domains"
	"github.com/linkharvest/linkharvest/tasks"
)

// enqueueParallel is the parallelism enqueue used before it pipelined
// (tasks.Submitter's default Parallel was 16); the bare loops use it.
const enqueueParallel = 16

var bare16Name = fmt.Sprintf("bare asynq Client.Enqueue loop, ×%d in parallel", enqueueParallel)

type row struct {
	name    string
	n       int
	wall    time.Duration
	cpu     time.Duration
	rss     int64 // bytes; 0 = not measured
	redis   time.Duration
	comment string
}

func main() {
	n := flag.Int("domains", 1_000_000, "distinct domains in the generated list")
	auto := flag.Bool("autopipeline", true, "also measure asynq over go-redis's AutoPipeliner (bare, and enqueue's submit path in process)")
	profile := flag.String("profile", "", "directory for CPU and heap profiles of the enqueue path run in process")
	flag.Parse()

	env, err := benchenv.New("enqueue")
	check(err)
	defer env.Close()
	redisProc, redisURL, err := env.Redis()
	check(err)
	rdb, err := benchenv.OpenRedis(redisURL)
	check(err)
	defer rdb.Close()
	ctx := context.Background()

	list := filepath.Join(env.Dir, "domains.txt")
	lines, dups, bad := writeList(list, *n)
	fmt.Fprintf(os.Stderr, "enqueue: list of %d lines (%d distinct domains, %d duplicates, %d invalid)\n", lines, *n, dups, bad)
	fmt.Printf("## enqueue (GOMAXPROCS %d, load average %s)\n\n", runtime.GOMAXPROCS(0), benchenv.Load())
	fmt.Printf("List: %d lines = %d distinct domains in mixed forms (bare, URL with scheme/www/port/path, upper case, IDN), %d duplicates in other forms, %d invalid lines.\n\n", lines, *n, dups, bad)

	var rows []row
	envv := []string{"REDIS_URL=" + redisURL, "OTEL_TRACES_EXPORTER=none"}

	// The list alone: read, normalise, deduplicate.
	rows = append(rows, runEnqueue(env, envv, redisProc.Pid(), "`enqueue --dry-run` (read + normalise + dedupe only)", *n, "--dry-run", list))

	// The real thing.
	check(rdb.FlushAll(ctx).Err())
	r := runEnqueue(env, envv, redisProc.Pid(), "`enqueue` (real binary)", *n, "--job", "bench", list)
	info := asynq.NewInspectorFromRedisClient(rdb)
	if qi, err := info.GetQueueInfo("dataforseo"); err == nil {
		r.comment = fmt.Sprintf("%d tasks pending; Redis used_memory %s", qi.Pending, redisMem(rdb))
		if qi.Pending != *n {
			check(fmt.Errorf("enqueue left %d tasks pending, want %d", qi.Pending, *n))
		}
	}
	rows = append(rows, r)

	// Bare loops over the same count.
	for _, par := range []int{1, enqueueParallel} {
		check(rdb.FlushAll(ctx).Err())
		rows = append(rows, bareLoop(redisURL, redisProc.Pid(), *n, par, false))
	}
	if *auto {
		// What pipelining would give: asynq's client over go-redis's
		// AutoPipeliner, which batches concurrent commands into one write.
		for _, par := range []int{enqueueParallel, 64} {
			check(rdb.FlushAll(ctx).Err())
			rows = append(rows, bareLoop(redisURL, redisProc.Pid(), *n, par, true))
		}
	}

	if *profile != "" {
		check(rdb.FlushAll(ctx).Err())
		check(profileInProcess(redisURL, list, *profile))
	}

	fmt.Println("| run | domains | time | domains/s | CPU (process) | Redis CPU | peak RSS | ratio to bare ×16 (plain) | notes |")
	fmt.Println("|---|---|---|---|---|---|---|---|---|")
	var bare16 float64
	for _, r := range rows {
		if r.name == bare16Name {
			bare16 = float64(r.n) / r.wall.Seconds()
		}
	}
	for _, r := range rows {
		rate := float64(r.n) / r.wall.Seconds()
		rss := "-"
		if r.rss > 0 {
			rss = benchenv.MB(r.rss)
		}
		fmt.Printf("| %s | %d | %.1f s | %.0f | %.1f s | %.1f s | %s | %.2f | %s |\n", r.name, r.n, r.wall.Seconds(), rate, r.cpu.Seconds(), r.redis.Seconds(), rss, rate/bare16, r.comment)
	}
	fmt.Printf("\nTargets: ≥ 20,000 domains/s and peak RSS < 200 MB for the real enqueue. Load average after: %s\n", benchenv.Load())
}

// writeList writes n distinct domains in mixed forms, then duplicates of
// every 50th in another form, and an invalid line every 10,000.
func writeList(path string, n int) (lines, dups, bad int) {
	f, err := os.Create(path)
	check(err)
	w := bufio.NewWriterSize(f, 1<<20)
	for i := 0; i < n; i++ {
		name := "site" + strconv.Itoa(i)
		var line string
		switch i % 8 {
		case 0, 1, 2:
			line = name + ".com"
		case 3:
			line = "https://www." + name + ".co.uk/path/to/page?q=1"
		case 4:
			line = "http://Blog." + strings.ToUpper(name) + ".ORG:8080/"
		case 5:
			line = "  " + name + ".net  # a comment"
		case 6:
			line = "www." + name + ".de"
		case 7:
			line = "bücher-" + name + ".example"
		}
		fmt.Fprintln(w, line)
		lines++
		if i%50 == 49 {
			// A duplicate, in another form, of the latest siteJ.com.
			fmt.Fprintln(w, "HTTPS://SITE"+strconv.Itoa(i-i%8)+".COM/other")
			lines++
		}
		if i%10000 == 9999 {
			fmt.Fprintln(w, "not a domain")
			lines++
			bad++
		}
	}
	check(w.Flush())
	check(f.Close())
	// Count duplicates as Read does, so the report is exact.
	in, err := os.Open(path)
	check(err)
	defer in.Close()
	st, err := domains.Read(in, nil, nil)
	check(err)
	if st.Valid != n {
		check(fmt.Errorf("list has %d valid domains, want %d (generator bug)", st.Valid, n))
	}
	return lines, st.Duplicates, st.Rejected
}

// runEnqueue runs the enqueue binary, sampling its memory, and reads its
// rusage when it exits.
func runEnqueue(env *benchenv.Env, envv []string, redisPid int, name string, n int, args ...string) row {
	fmt.Fprintf(os.Stderr, "enqueue: %s\n", name)
	c := exec.Command(filepath.Join(env.Bin, "enqueue"), args...)
	c.Env = append(os.Environ(), envv...)
	var out strings.Builder
	c.Stdout = &out
	c.Stderr = &out
	r0 := must(benchenv.CPU(redisPid))
	t0 := time.Now()
	check(c.Start())
	check(c.Wait())
	el := time.Since(t0)
	ru := c.ProcessState.SysUsage().(*syscall.Rusage)
	r := row{name: name, n: n, wall: el, cpu: time.Duration(ru.Utime.Nano() + ru.Stime.Nano()), rss: ru.Maxrss << 10,
		redis: must(benchenv.CPU(redisPid)) - r0}
	if !strings.Contains(out.String(), strconv.Itoa(n)+" domains") {
		check(fmt.Errorf("enqueue output does not report %d domains:\n%s", n, tail(out.String())))
	}
	fmt.Fprintf(os.Stderr, "  %s\n", strings.TrimSpace(lastLine(out.String())))
	return r
}

// bareLoop enqueues n page tasks with asynq.Client.Enqueue, par at once.
func bareLoop(redisURL string, redisPid int, n, par int, auto bool) row {
	name := "bare asynq Client.Enqueue loop, 1 at a time"
	if par > 1 {
		name = fmt.Sprintf("bare asynq Client.Enqueue loop, ×%d in parallel", par)
	}
	if auto {
		name += ", AutoPipeliner"
	}
	fmt.Fprintf(os.Stderr, "enqueue: %s\n", name)
	opt, err := redis.ParseURL(redisURL)
	check(err)
	opt.PoolSize = max(opt.PoolSize, 64) // as runner.OpenRedis
	rdb := redis.NewClient(opt)
	defer rdb.Close()
	var client *asynq.Client
	if auto {
		ap, err := rdb.AutoPipeline()
		check(err)
		client = asynq.NewClientFromRedisClient(ap)
	} else {
		client = asynq.NewClientFromRedisClient(rdb)
	}
	defer client.Close()
	runtime.GC()
	c0, r0 := benchenv.SelfCPU(), must(benchenv.CPU(redisPid))
	t0 := time.Now()
	var next atomic.Int64
	var wg sync.WaitGroup
	for g := 0; g < par; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1)) - 1
				if i >= n {
					return
				}
				p := tasks.PagePayload{Job: "bench", Provider: "dataforseo", Endpoint: "backlinks", Domain: "site" + strconv.Itoa(i) + ".com", Page: 1}
				b, _ := json.Marshal(p)
				_, err := client.Enqueue(asynq.NewTask(tasks.TypePage, b), asynq.TaskID(p.TaskID()), asynq.Queue(p.Provider),
					asynq.MaxRetry(tasks.MaxRetry), asynq.Timeout(tasks.TaskTimeout))
				check(err)
			}
		}()
	}
	wg.Wait()
	el := time.Since(t0)
	return row{name: name, n: n, wall: el, cpu: benchenv.SelfCPU() - c0, redis: must(benchenv.CPU(redisPid)) - r0}
}

// profileInProcess runs enqueue's submit path (domains.Read into a
// tasks.Submission) in this process under the CPU profiler, then writes a
// heap profile.
func profileInProcess(redisURL, list, dir string) error {
	fmt.Fprintf(os.Stderr, "enqueue: profiling the submit path in process into %s\n", dir)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	opt, err := redis.ParseURL(redisURL)
	if err != nil {
		return err
	}
	opt.PoolSize = max(opt.PoolSize, 64)
	rdb := redis.NewClient(opt)
	defer rdb.Close()
	client := asynq.NewClientFromRedisClient(rdb)
	defer client.Close()
	ctx := context.Background()
	sub := &tasks.Submitter{Store: tasks.NewStore(rdb), Client: client}
	spec := tasks.Spec{Providers: []string{"dataforseo"}, Endpoints: map[string][]string{"dataforseo": {"backlinks"}}}
	cpuf, err := os.Create(filepath.Join(dir, "cpu.pprof"))
	if err != nil {
		return err
	}
	defer cpuf.Close()
	if err := pprof.StartCPUProfile(cpuf); err != nil {
		return err
	}
	t0 := time.Now()
	b, err := sub.Begin(ctx, "profile", spec, nil)
	if err != nil {
		return err
	}
	in, err := os.Open(list)
	if err != nil {
		return err
	}
	defer in.Close()
	if _, err := domains.Read(in, func(_ int, d string) error { return b.Add(ctx, d) }, func(r domains.Reject) {
		_ = b.Reject(ctx, tasks.Reject{Line: r.Line, Input: r.Input, Reason: r.Reason})
	}); err != nil {
		return err
	}
	if _, err := b.Close(ctx); err != nil {
		return err
	}
	pprof.StopCPUProfile()
	fmt.Fprintf(os.Stderr, "  in process: %.1f s\n", time.Since(t0).Seconds())
	hf, err := os.Create(filepath.Join(dir, "heap.pprof"))
	if err != nil {
		return err
	}
	defer hf.Close()
	return pprof.Lookup("allocs").WriteTo(hf, 0)
}

func redisMem(rdb *redis.Client) string {
	m, err := benchenv.RedisInfo(context.Background(), rdb, "memory")
	if err != nil || m["used_memory_human"] == "" {
		return "?"
	}
	return m["used_memory_human"]
}

func lastLine(s string) string {
	s = strings.TrimSpace(s)
	if i := strings.LastIndexByte(s, '\n'); i >= 0 {
		return s[i+1:]
	}
	return s
}

func tail(s string) string {
	if len(s) > 2000 {
		return s[len(s)-2000:]
	}
	return s
}

func must[T any](v T, err error) T {
	check(err)
	return v
}

// check ends the run on an error (benchenv.Checker).
var check = benchenv.Checker("enqueue")
