package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"

	"github.com/linkharvest/linkharvest/sink"
)

// startRedis runs a private redis-server on a free loopback port with no persistence and
// returns its URL. It skips when redis-server is missing, unless LINKHARVEST_REQUIRE_INTEGRATION=1.
func startRedis(t *testing.T) string {
	t.Helper()
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		if os.Getenv("LINKHARVEST_REQUIRE_INTEGRATION") == "1" {
			t.Fatalf("redis-server not found: %v", err)
		}
		t.Skip("redis-server not installed")
	}
	for attempt := 0; attempt < 5; attempt++ {
		port := freePort(t)
		ctx, cancel := context.WithCancel(context.Background())
		cmd := exec.CommandContext(ctx, bin, "--port", strconv.Itoa(port), "--bind", "127.0.0.1",
			"--save", "", "--appendonly", "no", "--dir", t.TempDir())
		var out bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &out
		if err := cmd.Start(); err != nil {
			cancel()
			t.Fatalf("start redis-server: %v", err)
		}
		exited := make(chan struct{})
		go func() { _ = cmd.Wait(); close(exited) }()
		stop := func() { cancel(); <-exited }

		url := fmt.Sprintf("redis://127.0.0.1:%d/0", port)
		rc := redis.NewClient(&redis.Options{Addr: fmt.Sprintf("127.0.0.1:%d", port)})
		deadline := time.Now().Add(5 * time.Second)
		for time.Now().Before(deadline) {
			select {
			case <-exited: // most likely the port was taken between freePort and now
				deadline = time.Now()
				continue
			default:
			}
			if rc.Ping(context.Background()).Err() == nil {
				_ = rc.Close()
				t.Cleanup(stop)
				return url
			}
			time.Sleep(20 * time.Millisecond)
		}
		_ = rc.Close()
		stop()
		t.Logf("redis-server on port %d did not come up (attempt %d): %s", port, attempt+1, out.String())
	}
	t.Fatal("could not start redis-server")
	return ""
}

func freePort(t *testing.T) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

func serve(t *testing.T, cfg config) *httptest.Server {
	t.Helper()
	srv, err := newServer(cfg, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatalf("newServer: %v", err)
	}
	ts := httptest.NewServer(srv.Handler)
	t.Cleanup(func() { ts.Close(); _ = srv.Close() })
	return ts
}

type response struct {
	status int
	header http.Header
	body   string
}

func do(t *testing.T, method, url string, creds *credentials) response {
	t.Helper()
	req, err := http.NewRequest(method, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	if creds != nil {
		req.SetBasicAuth(creds.user, creds.pass)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return response{resp.StatusCode, resp.Header, string(b)}
}

func TestServeAgainstRedis(t *testing.T) {
	t.Parallel()
	redisURL := startRedis(t)

	// A task in a provider queue, so the API has something of ours to show.
	client := asynq.NewClient(mustRedisOpt(t, redisURL))
	if _, err := client.Enqueue(asynq.NewTask("page", []byte(`{}`)), asynq.Queue("dataforseo")); err != nil {
		t.Fatalf("enqueue: %v", err)
	}
	_ = client.Close()

	good := &credentials{"admin", "s3cret-pass"}

	t.Run("no auth on loopback", func(t *testing.T) {
		ts := serve(t, config{RedisURL: redisURL, Addr: "127.0.0.1:0"})
		r := do(t, "GET", ts.URL+"/", nil)
		if r.status != 200 || !strings.HasPrefix(r.header.Get("Content-Type"), "text/html") ||
			!strings.Contains(strings.ToLower(r.body), "<html") {
			t.Fatalf("GET / = %d %q, body %.200q; want 200 HTML", r.status, r.header.Get("Content-Type"), r.body)
		}
		r = do(t, "GET", ts.URL+"/api/queues", nil)
		if r.status != 200 || !strings.Contains(r.body, `"dataforseo"`) {
			t.Fatalf("GET /api/queues = %d %s; want 200 listing dataforseo", r.status, r.body)
		}
	})

	t.Run("basic auth", func(t *testing.T) {
		ts := serve(t, config{RedisURL: redisURL, Addr: "0.0.0.0:8080", BasicAuth: good.user + ":" + good.pass})
		for _, tc := range []struct {
			name  string
			path  string
			creds *credentials
			want  int
		}{
			{"no credentials", "/", nil, 401},
			{"no credentials api", "/api/queues", nil, 401},
			{"wrong password", "/", &credentials{"admin", "wrong"}, 401},
			{"wrong user", "/", &credentials{"root", good.pass}, 401},
			{"password prefix", "/", &credentials{"admin", "s3cret"}, 401},
			{"empty password", "/", &credentials{"admin", ""}, 401},
			{"good", "/", good, 200},
			{"good api", "/api/queues", good, 200},
			{"jobs without credentials", "/jobs", nil, 401},
			{"jobs json without credentials", "/jobs.json", nil, 401},
			{"job without credentials", "/jobs/any", nil, 401},
			{"manifest without credentials", "/jobs/any/manifest.json", nil, 401},
			{"jobs wrong password", "/jobs", &credentials{"admin", "wrong"}, 401},
			{"jobs", "/jobs", good, 200},
			{"jobs json", "/jobs.json", good, 200},
			{"healthz needs no auth", "/healthz", nil, 200},
		} {
			t.Run(tc.name, func(t *testing.T) {
				r := do(t, "GET", ts.URL+tc.path, tc.creds)
				if r.status != tc.want {
					t.Fatalf("GET %s = %d, want %d", tc.path, r.status, tc.want)
				}
				if tc.want == 401 {
					if !strings.HasPrefix(r.header.Get("WWW-Authenticate"), "Basic ") {
						t.Errorf("401 without a Basic challenge: %q", r.header.Get("WWW-Authenticate"))
					}
					if strings.Contains(r.body, good.pass) {
						t.Errorf("401 body leaks the password")
					}
				}
				if (tc.path == "/" || tc.path == "/jobs") && tc.want == 200 && !strings.HasPrefix(r.header.Get("Content-Type"), "text/html") {
					t.Errorf("Content-Type = %q, want HTML", r.header.Get("Content-Type"))
				}
			})
		}
	})

	t.Run("read-only", func(t *testing.T) {
		ts := serve(t, config{RedisURL: redisURL, Addr: "127.0.0.1:0", ReadOnly: true})
		if r := do(t, "POST", ts.URL+"/api/queues/dataforseo:pause", nil); r.status != http.StatusMethodNotAllowed {
			t.Fatalf("pause in read-only mode = %d %s, want 405", r.status, r.body)
		}
		if r := do(t, "GET", ts.URL+"/api/queues/dataforseo", nil); r.status != 200 {
			t.Fatalf("GET queue in read-only mode = %d, want 200", r.status)
		}
		if paused := queuePaused(t, redisURL, "dataforseo"); paused {
			t.Fatal("queue paused despite read-only")
		}
	})

	t.Run("writable", func(t *testing.T) {
		ts := serve(t, config{RedisURL: redisURL, Addr: "127.0.0.1:0"})
		if r := do(t, "POST", ts.URL+"/api/queues/dataforseo:pause", nil); r.status != 204 && r.status != 200 {
			t.Fatalf("pause = %d %s, want success", r.status, r.body)
		}
		if !queuePaused(t, redisURL, "dataforseo") {
			t.Fatal("queue not paused")
		}
	})
}

func queuePaused(t *testing.T, redisURL, q string) bool {
	t.Helper()
	in := asynq.NewInspector(mustRedisOpt(t, redisURL))
	defer in.Close()
	info, err := in.GetQueueInfo(q)
	if err != nil {
		t.Fatal(err)
	}
	return info.Paused
}

func mustRedisOpt(t *testing.T, u string) asynq.RedisClientOpt {
	t.Helper()
	o, err := redisOpt(u)
	if err != nil {
		t.Fatal(err)
	}
	return o
}

func TestRunRefusesPublicAddrWithoutAuth(t *testing.T) {
	t.Parallel()
	for _, addr := range []string{"0.0.0.0:8080", ":8080", "[::]:8080", "10.1.2.3:8080", "asynqmon.internal:8080"} {
		t.Run(addr, func(t *testing.T) {
			var logs bytes.Buffer
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			// run must fail before it listens or dials Redis; a bad Redis port proves it never got there.
			err := run(ctx, []string{"--addr", addr, "--redis", "redis://127.0.0.1:1/0"},
				func(string) string { return "" }, slog.New(slog.NewTextHandler(&logs, nil)))
			if err == nil || !strings.Contains(err.Error(), "--basic-auth") || !strings.Contains(err.Error(), "refusing") {
				t.Fatalf("run(--addr %s) without auth = %v; want a refusal naming --basic-auth", addr, err)
			}
		})
	}
}

func TestRunServesUntilCancelled(t *testing.T) {
	t.Parallel()
	redisURL := startRedis(t)
	addr := fmt.Sprintf("127.0.0.1:%d", freePort(t))
	var logs safeBuffer
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	env := map[string]string{"REDIS_URL": redisURL, "ASYNQMON_BASIC_AUTH": "ops:hunter2-very-secret"}
	go func() {
		done <- run(ctx, []string{"--addr", addr}, func(k string) string { return env[k] },
			slog.New(slog.NewTextHandler(&logs, nil)))
	}()
	deadline := time.Now().Add(5 * time.Second)
	var r response
	for {
		resp, err := http.Get("http://" + addr + "/")
		if err == nil {
			resp.Body.Close()
			r.status = resp.StatusCode
			break
		}
		if time.Now().After(deadline) {
			cancel()
			t.Fatalf("server did not come up: %v (run: %v)", err, <-done)
		}
		time.Sleep(20 * time.Millisecond)
	}
	if r.status != 401 {
		t.Errorf("GET / without credentials = %d, want 401 (auth from ASYNQMON_BASIC_AUTH)", r.status)
	}
	if r := do(t, "GET", "http://"+addr+"/", &credentials{"ops", "hunter2-very-secret"}); r.status != 200 {
		t.Errorf("GET / with credentials = %d, want 200", r.status)
	}
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("run after cancel = %v, want nil", err)
		}
	case <-time.After(15 * time.Second):
		t.Fatal("run did not return after cancel")
	}
	if strings.Contains(logs.String(), "hunter2") {
		t.Fatalf("logs contain the password:\n%s", logs.String())
	}
	if !strings.Contains(logs.String(), "basic_auth=true") {
		t.Errorf("logs do not say auth is on:\n%s", logs.String())
	}
}

func TestIsLoopback(t *testing.T) {
	t.Parallel()
	for addr, want := range map[string]bool{
		"127.0.0.1:8080":      true,
		"127.1.2.3:8080":      true,
		"localhost:8080":      true,
		"LOCALHOST:8080":      true,
		"[::1]:8080":          true,
		":8080":               false,
		"0.0.0.0:8080":        false,
		"[::]:8080":           false,
		"10.0.0.5:8080":       false,
		"192.168.1.1:80":      false,
		"example.com:8080":    false,
		"localhost.evil:8080": false,
		"[fe80::1%lo]:8080":   false,
		"127.0.0.1":           false, // no port: not a listen address we accept as safe
		"":                    false,
	} {
		if got := isLoopback(addr); got != want {
			t.Errorf("isLoopback(%q) = %v, want %v", addr, got, want)
		}
	}
}

func TestParseConfig(t *testing.T) {
	t.Parallel()
	env := map[string]string{
		"REDIS_URL":           "redis://env:6379/1",
		"ASYNQMON_ADDR":       "0.0.0.0:9000",
		"ASYNQMON_BASIC_AUTH": "envuser:envpass",
		"ASYNQMON_READ_ONLY":  "true",
		"SINK_URL":            "s3://env-bucket/out",
		"S3_FORCE_PATH_STYLE": "true",
	}
	getenv := func(k string) string { return env[k] }
	tests := []struct {
		name   string
		args   []string
		getenv func(string) string
		want   config
	}{
		{"defaults", nil, func(string) string { return "" },
			config{RedisURL: defaultRedisURL, Addr: defaultAddr}},
		{"environment", nil, getenv,
			config{RedisURL: "redis://env:6379/1", Addr: "0.0.0.0:9000", BasicAuth: "envuser:envpass", ReadOnly: true,
				Sink: "s3://env-bucket/out", S3: sink.S3Options{ForcePathStyle: true}}},
		{"flags win", []string{"--redis", "rediss://flag:6380/2", "--addr", "127.0.0.1:1", "--basic-auth", "f:p", "--read-only=false", "--sink", "/data/out"}, getenv,
			config{RedisURL: "rediss://flag:6380/2", Addr: "127.0.0.1:1", BasicAuth: "f:p", ReadOnly: false,
				Sink: "/data/out", S3: sink.S3Options{ForcePathStyle: true}}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := parseConfig(tc.args, tc.getenv, io.Discard)
			if err != nil {
				t.Fatal(err)
			}
			if got != tc.want {
				t.Fatalf("got %+v, want %+v", got, tc.want)
			}
		})
	}
	if _, err := parseConfig([]string{"extra"}, getenv, io.Discard); err == nil {
		t.Error("stray argument accepted")
	}
	if _, err := parseConfig(nil, func(k string) string {
		return map[string]string{"ASYNQMON_READ_ONLY": "maybe"}[k]
	}, io.Discard); err == nil {
		t.Error("ASYNQMON_READ_ONLY=maybe accepted")
	}
	if _, err := parseConfig([]string{"--sink", "s3://b/p"}, func(k string) string {
		return map[string]string{"S3_SSE": "rot13"}[k]
	}, io.Discard); err == nil || !strings.Contains(err.Error(), "S3_SSE") {
		t.Errorf("--sink with S3_SSE=rot13: %v, want a refusal naming S3_SSE", err)
	}
}

func TestHelpDoesNotPrintSecretsFromEnvironment(t *testing.T) {
	t.Parallel()
	var out bytes.Buffer
	env := map[string]string{"REDIS_URL": "redis://u:redis-secret@h:6379/0", "ASYNQMON_BASIC_AUTH": "a:auth-secret"}
	_, _ = parseConfig([]string{"-help"}, func(k string) string { return env[k] }, &out)
	if s := out.String(); strings.Contains(s, "redis-secret") || strings.Contains(s, "auth-secret") {
		t.Fatalf("-help output leaks a secret:\n%s", s)
	}
}

func TestNewServerRejectsBadConfig(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name    string
		cfg     config
		errHas  string
		secrets []string
	}{
		{"public without auth", config{RedisURL: defaultRedisURL, Addr: "0.0.0.0:8080"}, "--basic-auth", nil},
		{"auth without colon", config{RedisURL: defaultRedisURL, Addr: "0.0.0.0:8080", BasicAuth: "justapassword"}, "user:password", []string{"justapassword"}},
		{"auth without user", config{RedisURL: defaultRedisURL, Addr: "0.0.0.0:8080", BasicAuth: ":pw-secret"}, "user:password", []string{"pw-secret"}},
		{"auth without password", config{RedisURL: defaultRedisURL, Addr: "127.0.0.1:8080", BasicAuth: "user:"}, "user:password", nil},
		{"bad scheme", config{RedisURL: "http://u:pw-secret@h:1/0", Addr: defaultAddr}, "scheme", []string{"pw-secret"}},
		{"bad db", config{RedisURL: "redis://u:pw-secret@h:1/notanumber", Addr: defaultAddr}, "database", []string{"pw-secret"}},
		{"unparsable", config{RedisURL: "redis://u:pw-secret@h:port/0", Addr: defaultAddr}, "invalid Redis URL", []string{"pw-secret"}},
		{"sink with credentials", config{RedisURL: defaultRedisURL, Addr: defaultAddr, Sink: "s3://key:pw-secret@bucket/p"}, "credentials", []string{"pw-secret"}},
		{"sink scheme", config{RedisURL: defaultRedisURL, Addr: defaultAddr, Sink: "ftp://h/p"}, "unsupported scheme", nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv, err := newServer(tc.cfg, slog.New(slog.NewTextHandler(io.Discard, nil)))
			if err == nil {
				_ = srv.Close()
				t.Fatalf("newServer(%+v) succeeded", tc.cfg)
			}
			if !strings.Contains(err.Error(), tc.errHas) {
				t.Errorf("error %q does not mention %q", err, tc.errHas)
			}
			for _, s := range tc.secrets {
				if strings.Contains(err.Error(), s) {
					t.Errorf("error %q leaks %q", err, s)
				}
			}
		})
	}
}

func TestRedisOpt(t *testing.T) {
	t.Parallel()
	o, err := redisOpt("rediss://acl-user:p%40ss@redis.example:6380/3")
	if err != nil {
		t.Fatal(err)
	}
	if o.Addr != "redis.example:6380" || o.Username != "acl-user" || o.Password != "p@ss" || o.DB != 3 {
		t.Errorf("got addr=%q user=%q db=%d", o.Addr, o.Username, o.DB)
	}
	if o.TLSConfig == nil || o.TLSConfig.ServerName != "redis.example" {
		t.Errorf("rediss:// without TLS config for the host: %+v", o.TLSConfig)
	}
	o, err = redisOpt("redis://127.0.0.1:6379/0")
	if err != nil || o.TLSConfig != nil || o.Password != "" {
		t.Errorf("plain redis:// = %+v, %v", o, err)
	}
}

// safeBuffer is a bytes.Buffer safe for the logger goroutine and the test to share.
type safeBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *safeBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *safeBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}
