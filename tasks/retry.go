package tasks

import (
	"context"
	"errors"
	"math/rand/v2"
	"time"

	"github.com/hibiken/asynq"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"

	"github.com/linkharvest/linkharvest/internal/telemetry"
	"github.com/linkharvest/linkharvest/limiter"
	"github.com/linkharvest/linkharvest/providers"
)

// Task options shared by every page task.
const (
	// MaxRetry bounds the failures a page may have before it is archived
	// and listed as failed; throttles do not count (see IsFailure).
	MaxRetry = 12
	// TaskTimeout covers the wait for the shared limiter and one vendor
	// call (DataForSEO live calls may take 120 s).
	TaskTimeout = 10 * time.Minute
	// retrySlack is added to a page task's asynq MaxRetry above the
	// failures it may have (see Worker.handlePage). Only expiries of the
	// task's lease (its worker died) can use it: asynq's recoverer counts
	// them as failures without calling the handler.
	retrySlack = 3
)

// IsFailure tells asynq which errors spend a retry. A throttle is the
// vendor asking for patience, not a fault of the page: it must not push a
// page towards the archive during a throttle storm.
func IsFailure(err error) bool {
	if err == nil || errors.Is(err, limiter.ErrWaitEnded) {
		// The task's time ran out waiting for the account's capacity.
		return false
	}
	return providers.ClassOf(err) != providers.Throttled
}

// RetryDelayFunc is exponential backoff with full jitter from base (the
// worker's --retry-base, runner.DefaultConfig) doubling to 5 min, never
// shorter than the vendor's Retry-After. Throttles retry soon: the shared
// limiter's backoff is what spaces the calls.
func RetryDelayFunc(base time.Duration) asynq.RetryDelayFunc {
	return func(n int, err error, _ *asynq.Task) time.Duration {
		var after time.Duration
		if pe, ok := providers.AsError(err); ok {
			after = pe.RetryAfter
		}
		var d time.Duration
		if providers.ClassOf(err) == providers.Throttled {
			d = base + rand.N(2*base)
		} else {
			ceil := base << min(n, 9)
			if ceil > 5*time.Minute {
				ceil = 5 * time.Minute
			}
			d = base + rand.N(ceil)
		}
		return max(d, after)
	}
}

// HandleError ends a unit whose task asynq is about to archive (a fatal
// error, or the last retry spent), so that the job still completes and
// its manifest lists the page as failed with the vendor's message.
func (w *Worker) HandleError(ctx context.Context, t *asynq.Task, err error) {
	retried, _ := asynq.GetRetryCount(ctx)
	maxRetry, _ := asynq.GetMaxRetry(ctx)
	final := errors.Is(err, asynq.SkipRetry) || retried >= maxRetry
	id, _ := asynq.GetTaskID(ctx)
	log := w.log().With("task", id, "type", t.Type(), "retried", retried, "class", providers.ClassOf(err).String())
	if !final {
		telemetry.M().Retries.Add(ctx, 1, metric.WithAttributes(attribute.String("type", t.Type()), attribute.String("class", providers.ClassOf(err).String())))
		log.Warn("task failed; will retry", "err", errorMessage(err))
		return
	}
	log.Error("task failed for good", "err", errorMessage(err))
	if t.Type() != TypePage {
		return
	}
	var p PagePayload
	if jerr := jsonUnmarshal(t.Payload(), &p); jerr != nil {
		return
	}
	// The task's own context may have expired; the bookkeeping must land.
	bg, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
	defer cancel()
	o := Outcome{Status: "failed", Error: errorMessage(err)}
	for attempt := 0; attempt < 5; attempt++ {
		if e := w.endUnit(bg, p.Job, p.Unit(), o, true); e == nil {
			return
		} else {
			log.Error("recording a failed page", "err", e)
		}
		time.Sleep(time.Duration(attempt+1) * 500 * time.Millisecond)
	}
}

// errorMessage is the user-facing reason of a failure, without asynq's wrapping.
func errorMessage(err error) string {
	if pe, ok := providers.AsError(err); ok {
		return pe.Error()
	}
	return err.Error()
}
