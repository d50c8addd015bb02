package limiter

import "errors"

// ErrWaitEnded is wrapped by Acquire's error when its context ended while
// it waited for capacity. No call was made, so nothing failed: a task that
// sees it (errors.Is, through url.Error and the vendor client's wrapping)
// should not spend a retry on it.
var ErrWaitEnded = errors.New("context ended while waiting for the shared limiter")

// ErrUnavailable is wrapped by the error of a limiter that could not use
// Redis for a reason that will not pass by waiting (a script error, no
// permission), or of a Backoff that could not be shared. No call was
// made; the task may try again later.
var ErrUnavailable = errors.New("shared limiter unavailable")

// Error is a limiter failure on one provider's account. It wraps
// ErrWaitEnded or ErrUnavailable, and the cause. The limiter does not
// classify it: what a failure means for a task is the caller's to say.
type Error struct {
	Provider string
	Message  string // what the limiter was doing
	Err      error
}

func (e *Error) Error() string {
	msg := e.Provider + ": limiter: " + e.Message
	if e.Err != nil {
		msg += ": " + e.Err.Error()
	}
	return msg
}

func (e *Error) Unwrap() error { return e.Err }
