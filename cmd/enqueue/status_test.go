package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/hibiken/asynq"

	"github.com/linkharvest/linkharvest/internal/testenv"
)

func runEnqueue(t *testing.T, args ...string) (int, string, string) {
	t.Helper()
	var stdout, stderr bytes.Buffer
	code := run(context.Background(), args, strings.NewReader(""), &stdout, &stderr)
	return code, stdout.String(), stderr.String()
}

// TestSubcommandsAfterGlobalFlags: status and resume take --redis (and
// --json) before or after their name.
func TestSubcommandsAfterGlobalFlags(t *testing.T) {
	rds := testenv.Redis(t)
	t.Setenv("REDIS_URL", "redis://127.0.0.1:1/0") // wrong: only --redis may lead to the server
	list := filepath.Join(t.TempDir(), "d.txt")
	os.WriteFile(list, []byte("example.com\n"), 0o644)
	if code, out, errs := runEnqueue(t, "--redis", rds.URL, "--job", "order", list); code != exitOK {
		t.Fatalf("submitting: exit %d\n%s%s", code, out, errs)
	}
	for _, args := range [][]string{
		{"--redis", rds.URL, "status", "order"},
		{"status", "--redis", rds.URL, "order"},
		{"--redis", rds.URL, "--json", "status", "order"},
	} {
		code, out, errs := runEnqueue(t, args...)
		if code != exitOK || !strings.Contains(out, "job order") {
			t.Errorf("enqueue %v: exit %d\n%s%s", args, code, out, errs)
		}
		if args[2] == "--json" && !strings.Contains(out, `"job_id":"order"`) {
			t.Errorf("enqueue %v: --json before status ignored:\n%s", args, out)
		}
	}
	inspector := asynq.NewInspectorFromRedisClient(rds.Client(t))
	for _, args := range [][]string{
		{"--redis", rds.URL, "resume", "dataforseo"},
		{"resume", "--redis", rds.URL, "dataforseo"},
	} {
		if err := inspector.PauseQueue("dataforseo"); err != nil {
			t.Fatal(err)
		}
		if code, out, errs := runEnqueue(t, args...); code != exitOK || !strings.Contains(out, "queue resumed") {
			t.Errorf("enqueue %v: exit %d\n%s%s", args, code, out, errs)
		}
	}
	// A flag that means nothing to status is refused, not ignored.
	if code, _, errs := runEnqueue(t, "--redis", rds.URL, "--wait", "status", "order"); code != exitUsage || !strings.Contains(errs, "--wait") {
		t.Errorf("--wait status: exit %d\n%s", code, errs)
	}
}

// TestRedisErrorsReadable: the password never shows when Redis is away,
// and Redis out of memory is said in words rather than as a script error.
func TestRedisErrorsReadable(t *testing.T) {
	t.Parallel()
	list := filepath.Join(t.TempDir(), "d.txt")
	os.WriteFile(list, []byte("example.com\nexample.org\n"), 0o644)
	for _, u := range []string{"redis://:Pw-Secret-123@127.0.0.1:1/0", "redis://u:Pw%2DSecret-123@127.0.0.1:1/0"} {
		code, out, errs := runEnqueue(t, "--redis", u, list)
		if code != exitRuntime || !strings.Contains(errs, "REDACTED@127.0.0.1:1") {
			t.Errorf("redis down: exit %d\n%s%s", code, out, errs)
		}
		if strings.Contains(out+errs, "Pw-Secret") || strings.Contains(out+errs, "Pw%2DSecret") {
			t.Errorf("the password shows:\n%s%s", out, errs)
		}
		if strings.Contains(errs, "pool.go") {
			t.Errorf("go-redis's own log lines reach stderr:\n%s", errs)
		}
	}

	rds := testenv.Redis(t)
	if err := rds.Client(t).ConfigSet(context.Background(), "maxmemory", "1").Err(); err != nil {
		t.Fatal(err)
	}
	code, out, errs := runEnqueue(t, "--redis", rds.URL, "--job", "oom", list)
	if code == exitOK || !strings.Contains(errs, "redis is out of memory") {
		t.Errorf("redis at maxmemory: exit %d, want an error in words\n%s%s", code, out, errs)
	}
	if strings.Contains(errs, "OOM command not allowed") || strings.Contains(errs, "@user_script") {
		t.Errorf("Redis's raw reply shows:\n%s", errs)
	}
}
