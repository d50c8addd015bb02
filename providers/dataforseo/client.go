// Package dataforseo is the client, error classification, normalisation
// and sandbox of DataForSEO's Backlinks API v3 live endpoints (seeds 002
// and 003): backlinks/backlinks/live (rows, offset paging up to 20,000 and
// search_after_token past it) and backlinks/summary/live (one overview per
// target). HTTP Basic auth; a JSON array holding one task per POST; errors
// mostly as status codes inside an HTTP 200, at the request and at the
// task level.
package dataforseo

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/linkharvest/linkharvest/internal/jsonstr"
	"github.com/linkharvest/linkharvest/providers"
)

// Name is the provider name used in queues, keys, limits and output.
const Name = "dataforseo"

// DefaultBaseURL is the production API (the free sandbox with the same
// shapes is https://sandbox.dataforseo.com).
const DefaultBaseURL = "https://api.dataforseo.com"

// RateLimitHeader states, on every answer, the account's limit in calls a
// minute (RateLimitPer) for the endpoint called; accounts differ from the
// published 2000 a minute, and the shared limiter follows a lower one.
const (
	RateLimitHeader = "X-RateLimit-Limit"
	RateLimitPer    = time.Minute
)

// DefaultTimeout bounds one call when Config.HTTPClient is nil. The vendor
// gives up on a live task after 120 s (50401); waiting a little longer
// lets that answer arrive instead of a local timeout.
const DefaultTimeout = 150 * time.Second

// maxBody caps a response body unless Config.MaxBody is set: a page of 1000 backlinks is about 2 MB.
const maxBody = 16 << 20

// Config holds the account.
type Config struct {
	Login          string
	Password       providers.Secret // formats as REDACTED
	BaseURL        string
	providers.Conn // the HTTP client and the body cap
}

// ConfigFromEnv reads DATAFORSEO_LOGIN, DATAFORSEO_PASSWORD and
// DATAFORSEO_BASE_URL (default DefaultBaseURL).
func ConfigFromEnv(getenv func(string) string) Config {
	return Config{Login: getenv("DATAFORSEO_LOGIN"), Password: providers.Secret(getenv("DATAFORSEO_PASSWORD")),
		BaseURL: providers.EnvOr(getenv, "DATAFORSEO_BASE_URL", DefaultBaseURL)}
}

// Client calls the live endpoints: one call, one page.
type Client struct {
	login, password  string
	providers.Remote // the base URL (no user info), the HTTP client and the body cap
}

// String hides the password, so that a logged client leaks nothing.
func (c *Client) String() string {
	return fmt.Sprintf("dataforseo.Client{login:%q base:%q}", c.login, c.Base.String())
}

// GoString hides the password from %#v too.
func (c *Client) GoString() string { return c.String() }

// New checks the account and builds a client.
func New(cfg Config) (*Client, error) {
	if cfg.Login == "" || cfg.Password == "" {
		return nil, errors.New("dataforseo: DATAFORSEO_LOGIN and DATAFORSEO_PASSWORD are required")
	}
	r, err := cfg.Remote(Name, "DATAFORSEO_BASE_URL", cfg.BaseURL, false, DefaultTimeout, maxBody)
	if err != nil {
		return nil, err
	}
	return &Client{login: cfg.Login, password: cfg.Password.Reveal(), Remote: r}, nil
}

// endpointNames lists the endpoint names, "backlinks" (the default) first.
func endpointNames() []string {
	out := make([]string, len(endpoints))
	for i, e := range endpoints {
		out[i] = e.name
	}
	return out
}

// Paging: backlinks pages by offset up to 20,000 and by search_after_token
// past it; a summary is one call.
func (c *Client) Paging(name string) (providers.Paging, error) {
	return providers.BodyCap(c.MaxBody)(paging(name))
}

func paging(name string) (providers.Paging, error) {
	e, err := lookup(name)
	if err != nil {
		return providers.Paging{}, err
	}
	if !e.paged {
		return providers.Paging{Kind: providers.PagingNone, MaxBody: maxBody}, nil
	}
	return providers.Paging{Kind: providers.PagingOffset, PageSize: maxLimit, MaxOffset: maxOffset, CursorPastMax: true, MaxBody: maxBody}, nil
}

// checkParams rejects options the endpoint does not document and the
// obvious violations of the documented ones: more than 8 filter
// conditions, more than 3 order_by rules or one not written "field,desc",
// custom_mode.value outside 1..1000, an unknown mode, internal_list_limit
// over 1000, a tag over 255 characters, and target/limit/offset/
// search_after_token, which are the pipeline's.
func checkParams(name string, params map[string]json.RawMessage) error {
	e, err := lookup(name)
	if err != nil {
		return err
	}
	return e.checkParams(params)
}

// Fetch makes one call for one page.
func (c *Client) Fetch(ctx context.Context, req providers.Request) (*providers.Page, error) {
	e, err := lookup(req.Endpoint)
	if err != nil {
		return nil, &providers.Error{Provider: Name, Class: providers.Fatal, Code: "endpoint", Message: err.Error()}
	}
	if err := e.checkParams(req.Params); err != nil {
		return nil, &providers.Error{Provider: Name, Class: providers.Fatal, Code: "params", Message: err.Error()}
	}
	body, wire, err := buildTask(e, req)
	if err != nil {
		return nil, &providers.Error{Provider: Name, Class: providers.Fatal, Code: "request", Message: e.name + ": " + err.Error()}
	}
	b, sentAt, err := c.post(ctx, e.path, body)
	if err != nil {
		return nil, err
	}
	page, perr := decode(e, b)
	if perr != nil {
		return nil, c.redact(liftsAt(perr, sentAt))
	}
	page.Next = makeCursor(wire.offset, wire.limit, page.Next)
	return page, nil
}

// post sends one request body to the endpoint at path and returns the
// body of a 2xx answer and when the call was sent (a daily limit's stop
// lifts relative to it); any other answer comes back as its error.
func (c *Client) post(ctx context.Context, path string, body []byte) ([]byte, time.Time, error) {
	u := c.Base.String() + path // holds no credential: Basic auth is a header
	hreq, err := http.NewRequestWithContext(ctx, http.MethodPost, u, bytes.NewReader(body))
	if err != nil {
		return nil, time.Time{}, &providers.Error{Provider: Name, Class: providers.Fatal, Code: "request", Message: u}
	}
	hreq.SetBasicAuth(c.login, c.password)
	hreq.Header.Set("Content-Type", "application/json")
	hreq.Header.Set("Accept", "application/json")
	sentAt := time.Now()
	resp, err := c.HC.Do(hreq)
	if err != nil {
		return nil, sentAt, c.redact(providers.TransportError(Name, u, err))
	}
	defer resp.Body.Close()
	b, err := providers.ReadBody(Name, resp.Body, resp.ContentLength, c.MaxBody)
	if err != nil {
		return nil, sentAt, err
	}
	// The Content-Type is not checked: the body decides. An HTML page
	// from a gateway fails to decode and is retried like any bad body.
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return nil, sentAt, c.redact(liftsAt(httpError(resp.StatusCode, resp.Header.Get("Retry-After"), b), sentAt))
	}
	return b, sentAt, nil
}

// redact keeps the password out of an error, should a vendor or proxy
// message ever echo it. Short passwords are left alone: replacing every
// "ab" in a message would garble it and protect nothing.
func (c *Client) redact(e *providers.Error) *providers.Error {
	if len(c.password) >= 4 && strings.Contains(e.Message, c.password) {
		e.Message = strings.ReplaceAll(e.Message, c.password, "[redacted]")
	}
	return e
}

// sent is the paging a backlinks request was sent with, from which the
// cursor of its answer is made.
type sent struct{ offset, limit int }

// buildTask writes the POST body: an array with exactly one task (live
// endpoints run only the first; further tasks come back 40000 unrun).
// Members are in a fixed order (target, paging, then options sorted by
// name) so the same request always sends the same bytes, and a request
// of a token chain the same bytes as its predecessor but for the token.
func buildTask(e *endpoint, req providers.Request) ([]byte, sent, error) {
	var s sent
	if strings.TrimSpace(req.Domain) == "" {
		return nil, s, errors.New("no target domain")
	}
	buf := make([]byte, 0, 256)
	buf = append(buf, `[{"target":`...)
	buf = jsonstr.Append(buf, req.Domain)
	if e.paged {
		limit, offset := req.Limit, req.Offset
		var chain chainPos
		if req.Cursor != "" {
			var ok bool
			if chain, ok = parseCursor(req.Cursor); !ok {
				return nil, s, errors.New("the cursor is not one this client made")
			}
			if !chain.bare {
				// The chain's own offset and limit (see cursor.go).
				limit, offset = chain.limit, chain.offset
			}
		}
		if limit == 0 {
			limit = maxLimit
		}
		if limit < 0 || limit > maxLimit {
			return nil, s, fmt.Errorf("limit %d: the vendor takes 1 to %d rows a call", limit, maxLimit)
		}
		if offset < 0 || (offset > maxOffset && req.Cursor == "") {
			return nil, s, fmt.Errorf("offset %d: the vendor takes 0 to %d; past that, pages need search_after_token", offset, maxOffset)
		}
		s = sent{offset: offset, limit: limit}
		buf = append(buf, `,"limit":`...)
		buf = strconv.AppendInt(buf, int64(limit), 10)
		if !chain.bare {
			buf = append(buf, `,"offset":`...)
			buf = strconv.AppendInt(buf, int64(offset), 10)
		}
		if req.Cursor != "" {
			buf = append(buf, `,"search_after_token":`...)
			buf = jsonstr.Append(buf, chain.token)
		}
	}
	keys := make([]string, 0, len(req.Params))
	for k := range req.Params {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		buf = append(buf, ',')
		buf = jsonstr.Append(buf, k)
		buf = append(buf, ':')
		var v bytes.Buffer
		if err := json.Compact(&v, req.Params[k]); err != nil {
			return nil, s, fmt.Errorf("option %q is not valid JSON", k)
		}
		buf = append(buf, v.Bytes()...)
	}
	return append(buf, "}]"...), s, nil
}
