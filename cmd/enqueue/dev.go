package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/redis/go-redis/v9"

	"github.com/linkharvest/linkharvest/internal/runner"
	"github.com/linkharvest/linkharvest/providers/registry"
	"github.com/linkharvest/linkharvest/providers/sandbox"
)

// devEnv is `--dev`: the whole system in one process, so that a new user
// sees real output with one command and no services.
type devEnv struct {
	redisURL string
	sinkURL  string
	mini     *miniredis.Miniredis
	sandbox  *http.Server
	env      map[string]string
	runner   *runner.Runner
	cfg      runner.Config // the worker's, from the environment
	log      *slog.Logger
}

func startDev(ctx context.Context, o options, stderr io.Writer) (*devEnv, error) {
	d := &devEnv{env: map[string]string{}, log: slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))}
	// A bad worker setting stops --dev before anything starts.
	cfg, err := runner.ConfigFromEnv(d.getenv)
	if err != nil {
		return nil, usageError{err}
	}
	d.cfg = cfg
	if o.redisSet {
		d.redisURL = o.redisURL
	} else {
		// Embedded Redis: fine for a demo, keeps nothing (never the default elsewhere).
		m, err := miniredis.Run()
		if err != nil {
			return nil, fmt.Errorf("embedded redis: %w", err)
		}
		d.mini = m
		d.redisURL = "redis://" + m.Addr() + "/0"
	}
	if !anyBaseURLSet() {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			d.Close()
			return nil, fmt.Errorf("sandbox: %w", err)
		}
		srv := registry.Sandbox(sandbox.Options{Rate: 2000, Period: time.Minute, Concurrency: 30, Seed: 1})
		d.sandbox = &http.Server{Handler: srv, ReadHeaderTimeout: 10 * time.Second}
		go d.sandbox.Serve(ln)
		for k, v := range registry.SandboxEnv("http://" + ln.Addr().String()) {
			d.env[k] = v
		}
	}
	d.sinkURL = o.sinkURL
	if d.sinkURL == "" {
		abs, err := filepath.Abs("out")
		if err != nil {
			d.Close()
			return nil, err
		}
		d.sinkURL = abs
	}
	return d, nil
}

func anyBaseURLSet() bool {
	for _, k := range registry.BaseURLVars() {
		if os.Getenv(k) != "" {
			return true
		}
	}
	return false
}

func (d *devEnv) getenv(k string) string {
	if v, ok := d.env[k]; ok {
		return v
	}
	return os.Getenv(k)
}

// startWorkers runs a worker in this process with a worker's own
// configuration (runner.ConfigFromEnv: the same defaults, the same
// variables), on this Redis, sink and sandbox.
func (d *devEnv) startWorkers(ctx context.Context, rdb *redis.Client) error {
	cfg := d.cfg
	cfg.RedisConn, cfg.Redis, cfg.SinkURL, cfg.Log = runner.RedisConfig{URL: d.redisURL}, rdb, d.sinkURL, d.log
	r, err := runner.Start(ctx, cfg)
	if err != nil {
		return err
	}
	d.runner = r
	return nil
}

func (d *devEnv) stopWorkers() {
	if d.runner != nil {
		d.runner.Shutdown()
		d.runner = nil
	}
}

func (d *devEnv) Close() {
	d.stopWorkers()
	if d.sandbox != nil {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		if err := d.sandbox.Shutdown(ctx); err != nil && !errors.Is(err, context.DeadlineExceeded) {
			d.log.Warn("sandbox shutdown", "err", err)
		}
		cancel()
	}
	if d.mini != nil {
		d.mini.Close()
	}
}
