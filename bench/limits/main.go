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
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

type stats struct {
	Calls            int64 `json:"calls"`
	Throttled        int64 `json:"throttled"`
	InjectedFailures int64 `json:"injected_failures"`
	MaxInFlight      int64 `json:"max_in_flight"`
	MaxCallsInWindow int64 `json:"max_calls_in_window"`
}

type result struct {
	mode      string
	n         int
	latency   time.Duration
	perMin    float64
	bound     float64
	stats     stats
	recovered string
}

func main() {
	duration := flag.Duration("duration", 3*time.Minute, "measured time per run")
	warmup := flag.Duration("warmup", 15*time.Second, "time before measuring")
	ns := flag.String("n", "1,3,6", "worker process counts")
	lats := flag.String("latency", "100ms,1s", "sandbox latencies")
	kill := flag.Bool("kill", true, "also run N=3 with one worker SIGKILLed half-way")
	local := flag.Bool("local", true, "also run per-process limiting (x/time/rate at limit/N) side by side")
	rate := flag.Int("rate", 2000, "calls per minute (sandbox and limiter)")
	inflight := flag.Int("inflight", 30, "calls in flight (sandbox and limiter)")
	flag.Parse()

	bin, err := os.MkdirTemp("", "lh-bench-")
	check(err)
	defer os.RemoveAll(bin)
	build := exec.Command("go", "build", "-o", bin+"/", "./cmd/worker", "./cmd/enqueue", "./cmd/sandbox")
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	check(build.Run())

	var results []result
	for _, l := range strings.Split(*lats, ",") {
		lat, err := time.ParseDuration(strings.TrimSpace(l))
		check(err)
		for _, s := range strings.Split(*ns, ",") {
			n, err := strconv.Atoi(strings.TrimSpace(s))
			check(err)
			results = append(results, runOnce(bin, "shared", n, lat, *rate, *inflight, *warmup, *duration, false))
			if *local {
				results = append(results, runOnce(bin, "per-process", n, lat, *rate, *inflight, *warmup, *duration, false))
			}
		}
		if *kill {
			results = append(results, runOnce(bin, "shared+SIGKILL", 3, lat, *rate, *inflight, *warmup, *duration, true))
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

func runOnce(bin, mode string, n int, lat time.Duration, rate, inflight int, warmup, dur time.Duration, kill bool) result {
	bound := min(float64(rate), float64(inflight)*float64(time.Minute)/float64(lat))
	fmt.Fprintf(os.Stderr, "run: %s N=%d latency=%v (bound %.0f/min)\n", mode, n, lat, bound)
	dir, err := os.MkdirTemp("", "lh-bench-run-")
	check(err)
	defer os.RemoveAll(dir)
	var procs []*exec.Cmd
	defer func() {
		for _, p := range procs {
			_ = p.Process.Kill()
			_, _ = p.Process.Wait()
		}
	}()
	startProc := func(env []string, name string, args ...string) *exec.Cmd {
		c := exec.Command(name, args...)
		c.Env = append(os.Environ(), env...)
		c.Dir = dir
		logf, _ := os.Create(filepath.Join(dir, filepath.Base(name)+"-"+strconv.Itoa(len(procs))+".log"))
		c.Stdout, c.Stderr = logf, logf
		c.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
		check(c.Start())
		procs = append(procs, c)
		return c
	}
	redisPort := freePort()
	startProc(nil, "redis-server", "--port", strconv.Itoa(redisPort), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--dir", dir)
	waitPort(fmt.Sprintf("127.0.0.1:%d", redisPort))
	sbAddr := fmt.Sprintf("127.0.0.1:%d", freePort())
	startProc(nil, filepath.Join(bin, "sandbox"), "--addr", sbAddr, "--rate", fmt.Sprintf("%d/1m", rate),
		"--concurrency", strconv.Itoa(inflight), "--latency", lat.String())
	waitPort(sbAddr)
	base := "http://" + sbAddr

	// Enough one-page domains to keep the workers busy past the window.
	calls := int(bound*(warmup+dur).Minutes()*1.3) + 200
	list := filepath.Join(dir, "domains.txt")
	var b bytes.Buffer
	for i := 0; i < calls; i++ {
		fmt.Fprintf(&b, "rows-1.d%07d.example\n", i)
	}
	check(os.WriteFile(list, b.Bytes(), 0o644))
	env := []string{
		fmt.Sprintf("REDIS_URL=redis://127.0.0.1:%d/0", redisPort), "SINK_URL=" + filepath.Join(dir, "out"),
		"DATAFORSEO_BASE_URL=" + base, "DATAFORSEO_LOGIN=bench", "DATAFORSEO_PASSWORD=bench",
		fmt.Sprintf("PROVIDER_LIMITS=dataforseo=%d/1m:%d", rate, inflight), "METRICS_ADDR=", "WORKER_CONCURRENCY=40",
	}
	if mode == "per-process" {
		env = append(env, "LINKHARVEST_LIMITER=local:"+strconv.Itoa(n))
	}
	enq := exec.Command(filepath.Join(bin, "enqueue"), "--job", "bench", list)
	enq.Env = append(os.Environ(), env...)
	if out, err := enq.CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "enqueue: %v\n%s\n", err, out)
		os.Exit(1)
	}
	var workers []*exec.Cmd
	for i := 0; i < n; i++ {
		workers = append(workers, startProc(env, filepath.Join(bin, "worker")))
	}
	post(base + "/stats/reset")
	time.Sleep(warmup)
	t0, s0 := time.Now(), get(base)
	r := result{mode: mode, n: n, latency: lat, bound: bound, recovered: "-"}
	if kill {
		time.Sleep(dur / 2)
		_ = workers[0].Process.Signal(syscall.SIGKILL)
		killedAt := time.Now()
		prev := get(base).Calls
		r.recovered = "not within 60s"
		for i := 1; i <= 12; i++ {
			time.Sleep(5 * time.Second)
			c := get(base).Calls
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
	s1 := get(base)
	r.perMin = float64(s1.Calls-s0.Calls) / time.Since(t0).Minutes()
	r.stats = s1
	fmt.Fprintf(os.Stderr, "  %.0f calls/min = %.3f of bound; max_calls_in_window %d, max_in_flight %d, throttled %d, recovery %s\n",
		r.perMin, r.perMin/bound, s1.MaxCallsInWindow, s1.MaxInFlight, s1.Throttled, r.recovered)
	return r
}

func get(base string) stats {
	resp, err := http.Get(base + "/stats")
	check(err)
	defer resp.Body.Close()
	var m map[string]stats
	check(json.NewDecoder(resp.Body).Decode(&m))
	return m["dataforseo"]
}

func post(url string) {
	resp, err := http.Post(url, "", nil)
	check(err)
	resp.Body.Close()
}

func freePort() int {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	check(err)
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

func waitPort(addr string) {
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	for ctx.Err() == nil {
		if c, err := net.Dial("tcp", addr); err == nil {
			c.Close()
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
	fmt.Fprintln(os.Stderr, addr, "did not open")
	os.Exit(1)
}

func check(err error) {
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
}
