package tasks

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"time"

	"github.com/hibiken/asynq"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"

	"github.com/linkharvest/linkharvest/internal/telemetry"
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
// vendor asking for patience, a sink outage or a wait for the job's
// finalizer is no fault of the page: none of them may push a page towards
// the archive, however long they last.
func IsFailure(err error) bool {
	if err == nil || waitedForCapacity(err) {
		// The task's time ran out waiting for the account's capacity.
		return false
	}
	var se *sinkError
	var we *waitError
	var rf *redisFullError
	var be *budgetError
	if errors.As(err, &se) || errors.As(err, &we) || errors.As(err, &rf) || errors.As(err, &be) {
		return false
	}
	c := classOf(err)
	return c != providers.Throttled && c != providers.Pending // Pending: see wait.go
}

// sinkError is a write the sink refused. The page waits for the sink
// (its answer kept in the stash) without spending its vendor retries.
type sinkError struct{ err error }

func (e *sinkError) Error() string { return "waiting for the sink: " + e.err.Error() }
func (e *sinkError) Unwrap() error { return e.err }

// waitError is a page that must wait for another part of the job.
type waitError struct{ why string }

func (e *waitError) Error() string { return "waiting: " + e.why }

// RetryDelayFunc is exponential backoff with full jitter (base doubling
// to 5 min), never shorter than the vendor's Retry-After. Throttles retry
// soon: the shared limiter's backoff is what spaces the calls. A page
// waiting for the sink polls it every few base delays (1 s to 30 s), as
// its retry count does not grow.
func RetryDelayFunc(base time.Duration) asynq.RetryDelayFunc {
	return func(n int, err error, _ *asynq.Task) time.Duration {
		var after time.Duration
		if pe, ok := providers.AsError(err); ok {
			after = pe.RetryAfter
		}
		var se *sinkError
		var we *waitError
		var d time.Duration
		switch {
		case errors.As(err, &se):
			d = min(max(4*base, time.Second), 30*time.Second)
			d += rand.N(d)
		case errors.As(err, &we), errors.As(err, new(*redisFullError)):
			d = time.Second + rand.N(time.Second)
		case errors.As(err, new(*budgetError)):
			// Polls for a raised budget (enqueue budget), spread out.
			d = 2*time.Second + rand.N(3*time.Second)
		case classOf(err) == providers.Throttled:
			d = base + rand.N(2*base)
		default:
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
	fatalErr := errors.Is(err, asynq.SkipRetry)
	final := fatalErr || retried >= maxRetry
	id, _ := asynq.GetTaskID(ctx)
	log := w.log().With("task", id, "type", t.Type(), "retried", retried)
	if !final {
		class := classOf(err).String()
		var se *sinkError
		var we *waitError
		switch {
		case errors.As(err, &se):
			class = "sink"
		case errors.As(err, &we):
			class = "wait"
		case errors.As(err, new(*budgetError)):
			// Every waiting page polls every few seconds: not worth a warning each.
			log.Debug("page waits for budget", "err", err.Error())
			return
		}
		telemetry.M().Retries.Add(ctx, 1, metric.WithAttributes(attribute.String("type", t.Type()), attribute.String("class", class)))
		log.Warn("task failed; will retry", "class", class, "err", errorMessage(err))
		return
	}
	msg := errorMessage(err)
	if !fatalErr {
		msg = fmt.Sprintf("gave up after %d attempts: %s", retried+1, msg)
	}
	log.Error("task failed for good", "err", msg)
	if t.Type() == TypeCheck {
		bg, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
		defer cancel()
		w.failCheck(bg, t, msg) // refresh.go
		return
	}
	if t.Type() != TypePage {
		return
	}
	var p PagePayload
	if jerr := json.Unmarshal(t.Payload(), &p); jerr != nil {
		return
	}
	// The task's own context may have expired; the bookkeeping must land.
	bg, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
	defer cancel()
	o := Outcome{Status: "failed", Error: msg}
	for attempt := 0; attempt < 5; attempt++ {
		e := w.endUnit(bg, p.Job, p.Unit(), o, true)
		if e == nil {
			return
		}
		log.Error("recording a failed page", "err", e)
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
