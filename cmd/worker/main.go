// Command worker executes linkharvest's tasks: it fetches pages from the
// vendors under limits shared by every worker, and writes them to the sink.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"strconv"
	"syscall"

	"github.com/linkharvest/linkharvest/internal/runner"
	"github.com/linkharvest/linkharvest/internal/settings"
	"github.com/linkharvest/linkharvest/internal/telemetry"
	"github.com/linkharvest/linkharvest/tasks"
)

// Exit statuses: 0 after SIGTERM; 2 when the worker cannot start (a bad
// setting, Redis or the sink unreachable at start).
const exitCannotStart = 2

func main() {
	// Pages in flight are sized to the memory limit (tasks.Stage).
	tasks.SetDefaultMemoryLimit(os.Getenv)
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], os.LookupEnv, os.Stderr)
	stop()
	if errors.Is(err, flag.ErrHelp) {
		os.Exit(0)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "worker:", err)
		os.Exit(exitCannotStart)
	}
}

func run(ctx context.Context, args []string, lookup func(string) (string, bool), stderr io.Writer) error {
	fs := flag.NewFlagSet("worker", flag.ContinueOnError)
	fs.SetOutput(stderr)
	def := runner.DefaultConfig()
	b := settings.NewBinder(fs)
	// The Redis URL may hold a password: -help shows the built-in default only.
	b.Flag("redis", "REDIS_URL", def.RedisConn.URL, "Redis `URL`, redis:// or rediss://")
	b.Flag("sink", "SINK_URL", def.SinkURL, "`URL` where output goes: s3://bucket/prefix, file:///abs/dir or a directory")
	b.Flag("concurrency", "WORKER_CONCURRENCY", strconv.Itoa(def.Concurrency), "tasks at once in this process, `N` ≥ 1")
	b.Flag("limit", "PROVIDER_LIMITS", "", "shared limits per provider account, `NAME=CALLS/PERIOD:INFLIGHT`,...; dataforseo=2000/1m:30 unless given")
	b.Flag("metrics-addr", "METRICS_ADDR", def.MetricsAddr, "`ADDR` serving /metrics and /healthz; empty or off: none. "+
		"An address given must bind; the default may be taken by another worker on the host")
	b.EmptyMeans("METRICS_ADDR", "off")
	b.Flag("shutdown-timeout", "WORKER_SHUTDOWN_TIMEOUT", settings.FormatDuration(def.ShutdownTimeout), "on SIGTERM, how long running tasks may finish (a `DURATION`: 30s, 5m)")
	b.Flag("retry-base", "RETRY_BASE_DELAY", settings.FormatDuration(def.RetryBase), "first retry delay, doubling per failure up to 5 min (a `DURATION`)")
	b.Flag("feed-window", "FEED_WINDOW", strconv.Itoa(def.FeedWindow), "tasks a provider's queue holds before this worker stops feeding it from jobs' feeds, `N` ≥ 1")
	b.Flag("retention", "JOB_RETENTION", settings.FormatDuration(def.Retention),
		"how long a finished job's state stays in Redis, for status and resubmission (a `DURATION`: 720h, 30d); 0 keeps it")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	cfg, err := runner.ConfigFromEnv(b.Getenv(lookup))
	if err != nil {
		return b.Explain(err)
	}
	log := slog.New(telemetry.LogHandler{Handler: slog.NewJSONHandler(stderr, nil)})
	slog.SetDefault(log)
	cfg.Log = log
	shutdownTelemetry, err := telemetry.Setup(ctx, "linkharvest-worker")
	if err != nil {
		return fmt.Errorf("telemetry: %w", err)
	}
	defer shutdownTelemetry(context.WithoutCancel(ctx))
	return runner.Run(ctx, cfg)
}
