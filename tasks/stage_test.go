package tasks

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hibiken/asynq"

	"github.com/linkharvest/linkharvest/providers"
	"github.com/linkharvest/linkharvest/providers/dataforseo"
	"github.com/linkharvest/linkharvest/providers/registry"
	"github.com/linkharvest/linkharvest/sink"
)

// stageServer answers every request with a body of 64 KB.
func stageServer(t *testing.T) (*httptest.Server, *http.Client) {
	t.Helper()
	body := strings.Repeat("x", 64<<10)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, body)
	}))
	t.Cleanup(srv.Close)
	return srv, &http.Client{Transport: StageTransport(http.DefaultTransport), Timeout: 10 * time.Second}
}

func get(t *testing.T, ctx context.Context, c *http.Client, url string) {
	t.Helper()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	resp, err := c.Do(req)
	if err != nil {
		t.Error(err)
		return
	}
	defer resp.Body.Close()
	if n, err := io.Copy(io.Discard, resp.Body); err != nil || n != 64<<10 {
		t.Errorf("body: %d bytes, %v", n, err)
	}
}

func TestStage(t *testing.T) {
	cases := []struct {
		name        string
		slots, work int
	}{
		{"one slot", 1, 6},
		{"two slots", 2, 12},
		{"more slots than tasks", 8, 4},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			srv, client := stageServer(t)
			s := NewStage(c.slots)
			var (
				mu       sync.Mutex
				in, peak int
				done     atomic.Int32
				wg       sync.WaitGroup
			)
			for range c.work {
				wg.Go(func() {
					ctx, pass := s.with(context.Background(), "test", 0)
					defer pass.leave()
					get(t, ctx, client, srv.URL)
					// Inside the stage from the answer on: count, hold a moment
					// (the CPU work), and call again, which must not wait for
					// a second place.
					mu.Lock()
					in++
					peak = max(peak, in)
					mu.Unlock()
					time.Sleep(5 * time.Millisecond)
					get(t, ctx, client, srv.URL)
					mu.Lock()
					in--
					mu.Unlock()
					pass.leave()
					done.Add(1)
				})
			}
			wg.Wait()
			if int(done.Load()) != c.work {
				t.Fatalf("%d of %d tasks done", done.Load(), c.work)
			}
			if peak > c.slots || peak < 1 {
				t.Errorf("%d tasks in the stage at once, want 1..%d", peak, c.slots)
			}
		})
	}
}

// A full stage holds back only answers of tasks: a request made outside a
// task (a token refresh, a health check) passes, and a task's place comes
// back when it leaves, even after an error.
func TestStageFullAndLeave(t *testing.T) {
	srv, client := stageServer(t)
	s := NewStage(1)
	ctx1, p1 := s.with(context.Background(), "test", 0)
	get(t, ctx1, client, srv.URL) // takes the only place

	get(t, context.Background(), client, srv.URL) // no task: not held back

	entered, left := make(chan struct{}), make(chan struct{})
	go func() {
		ctx2, p2 := s.with(context.Background(), "test", 0)
		get(t, ctx2, client, srv.URL)
		close(entered)
		p2.leave()
		close(left)
	}()
	select {
	case <-entered:
		t.Fatal("a second task entered a stage of one place")
	case <-time.After(100 * time.Millisecond):
	}
	p1.leave()
	p1.leave() // leaving twice gives back one place
	select {
	case <-entered:
	case <-time.After(10 * time.Second):
		t.Fatal("the waiting task never entered after the place was given back")
	}
	<-left
	var none *stagePass
	none.leave() // a worker without a stage
	if ctx, p := (*Stage)(nil).with(context.Background(), "test", 0); p != nil || ctx.Value(stageKey{}) != nil {
		t.Error("a nil stage hands out passes")
	}
	if !s.sem.TryAcquire(1) {
		t.Error("the place was not given back (or given back twice and then taken)")
	}
}

// stageProvider calls the vendor through a client with StageTransport and
// reports whether its task held the stage's only place after the answer.
type stageProvider struct {
	client *http.Client
	url    string
	stage  *Stage
	fail   error
	held   bool
}

func (p *stageProvider) Paging(string) (providers.Paging, error) { return providers.Paging{}, nil }

func (p *stageProvider) Fetch(ctx context.Context, _ providers.Request) (*providers.Page, error) {
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, p.url, nil)
	resp, err := p.client.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	io.Copy(io.Discard, resp.Body)
	if p.stage.sem.TryAcquire(1) {
		p.stage.sem.Release(1)
	} else {
		p.held = true
	}
	if p.fail != nil {
		return nil, p.fail
	}
	return &providers.Page{Total: 1, Items: []providers.Item{
		{Kind: "backlink", SourceURL: providers.Str("https://a.example/"), Raw: json.RawMessage(`{"url_from":"https://a.example/"}`)},
	}}, nil
}

// The worker's page fetch holds its place from the answer through the
// encoding, and gives it back whether the page was written or the vendor
// failed, so a stage of one place serves task after task.
func TestFetchHoldsStage(t *testing.T) {
	srv, client := stageServer(t)
	w := &Worker{Stage: NewStage(1)}
	job := &Job{ID: "j", Date: "2026-11-30"}
	p := &PagePayload{Job: "j", Provider: "dataforseo", Endpoint: "backlinks", Domain: "example.com", Page: 1}
	cases := []struct {
		name string
		fail error
	}{
		{"page written", nil},
		{"vendor error", &providers.Error{Provider: "dataforseo", Class: providers.Retryable, Code: "50000", Message: "internal error"}},
		{"page written after an error", nil},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			prov := &stageProvider{client: client, url: srv.URL, stage: w.Stage, fail: c.fail}
			done := make(chan struct{})
			var (
				st   *stashed
				err  error
				held bool
			)
			go func() {
				defer close(done)
				var pass *stagePass
				// The worker has no job store, so fetch holds no budget.
				st, pass, _, err = w.fetch(context.Background(), job, p, prov)
				// The encoded page still weighs until it is written.
				held = pass != nil && !stageIdle(w.Stage)
				pass.leave()
			}()
			select {
			case <-done:
			case <-time.After(10 * time.Second):
				t.Fatal("fetch waits for a place nobody holds: an earlier task did not give it back")
			}
			if !prov.held {
				t.Error("the task did not hold the stage after the vendor's answer")
			}
			if c.fail != nil {
				if !errors.Is(err, c.fail) {
					t.Errorf("err = %v, want the vendor's error", err)
				}
			} else if err != nil || st == nil || len(st.Body) == 0 {
				t.Fatalf("fetch: %v", err)
			} else if recs, derr := sink.DecodePage(st.Body); derr != nil || len(recs) != 1 {
				t.Errorf("encoded page: %d records, %v", len(recs), derr)
			}
			if c.fail == nil && !held {
				t.Error("the encoded page held no bytes of the stage until its write")
			}
			if !w.Stage.sem.TryAcquire(1) {
				t.Fatal("the place was not given back")
			}
			w.Stage.sem.Release(1)
			if !stageIdle(w.Stage) {
				t.Fatal("the bytes were not given back")
			}
		})
	}
}

// stageIdle reports whether every byte of s is free (taking none).
func stageIdle(s *Stage) bool {
	g := s.budget - s.rsize
	if !s.general.TryAcquire(g) {
		return false
	}
	s.general.Release(g)
	if !s.reserve.TryAcquire(s.rsize) {
		return false
	}
	s.reserve.Release(s.rsize)
	return true
}

// sizedServer answers with size bytes, declaring the length or not
// (chunked), or gzip-compressed (the transport decompresses it, so the
// length is unknown, as with a gzip bomb).
func sizedServer(t *testing.T) *httptest.Server {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n, _ := strconv.Atoi(r.URL.Query().Get("size"))
		body := bytes.Repeat([]byte("x"), n)
		switch r.URL.Query().Get("mode") {
		case "declared":
			w.Header().Set("Content-Length", strconv.Itoa(n))
			w.Write(body)
		case "chunked":
			w.Write(body[:n/2])
			w.(http.Flusher).Flush()
			w.Write(body[n/2:])
		case "gzip":
			w.Header().Set("Content-Encoding", "gzip")
			zw := gzip.NewWriter(w)
			zw.Write(body)
			zw.Close()
		}
	}))
	t.Cleanup(srv.Close)
	return srv
}

// call makes one call of a task and reads the body to the end.
func call(ctx context.Context, c *http.Client, url string) error {
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	resp, err := c.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	_, err = io.Copy(io.Discard, resp.Body)
	return err
}

// The stage holds the bytes its tasks' answers weigh within its budget,
// whatever the number of places: declared answers weigh their length
// from the general pool (half the budget), undeclared ones (chunked,
// decompressed) grow from a first chunk while the pool has room, and one
// answer at a time takes the reserve (the other half). Nobody deadlocks.
func TestStageBytes(t *testing.T) {
	const size = 100 << 10
	srv := sizedServer(t)
	client := &http.Client{Transport: StageTransport(http.DefaultTransport), Timeout: 10 * time.Second}
	per := weight(size)
	cases := []struct {
		name    string
		mode    string
		fitting int // answers read whole the budget holds at once
	}{
		{"declared length", "declared", 4}, // 3 in the pool, 1 in the reserve
		{"chunked: grown as read", "chunked", 4},
		{"gzip: grown as read", "gzip", 4},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			s := NewStageBudget(100, 2*(3*per+per/2))
			s.chunk = 16 << 10
			var (
				mu       sync.Mutex
				in, peak int
				wg       sync.WaitGroup
			)
			url := fmt.Sprintf("%s/?size=%d&mode=%s", srv.URL, size, c.mode)
			for range 12 {
				wg.Go(func() {
					ctx, pass := s.with(context.Background(), "test", 2*size)
					defer pass.leave()
					if err := call(ctx, client, url); err != nil {
						t.Error(err)
						return
					}
					// The body was read whole: the task holds it, as a page
					// being decoded does.
					mu.Lock()
					in++
					peak = max(peak, in)
					mu.Unlock()
					time.Sleep(5 * time.Millisecond)
					mu.Lock()
					in--
					mu.Unlock()
				})
			}
			wg.Wait()
			if peak > c.fitting || peak < 1 {
				t.Errorf("%d answers in the stage at once, want 1..%d (the budget's)", peak, c.fitting)
			}
			if !stageIdle(s) {
				t.Error("bytes were not given back")
			}
		})
	}
}

// An undeclared answer weighs the cap only until it is read: then what
// it was, so that the next task's answer is taken while the first one is
// still decoded; once encoded only the object weighs, and the place goes.
func TestStageShrinks(t *testing.T) {
	const size = 100 << 10
	srv := sizedServer(t)
	client := &http.Client{Transport: StageTransport(http.DefaultTransport), Timeout: 10 * time.Second}
	s := NewStageBudget(2, weight(4*size)+weight(size))
	ctx1, p1 := s.with(context.Background(), "test", 4*size)
	if err := call(ctx1, client, fmt.Sprintf("%s/?size=%d&mode=chunked", srv.URL, size)); err != nil {
		t.Fatal(err)
	}
	if p1.held != weight(size) {
		t.Errorf("a read answer of %d bytes weighs %d, want %d", size, p1.held, weight(size))
	}
	ctx2, p2 := s.with(context.Background(), "test", 4*size)
	done := make(chan error, 1)
	go func() { done <- call(ctx2, client, fmt.Sprintf("%s/?size=%d&mode=gzip", srv.URL, size)) }()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("a second answer waits although the first one was read and weighs only its size")
	}
	p1.encoded(1000)
	if p1.held != 1000+answerOverhead || p1.slot {
		t.Errorf("encoded: holds %d bytes, place %v; want %d bytes and no place", p1.held, p1.slot, 1000+answerOverhead)
	}
	if !s.sem.TryAcquire(1) {
		t.Error("the encoded task kept its place")
	}
	p1.leave()
	p2.leave()
	if !stageIdle(s) {
		t.Error("bytes were not given back")
	}
}

// A task waiting for the stage gives up when its context ends, holding
// nothing, and its call fails as canceled (retried later).
func TestStageWaitCancelled(t *testing.T) {
	srv := sizedServer(t)
	client := &http.Client{Transport: StageTransport(http.DefaultTransport), Timeout: 10 * time.Second}
	s := NewStageBudget(4, 2*weight(1001))
	// Two answers fill it: one in the pool, one in the reserve.
	ctx1, p1 := s.with(context.Background(), "test", 1000)
	if err := call(ctx1, client, srv.URL+"/?size=1000&mode=declared"); err != nil {
		t.Fatal(err)
	}
	ctx1b, p1b := s.with(context.Background(), "test", 1000)
	if err := call(ctx1b, client, srv.URL+"/?size=1000&mode=declared"); err != nil {
		t.Fatal(err)
	}
	defer p1b.leave()
	ctx, cancel := context.WithCancel(context.Background())
	ctx2, p2 := s.with(ctx, "test", 1000)
	done := make(chan error, 1)
	go func() { done <- call(ctx2, client, srv.URL+"/?size=1000&mode=declared") }()
	time.Sleep(50 * time.Millisecond) // most likely waiting by now; either way it must end
	cancel()
	select {
	case err := <-done:
		if !errors.Is(err, context.Canceled) {
			t.Errorf("err = %v, want context.Canceled", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("a cancelled task still waits for the stage")
	}
	if p2.held != 0 || p2.slot {
		t.Errorf("the cancelled task holds %d bytes, place %v", p2.held, p2.slot)
	}
	p1.leave()
	p1b.leave()
	if !stageIdle(s) {
		t.Error("bytes were not given back")
	}
}

// A vendor's answer over the endpoint's cap fails the page for good
// (fetching it again would pay for the same answer), whether its length
// is declared, undeclared, or hidden by compression (a gzip bomb), and the
// stage is given back; an answer within the cap is a page.
func TestFetchOverCap(t *testing.T) {
	page, err := os.ReadFile("../providers/dataforseo/testdata/backlinks_live.json")
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		// The base URL's path says how to answer: /MODE/SIZE/v3/...
		mode, size, _ := strings.Cut(strings.TrimPrefix(r.URL.Path, "/"), "/")
		body := page
		if strings.HasPrefix(size, "big/") {
			// Valid JSON of 8 MB whose first member the decoder skips.
			body = append([]byte(`{"pad":"`+strings.Repeat("0", 8<<20)+`",`), page[1:]...)
		}
		switch mode {
		case "declared":
			w.Header().Set("Content-Length", strconv.Itoa(len(body)))
			w.Write(body)
		case "chunked":
			w.Write(body)
		case "gzip":
			w.Header().Set("Content-Encoding", "gzip")
			zw := gzip.NewWriter(w)
			zw.Write(body)
			zw.Close()
		}
	}))
	t.Cleanup(srv.Close)
	const capBytes = 1 << 20
	w := &Worker{Stage: NewStageBudget(2, 2*weight(capBytes+1))}
	job := &Job{ID: "j", Date: "2026-12-01"}
	p := &PagePayload{Job: "j", Provider: "dataforseo", Endpoint: "backlinks", Domain: "example.com", Page: 1}
	// The client's own cap, or one above what the stage fits: the stage
	// lowers it and refuses as the client would.
	for _, clientCap := range []int64{capBytes, 64 << 20} {
		for _, mode := range []string{"declared", "chunked", "gzip"} {
			for _, big := range []bool{false, true} {
				t.Run(fmt.Sprintf("client cap %d MiB, %s, big=%v", clientCap>>20, mode, big), func(t *testing.T) {
					base := srv.URL + "/" + mode + "/small"
					if big {
						base = srv.URL + "/" + mode + "/big"
					}
					prov, err := dataforseo.New(dataforseo.Config{Login: "l", Password: "p", BaseURL: base, Conn: providers.Conn{MaxBody: clientCap,
						HTTPClient: &http.Client{Transport: StageTransport(http.DefaultTransport), Timeout: 10 * time.Second}}})
					if err != nil {
						t.Fatal(err)
					}
					st, pass, _, err := w.fetch(context.Background(), job, p, prov)
					pass.leave()
					if big {
						pe, ok := providers.AsError(err)
						if !ok || pe.Class != providers.Fatal || pe.Code != "body too large" || !errors.Is(err, asynq.SkipRetry) {
							t.Errorf("err = %v, want a fatal body too large", err)
						}
					} else if err != nil || st == nil || st.Memo.Records == 0 {
						t.Errorf("fetch: %v", err)
					}
					if !stageIdle(w.Stage) || !w.Stage.sem.TryAcquire(2) {
						t.Fatal("the stage was not given back")
					}
					w.Stage.sem.Release(2)
				})
			}
		}
	}
}

// An endpoint whose answers at the cap do not fit the reserve has its
// cap lowered to what fits, said once in the log; a worker refuses to
// start when that would be below minLoweredCap, naming the memory limit
// that would do.
func TestStageAdmits(t *testing.T) {
	paging := func(caps map[string]int64) func(string) (providers.Paging, error) {
		return func(e string) (providers.Paging, error) {
			c, ok := caps[e]
			if !ok {
				return providers.Paging{}, errors.New("unknown endpoint")
			}
			return providers.Paging{MaxBody: c}, nil
		}
	}
	def := NewStageBudget(4, StageBudget(DefaultMemoryLimit))
	cases := []struct {
		name    string
		limit   int64 // memory limit
		caps    map[string]int64
		lowered string // the endpoints logged as lowered
		ok      bool
	}{
		{"16 MiB caps fit the default", DefaultMemoryLimit, map[string]int64{"a": 16 << 20, "c": 0}, "", true},
		{"exactly what fits", DefaultMemoryLimit, map[string]int64{"a": def.maxBody()}, "", true},
		{"one byte over: lowered", DefaultMemoryLimit, map[string]int64{"a": def.maxBody() + 1}, "[a]", true},
		{"the former 64 MiB cap: lowered", DefaultMemoryLimit, map[string]int64{"a": 1 << 20, "b": 64 << 20}, "[b]", true},
		{"GOMEMLIMIT=100MiB: lowered", 100 << 20, map[string]int64{"a": 16 << 20}, "[a]", true},
		{"GOMEMLIMIT=48MiB: too little", 48 << 20, map[string]int64{"a": 16 << 20}, "", false},
		{"GOMEMLIMIT=48MiB, small caps fit", 48 << 20, map[string]int64{"a": 1 << 20}, "", true},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			s := NewStageBudget(4, StageBudget(c.limit))
			var eps []string
			for e := range c.caps {
				eps = append(eps, e)
			}
			slices.Sort(eps)
			var logged bytes.Buffer
			err := s.Admits("vendor", eps, paging(c.caps), slog.New(slog.NewTextHandler(&logged, nil)))
			if c.ok != (err == nil) {
				t.Fatalf("Admits = %v, want ok=%v", err, c.ok)
			}
			if err != nil {
				if !strings.Contains(err.Error(), "GOMEMLIMIT to at least") {
					t.Errorf("the refusal does not say what to set: %v", err)
				}
				return
			}
			if got := logged.String(); c.lowered == "" && got != "" || c.lowered != "" && !strings.Contains(got, "endpoints="+c.lowered) {
				t.Errorf("logged %q, want the lowered endpoints %q", got, c.lowered)
			}
		})
	}
	if err := (*Stage)(nil).Admits("vendor", []string{"a"}, paging(map[string]int64{"a": 1 << 40}), nil); err != nil {
		t.Errorf("a worker without a stage refuses: %v", err)
	}
	// The limit the refusal names is enough.
	err := NewStageBudget(4, StageBudget(48<<20)).Admits("vendor", []string{"b"}, paging(map[string]int64{"b": 16 << 20}), nil)
	var mib int64
	if _, serr := fmt.Sscanf(err.Error()[strings.Index(err.Error(), "at least ")+len("at least "):], "%dMiB", &mib); serr != nil {
		t.Fatalf("no limit in %q: %v", err, serr)
	}
	if err := NewStageBudget(4, StageBudget(mib<<20)).Admits("vendor", []string{"b"}, paging(map[string]int64{"b": 16 << 20}), nil); err != nil {
		t.Errorf("GOMEMLIMIT=%dMiB, as advised, is refused: %v", mib, err)
	}
}

// Every vendor's endpoints fit a worker with the default memory limit.
func TestStageAdmitsEveryVendor(t *testing.T) {
	s := NewStageBudget(0, StageBudget(DefaultMemoryLimit))
	for _, name := range registry.Names() {
		c, err := registry.Describe(name)
		if err != nil {
			t.Fatal(err)
		}
		var logged bytes.Buffer
		if err := s.Admits(name, c.Endpoints, c.Paging, slog.New(slog.NewTextHandler(&logged, nil))); err != nil || logged.Len() > 0 {
			t.Errorf("%s: %v %s", name, err, logged.String())
		}
	}
}
