package tasks

import (
	"errors"

	"github.com/linkharvest/linkharvest/limiter"
	"github.com/linkharvest/linkharvest/providers"
)

// classOf is where tasks turn any error into a class (IsFailure,
// RetryDelayFunc, HandleError and the worker's metrics all ask it). A
// vendor's classified error says for itself, the outermost one first:
// the shared limiter's error reaches a task inside the vendor client's
// transport error, whose class stands. The limiter's own errors, met
// bare (its Backoff, a lease taken outside a client), are a wait for
// capacity (throttled) or a limiter that could not reach Redis
// (retryable). Anything else is retryable: an unknown failure is more
// often transient than not, and the retry budget bounds being wrong.
func classOf(err error) providers.Class {
	if err == nil {
		return 0
	}
	if pe, ok := providers.AsError(err); ok {
		return pe.Class
	}
	if errors.Is(err, limiter.ErrWaitEnded) {
		return providers.Throttled
	}
	return providers.Retryable
}

// waitedForCapacity: the task's time ran out waiting for the account's
// capacity, however the error was wrapped on its way (inside a vendor
// client's transport error, its class is that error's). No call was
// made: it is no failure of the page.
func waitedForCapacity(err error) bool { return errors.Is(err, limiter.ErrWaitEnded) }
