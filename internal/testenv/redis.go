package testenv

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/api/types/network"
	"github.com/redis/go-redis/v9"
	"github.com/testcontainers/testcontainers-go"
	tcredis "github.com/testcontainers/testcontainers-go/modules/redis"
)

// RedisServer is a Redis private to one test.
type RedisServer struct {
	URL  string // redis://127.0.0.1:PORT/0
	Addr string // 127.0.0.1:PORT

	mu        sync.Mutex
	port      int
	dir       string // data directory (local backend)
	bin       string
	proc      *proc                    // local backend; nil while stopped
	container testcontainers.Container // docker backend
}

// Redis starts a Redis for this test alone and stops it at cleanup. It runs
// with appendonly yes, as production does, so Stop and Start keep the data.
func Redis(t testing.TB) *RedisServer {
	t.Helper()
	if useDocker() {
		return dockerRedis(t)
	}
	bin := os.Getenv("LINKHARVEST_REDIS_SERVER")
	if bin == "" {
		var err error
		if bin, err = exec.LookPath("redis-server"); err != nil {
			unavailable(t, "no Docker engine (%s) and no redis-server in PATH (apt-get install redis-server, or make deps)", docker.why)
		}
	}
	r := &RedisServer{bin: bin, dir: t.TempDir()}
	var err error
	// A port can be taken between FreePort and redis-server binding it by
	// a process outside this binary; try a few.
	for range 3 {
		r.port = FreePort(t)
		if err = r.start(); err == nil || !addrInUse(err.Error()) {
			break
		}
	}
	if err != nil {
		t.Fatalf("testenv: %v", err)
	}
	r.Addr = "127.0.0.1:" + strconv.Itoa(r.port)
	r.URL = "redis://" + r.Addr + "/0"
	t.Cleanup(func() {
		r.mu.Lock()
		defer r.mu.Unlock()
		if r.proc != nil {
			r.proc.kill() // the data dies with the test; no need to flush it
		}
	})
	return r
}

func (r *RedisServer) start() error {
	args := []string{
		"--port", strconv.Itoa(r.port),
		"--bind", "127.0.0.1",
		"--dir", r.dir,
		"--appendonly", "yes",
		"--save", "", // AOF only, as in production
		"--daemonize", "no",
		"--logfile", "", // standard output, kept by proc for failure messages
		"--loglevel", "warning",
	}
	p, err := startProc("redis-server", r.bin, args, nil)
	if err != nil {
		return err
	}
	addr := "127.0.0.1:" + strconv.Itoa(r.port)
	if err := p.waitReady(15*time.Second, func() error { return pingRedis(addr) }); err != nil {
		p.kill()
		return err
	}
	r.proc = p
	return nil
}

// pingRedis sends a raw PING: cheaper than a client, and it proves the
// server has loaded its data (it answers LOADING until then).
func pingRedis(addr string) error {
	c, err := net.DialTimeout("tcp", addr, time.Second)
	if err != nil {
		return err
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(time.Second))
	if _, err := c.Write([]byte("PING\r\n")); err != nil {
		return err
	}
	line, err := bufio.NewReader(c).ReadString('\n')
	if err != nil {
		return err
	}
	if !strings.HasPrefix(line, "+PONG") {
		return fmt.Errorf("redis answered PING with %q", strings.TrimSpace(line))
	}
	return nil
}

// Stop shuts the server down (SIGTERM: Redis writes its AOF and exits), as an
// outage would look to clients. Start brings it back with its data.
func (r *RedisServer) Stop(t testing.TB) {
	t.Helper()
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.container != nil {
		timeout := 10 * time.Second
		if err := r.container.Stop(context.Background(), &timeout); err != nil {
			t.Fatalf("testenv: stopping redis container: %v", err)
		}
		return
	}
	if r.proc != nil {
		r.proc.stop(10 * time.Second)
		r.proc = nil
	}
}

// Kill ends the server with SIGKILL, as a crash would: writes of the last
// second may be lost (appendfsync everysec, as in production).
func (r *RedisServer) Kill(t testing.TB) {
	t.Helper()
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.container != nil {
		timeout := time.Duration(0)
		if err := r.container.Stop(context.Background(), &timeout); err != nil {
			t.Fatalf("testenv: killing redis container: %v", err)
		}
		return
	}
	if r.proc != nil {
		r.proc.kill()
		r.proc = nil
	}
}

// Start starts a stopped server again on the same port and data directory.
func (r *RedisServer) Start(t testing.TB) {
	t.Helper()
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.container != nil {
		if err := r.container.Start(context.Background()); err != nil {
			t.Fatalf("testenv: starting redis container again: %v", err)
		}
		if err := waitFor(15*time.Second, func() error { return pingRedis(r.Addr) }); err != nil {
			t.Fatalf("testenv: redis container after restart: %v", err)
		}
		return
	}
	if r.proc != nil {
		return // already running
	}
	if err := r.start(); err != nil {
		t.Fatalf("testenv: starting redis again on %s: %v", r.Addr, err)
	}
}

// Client returns a go-redis client for the server, closed at cleanup.
func (r *RedisServer) Client(t testing.TB) *redis.Client {
	t.Helper()
	opt, err := redis.ParseURL(r.URL)
	if err != nil {
		t.Fatalf("testenv: %v", err)
	}
	c := redis.NewClient(opt)
	t.Cleanup(func() { _ = c.Close() })
	return c
}

func dockerRedis(t testing.TB) *RedisServer {
	t.Helper()
	img := os.Getenv("LINKHARVEST_REDIS_IMAGE")
	if img == "" {
		img = "redis:7.2"
	}
	port := FreePort(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	c, err := tcredis.Run(ctx, img,
		testcontainers.WithCmdArgs("--appendonly", "yes", "--save", ""),
		fixedPort(port, "6379/tcp"),
	)
	testcontainers.CleanupContainer(t, c)
	if err != nil {
		unavailable(t, "starting a redis container: %v", err)
	}
	addr := "127.0.0.1:" + strconv.Itoa(port)
	return &RedisServer{URL: "redis://" + addr + "/0", Addr: addr, port: port, container: c}
}

// fixedPort publishes the container port on 127.0.0.1:hostPort, so the
// address survives Stop and Start (Docker would pick a new random port).
func fixedPort(hostPort int, containerPort string) testcontainers.CustomizeRequestOption {
	return testcontainers.WithHostConfigModifier(func(hc *container.HostConfig) {
		if hc.PortBindings == nil {
			hc.PortBindings = network.PortMap{}
		}
		hc.PortBindings[network.MustParsePort(containerPort)] = []network.PortBinding{
			{HostIP: netip.MustParseAddr("127.0.0.1"), HostPort: strconv.Itoa(hostPort)},
		}
	})
}

// waitFor polls ready until it returns nil or timeout passes.
func waitFor(timeout time.Duration, ready func() error) error {
	deadline := time.Now().Add(timeout)
	for {
		err := ready()
		if err == nil {
			return nil
		}
		if time.Now().After(deadline) {
			return err
		}
		time.Sleep(50 * time.Millisecond)
	}
}
