package tasks

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"math"
	"net/http"
	"runtime"
	"runtime/debug"
	"sync"

	"golang.org/x/sync/semaphore"

	"github.com/linkharvest/linkharvest/providers"
)

// A page's big buffers (the vendor's body, its decoded items and records,
// the encoded object) live from the moment its answer arrives until the
// object is written. With WORKER_CONCURRENCY tasks of which many have an
// answer at once, memory would grow with the concurrency and with what
// the vendors send. So the stage bounds two things:
//
//   - places: at most a few tasks per core read, decode and encode at
//     once (CPU work: more at once only holds more buffers);
//   - bytes: the memory those tasks hold, estimated from their answers'
//     sizes, stays within a budget taken from the worker's memory limit.
//
// An answer of declared length weighs what that length costs from its
// arrival. One of unknown length (chunked, or compressed and decompressed
// by the transport, as a gzip bomb is) weighs its first MiB, then more as
// it is read: in doubling steps taken from the general pool while it has
// room, else by taking the whole reserve, which covers an answer at the
// endpoint's cap. One answer at a time holds the reserve and it never
// waits for more, so tasks waiting for it always get it in turn: nobody
// waits while holding bytes another waiter needs. Once read, an answer
// weighs what it was; once encoded, only the encoded object until it is
// written. Tasks that cannot enter wait, their answer unread in the socket.

// bytesPerBodyByte is the memory a page holds per byte of its body at
// its peak: the body, the decoded items (encoding/json copies raw items
// out of the body), the records' fields and the encoded object, and the
// garbage of growing an undeclared body. With answers at the cap,
// bench/memory shows what it buys: peak RSS within the memory limit.
const bytesPerBodyByte = 3

// answerOverhead is what any answer costs besides its body (buffers of
// the transport, the decoder and the encoder).
const answerOverhead = 64 << 10

// DefaultMemoryLimit is the Go memory limit of a worker whose environment
// sets none (GOMEMLIMIT): with the binary's own pages, the worker stays
// under 256 MiB of RSS.
const DefaultMemoryLimit = 200 << 20

// SetDefaultMemoryLimit applies DefaultMemoryLimit unless GOMEMLIMIT set a
// limit, and returns the limit in force. For a worker's main: a library
// must not set a process-wide limit.
func SetDefaultMemoryLimit(getenv func(string) string) int64 {
	if getenv("GOMEMLIMIT") == "" {
		debug.SetMemoryLimit(DefaultMemoryLimit)
	}
	return debug.SetMemoryLimit(-1)
}

// StageBudget is the bytes the stage lets pages hold for a memory limit:
// half of it, the rest being the worker's own heap and the garbage
// collector's headroom. No limit (math.MaxInt64) counts as
// DefaultMemoryLimit.
func StageBudget(memoryLimit int64) int64 {
	if memoryLimit <= 0 || memoryLimit == math.MaxInt64 {
		memoryLimit = DefaultMemoryLimit
	}
	return memoryLimit / 2
}

// Stage bounds the tasks of a worker between the arrival of an answer
// and the end of its page's write, in places and in bytes.
type Stage struct {
	sem     *semaphore.Weighted // places
	general *semaphore.Weighted // half the budget
	reserve *semaphore.Weighted // the other half, taken whole
	budget  int64
	rsize   int64 // the reserve's size
	chunk   int64 // what an answer of unknown length weighs at first
}

// NewStage admits n tasks at once (n <= 0: two per usable core) holding
// at most StageBudget of the process's memory limit (GOMEMLIMIT).
func NewStage(n int) *Stage {
	return NewStageBudget(n, StageBudget(debug.SetMemoryLimit(-1)))
}

// NewStageBudget admits n tasks at once (n <= 0: two per usable core)
// holding at most budget bytes.
func NewStageBudget(n int, budget int64) *Stage {
	if n <= 0 {
		n = 2 * runtime.GOMAXPROCS(0)
	}
	r := budget / 2
	return &Stage{sem: semaphore.NewWeighted(int64(n)), general: semaphore.NewWeighted(budget - r), reserve: semaphore.NewWeighted(r),
		budget: budget, rsize: r, chunk: 1 << 20}
}

// Budget is the bytes the stage lets tasks hold at once.
func (s *Stage) Budget() int64 { return s.budget }

// weight is what a page holds for a body of size bytes.
func weight(size int64) int64 { return bytesPerBodyByte*max(size, 0) + answerOverhead }

// minLoweredCap is the smallest body cap a worker lowers an endpoint's
// cap to for its memory limit: twice the largest page the vendors
// document (about 2.5 MB). Below it a worker refuses to start.
const minLoweredCap = 5 << 20

// maxBody is the largest body an answer may have to fit the reserve.
func (s *Stage) maxBody() int64 { return (s.rsize-answerOverhead)/bytesPerBodyByte - 1 }

// Admits checks that an answer at each endpoint's body cap fits the
// reserve (a quarter of the memory limit), so that such an answer can be
// taken at all. A cap that does not fit is lowered to what fits (the
// stage refuses longer bodies as the client would, fatally), and said
// once in log; if that is below minLoweredCap, pages the vendors really
// send would fail, so the worker refuses to start.
func (s *Stage) Admits(provider string, endpoints []string, paging func(string) (providers.Paging, error), log *slog.Logger) error {
	if s == nil {
		return nil
	}
	var lowered []string
	for _, e := range endpoints {
		pg, err := paging(e)
		if err != nil {
			return err
		}
		c := bodyCap(pg)
		if c <= s.maxBody() {
			continue
		}
		if s.maxBody() < minLoweredCap {
			need := weight(minLoweredCap + 1)
			return fmt.Errorf("%s %s: the worker's memory limit leaves %d MiB for one answer (a quarter of GOMEMLIMIT), "+
				"too little for answers of %d MiB: raise GOMEMLIMIT to at least %dMiB", provider, e, s.rsize>>20, minLoweredCap>>20, (4*need+1<<20-1)>>20)
		}
		lowered = append(lowered, e)
	}
	if len(lowered) > 0 && log != nil {
		log.Warn("answers capped lower than the endpoints' caps to fit the memory limit (GOMEMLIMIT)",
			"provider", provider, "endpoints", lowered, "cap_bytes", s.maxBody())
	}
	return nil
}

// bodyCap is the largest body an endpoint's client reads.
func bodyCap(pg providers.Paging) int64 {
	if pg.MaxBody > 0 {
		return pg.MaxBody
	}
	return providers.DefaultMaxBody
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
	p, ok := req.Context().Value(stageKey{}).(*stagePass)
	if !ok {
		return resp, nil
	}
	// -1 when chunked or decompressed by the transport; a longer one than
	// the cap is refused by the client once it has read past the cap.
	size := resp.ContentLength
	if size > p.max {
		size = -1
	}
	covered, err := p.enter(req.Context(), size)
	if err != nil {
		resp.Body.Close()
		return nil, err
	}
	resp.Body = &stageBody{ReadCloser: resp.Body, p: p, ctx: req.Context(), covered: covered}
	return resp, nil
}

// stageBody weighs more as more of a body of unknown length is read, and
// lowers its task's weight to what the body really was at its end.
type stageBody struct {
	io.ReadCloser
	p       *stagePass
	ctx     context.Context
	n       int64 // read so far
	covered int64 // bytes the task's weight covers
}

func (b *stageBody) Read(buf []byte) (int, error) {
	if b.n+int64(len(buf)) > b.covered {
		c, err := b.p.grow(b.ctx, max(2*b.covered, b.n+int64(len(buf))))
		if err != nil {
			return 0, err
		}
		b.covered = c
		if b.n > b.p.max {
			// Past a cap lowered below the client's (the client stops at
			// its own cap and one byte): refused as the client would.
			return 0, &providers.Error{Provider: b.p.provider, Class: providers.Fatal, Code: "body too large",
				Message: fmt.Sprintf("response body exceeds the cap of %d bytes (lowered to fit the memory limit)", b.p.max)}
		}
		if over := b.n + int64(len(buf)) - b.covered; over > 0 {
			buf = buf[:int64(len(buf))-over]
		}
	}
	n, err := b.ReadCloser.Read(buf)
	b.n += int64(n)
	if err == io.EOF {
		b.p.shrink(weight(b.n))
	}
	return n, err
}

type stageKey struct{}

// stagePass is one task's place in the stage: taken when its first answer
// arrives, kept through further calls of the same task, given back by
// leave once the page is written or has failed.
type stagePass struct {
	s        *Stage
	provider string
	max      int64 // the endpoint's body cap, or lower (Admits)
	mu       sync.Mutex
	slot     bool  // holds a place
	held     int64 // bytes held from the general pool
	reserved bool  // holds the whole reserve
}

// with returns ctx carrying a pass for one task of an endpoint whose
// bodies are capped at maxBody (or lower, to fit the reserve: see
// Admits); call leave when done.
func (s *Stage) with(ctx context.Context, provider string, maxBody int64) (context.Context, *stagePass) {
	if s == nil {
		return ctx, nil
	}
	if maxBody <= 0 {
		maxBody = providers.DefaultMaxBody
	}
	p := &stagePass{s: s, provider: provider, max: min(maxBody, s.maxBody())}
	return context.WithValue(ctx, stageKey{}, p), p
}

func (p *stagePass) weighs() int64 {
	if p.reserved {
		return p.held + p.s.rsize
	}
	return p.held
}

// enter waits for a place and for the weight of an answer of size bytes
// (-1: unknown, weighed as its first chunk) and returns the bytes of body
// that weight covers. It gives up when the task's context ends: asynq has
// then given the task up (its deadline, or a shutdown), and the page
// could not be written anyway. A further call of a task in the stage
// keeps its place; if its answer weighs more, the task gives its bytes
// back before it waits for the new weight, so that it never waits while
// holding bytes.
func (p *stagePass) enter(ctx context.Context, size int64) (int64, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	covered := size
	if size < 0 {
		covered = min(p.max+1, p.s.chunk)
	}
	w := weight(covered)
	if !p.slot {
		if err := p.s.sem.Acquire(ctx, 1); err != nil {
			return 0, err
		}
		p.slot = true
	}
	if w <= p.weighs() {
		return covered, nil
	}
	p.releaseBytes()
	// The general pool if it has room at once, else the reserve if it is
	// free, else wait for the pool (in turn) or, for an answer too big for
	// it, for the reserve, which covers any answer up to the cap.
	var err error
	fits := w <= p.s.budget-p.s.rsize
	switch {
	case fits && p.s.general.TryAcquire(w):
		p.held = w
	case p.s.reserve.TryAcquire(p.s.rsize):
		p.reserved, covered = true, p.max+1
	case fits:
		if err = p.s.general.Acquire(ctx, w); err == nil {
			p.held = w
		}
	default:
		if err = p.s.reserve.Acquire(ctx, p.s.rsize); err == nil {
			p.reserved, covered = true, p.max+1
		}
	}
	if err != nil {
		p.slot = false
		p.s.sem.Release(1)
		return 0, err
	}
	return covered, nil
}

// grow makes the task's weight cover to bytes of body (at most the cap
// and one byte, which tells the client the body is over the cap), from
// the general pool if it has room, else by waiting for the reserve. It
// returns the bytes now covered.
func (p *stagePass) grow(ctx context.Context, to int64) (int64, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	to = min(to, p.max+1)
	if p.reserved {
		return p.max + 1, nil
	}
	if w := weight(to); w <= p.held {
		return to, nil
	} else if p.s.general.TryAcquire(w - p.held) {
		p.held = w
		return to, nil
	}
	if err := p.s.reserve.Acquire(ctx, p.s.rsize); err != nil {
		return 0, err
	}
	p.reserved = true
	return p.max + 1, nil
}

// shrink lowers the bytes held to w (if more are held), giving the
// reserve back as soon as the general pool can hold the rest.
func (p *stagePass) shrink(w int64) {
	if p == nil {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.reserved && (w <= p.held || p.s.general.TryAcquire(w-p.held)) {
		p.held = max(p.held, w)
		p.reserved = false
		p.s.reserve.Release(p.s.rsize)
	}
	if !p.reserved && w < p.held {
		p.s.general.Release(p.held - w)
		p.held = w
	}
}

// encoded says the page is encoded into an object of size bytes: the
// CPU work is done, so the place goes back, and only the object's bytes
// are held until it is written.
func (p *stagePass) encoded(size int64) {
	if p == nil {
		return
	}
	p.shrink(size + answerOverhead)
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.slot {
		p.slot = false
		p.s.sem.Release(1)
	}
}

// releaseBytes gives back every byte held; p.mu is held.
func (p *stagePass) releaseBytes() {
	if p.held > 0 {
		p.s.general.Release(p.held)
		p.held = 0
	}
	if p.reserved {
		p.reserved = false
		p.s.reserve.Release(p.s.rsize)
	}
}

func (p *stagePass) leave() {
	if p == nil {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.slot {
		p.slot = false
		p.s.sem.Release(1)
	}
	p.releaseBytes()
}
