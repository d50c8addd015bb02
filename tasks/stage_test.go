package tasks

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/linkharvest/linkharvest/providers"
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
					ctx, pass := s.with(context.Background())
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
	ctx1, p1 := s.with(context.Background())
	get(t, ctx1, client, srv.URL) // takes the only place

	get(t, context.Background(), client, srv.URL) // no task: not held back

	entered, left := make(chan struct{}), make(chan struct{})
	go func() {
		ctx2, p2 := s.with(context.Background())
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
	if ctx, p := (*Stage)(nil).with(context.Background()); p != nil || ctx.Value(stageKey{}) != nil {
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
				st  *stashed
				err error
			)
			go func() { defer close(done); st, err = w.fetch(context.Background(), job, p, prov) }()
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
			if !w.Stage.sem.TryAcquire(1) {
				t.Fatal("the place was not given back")
			}
			w.Stage.sem.Release(1)
		})
	}
}
