package providers

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"time"
	"unicode/utf8"
)

// Redacted stands in for a credential wherever one would be shown.
const Redacted = "REDACTED"

// Secret is a credential (a password, an API key). It never formats:
// fmt's verbs, slog and JSON all show REDACTED (an empty Secret shows ""
// so that a missing credential is still visible in a logged Config), so
// a Config holding Secrets can be logged whole. Reveal is the one way to
// the value, for the code that puts it on the wire.
type Secret string

// Reveal returns the credential itself.
func (s Secret) Reveal() string { return string(s) }

// String is REDACTED (or "" for an empty Secret).
func (s Secret) String() string {
	if s == "" {
		return `""`
	}
	return Redacted
}

// GoString hides the value from %#v.
func (s Secret) GoString() string { return s.String() }

// Format hides the value from every fmt verb (%s, %v, %q, %x, %d …).
func (s Secret) Format(f fmt.State, _ rune) { io.WriteString(f, s.String()) }

// LogValue hides the value from slog.
func (s Secret) LogValue() slog.Value { return slog.StringValue(s.String()) }

// MarshalText hides the value from JSON, XML and other encoders.
func (s Secret) MarshalText() ([]byte, error) { return []byte(s.String()), nil }

// ParseBaseURL checks a vendor's base URL, read from the variable env
// (named in the messages): an absolute http(s) URL with no query or
// fragment. User info is refused where credentials go in the URL
// (allowUserInfo false: a key in the URL's user part would travel with
// every request) and dropped otherwise (credentials go in the
// Authorization header only). The path loses its trailing slash. The
// parse error is left out of messages: it quotes the URL, which may hold
// credentials.
func ParseBaseURL(provider, env, raw string, allowUserInfo bool) (*url.URL, error) {
	raw = strings.TrimSpace(raw)
	if raw == "" {
		return nil, fmt.Errorf("%s: %s is required (the base URL of the API)", provider, env)
	}
	u, err := url.Parse(raw)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("%s: %s must be an absolute http(s) URL", provider, env)
	}
	if u.RawQuery != "" || u.Fragment != "" || (u.User != nil && !allowUserInfo) {
		what := "a query or a fragment"
		if !allowUserInfo {
			what = "user info, a query or a fragment"
		}
		return nil, fmt.Errorf("%s: %s must not have %s", provider, env, what)
	}
	u.User = nil
	u.Path = strings.TrimRight(u.Path, "/")
	u.RawPath = ""
	return u, nil
}

// SameHostRedirects is a CheckRedirect that follows a redirect only on
// the vendor's own host and never from https to http, for vendors whose
// key is in the URL: a redirect elsewhere would hand it over. A refused
// redirect comes back as the 3xx response, which the client classifies
// (fatal: the base URL needs fixing). next is the CheckRedirect it wraps
// (nil: at most 10 redirects).
func SameHostRedirects(base *url.URL, next func(*http.Request, []*http.Request) error) func(*http.Request, []*http.Request) error {
	return func(req *http.Request, via []*http.Request) error {
		if !strings.EqualFold(req.URL.Host, base.Host) || (base.Scheme == "https" && req.URL.Scheme != "https") {
			return http.ErrUseLastResponse
		}
		if next != nil {
			return next(req, via)
		}
		if len(via) >= 10 {
			return errors.New("stopped after 10 redirects")
		}
		return nil
	}
}

// GuardedClient returns a copy of hc (nil: a client with timeout) whose
// redirects stay on base's host, for vendors whose key is in the URL.
// The copy leaves the caller's client as it was.
func GuardedClient(hc *http.Client, base *url.URL, timeout time.Duration) *http.Client {
	out := &http.Client{Timeout: timeout}
	if hc != nil {
		cp := *hc
		out = &cp
	}
	out.CheckRedirect = SameHostRedirects(base, out.CheckRedirect)
	return out
}

// ScrubSecret removes a credential from a message, in every form it may
// take in a URL (as is, query-escaped, path-escaped).
func ScrubSecret(s, secret string) string {
	if secret == "" {
		return s
	}
	for _, k := range []string{secret, url.QueryEscape(secret), url.PathEscape(secret)} {
		s = strings.ReplaceAll(s, k, Redacted)
	}
	return s
}

// ScrubError keeps err when its message holds no credential; otherwise it
// returns a plain error with the scrubbed message, dropping the chain
// (some link of it quotes the credential and would leak it to whoever
// unwraps).
func ScrubError(err error, secret string) error {
	if err == nil {
		return nil
	}
	msg := err.Error()
	if clean := ScrubSecret(msg, secret); clean != msg {
		return errors.New(clean)
	}
	return err
}

// ScrubAnswer removes a credential from the code, the message and the
// cause of err when it is a *Error (a vendor's answer may quote the
// request, key included), and returns err.
func ScrubAnswer(err error, secret string) error {
	if pe, ok := AsError(err); ok {
		pe.Code = ScrubSecret(pe.Code, secret)
		pe.Message = ScrubSecret(pe.Message, secret)
		pe.Err = ScrubError(pe.Err, secret)
	}
	return err
}

// KeyedGet makes a GET for vendors whose key is in the URL and reads the
// answer (at most maxBody bytes; the body is closed). Errors show
// redacted, never rawURL, and any message that quotes the key is scrubbed.
func KeyedGet(ctx context.Context, hc *http.Client, provider, rawURL, redacted, key, accept string, maxBody int64) (*http.Response, []byte, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, rawURL, nil)
	if err != nil {
		return nil, nil, &Error{Provider: provider, Class: Fatal, Code: "request", Message: redacted}
	}
	req.Header.Set("Accept", accept)
	resp, err := hc.Do(req)
	if err != nil {
		pe := TransportError(provider, redacted, err)
		pe.Err = ScrubError(pe.Err, key)
		return nil, nil, pe
	}
	defer resp.Body.Close()
	b, err := ReadBody(provider, resp.Body, resp.ContentLength, maxBody)
	if err != nil {
		if pe, ok := AsError(err); ok {
			pe.Err = ScrubError(pe.Err, key)
		}
		return nil, nil, err
	}
	return resp, b, nil
}

// ErrorText finishes a vendor's error message for showing: msg, else a
// plain-text body, on one line, at most 300 bytes, else the status text.
func ErrorText(msg string, body []byte, status int) string {
	if c := FirstByte(body); msg == "" && c != 0 && c != '<' && c != '{' && c != '[' && utf8.Valid(body) {
		msg = string(body)
	}
	msg = strings.Join(strings.Fields(msg), " ")
	if len(msg) > 300 {
		msg = msg[:300]
		for !utf8.ValidString(msg) {
			msg = msg[:len(msg)-1]
		}
		msg += "…"
	}
	if msg == "" {
		msg = http.StatusText(status)
	}
	return msg
}

// ClientOr is hc, or a client with timeout when hc is nil.
func ClientOr(hc *http.Client, timeout time.Duration) *http.Client {
	if hc == nil {
		return &http.Client{Timeout: timeout}
	}
	return hc
}
