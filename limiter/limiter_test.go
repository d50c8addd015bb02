package limiter

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/linkharvest/linkharvest/internal/testenv"
)

// Child processes: the test binary re-executes itself with childEnv set to
// a mode, and the child talks to the parent through its standard output.
const (
	childEnv = "LIMITER_TEST_CHILD"
	// hammer: print "ready", read "start UNIXNANO" from standard input, run
	// workers that call through the limiter from then on, and print
	// "call START END" (Unix nanoseconds) for each call.
	modeHammer = "hammer"
	// hold: take slots, print "held", renew them until killed (a minute at most).
	modeHold = "hold"
)

func TestMain(m *testing.M) {
	if mode := os.Getenv(childEnv); mode != "" {
		os.Exit(child(mode))
	}
	os.Exit(testenv.Main(m))
}

// hammerSpec is one hammer run, shared by the parent's in-process clients
// and the child processes (through the environment).
type hammerSpec struct {
	Addr       string
	Name       string
	Limit      Limit
	Workers    int           // goroutines per client
	Start      time.Time     // every client starts at this moment (set once all are ready)
	Duration   time.Duration // no call starts after Start+Duration
	MinLatency time.Duration // the fake call sleeps a uniform time in [Min, Max]
	MaxLatency time.Duration
}

func (s hammerSpec) env(mode string) []string {
	return []string{
		childEnv + "=" + mode,
		"LIMITER_TEST_ADDR=" + s.Addr,
		"LIMITER_TEST_NAME=" + s.Name,
		"LIMITER_TEST_LIMIT=" + s.Limit.String(),
		"LIMITER_TEST_WORKERS=" + strconv.Itoa(s.Workers),
		"LIMITER_TEST_DURATION=" + s.Duration.String(),
		"LIMITER_TEST_LATENCY=" + s.MinLatency.String() + "," + s.MaxLatency.String(),
	}
}

func specFromEnv() (hammerSpec, error) {
	s := hammerSpec{Addr: os.Getenv("LIMITER_TEST_ADDR"), Name: os.Getenv("LIMITER_TEST_NAME")}
	m, err := ParseLimits("x=" + os.Getenv("LIMITER_TEST_LIMIT"))
	if err != nil {
		return s, err
	}
	s.Limit = m["x"]
	if s.Workers, err = strconv.Atoi(os.Getenv("LIMITER_TEST_WORKERS")); err != nil {
		return s, err
	}
	if s.Duration, err = time.ParseDuration(os.Getenv("LIMITER_TEST_DURATION")); err != nil {
		return s, err
	}
	lo, hi, _ := strings.Cut(os.Getenv("LIMITER_TEST_LATENCY"), ",")
	if s.MinLatency, err = time.ParseDuration(lo); err != nil {
		return s, err
	}
	s.MaxLatency, err = time.ParseDuration(hi)
	return s, err
}

func child(mode string) int {
	s, err := specFromEnv()
	if err != nil {
		fmt.Fprintln(os.Stderr, "child:", err)
		return 2
	}
	rdb := redis.NewClient(&redis.Options{Addr: s.Addr})
	defer rdb.Close()
	lim := New(rdb, s.Name, s.Limit)
	out := bufio.NewWriter(os.Stdout)
	switch mode {
	case modeHammer:
		if err := rdb.Ping(context.Background()).Err(); err != nil {
			fmt.Fprintln(os.Stderr, "child:", err)
			return 2
		}
		fmt.Fprintln(out, "ready")
		out.Flush()
		var ns int64
		if _, err := fmt.Fscanf(os.Stdin, "start %d\n", &ns); err != nil {
			fmt.Fprintln(os.Stderr, "child: reading the start time:", err)
			return 2
		}
		s.Start = time.Unix(0, ns)
		calls, err := hammer(lim, s)
		for _, c := range calls {
			fmt.Fprintf(out, "call %d %d\n", c.start, c.end)
		}
		if err != nil {
			fmt.Fprintln(out, "error", err)
		}
		fmt.Fprintf(out, "stats %+v\n", lim.Stats())
		out.Flush()
		if err != nil {
			return 1
		}
		return 0
	case modeHold:
		for range s.Workers {
			if _, err := lim.Acquire(context.Background()); err != nil {
				fmt.Fprintln(os.Stderr, "child:", err)
				return 1
			}
		}
		fmt.Fprintln(out, "held")
		out.Flush()
		time.Sleep(time.Minute) // renew until killed (or give up, should the parent be gone)
		return 0
	}
	fmt.Fprintln(os.Stderr, "child: unknown mode", mode)
	return 2
}

type call struct{ start, end int64 } // Unix nanoseconds

// hammer runs s.Workers goroutines that acquire, "call" (sleep) and
// release until s.Duration after s.Start. A call's start is taken after
// Acquire returns and its end before Release, so the recorded intervals
// lie inside the leases.
func hammer(lim *Limiter, s hammerSpec) ([]call, error) {
	time.Sleep(time.Until(s.Start))
	stop := s.Start.Add(s.Duration)
	ctx, cancel := context.WithDeadline(context.Background(), stop)
	defer cancel()
	var (
		mu    sync.Mutex
		calls []call
		wg    sync.WaitGroup
		first error
	)
	for range s.Workers {
		wg.Go(func() {
			for {
				le, err := lim.Acquire(ctx)
				if err != nil {
					if !errors.Is(err, ErrWaitEnded) {
						mu.Lock()
						first = firstErr(first, err)
						mu.Unlock()
					}
					return
				}
				start := time.Now().UnixNano()
				lat := s.MinLatency
				if s.MaxLatency > s.MinLatency {
					lat += rand.N(s.MaxLatency - s.MinLatency)
				}
				time.Sleep(lat)
				end := time.Now().UnixNano()
				le.Release(ctx)
				// A lease ends at Release or when Acquire's context ends,
				// whichever is first (a real call is cut off with its
				// context; this sleep is not). A call still running at the
				// deadline held its slot only until then, and one that
				// started after it held none: counting them as they ran
				// would show slots that other processes rightly reused.
				if start >= stop.UnixNano() {
					continue
				}
				end = min(end, stop.UnixNano())
				mu.Lock()
				calls = append(calls, call{start, end})
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	return calls, first
}

func firstErr(a, b error) error {
	if a != nil {
		return a
	}
	return b
}

// runHammer runs the spec in `procs` child processes and `clients`
// in-process limiters (each with its own Redis client) at once, and
// returns every call. The run starts once every child is ready, so a
// child slow to start (a loaded machine) does not thin out the run.
// It sets s.Start.
func runHammer(t *testing.T, s *hammerSpec, procs, clients int) []call {
	t.Helper()
	var (
		mu    sync.Mutex
		calls []call
		wg    sync.WaitGroup
	)
	type proc struct {
		cmd    *exec.Cmd
		stdin  io.WriteCloser
		sc     *bufio.Scanner
		stderr *strings.Builder
	}
	var children []proc
	t.Cleanup(func() {
		for _, c := range children {
			_ = c.cmd.Process.Kill()
		}
	})
	for range procs {
		cmd := exec.Command(os.Args[0], "-test.run=^$")
		cmd.Env = append(os.Environ(), s.env(modeHammer)...)
		stderr := &strings.Builder{}
		cmd.Stderr = stderr
		stdout, err := cmd.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		stdin, err := cmd.StdinPipe()
		if err != nil {
			t.Fatal(err)
		}
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		children = append(children, proc{cmd, stdin, bufio.NewScanner(stdout), stderr})
	}
	for i, c := range children {
		if !c.sc.Scan() || c.sc.Text() != "ready" {
			_ = c.cmd.Wait()
			t.Fatalf("child %d did not get ready: %q %v: %s", i, c.sc.Text(), c.sc.Err(), c.stderr)
		}
	}
	s.Start = time.Now().Add(200 * time.Millisecond)
	for _, c := range children {
		fmt.Fprintf(c.stdin, "start %d\n", s.Start.UnixNano())
		c.stdin.Close()
	}
	for i, c := range children {
		cmd, sc, stderr := c.cmd, c.sc, c.stderr
		wg.Go(func() {
			var mine []call
			for sc.Scan() {
				line := sc.Text()
				var c call
				if _, err := fmt.Sscanf(line, "call %d %d", &c.start, &c.end); err == nil {
					mine = append(mine, c)
				} else {
					t.Logf("child %d: %s", i, line)
				}
			}
			if err := cmd.Wait(); err != nil {
				t.Errorf("child %d: %v: %s", i, err, stderr.String())
			}
			mu.Lock()
			calls = append(calls, mine...)
			mu.Unlock()
		})
	}
	for i := range clients {
		wg.Go(func() {
			rdb := redis.NewClient(&redis.Options{Addr: s.Addr})
			defer rdb.Close()
			lim := New(rdb, s.Name, s.Limit)
			mine, err := hammer(lim, *s)
			if err != nil {
				t.Errorf("client %d: %v", i, err)
			}
			t.Logf("client %d: %+v", i, lim.Stats())
			mu.Lock()
			calls = append(calls, mine...)
			mu.Unlock()
		})
	}
	wg.Wait()
	slices.SortFunc(calls, func(a, b call) int { return int(a.start - b.start) })
	return calls
}

// maxInWindow is the most call starts in any closed window [t, t+period].
func maxInWindow(calls []call, period time.Duration) (n int, at int64) {
	for i, j := 0, 0; i < len(calls); i++ {
		for j < len(calls) && calls[j].start <= calls[i].start+int64(period) {
			j++
		}
		if j-i > n {
			n, at = j-i, calls[i].start
		}
	}
	return n, at
}

// maxInFlight is the most calls running at one instant; a call that ends
// at the very nanosecond another starts counts as overlapping.
func maxInFlight(calls []call) int {
	top, _ := maxInFlightAt(calls)
	return top
}

// maxInFlightAt is maxInFlight and when it was first reached (ns).
func maxInFlightAt(calls []call) (int, int64) {
	type ev struct {
		t     int64
		delta int
	}
	evs := make([]ev, 0, 2*len(calls))
	for _, c := range calls {
		evs = append(evs, ev{c.start, +1}, ev{c.end, -1})
	}
	slices.SortFunc(evs, func(a, b ev) int {
		if a.t != b.t {
			return int(a.t - b.t)
		}
		return b.delta - a.delta // starts first
	})
	n, top, at := 0, 0, int64(0)
	for _, e := range evs {
		n += e.delta
		if n > top {
			top, at = n, e.t
		}
	}
	return top, at
}

// busy is the call time inside [from, to], summed over calls.
func busy(calls []call, from, to time.Time) time.Duration {
	var d int64
	for _, c := range calls {
		s, e := max(c.start, from.UnixNano()), min(c.end, to.UnixNano())
		if e > s {
			d += e - s
		}
	}
	return time.Duration(d)
}

func startedIn(calls []call, from, to time.Time) int {
	n := 0
	for _, c := range calls {
		if c.start >= from.UnixNano() && c.start < to.UnixNano() {
			n++
		}
	}
	return n
}

// The TestSharedLimits tests: three processes and two in-process clients,
// each with four goroutines, hammer one account. No closed window of the
// period may hold more than the limit, and no more calls than the limit
// may run at once. (Not parallel: the runs also measure utilisation.)

// TestSharedLimitsRateBound: fast calls, so the rate binds (about one of
// five slots busy). Longer than the period, so windows slide over the
// bucket's steady state, where the bound is tight.
func TestSharedLimitsRateBound(t *testing.T) {
	hammerTest(t, Limit{300, 10 * time.Second, 5}, 12*time.Second, 5*time.Millisecond, 40*time.Millisecond, 0.95)
}

// TestSharedLimitsInFlightBound: slow calls, so the slots bind (5/75 ms =
// 67/s against 300/s).
func TestSharedLimitsInFlightBound(t *testing.T) {
	hammerTest(t, Limit{3000, 10 * time.Second, 5}, 6*time.Second, 25*time.Millisecond, 125*time.Millisecond, 0.95)
}

// TestSharedLimitsBothBind: both about equally (5/180 ms = 28/s against
// 29.6/s). Neither bound alone can be reached then, so the floor is lower.
func TestSharedLimitsBothBind(t *testing.T) {
	hammerTest(t, Limit{300, 10 * time.Second, 5}, 12*time.Second, 60*time.Millisecond, 300*time.Millisecond, 0.85)
}

func hammerTest(t *testing.T, lim Limit, dur, minLat, maxLat time.Duration, target float64) {
	rs := testenv.Redis(t)
	s := hammerSpec{Addr: rs.Addr, Name: "hammer", Limit: lim, Workers: 4,
		Duration: dur, MinLatency: minLat, MaxLatency: maxLat}
	calls := runHammer(t, &s, 3, 2)
	if t.Failed() {
		return
	}
	win, at := maxInWindow(calls, lim.Period)
	fl, flAt := maxInFlightAt(calls)
	// Utilisation in the steady state (after the first second).
	from, to := s.Start.Add(time.Second), s.Start.Add(s.Duration)
	rate := float64(startedIn(calls, from, to)) / to.Sub(from).Seconds()
	meanLat := (minLat + maxLat) / 2
	bound := min(float64(lim.Rate)/lim.Period.Seconds(), float64(lim.InFlight)/meanLat.Seconds())
	slotUse := busy(calls, from, to).Seconds() / (float64(lim.InFlight) * to.Sub(from).Seconds())
	t.Logf("%s: %d calls by 20 workers in 5 clients (3 processes); most in a %s window: %d (limit %d, bucket allows %d) at +%s; most in flight: %d (limit %d) at +%s",
		lim, len(calls), lim.Period, win, lim.Rate, lim.maxPerWindow(),
		time.Duration(at-s.Start.UnixNano()).Round(time.Millisecond), fl, lim.InFlight,
		time.Duration(flAt-s.Start.UnixNano()).Round(time.Millisecond))
	t.Logf("steady state: %.1f calls/s = %.3f of min(rate, in-flight/mean latency) = %.1f/s; slots busy %.3f of the time",
		rate, rate/bound, bound, slotUse)
	if win > lim.Rate {
		t.Errorf("%d calls in the %s window from +%s; limit %d", win, lim.Period,
			time.Duration(at-s.Start.UnixNano()), lim.Rate)
	}
	if fl > lim.InFlight {
		t.Errorf("%d calls in flight at once; limit %d", fl, lim.InFlight)
	}
	checkUtilisation(t, rate/bound, target)
}

// TestKilledHolderSlotsComeBack: a process holds every slot, renews them
// past their TTL, and is SIGKILLed; the slots must come back within the
// lease TTL.
func TestKilledHolderSlotsComeBack(t *testing.T) {
	t.Parallel()
	rs := testenv.Redis(t)
	lim := Limit{Rate: 0, Period: time.Minute, InFlight: 3}
	s := hammerSpec{Addr: rs.Addr, Name: "kill", Limit: lim, Workers: 3}
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), s.env(modeHold)...)
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	line, err := bufio.NewReader(stdout).ReadString('\n')
	if err != nil || line != "held\n" {
		t.Fatalf("child said %q, %v", line, err)
	}

	l := New(rs.Client(t), "kill", lim)
	// Past the TTL the child's renewals still hold every slot.
	ctx, cancel := context.WithTimeout(context.Background(), DefaultLeaseTTL+time.Second)
	_, err = l.Acquire(ctx)
	cancel()
	if !errors.Is(err, ErrWaitEnded) {
		t.Fatalf("Acquire while a live process holds every slot: %v; want ErrWaitEnded", err)
	}

	if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	killed := time.Now()
	ctx, cancel = context.WithTimeout(context.Background(), DefaultLeaseTTL+2*time.Second)
	defer cancel()
	var leases []*Lease
	for range lim.InFlight {
		le, err := l.Acquire(ctx)
		if err != nil {
			t.Fatalf("slots of a killed holder did not come back within %s: %v", DefaultLeaseTTL+2*time.Second, err)
		}
		leases = append(leases, le)
	}
	back := time.Since(killed)
	t.Logf("all %d slots back %s after SIGKILL (lease TTL %s)", lim.InFlight, back.Round(time.Millisecond), DefaultLeaseTTL)
	if back > DefaultLeaseTTL+500*time.Millisecond {
		t.Errorf("slots came back after %s; lease TTL is %s", back, DefaultLeaseTTL)
	}
	for _, le := range leases {
		le.Release(ctx)
	}
}

// TestBackoffPausesEveryClient: one client's Backoff delays another
// client's Acquire (separate Redis connections, as separate workers).
func TestBackoffPausesEveryClient(t *testing.T) {
	t.Parallel()
	rs := testenv.Redis(t)
	lim := Limit{Rate: 1000, Period: time.Second, InFlight: 10}
	a := New(rs.Client(t), "backoff", lim)
	b := New(rs.Client(t), "backoff", lim)
	ctx := context.Background()

	if err := a.Backoff(ctx, 800*time.Millisecond); err != nil {
		t.Fatal(err)
	}
	if err := a.Backoff(ctx, 100*time.Millisecond); err != nil { // does not shorten the pause
		t.Fatal(err)
	}
	start := time.Now()
	le, err := b.Acquire(ctx)
	if err != nil {
		t.Fatal(err)
	}
	le.Release(ctx)
	waited := time.Since(start)
	t.Logf("Acquire waited %s after another client's Backoff(800ms)", waited.Round(time.Millisecond))
	if waited < 750*time.Millisecond || waited > 5*time.Second {
		t.Errorf("Acquire waited %s; want about 800ms", waited)
	}
	if st := b.Stats(); st.CooldownWaits == 0 || st.Waited != 1 {
		t.Errorf("stats %+v: want a cooldown wait", st)
	}

	// A pause ends a waiting Acquire with ErrWaitEnded when ctx ends first.
	if err := a.Backoff(ctx, 10*time.Second); err != nil {
		t.Fatal(err)
	}
	short, cancel := context.WithTimeout(ctx, 200*time.Millisecond)
	defer cancel()
	var lerr *Error
	if _, err := b.Acquire(short); !errors.Is(err, ErrWaitEnded) || !errors.Is(err, context.DeadlineExceeded) ||
		!errors.As(err, &lerr) || lerr.Provider != b.name {
		t.Errorf("Acquire during a long pause: %v; want a limiter *Error of the provider wrapping ErrWaitEnded and DeadlineExceeded", err)
	}
}

// TestWaitingHoldsNoSlot: while every waiter waits for a rate token, no
// slot is held, and a waiter whose ctx ends leaves nothing behind.
func TestWaitingHoldsNoSlot(t *testing.T) {
	t.Parallel()
	rs := testenv.Redis(t)
	rdb := rs.Client(t)
	lim := Limit{Rate: 2, Period: 2 * time.Second, InFlight: 5}
	l := New(rdb, "nohold", lim)
	ctx := context.Background()
	var held []*Lease
	for range lim.maxPerWindow() { // drain the bucket
		le, err := l.Acquire(ctx)
		if err != nil {
			t.Fatal(err)
		}
		held = append(held, le)
	}
	for _, le := range held {
		le.Release(ctx)
	}
	wctx, cancel := context.WithTimeout(ctx, 700*time.Millisecond)
	defer cancel()
	var wg sync.WaitGroup
	var maxHeld atomic.Int64
	for range 8 {
		wg.Go(func() {
			if le, err := New(rs.Client(t), "nohold", lim).Acquire(wctx); err == nil {
				le.Release(ctx)
				t.Error("got a token from an empty bucket")
			}
		})
	}
	wg.Go(func() {
		for wctx.Err() == nil {
			n, _ := rdb.ZCard(ctx, "{lh:limit:nohold}:inflight").Result()
			maxHeld.Store(max(maxHeld.Load(), n))
			time.Sleep(time.Millisecond)
		}
	})
	wg.Wait()
	if n, _ := rdb.ZCard(ctx, "{lh:limit:nohold}:inflight").Result(); n != 0 {
		t.Errorf("%d slots held after every waiter gave up", n)
	}
	t.Logf("8 waiters for a token: at most %d slot(s) held for an instant while checking", maxHeld.Load())
	// A slot is taken for one round trip before the bucket says no, one
	// waiter per process at a time; 8 clients = 8 processes here.
	if maxHeld.Load() > 8 {
		t.Errorf("%d slots held at once by waiters", maxHeld.Load())
	}
}

// TestLeaseLifecycle: Release is idempotent and nil-safe; a lease dies
// with the ctx given to Acquire; renewal keeps a lease past its TTL.
func TestLeaseLifecycle(t *testing.T) {
	t.Parallel()
	rs := testenv.Redis(t)
	rdb := rs.Client(t)
	ctx := context.Background()
	key := "{lh:limit:life}:inflight"
	l := New(rdb, "life", Limit{Rate: 100, Period: time.Second, InFlight: 2}, WithLeaseTTL(time.Second))
	count := func() int64 { n, _ := rdb.ZCard(ctx, key).Result(); return n }

	le, err := l.Acquire(ctx)
	if err != nil {
		t.Fatal(err)
	}
	time.Sleep(2500 * time.Millisecond) // 2.5 TTLs: renewal keeps it
	if n := count(); n != 1 {
		t.Fatalf("%d leases after 2.5 TTLs of renewal; want 1", n)
	}
	le.Release(ctx)
	le.Release(ctx)
	(*Lease)(nil).Release(ctx)
	if n := count(); n != 0 {
		t.Fatalf("%d leases after Release", n)
	}
	if st := l.Stats(); st.Held != 0 || st.Acquired != 1 || st.LostLeases != 0 {
		t.Errorf("stats %+v", st)
	}

	cctx, cancel := context.WithCancel(ctx)
	if _, err := l.Acquire(cctx); err != nil {
		t.Fatal(err)
	}
	cancel()
	deadline := time.Now().Add(time.Second)
	for count() != 0 && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	if n := count(); n != 0 {
		t.Fatalf("lease outlived its ctx: %d held", n)
	}

	// A lease whose holder stalled past the TTL is counted again.
	le, err = l.Acquire(ctx)
	if err != nil {
		t.Fatal(err)
	}
	rdb.Del(ctx, key) // as if it had expired and been swept
	time.Sleep(400 * time.Millisecond)
	if n := count(); n != 1 {
		t.Errorf("a lost lease still running was not counted again: %d held", n)
	}
	if st := l.Stats(); st.LostLeases != 1 {
		t.Errorf("LostLeases = %d; want 1", st.LostLeases)
	}
	le.Release(ctx)
	if n := count(); n != 0 {
		t.Errorf("%d held after release", n)
	}
}

// TestUnlimited: Rate 0 and InFlight 0 do not limit (and leave no state
// but a possible cooldown); Backoff still holds every client.
func TestUnlimited(t *testing.T) {
	t.Parallel()
	rs := testenv.Redis(t)
	rdb := rs.Client(t)
	ctx := context.Background()
	l := New(rdb, "free", Limit{})
	start := time.Now()
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			for range 250 {
				le, err := l.Acquire(ctx)
				if err != nil {
					t.Error(err)
					return
				}
				le.Release(ctx)
			}
		})
	}
	wg.Wait()
	t.Logf("2000 unlimited acquisitions in %s", time.Since(start).Round(time.Millisecond))
	if keys, _ := rdb.Keys(ctx, "*").Result(); len(keys) != 0 {
		t.Errorf("unlimited limiter left keys %v", keys)
	}
	if err := l.Backoff(ctx, 300*time.Millisecond); err != nil {
		t.Fatal(err)
	}
	start = time.Now()
	if _, err := New(rs.Client(t), "free", Limit{}).Acquire(ctx); err != nil {
		t.Fatal(err)
	}
	if d := time.Since(start); d < 250*time.Millisecond {
		t.Errorf("unlimited Acquire ignored a Backoff: waited %s", d)
	}

	// Only one dimension limited.
	l = New(rdb, "slots", Limit{InFlight: 1})
	le, err := l.Acquire(ctx)
	if err != nil {
		t.Fatal(err)
	}
	short, cancel := context.WithTimeout(ctx, 150*time.Millisecond)
	defer cancel()
	if _, err := l.Acquire(short); !errors.Is(err, ErrWaitEnded) {
		t.Errorf("second slot of 1: %v", err)
	}
	le.Release(ctx)
	if le, err = l.Acquire(ctx); err != nil {
		t.Fatal(err)
	}
	le.Release(ctx)
}

// TestKeysShareOneHashTag: every key of one limiter sits in one Redis
// Cluster slot (same hash tag), including redis_rate's.
func TestKeysShareOneHashTag(t *testing.T) {
	t.Parallel()
	rs := testenv.Redis(t)
	rdb := rs.Client(t)
	ctx := context.Background()
	l := New(rdb, "dataforseo", Limit{Rate: 10, Period: time.Second, InFlight: 1})
	le, err := l.Acquire(ctx)
	if err != nil {
		t.Fatal(err)
	}
	go func() { time.Sleep(100 * time.Millisecond); le.Release(ctx) }()
	le2, err := l.Acquire(ctx) // waits on the wake list
	if err != nil {
		t.Fatal(err)
	}
	defer le2.Release(ctx)
	if err := l.Backoff(ctx, 10*time.Second); err != nil {
		t.Fatal(err)
	}
	keys, err := rdb.Keys(ctx, "*").Result()
	if err != nil {
		t.Fatal(err)
	}
	slices.Sort(keys)
	t.Logf("keys: %v", keys)
	if len(keys) < 3 {
		t.Errorf("want the inflight, cooldown and rate keys at least; got %v", keys)
	}
	for _, k := range keys {
		if tag := hashTag(k); tag != "lh:limit:dataforseo" {
			t.Errorf("key %q has hash tag %q", k, tag)
		}
	}
}

// hashTag is what Redis Cluster hashes: the part between the first '{' and
// the next '}', when not empty.
func hashTag(key string) string {
	i := strings.IndexByte(key, '{')
	if i < 0 {
		return key
	}
	j := strings.IndexByte(key[i+1:], '}')
	if j <= 0 {
		return key
	}
	return key[i+1 : i+1+j]
}

// TestTransport: every HTTP call holds a lease from before it is sent until
// its body is read or closed; the server never sees more than the limit.
func TestTransport(t *testing.T) {
	t.Parallel()
	rs := testenv.Redis(t)
	rdb := rs.Client(t)
	ctx := context.Background()
	var now, top atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n := now.Add(1)
		for {
			m := top.Load()
			if n <= m || top.CompareAndSwap(m, n) {
				break
			}
		}
		time.Sleep(20 * time.Millisecond)
		now.Add(-1)
		io.WriteString(w, strings.Repeat("x", 10000))
	}))
	defer srv.Close()
	l := New(rdb, "http", Limit{Rate: 1000, Period: time.Second, InFlight: 3})
	hc := &http.Client{Transport: l.Transport(nil, CallTimeout(5*time.Second))}
	var wg sync.WaitGroup
	for i := range 30 {
		wg.Go(func() {
			resp, err := hc.Get(srv.URL)
			if err != nil {
				t.Error(err)
				return
			}
			if i%2 == 0 {
				io.Copy(io.Discard, resp.Body) // released at EOF
			}
			resp.Body.Close() // or at Close
		})
	}
	wg.Wait()
	if top.Load() > 3 {
		t.Errorf("server saw %d calls at once; limit 3", top.Load())
	}
	if st := l.Stats(); st.Acquired != 30 || st.Held != 0 {
		t.Errorf("stats %+v", st)
	}
	if n, _ := rdb.ZCard(ctx, "{lh:limit:http}:inflight").Result(); n != 0 {
		t.Errorf("%d leases left", n)
	}

	// Waiting for capacity ends with the request's context, and the error
	// says so through the http.Client's wrapping.
	le, _ := l.Acquire(ctx)
	le2, _ := l.Acquire(ctx)
	le3, _ := l.Acquire(ctx)
	rctx, cancel := context.WithTimeout(ctx, 100*time.Millisecond)
	defer cancel()
	req, _ := http.NewRequestWithContext(rctx, http.MethodGet, srv.URL, nil)
	_, err := hc.Do(req)
	if !errors.Is(err, ErrWaitEnded) {
		t.Errorf("request while every slot is held: %v; want ErrWaitEnded", err)
	}
	le.Release(ctx)
	le2.Release(ctx)
	le3.Release(ctx)

	// CallTimeout starts once the lease is held.
	slow := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-time.After(2 * time.Second):
		case <-r.Context().Done():
		}
	}))
	defer slow.Close()
	hc = &http.Client{Transport: l.Transport(nil, CallTimeout(100*time.Millisecond))}
	start := time.Now()
	if _, err := hc.Get(slow.URL); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("slow call: %v; want a deadline", err)
	}
	if d := time.Since(start); d > time.Second {
		t.Errorf("CallTimeout(100ms) let a call run %s", d)
	}
	if n, _ := rdb.ZCard(ctx, "{lh:limit:http}:inflight").Result(); n != 0 {
		t.Errorf("%d leases left after a failed call", n)
	}
}

// TestUtilisation1sCalls: DataForSEO's limits, 1 s calls, 60 workers in
// three processes; the slots (30 at once) bind. Reports the achieved rate
// against min(rate, in-flight/latency) and the mean gap between a release
// and the next acquisition of that slot.
func TestUtilisation1sCalls(t *testing.T) {
	if testing.Short() {
		t.Skip("15 s")
	}
	rs := testenv.Redis(t)
	lim := Limit{Rate: 2000, Period: time.Minute, InFlight: 30}
	s := hammerSpec{Addr: rs.Addr, Name: "dataforseo", Limit: lim, Workers: 20,
		Duration: 12 * time.Second, MinLatency: time.Second, MaxLatency: time.Second}
	calls := runHammer(t, &s, 2, 1)
	if t.Failed() {
		return
	}
	// Steady state: from the moment the bucket has let the first 30 in
	// (about 0.9 s) plus one call, to the end.
	from, to := s.Start.Add(2*time.Second), s.Start.Add(s.Duration)
	bound := min(lim.steadyRate(), float64(lim.InFlight)/time.Second.Seconds())
	rate := float64(startedIn(calls, from, to)) / to.Sub(from).Seconds()
	busyFrac := busy(calls, from, to).Seconds() / (float64(lim.InFlight) * to.Sub(from).Seconds())
	// Each slot cycles call + gap: busy = 1s/(1s+gap).
	gap := time.Duration(float64(time.Second) * (1/busyFrac - 1))
	win, _ := maxInWindow(calls, lim.Period)
	t.Logf("%s, 1 s calls, 60 workers in 3 processes: %d calls; steady %.2f calls/s = %.3f of %.1f/s; slots busy %.4f; mean release→reacquire gap ≈ %s; most in flight %d; most in a window %d",
		lim, len(calls), rate, rate/bound, bound, busyFrac, gap.Round(100*time.Microsecond), maxInFlight(calls), win)
	if maxInFlight(calls) > lim.InFlight {
		t.Errorf("%d in flight", maxInFlight(calls))
	}
	checkUtilisation(t, rate/bound, 0.97)
}

// checkUtilisation judges the share of the bound a run used. On an idle
// machine the runs reach their targets; on a CPU-starved one (load 10-30
// on two CPUs, as when several engineers build and test at once) the
// scheduler alone costs up to a third. So by default a miss of the target
// is logged and only a share below half fails (a lost wake-up that idled
// slots for the poll interval would land there); LIMITER_STRICT_UTILISATION=1
// enforces the target.
func checkUtilisation(t *testing.T, got, target float64) {
	t.Helper()
	switch {
	case got >= target:
	case os.Getenv("LIMITER_STRICT_UTILISATION") == "1" || got < 0.5:
		t.Errorf("utilisation %.3f; target %.2f", got, target)
	default:
		t.Logf("NOTE: utilisation %.3f is below the target %.2f (machine load?); LIMITER_STRICT_UTILISATION=1 makes this a failure", got, target)
	}
}

// TestRedisOutage: while Redis is down Acquire waits (it cannot prove
// capacity) and carries on once Redis is back; a wait that ends during
// the outage says why.
func TestRedisOutage(t *testing.T) {
	t.Parallel()
	rs := testenv.Redis(t)
	rdb := redis.NewClient(&redis.Options{Addr: rs.Addr, MaxRetries: -1, DialTimeout: 200 * time.Millisecond})
	defer rdb.Close()
	ctx := context.Background()
	l := New(rdb, "outage", Limit{Rate: 100, Period: time.Second, InFlight: 2})
	le, err := l.Acquire(ctx)
	if err != nil {
		t.Fatal(err)
	}
	le.Release(ctx)

	rs.Stop(t)
	short, cancel := context.WithTimeout(ctx, 300*time.Millisecond)
	defer cancel()
	_, err = l.Acquire(short)
	if !errors.Is(err, ErrWaitEnded) || !strings.Contains(err.Error(), "last redis error") {
		t.Errorf("Acquire with Redis down: %v; want ErrWaitEnded and the Redis error", err)
	}
	go func() {
		time.Sleep(500 * time.Millisecond)
		rs.Start(t)
	}()
	start := time.Now()
	long, cancel2 := context.WithTimeout(ctx, 15*time.Second)
	defer cancel2()
	le, err = l.Acquire(long)
	if err != nil {
		t.Fatalf("Acquire across a Redis restart: %v", err)
	}
	le.Release(ctx)
	t.Logf("Acquire waited %s across a Redis restart; stats %+v", time.Since(start).Round(time.Millisecond), l.Stats())
}

// TestLeakedLeaseExpires: a lease never released stops being renewed
// after the maximum hold, and its slot comes back.
func TestLeakedLeaseExpires(t *testing.T) {
	t.Parallel()
	rs := testenv.Redis(t)
	ctx := context.Background()
	l := New(rs.Client(t), "leak", Limit{InFlight: 1}, WithLeaseTTL(500*time.Millisecond), WithMaxHold(time.Second))
	if _, err := l.Acquire(ctx); err != nil { // never released
		t.Fatal(err)
	}
	start := time.Now()
	wctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	le, err := l.Acquire(wctx)
	if err != nil {
		t.Fatalf("slot of a leaked lease did not come back: %v", err)
	}
	le.Release(ctx)
	if d := time.Since(start); d < 900*time.Millisecond {
		t.Errorf("leaked lease gone after %s; max hold is 1s", d)
	}
	if st := l.Stats(); st.Leaked != 1 {
		t.Errorf("Leaked = %d", st.Leaked)
	}
}

// BenchmarkAcquireRelease measures the cost of one lease with both limits
// set but not binding: the Redis round trips of an uncontended call.
func BenchmarkAcquireRelease(b *testing.B) {
	rs := testenv.Redis(b)
	l := New(rs.Client(b), "bench", Limit{Rate: 1_000_000_000, Period: time.Second, InFlight: 1_000_000})
	ctx := context.Background()
	b.ResetTimer()
	for b.Loop() {
		le, err := l.Acquire(ctx)
		if err != nil {
			b.Fatal(err)
		}
		le.Release(ctx)
	}
}
