package tasks

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"

	"github.com/linkharvest/linkharvest/internal/spend"
	"github.com/linkharvest/linkharvest/internal/testenv"
	"github.com/linkharvest/linkharvest/providers"
)

// The budget's tests run reservers in child processes of this test binary,
// each with its own Redis connection, as workers on several machines.
const (
	budgetChildEnv = "TASKS_BUDGET_CHILD" // "reserve" or "hold"
	budgetAddrEnv  = "TASKS_BUDGET_ADDR"
	budgetJobEnv   = "TASKS_BUDGET_JOB"
)

func TestMain(m *testing.M) {
	if mode := os.Getenv(budgetChildEnv); mode != "" {
		os.Exit(budgetChild(mode))
	}
	os.Exit(testenv.Main(m))
}

// budgetChild is one process of a test: "reserve" reserves and settles
// from 8 goroutines until no reservation has fitted for a while, then
// prints the sum of its settled charges (billionths); "hold" reserves
// the whole budget, prints "held" and renews it until killed.
func budgetChild(mode string) int {
	rdb := redis.NewClient(&redis.Options{Addr: os.Getenv(budgetAddrEnv)})
	defer rdb.Close()
	s := NewStore(rdb)
	job := os.Getenv(budgetJobEnv)
	ctx := context.Background()
	switch mode {
	case "hold":
		r, res, err := s.reserve(ctx, job, "p", spend.ToNano(1), time.Second, "holder")
		if err != nil || !res.held {
			fmt.Fprintln(os.Stderr, "hold:", res, err)
			return 1
		}
		fmt.Println("held")
		for range 600 {
			time.Sleep(300 * time.Millisecond)
			if ok, err := s.renewReservation(ctx, job, r, time.Second); err != nil || !ok {
				fmt.Fprintln(os.Stderr, "renew:", ok, err)
				return 1
			}
		}
		return 0
	case "reserve":
		var mu sync.Mutex
		var total int64
		var wg sync.WaitGroup
		for g := range 8 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				rng := rand.New(rand.NewPCG(uint64(os.Getpid()), uint64(g)))
				misses := 0
				for i := 0; misses < 200; i++ {
					amount := int64(20_000_000 + rng.IntN(30_000_000)) // 0.02 to 0.05
					r, res, err := s.reserve(ctx, job, "p", amount, 10*time.Second, fmt.Sprintf("%d-%d-%d", os.Getpid(), g, i))
					if err != nil {
						fmt.Fprintln(os.Stderr, "reserve:", err)
						os.Exit(1)
					}
					if !res.held {
						misses++
						time.Sleep(time.Millisecond)
						continue
					}
					misses = 0
					time.Sleep(time.Duration(rng.IntN(500)) * time.Microsecond) // the call
					charge := amount - int64(rng.IntN(int(amount/2)))           // answers cost at most their reservation
					if _, err := s.settle(ctx, job, r, charge); err != nil {
						fmt.Fprintln(os.Stderr, "settle:", err)
						os.Exit(1)
					}
					mu.Lock()
					total += charge
					mu.Unlock()
				}
			}()
		}
		wg.Wait()
		fmt.Println(total)
		return 0
	}
	return 2
}

func budgetProc(t *testing.T, mode, addr, job string) (*exec.Cmd, *bufio.Reader) {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), budgetChildEnv+"="+mode, budgetAddrEnv+"="+addr, budgetJobEnv+"="+job)
	cmd.Stderr = os.Stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	return cmd, bufio.NewReader(out)
}

// budgetFields reads charged, reserved and limit of provider p in one
// command, so the three are of one moment.
func budgetFields(t *testing.T, rdb *redis.Client, job string) (charged, reserved, limit int64) {
	t.Helper()
	v, err := rdb.HMGet(context.Background(), keysFor(job).budget, fBudgetCharged+"p", fBudgetReserved+"p", fBudgetLimit+"p").Result()
	if err != nil {
		t.Fatal(err)
	}
	n := func(x any) int64 { s, _ := x.(string); i, _ := strconv.ParseInt(s, 10, 64); return i }
	return n(v[0]), n(v[1]), n(v[2])
}

// TestBudgetHeldAcrossProcesses: four processes of eight reservers each
// never take the spend past the budget, at any moment (charged + held ≤
// budget, sampled throughout) nor in the end, and they use it up to less
// than one call's most.
func TestBudgetHeldAcrossProcesses(t *testing.T) {
	rs := testenv.Redis(t)
	rdb := rs.Client(t)
	ctx := context.Background()
	s := NewStore(rdb)
	const job = "budget-hammer"
	budget := 25.0 // about 700 calls
	if err := s.SetBudget(ctx, job, map[string]float64{"p": budget}); err != nil {
		t.Fatal(err)
	}
	var outs []*bufio.Reader
	for range 4 {
		_, out := budgetProc(t, "reserve", rs.Addr, job)
		outs = append(outs, out)
	}
	done := make(chan int64, len(outs))
	for _, out := range outs {
		go func() {
			line, err := out.ReadString('\n')
			n, perr := strconv.ParseInt(strings.TrimSpace(line), 10, 64)
			if err != nil || perr != nil {
				t.Errorf("child said %q: %v %v", line, err, perr)
			}
			done <- n
		}()
	}
	var settled int64
	samples := 0
	for got := 0; got < len(outs); {
		select {
		case n := <-done:
			settled += n
			got++
		default:
			c, r, l := budgetFields(t, rdb, job)
			if c+r > l {
				t.Fatalf("charged %d + held %d > budget %d", c, r, l)
			}
			samples++
		}
	}
	c, r, l := budgetFields(t, rdb, job)
	t.Logf("settled %.6f of %.2f by 4 processes (%d samples of charged+held ≤ budget)", spend.FromNano(settled), budget, samples)
	if c != settled {
		t.Errorf("the budget counts %d charged, the reservers settled %d", c, settled)
	}
	if r != 0 || c > l {
		t.Errorf("end: charged %d, held %d, budget %d", c, r, l)
	}
	if l-c >= 50_000_000 {
		t.Errorf("%d of the budget left unused, more than one call's most (0.05)", l-c)
	}
}

// TestBudgetKilledHolderReturns: a process that holds the whole budget
// keeps it while it lives and renews it; SIGKILLed, its reservation comes
// back once its lease runs out.
func TestBudgetKilledHolderReturns(t *testing.T) {
	rs := testenv.Redis(t)
	rdb := rs.Client(t)
	ctx := context.Background()
	s := NewStore(rdb)
	const job = "budget-kill"
	if err := s.SetBudget(ctx, job, map[string]float64{"p": 1}); err != nil {
		t.Fatal(err)
	}
	cmd, out := budgetProc(t, "hold", rs.Addr, job)
	if line, err := out.ReadString('\n'); err != nil || line != "held\n" {
		t.Fatalf("child said %q, %v", line, err)
	}
	time.Sleep(1500 * time.Millisecond) // past its lease: the renewals keep it
	if _, res, err := s.reserve(ctx, job, "p", spend.ToNano(0.01), time.Second, "parent"); err != nil || res.held {
		t.Fatalf("reserved %+v, %v while a live process holds the whole budget", res, err)
	}
	if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		r, res, err := s.reserve(ctx, job, "p", spend.ToNano(1), time.Second, "parent")
		if err != nil {
			t.Fatal(err)
		}
		if res.held {
			if _, err := s.settle(ctx, job, r, 0); err != nil {
				t.Fatal(err)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the killed holder's reservation never came back")
		}
		time.Sleep(50 * time.Millisecond)
	}
	if c, r, _ := budgetFields(t, rdb, job); c != 0 || r != 0 {
		t.Errorf("charged %d, held %d after the holder died and the parent settled at 0", c, r)
	}
}

// TestBudgetStopsAndResumes: a job whose next call cannot fit reads
// "budget" (status and summary), with what was spent of what; raising the
// budget makes it running again and lets the same page reserve.
func TestBudgetStopsAndResumes(t *testing.T) {
	rs := testenv.Redis(t)
	rdb := rs.Client(t)
	ctx := context.Background()
	s := NewStore(rdb)
	const job = "budget-stop"
	spec := Spec{Providers: []string{"dataforseo"}, Endpoints: map[string][]string{"dataforseo": {"backlinks"}}}
	if _, err := s.create(ctx, job, spec, time.Now()); err != nil {
		t.Fatal(err)
	}
	if _, err := s.register(ctx, job, 0, 0, []string{"dataforseo|backlinks|a.com|1", "dataforseo|backlinks|b.com|1"}); err != nil {
		t.Fatal(err)
	}
	if err := s.SetBudget(ctx, job, map[string]float64{"dataforseo": 0.08}); err != nil {
		t.Fatal(err)
	}
	page := spend.ToNano(0.05)
	r, res, err := s.reserve(ctx, job, "dataforseo", page, time.Minute, "1")
	if err != nil || !res.held {
		t.Fatalf("first reservation: %+v %v", res, err)
	}
	// While the first call runs, the second does not fit, but the job is
	// not stopped: the first may cost less.
	if _, res, _ := s.reserve(ctx, job, "dataforseo", page, time.Minute, "2"); res.held {
		t.Fatal("a second 0.05 fitted in 0.08")
	}
	if st, _ := s.Status(ctx, job); st.State != "running" {
		t.Fatalf("state %q with a call in flight", st.State)
	}
	if _, err := s.settle(ctx, job, r, spend.ToNano(0.035)); err != nil {
		t.Fatal(err)
	}
	if _, res, _ := s.reserve(ctx, job, "dataforseo", page, time.Minute, "3"); res.held {
		t.Fatal("0.05 fitted in the 0.045 left")
	}
	st, err := s.Status(ctx, job)
	if err != nil {
		t.Fatal(err)
	}
	if st.State != "budget" || !st.BudgetStopped() || st.Budget["dataforseo"] != 0.08 || st.Charged["dataforseo"] != 0.035 {
		t.Fatalf("status %+v; want state budget, 0.035 charged of 0.08", st)
	}
	if w := st.WaitingFor(); !strings.Contains(w, "0.035 usd spent of 0.08 usd") || !strings.Contains(w, "enqueue budget "+job) {
		t.Errorf("waiting for %q", w)
	}
	// A page paid for but kept until the sink takes writes waits for the
	// sink, not the budget: the job is not stopped while it waits.
	const unit = "dataforseo|backlinks|a.com|1"
	if err := s.stash(ctx, job, unit, []byte("body"), memo{Key: "k", Cost: 0.035, CostUnit: "usd"}, time.Hour, "sink down"); err != nil {
		t.Fatal(err)
	}
	if st, _ := s.Status(ctx, job); st.State != "running" || st.Stashed != 1 {
		t.Fatalf("with a stashed page: state %q, stashed %d; want running, 1", st.State, st.Stashed)
	}
	if err := s.keepMemo(ctx, job, unit, &memo{Key: "k", Cost: 0.035, CostUnit: "usd"}); err != nil {
		t.Fatal(err)
	}
	if st, _ := s.Status(ctx, job); st.State != "budget" || st.Spend["dataforseo"] != 0.035 {
		t.Fatalf("once the stashed page is written: state %q, spend %v; want budget, 0.035", st.State, st.Spend)
	}
	// Domains still in the feed are work the feeder has not yet tried
	// against the budget: the job is not stopped while any wait there.
	s.rdb.HSet(ctx, keysFor(job).meta, fUnfed, 1)
	if st, _ := s.Status(ctx, job); st.State != "running" || st.Unfed != 1 {
		t.Fatalf("with a domain in the feed: state %q, unfed %d; want running, 1", st.State, st.Unfed)
	}
	s.rdb.HSet(ctx, keysFor(job).meta, fUnfed, 0)
	if err := s.SetBudget(ctx, job, map[string]float64{"dataforseo": 0.2}); err != nil {
		t.Fatal(err)
	}
	if st, _ := s.Status(ctx, job); st.State != "running" {
		t.Fatalf("state %q after the budget was raised", st.State)
	}
	if _, res, err := s.reserve(ctx, job, "dataforseo", page, time.Minute, "4"); err != nil || !res.held {
		t.Fatalf("after raising: %+v %v", res, err)
	}
}

func TestParseBudget(t *testing.T) {
	one, two := []string{"dataforseo"}, []string{"dataforseo", "domdetailer"}
	for _, tc := range []struct {
		spec  string
		provs []string
		want  map[string]float64
	}{
		{"25", one, map[string]float64{"dataforseo": 25}},
		{" dataforseo=2.5 ", one, map[string]float64{"dataforseo": 2.5}},
		{"dataforseo=25,domdetailer=3000", two, map[string]float64{"dataforseo": 25, "domdetailer": 3000}},
		{"domdetailer=30", two, map[string]float64{"domdetailer": 30}},
	} {
		got, err := ParseBudget(tc.spec, tc.provs)
		if err != nil || len(got) != len(tc.want) {
			t.Errorf("%q: %v, %v", tc.spec, got, err)
			continue
		}
		for p, v := range tc.want {
			if got[p] != v {
				t.Errorf("%q: %s = %v, want %v", tc.spec, p, got[p], v)
			}
		}
	}
	for _, tc := range []struct {
		spec  string
		provs []string
	}{
		{"", one}, {"25", two}, {"-1", one}, {"abc", one}, {"xovi=3", one}, {"dataforseo=1,dataforseo=2", one},
		{"dataforseo=", one}, {"=3", one},
	} {
		if _, err := ParseBudget(tc.spec, tc.provs); err == nil {
			t.Errorf("%q for %v: accepted", tc.spec, tc.provs)
		}
	}
}

// A page waiting for budget spends no retry.
func TestBudgetWaitIsNoFailure(t *testing.T) {
	if IsFailure(fmt.Errorf("page: %w", &budgetError{provider: "dataforseo"})) {
		t.Fatal("a budget wait counts as a failure")
	}
}

type pricedVendor struct{ cost float64 }

func (v *pricedVendor) Paging(string) (providers.Paging, error) {
	return providers.Paging{Kind: providers.PagingOffset, PageSize: 1000}, nil
}

func (v *pricedVendor) Fetch(context.Context, providers.Request) (*providers.Page, error) {
	return &providers.Page{Total: 0, Cost: v.cost, CostUnit: "usd"}, nil
}

// TestBudgetOverrunLogged: an answer that costs more than its reservation
// (the price changed, the vendor billed more) is logged and charged at
// what it cost: the ledger stays true, and the next call sees it.
func TestBudgetOverrunLogged(t *testing.T) {
	rs := testenv.Redis(t)
	ctx := context.Background()
	s := NewStore(rs.Client(t))
	const job = "budget-overrun"
	var logs strings.Builder
	var mu sync.Mutex
	w := &Worker{Store: s, Log: slog.New(slog.NewTextHandler(&lockedWriter{mu: &mu, w: &logs}, nil))}
	if err := s.SetBudget(ctx, job, map[string]float64{"dataforseo": 0.1}); err != nil {
		t.Fatal(err)
	}
	p := &PagePayload{Job: job, Provider: "dataforseo", Endpoint: "backlinks", Domain: "a.com", Page: 1}
	v := &pricedVendor{cost: 0.08} // reserved at 0.05 (1000 rows)
	h, err := w.reserve(ctx, &Job{ID: job}, p, v)
	if err != nil || h == nil || h.r.Amount != spend.ToNano(0.05) {
		t.Fatalf("reserve: %+v, %v", h, err)
	}
	page, ferr := v.Fetch(ctx, providers.Request{})
	if ferr != nil {
		t.Fatal(ferr)
	}
	c, _ := w.charge(p, page)
	w.settle(ctx, p, h, c)
	st, err := s.budgetState(ctx, job)
	if err != nil {
		t.Fatal(err)
	}
	if got := st.Charged["dataforseo"]; got != 0.08 {
		t.Errorf("charged %v, want the answer's 0.08", got)
	}
	mu.Lock()
	out := logs.String()
	mu.Unlock()
	if !strings.Contains(out, "cost more than its reservation") {
		t.Errorf("the overrun is not logged:\n%s", out)
	}
	// 0.02 left: the next 0.05 does not fit.
	if _, err := w.reserve(ctx, &Job{ID: job}, p, v); err == nil || !strings.Contains(err.Error(), "0.08 usd of its budget of 0.1 usd") {
		t.Errorf("after the overrun: %v", err)
	}
}

type lockedWriter struct {
	mu *sync.Mutex
	w  io.Writer
}

func (l *lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}

// gatedSink holds the first write until released, so a test can look at
// the job while a page that was paid for is still being written.
type gatedSink struct {
	*memSink
	entered, release chan struct{}
	once             sync.Once
}

func (s *gatedSink) Put(ctx context.Context, key string, body []byte, ct string) error {
	gate := false
	s.once.Do(func() { gate = true })
	if gate {
		close(s.entered)
		<-s.release
	}
	return s.memSink.Put(ctx, key, body, ct)
}

// TestBudgetStopWaitsForWrites: a job does not read "budget" while a page
// it paid for is still being written, so what `enqueue --wait` reports at
// the stop is the whole spend (the ledger counts a page once it is kept).
func TestBudgetStopWaitsForWrites(t *testing.T) {
	r := newRig(t)
	v := r.vendor
	r.w.Providers = map[string]Provider{"domdetailer": v}
	gs := &gatedSink{memSink: r.sink, entered: make(chan struct{}), release: make(chan struct{})}
	r.w.Sink = gs
	r.domain("a.com", 5, 5)
	r.domain("b.com", 5, 5)
	const job = "budget-writes"
	spec := Spec{Providers: []string{"domdetailer"}, Endpoints: map[string][]string{"domdetailer": {"backlinks"}}}
	r.submitWith(job, spec, "a.com", "b.com")
	ctx := context.Background()
	// Room for one call (3 credits) but not two.
	if err := r.w.Store.SetBudget(ctx, job, map[string]float64{"domdetailer": 5}); err != nil {
		t.Fatal(err)
	}
	infos, err := r.insp.ListPendingTasks("domdetailer")
	if err != nil || len(infos) != 2 {
		t.Fatalf("pending pages: %d, %v", len(infos), err)
	}
	first := make(chan error, 1)
	go func() { first <- r.w.handlePage(ctx, asynq.NewTask(infos[0].Type, infos[0].Payload)) }()
	<-gs.entered // the first page's call is made and charged; its write waits
	var be *budgetError
	if err := r.w.handlePage(ctx, asynq.NewTask(infos[1].Type, infos[1].Payload)); !errors.As(err, &be) {
		t.Fatalf("second page: %v; want it to wait for the budget", err)
	}
	if st, err := r.w.Store.Status(ctx, job); err != nil || st.State != "running" {
		t.Fatalf("while a paid-for page is being written: state %q (spend %v, charged %v), %v; want running",
			st.State, st.Spend, st.Charged, err)
	}
	close(gs.release)
	if err := <-first; err != nil {
		t.Fatalf("first page: %v", err)
	}
	if err := r.w.handlePage(ctx, asynq.NewTask(infos[1].Type, infos[1].Payload)); !errors.As(err, &be) {
		t.Fatalf("second page after the first was written: %v; want it to wait for the budget", err)
	}
	st, err := r.w.Store.Status(ctx, job)
	if err != nil {
		t.Fatal(err)
	}
	if st.State != "budget" || st.Spend["domdetailer"] != 3 || st.Charged["domdetailer"] != 3 {
		t.Fatalf("status %+v; want state budget with 3 credits spent and charged", st)
	}
}
