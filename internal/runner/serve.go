package runner

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/redis/go-redis/v9"

	"github.com/linkharvest/linkharvest/internal/telemetry"
	"github.com/linkharvest/linkharvest/sink"
)

// Run is a worker process's life (cmd/worker): it binds the metrics
// address, opens Redis, starts the node (whose checks must pass), serves
// /metrics and /healthz, and on the end of ctx hands back what runs. An
// error means the worker could not start; its message names the setting
// or the check that failed.
func Run(ctx context.Context, cfg Config) error {
	if cfg.Log == nil {
		cfg.Log = slog.Default()
	}
	telemetry.QuietRedisLogs(cfg.Log)
	// Bind first: an explicit address that cannot be bound stops the
	// worker before it takes any task.
	ln, err := listenMetrics(cfg)
	if err != nil {
		return err
	}
	if ln != nil {
		defer ln.Close()
	}
	rdb, err := OpenRedis(cfg.RedisConn)
	if err != nil {
		return err
	}
	defer rdb.Close()
	cfg.Redis = rdb
	r, err := Start(ctx, cfg)
	if err != nil {
		if ctx.Err() != nil {
			return nil // stopped (SIGTERM) while starting: nothing ran
		}
		return err
	}
	if ln != nil {
		hs := &http.Server{Handler: metricsMux(rdb, r.sink), ReadHeaderTimeout: 5 * time.Second}
		go func() {
			if err := hs.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
				cfg.Log.Error("metrics server", "err", err)
			}
		}()
		defer hs.Close()
	}
	<-ctx.Done()
	cfg.Log.Info("stopping: finishing running tasks", "timeout", cfg.ShutdownTimeout.String())
	r.Shutdown()
	cfg.Log.Info("stopped")
	return nil
}

// listenMetrics binds cfg.MetricsAddr. The default being taken means
// another worker on this host has it: this one goes on without metrics
// and says so once. An explicit address must bind.
func listenMetrics(cfg Config) (net.Listener, error) {
	if cfg.MetricsAddr == "" {
		return nil, nil
	}
	ln, err := net.Listen("tcp", cfg.MetricsAddr)
	switch {
	case err == nil:
		cfg.Log.Info("serving /metrics and /healthz", "addr", ln.Addr().String())
		return ln, nil
	case !cfg.MetricsExplicit && errors.Is(err, syscall.EADDRINUSE):
		cfg.Log.Warn("metrics address in use (another worker on this host?): this worker serves no /metrics or /healthz; "+
			"set --metrics-addr / METRICS_ADDR to give each worker its own", "addr", cfg.MetricsAddr)
		return nil, nil
	default:
		return nil, fmt.Errorf("--metrics-addr / METRICS_ADDR=%q: %w", cfg.MetricsAddr, err)
	}
}

// healthTimeout keeps /healthz within a probe's timeout (deploy/k8s: 3 s).
const healthTimeout = 2 * time.Second

// metricsMux serves /metrics, and /healthz: 200 "ok" while Redis answers
// and the sink takes writes, else 503 naming what does not. Outages after
// start do not stop the worker (asynq retries with backoff); this is
// where they show.
func metricsMux(rdb redis.UniversalClient, snk *sink.Sink) http.Handler {
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", promhttp.Handler())
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, req *http.Request) {
		ctx, cancel := context.WithTimeout(req.Context(), healthTimeout)
		defer cancel()
		var bad []string
		if err := rdb.Ping(ctx).Err(); err != nil {
			reason, _ := redisReason(err)
			bad = append(bad, "redis: "+reason)
		}
		if err := snk.Check(ctx); err != nil {
			bad = append(bad, err.Error())
		}
		if len(bad) > 0 {
			http.Error(w, strings.Join(bad, "\n"), http.StatusServiceUnavailable)
			return
		}
		fmt.Fprintln(w, "ok")
	})
	return mux
}
