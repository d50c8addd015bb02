package testenv

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
)

func TestMain(m *testing.M) {
	if os.Getenv("TESTENV_ORPHAN_HELPER") == "1" {
		orphanHelper()
		return
	}
	os.Exit(Main(m))
}

func TestFreePortUnique(t *testing.T) {
	t.Parallel()
	seen := map[int]bool{}
	for range 200 {
		p := FreePort(t)
		if seen[p] {
			t.Fatalf("port %d handed out twice", p)
		}
		seen[p] = true
	}
}

func TestDockerProbeIsQuick(t *testing.T) {
	start := time.Now()
	ok, why := probeDocker()
	took := time.Since(start)
	t.Logf("docker available=%v (%s) in %s", ok, why, took)
	if took > time.Second {
		t.Errorf("the docker probe took %s, want < 1s", took)
	}
}

func TestBucketName(t *testing.T) {
	t.Parallel()
	valid := regexp.MustCompile(`^[a-z0-9][a-z0-9-]{1,61}[a-z0-9]$`)
	for _, name := range []string{
		"TestX", "TestSink/S3/put_get", "Test___weird__Name--", "/", strings.Repeat("TestLong", 20), "Ünïcode/テスト",
	} {
		b := bucketName(name)
		if !valid.MatchString(b) || strings.Contains(b, "--") {
			t.Errorf("bucketName(%q) = %q, not a valid bucket name", name, b)
		}
		if b == bucketName(name) {
			t.Errorf("bucketName(%q) gave the same name twice", name)
		}
	}
}

func TestRedisParallel(t *testing.T) {
	for i := range 3 {
		t.Run(strconv.Itoa(i), func(t *testing.T) {
			t.Parallel()
			r := Redis(t)
			if !strings.HasPrefix(r.URL, "redis://127.0.0.1:") || !strings.HasSuffix(r.URL, "/0") {
				t.Errorf("URL = %q", r.URL)
			}
			c := r.Client(t)
			ctx := context.Background()
			// Each test has its own server: a key set here is not seen elsewhere.
			if n, err := c.DBSize(ctx).Result(); err != nil || n != 0 {
				t.Fatalf("fresh redis holds %d keys (err %v)", n, err)
			}
			if err := c.Set(ctx, "k", i, 0).Err(); err != nil {
				t.Fatal(err)
			}
		})
	}
}

func TestRedisStopStartKeepsData(t *testing.T) {
	t.Parallel()
	r := Redis(t)
	c := r.Client(t)
	ctx := context.Background()
	if err := c.Set(ctx, "survivor", "yes", 0).Err(); err != nil {
		t.Fatal(err)
	}
	r.Stop(t)
	if err := c.Ping(ctx).Err(); err == nil {
		t.Fatal("ping succeeded while redis was stopped")
	}
	r.Start(t)
	got, err := c.Get(ctx, "survivor").Result()
	if err != nil || got != "yes" {
		t.Fatalf("after restart: %q, %v", got, err)
	}

	// A crash (SIGKILL) after a second keeps what was written before it.
	if err := c.Set(ctx, "before-crash", "yes", 0).Err(); err != nil {
		t.Fatal(err)
	}
	time.Sleep(1500 * time.Millisecond) // appendfsync everysec
	r.Kill(t)
	r.Start(t)
	if got, err := c.Get(ctx, "before-crash").Result(); err != nil || got != "yes" {
		t.Fatalf("after crash: %q, %v", got, err)
	}
}

func TestMinIOBuckets(t *testing.T) {
	t.Parallel()
	a, b := MinIO(t), MinIO(t)
	if a.Endpoint != b.Endpoint {
		t.Errorf("two MinIO calls in one binary started two servers: %s, %s", a.Endpoint, b.Endpoint)
	}
	if a.Bucket == b.Bucket {
		t.Errorf("two MinIO calls share bucket %s", a.Bucket)
	}
	if got, want := a.SinkURL("/out/"), "s3://"+a.Bucket+"/out"; got != want {
		t.Errorf("SinkURL = %q, want %q", got, want)
	}
	env := strings.Join(a.Env(), "\n")
	for _, want := range []string{"AWS_ENDPOINT_URL_S3=" + a.Endpoint, "AWS_ACCESS_KEY_ID=", "AWS_SECRET_ACCESS_KEY=", "AWS_REGION=", "S3_FORCE_PATH_STYLE=true"} {
		if !strings.Contains(env, want) {
			t.Errorf("Env lacks %s", want)
		}
	}
	ctx := context.Background()
	put(t, a, "k", "hello")
	if got := get(t, a, "k"); got != "hello" {
		t.Errorf("got %q", got)
	}
	if _, err := b.Client().HeadObject(ctx, &s3.HeadObjectInput{Bucket: aws.String(b.Bucket), Key: aws.String("k")}); err == nil {
		t.Error("an object put in one test's bucket shows in another's")
	}
}

func TestOwnMinIOStopStart(t *testing.T) {
	t.Parallel()
	s := OwnMinIO(t)
	if sh := MinIO(t); sh.Endpoint == s.Endpoint {
		t.Fatal("OwnMinIO shares the shared server")
	}
	put(t, s, "k", "kept")
	s.Stop(t)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	noRetry := func(o *s3.Options) { o.RetryMaxAttempts = 1 }
	if _, err := s.Client().GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String(s.Bucket), Key: aws.String("k")}, noRetry); err == nil {
		t.Fatal("get succeeded while minio was stopped")
	}
	s.Start(t)
	if got := get(t, s, "k"); got != "kept" {
		t.Errorf("after restart got %q", got)
	}
}

// TestChildrenDieWithBinary kills (SIGKILL) a test binary that started a
// Redis and a MinIO and checks that both servers die with it.
func TestChildrenDieWithBinary(t *testing.T) {
	t.Parallel()
	if _, err := exec.LookPath("redis-server"); err != nil || useDocker() {
		t.Skip("needs the local redis-server backend")
	}
	if _, err := MinIOBinary(); err != nil {
		t.Skip("needs the local minio binary")
	}
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	// The helper cannot clean up after itself (it is killed): its dirs go in ours.
	cmd.Env = append(os.Environ(), "TESTENV_ORPHAN_HELPER=1", "TMPDIR="+t.TempDir())
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	line, err := bufio.NewReader(out).ReadString('\n')
	if err != nil {
		t.Fatalf("helper: %v", err)
	}
	var pids []int
	for _, f := range strings.Fields(line) {
		pid, err := strconv.Atoi(f)
		if err != nil {
			t.Fatalf("helper said %q", line)
		}
		pids = append(pids, pid)
	}
	if len(pids) != 2 {
		t.Fatalf("helper said %q", line)
	}
	_ = cmd.Process.Signal(syscall.SIGKILL)
	_ = cmd.Wait()
	deadline := time.Now().Add(5 * time.Second)
	for _, pid := range pids {
		for processAlive(pid) && !zombie(pid) {
			if time.Now().After(deadline) {
				t.Fatalf("server pid %d outlived its killed test binary", pid)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
}

// zombie: a dead child not yet reaped by its (new) parent counts as dead.
func zombie(pid int) bool {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return errors.Is(err, os.ErrNotExist)
	}
	i := bytes.LastIndexByte(b, ')')
	return i > 0 && i+2 < len(b) && b[i+2] == 'Z'
}

// orphanHelper starts a Redis and a MinIO, prints their pids and waits to be killed.
func orphanHelper() {
	t := &helperTB{}
	r := Redis(t)
	s := OwnMinIO(t)
	fmt.Printf("%d %d\n", r.proc.cmd.Process.Pid, s.srv.proc.cmd.Process.Pid)
	select {}
}

// helperTB is enough of a testing.TB for the helper process.
type helperTB struct{ testing.TB }

func (*helperTB) Helper()                   {}
func (*helperTB) Name() string              { return "helper" }
func (*helperTB) Cleanup(func())            {}
func (*helperTB) TempDir() string           { d, _ := os.MkdirTemp("", "testenv-helper-"); return d }
func (*helperTB) Fatalf(f string, a ...any) { fmt.Fprintf(os.Stderr, f+"\n", a...); os.Exit(3) }
func (*helperTB) Fatal(a ...any)            { fmt.Fprintln(os.Stderr, a...); os.Exit(3) }
func (*helperTB) Skipf(f string, a ...any)  { fmt.Fprintf(os.Stderr, f+"\n", a...); os.Exit(4) }

func put(t *testing.T, s *S3, key, body string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_, err := s.Client().PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String(s.Bucket), Key: aws.String(key), Body: strings.NewReader(body)})
	if err != nil {
		t.Fatal(err)
	}
}

func get(t *testing.T, s *S3, key string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	o, err := s.Client().GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String(s.Bucket), Key: aws.String(key)})
	if err != nil {
		t.Fatal(err)
	}
	defer o.Body.Close()
	b, err := io.ReadAll(o.Body)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}
