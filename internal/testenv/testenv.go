// Package testenv gives tests real services: a private Redis per test and a
// MinIO bucket per test.
//
// When a Docker engine answers, the services run in containers started by
// testcontainers-go. Otherwise (the usual case on CI machines and laptops
// without an engine) the local redis-server and minio binaries are started
// as child processes, each on its own free loopback port with its own data
// directory, so tests can run in parallel and a fault test can stop and
// restart its own server without disturbing anyone else's.
//
// When neither is available a test is skipped, unless
// LINKHARVEST_REQUIRE_INTEGRATION=1, when it fails: CI sets it so that a
// broken machine cannot turn the integration suite into a row of skips.
//
// Environment:
//
//	LINKHARVEST_REQUIRE_INTEGRATION=1   fail instead of skip when no service can be started
//	LINKHARVEST_TESTENV=local|docker    force the backend (default: docker when an engine answers)
//	LINKHARVEST_REDIS_SERVER=PATH       redis-server binary (default: PATH lookup)
//	LINKHARVEST_MINIO=PATH              minio binary (default: PATH, then $(go env GOPATH)/bin/minio)
//	LINKHARVEST_REDIS_IMAGE, LINKHARVEST_MINIO_IMAGE   container images for the Docker backend
package testenv

import (
	"context"
	"fmt"
	"net"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/testcontainers/testcontainers-go"
)

// requireEnv makes unavailable services a failure instead of a skip.
const requireEnv = "LINKHARVEST_REQUIRE_INTEGRATION"

// unavailable skips the test (or fails it when integration is required)
// because a service cannot be had on this machine.
func unavailable(t testing.TB, format string, args ...any) {
	t.Helper()
	msg := fmt.Sprintf(format, args...)
	if os.Getenv(requireEnv) == "1" {
		t.Fatalf("testenv: %s (%s=1, so this is a failure, not a skip)", msg, requireEnv)
	}
	t.Skipf("testenv: %s; set %s=1 to make this a failure", msg, requireEnv)
}

// Main runs the tests and then stops the MinIO shared by the test binary.
// Call it from TestMain: os.Exit(testenv.Main(m)). Without it the shared
// MinIO still dies with the test binary (Pdeathsig), but its data
// directory is only swept by a later run.
func Main(m *testing.M) int {
	code := m.Run()
	stopShared()
	return code
}

var ports struct {
	sync.Mutex
	given map[int]bool
}

// FreePort returns a free TCP port on 127.0.0.1. A port is never handed out
// twice by one test binary, so parallel tests do not collide with each other
// between FreePort and the moment their server binds it.
func FreePort(t testing.TB) int {
	t.Helper()
	p, err := freePort()
	if err != nil {
		t.Fatalf("testenv: finding a free port: %v", err)
	}
	return p
}

func freePort() (int, error) {
	ports.Lock()
	defer ports.Unlock()
	if ports.given == nil {
		ports.given = map[int]bool{}
	}
	for range 50 {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return 0, err
		}
		p := l.Addr().(*net.TCPAddr).Port
		l.Close()
		if !ports.given[p] {
			ports.given[p] = true
			return p, nil
		}
	}
	return 0, fmt.Errorf("no unused port after 50 attempts")
}

var docker struct {
	once sync.Once
	ok   bool
	why  string
}

// dockerProbeTimeout bounds the Docker probe: with no engine the answer
// must come fast, since every test that wants a service asks.
const dockerProbeTimeout = 800 * time.Millisecond

// useDocker reports whether a Docker engine answers (asked once per binary).
func useDocker() bool {
	docker.once.Do(func() {
		switch os.Getenv("LINKHARVEST_TESTENV") {
		case "local":
			docker.why = "LINKHARVEST_TESTENV=local"
			return
		case "docker":
			docker.ok = true
			return
		}
		docker.ok, docker.why = probeDocker()
	})
	return docker.ok
}

// probeDocker asks testcontainers' provider for the engine's health. The
// provider panics when no Docker host can be found at all, and a remote
// host that does not answer could block, so the probe runs in its own
// goroutine behind a deadline.
func probeDocker() (bool, string) {
	ctx, cancel := context.WithTimeout(context.Background(), dockerProbeTimeout)
	defer cancel()
	res := make(chan error, 1)
	go func() {
		defer func() {
			if r := recover(); r != nil {
				res <- fmt.Errorf("no docker host: %v", r)
			}
		}()
		p, err := testcontainers.NewDockerProvider()
		if err != nil {
			res <- err
			return
		}
		res <- p.Health(ctx) // Health closes the provider
	}()
	select {
	case err := <-res:
		if err != nil {
			return false, err.Error()
		}
		return true, ""
	case <-ctx.Done():
		return false, "docker engine did not answer within " + dockerProbeTimeout.String()
	}
}
