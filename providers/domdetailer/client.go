// Package domdetailer is the client, error classification, normalisation
// and sandbox of DomDetailer's Backlinks API (docs/vendors.md, "DomDetailer"):
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
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"regexp"
	"strings"
	"time"

	"github.com/linkharvest/linkharvest/providers"
)

// Name is the provider name used in queues, keys, limits and output.
const Name = "domdetailer"

// DefaultBaseURL is the vendor's host (docs/contract.md).
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

// maxBody caps a response body unless Config.MaxBody is set: its 5000 rows are about 2.5 MB.
const maxBody = 16 << 20

// Config holds the account.
type Config struct {
	APIKey providers.Secret // formats as REDACTED, so a logged Config leaks nothing
	// App identifies the integration to the vendor (the `app` parameter);
	// it is not a secret.
	App            string
	BaseURL        string
	providers.Conn // the HTTP client and the body cap
}

// ConfigFromEnv reads DOMDETAILER_APIKEY, DOMDETAILER_APP and
// DOMDETAILER_BASE_URL (default DefaultBaseURL).
func ConfigFromEnv(getenv func(string) string) Config {
	return Config{
		APIKey:  providers.Secret(strings.TrimSpace(getenv("DOMDETAILER_APIKEY"))),
		App:     strings.TrimSpace(getenv("DOMDETAILER_APP")),
		BaseURL: providers.EnvOr(getenv, "DOMDETAILER_BASE_URL", DefaultBaseURL),
	}
}

// Client calls the Backlinks API: one call, one page.
type Client struct {
	key, app         string
	providers.Remote // the base URL, the HTTP client (redirects kept on its host) and the body cap
}

// String hides the key.
func (c *Client) String() string {
	return fmt.Sprintf("domdetailer.Client{app:%q base:%q}", c.app, c.Base.String())
}

// GoString hides the key from %#v too.
func (c *Client) GoString() string { return c.String() }

// New checks the account and builds a client.
func New(cfg Config) (*Client, error) {
	if cfg.APIKey == "" || cfg.App == "" {
		return nil, errors.New("domdetailer: DOMDETAILER_APIKEY and DOMDETAILER_APP are required")
	}
	r, err := cfg.Remote(Name, "DOMDETAILER_BASE_URL", cfg.BaseURL, true, DefaultTimeout, maxBody)
	if err != nil {
		return nil, err
	}
	return &Client{key: cfg.APIKey.Reveal(), app: cfg.App, Remote: r}, nil
}

// Paging: one call returns the whole sample.
func (c *Client) Paging(endpoint string) (providers.Paging, error) {
	return providers.BodyCap(c.MaxBody)(paging(endpoint))
}

func paging(endpoint string) (providers.Paging, error) {
	if err := checkEndpoint(endpoint); err != nil {
		return providers.Paging{}, err
	}
	return providers.Paging{Kind: providers.PagingNone, PageSize: MaxRows, MaxBody: maxBody}, nil
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

// checkParams accepts only onePerDomain: true/false, 0/1 or those as strings.
func checkParams(endpoint string, p map[string]json.RawMessage) error {
	if err := checkEndpoint(endpoint); err != nil {
		return err
	}
	_, err := parseParams(p)
	return err
}

func parseParams(p map[string]json.RawMessage) (params, error) {
	var out params
	err := providers.EachParam(p, func(k string, v json.RawMessage) error {
		switch k {
		case "onePerDomain":
			b := providers.JSONFlag(v)
			if b == nil {
				return fmt.Errorf("onePerDomain must be true/false or 1/0, got %s", v)
			}
			out.onePerDomain = *b
			return nil
		default:
			return fmt.Errorf("unknown option %q (domdetailer backlinks takes: %s)", k, strings.Join(knownParams, ", "))
		}
	})
	return out, err
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
	u := c.Base.String() + Path + "?"
	return call{url: u + q(c.key), redacted: u + q(providers.Redacted)}
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
	resp, b, err := providers.KeyedGet(ctx, c.HC, Name, cl.url, cl.redacted, c.key, "application/json", c.MaxBody)
	if err != nil {
		return nil, err
	}
	if perr := providers.HTTPStatus(Name, resp.StatusCode, resp.Header.Get("Retry-After"), errorMessage(b, resp.StatusCode)); perr != nil {
		return nil, providers.ScrubAnswer(perr, c.key)
	}
	page, err := decode(b)
	if err != nil {
		return nil, providers.ScrubAnswer(err, c.key)
	}
	return page, nil
}

// RedactURL returns s with the value of every apikey parameter replaced
// by REDACTED, for log and tracing layers that see the requests this client
// sends (an otelhttp span's url.full, say). It works on any string, URL or
// not, so that a malformed URL is redacted too.
func RedactURL(s string) string { return apikeyParam.ReplaceAllString(s, "${1}"+providers.Redacted) }

var apikeyParam = regexp.MustCompile(`(?i)([?&;]apikey=)[^&#\s]*`)
