// Command rowcost measures the worker's cost per row, side by side with a
// bare baseline in the same run:
//
//  1. In process: a 1000-row DataForSEO page from the sandbox generator
//     decoded, normalised, encoded and gzipped as the worker does it
//     (dataforseo.Decode + the records tasks builds + sink.EncodePage),
//     against bare encoding/json decode + json encode + compress/gzip to
//     io.Discard of the same body (items as []json.RawMessage, and as
//     []map[string]any). Rates are rows per CPU-second of this process
//     (GC included), so other load on the machine does not skew them; the
//     pipelines alternate over rounds and the median round is shown.
//
//  2. The codecs on the worker's own NDJSON: compress/gzip against
//     klauspost/compress at two levels (CPU per row and bytes per row).
//
//  3. The whole worker as a process against an unlimited, zero-latency
//     sandbox (--rate 0 --concurrency 0) and a MinIO sink: pages/s, rows/s,
//     rows per CPU-second of the worker process (/proc/PID/stat), CPU
//     seconds per million rows, its peak RSS (VmHWM) at -concurrency;
//     once per -memlimit value (GOMEMLIMIT of the worker), side by side.
//
//     go run ./bench/rowcost                      # about 2 minutes
//     go run ./bench/rowcost -pages 300 -rounds 3 # shorter
//     go run ./bench/rowcost -worker=false        # in-process parts only
package main

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"time"

	kgzip "github.com/klauspost/compress/gzip"

	"github.com/linkharvest/linkharvest/bench/internal/benchenv"
	"github.com/linkharvest/linkharvest/providers"
	"github.com/linkharvest/linkharvest/providers/dataforseo"
	"github.com/linkharvest/linkharvest/providers/registry"
	"github.com/linkharvest/linkharvest/providers/sandbox"
	"github.com/linkharvest/linkharvest/sink"
	"github.com/linkharvest/linkharvest/tasks"
)

const pageRows = 1000

func main() {
	rounds := flag.Int("rounds", 5, "rounds of the in-process pipelines (median shown)")
	per := flag.Duration("per", time.Second, "time per pipeline and round")
	inproc := flag.Bool("inprocess", true, "run the in-process pipelines and codecs")
	worker := flag.Bool("worker", true, "also run the worker process against the sandbox and MinIO")
	pages := flag.Int("pages", 1000, "1000-row pages the worker process writes")
	conc := flag.Int("concurrency", 30, "the worker's WORKER_CONCURRENCY")
	memlimits := flag.String("memlimit", ",100MiB", "worker runs, one per GOMEMLIMIT value (empty: unset)")
	flag.Parse()

	fmt.Printf("## rowcost (GOMAXPROCS %d, %d CPUs, load average %s)\n\n", runtime.GOMAXPROCS(0), runtime.NumCPU(), benchenv.Load())
	if *inproc {
		body := page()
		inProcess(body, *rounds, *per)
		codecs(body, *rounds, *per)
	}
	if *worker {
		if err := workerProcess(*pages, *conc, strings.Split(*memlimits, ",")); err != nil {
			fmt.Fprintln(os.Stderr, "rowcost:", err)
			benchenv.Exit(1)
		}
	}
}

// page is one 1000-row backlinks response from the sandbox generator.
func page() []byte {
	srv := httptest.NewServer(registry.Sandbox(sandbox.Options{Seed: 1}))
	defer srv.Close()
	req, _ := http.NewRequest("POST", srv.URL+"/v3/backlinks/backlinks/live",
		bytes.NewReader([]byte(`[{"target":"rows-25000.example","limit":1000,"offset":0}]`)))
	req.SetBasicAuth("bench", "bench")
	resp, err := http.DefaultClient.Do(req)
	check(err)
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	check(err)
	return b
}

// records builds a page's records as tasks.Worker.encode does.
func records(pg *providers.Page, now time.Time) []sink.Record {
	recs := make([]sink.Record, len(pg.Items))
	for j, it := range pg.Items {
		recs[j] = sink.Record{JobID: "01JQ7ZK3X9N5V2B8M4C6D0E1F2", Provider: "dataforseo", Endpoint: "backlinks", Domain: "rows-25000.example",
			Page: 1, FetchedAt: now, Kind: it.Kind, SourceURL: it.SourceURL, TargetURL: it.TargetURL,
			Anchor: it.Anchor, Nofollow: it.Nofollow, SourceTitle: it.SourceTitle, Raw: it.Raw}
	}
	return recs
}

type pipeline struct {
	name string
	run  func() // one page
	rows int
}

type sample struct {
	cpu, wall time.Duration
	pages     int
}

// measure runs p for about d and returns the CPU time this process spent.
func measure(p pipeline, d time.Duration) sample {
	runtime.GC()
	c0, t0 := benchenv.SelfCPU(), time.Now()
	n := 0
	for time.Since(t0) < d || n < 3 {
		p.run()
		n++
	}
	return sample{cpu: benchenv.SelfCPU() - c0, wall: time.Since(t0), pages: n}
}

// medianRates runs every pipeline once per round, alternating, and
// returns each one's median rows per CPU-second and per wall second.
func medianRates(ps []pipeline, rounds int, d time.Duration) (perCPU, perWall []float64) {
	cpu := make([][]float64, len(ps))
	wall := make([][]float64, len(ps))
	for r := 0; r < rounds; r++ {
		for i, p := range ps {
			s := measure(p, d)
			rows := float64(s.pages * p.rows)
			cpu[i] = append(cpu[i], rows/s.cpu.Seconds())
			wall[i] = append(wall[i], rows/s.wall.Seconds())
		}
	}
	for i := range ps {
		perCPU = append(perCPU, median(cpu[i]))
		perWall = append(perWall, median(wall[i]))
	}
	return perCPU, perWall
}

func median(v []float64) float64 {
	s := append([]float64(nil), v...)
	sort.Float64s(s)
	return s[len(s)/2]
}

func inProcess(body []byte, rounds int, d time.Duration) {
	now := time.Now().UTC()
	decoded, err := dataforseo.Decode("backlinks", body)
	check(err)
	if len(decoded.Items) != pageRows {
		check(fmt.Errorf("sandbox page has %d rows", len(decoded.Items)))
	}
	recs := records(decoded, now)
	ours, err := sink.EncodePage(recs)
	check(err)
	ps := []pipeline{
		{name: "worker: dataforseo.Decode + records + sink.EncodePage", rows: pageRows, run: func() {
			pg, err := dataforseo.Decode("backlinks", body)
			check(err)
			_, err = sink.EncodePage(records(pg, now))
			check(err)
		}},
		{name: "bare: json decode ([]json.RawMessage) + json encode + compress/gzip", rows: pageRows, run: func() { bareRaw(body) }},
		{name: "bare: json decode ([]map[string]any) + json encode + compress/gzip", rows: pageRows, run: func() { bareMap(body) }},
		{name: "stage: dataforseo.Decode only", rows: pageRows, run: func() {
			_, err := dataforseo.Decode("backlinks", body)
			check(err)
		}},
		{name: "stage: records + sink.EncodePage only", rows: pageRows, run: func() {
			_, err := sink.EncodePage(records(decoded, now))
			check(err)
		}},
	}
	fmt.Fprintf(os.Stderr, "rowcost: in-process pipelines, %d rounds of %s each\n", rounds, d)
	cpu, wall := medianRates(ps, rounds, d)
	fmt.Printf("### In process: one 1000-row page (%d bytes in, %d bytes gzip out)\n\n", len(body), len(ours))
	fmt.Println("| pipeline | rows/s per core (CPU time) | rows/s (wall) | µs CPU per row | ratio to bare RawMessage | ratio to bare map |")
	fmt.Println("|---|---|---|---|---|---|")
	for i, p := range ps {
		fmt.Printf("| %s | %.0f | %.0f | %.2f | %.2f | %.2f |\n", p.name, cpu[i], wall[i], 1e6/cpu[i], cpu[i]/cpu[1], cpu[i]/cpu[2])
	}
	fmt.Printf("\nload average after: %s\n\n", benchenv.Load())
}

// bareRaw is the plain way: encoding/json into RawMessage items, each
// written back with a json.Encoder through compress/gzip.
func bareRaw(body []byte) { bare[json.RawMessage](body) }

// bareMap decodes every item into a map (what a generic consumer does).
func bareMap(body []byte) { bare[map[string]any](body) }

// bare decodes the page's items as T and writes each back as NDJSON
// through compress/gzip.
func bare[T any](body []byte) {
	var env struct {
		Tasks []struct {
			Result []struct {
				Items []T `json:"items"`
			} `json:"result"`
		} `json:"tasks"`
	}
	check(json.Unmarshal(body, &env))
	zw := gzip.NewWriter(io.Discard)
	enc := json.NewEncoder(zw)
	for _, it := range env.Tasks[0].Result[0].Items {
		check(enc.Encode(it))
	}
	check(zw.Close())
}

// codecs compresses the worker's NDJSON of the page with each candidate.
func codecs(body []byte, rounds int, d time.Duration) {
	pg, err := dataforseo.Decode("backlinks", body)
	check(err)
	gz, err := sink.EncodePage(records(pg, time.Now().UTC()))
	check(err)
	zr, err := gzip.NewReader(bytes.NewReader(gz))
	check(err)
	ndjson, err := io.ReadAll(zr)
	check(err)
	var out bytes.Buffer
	std := func(level int) func() {
		zw, _ := gzip.NewWriterLevel(nil, level)
		return func() {
			out.Reset()
			zw.Reset(&out)
			_, _ = zw.Write(ndjson)
			check(zw.Close())
		}
	}
	kp := func(level int) func() {
		zw, _ := kgzip.NewWriterLevel(nil, level)
		return func() {
			out.Reset()
			zw.Reset(&out)
			_, _ = zw.Write(ndjson)
			check(zw.Close())
		}
	}
	ps := []pipeline{
		{name: "compress/gzip DefaultCompression (6)", rows: pageRows, run: std(gzip.DefaultCompression)},
		{name: "compress/gzip BestSpeed (1)", rows: pageRows, run: std(gzip.BestSpeed)},
		{name: "klauspost gzip DefaultCompression (sink's choice)", rows: pageRows, run: kp(kgzip.DefaultCompression)},
		{name: "klauspost gzip level 3", rows: pageRows, run: kp(3)},
		{name: "klauspost gzip BestSpeed (1)", rows: pageRows, run: kp(kgzip.BestSpeed)},
	}
	sizes := make([]int, len(ps))
	for i, p := range ps {
		p.run()
		sizes[i] = out.Len()
	}
	fmt.Fprintf(os.Stderr, "rowcost: codecs\n")
	cpu, _ := medianRates(ps, rounds, d/2)
	fmt.Printf("### Codecs on the worker's NDJSON of the page (%d bytes uncompressed)\n\n", len(ndjson))
	fmt.Println("| codec | rows/s per core | µs CPU per row | bytes per row | ratio (speed) to compress/gzip default |")
	fmt.Println("|---|---|---|---|---|")
	for i, p := range ps {
		fmt.Printf("| %s | %.0f | %.2f | %.0f | %.2f |\n", p.name, cpu[i], 1e6/cpu[i], float64(sizes[i])/pageRows, cpu[i]/cpu[0])
	}
	fmt.Println()
}

// workerResult is one run of the worker process.
type workerResult struct {
	memlimit         string
	warm, pages      int64
	rows             int64
	wall             time.Duration
	cpu, sbCPU, mCPU time.Duration
	hwm, rss         int64
	load             string
}

// workerProcess runs one worker process per memlimit value (GOMEMLIMIT;
// "" leaves it unset), each over pages fresh one-page domains of 1000 rows,
// against the unlimited sandbox and MinIO.
func workerProcess(pages, conc int, memlimits []string) error {
	env, err := benchenv.New("worker", "enqueue", "sandbox")
	if err != nil {
		return err
	}
	defer env.Close()
	sv, err := env.Services(benchenv.Want{MinIO: true, Sandbox: benchenv.Unlimited.SandboxArgs(0)})
	if err != nil {
		return err
	}
	defer sv.Close()

	var results []workerResult
	for run, ml := range memlimits {
		job := fmt.Sprintf("rowcost-%d", run)
		list := fmt.Sprintf("%s/%s.txt", env.Dir, job)
		if err := benchenv.WriteDomains(list, fmt.Sprintf("w%d-", run), pages, pageRows); err != nil {
			return err
		}
		limit := ml
		if limit == "" {
			limit = "off" // whatever this shell has set
		}
		wenv := benchenv.WorkerEnv(sv.RedisURL, sv.SandboxURL, append(sv.S3.Env(), benchenv.Unlimited.WorkerLimits(), "WORKER_CONCURRENCY="+strconv.Itoa(conc), "GOMEMLIMIT="+limit)...)
		if _, err := env.Enqueue(wenv, job, list); err != nil {
			return err
		}
		fmt.Fprintf(os.Stderr, "rowcost: worker process over %d pages of %d rows (concurrency %d, GOMEMLIMIT %q)\n", pages, pageRows, conc, ml)
		w, err := env.Start("worker", wenv, env.Bin+"/worker")
		if err != nil {
			return err
		}
		r, err := measureWorker(sv.Store, job, w, sv.Sandbox(), sv.S3.Proc, pages)
		w.Stop(10 * time.Second)
		if err != nil {
			return err
		}
		r.memlimit = ml
		results = append(results, r)
	}

	// The bare pipeline's CPU per row, in this run, to set the process against.
	body := page()
	bare := measure(pipeline{rows: pageRows, run: func() { bareRaw(body) }}, 2*time.Second)
	bareRowsPerCPU := float64(bare.pages*pageRows) / bare.cpu.Seconds()

	fmt.Printf("### Worker process: %d pages of %d rows per run, sandbox --rate 0 --concurrency 0, MinIO sink, WORKER_CONCURRENCY=%d\n\n", pages, pageRows, conc)
	head, sep := "| measure |", "|---|"
	for _, r := range results {
		ml := r.memlimit
		if ml == "" {
			ml = "unset"
		}
		head += " GOMEMLIMIT " + ml + " |"
		sep += "---|"
	}
	fmt.Println(head)
	fmt.Println(sep)
	line := func(name string, f func(r workerResult) string) {
		l := "| " + name + " |"
		for _, r := range results {
			l += " " + f(r) + " |"
		}
		fmt.Println(l)
	}
	line("pages measured (after warm-up)", func(r workerResult) string {
		return fmt.Sprintf("%d in %.1f s (after %d)", r.pages, r.wall.Seconds(), r.warm)
	})
	line("pages/s (wall)", func(r workerResult) string { return fmt.Sprintf("%.1f", float64(r.pages)/r.wall.Seconds()) })
	line("rows/s (wall)", func(r workerResult) string { return fmt.Sprintf("%.0f", float64(r.rows)/r.wall.Seconds()) })
	line("worker CPU (cores busy)", func(r workerResult) string {
		return fmt.Sprintf("%.1f s (%.2f)", r.cpu.Seconds(), r.cpu.Seconds()/r.wall.Seconds())
	})
	line("pages/s per core of the worker", func(r workerResult) string { return fmt.Sprintf("%.1f", float64(r.pages)/r.cpu.Seconds()) })
	line("rows/s per core of the worker", func(r workerResult) string { return fmt.Sprintf("%.0f", float64(r.rows)/r.cpu.Seconds()) })
	line("worker CPU-seconds per million rows", func(r workerResult) string {
		return fmt.Sprintf("%.1f", r.cpu.Seconds()/float64(r.rows)*1e6)
	})
	line("bare pipeline CPU-seconds per million rows (in process)", func(workerResult) string { return fmt.Sprintf("%.1f", 1e6/bareRowsPerCPU) })
	line("ratio: worker process rows/s per core ÷ bare pipeline", func(r workerResult) string {
		return fmt.Sprintf("%.2f", float64(r.rows)/r.cpu.Seconds()/bareRowsPerCPU)
	})
	line("sandbox CPU / MinIO CPU meanwhile", func(r workerResult) string {
		return fmt.Sprintf("%.1f s / %.1f s", r.sbCPU.Seconds(), r.mCPU.Seconds())
	})
	line("worker peak RSS (VmHWM)", func(r workerResult) string { return benchenv.MB(r.hwm) })
	line("highest sampled VmRSS", func(r workerResult) string { return benchenv.MB(r.rss) })
	line("load average after", func(r workerResult) string { return r.load })
	fmt.Println()
	return nil
}

// measureWorker times a worker from the 5 % mark of its job to the end.
func measureWorker(store *tasks.Store, job string, w, sb, minio *benchenv.Proc, pages int) (workerResult, error) {
	var r workerResult
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Minute)
	defer cancel()
	warm := int64(max(pages/20, 5))
	s0, err := benchenv.WaitJob(ctx, store, job, 20*time.Millisecond, func(s *tasks.Status) bool { return s.Ended >= warm })
	if err != nil {
		return r, err
	}
	t0 := time.Now()
	cw0, _ := benchenv.CPU(w.Pid())
	cs0, _ := benchenv.CPU(sb.Pid())
	cm0, _ := benchenv.CPU(minio.Pid())
	sampler := time.NewTicker(100 * time.Millisecond)
	defer sampler.Stop()
	var s1 *tasks.Status
	for {
		s1, err = store.Status(ctx, job)
		if err != nil {
			return r, err
		}
		if s1.Open == 0 {
			break
		}
		if w.Exited() {
			return r, fmt.Errorf("worker exited:\n%s", w.Tail())
		}
		if rss, _, err := benchenv.Mem(w.Pid()); err == nil && rss > r.rss {
			r.rss = rss
		}
		select {
		case <-ctx.Done():
			return r, ctx.Err()
		case <-sampler.C:
		}
	}
	r.wall = time.Since(t0)
	cw1, _ := benchenv.CPU(w.Pid())
	cs1, _ := benchenv.CPU(sb.Pid())
	cm1, _ := benchenv.CPU(minio.Pid())
	_, r.hwm, _ = benchenv.Mem(w.Pid())
	if s1.Failed > 0 {
		return r, fmt.Errorf("%d pages failed; worker log:\n%s", s1.Failed, w.Tail())
	}
	r.warm, r.pages, r.rows = s0.Ended, s1.Ended-s0.Ended, s1.Records-s0.Records
	r.cpu, r.sbCPU, r.mCPU = cw1-cw0, cs1-cs0, cm1-cm0
	r.load = benchenv.Load()
	return r, nil
}

// check ends the run on an error (benchenv.Checker).
var check = benchenv.Checker("rowcost")
