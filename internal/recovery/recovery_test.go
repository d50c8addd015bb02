package recovery

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"

	"github.com/linkharvest/linkharvest/internal/testenv"
)

// The victim is this test binary run again as a worker whose handler holds
// its task until a file appears, so a test can SIGKILL or SIGSTOP a real
// asynq server mid-task.
const (
	victimEnv     = "RECOVERY_TEST_VICTIM" // Redis URL
	victimQueue   = "rq"
	victimRelease = "RECOVERY_TEST_RELEASE" // the file that lets the handler return
)

func TestMain(m *testing.M) {
	if url := os.Getenv(victimEnv); url != "" {
		victim(url, os.Getenv(victimRelease))
		return
	}
	os.Exit(testenv.Main(m))
}

func victim(url, release string) {
	opt, err := redis.ParseURL(url)
	if err != nil {
		panic(err)
	}
	rdb := redis.NewClient(opt)
	ctx := context.Background()
	rec, err := New(ctx, rdb, Options{Log: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		panic(err)
	}
	go rec.Run(ctx)
	srv := asynq.NewServerFromRedisClient(rdb, asynq.Config{Concurrency: 4, Queues: map[string]int{victimQueue: 1},
		TaskCheckInterval: 50 * time.Millisecond, LogLevel: asynq.FatalLevel,
		RetryDelayFunc: func(int, error, *asynq.Task) time.Duration { return 100 * time.Millisecond }})
	mux := asynq.NewServeMux()
	mux.Use(rec.Middleware)
	mux.HandleFunc("hold", func(ctx context.Context, t *asynq.Task) error {
		id, _ := asynq.GetTaskID(ctx)
		if n, _ := asynq.GetRetryCount(ctx); n == 0 {
			return errors.New("first attempt fails, so the task has spent a retry")
		}
		fmt.Printf("running %s\n", id)
		for {
			if _, err := os.Stat(release); err == nil {
				fmt.Printf("returned %s\n", id)
				return nil
			}
			time.Sleep(50 * time.Millisecond)
		}
	})
	if err := srv.Run(mux); err != nil {
		panic(err)
	}
}

type victimProc struct {
	cmd     *exec.Cmd
	release string
	lines   chan string
}

// startVictim runs a victim worker and waits until it runs task id.
func startVictim(t *testing.T, url string, client *asynq.Client, id string) *victimProc {
	t.Helper()
	release := t.TempDir() + "/release"
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), victimEnv+"="+url, victimRelease+"="+release)
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	v := &victimProc{cmd: cmd, release: release, lines: make(chan string, 16)}
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			v.lines <- sc.Text()
		}
		close(v.lines)
	}()
	t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGCONT)
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
	})
	if _, err := client.Enqueue(asynq.NewTask("hold", nil), asynq.TaskID(id), asynq.Queue(victimQueue),
		asynq.MaxRetry(5), asynq.Timeout(5*time.Minute)); err != nil {
		t.Fatal(err)
	}
	v.expect(t, "running "+id)
	return v
}

func (v *victimProc) expect(t *testing.T, line string) {
	t.Helper()
	timeout := time.After(30 * time.Second)
	for {
		select {
		case l, ok := <-v.lines:
			if !ok {
				t.Fatalf("the victim exited before %q", line)
			}
			if l == line {
				return
			}
		case <-timeout:
			t.Fatalf("the victim did not print %q", line)
		}
	}
}

func (v *victimProc) signal(t *testing.T, s syscall.Signal) {
	t.Helper()
	if err := v.cmd.Process.Signal(s); err != nil {
		t.Fatal(err)
	}
}

func newRecovery(t *testing.T, rdb *redis.Client, o Options) *Recovery {
	t.Helper()
	o.Log = slog.New(slog.NewTextHandler(io.Discard, nil))
	r, err := New(context.Background(), rdb, o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = r.Close() })
	return r
}

// sweepUntil sweeps every 500 ms until cond holds or limit passes, and
// returns what was taken meanwhile.
func sweepUntil(t *testing.T, r *Recovery, limit time.Duration, cond func(taken []Taken) bool) []Taken {
	t.Helper()
	var all []Taken
	deadline := time.Now().Add(limit)
	for !cond(all) {
		if time.Now().After(deadline) {
			t.Fatalf("condition not met within %v; taken so far: %+v", limit, all)
		}
		got, err := r.Sweep(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		all = append(all, got...)
		time.Sleep(500 * time.Millisecond)
	}
	return all
}

func taskInfo(t *testing.T, insp *asynq.Inspector, id string) *asynq.TaskInfo {
	t.Helper()
	ti, err := insp.GetTaskInfo(victimQueue, id)
	if err != nil {
		t.Fatalf("task %s: %v", id, err)
	}
	return ti
}

// serversAlive is how many asynq servers have a live key.
func serversAlive(t *testing.T, insp *asynq.Inspector) int {
	t.Helper()
	s, err := insp.Servers()
	if err != nil {
		t.Fatal(err)
	}
	return len(s)
}

// runOnce starts a worker in this process that counts the runs of each
// task; it returns the counts' reader.
func runOnce(t *testing.T, rdb *redis.Client) func(id string) int {
	t.Helper()
	var mu sync.Mutex
	runs := map[string]int{}
	srv := asynq.NewServerFromRedisClient(rdb, asynq.Config{Concurrency: 2, Queues: map[string]int{victimQueue: 1},
		TaskCheckInterval: 50 * time.Millisecond, LogLevel: asynq.FatalLevel})
	mux := asynq.NewServeMux()
	mux.HandleFunc("hold", func(ctx context.Context, _ *asynq.Task) error {
		id, _ := asynq.GetTaskID(ctx)
		mu.Lock()
		runs[id]++
		mu.Unlock()
		return nil
	})
	if err := srv.Start(mux); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv.Shutdown)
	return func(id string) int { mu.Lock(); defer mu.Unlock(); return runs[id] }
}

// TestPinnedAsynq fails when asynq's version or the internals this
// package relies on change: the key layout, the lease's score, the server
// key's TTL, and the owner record beside asynq's own fields.
func TestPinnedAsynq(t *testing.T) {
	t.Parallel()
	mod, err := os.ReadFile("../../go.mod")
	if err != nil {
		t.Fatal(err)
	}
	if !regexp.MustCompile(`(?m)^\s*github\.com/hibiken/asynq v0\.26\.0$`).Match(mod) ||
		strings.Contains(string(mod), "replace github.com/hibiken/asynq") {
		t.Fatal("go.mod does not pin github.com/hibiken/asynq v0.26.0: internal/recovery relies on its internals " +
			"(key layout, lease, heartbeat TTL); check them against the new version and update this test")
	}

	srvR := testenv.Redis(t)
	rdb := srvR.Client(t)
	ctx := context.Background()
	r := newRecovery(t, rdb, Options{})
	started := make(chan struct{}, 1)
	release := make(chan struct{})
	srv := asynq.NewServerFromRedisClient(rdb, asynq.Config{Concurrency: 1, Queues: map[string]int{"pin": 1},
		TaskCheckInterval: 50 * time.Millisecond, LogLevel: asynq.FatalLevel})
	mux := asynq.NewServeMux()
	mux.Use(r.Middleware)
	mux.HandleFunc("hold", func(ctx context.Context, _ *asynq.Task) error {
		started <- struct{}{}
		<-release
		return nil
	})
	if err := srv.Start(mux); err != nil {
		t.Fatal(err)
	}
	defer srv.Shutdown()
	defer close(release)
	client := asynq.NewClientFromRedisClient(rdb)
	defer client.Close()
	if _, err := client.Enqueue(asynq.NewTask("hold", nil), asynq.TaskID("pin-1"), asynq.Queue("pin")); err != nil {
		t.Fatal(err)
	}
	<-started
	now, err := rdb.Time(ctx).Result()
	if err != nil {
		t.Fatal(err)
	}
	if ok, _ := rdb.SIsMember(ctx, allQueues, "pin").Result(); !ok {
		t.Errorf("%s does not list the queue", allQueues)
	}
	if ids, _ := rdb.LRange(ctx, activeKey("pin"), 0, -1).Result(); len(ids) != 1 || ids[0] != "pin-1" {
		t.Errorf("%s = %v, want [pin-1]", activeKey("pin"), ids)
	}
	score, err := rdb.ZScore(ctx, leaseKey("pin"), "pin-1").Result()
	if err != nil {
		t.Fatalf("%s: %v", leaseKey("pin"), err)
	}
	if d := time.Unix(int64(score), 0).Sub(now); d < leaseDuration-3*time.Second || d > leaseDuration+time.Second {
		t.Errorf("lease expires in %v, want about %v", d, leaseDuration)
	}
	h, err := rdb.HGetAll(ctx, taskKey("pin", "pin-1")).Result()
	if err != nil {
		t.Fatal(err)
	}
	if h["state"] != "active" || h["msg"] == "" || h[OwnerField] != r.Token() {
		t.Errorf("task hash %v: want state active, msg, and %s=%s", h, OwnerField, r.Token())
	}
	servers, err := r.insp.Servers()
	if err != nil || len(servers) != 1 {
		t.Fatalf("servers %v, %v", servers, err)
	}
	s := servers[0]
	ttl, err := rdb.PTTL(ctx, serverKey(s.Host, s.PID, s.ID)).Result()
	if err != nil || ttl <= serverTTL-6*time.Second || ttl > serverTTL {
		t.Errorf("server key %s TTL %v (%v), want at most %v, renewed every 5 s", serverKey(s.Host, s.PID, s.ID), ttl, err, serverTTL)
	}
	// The handler's task is listed once the heartbeat (every 5 s) has run.
	sweepUntil(t, r, 15*time.Second, func([]Taken) bool {
		ss, _ := r.insp.Servers()
		return len(ss) == 1 && len(ss[0].ActiveWorkers) == 1 && ss[0].ActiveWorkers[0].TaskID == "pin-1"
	})
	list, err := rdb.ClientList(ctx).Result()
	if err != nil || !strings.Contains(list, "name="+PresencePrefix+r.Token()) {
		t.Errorf("no presence connection named %s%s in CLIENT LIST (%v)", PresencePrefix, r.Token(), err)
	}
}

// TestKilledWorkerTaskHandedBack: a SIGKILLed worker's task goes back to
// pending by the owner path (long before its lease ends), keeps its retry
// count, and runs exactly once more.
func TestKilledWorkerTaskHandedBack(t *testing.T) {
	t.Parallel()
	srvR := testenv.Redis(t)
	rdb := srvR.Client(t)
	client := asynq.NewClientFromRedisClient(rdb)
	defer client.Close()
	insp := asynq.NewInspectorFromRedisClient(rdb)
	v := startVictim(t, srvR.URL, client, "kill-1")
	before := taskInfo(t, insp, "kill-1")
	if before.Retried != 1 {
		t.Fatalf("the victim's task has %d retries spent, want 1", before.Retried)
	}
	v.signal(t, syscall.SIGKILL)
	_ = v.cmd.Wait()

	r := newRecovery(t, rdb, Options{})
	taken := sweepUntil(t, r, 40*time.Second, func(taken []Taken) bool { return len(taken) > 0 })
	if len(taken) != 1 || taken[0].ID != "kill-1" || taken[0].Path != "owner" {
		t.Fatalf("taken %+v, want kill-1 by the owner path (the dead process's connection is gone)", taken)
	}
	ti := taskInfo(t, insp, "kill-1")
	if ti.State != asynq.TaskStatePending || ti.Retried != before.Retried || ti.MaxRetry != before.MaxRetry {
		t.Fatalf("after the hand-back: state %v retried %d/%d, want pending with %d/%d", ti.State, ti.Retried, ti.MaxRetry,
			before.Retried, before.MaxRetry)
	}
	h, _ := rdb.HGetAll(context.Background(), taskKey(victimQueue, "kill-1")).Result()
	if _, ok := h[OwnerField]; ok || h[TakeoversField] != "1" {
		t.Errorf("task hash %v: want no owner and one takeover", h)
	}
	if n, _ := rdb.ZCard(context.Background(), leaseKey(victimQueue)).Result(); n != 0 {
		t.Errorf("lease set still holds %d entries", n)
	}
	runs := runOnce(t, rdb)
	deadline := time.Now().Add(20 * time.Second)
	for runs("kill-1") == 0 && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
	}
	time.Sleep(time.Second) // a second run, if there were one, would show now
	if n := runs("kill-1"); n != 1 {
		t.Fatalf("the handed-back task ran %d times, want 1", n)
	}
	if _, err := insp.GetTaskInfo(victimQueue, "kill-1"); err == nil {
		t.Error("the task still exists after it ran")
	}
}

// TestStoppedWorkerKeepsTask: a worker stopped (SIGSTOP) until its
// heartbeat is gone, but for less than its lease, keeps its task: no sweep
// takes it, and after SIGCONT it finishes the task itself.
func TestStoppedWorkerKeepsTask(t *testing.T) {
	t.Parallel()
	srvR := testenv.Redis(t)
	rdb := srvR.Client(t)
	client := asynq.NewClientFromRedisClient(rdb)
	defer client.Close()
	insp := asynq.NewInspectorFromRedisClient(rdb)
	v := startVictim(t, srvR.URL, client, "stop-1")
	v.signal(t, syscall.SIGSTOP)
	r := newRecovery(t, rdb, Options{})
	// Sweep until the stopped worker's server key has expired and one
	// Grace more: the owner path has had every chance.
	var goneAt time.Time
	taken := sweepUntil(t, r, 25*time.Second, func([]Taken) bool {
		if goneAt.IsZero() && serversAlive(t, insp) == 0 {
			goneAt = time.Now()
		}
		return !goneAt.IsZero() && time.Since(goneAt) > DefaultGrace+DefaultInterval
	})
	if len(taken) != 0 {
		t.Fatalf("a stopped worker's task was taken: %+v", taken)
	}
	if ti := taskInfo(t, insp, "stop-1"); ti.State != asynq.TaskStateActive {
		t.Fatalf("task state %v, want active", ti.State)
	}
	v.signal(t, syscall.SIGCONT)
	if err := os.WriteFile(v.release, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	v.expect(t, "returned stop-1")
	deadline := time.Now().Add(10 * time.Second)
	for {
		if _, err := insp.GetTaskInfo(victimQueue, "stop-1"); err != nil {
			break // done by its own worker: asynq deleted it
		}
		if time.Now().After(deadline) {
			t.Fatalf("the resumed worker did not finish its task: %+v", taskInfo(t, insp, "stop-1"))
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestStoppedPastLease: stopped past its lease, a worker's task is taken by
// the lease path; when it resumes and its handler returns, asynq writes
// nothing back (its lease has expired), and the task runs once elsewhere.
func TestStoppedPastLease(t *testing.T) {
	if testing.Short() {
		t.Skip("waits for a 30 s lease")
	}
	t.Parallel()
	srvR := testenv.Redis(t)
	rdb := srvR.Client(t)
	client := asynq.NewClientFromRedisClient(rdb)
	defer client.Close()
	insp := asynq.NewInspectorFromRedisClient(rdb)
	v := startVictim(t, srvR.URL, client, "lease-1")
	v.signal(t, syscall.SIGSTOP)
	r := newRecovery(t, rdb, Options{SkewMargin: time.Second})
	taken := sweepUntil(t, r, 60*time.Second, func(taken []Taken) bool { return len(taken) > 0 })
	if len(taken) != 1 || taken[0].Path != "lease" {
		t.Fatalf("taken %+v, want lease-1 by the lease path", taken)
	}
	if ti := taskInfo(t, insp, "lease-1"); ti.State != asynq.TaskStatePending || ti.Retried != 1 {
		t.Fatalf("state %v retried %d, want pending, 1 (the retry spent before, none more)", ti.State, ti.Retried)
	}
	// Paused, so the resumed worker cannot simply dequeue it again.
	if err := insp.PauseQueue(victimQueue); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(v.release, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	v.signal(t, syscall.SIGCONT)
	v.expect(t, "returned lease-1")
	time.Sleep(time.Second) // the resumed worker's write-back, if it made one
	if ti := taskInfo(t, insp, "lease-1"); ti.State != asynq.TaskStatePending || ti.Retried != 1 {
		t.Fatalf("the resumed worker changed the handed-back task: state %v, retried %d", ti.State, ti.Retried)
	}
	_ = v.cmd.Process.Kill()
	_ = v.cmd.Wait()
	if err := insp.UnpauseQueue(victimQueue); err != nil {
		t.Fatal(err)
	}
	runs := runOnce(t, rdb)
	deadline := time.Now().Add(20 * time.Second)
	for runs("lease-1") == 0 && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
	}
	if n := runs("lease-1"); n != 1 {
		t.Fatalf("ran %d times, want 1", n)
	}
}

// TestLiveServerNeverTaken: a live server's running task is never handed
// back, even when its owner's presence connection is gone (the heartbeat
// lists it), for longer than every threshold.
func TestLiveServerNeverTaken(t *testing.T) {
	t.Parallel()
	srvR := testenv.Redis(t)
	rdb := srvR.Client(t)
	owner := newRecovery(t, rdb, Options{})
	_ = owner.Close() // its presence is gone; its server heartbeats on
	started := make(chan struct{}, 1)
	release := make(chan struct{})
	srv := asynq.NewServerFromRedisClient(rdb, asynq.Config{Concurrency: 1, Queues: map[string]int{victimQueue: 1},
		TaskCheckInterval: 50 * time.Millisecond, LogLevel: asynq.FatalLevel})
	mux := asynq.NewServeMux()
	mux.Use(owner.Middleware)
	mux.HandleFunc("hold", func(ctx context.Context, _ *asynq.Task) error {
		started <- struct{}{}
		<-release
		return nil
	})
	if err := srv.Start(mux); err != nil {
		t.Fatal(err)
	}
	defer srv.Shutdown()
	client := asynq.NewClientFromRedisClient(rdb)
	defer client.Close()
	if _, err := client.Enqueue(asynq.NewTask("hold", nil), asynq.TaskID("live-1"), asynq.Queue(victimQueue)); err != nil {
		t.Fatal(err)
	}
	<-started
	r := newRecovery(t, rdb, Options{})
	t0 := time.Now()
	taken := sweepUntil(t, r, time.Minute, func([]Taken) bool { return time.Since(t0) > 2*serverTTL })
	close(release)
	if len(taken) != 0 {
		t.Fatalf("a live server's task was taken: %+v", taken)
	}
}

// TestHandBackGuards: the script changes nothing when what the sweep saw
// has changed since: another lease score (a heartbeat or a new dequeue),
// another owner, a lease not yet expired by Redis's clock, a task handed
// back too often.
func TestHandBackGuards(t *testing.T) {
	t.Parallel()
	srvR := testenv.Redis(t)
	rdb := srvR.Client(t)
	ctx := context.Background()
	owner := newRecovery(t, rdb, Options{})
	started := make(chan struct{}, 1)
	release := make(chan struct{})
	srv := asynq.NewServerFromRedisClient(rdb, asynq.Config{Concurrency: 1, Queues: map[string]int{victimQueue: 1},
		TaskCheckInterval: 50 * time.Millisecond, LogLevel: asynq.FatalLevel})
	mux := asynq.NewServeMux()
	mux.Use(owner.Middleware)
	mux.HandleFunc("hold", func(ctx context.Context, _ *asynq.Task) error {
		started <- struct{}{}
		<-release
		return nil
	})
	if err := srv.Start(mux); err != nil {
		t.Fatal(err)
	}
	defer srv.Shutdown()
	defer close(release)
	client := asynq.NewClientFromRedisClient(rdb)
	defer client.Close()
	if _, err := client.Enqueue(asynq.NewTask("hold", nil), asynq.TaskID("g-1"), asynq.Queue(victimQueue)); err != nil {
		t.Fatal(err)
	}
	<-started
	score, err := rdb.ZScore(ctx, leaseKey(victimQueue), "g-1").Result()
	if err != nil {
		t.Fatal(err)
	}
	seen := fmt.Sprint(int64(score))
	keys := []string{activeKey(victimQueue), leaseKey(victimQueue), pendingKey(victimQueue), taskKey(victimQueue, "g-1")}
	for _, c := range []struct {
		name               string
		score, owner, path string
		margin, max        int
		want               int
	}{
		{"lease score changed", fmt.Sprint(int64(score) - 7), owner.Token(), "owner", 5, 3, 0},
		{"owner changed", seen, "someone:1:else", "owner", 5, 3, 0},
		{"lease not expired by Redis TIME", seen, "", "lease", 5, 3, 0},
		{"handed back too often", seen, owner.Token(), "owner", 5, 0, -1},
	} {
		n, err := handBackCmd.Run(ctx, rdb, keys, "g-1", c.score, c.owner, c.path, c.margin, c.max).Int()
		if err != nil || n != c.want {
			t.Errorf("%s: got %d (%v), want %d", c.name, n, err, c.want)
		}
		if st, _ := rdb.HGet(ctx, keys[3], "state").Result(); st != "active" {
			t.Fatalf("%s: state %q, want active untouched", c.name, st)
		}
	}
	// And with what the sweep saw still true, it hands back.
	if n, err := handBackCmd.Run(ctx, rdb, keys, "g-1", seen, owner.Token(), "owner", 5, 3).Int(); err != nil || n != 1 {
		t.Fatalf("hand-back: %d, %v", n, err)
	}
	if st, _ := rdb.HGet(ctx, keys[3], "state").Result(); st != "pending" {
		t.Fatalf("state %q, want pending", st)
	}
}

func TestOptionsFromEnv(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		v    string
		want time.Duration
		ok   bool
	}{
		{"", 0, true}, {"5s", 5 * time.Second, true}, {"25s", 25 * time.Second, true},
		{"26s", 0, false}, {"500ms", 0, false}, {"8", 0, false}, {"abc", 0, false}, {"-5s", 0, false},
	} {
		o, err := OptionsFromEnv(func(string) string { return c.v })
		if (err == nil) != c.ok || (c.ok && o.StaleAfter != c.want) {
			t.Errorf("%q: %v, %v", c.v, o.StaleAfter, err)
		}
		if err != nil && !strings.Contains(err.Error(), StaleAfterEnv) {
			t.Errorf("%q: error %q does not name the setting", c.v, err)
		}
	}
}

// TestPresence: an owner is present while its connection is open, found by
// its recorded client id or, without the record (Redis out of memory
// refused it, say), by listing every client; once closed it is absent.
func TestPresence(t *testing.T) {
	t.Parallel()
	srvR := testenv.Redis(t)
	rdb := srvR.Client(t)
	ctx := context.Background()
	owner := newRecovery(t, rdb, Options{})
	sweeper := newRecovery(t, rdb, Options{})
	ask := map[string]bool{owner.Token(): true}
	id, err := rdb.Get(ctx, presenceKey(owner.Token())).Int64()
	if err != nil || id == 0 {
		t.Fatalf("presence record: %d, %v", id, err)
	}
	for _, c := range []struct {
		name  string
		setup func()
		want  bool
	}{
		{"recorded", func() {}, true},
		{"record lost", func() { rdb.Del(ctx, presenceKey(owner.Token())) }, true},
		{"record of another connection", func() { rdb.Set(ctx, presenceKey(owner.Token()), 1, 0) }, true},
		{"closed", func() { _ = owner.Close() }, false},
	} {
		c.setup()
		got, known := sweeper.present(ctx, ask)
		if !known || got[owner.Token()] != c.want {
			t.Errorf("%s: present %v (known %v), want %v", c.name, got[owner.Token()], known, c.want)
		}
		if c.name == "recorded" && sweeper.fullLists.Load() != 0 {
			t.Errorf("a recorded owner was looked for in the list of every client")
		}
	}
}
