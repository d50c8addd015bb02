package limiter

import (
	"context"
	"io"
	"net/http"
	"sync"
	"time"
)

// TransportOption changes what Transport does.
type TransportOption func(*transport)

// CallTimeout bounds each HTTP call from the moment its lease is held
// until its response body is closed. Use it instead of http.Client.Timeout:
// the client's timeout also runs while the request waits in Acquire, so a
// long wait for capacity would end as a timeout and spend a retry; and
// net/http replaces the error of a timed-out request with a plain string,
// which hides ErrWaitEnded.
func CallTimeout(d time.Duration) TransportOption {
	return func(t *transport) { t.timeout = d }
}

// Transport returns a RoundTripper that makes every HTTP call (not every
// task: a redirect or a retry inside the client is a call too) hold a
// lease, acquired with the request's context, from before the request is
// sent until its response body is read to the end, fails, or is closed.
// A nil base means http.DefaultTransport.
func (l *Limiter) Transport(base http.RoundTripper, opts ...TransportOption) http.RoundTripper {
	if base == nil {
		base = http.DefaultTransport
	}
	t := &transport{l: l, base: base}
	for _, o := range opts {
		o(t)
	}
	return t
}

type transport struct {
	l       *Limiter
	base    http.RoundTripper
	timeout time.Duration
}

func (t *transport) RoundTrip(req *http.Request) (*http.Response, error) {
	lease, err := t.l.Acquire(req.Context())
	if err != nil {
		if req.Body != nil {
			req.Body.Close() // a RoundTripper closes the body, even on errors
		}
		return nil, err
	}
	cancel := context.CancelFunc(func() {})
	if t.timeout > 0 {
		var ctx context.Context
		ctx, cancel = context.WithTimeout(req.Context(), t.timeout)
		req = req.WithContext(ctx)
	}
	resp, err := t.base.RoundTrip(req)
	if err != nil {
		lease.Release(req.Context())
		cancel()
		return nil, err
	}
	t.l.observe(req.URL.Path, resp.Header) // the account's stated limit (account.go)
	resp.Body = &leaseBody{ReadCloser: resp.Body, lease: lease, ctx: req.Context(), cancel: cancel}
	return resp, nil
}

// leaseBody releases the lease when the vendor's answer is complete (EOF),
// broken (a read error) or abandoned (Close). The call timeout's context
// is cancelled only at Close: cancelling it earlier could cut a body the
// caller still reads.
type leaseBody struct {
	io.ReadCloser
	lease  *Lease
	ctx    context.Context
	cancel context.CancelFunc
	once   sync.Once
}

func (b *leaseBody) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	if err != nil {
		b.release()
	}
	return n, err
}

func (b *leaseBody) Close() error {
	err := b.ReadCloser.Close()
	b.release()
	b.cancel()
	return err
}

func (b *leaseBody) release() {
	b.once.Do(func() { b.lease.Release(b.ctx) })
}
