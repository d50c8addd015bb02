package tasks

import (
	"context"
	"net/http"
	"runtime"
	"sync"

	"golang.org/x/sync/semaphore"
)

// A page's big buffers (the vendor's body, about 1 MB per 1000 rows, its
// decoded items and the records) live from the moment its body is read
// until it is encoded. Reading, decoding and encoding is CPU work; with
// WORKER_CONCURRENCY tasks of which many have an answer at once, all of
// them would hold their buffers while taking turns on the CPU, and memory
// would grow with the concurrency instead of with the cores. So at most
// a few tasks per core are in that stage at once; the others wait, their
// answer unread in the socket, which costs no time while the cores are
// busy anyway.

// Stage bounds the tasks of a worker in the read-decode-encode stage.
type Stage struct{ sem *semaphore.Weighted }

// NewStage admits n tasks at once; n <= 0 means two per usable core.
func NewStage(n int) *Stage {
	if n <= 0 {
		n = 2 * runtime.GOMAXPROCS(0)
	}
	return &Stage{sem: semaphore.NewWeighted(int64(n))}
}

// StageTransport makes every answer of base wait for a place in the stage
// of its request's task (see stagePass.enter) before its body is read.
// Requests from outside a task pass through. It is the outermost
// transport of a vendor's client, so that the wait for a place comes
// after the wait for the shared limits and the call itself.
func StageTransport(base http.RoundTripper) http.RoundTripper {
	return stageTransport{base: base}
}

type stageTransport struct{ base http.RoundTripper }

func (t stageTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	resp, err := t.base.RoundTrip(req)
	if err != nil {
		return nil, err
	}
	if p, ok := req.Context().Value(stageKey{}).(*stagePass); ok {
		p.enter()
	}
	return resp, nil
}

type stageKey struct{}

// stagePass is one task's place in the stage: taken when its first answer
// arrives, kept through further calls of the same task, given back by
// leave once the page is encoded or has failed.
type stagePass struct {
	s    *Stage
	mu   sync.Mutex
	held bool
}

// with returns ctx carrying a pass for one task; call leave when done.
func (s *Stage) with(ctx context.Context) (context.Context, *stagePass) {
	if s == nil {
		return ctx, nil
	}
	p := &stagePass{s: s}
	return context.WithValue(ctx, stageKey{}, p), p
}

// enter waits for a place. It ignores cancellation: the answer it guards
// is paid for and places are held only for CPU work, so the wait is
// short, and giving up would throw the page away to fetch it again.
func (p *stagePass) enter() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.held {
		return
	}
	_ = p.s.sem.Acquire(context.Background(), 1) // fails only on a cancelled context
	p.held = true
}

func (p *stagePass) leave() {
	if p == nil {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.held {
		p.held = false
		p.s.sem.Release(1)
	}
}
