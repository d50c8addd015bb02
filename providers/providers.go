// Package providers holds what every vendor client shares: the request and
// page a client speaks in, the normalised item, and the error classes that
// decide whether a failed call is retried, throttled or given up.
package providers

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/url"
	"strings"
	"syscall"
	"time"
)

// Request asks a vendor for one page of one endpoint for one domain.
type Request struct {
	Endpoint string
	Domain   string
	Page     int    // 1-based page number
	Offset   int    // first row of the page, for offset-paged endpoints
	Limit    int    // rows per page; 0 means the client's page size
	Cursor   string // opaque token from the previous page (DataForSEO search_after_token, DomainCrawler next)
	// Params are the job's endpoint options passed through to the vendor as
	// documented (e.g. DataForSEO mode, filters, order_by; DomainCrawler where,
	// order; histogram from/to). Keys the vendor does not know are a fatal error.
	Params map[string]json.RawMessage
}

// Page is one vendor response, normalised.
type Page struct {
	Items []Item
	// Total is the number of rows the vendor has for this domain and
	// endpoint (not only this page); -1 when the vendor does not say.
	Total int
	// Next is the cursor for the following page, "" when there is none.
	Next string
	// Cost is what the call cost, in CostUnit (DataForSEO "usd",
	// DomDetailer and XOVI "credits").
	Cost     float64
	CostUnit string
}

// Item is one row of a vendor response. Kind "backlink" rows fill the
// normalised fields (nil where the vendor has no such field); other kinds
// carry only Raw.
type Item struct {
	Kind        string
	SourceURL   *string
	TargetURL   *string
	Anchor      *string
	Nofollow    *bool
	SourceTitle *string
	Raw         json.RawMessage // the vendor's item verbatim
}

// PagingKind says how an endpoint's rows are reached past the first page.
type PagingKind int

const (
	// PagingNone: one call returns everything (DomDetailer, summaries, histograms).
	PagingNone PagingKind = iota
	// PagingOffset: pages are addressed by offset (or page index) once the
	// total is known, so they can be fetched in parallel. Past MaxOffset,
	// if CursorPastMax, each page needs the previous page's cursor.
	PagingOffset
	// PagingCursor: every page needs the previous page's cursor.
	PagingCursor
)

// Paging describes an endpoint's pagination.
type Paging struct {
	Kind          PagingKind
	PageSize      int  // rows per call the vendor allows at most
	MaxOffset     int  // largest offset the vendor accepts; 0 = no cap
	CursorPastMax bool // past MaxOffset, chain pages with the cursor
	// MaxBody is the largest answer the client reads from the endpoint
	// (0: DefaultMaxBody); a worker sizes its memory for answers this big.
	MaxBody int64
}

// Class tells a caller what to do about a failed call.
type Class int

const (
	// Retryable: transient (5xx, timeouts, resets, truncated bodies); retry with backoff.
	Retryable Class = iota + 1
	// Throttled: the vendor says the account is over its limit; slow every
	// worker down and retry, without counting it as a failure.
	Throttled
	// Fatal: the same call will fail again (bad credentials, no funds,
	// invalid field); stop at once.
	Fatal
	// Pending: the vendor cannot answer this request yet (DomainCrawler's
	// export of the domain into its index has not finished); ask again
	// after RetryAfter. Neither a failure of the page nor a sign that the
	// account is over its rate, so other calls go on at full speed.
	Pending
)

func (c Class) String() string {
	switch c {
	case Retryable:
		return "retryable"
	case Throttled:
		return "throttled"
	case Fatal:
		return "fatal"
	case Pending:
		return "pending"
	}
	return "unknown"
}

// Error is a classified vendor failure. Messages never hold credentials:
// clients build them from redacted URLs and the vendor's own message.
type Error struct {
	Provider string
	Class    Class
	Code     string // the vendor's code: "40202", "http 401", "cost error"
	Message  string // the vendor's message
	// RetryAfter is the vendor's requested wait (Retry-After), 0 if none.
	RetryAfter time.Duration
	// Account marks failures of the account itself (credentials, funds,
	// subscription): every further call fails the same way, so the
	// provider's queue is paused.
	Account bool
	// Until, on an account failure, is when it lifts by itself
	// (DataForSEO's daily cost limit at 00:00 UTC); zero when it takes a
	// person to fix the account.
	Until time.Time
	Err   error
}

func (e *Error) Error() string {
	var b strings.Builder
	b.WriteString(e.Provider)
	b.WriteString(": ")
	b.WriteString(e.Class.String())
	if e.Code != "" {
		b.WriteString(" ")
		b.WriteString(e.Code)
	}
	if e.Message != "" {
		b.WriteString(": ")
		b.WriteString(e.Message)
	}
	if e.Err != nil {
		b.WriteString(": ")
		b.WriteString(e.Err.Error())
	}
	return b.String()
}

func (e *Error) Unwrap() error { return e.Err }

// ClassOf classifies any error from a client call. Unclassified errors are
// retryable: an unknown failure is more often transient than not, and the
// task's retry budget bounds the cost of being wrong.
func ClassOf(err error) Class {
	if err == nil {
		return 0
	}
	var pe *Error
	if errors.As(err, &pe) {
		return pe.Class
	}
	return Retryable
}

// AsError returns the classified error inside err, if any.
func AsError(err error) (*Error, bool) {
	var pe *Error
	ok := errors.As(err, &pe)
	return pe, ok
}

// HTTPStatus classifies a vendor's HTTP status for vendors that signal
// errors that way (DomDetailer, DomainCrawler; DataForSEO for 401/402/404/500).
// It returns nil for 2xx.
func HTTPStatus(provider string, status int, retryAfter string, message string) *Error {
	if status >= 200 && status < 300 {
		return nil
	}
	e := &Error{Provider: provider, Code: fmt.Sprintf("http %d", status), Message: message}
	switch {
	case status == 429:
		e.Class = Throttled
		e.RetryAfter = ParseRetryAfter(retryAfter, time.Now())
	case status == 408 || status >= 500:
		e.Class = Retryable
		e.RetryAfter = ParseRetryAfter(retryAfter, time.Now())
	case status == 401 || status == 402 || status == 403:
		e.Class = Fatal
		e.Account = true
	default:
		e.Class = Fatal
	}
	return e
}

// ParseRetryAfter reads a Retry-After header: delta-seconds or an HTTP date.
func ParseRetryAfter(v string, now time.Time) time.Duration {
	v = strings.TrimSpace(v)
	if v == "" {
		return 0
	}
	var secs int
	if _, err := fmt.Sscanf(v, "%d", &secs); err == nil && secs >= 0 {
		return time.Duration(secs) * time.Second
	}
	if t, err := time.Parse(time.RFC1123, v); err == nil {
		if d := t.Sub(now); d > 0 {
			return d
		}
	}
	return 0
}

// TransportError classifies an error from http.Client.Do. The URL is left
// out on purpose: vendors that take keys in URLs would leak them through
// url.Error's message. redactedURL is what the client wants shown.
func TransportError(provider, redactedURL string, err error) *Error {
	e := &Error{Provider: provider, Class: Retryable, Code: "transport"}
	var ue *url.Error
	if errors.As(err, &ue) {
		err = ue.Err
	}
	switch {
	case errors.Is(err, context.Canceled):
		e.Code = "canceled"
	case errors.Is(err, context.DeadlineExceeded):
		e.Code = "timeout"
	case isTimeout(err):
		e.Code = "timeout"
	case errors.Is(err, syscall.ECONNRESET), errors.Is(err, syscall.ECONNREFUSED), errors.Is(err, syscall.EPIPE):
		e.Code = "connection"
	}
	e.Message = redactedURL
	e.Err = err
	return e
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// BadBody is the error for a body that cannot be decoded: a truncated or
// malformed response is a transient fault of the vendor, so it is retried.
func BadBody(provider string, err error) *Error {
	return &Error{Provider: provider, Class: Retryable, Code: "bad body", Message: "response body is not valid", Err: err}
}

// Str returns a pointer to s, for Item fields.
func Str(s string) *string { return &s }

// Bool returns a pointer to b, for Item fields.
func Bool(b bool) *bool { return &b }

// DefaultMaxBody caps a vendor response body when the endpoint says
// nothing (Paging.MaxBody). Every answer may cost a worker a few times its
// size in memory while it is decoded and encoded, so the caps are set per
// endpoint a few times above the largest page the vendor documents (a
// worker lowers a cap that its memory limit cannot hold).
const DefaultMaxBody = 16 << 20

// ReadBody reads at most max bytes of a response body. A larger body is a
// fatal error: retrying would fetch the same oversized body and pay again.
// size is the declared length (http.Response.ContentLength, -1 when
// unknown): a body of known size is read into one buffer of that size,
// where io.ReadAll would grow one step by step, allocating and copying
// about three times a 1 MB page at each of a worker's 30 calls in flight.
func ReadBody(provider string, r io.Reader, size, max int64) ([]byte, error) {
	if max <= 0 {
		max = DefaultMaxBody
	}
	lr := io.LimitReader(r, max+1)
	var (
		b   []byte
		err error
	)
	if size >= 0 && size <= max {
		b, err = readSized(lr, size)
	} else {
		b, err = io.ReadAll(lr)
	}
	if err != nil {
		if pe, ok := AsError(err); ok {
			return nil, pe // classified by the reader (a worker's stage refusing a body over its cap)
		}
		return nil, &Error{Provider: provider, Class: Retryable, Code: "transport", Message: "reading response body", Err: err}
	}
	if int64(len(b)) > max {
		return nil, &Error{Provider: provider, Class: Fatal, Code: "body too large", Message: fmt.Sprintf("response body exceeds the cap of %d bytes", max)}
	}
	return b, nil
}

// readSized reads r to EOF into a buffer of size+1 bytes (the extra byte
// tells a body longer than declared, which is then read on with
// io.ReadAll and judged against the cap by the caller).
func readSized(r io.Reader, size int64) ([]byte, error) {
	b := make([]byte, 0, size+1)
	for {
		n, err := r.Read(b[len(b):cap(b)])
		b = b[:len(b)+n]
		switch {
		case err == io.EOF:
			return b, nil
		case err != nil:
			return b, err
		case len(b) == cap(b):
			rest, err := io.ReadAll(r)
			return append(b, rest...), err
		}
	}
}

// CheckContentType rejects a body that is not of the expected media type
// (an HTML error page from a proxy, say). It is retried: such pages come
// from gateways in trouble, not from the vendor's answer to this request.
func CheckContentType(provider, got string, want ...string) error {
	mt := strings.ToLower(strings.TrimSpace(strings.SplitN(got, ";", 2)[0]))
	if mt == "" {
		return nil // vendors that omit it are decoded and judged by the body
	}
	for _, w := range want {
		if mt == w {
			return nil
		}
	}
	return &Error{Provider: provider, Class: Retryable, Code: "content type", Message: fmt.Sprintf("unexpected content type %q", mt)}
}
