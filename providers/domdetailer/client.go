// Package domdetailer is the client, error classification, normalisation
// and sandbox of DomDetailer's Backlinks API (seed 000):
// GET /api2/getBacklinks.php?apikey=…&app=…&domain=…[&onePerDomain=1],
// one call per domain (up to 5,000 rows, no pagination, 3 credits), errors
// as HTTP statuses with a {"error","message"} body.
//
// The API key travels in the query string, so every URL this package shows
// (errors, String, RedactURL for log and tracing layers) carries
// apikey=REDACTED instead, and every message from elsewhere (transport
// errors, the vendor's own text) is scrubbed of the key before it leaves.
package domdetailer

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"regexp"
	"sort"
	"strings"
	"time"

	"github.com/linkharvest/linkharvest/providers"
)

// Name is the provider name used in queues, keys, limits and output.
const Name = "domdetailer"

// DefaultBaseURL is the vendor's host (CONTRACT.md).
const DefaultBaseURL = "https://domdetailer.com"

// Path is the documented endpoint, relative to the base URL.
const Path = "/api2/getBacklinks.php"

// EndpointBacklinks is the only endpoint.
const EndpointBacklinks = "backlinks"

// MaxRows is the vendor's cap on one answer ("up to 5,000 rows").
const MaxRows = 5000

// CreditsPerCall is the documented price of a call ("3 credits per request").
const CreditsPerCall = 3

// DefaultTimeout bounds one call when Config.HTTPClient is nil: 5,000 rows
// are computed on the vendor's side before the first byte comes.
const DefaultTimeout = 2 * time.Minute

// Redacted replaces the key wherever a URL or message is shown.
const Redacted = "REDACTED"

// maxBody caps a response body unless Config.MaxBody is set: its 5000 rows are about 2.5 MB.
const maxBody = 16 << 20

// Config holds the account.
type Config struct {
	APIKey string
	// App identifies the integration to the vendor (the `app` parameter);
	// it is not a secret.
	App     string
	BaseURL string
	// HTTPClient carries the shared limiter and tracing; nil gets a plain
	// client with DefaultTimeout. It is copied, not changed: the copy
	// refuses redirects that would carry the key to another host.
	HTTPClient *http.Client
	// MaxBody caps a response body (0: maxBody).
	MaxBody int64
}

// String hides the key, so that a logged Config leaks nothing.
func (c Config) String() string {
	return fmt.Sprintf("domdetailer.Config{APIKey:%s App:%q BaseURL:%q}", mask(c.APIKey), c.App, c.BaseURL)
}

// GoString hides the key from %#v too.
func (c Config) GoString() string { return c.String() }

// LogValue hides the key from slog.
func (c Config) LogValue() slog.Value {
	return slog.GroupValue(slog.String("apikey", mask(c.APIKey)), slog.String("app", c.App), slog.String("base_url", c.BaseURL))
}

func mask(key string) string {
	if key == "" {
		return `""`
	}
	return Redacted
}

// ConfigFromEnv reads DOMDETAILER_APIKEY, DOMDETAILER_APP and
// DOMDETAILER_BASE_URL (default DefaultBaseURL).
func ConfigFromEnv(getenv func(string) string) Config {
	base := strings.TrimSpace(getenv("DOMDETAILER_BASE_URL"))
	if base == "" {
		base = DefaultBaseURL
	}
	return Config{
		APIKey:  strings.TrimSpace(getenv("DOMDETAILER_APIKEY")),
		App:     strings.TrimSpace(getenv("DOMDETAILER_APP")),
		BaseURL: base,
	}
}

// Client calls the Backlinks API: one call, one page.
type Client struct {
	key, app string
	base     *url.URL // no query, no trailing slash
	hc       *http.Client
	maxBody  int64
}

// String hides the key.
func (c *Client) String() string {
	return fmt.Sprintf("domdetailer.Client{app:%q base:%q}", c.app, c.base.String())
}

// GoString hides the key from %#v too.
func (c *Client) GoString() string { return c.String() }

// New checks the account and builds a client.
func New(cfg Config) (*Client, error) {
	if cfg.APIKey == "" || cfg.App == "" {
		return nil, errors.New("domdetailer: DOMDETAILER_APIKEY and DOMDETAILER_APP are required")
	}
	if cfg.BaseURL == "" {
		return nil, errors.New("domdetailer: DOMDETAILER_BASE_URL is required")
	}
	u, err := url.Parse(cfg.BaseURL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		// err may quote the URL: leave it out.
		return nil, errors.New("domdetailer: DOMDETAILER_BASE_URL must be an absolute http(s) URL")
	}
	if u.RawQuery != "" || u.Fragment != "" || u.User != nil {
		return nil, errors.New("domdetailer: DOMDETAILER_BASE_URL must not have user info, a query or a fragment")
	}
	u.Path = strings.TrimRight(u.Path, "/")
	u.RawPath = ""
	hc := &http.Client{Timeout: DefaultTimeout}
	if cfg.HTTPClient != nil {
		cp := *cfg.HTTPClient
		hc = &cp
	}
	hc.CheckRedirect = sameHostRedirects(u, hc.CheckRedirect)
	return &Client{key: cfg.APIKey, app: cfg.App, base: u, hc: hc, maxBody: cmp.Or(cfg.MaxBody, maxBody)}, nil
}

// sameHostRedirects follows a redirect only on the vendor's own host and
// never from https to http: the key is in the URL, and a redirect elsewhere
// would hand it over. A refused redirect comes back as the 3xx response,
// which is a fatal error (the base URL needs fixing).
func sameHostRedirects(base *url.URL, next func(*http.Request, []*http.Request) error) func(*http.Request, []*http.Request) error {
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

// Endpoints lists the endpoint names; "backlinks" is the only one.
func (c *Client) Endpoints() []string { return []string{EndpointBacklinks} }

// Paging: one call returns the whole sample.
func (c *Client) Paging(endpoint string) (providers.Paging, error) {
	if err := checkEndpoint(endpoint); err != nil {
		return providers.Paging{}, err
	}
	return providers.Paging{Kind: providers.PagingNone, PageSize: MaxRows, MaxBody: c.maxBody}, nil
}

func checkEndpoint(endpoint string) error {
	if endpoint != EndpointBacklinks && endpoint != "" {
		return fmt.Errorf("unknown endpoint %q (domdetailer has: %s)", endpoint, EndpointBacklinks)
	}
	return nil
}

// params are the documented request options.
type params struct {
	onePerDomain bool
}

// knownParams lists the options a job may set.
var knownParams = []string{"onePerDomain"}

// CheckParams accepts only onePerDomain: true/false, 0/1 or those as strings.
func (c *Client) CheckParams(endpoint string, p map[string]json.RawMessage) error {
	if err := checkEndpoint(endpoint); err != nil {
		return err
	}
	_, err := parseParams(p)
	return err
}

func parseParams(p map[string]json.RawMessage) (params, error) {
	var out params
	keys := make([]string, 0, len(p))
	for k := range p {
		keys = append(keys, k)
	}
	sort.Strings(keys) // the same error for the same map
	for _, k := range keys {
		switch k {
		case "onePerDomain":
			b := flag(p[k])
			if b == nil {
				return out, fmt.Errorf("onePerDomain must be true/false or 1/0, got %s", p[k])
			}
			out.onePerDomain = *b
		default:
			return out, fmt.Errorf("unknown option %q (domdetailer backlinks takes: %s)", k, strings.Join(knownParams, ", "))
		}
	}
	return out, nil
}

// call is one built request: url goes on the wire, redacted everywhere else.
type call struct{ url, redacted string }

// build is the one place URLs are made. The query is written in the
// documented order: apikey, app, domain, onePerDomain.
func (c *Client) build(domain string, p params) call {
	q := func(key string) string {
		s := "apikey=" + url.QueryEscape(key) + "&app=" + url.QueryEscape(c.app) + "&domain=" + url.QueryEscape(domain)
		if p.onePerDomain {
			s += "&onePerDomain=1"
		}
		return s
	}
	u := c.base.String() + Path + "?"
	return call{url: u + q(c.key), redacted: u + q(Redacted)}
}

// Fetch makes the one call of a domain. Offsets and cursors have no meaning
// here: asking for a later page is a bug of the caller, and a fatal error
// rather than a second paid call returning the same rows.
func (c *Client) Fetch(ctx context.Context, req providers.Request) (*providers.Page, error) {
	if err := checkEndpoint(req.Endpoint); err != nil {
		return nil, &providers.Error{Provider: Name, Class: providers.Fatal, Code: "endpoint", Message: err.Error()}
	}
	p, err := parseParams(req.Params)
	if err != nil {
		return nil, &providers.Error{Provider: Name, Class: providers.Fatal, Code: "params", Message: err.Error()}
	}
	if req.Offset != 0 || req.Cursor != "" || req.Page > 1 {
		return nil, &providers.Error{Provider: Name, Class: providers.Fatal, Code: "request",
			Message: fmt.Sprintf("the API has no pagination: page %d, offset %d asked", req.Page, req.Offset)}
	}
	domain := strings.TrimSpace(req.Domain)
	if domain == "" {
		return nil, &providers.Error{Provider: Name, Class: providers.Fatal, Code: "request", Message: "domain is empty"}
	}
	cl := c.build(domain, p)
	hreq, err := http.NewRequestWithContext(ctx, http.MethodGet, cl.url, nil)
	if err != nil {
		return nil, &providers.Error{Provider: Name, Class: providers.Fatal, Code: "request", Message: cl.redacted}
	}
	hreq.Header.Set("Accept", "application/json")
	resp, err := c.hc.Do(hreq)
	if err != nil {
		pe := providers.TransportError(Name, cl.redacted, err)
		pe.Err = c.scrubErr(pe.Err)
		return nil, pe
	}
	defer resp.Body.Close()
	b, err := providers.ReadBody(Name, resp.Body, resp.ContentLength, c.maxBody)
	if err != nil {
		if pe, ok := providers.AsError(err); ok {
			pe.Err = c.scrubErr(pe.Err)
		}
		return nil, err
	}
	if perr := providers.HTTPStatus(Name, resp.StatusCode, resp.Header.Get("Retry-After"), c.scrub(errorMessage(b, resp.StatusCode))); perr != nil {
		return nil, perr
	}
	page, err := decode(b)
	if err != nil {
		if pe, ok := providers.AsError(err); ok {
			pe.Code = c.scrub(pe.Code)
			pe.Message = c.scrub(pe.Message)
			pe.Err = c.scrubErr(pe.Err)
		}
		return nil, err
	}
	return page, nil
}

// scrub removes the key from a message, in every form it may take in a URL.
func (c *Client) scrub(s string) string { return scrubKey(s, c.key) }

func scrubKey(s, key string) string {
	if key == "" {
		return s
	}
	for _, k := range []string{key, url.QueryEscape(key), url.PathEscape(key)} {
		s = strings.ReplaceAll(s, k, Redacted)
	}
	return s
}

// scrubErr keeps err when its message holds no key; otherwise it returns a
// plain error with the scrubbed message, dropping the chain (some link of
// it quotes the key and would leak it to whoever unwraps).
func (c *Client) scrubErr(err error) error {
	if err == nil {
		return nil
	}
	msg := err.Error()
	if clean := c.scrub(msg); clean != msg {
		return errors.New(clean)
	}
	return err
}

// RedactURL returns s with the value of every apikey parameter replaced
// by REDACTED, for log and tracing layers that see the requests this client
// sends (an otelhttp span's url.full, say). It works on any string, URL or
// not, so that a malformed URL is redacted too.
func RedactURL(s string) string { return apikeyParam.ReplaceAllString(s, "${1}"+Redacted) }

var apikeyParam = regexp.MustCompile(`(?i)([?&;]apikey=)[^&#\s]*`)
