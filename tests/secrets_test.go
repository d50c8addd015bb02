package tests

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/linkharvest/linkharvest/internal/testenv"
	"github.com/linkharvest/linkharvest/providers/registry"
	"github.com/linkharvest/linkharvest/sink"
)

// passwordRedis starts a redis-server that requires a password.
func passwordRedis(t *testing.T, password string) string {
	t.Helper()
	port := testenv.FreePort(t)
	cmd := exec.Command("redis-server", "--port", strconv.Itoa(port), "--bind", "127.0.0.1", "--save", "",
		"--appendonly", "no", "--dir", t.TempDir(), "--requirepass", password)
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		if os.Getenv("LINKHARVEST_REQUIRE_INTEGRATION") == "1" {
			t.Fatal(err)
		}
		t.Skip("no redis-server:", err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	waitPort(t, fmt.Sprintf("127.0.0.1:%d", port))
	return fmt.Sprintf("redis://:%s@127.0.0.1:%d/0", password, port)
}

// TestSecretsNeverLeak runs a job over all four vendors with distinctive
// credentials and a Redis password, then searches every log line of every
// process, every value in Redis (task payloads included), the manifest and
// every output object: no credential may appear.
func TestSecretsNeverLeak(t *testing.T) {
	// Every vendor's secrets, from the list: a vendor added to it is covered.
	secrets := map[string]string{"REDIS_PASSWORD": "redisPw8Hz1Secret", "AWS_SECRET_ACCESS_KEY": ""}
	for i, k := range registry.SecretVars() {
		secrets[k] = fmt.Sprintf("v%dPw7Qx9Secret%s", i, strings.ToLower(k))
	}
	redisURL := passwordRedis(t, secrets["REDIS_PASSWORD"])
	s3 := testenv.MinIO(t)
	s3.Setenv(t)
	for _, kv := range s3.Env() {
		if v, ok := strings.CutPrefix(kv, "AWS_SECRET_ACCESS_KEY="); ok {
			secrets["AWS_SECRET_ACCESS_KEY"] = v
		}
	}
	base, _ := startSandbox(t)
	sinkURL := s3.SinkURL("secrets")
	env := append(append(s3.Env(), vendorEnv(base)...), "REDIS_URL="+redisURL, "SINK_URL="+sinkURL,
		"METRICS_ADDR=", "PROVIDER_LIMITS="+allLimits)
	for k, v := range secrets {
		if k != "REDIS_PASSWORD" && k != "AWS_SECRET_ACCESS_KEY" {
			env = append(env, k+"="+v)
		}
	}
	w := start(t, env, "worker")
	file := filepath.Join(t.TempDir(), "domains.txt")
	os.WriteFile(file, []byte("rows-1200.example\nrows-2.example\nhttps://user:hunter2@example.com/x\n"), 0o644)
	stdout, stderr, code := runCmd(t, env, nil, 3*time.Minute, "enqueue", "--job", "secrets", "--wait", "--json",
		"--provider", strings.Join(registry.Names(), ","), file)
	if code != 0 {
		t.Fatalf("enqueue exit %d\n%s\n%s", code, stdout, stderr)
	}
	st1, st2, _ := runCmd(t, env, nil, time.Minute, "enqueue", "status", "--json", "secrets")
	w.stop(t, 40*time.Second)

	var hay strings.Builder
	hay.WriteString(stdout + stderr + st1 + st2 + w.out.String())
	// Every key and value in Redis.
	opt, _ := redis.ParseURL(redisURL)
	rdb := redis.NewClient(opt)
	defer rdb.Close()
	ctx := context.Background()
	iter := rdb.Scan(ctx, 0, "*", 1000).Iterator()
	keys := 0
	for iter.Next(ctx) {
		k := iter.Val()
		keys++
		hay.WriteString(k + "\n")
		switch rdb.Type(ctx, k).Val() {
		case "string":
			hay.WriteString(rdb.Get(ctx, k).Val())
		case "hash":
			for f, v := range rdb.HGetAll(ctx, k).Val() {
				hay.WriteString(f + "=" + v + "\n")
			}
		case "list":
			hay.WriteString(strings.Join(rdb.LRange(ctx, k, 0, -1).Val(), "\n"))
		case "set":
			hay.WriteString(strings.Join(rdb.SMembers(ctx, k).Val(), "\n"))
		case "zset":
			hay.WriteString(strings.Join(rdb.ZRange(ctx, k, 0, -1).Val(), "\n"))
		}
	}
	if keys == 0 {
		t.Fatal("read nothing from Redis")
	}
	// The manifest and every output object.
	snk, err := sink.Open(ctx, sinkURL)
	if err != nil {
		t.Fatal(err)
	}
	objs, err := snk.List(ctx, "")
	if err != nil {
		t.Fatal(err)
	}
	for _, o := range objs {
		b, err := snk.Get(ctx, o.Key)
		if err != nil {
			t.Fatal(err)
		}
		if strings.HasSuffix(o.Key, ".ndjson.gz") {
			recs, err := sink.DecodePage(b)
			if err != nil {
				t.Fatal(err)
			}
			for _, r := range recs {
				fmt.Fprintf(&hay, "%+v %s\n", r, r.Raw)
			}
			continue
		}
		hay.Write(b)
	}
	all := hay.String()
	for name, v := range secrets {
		if v != "" && strings.Contains(all, v) {
			i := strings.Index(all, v)
			t.Errorf("%s appears: …%s…", name, all[max(0, i-80):min(len(all), i+40)])
		}
	}
	if strings.Contains(all, "hunter2") {
		t.Error("credentials from an input URL were kept")
	}
}
