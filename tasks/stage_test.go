package tasks

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
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
			var in, peak, done atomic.Int32
			var wg sync.WaitGroup
			for range c.work {
				wg.Go(func() {
					ctx, pass := s.with(context.Background())
					defer pass.leave()
					get(t, ctx, client, srv.URL)
					// Inside the stage from the answer on: count, hold a moment
					// (the CPU work), and call again, which must not wait for
					// a second place.
					n := in.Add(1)
					for {
						p := peak.Load()
						if n <= p || peak.CompareAndSwap(p, n) {
							break
						}
					}
					time.Sleep(5 * time.Millisecond)
					get(t, ctx, client, srv.URL)
					in.Add(-1)
					pass.leave()
					done.Add(1)
				})
			}
			wg.Wait()
			if int(done.Load()) != c.work {
				t.Fatalf("%d of %d tasks done", done.Load(), c.work)
			}
			if p := int(peak.Load()); p > c.slots || p < 1 {
				t.Errorf("%d tasks in the stage at once, want 1..%d", p, c.slots)
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
