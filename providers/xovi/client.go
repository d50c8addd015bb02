// Package xovi is the client, error classification, normalisation and
// sandbox of XOVI's links/getBacklinks (docs/vendors.md, "XOVI"):
//
//	route form  {base}/links/getBacklinks/{key}/{domain}/{format}/{limit}/{skip}
//	query form  {base}/?service=links&method=getBacklinks&key=…&domain=…&format=…&limit=…&skip=…
//
// with base https://suite.xovi.net/api. limit is at most 1000 and skip is a
// PAGE INDEX (one page = limit rows), not a row offset. Errors come in the
// body as messages (apiErrorCode / apiErrorMessage), in JSON or XML.
//
// The key travels in the URL (path or query), so every URL this package
// shows (errors, String, RedactURL for log and tracing layers) has it
// replaced by REDACTED, and every message from elsewhere (transport
// errors, the vendor's text) is scrubbed of it before it leaves.
package xovi

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/linkharvest/linkharvest/providers"
)

// Name is the provider name used in queues, keys, limits and output.
const Name = "xovi"

// DefaultBaseURL is the vendor's API root (docs/contract.md).
const DefaultBaseURL = "https://suite.xovi.net/api"

// RoutePath is the route form's path below the base URL; QueryPath is the
// query form's ("/" below the base: https://suite.xovi.net/api/?service=…).
// The sandbox serves both on the same paths.
const (
	RoutePath = "/links/getBacklinks"
	QueryPath = "/"
)

// EndpointBacklinks is the only endpoint.
const EndpointBacklinks = "backlinks"

// MaxLimit is the documented cap of limit ("The maximum limit is 1000").
const MaxLimit = 1000

// DefaultCreditsPerCall is what a call is assumed to cost. XOVI bills
// service calls against a credit pool per 28-day interval, but neither the
// seed nor the vendor's other pages give getBacklinks' price; 1 per call
// is an assumption, for estimates only (Config.CreditsPerCall and
// CreditsPerRow correct it once the account's dashboard shows the price).
const DefaultCreditsPerCall = 1

// DefaultTimeout bounds one call when Config.HTTPClient is nil.
const DefaultTimeout = 2 * time.Minute

// Formats the API answers in.
const (
	FormatJSON = "json"
	FormatXML  = "xml"
)

// maxBody caps a response body unless Config.MaxBody is set: a page of 1000 rows is about 1 MB.
const maxBody = 16 << 20

// Config holds the account.
type Config struct {
	Key     providers.Secret // formats as REDACTED, so a logged Config leaks nothing
	BaseURL string
	// QueryForm sends ?service=links&method=getBacklinks&key=… (older
	// clients' form) instead of the route form.
	QueryForm      bool
	providers.Conn // the HTTP client and the body cap
	// CreditsPerCall and CreditsPerRow make Page.Cost; both 0 means
	// DefaultCreditsPerCall per call.
	CreditsPerCall, CreditsPerRow float64
}

// ConfigFromEnv reads XOVI_KEY and XOVI_BASE_URL (default DefaultBaseURL).
func ConfigFromEnv(getenv func(string) string) Config {
	return Config{Key: providers.Secret(strings.TrimSpace(getenv("XOVI_KEY"))), BaseURL: providers.EnvOr(getenv, "XOVI_BASE_URL", DefaultBaseURL)}
}

// Client calls links/getBacklinks: one call, one page.
type Client struct {
	key              string
	providers.Remote // the base URL, the HTTP client (redirects kept on its host) and the body cap
	queryForm        bool
	perCall, perRow  float64
}

// String hides the key.
func (c *Client) String() string {
	return fmt.Sprintf("xovi.Client{base:%q queryForm:%v}", c.Base.String(), c.queryForm)
}

// GoString hides the key from %#v too.
func (c *Client) GoString() string { return c.String() }

// New checks the account and builds a client.
func New(cfg Config) (*Client, error) {
	if cfg.Key == "" {
		return nil, errors.New("xovi: XOVI_KEY is required")
	}
	r, err := cfg.Remote(Name, "XOVI_BASE_URL", cfg.BaseURL, true, DefaultTimeout, maxBody)
	if err != nil {
		return nil, err
	}
	if cfg.CreditsPerCall < 0 || cfg.CreditsPerRow < 0 {
		return nil, errors.New("xovi: credits per call and per row must not be negative")
	}
	c := &Client{key: cfg.Key.Reveal(), Remote: r, queryForm: cfg.QueryForm,
		perCall: cfg.CreditsPerCall, perRow: cfg.CreditsPerRow}
	if c.perCall == 0 && c.perRow == 0 {
		c.perCall = DefaultCreditsPerCall
	}
	return c, nil
}

// Paging: pages of up to 1000 rows addressed by offset (turned into XOVI's
// page index), no documented cap on skip.
func (c *Client) Paging(endpoint string) (providers.Paging, error) {
	return providers.BodyCap(c.MaxBody)(paging(endpoint))
}

func paging(endpoint string) (providers.Paging, error) {
	if err := checkEndpoint(endpoint); err != nil {
		return providers.Paging{}, err
	}
	return providers.Paging{Kind: providers.PagingOffset, PageSize: MaxLimit, MaxOffset: 0, MaxBody: maxBody}, nil
}

func checkEndpoint(endpoint string) error {
	if endpoint != EndpointBacklinks && endpoint != "" {
		return fmt.Errorf("unknown endpoint %q (xovi has: %s)", endpoint, EndpointBacklinks)
	}
	return nil
}

// checkParams accepts only format: "json" (default) or "xml". limit and
// skip come from the paging, domain and key from the job and the account.
func checkParams(endpoint string, params map[string]json.RawMessage) error {
	if err := checkEndpoint(endpoint); err != nil {
		return err
	}
	_, err := parseFormat(params)
	return err
}

func parseFormat(params map[string]json.RawMessage) (string, error) {
	format := FormatJSON
	err := providers.EachParam(params, func(k string, v json.RawMessage) error {
		if k != "format" {
			return fmt.Errorf("unknown option %q (xovi backlinks takes: format)", k)
		}
		var s string
		if json.Unmarshal(v, &s) != nil {
			return fmt.Errorf("format must be a string, \"json\" or \"xml\", got %s", v)
		}
		switch s = strings.ToLower(strings.TrimSpace(s)); s {
		case FormatJSON, FormatXML:
			format = s
			return nil
		default:
			return fmt.Errorf("format must be \"json\" or \"xml\", got %q", s)
		}
	})
	if err != nil {
		return "", err
	}
	return format, nil
}

// window finds the call that returns rows [offset, offset+n): XOVI
// addresses rows by page index (skip) in pages of limit rows, so the page
// must start at or before offset and reach offset+n. It returns the limit,
// the skip and the rows to drop from the front of the answer; the smallest
// such limit is taken (fewest rows transferred). The pipeline asks for
// offsets that are multiples of the page size, where limit = n and drop =
// 0; a last, shorter page (offset 2000, n 300) becomes limit 400, skip 5,
// keeping the first 300 rows. ok is false when no limit up to 1000 fits.
func window(offset, n int) (limit, skip, drop int, ok bool) {
	if offset < 0 || n <= 0 || n > MaxLimit {
		return 0, 0, 0, false
	}
	for l := n; l <= MaxLimit; l++ {
		if d := offset % l; d+n <= l {
			return l, offset / l, d, true
		}
	}
	return 0, 0, 0, false
}

// call is one built request: url goes on the wire, redacted everywhere else.
type call struct{ url, redacted string }

// build is the one place URLs are made.
func (c *Client) build(domain, format string, limit, skip int) call {
	base := c.Base.String()
	mk := func(key string, escape func(string) string) string {
		if c.queryForm {
			return base + QueryPath + "?service=links&method=getBacklinks&key=" + escape(key) +
				"&domain=" + url.QueryEscape(domain) + "&format=" + format +
				"&limit=" + strconv.Itoa(limit) + "&skip=" + strconv.Itoa(skip)
		}
		return base + RoutePath + "/" + escape(key) + "/" + url.PathEscape(domain) + "/" + format +
			"/" + strconv.Itoa(limit) + "/" + strconv.Itoa(skip)
	}
	esc := url.PathEscape
	if c.queryForm {
		esc = url.QueryEscape
	}
	return call{url: mk(c.key, esc), redacted: mk(providers.Redacted, esc)}
}

// Fetch makes one call for the page of req.Limit rows (0: 1000) at
// req.Offset.
func (c *Client) Fetch(ctx context.Context, req providers.Request) (*providers.Page, error) {
	if err := checkEndpoint(req.Endpoint); err != nil {
		return nil, &providers.Error{Provider: Name, Class: providers.Fatal, Code: "endpoint", Message: err.Error()}
	}
	format, err := parseFormat(req.Params)
	if err != nil {
		return nil, &providers.Error{Provider: Name, Class: providers.Fatal, Code: "params", Message: err.Error()}
	}
	domain := strings.TrimSpace(req.Domain)
	if domain == "" {
		return nil, &providers.Error{Provider: Name, Class: providers.Fatal, Code: "request", Message: "domain is empty"}
	}
	n := req.Limit
	if n == 0 {
		n = MaxLimit
	}
	limit, skip, drop, ok := window(req.Offset, n)
	if !ok {
		return nil, &providers.Error{Provider: Name, Class: providers.Fatal, Code: "request",
			Message: fmt.Sprintf("offset %d, limit %d: not reachable with XOVI's page index (limit 1..%d, skip = offset/limit)", req.Offset, req.Limit, MaxLimit)}
	}
	cl := c.build(domain, format, limit, skip)
	accept := "application/json"
	if format == FormatXML {
		accept = "application/xml, text/xml"
	}
	resp, b, err := providers.KeyedGet(ctx, c.HC, Name, cl.url, cl.redacted, c.key, accept, c.MaxBody)
	if err != nil {
		return nil, err
	}
	page, err := c.answer(resp, b, skip, drop, n)
	if err != nil {
		return nil, providers.ScrubAnswer(err, c.key)
	}
	return page, nil
}

// answer judges a response. XOVI signals errors in the body; HTTP 429 and
// 5xx are judged by their status (throttled, retryable), other non-2xx
// statuses by the body's message where there is one, else by the status.
func (c *Client) answer(resp *http.Response, body []byte, skip, drop, n int) (*providers.Page, error) {
	st := resp.StatusCode
	env, derr := parse(body)
	if st < 200 || st > 299 {
		if st == 429 || st >= 500 || derr != nil || (!env.hasCode && env.message == nil) {
			msg := http.StatusText(st)
			if derr == nil && env.message != nil && *env.message != "" {
				msg = *env.message
			}
			return nil, providers.HTTPStatus(Name, st, resp.Header.Get("Retry-After"), msg)
		}
	}
	if derr != nil {
		return nil, derr
	}
	return c.page(env, skip, drop, n)
}

// RedactURL returns s with XOVI keys replaced by REDACTED: the path
// segment after /links/getBacklinks/ and the value of every key query
// parameter. For log and tracing layers that see the requests this client
// sends (an otelhttp span's url.full, say); it works on any string, so a
// malformed URL is redacted too.
func RedactURL(s string) string {
	s = routeKey.ReplaceAllString(s, "${1}"+providers.Redacted)
	return queryKey.ReplaceAllString(s, "${1}"+providers.Redacted)
}

var (
	routeKey = regexp.MustCompile(`(?i)(/links/getBacklinks/)[^/?#\s]*`)
	queryKey = regexp.MustCompile(`(?i)([?&;]key=)[^&#\s]*`)
)
