// Command memory measures a worker's peak RSS when every vendor answer is
// as large as the endpoint's body cap allows, at several concurrencies.
//
// The real worker process (built from ./cmd/worker, default memory limit,
// Redis and a MinIO sink as child processes) calls a stand-in for
// DataForSEO's backlinks endpoint in this process, which answers every
// call with a 1000-row page just under the 16 MiB cap, in four kinds
// taking turns: length declared; chunked (length unknown); a gzip bomb (a
// few KB on the wire, decompressed by the transport to just under the
// cap, length unknown); and a gzip bomb decompressing past the cap, which
// the client refuses (the page fails for good, as it should). Each domain
// is one page; every call is answered at once, so answers arrive as
// fast as the worker asks.
//
// For each concurrency it prints the worker's RSS idle (started, before
// the job: the baseline of the same run), its peak (VmHWM) over the job,
// and the pages it wrote and failed. Target: peak RSS under 256 MiB at
// any concurrency. With -unbounded it also runs once with GOMEMLIMIT so
// large that the stage's byte budget never binds (the old behaviour:
// places only), at the first concurrency, for comparison.
//
//	go run ./bench/memory                        # concurrencies 12, 40, 100; a few minutes
//	go run ./bench/memory -concurrency 12 -pages 30
package main

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/linkharvest/linkharvest/bench/internal/benchenv"
	"github.com/linkharvest/linkharvest/tasks"
)

// capBytes is DataForSEO's body cap (providers/dataforseo maxBody).
const capBytes = 16 << 20

func main() {
	concs := flag.String("concurrency", "12,40,100", "WORKER_CONCURRENCY values, one run each")
	pages := flag.Int("pages", 0, "pages per run (0: concurrency + 24)")
	unbounded := flag.Bool("unbounded", true, "also run the first concurrency with the byte budget out of reach")
	flag.Parse()
	var cs []int
	for _, f := range strings.Split(*concs, ",") {
		c, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || c <= 0 {
			fmt.Fprintf(os.Stderr, "memory: bad -concurrency %q\n", *concs)
			os.Exit(2)
		}
		cs = append(cs, c)
	}
	if err := run(cs, *pages, *unbounded); err != nil {
		fmt.Fprintln(os.Stderr, "memory:", err)
		benchenv.Exit(1)
	}
}

type result struct {
	conc, pages   int
	memlimit      string
	idle, hwm     int64
	written, fail int64
	wall          time.Duration
	calls         int64
}

func run(concs []int, pages int, unbounded bool) error {
	srv, err := newVendor()
	if err != nil {
		return err
	}
	env, err := benchenv.New("worker", "enqueue")
	if err != nil {
		return err
	}
	defer env.Close()
	sv, err := env.Services(benchenv.Want{MinIO: true})
	if err != nil {
		return err
	}
	defer sv.Close()

	type runSpec struct {
		conc     int
		memlimit string // "" leaves GOMEMLIMIT unset: the worker's default
	}
	var specs []runSpec
	for _, c := range concs {
		specs = append(specs, runSpec{conc: c})
	}
	if unbounded {
		specs = append(specs, runSpec{conc: concs[0], memlimit: "64GiB"})
	}
	var results []result
	for i, sp := range specs {
		n := pages
		if n <= 0 {
			n = sp.conc + 24
		}
		job := fmt.Sprintf("memory-%d", i)
		list := filepath.Join(env.Dir, job+".txt")
		var b bytes.Buffer
		for k := 0; k < n; k++ {
			fmt.Fprintf(&b, "%s-%d.r%d.example\n", kinds[k%len(kinds)], k, i)
		}
		if err := os.WriteFile(list, b.Bytes(), 0o644); err != nil {
			return err
		}
		extra := append(sv.S3.Env(), benchenv.Unlimited.WorkerLimits(), "WORKER_CONCURRENCY="+strconv.Itoa(sp.conc), "RETRY_BASE_DELAY=100ms")
		if sp.memlimit != "" {
			extra = append(extra, "GOMEMLIMIT="+sp.memlimit)
		} else {
			extra = append(extra, "GOMEMLIMIT=") // the worker's own default
		}
		wenv := benchenv.WorkerEnv(sv.RedisURL, srv.url, extra...)
		fmt.Fprintf(os.Stderr, "memory: concurrency %d, %d pages, GOMEMLIMIT %q\n", sp.conc, n, sp.memlimit)
		w, err := env.Start("worker", wenv, filepath.Join(env.Bin, "worker"))
		if err != nil {
			return err
		}
		// Idle: started and connected, nothing to do yet.
		time.Sleep(2 * time.Second)
		if w.Exited() {
			return fmt.Errorf("worker exited:\n%s", w.Tail())
		}
		idle, _, err := benchenv.Mem(w.Pid())
		if err != nil {
			return err
		}
		calls0 := srv.calls.Load()
		t0 := time.Now()
		if _, err := env.Enqueue(wenv, job, list); err != nil {
			return err
		}
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Minute)
		s, err := benchenv.WaitJob(ctx, sv.Store, job, 100*time.Millisecond, func(s *tasks.Status) bool { return w.Exited() })
		cancel()
		if err != nil {
			return err
		}
		if w.Exited() {
			return fmt.Errorf("worker exited (killed for memory?):\n%s", w.Tail())
		}
		_, hwm, err := benchenv.Mem(w.Pid())
		if err != nil {
			return err
		}
		w.Stop(10 * time.Second)
		results = append(results, result{conc: sp.conc, pages: n, memlimit: sp.memlimit, idle: idle, hwm: hwm,
			written: s.Ended - s.Failed, fail: s.Failed, wall: time.Since(t0), calls: srv.calls.Load() - calls0})
	}

	fmt.Printf("## memory (GOMAXPROCS %d, %d CPUs, load average %s)\n\n", runtime.GOMAXPROCS(0), runtime.NumCPU(), benchenv.Load())
	fmt.Printf("Every answer 1000 rows at the %d MiB cap: declared length %s, chunked %s, gzip bomb %s (%s on the wire), "+
		"and a gzip bomb over the cap (%s decompressed, %s on the wire), taking turns. One page per domain, MinIO sink.\n\n",
		capBytes>>20, benchenv.MB(int64(len(srv.plain))), benchenv.MB(int64(len(srv.plain))), benchenv.MB(int64(len(srv.bombPlain))),
		kb(len(srv.bomb)), benchenv.MB(int64(srv.overPlain)), kb(len(srv.over)))
	fmt.Println("| WORKER_CONCURRENCY | GOMEMLIMIT | pages (written / failed over the cap) | vendor calls | wall | idle RSS (baseline) | peak RSS (VmHWM) | peak ÷ idle | under 256 MiB |")
	fmt.Println("|---|---|---|---|---|---|---|---|---|")
	for _, r := range results {
		ml := r.memlimit
		if ml == "" {
			ml = fmt.Sprintf("unset (worker default %dMiB)", tasks.DefaultMemoryLimit>>20)
		}
		under := "yes"
		if r.hwm >= 256<<20 {
			under = "**no**"
		}
		fmt.Printf("| %d | %s | %d (%d / %d) | %d | %.1f s | %s | %s | %.1f× | %s |\n", r.conc, ml, r.pages, r.written, r.fail, r.calls,
			r.wall.Seconds(), benchenv.MB(r.idle), benchenv.MB(r.hwm), float64(r.hwm)/float64(r.idle), under)
	}
	fmt.Println()
	return nil
}

func kb(n int) string { return fmt.Sprintf("%.0f KB", float64(n)/1e3) }

// kinds of answers, chosen by the domain's first label.
var kinds = []string{"declared", "chunked", "bomb", "over"}

// vendor stands in for DataForSEO's backlinks endpoint.
type vendor struct {
	url       string
	plain     []byte // just under the cap, incompressible padding
	bombPlain []byte // just under the cap, compressible padding
	bomb      []byte // bombPlain gzip-compressed
	over      []byte // a gzip bomb decompressing past the cap
	overPlain int
	calls     atomic.Int64
}

func newVendor() (*vendor, error) {
	v := &vendor{}
	var err error
	if v.plain, err = answer(capBytes-(64<<10), false); err != nil {
		return nil, err
	}
	if v.bombPlain, err = answer(capBytes-(64<<10), true); err != nil {
		return nil, err
	}
	v.bomb = gz(v.bombPlain)
	overPlain, err := answer(capBytes+(1<<20), true)
	if err != nil {
		return nil, err
	}
	v.over, v.overPlain = gz(overPlain), len(overPlain)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	v.url = "http://" + ln.Addr().String()
	go http.Serve(ln, http.HandlerFunc(v.serve))
	return v, nil
}

func (v *vendor) serve(w http.ResponseWriter, r *http.Request) {
	v.calls.Add(1)
	var req []struct {
		Target string `json:"target"`
	}
	body, _ := io.ReadAll(r.Body)
	if err := json.Unmarshal(body, &req); err != nil || len(req) != 1 {
		http.Error(w, "bad request", http.StatusBadRequest)
		return
	}
	kind, _, _ := strings.Cut(req[0].Target, "-")
	w.Header().Set("Content-Type", "application/json")
	switch kind {
	case "declared":
		w.Header().Set("Content-Length", strconv.Itoa(len(v.plain)))
		w.Write(v.plain)
	case "chunked":
		w.Write(v.plain) // larger than the server's buffer: sent chunked
	case "bomb":
		w.Header().Set("Content-Encoding", "gzip")
		w.Write(v.bomb)
	default:
		w.Header().Set("Content-Encoding", "gzip")
		w.Write(v.over)
	}
}

func gz(b []byte) []byte {
	var out bytes.Buffer
	zw, _ := gzip.NewWriterLevel(&out, gzip.BestCompression)
	zw.Write(b)
	zw.Close()
	return out.Bytes()
}

// answer builds a DataForSEO backlinks answer of 1000 rows (total 1000:
// one page) of about size bytes, padded in each row's text_pre:
// incompressible (random letters) or compressible (one letter repeated).
func answer(size int, compressible bool) ([]byte, error) {
	const rows = 1000
	item := func(i int, pad string) map[string]any {
		return map[string]any{
			"type": "backlink", "domain_from": fmt.Sprintf("site%d.example", i), "url_from": fmt.Sprintf("https://site%d.example/page", i),
			"url_from_https": true, "domain_to": "target.example", "url_to": "https://target.example/", "url_to_https": true,
			"tld_from": "example", "is_new": false, "is_lost": false, "rank": 100, "page_from_rank": 50, "domain_from_rank": 70,
			"page_from_title": "A page", "first_seen": "2024-01-01 00:00:00 +00:00", "last_seen": "2026-11-01 00:00:00 +00:00",
			"item_type": "anchor", "dofollow": true, "original": true, "anchor": "target", "text_pre": pad, "text_post": "",
		}
	}
	build := func(padLen int) ([]byte, error) {
		items := make([]map[string]any, rows)
		rnd := uint64(1)
		for i := range items {
			var pad []byte
			if compressible {
				pad = bytes.Repeat([]byte("a"), padLen)
			} else {
				pad = make([]byte, padLen)
				for j := range pad {
					rnd = rnd*6364136223846793005 + 1442695040888963407
					pad[j] = 'a' + byte((rnd>>33)%26)
				}
			}
			items[i] = item(i, string(pad))
		}
		return json.Marshal(map[string]any{
			"version": "0.1.20221214", "status_code": 20000, "status_message": "Ok.", "time": "0.05 sec.", "cost": 0.05,
			"tasks_count": 1, "tasks_error": 0,
			"tasks": []any{map[string]any{
				"id": "00000000-0000-0000-0000-000000000000", "status_code": 20000, "status_message": "Ok.", "time": "0.05 sec.",
				"cost": 0.05, "result_count": 1, "path": []string{"v3", "backlinks", "backlinks", "live"},
				"data":   map[string]any{"api": "backlinks", "function": "backlinks", "limit": rows},
				"result": []any{map[string]any{"target": "", "mode": "as_is", "total_count": rows, "items_count": rows, "items": items}},
			}},
		})
	}
	b, err := build(0)
	if err != nil {
		return nil, err
	}
	return build((size - len(b)) / rows)
}
