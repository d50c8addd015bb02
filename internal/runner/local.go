package runner

import (
	"context"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"

	"golang.org/x/time/rate"

	"github.com/linkharvest/linkharvest/internal/settings"
	"github.com/linkharvest/linkharvest/limiter"
)

// localLimiter is per-process limiting (golang.org/x/time/rate at limit/N
// and a semaphore of inflight/N), the pattern of Asynq's wiki and Celery's
// rate_limit. It exists only as the baseline that bench/limits compares
// the shared limiter against (LINKHARVEST_LIMITER=local:N); never use it
// for real work: it idles the account when a worker dies and overshoots
// when N is wrong.
type localLimiter struct {
	rl  *rate.Limiter
	sem chan struct{}
}

func newLocalLimiter(l limiter.Limit, n int) *localLimiter {
	ll := &localLimiter{}
	if l.Rate > 0 {
		per := float64(l.Rate) / float64(n) / l.Period.Seconds()
		ll.rl = rate.NewLimiter(rate.Limit(per), 1)
	}
	if l.InFlight > 0 {
		ll.sem = make(chan struct{}, max(1, l.InFlight/n))
	}
	return ll
}

// localShare parses LINKHARVEST_LIMITER: empty (the shared limiter) or
// local:N (this process takes 1/N of each limit).
func localShare(v string) (int, error) {
	v = strings.TrimSpace(v)
	if v == "" {
		return 0, nil
	}
	rest, ok := strings.CutPrefix(v, "local:")
	n, err := strconv.Atoi(rest)
	if !ok || err != nil || n < 1 {
		return 0, settings.Bad("LINKHARVEST_LIMITER", v, "want local:N with N ≥ 1 (a benchmark baseline), or leave it unset")
	}
	return n, nil
}

func (l *localLimiter) Backoff(context.Context, time.Duration) error { return nil }

func (l *localLimiter) Transport(inner http.RoundTripper, timeout time.Duration) http.RoundTripper {
	inner = timeoutTransport(inner, timeout)
	return roundTrip(func(r *http.Request) (*http.Response, error) {
		if l.sem != nil {
			select {
			case l.sem <- struct{}{}:
				defer func() { <-l.sem }()
			case <-r.Context().Done():
				return nil, r.Context().Err()
			}
		}
		if l.rl != nil {
			if err := l.rl.Wait(r.Context()); err != nil {
				return nil, err
			}
		}
		return inner.RoundTrip(r)
	})
}

type roundTrip func(*http.Request) (*http.Response, error)

func (f roundTrip) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

// timeoutTransport bounds each call, body included, like limiter.CallTimeout.
func timeoutTransport(inner http.RoundTripper, d time.Duration) http.RoundTripper {
	return roundTrip(func(r *http.Request) (*http.Response, error) {
		ctx, cancel := context.WithTimeout(r.Context(), d)
		resp, err := inner.RoundTrip(r.WithContext(ctx))
		if err != nil {
			cancel()
			return nil, err
		}
		resp.Body = &cancelBody{ReadCloser: resp.Body, cancel: cancel}
		return resp, nil
	})
}

type cancelBody struct {
	io.ReadCloser
	cancel context.CancelFunc
}

func (b *cancelBody) Close() error {
	err := b.ReadCloser.Close()
	b.cancel()
	return err
}
