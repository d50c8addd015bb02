package tests

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/linkharvest/linkharvest/internal/testenv"
)

// secret is the password the settings tests put in Redis URLs; no output
// may hold it, in any form.
const secret = "Pw-Secret-123"

func noSecret(t *testing.T, what, out string) {
	t.Helper()
	for _, s := range []string{secret, "Pw%2DSecret-123"} {
		if strings.Contains(out, s) {
			t.Errorf("%s shows the password (%q):\n%s", what, s, out)
		}
	}
}

// TestBadSettingsStopThePrograms: a mistyped setting of any program stops
// it with exit 2 and a message naming the setting and the value, never
// the password, before the program touches anything (no Redis is up).
func TestBadSettingsStopThePrograms(t *testing.T) {
	dir := t.TempDir()
	list := filepath.Join(dir, "d.txt")
	os.WriteFile(list, []byte("example.com\n"), 0o644)
	badURL := "redis://:" + secret + "@127.0.0.1:notaport/0"
	encURL := "redis://:Pw%2DSecret-123@127.0.0.1:notaport/0"
	worker := []string{"SINK_URL=" + dir, "DATAFORSEO_LOGIN=x", "DATAFORSEO_PASSWORD=y"}
	cases := []struct {
		program string
		env     []string
		args    []string
		names   string // the setting, as the message must name it
		value   string // the value, as the message must show it
	}{
		{"worker", []string{"WORKER_CONCURRENCY=abc"}, nil, "WORKER_CONCURRENCY", "abc"},
		{"worker", []string{"WORKER_CONCURRENCY=-5"}, nil, "WORKER_CONCURRENCY", "-5"},
		{"worker", []string{"WORKER_CONCURRENCY=0"}, nil, "WORKER_CONCURRENCY", "0"},
		{"worker", nil, []string{"--concurrency", "abc"}, "--concurrency", "abc"},
		{"worker", []string{"RETRY_BASE_DELAY=abc"}, nil, "RETRY_BASE_DELAY", "abc"},
		{"worker", nil, []string{"--retry-base", "1"}, "--retry-base", "1"},
		{"worker", []string{"WORKER_SHUTDOWN_TIMEOUT=30"}, nil, "WORKER_SHUTDOWN_TIMEOUT", "30"},
		{"worker", []string{"JOB_RETENTION=30 days"}, nil, "JOB_RETENTION", "30 days"},
		{"worker", []string{"PROVIDER_LIMITS=dataforseo=2000/1m"}, nil, "PROVIDER_LIMITS", "dataforseo=2000/1m"},
		{"worker", []string{"PROVIDER_LIMITS=dataforseo=2000/1m:30,domdetaler=60/1m"}, nil, "PROVIDER_LIMITS", "domdetaler"},
		{"worker", []string{"METRICS_ADDR=9090"}, nil, "METRICS_ADDR", "9090"},
		{"worker", []string{"S3_SSE=aes"}, nil, "S3_SSE", "aes"},
		{"worker", []string{"S3_FORCE_PATH_STYLE=ja"}, nil, "S3_FORCE_PATH_STYLE", "ja"},
		{"worker", []string{"REDIS_URL=" + badURL}, nil, "REDIS_URL", "REDACTED@127.0.0.1:notaport"},
		{"worker", nil, []string{"--redis", encURL}, "--redis", "REDACTED@127.0.0.1:notaport"},
		{"enqueue", []string{"REDIS_URL=" + badURL}, []string{list}, "REDIS_URL", "REDACTED@127.0.0.1:notaport"},
		{"enqueue", nil, []string{"--redis", encURL, list}, "--redis", "REDACTED@127.0.0.1:notaport"},
		{"enqueue", nil, []string{"--redis", badURL, "status", "j"}, "--redis", "REDACTED@127.0.0.1:notaport"},
		{"enqueue", []string{"REDIS_URL=" + badURL}, []string{"resume", "dataforseo"}, "REDIS_URL", "REDACTED@127.0.0.1:notaport"},
		{"enqueue", []string{"WORKER_CONCURRENCY=abc"}, []string{"--dev", list}, "WORKER_CONCURRENCY", "abc"},
		{"enqueue", []string{"JOB_RETENTION=30"}, []string{"--dev", list}, "JOB_RETENTION", "30"},
		{"enqueue", nil, []string{"--max-rows", "many", list}, "max-rows", "many"},
		{"sandbox", []string{"SANDBOX_RATE=fast"}, nil, "SANDBOX_RATE", "fast"},
		{"sandbox", nil, []string{"--concurrency", "-1"}, "--concurrency", "-1"},
		{"sandbox", nil, []string{"--fail", "2"}, "--fail", "2"},
		{"sandbox", []string{"SANDBOX_LATENCY=100"}, nil, "SANDBOX_LATENCY", "100"},
		{"sandbox", []string{"SANDBOX_ADDR=8089"}, nil, "SANDBOX_ADDR", "8089"},
		{"asynqmon", []string{"ASYNQMON_ADDR=8080"}, nil, "ASYNQMON_ADDR", "8080"},
		{"asynqmon", []string{"ASYNQMON_READ_ONLY=maybe"}, nil, "ASYNQMON_READ_ONLY", "maybe"},
		{"asynqmon", []string{"REDIS_URL=" + badURL}, nil, "REDIS_URL", "REDACTED@127.0.0.1:notaport"},
		{"asynqmon", nil, []string{"--redis", encURL}, "--redis", "REDACTED@127.0.0.1:notaport"},
	}
	for _, c := range cases {
		t.Run(c.program+" "+c.names+"="+c.value, func(t *testing.T) {
			env := c.env
			if c.program == "worker" {
				env = append(append([]string{}, worker...), env...)
			}
			stdout, stderr, code := runCmd(t, env, strings.NewReader(""), 30*time.Second, c.program, c.args...)
			out := stdout + stderr
			if code != 2 {
				t.Errorf("exit %d, want 2\n%s", code, out)
			}
			if !strings.Contains(out, c.names) || !strings.Contains(out, c.value) {
				t.Errorf("the message does not name %s and %q:\n%s", c.names, c.value, out)
			}
			noSecret(t, c.program, out)
		})
	}
}

// TestHelpShowsNoPassword: -help shows built-in defaults, never a value
// from the environment that may hold a password.
func TestHelpShowsNoPassword(t *testing.T) {
	env := []string{"REDIS_URL=redis://u:" + secret + "@127.0.0.1:6379/0", "ASYNQMON_BASIC_AUTH=u:" + secret}
	for _, p := range []string{"worker", "enqueue", "asynqmon", "sandbox"} {
		stdout, stderr, code := runCmd(t, env, nil, 30*time.Second, p, "-help")
		if code != 0 || !strings.Contains(stdout+stderr, "-redis") && p != "sandbox" {
			t.Errorf("%s -help: exit %d\n%s%s", p, code, stdout, stderr)
		}
		noSecret(t, p+" -help", stdout+stderr)
	}
}

// TestWorkersShareAHost: three workers with default settings on one host
// all start and keep running; at most one holds the default metrics
// address (loopback), and each of the others says once that it serves no
// metrics.
func TestWorkersShareAHost(t *testing.T) {
	rds := testenv.Redis(t)
	env := []string{"REDIS_URL=" + rds.URL, "DATAFORSEO_LOGIN=x", "DATAFORSEO_PASSWORD=y", "DATAFORSEO_BASE_URL=http://127.0.0.1:1"}
	var ws []*proc
	for i := range 3 {
		ws = append(ws, start(t, append(env, "SINK_URL="+filepath.Join(t.TempDir(), fmt.Sprint(i))), "worker"))
	}
	for _, w := range ws {
		waitLog(t, w, `"worker started"`)
	}
	serving := 0
	for _, w := range ws {
		out := w.out.String()
		switch n := strings.Count(out, "metrics address in use"); {
		case strings.Contains(out, `"serving /metrics and /healthz","addr":"127.0.0.1:9090"`):
			serving++
		case n != 1:
			t.Errorf("a worker without the metrics address says so %d times, want once:\n%s", n, out)
		}
	}
	if serving > 1 {
		t.Errorf("%d workers serve the same metrics address", serving)
	}
	for _, w := range ws {
		w.stop(t, 30*time.Second) // fails if the worker had exited
	}
}

// waitLog waits for a line in a program's output, or its exit.
func waitLog(t *testing.T, p *proc, s string) {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for !strings.Contains(p.out.String(), s) {
		select {
		case <-p.done:
			t.Fatalf("%s exited (%v) before %s:\n%s", p.name, p.err, s, tail(p.out.String(), 3000))
		case <-time.After(50 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s never logged %s:\n%s", p.name, s, tail(p.out.String(), 3000))
		}
	}
}

// TestExplicitMetricsAddrMustBind: an address the user gave that cannot
// be bound stops the worker with exit 2 naming the setting, before it
// takes any task (no Redis is needed to see it).
func TestExplicitMetricsAddrMustBind(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	for _, c := range []struct {
		env  []string
		args []string
	}{
		{[]string{"METRICS_ADDR=" + ln.Addr().String()}, nil},
		{nil, []string{"--metrics-addr", ln.Addr().String()}},
	} {
		env := append([]string{"SINK_URL=" + t.TempDir(), "DATAFORSEO_LOGIN=x", "DATAFORSEO_PASSWORD=y"}, c.env...)
		_, stderr, code := runCmd(t, env, nil, 30*time.Second, "worker", c.args...)
		if code != 2 || !strings.Contains(stderr, "METRICS_ADDR") || !strings.Contains(stderr, "address already in use") {
			t.Errorf("worker %v %v on a taken address: exit %d\n%s", c.env, c.args, code, stderr)
		}
		if strings.Contains(stderr, "worker started") {
			t.Errorf("the worker started before its metrics address failed:\n%s", stderr)
		}
	}
}

// TestWorkerRefusesBadRedisOrSinkAtStart: a worker that cannot work exits
// 2 naming the reason, never "started", never printing the password.
func TestWorkerRefusesBadRedisOrSinkAtStart(t *testing.T) {
	rds := testenv.Redis(t)
	closed := fmt.Sprintf("127.0.0.1:%d", testenv.FreePort(t))
	file := filepath.Join(t.TempDir(), "a-file")
	os.WriteFile(file, nil, 0o644)
	cases := []struct {
		name, redisURL, sinkURL, says string
	}{
		{"wrong password", "redis://nobody:" + secret + "@" + rds.Addr + "/0", "", "authentication failed"},
		{"wrong encoded password", "redis://nobody:Pw%2DSecret-123@" + rds.Addr + "/0", "", "authentication failed"},
		{"rediss to a plain server", "rediss://:" + secret + "@" + rds.Addr + "/0", "", "does not speak TLS"},
		{"redis down", "redis://:" + secret + "@" + closed + "/0", "", "connection refused"},
		{"sink under a file", rds.URL, filepath.Join(file, "out"), "sink"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			sinkURL := c.sinkURL
			if sinkURL == "" {
				sinkURL = t.TempDir()
			}
			env := []string{"REDIS_URL=" + c.redisURL, "SINK_URL=" + sinkURL, "METRICS_ADDR=", "DATAFORSEO_LOGIN=x", "DATAFORSEO_PASSWORD=y"}
			stdout, stderr, code := runCmd(t, env, nil, time.Minute, "worker")
			out := stdout + stderr
			if code != 2 || !strings.Contains(out, c.says) {
				t.Errorf("exit %d, want 2 saying %q:\n%s", code, c.says, out)
			}
			if strings.Contains(out, "worker started") {
				t.Errorf("the worker said it started:\n%s", out)
			}
			if strings.Contains(out, "pool.go") {
				t.Errorf("go-redis's own log lines reach stderr:\n%s", out)
			}
			noSecret(t, "worker", out)
		})
	}
	t.Run("s3 bucket missing", func(t *testing.T) {
		s3 := testenv.MinIO(t)
		env := append(s3.Env(), "REDIS_URL="+rds.URL, "SINK_URL=s3://no-such-bucket-"+strings.ToLower(s3.Bucket), "METRICS_ADDR=",
			"DATAFORSEO_LOGIN=x", "DATAFORSEO_PASSWORD=y")
		_, stderr, code := runCmd(t, env, nil, time.Minute, "worker")
		if code != 2 || !strings.Contains(stderr, "HeadBucket") {
			t.Errorf("exit %d, want 2 naming the bucket check:\n%s", code, stderr)
		}
	})
}

// TestHealthzShowsOutages: after start, a Redis outage does not stop the
// worker; /healthz answers 503 with the reason, and 200 once Redis is back.
func TestHealthzShowsOutages(t *testing.T) {
	rds := testenv.Redis(t)
	addr := fmt.Sprintf("127.0.0.1:%d", testenv.FreePort(t))
	w := start(t, []string{"REDIS_URL=" + rds.URL, "SINK_URL=" + t.TempDir(), "METRICS_ADDR=" + addr,
		"DATAFORSEO_LOGIN=x", "DATAFORSEO_PASSWORD=y"}, "worker")
	waitLog(t, w, `"worker started"`)
	code, body := get(t, "http://"+addr+"/healthz")
	if code != 200 {
		t.Fatalf("/healthz with Redis up: %d %s", code, body)
	}
	rds.Stop(t)
	code, body = get(t, "http://"+addr+"/healthz")
	if code != http.StatusServiceUnavailable || !strings.Contains(body, "redis: ") {
		t.Errorf("/healthz with Redis down: %d %q, want 503 naming redis", code, body)
	}
	rds.Start(t)
	deadline := time.Now().Add(30 * time.Second)
	for code != 200 && time.Now().Before(deadline) {
		time.Sleep(200 * time.Millisecond)
		code, body = get(t, "http://"+addr+"/healthz")
	}
	if code != 200 {
		t.Errorf("/healthz after Redis came back: %d %q", code, body)
	}
	w.stop(t, 30*time.Second)
}

func get(t *testing.T, url string) (int, string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}
