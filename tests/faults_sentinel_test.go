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

	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"

	"github.com/linkharvest/linkharvest/internal/testenv"
	"github.com/linkharvest/linkharvest/tasks"
)

// redisProc runs one redis-server (or sentinel) of the failover case.
func redisProc(t *testing.T, name string, args ...string) *exec.Cmd {
	t.Helper()
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		t.Fatalf("redis-server: %v", err)
	}
	cmd := exec.Command(bin, args...)
	out := &lockedBuffer{}
	cmd.Stdout, cmd.Stderr = out, out
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		t.Fatalf("starting %s: %v", name, err)
	}
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); close(done) }()
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		<-done
		if t.Failed() {
			t.Logf("--- output of %s:\n%s", name, tail(out.String(), 3000))
		}
	})
	return cmd
}

// TestFaultSentinelFailover: the job's Redis is a primary, a replica and
// a sentinel (REDIS_URL=redis+sentinel://…); the primary is SIGKILLed
// mid-job, the sentinel promotes the replica, and the workers and
// enqueue --wait follow it: the job completes with every row once.
func TestFaultSentinelFailover(t *testing.T) {
	faultsEnabled(t)
	r := newFaultRig(t, testenv.MinIO(t), 150, nil, "--latency", "100ms")
	dir := t.TempDir()
	pPrimary, pReplica, pSentinel := testenv.FreePort(t), testenv.FreePort(t), testenv.FreePort(t)
	common := []string{"--bind", "127.0.0.1", "--save", "", "--appendonly", "no"}
	primary := redisProc(t, "primary", append([]string{"--port", strconv.Itoa(pPrimary), "--dir", dir, "--dbfilename", "p.rdb"}, common...)...)
	redisProc(t, "replica", append([]string{"--port", strconv.Itoa(pReplica), "--dir", dir, "--dbfilename", "r.rdb",
		"--replicaof", "127.0.0.1", strconv.Itoa(pPrimary)}, common...)...)
	conf := filepath.Join(dir, "sentinel.conf")
	if err := os.WriteFile(conf, []byte(fmt.Sprintf(`port %d
bind 127.0.0.1
sentinel monitor lh 127.0.0.1 %d 1
sentinel down-after-milliseconds lh 1000
sentinel failover-timeout lh 10000
sentinel parallel-syncs lh 1
`, pSentinel, pPrimary)), 0o644); err != nil {
		t.Fatal(err)
	}
	redisProc(t, "sentinel", conf, "--sentinel")
	replica := redis.NewClient(&redis.Options{Addr: fmt.Sprintf("127.0.0.1:%d", pReplica)})
	defer replica.Close()
	waitFor(t, 20*time.Second, "the replica in sync", func() bool {
		info, _ := replica.Info(context.Background(), "replication").Result()
		return strings.Contains(info, "master_link_status:up")
	})
	sentinel := redis.NewSentinelClient(&redis.Options{Addr: fmt.Sprintf("127.0.0.1:%d", pSentinel)})
	defer sentinel.Close()
	master := func() string {
		a, _ := sentinel.GetMasterAddrByName(context.Background(), "lh").Result()
		return strings.Join(a, ":")
	}
	waitFor(t, 20*time.Second, "the sentinel knows the primary", func() bool { return master() == fmt.Sprintf("127.0.0.1:%d", pPrimary) })
	// A sentinel learns of replicas from the primary's INFO (every 10 s);
	// killed before that, it has no replica to promote.
	waitFor(t, 30*time.Second, "the sentinel knows the replica", func() bool {
		reps, err := sentinel.Replicas(context.Background(), "lh").Result()
		if err != nil || len(reps) != 1 {
			return false
		}
		r := reps[0]
		return r["port"] == strconv.Itoa(pReplica) && !strings.Contains(r["flags"], "down") && r["master-link-status"] == "ok"
	})

	url := fmt.Sprintf("redis+sentinel://127.0.0.1:%d/lh/0", pSentinel)
	r.env = append(r.env, "REDIS_URL="+url)
	fc := redis.NewFailoverClient(&redis.FailoverOptions{MasterName: "lh", SentinelAddrs: []string{fmt.Sprintf("127.0.0.1:%d", pSentinel)}})
	defer fc.Close()
	r.store, r.insp = tasks.NewStore(fc), asynq.NewInspectorFromRedisClient(fc)

	r.startWorkers(2)
	done := r.enqueueAsync("failover")
	r.waitProgress("failover", 30, 2*time.Minute)
	_ = primary.Process.Kill()
	t1 := time.Now()
	r.logf("primary SIGKILLed")
	waitFor(t, time.Minute, "the replica promoted", func() bool { return master() == fmt.Sprintf("127.0.0.1:%d", pReplica) })
	r.logf("the sentinel promoted the replica %.1fs after the kill", time.Since(t1).Seconds())
	r.wait(done, 5*time.Minute, 0)
	r.logf("the job ended %.1fs after the kill", time.Since(t1).Seconds())
	r.proof("sentinel-failover", "failover")
}
