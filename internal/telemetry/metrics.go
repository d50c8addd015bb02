package telemetry

import (
	"context"
	"sync"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"
)

// Metrics are the worker's instruments. They are created from the global
// meter provider, so Setup must run first to export them.
type Metrics struct {
	Calls        metric.Int64Counter     // vendor calls by provider and outcome
	Throttles    metric.Int64Counter     // vendor throttle signals by provider
	Retries      metric.Int64Counter     // task attempts that will be retried
	Rows         metric.Int64Counter     // rows written
	Bytes        metric.Int64Counter     // bytes written
	Spend        metric.Float64Counter   // what pages cost, by provider and unit (the ledger)
	LimiterWait  metric.Float64Histogram // seconds waited for the shared limiter
	TaskDuration metric.Float64Histogram // seconds per task, by type and outcome
}

var (
	metricsOnce sync.Once
	metrics     *Metrics
)

// M returns the process's instruments.
func M() *Metrics {
	metricsOnce.Do(func() {
		m := otel.Meter(Scope)
		metrics = &Metrics{}
		metrics.Calls, _ = m.Int64Counter("linkharvest.vendor.calls", metric.WithDescription("vendor calls by provider and outcome"))
		metrics.Throttles, _ = m.Int64Counter("linkharvest.vendor.throttles", metric.WithDescription("vendor throttle signals"))
		metrics.Retries, _ = m.Int64Counter("linkharvest.task.retries", metric.WithDescription("task attempts that will be retried"))
		metrics.Rows, _ = m.Int64Counter("linkharvest.rows.written", metric.WithDescription("rows written to the sink"))
		metrics.Bytes, _ = m.Int64Counter("linkharvest.bytes.written", metric.WithUnit("By"), metric.WithDescription("bytes written to the sink"))
		metrics.Spend, _ = m.Float64Counter("linkharvest.spend", metric.WithDescription("what the vendors charged for the pages written, in each provider's unit (label unit)"))
		metrics.LimiterWait, _ = m.Float64Histogram("linkharvest.limiter.wait", metric.WithUnit("s"), metric.WithDescription("time waiting for the shared limiter"))
		metrics.TaskDuration, _ = m.Float64Histogram("linkharvest.task.duration", metric.WithUnit("s"), metric.WithDescription("task latency"))
	})
	return metrics
}

// Stash registers observable gauges of the pages (and bytes) fetched
// but waiting in Redis for the sink to take writes again.
func Stash(read func(ctx context.Context) (pages, bytes int64, err error)) error {
	m := otel.Meter(Scope)
	pg, err := m.Int64ObservableGauge("linkharvest.stash.pages", metric.WithDescription("fetched pages waiting for the sink"))
	if err != nil {
		return err
	}
	by, err := m.Int64ObservableGauge("linkharvest.stash.bytes", metric.WithUnit("By"), metric.WithDescription("bytes of fetched pages waiting for the sink"))
	if err != nil {
		return err
	}
	_, err = m.RegisterCallback(func(ctx context.Context, o metric.Observer) error {
		pages, bytes, err := read(ctx)
		if err != nil {
			return nil // Redis away: report nothing rather than fail the scrape
		}
		o.ObserveInt64(pg, pages)
		o.ObserveInt64(by, bytes)
		return nil
	}, pg, by)
	return err
}

// QueueDepth registers an observable gauge of each queue's size by state.
func QueueDepth(read func(ctx context.Context) (map[string]map[string]int64, error)) error {
	m := otel.Meter(Scope)
	g, err := m.Int64ObservableGauge("linkharvest.queue.depth", metric.WithDescription("tasks per queue and state"))
	if err != nil {
		return err
	}
	_, err = m.RegisterCallback(func(ctx context.Context, o metric.Observer) error {
		depths, err := read(ctx)
		if err != nil {
			return nil // Redis away: report nothing rather than fail the scrape
		}
		for q, states := range depths {
			for st, n := range states {
				o.ObserveInt64(g, n, metric.WithAttributes(attribute.String("queue", q), attribute.String("state", st)))
			}
		}
		return nil
	}, g)
	return err
}
