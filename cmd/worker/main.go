// Command worker executes linkharvest's tasks: it fetches pages from the
// vendors under limits shared by every worker, and writes them to the sink.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strconv"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/linkharvest/linkharvest/internal/runner"
	"github.com/linkharvest/linkharvest/internal/telemetry"
	"github.com/linkharvest/linkharvest/limiter"
	"github.com/linkharvest/linkharvest/tasks"
)

func main() {
	// Pages in flight are sized to the memory limit (tasks.Stage).
	tasks.SetDefaultMemoryLimit(os.Getenv)
	if err := run(os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, "worker:", err)
		os.Exit(1)
	}
}

func env(name, def string) string {
	if v := os.Getenv(name); v != "" {
		return v
	}
	return def
}

func envInt(name string, def int) int {
	if v, err := strconv.Atoi(os.Getenv(name)); err == nil {
		return v
	}
	return def
}

func envDuration(name string, def time.Duration) time.Duration {
	if v, err := time.ParseDuration(os.Getenv(name)); err == nil {
		return v
	}
	return def
}

func run(args []string) error {
	fs := flag.NewFlagSet("worker", flag.ContinueOnError)
	redisURL := fs.String("redis", "", redisUsage)
	sinkURL := fs.String("sink", env("SINK_URL", "./out"), "s3://bucket/prefix, file:///abs/dir or a directory (SINK_URL)")
	conc := fs.Int("concurrency", envInt("WORKER_CONCURRENCY", 40), "tasks at once in this process (WORKER_CONCURRENCY)")
	limits := fs.String("limit", env("PROVIDER_LIMITS", ""), "shared limits per provider, e.g. dataforseo=2000/1m:30 (PROVIDER_LIMITS)")
	defMetrics := ":9090"
	if v, ok := os.LookupEnv("METRICS_ADDR"); ok {
		defMetrics = v // set but empty: disabled
	}
	metricsAddr := fs.String("metrics-addr", defMetrics, "serves /metrics and /healthz; empty to disable (METRICS_ADDR)")
	shutdown := fs.Duration("shutdown-timeout", envDuration("WORKER_SHUTDOWN_TIMEOUT", 30*time.Second), "on SIGTERM, how long running tasks may finish (WORKER_SHUTDOWN_TIMEOUT)")
	retryBase := fs.Duration("retry-base", envDuration("RETRY_BASE_DELAY", time.Second), "first retry delay, doubling per failure up to 5 min (RETRY_BASE_DELAY)")
	retention := fs.Duration("retention", envDuration("JOB_RETENTION", 30*24*time.Hour), "how long a finished job's state stays in Redis, for status and resubmission; 0 keeps it (JOB_RETENTION)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	log := slog.New(telemetry.LogHandler{Handler: slog.NewJSONHandler(os.Stderr, nil)})
	slog.SetDefault(log)
	lim, err := limiter.ParseLimits(*limits)
	if err != nil {
		return err
	}
	if *redisURL == "" {
		*redisURL = env("REDIS_URL", "redis://127.0.0.1:6379/0")
	}
	rdb, err := runner.OpenRedis(*redisURL)
	if err != nil {
		return err
	}
	defer rdb.Close()

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	shutdownTelemetry, err := telemetry.Setup(ctx, "linkharvest-worker")
	if err != nil {
		return fmt.Errorf("telemetry: %w", err)
	}
	defer shutdownTelemetry(context.WithoutCancel(ctx))

	r, err := runner.Start(ctx, runner.Config{
		Redis: rdb, SinkURL: *sinkURL, Concurrency: *conc, Limits: lim,
		ShutdownTimeout: *shutdown, Log: log, RetryBase: *retryBase, Retention: *retention,
	})
	if err != nil {
		return err
	}
	if *metricsAddr != "" {
		mux := http.NewServeMux()
		mux.Handle("GET /metrics", promhttp.Handler())
		mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, req *http.Request) {
			if err := rdb.Ping(req.Context()).Err(); err != nil {
				http.Error(w, "redis: unreachable", http.StatusServiceUnavailable)
				return
			}
			fmt.Fprintln(w, "ok")
		})
		ln, err := net.Listen("tcp", *metricsAddr)
		if err != nil {
			r.Shutdown()
			return fmt.Errorf("metrics address: %w", err)
		}
		hs := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
		go func() {
			if err := hs.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
				log.Error("metrics server", "err", err)
			}
		}()
		defer hs.Close()
	}
	<-ctx.Done()
	log.Info("stopping: finishing running tasks", "timeout", shutdown.String())
	r.Shutdown()
	log.Info("stopped")
	return nil
}

// The Redis URL may hold a password: its default comes from REDIS_URL
// after parsing, so -help never prints it.
const redisUsage = "Redis URL, redis:// or rediss:// (REDIS_URL; default redis://127.0.0.1:6379/0)"
