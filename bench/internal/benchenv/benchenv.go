// Package benchenv is what the bench programs share: building the
// binaries, running redis-server, MinIO, the sandbox and workers as child
// processes on free loopback ports, reading a child's CPU time and memory
// from /proc, and waiting for a job to end. It is for benchmarks only.
package benchenv

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"
	"github.com/redis/go-redis/v9"

	"github.com/linkharvest/linkharvest/internal/testenv"
	"github.com/linkharvest/linkharvest/providers/sandbox"
	"github.com/linkharvest/linkharvest/tasks"
)

// Env is one bench run's scratch directory and child processes.
type Env struct {
	Dir string // scratch directory, removed by Close
	Bin string // built binaries: worker, enqueue, sandbox

	mu    sync.Mutex
	procs []*Proc
}

// New makes a scratch directory and builds the given commands (e.g.
// "worker", "enqueue", "sandbox") into it.
func New(cmds ...string) (*Env, error) {
	dir, err := os.MkdirTemp("", "lh-bench-")
	if err != nil {
		return nil, err
	}
	e := &Env{Dir: dir, Bin: filepath.Join(dir, "bin")}
	live.mu.Lock()
	live.envs = append(live.envs, e)
	live.mu.Unlock()
	onSignal.Do(func() {
		ch := make(chan os.Signal, 1)
		signal.Notify(ch, os.Interrupt, syscall.SIGTERM)
		go func() {
			<-ch
			Exit(130)
		}()
	})
	if len(cmds) > 0 {
		args := []string{"build", "-o", e.Bin + "/"}
		for _, c := range cmds {
			args = append(args, "./cmd/"+c)
		}
		build := exec.Command("go", args...)
		build.Stdout, build.Stderr = os.Stderr, os.Stderr
		if err := build.Run(); err != nil {
			os.RemoveAll(dir)
			return nil, fmt.Errorf("building %v: %w", cmds, err)
		}
	}
	return e, nil
}

var (
	live struct {
		mu   sync.Mutex
		envs []*Env
	}
	onSignal sync.Once
)

// Exit closes every Env (children killed, scratch directories removed)
// and exits: the programs call it on errors and it runs on SIGINT/SIGTERM,
// so an aborted run leaves no MinIO data behind.
func Exit(code int) {
	live.mu.Lock()
	envs := live.envs
	live.envs = nil
	live.mu.Unlock()
	for _, e := range envs {
		e.Close()
	}
	os.Exit(code)
}

// Close kills every child still running and removes the scratch directory.
func (e *Env) Close() {
	e.mu.Lock()
	procs := e.procs
	e.procs = nil
	e.mu.Unlock()
	for i := len(procs) - 1; i >= 0; i-- {
		procs[i].Kill()
	}
	os.RemoveAll(e.Dir)
}

// Proc is a child process.
type Proc struct {
	Name string
	Cmd  *exec.Cmd
	Log  string // its combined output
	done chan struct{}
	err  error
	// Rusage is the child's resource use, set once it has exited.
	Rusage *syscall.Rusage
}

// Start starts a child with env added to ours; its output goes to a log
// file in the scratch directory. It dies with us (SIGKILL).
func (e *Env) Start(name string, env []string, bin string, args ...string) (*Proc, error) {
	e.mu.Lock()
	n := len(e.procs)
	e.mu.Unlock()
	logPath := filepath.Join(e.Dir, fmt.Sprintf("%s-%d.log", name, n))
	logf, err := os.Create(logPath)
	if err != nil {
		return nil, err
	}
	c := exec.Command(bin, args...)
	c.Env = append(os.Environ(), env...)
	c.Dir = e.Dir
	c.Stdout, c.Stderr = logf, logf
	c.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := c.Start(); err != nil {
		logf.Close()
		return nil, fmt.Errorf("starting %s: %w", name, err)
	}
	p := &Proc{Name: name, Cmd: c, Log: logPath, done: make(chan struct{})}
	go func() {
		p.err = c.Wait()
		logf.Close()
		if ru, ok := c.ProcessState.SysUsage().(*syscall.Rusage); ok {
			p.Rusage = ru
		}
		close(p.done)
	}()
	e.mu.Lock()
	e.procs = append(e.procs, p)
	e.mu.Unlock()
	return p, nil
}

// Pid is the child's process id.
func (p *Proc) Pid() int { return p.Cmd.Process.Pid }

// Exited reports whether the child has ended.
func (p *Proc) Exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// Wait waits for the child to end and returns its exit error.
func (p *Proc) Wait() error { <-p.done; return p.err }

// MaxRSS is the child's peak resident set size in bytes once it has
// exited (wait4's ru_maxrss: its VmHWM at exit), 0 before.
func (p *Proc) MaxRSS() int64 {
	if !p.Exited() || p.Rusage == nil {
		return 0
	}
	return p.Rusage.Maxrss << 10 // kB on Linux
}

// Stop sends SIGTERM and waits up to grace, then SIGKILL.
func (p *Proc) Stop(grace time.Duration) {
	if p.Exited() {
		return
	}
	_ = p.Cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(grace):
		p.Kill()
	}
}

// Kill ends the child at once.
func (p *Proc) Kill() {
	if p.Exited() {
		return
	}
	_ = p.Cmd.Process.Kill()
	<-p.done
}

// Tail is the end of the child's log, for error messages.
func (p *Proc) Tail() string {
	b, _ := os.ReadFile(p.Log)
	if len(b) > 4000 {
		b = b[len(b)-4000:]
	}
	return string(b)
}

// FreePort asks the kernel for a free loopback port.
func FreePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// WaitPort waits until addr accepts connections or p exits.
func WaitPort(p *Proc, addr string, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		if c, err := net.DialTimeout("tcp", addr, time.Second); err == nil {
			c.Close()
			return nil
		}
		if p != nil && p.Exited() {
			return fmt.Errorf("%s exited before listening on %s:\n%s", p.Name, addr, p.Tail())
		}
		time.Sleep(20 * time.Millisecond)
	}
	return fmt.Errorf("%s did not open within %s", addr, timeout)
}

// Redis starts a redis-server without persistence and returns its URL.
func (e *Env) Redis() (*Proc, string, error) {
	port, err := FreePort()
	if err != nil {
		return nil, "", err
	}
	p, err := e.Start("redis", nil, "redis-server", "--port", strconv.Itoa(port), "--bind", "127.0.0.1",
		"--save", "", "--appendonly", "no", "--dir", e.Dir)
	if err != nil {
		return nil, "", err
	}
	addr := fmt.Sprintf("127.0.0.1:%d", port)
	if err := WaitPort(p, addr, 15*time.Second); err != nil {
		return nil, "", err
	}
	return p, "redis://" + addr + "/0", nil
}

// Sandbox starts the built sandbox with args and returns its base URL.
func (e *Env) Sandbox(args ...string) (*Proc, string, error) {
	port, err := FreePort()
	if err != nil {
		return nil, "", err
	}
	addr := fmt.Sprintf("127.0.0.1:%d", port)
	p, err := e.Start("sandbox", nil, filepath.Join(e.Bin, "sandbox"), append([]string{"--addr", addr}, args...)...)
	if err != nil {
		return nil, "", err
	}
	if err := WaitPort(p, addr, 15*time.Second); err != nil {
		return nil, "", err
	}
	return p, "http://" + addr, nil
}

// S3 is a MinIO bucket and what a worker needs to reach it.
type S3 struct {
	Proc     *Proc
	Endpoint string
	User     string
	Password string
	Bucket   string
}

// Env is the worker environment for the bucket (the AWS SDK chain).
func (s *S3) Env() []string {
	return []string{
		"SINK_URL=s3://" + s.Bucket + "/bench",
		"AWS_ENDPOINT_URL_S3=" + s.Endpoint,
		"AWS_ACCESS_KEY_ID=" + s.User,
		"AWS_SECRET_ACCESS_KEY=" + s.Password,
		"AWS_REGION=us-east-1",
		"S3_FORCE_PATH_STYLE=true",
		"AWS_SESSION_TOKEN=",
		"AWS_PROFILE=",
		"AWS_EC2_METADATA_DISABLED=true",
	}
}

// MinIO starts a MinIO on a scratch directory and creates a bucket.
func (e *Env) MinIO() (*S3, error) {
	bin, err := testenv.MinIOBinary()
	if err != nil {
		return nil, err
	}
	port, err := FreePort()
	if err != nil {
		return nil, err
	}
	console, err := FreePort()
	if err != nil {
		return nil, err
	}
	pw := make([]byte, 16)
	_, _ = rand.Read(pw)
	s := &S3{Endpoint: fmt.Sprintf("http://127.0.0.1:%d", port), User: "bench", Password: hex.EncodeToString(pw), Bucket: "bench"}
	// Each MinIO has its own data directory: a second one on the same
	// directory would find the bucket taken (409) and share its objects.
	data, err := os.MkdirTemp(e.Dir, "minio-")
	if err != nil {
		return nil, err
	}
	p, err := e.Start("minio", []string{"MINIO_ROOT_USER=" + s.User, "MINIO_ROOT_PASSWORD=" + s.Password, "MINIO_UPDATE=off", "MINIO_BROWSER=off"},
		bin, "server", data, "--address", fmt.Sprintf("127.0.0.1:%d", port), "--console-address", fmt.Sprintf("127.0.0.1:%d", console), "--quiet")
	if err != nil {
		return nil, err
	}
	s.Proc = p
	client := s3.New(s3.Options{Region: "us-east-1", BaseEndpoint: aws.String(s.Endpoint), UsePathStyle: true,
		Credentials: credentials.NewStaticCredentialsProvider(s.User, s.Password, "")})
	deadline := time.Now().Add(60 * time.Second)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		_, err = client.CreateBucket(ctx, &s3.CreateBucketInput{Bucket: aws.String(s.Bucket)})
		cancel()
		var owned *types.BucketAlreadyOwnedByYou
		if err == nil || errors.As(err, &owned) { // owned: an earlier try got through
			return s, nil
		}
		if p.Exited() || time.Now().After(deadline) {
			return nil, fmt.Errorf("minio: creating the bucket: %w\n%s", err, p.Tail())
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// WorkerEnv is the environment of a worker on redisURL calling the
// DataForSEO sandbox at base.
func WorkerEnv(redisURL, base string, extra ...string) []string {
	return append([]string{
		"REDIS_URL=" + redisURL,
		"DATAFORSEO_BASE_URL=" + base, "DATAFORSEO_LOGIN=bench", "DATAFORSEO_PASSWORD=bench",
		"METRICS_ADDR=", "OTEL_TRACES_EXPORTER=none",
	}, extra...)
}

// Want says which services a run needs besides Redis.
type Want struct {
	MinIO   bool     // a MinIO bucket for the sink
	Sandbox []string // the built sandbox's arguments; nil: no sandbox
}

// Services are what a run's workers need besides their own processes: a
// Redis (with a client and the job store on it) and what Want asked for.
type Services struct {
	Redis      *Proc
	RedisURL   string
	RDB        *redis.Client
	Store      *tasks.Store
	S3         *S3    // nil without Want.MinIO
	SandboxURL string // "" without Want.Sandbox
	sandbox    *Proc
}

// Services starts a Redis and what w asks for. Close ends them before
// the Env does, for runs that want fresh ones each time.
func (e *Env) Services(w Want) (sv *Services, err error) {
	sv = &Services{}
	defer func() {
		if err != nil {
			sv.Close()
		}
	}()
	if sv.Redis, sv.RedisURL, err = e.Redis(); err != nil {
		return nil, err
	}
	if sv.RDB, err = OpenRedis(sv.RedisURL); err != nil {
		return nil, err
	}
	sv.Store = tasks.NewStore(sv.RDB)
	if w.MinIO {
		if sv.S3, err = e.MinIO(); err != nil {
			return nil, err
		}
	}
	if w.Sandbox != nil {
		if sv.sandbox, sv.SandboxURL, err = e.Sandbox(w.Sandbox...); err != nil {
			return nil, err
		}
	}
	return sv, nil
}

// Sandbox is the sandbox's process (nil without Want.Sandbox).
func (sv *Services) Sandbox() *Proc { return sv.sandbox }

// Close closes the client and kills the services.
func (sv *Services) Close() {
	if sv.RDB != nil {
		sv.RDB.Close()
	}
	for _, p := range []*Proc{sv.sandbox, sv.Redis} {
		if p != nil {
			p.Kill()
		}
	}
	if sv.S3 != nil && sv.S3.Proc != nil {
		sv.S3.Proc.Kill()
	}
}

// Workers are worker processes of one run.
type Workers []*Proc

// Workers starts n built workers with env added to ours.
func (e *Env) Workers(n int, env []string) (Workers, error) {
	ws := make(Workers, 0, n)
	for range n {
		w, err := e.Start("worker", env, filepath.Join(e.Bin, "worker"))
		if err != nil {
			ws.Stop()
			return nil, err
		}
		ws = append(ws, w)
	}
	return ws, nil
}

// Stop stops every worker as a deployment would: SIGTERM, then SIGKILL
// after 10 s.
func (ws Workers) Stop() {
	for _, w := range ws {
		w.Stop(10 * time.Second)
	}
}

// CPU is the workers' CPU time so far.
func (ws Workers) CPU() (time.Duration, error) {
	var t time.Duration
	for _, w := range ws {
		c, err := CPU(w.Pid())
		if err != nil {
			return 0, err
		}
		t += c
	}
	return t, nil
}

// WaitUp waits until every worker has registered its Asynq server in
// Redis, so that a clock started now does not time their start-up.
func (ws Workers) WaitUp(ctx context.Context, rdb *redis.Client) error {
	for {
		n, err := rdb.ZCard(ctx, "asynq:servers").Result()
		if err != nil {
			return err
		}
		if n >= int64(len(ws)) {
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// CPU is a process's user and system CPU time.
func CPU(pid int) (time.Duration, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	// Fields after the command name (which may hold spaces) in parentheses.
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return 0, errors.New("bad /proc stat")
	}
	f := strings.Fields(string(b[i+1:]))
	// f[0] is field 3 (state); utime and stime are fields 14 and 15.
	if len(f) < 13 {
		return 0, errors.New("short /proc stat")
	}
	ut, _ := strconv.ParseInt(f[11], 10, 64)
	st, _ := strconv.ParseInt(f[12], 10, 64)
	return time.Duration(ut+st) * time.Second / clockTicks, nil
}

// clockTicks is USER_HZ, 100 on every Linux Go supports.
const clockTicks = 100

// Mem returns a process's resident set size now and at its peak, in bytes.
func Mem(pid int) (rss, hwm int64, err error) {
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, 0, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		k, v, ok := strings.Cut(sc.Text(), ":")
		if !ok {
			continue
		}
		var dst *int64
		switch k {
		case "VmRSS":
			dst = &rss
		case "VmHWM":
			dst = &hwm
		default:
			continue
		}
		n, _ := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
		*dst = n << 10
	}
	return rss, hwm, sc.Err()
}

// Load is /proc/loadavg's three averages.
func Load() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "?"
	}
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return "?"
	}
	return strings.Join(f[:3], " ")
}

// SelfCPU is this process's CPU time (every thread, GC included).
func SelfCPU() time.Duration {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// WriteDomains writes n one-page domains whose first label asks the
// sandbox for rows rows each: rows-R.dNNNNNNN.example (prefix tells runs
// apart). It streams, so ten million lines do not sit in memory.
func WriteDomains(path, prefix string, n, rows int) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	w := bufio.NewWriterSize(f, 1<<20)
	for i := 0; i < n; i++ {
		fmt.Fprintf(w, "rows-%d.%s%07d.example\n", rows, prefix, i)
	}
	if err := w.Flush(); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// Enqueue runs the built enqueue on list as job and returns its output.
func (e *Env) Enqueue(env []string, job, list string, args ...string) (string, error) {
	c := exec.Command(filepath.Join(e.Bin, "enqueue"), append(append([]string{"--job", job}, args...), list)...)
	c.Env = append(os.Environ(), env...)
	out, err := c.CombinedOutput()
	if err != nil {
		return string(out), fmt.Errorf("enqueue: %w\n%s", err, out)
	}
	return string(out), nil
}

// OpenRedis connects to url.
func OpenRedis(url string) (*redis.Client, error) {
	opt, err := redis.ParseURL(url)
	if err != nil {
		return nil, err
	}
	return redis.NewClient(opt), nil
}

// RedisInfo is one section of INFO (e.g. "memory") as field → value.
func RedisInfo(ctx context.Context, rdb *redis.Client, section string) (map[string]string, error) {
	s, err := rdb.Info(ctx, section).Result()
	if err != nil {
		return nil, err
	}
	m := map[string]string{}
	for _, l := range strings.Split(s, "\n") {
		if k, v, ok := strings.Cut(strings.TrimSpace(l), ":"); ok && !strings.HasPrefix(k, "#") {
			m[k] = v
		}
	}
	return m, nil
}

// RedisMemory is INFO memory's used_memory and used_memory_peak (the
// most since the server started), in bytes.
func RedisMemory(ctx context.Context, rdb *redis.Client) (used, peak int64, err error) {
	m, err := RedisInfo(ctx, rdb, "memory")
	if err != nil {
		return 0, 0, err
	}
	if used, err = strconv.ParseInt(m["used_memory"], 10, 64); err != nil {
		return 0, 0, fmt.Errorf("INFO memory: used_memory: %w", err)
	}
	if peak, err = strconv.ParseInt(m["used_memory_peak"], 10, 64); err != nil {
		return 0, 0, fmt.Errorf("INFO memory: used_memory_peak: %w", err)
	}
	return used, peak, nil
}

// WaitJob polls a job's status every poll until cond holds, the job is
// done, or ctx ends; it returns the last status.
func WaitJob(ctx context.Context, store *tasks.Store, job string, poll time.Duration, cond func(*tasks.Status) bool) (*tasks.Status, error) {
	for {
		s, err := store.Status(ctx, job)
		if err == nil && (s.Done() || (cond != nil && cond(s))) {
			return s, nil
		}
		if err != nil && !errors.Is(err, tasks.ErrNoJob) {
			return nil, err
		}
		select {
		case <-ctx.Done():
			return s, ctx.Err()
		case <-time.After(poll):
		}
	}
}

// SandboxStats reads the sandbox's DataForSEO counters.
func SandboxStats(base string) (sandbox.Stats, error) {
	resp, err := http.Get(base + "/stats")
	if err != nil {
		return sandbox.Stats{}, err
	}
	defer resp.Body.Close()
	var m map[string]sandbox.Stats
	if err := jsonDecode(resp, &m); err != nil {
		return sandbox.Stats{}, err
	}
	return m["dataforseo"], nil
}

// ResetStats zeroes the sandbox's counters.
func ResetStats(base string) error {
	resp, err := http.Post(base+"/stats/reset", "", nil)
	if err != nil {
		return err
	}
	resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		return fmt.Errorf("POST stats/reset: %s", resp.Status)
	}
	return nil
}

// MB formats bytes as MB (10^6, as RSS targets are stated).
func MB(b int64) string { return fmt.Sprintf("%.0f MB", float64(b)/1e6) }

func jsonDecode(resp *http.Response, v any) error {
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("GET stats: %s", resp.Status)
	}
	return json.NewDecoder(resp.Body).Decode(v)
}
