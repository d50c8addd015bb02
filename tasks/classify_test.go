package tasks

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"testing"

	"github.com/linkharvest/linkharvest/limiter"
	"github.com/linkharvest/linkharvest/providers"
)

// TestClassOf: every error a task can return has one class, and a wait
// for the shared limiter's capacity never spends a retry, bare or inside
// a vendor client's transport error.
func TestClassOf(t *testing.T) {
	waited := &limiter.Error{Provider: "dataforseo", Message: "waited 1s for capacity",
		Err: fmt.Errorf("%w: %w", limiter.ErrWaitEnded, context.DeadlineExceeded)}
	down := &limiter.Error{Provider: "dataforseo", Message: "acquiring capacity", Err: fmt.Errorf("%w: %w", limiter.ErrUnavailable, errors.New("NOSCRIPT"))}
	viaClient := providers.TransportError("dataforseo", "https://api/x", &url.Error{Op: "Post", URL: "https://api/x", Err: waited})
	for _, tc := range []struct {
		name    string
		err     error
		class   providers.Class
		failure bool
	}{
		{"limiter wait ended", waited, providers.Throttled, false},
		{"limiter wait ended, wrapped", fmt.Errorf("page: %w", waited), providers.Throttled, false},
		{"limiter wait inside the client's transport error", viaClient, providers.Retryable, false},
		{"limiter unavailable", down, providers.Retryable, true},
		{"vendor throttle", &providers.Error{Class: providers.Throttled}, providers.Throttled, false},
		{"vendor pending", &providers.Error{Class: providers.Pending}, providers.Pending, false},
		{"vendor fatal", fmt.Errorf("x: %w", &providers.Error{Class: providers.Fatal}), providers.Fatal, true},
		{"unknown", errors.New("boom"), providers.Retryable, true},
		{"sink", &sinkError{errors.New("503")}, providers.Retryable, false},
	} {
		if got := classOf(tc.err); got != tc.class {
			t.Errorf("%s: class %s, want %s", tc.name, got, tc.class)
		}
		if got := IsFailure(tc.err); got != tc.failure {
			t.Errorf("%s: IsFailure %v, want %v", tc.name, got, tc.failure)
		}
	}
	if classOf(nil) != 0 || IsFailure(nil) {
		t.Error("nil is no failure and has no class")
	}
}
