// Package runner assembles a worker node: the Redis connection, a shared
// limiter and a client per configured provider, the sink, and the Asynq
// server that runs the tasks. cmd/worker and `enqueue --dev` both use it.
package runner

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"

	"github.com/linkharvest/linkharvest/internal/recovery"
	"github.com/linkharvest/linkharvest/internal/spend"
	"github.com/linkharvest/linkharvest/internal/telemetry"
	"github.com/linkharvest/linkharvest/limiter"
	"github.com/linkharvest/linkharvest/providers/registry"
	"github.com/linkharvest/linkharvest/sink"
	"github.com/linkharvest/linkharvest/tasks"
)

// Config is a worker node's configuration (README, Configuration):
// DefaultConfig, ConfigFromEnv. Start fills a zero field from
// DefaultConfig, except Retention, whose zero keeps a job's state.
type Config struct {
	// RedisConn is where Redis is (cmd/worker opens Redis from it).
	RedisConn RedisConfig
	// Redis is the open connection Start works on.
	Redis   redis.UniversalClient
	SinkURL string
	S3      sink.S3Options
	// Concurrency is tasks at once in this process.
	Concurrency int
	// FeedWindow is how many tasks a provider's queue holds pending before
	// this worker stops feeding it from jobs' feeds (tasks.Worker.FeedWindow).
	FeedWindow int
	// Limits override the vendors' published limits (providers.Vendor.Limits) per provider.
	Limits map[string]limiter.Limit
	// MetricsAddr serves /metrics and /healthz ("": none). Explicit says
	// it was given: then failing to bind it stops the worker, while the
	// default being taken (another worker on the host) only costs the
	// metrics of this one.
	MetricsAddr     string
	MetricsExplicit bool
	ShutdownTimeout time.Duration
	Getenv          func(string) string
	Log             *slog.Logger
	// RetryBase is the first retry's delay, doubling after.
	RetryBase time.Duration
	// CallTimeout bounds one vendor call (DataForSEO live calls may take 120 s).
	CallTimeout time.Duration
	// Retention is how long a finished job's state stays in Redis (0: for ever).
	Retention time.Duration
	// Prices are what calls cost (PROVIDER_PRICES over the vendors'
	// documented prices): the ledger's charge and the budget's reservations.
	Prices spend.Table
	// LocalLimiter > 0 limits per process at 1/LocalLimiter of each limit:
	// only the baseline bench/limits measures against (local.go).
	LocalLimiter int
}

// Runner is a started worker node.
type Runner struct {
	srv       *asynq.Server
	client    *asynq.Client
	inspector *asynq.Inspector
	stop      context.CancelFunc
	sink      *sink.Sink
	recovery  *recovery.Recovery
	Providers []string // providers this node serves
}

// Start builds the node and starts processing. Providers without
// credentials in the environment are skipped (their queues are not served).
func Start(ctx context.Context, cfg Config) (*Runner, error) {
	def := DefaultConfig()
	if cfg.Getenv == nil {
		cfg.Getenv = os.Getenv
	}
	if cfg.Log == nil {
		cfg.Log = slog.Default()
	}
	if cfg.CallTimeout <= 0 {
		cfg.CallTimeout = def.CallTimeout
	}
	if cfg.RetryBase <= 0 {
		cfg.RetryBase = def.RetryBase
	}
	if cfg.Concurrency <= 0 {
		cfg.Concurrency = def.Concurrency
	}
	if cfg.ShutdownTimeout <= 0 {
		cfg.ShutdownTimeout = def.ShutdownTimeout
	}
	if cfg.SinkURL == "" {
		cfg.SinkURL = def.SinkURL
	}
	// Say "started" only once the node can work: Redis answers (address,
	// password, TLS) and the sink takes writes.
	if err := CheckRedis(ctx, cfg.Redis, cfg.RedisConn.String()); err != nil {
		return nil, err
	}
	snk, err := sink.OpenWith(ctx, cfg.SinkURL, cfg.S3)
	if err != nil {
		return nil, err
	}
	if err := checkSink(ctx, snk); err != nil {
		return nil, err
	}
	limits := defaultLimits()
	known := map[string]bool{}
	for _, n := range registry.Names() {
		known[n] = true
	}
	for k, v := range cfg.Limits {
		if !known[k] {
			// A typo would leave the real account on its default limits.
			return nil, fmt.Errorf("--limit names unknown provider %q (known: %s)", k, strings.Join(registry.Names(), ", "))
		}
		limits[k] = v
	}
	w := &tasks.Worker{
		Store:      tasks.NewStore(cfg.Redis),
		Client:     asynq.NewClientFromRedisClient(cfg.Redis),
		Sink:       snk,
		Providers:  map[string]tasks.Provider{},
		Throttles:  map[string]tasks.Throttle{},
		Log:        cfg.Log,
		Retention:  cfg.Retention,
		Stage:      tasks.NewStage(0),
		Prices:     cfg.Prices,
		FeedWindow: cfg.FeedWindow,
	}
	inspector := asynq.NewInspectorFromRedisClient(cfg.Redis)
	w.Pauser = inspector
	queues := map[string]int{tasks.ControlQueue: 5}
	var served []string
	applied := map[string]func() limiter.Limit{} // the shared limiters' limits, for the metric
	for _, name := range registry.Names() {
		// Outermost first: note the wait start, the shared limiter, record
		// the wait, then the traced (and redacted) vendor call.
		var transport http.RoundTripper = telemetry.WaitEnd(name, telemetry.Transport(baseTransport(), secrets(name, cfg.Getenv)...))
		var throttle tasks.Throttle
		if l, ok := limits[name]; ok {
			if cfg.LocalLimiter > 0 {
				ll := newLocalLimiter(l, cfg.LocalLimiter)
				transport, throttle = ll.Transport(transport, cfg.CallTimeout), ll
			} else {
				lim := limiter.New(cfg.Redis, name, l, limiter.WithLogger(cfg.Log),
					limiter.WithAccountLimitHeader(accountLimitHeader(name)))
				// The call timeout runs from the moment a lease is held, so a
				// long wait for capacity never ends as a timeout.
				transport, throttle = lim.Transport(transport, limiter.CallTimeout(cfg.CallTimeout)), lim
				applied[name] = lim.Applied
			}
		} else {
			transport = timeoutTransport(transport, cfg.CallTimeout)
		}
		c, err := registry.New(name, cfg.Getenv, &http.Client{Transport: tasks.StageTransport(telemetry.WaitStart(transport))})
		if err != nil {
			cfg.Log.Info("provider not configured; its queue is not served", "provider", name, "reason", err.Error())
			continue
		}
		if err := w.Stage.Admits(name, endpoints(name), c.Paging, cfg.Log); err != nil {
			return nil, err
		}
		w.Providers[name] = c
		if throttle != nil {
			w.Throttles[name] = throttle
		}
		queues[name] = 3
		served = append(served, name)
	}
	if len(served) == 0 {
		return nil, errors.New("no provider is configured: set the credentials of at least one (README, Configuration)")
	}
	srv := asynq.NewServerFromRedisClient(cfg.Redis, asynq.Config{
		Concurrency:              cfg.Concurrency,
		Queues:                   queues,
		IsFailure:                tasks.IsFailure,
		RetryDelayFunc:           tasks.RetryDelayFunc(cfg.RetryBase),
		ErrorHandler:             asynq.ErrorHandlerFunc(w.HandleError),
		ShutdownTimeout:          cfg.ShutdownTimeout,
		TaskCheckInterval:        100 * time.Millisecond,
		DelayedTaskCheckInterval: time.Second,
		Logger:                   asynqLogger{cfg.Log},
		LogLevel:                 asynq.WarnLevel,
	})
	// A dead worker's tasks come back in seconds (internal/recovery).
	ropts, err := recovery.OptionsFromEnv(cfg.Getenv)
	if err != nil {
		return nil, err
	}
	ropts.Log = cfg.Log
	rec, err := recovery.New(ctx, cfg.Redis, ropts)
	if err != nil {
		return nil, err
	}
	mux := asynq.NewServeMux()
	mux.Use(rec.Middleware)
	w.Register(mux)
	if err := srv.Start(mux); err != nil {
		_ = rec.Close()
		return nil, fmt.Errorf("starting the task server: %w", err)
	}
	queueNames := append([]string{tasks.ControlQueue}, served...)
	_ = telemetry.QueueDepth(func(ctx context.Context) (map[string]map[string]int64, error) {
		out := map[string]map[string]int64{}
		for _, q := range queueNames {
			qi, err := inspector.GetQueueInfo(q)
			if err != nil {
				continue // a queue that never had a task does not exist yet
			}
			out[q] = map[string]int64{"pending": int64(qi.Pending), "active": int64(qi.Active), "scheduled": int64(qi.Scheduled),
				"retry": int64(qi.Retry), "archived": int64(qi.Archived)}
		}
		return out, nil
	})
	_ = telemetry.Stash(w.Store.StashTotals)
	_ = telemetry.AccountLimits(func() map[string]float64 {
		out := map[string]float64{}
		for p, f := range applied {
			if l := f(); l.Rate > 0 && l.Period > 0 {
				out[p] = float64(l.Rate) * float64(time.Minute) / float64(l.Period)
			}
		}
		return out
	})
	sweepCtx, stop := context.WithCancel(context.WithoutCancel(ctx))
	go w.SweepArchived(sweepCtx, inspector, served, archiveSweep)
	go w.SweepSubmissions(sweepCtx, submissionSweep)
	go w.Feed(sweepCtx, feedEvery)
	go rec.Run(sweepCtx)
	cfg.Log.Info("worker started", "providers", served, "concurrency", cfg.Concurrency, "sink", snk.String())
	return &Runner{srv: srv, client: w.Client, inspector: inspector, stop: stop, sink: snk, recovery: rec, Providers: served}, nil
}

// archiveSweep is how often a worker looks for page tasks that asynq
// archived without telling the handler (tasks.Worker.ReconcileArchived).
const archiveSweep = 30 * time.Second

// submissionSweep is how often a worker looks for submissions whose
// process died (tasks.Worker.SweepSubmissions); with their 15 s lease, a
// job held open by one ends within about 20 s.
const submissionSweep = 3 * time.Second

// feedEvery is how often a worker tops up the queues from jobs' feeds: a
// window of 2,000 tasks lasts a minute at DataForSEO's limit.
const feedEvery = time.Second

// Shutdown stops taking tasks, waits up to the shutdown timeout for the
// running ones, and hands back the rest to the queue.
func (r *Runner) Shutdown() {
	r.stop()
	r.srv.Shutdown()
	_ = r.recovery.Close() // after the server: tasks finishing keep their owner alive
	_ = r.client.Close()
}

func baseTransport() *http.Transport {
	t := http.DefaultTransport.(*http.Transport).Clone()
	t.MaxIdleConns = 256
	t.MaxIdleConnsPerHost = 256
	return t
}

// asynqLogger routes asynq's own logs to slog.
type asynqLogger struct{ l *slog.Logger }

func (a asynqLogger) Debug(args ...any) { a.l.Debug(fmt.Sprint(args...)) }
func (a asynqLogger) Info(args ...any)  { a.l.Info(fmt.Sprint(args...)) }
func (a asynqLogger) Warn(args ...any)  { a.l.Warn(fmt.Sprint(args...)) }
func (a asynqLogger) Error(args ...any) { a.l.Error(fmt.Sprint(args...)) }
func (a asynqLogger) Fatal(args ...any) { a.l.Error(fmt.Sprint(args...)); os.Exit(1) }
