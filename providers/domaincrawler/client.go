// Package domaincrawler is the client, error classification, normalisation
// and sandbox of DomainCrawler's Backlink API (docs/vendors.md, "DomainCrawler"): 31 GET endpoints
// under an account-specific base URL, HTTP Basic auth, errors as HTTP
// statuses. Everything is driven by one table of endpoint descriptions
// (endpoints.go).
package domaincrawler

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/linkharvest/linkharvest/providers"
)

// Name is the provider name used in queues, keys, limits and output.
const Name = "domaincrawler"

// maxBody caps a response body unless Config.MaxBody is set: a page of 10,000 backlinks is about 6 MB.
const maxBody = 16 << 20

// Config holds the account. The base URL has no default: every account
// gets its own API host (the docs say http://api_endpoint_here/).
type Config struct {
	User           string
	Password       providers.Secret // formats as REDACTED
	BaseURL        string
	providers.Conn // the HTTP client and the body cap
	// AcceptUnfinished keeps pages answered with "exportFinished": false
	// (DOMAINCRAWLER_ACCEPT_UNFINISHED=true). By default such a page
	// waits: the vendor says its search index does not yet hold all of the
	// domain's data (the docs' iscached checks the same flag), so a page,
	// and the count that plans the other pages, taken now would be
	// incomplete. Not finished yet is the normal state of a domain being
	// exported, not a failure: the page is asked again after
	// UnfinishedWait without spending its retries (class Pending).
	AcceptUnfinished bool
	// UnfinishedWait is how long a page waits for an unfinished export
	// before asking again (DOMAINCRAWLER_UNFINISHED_WAIT; default
	// DefaultUnfinishedWait). A Retry-After from the vendor wins.
	UnfinishedWait time.Duration

	// envErr is a setting ConfigFromEnv could not read; New reports it.
	envErr error
}

// DefaultTimeout bounds one call when Config.HTTPClient is nil. A page of
// 10,000 rows from a search index takes seconds, not minutes.
const DefaultTimeout = 2 * time.Minute

// DefaultUnfinishedWait is how long to wait for the vendor's export into
// its search index before asking again. The docs give no figure; a minute
// keeps a domain being exported from costing more than a call a minute.
const DefaultUnfinishedWait = time.Minute

// ConfigFromEnv reads DOMAINCRAWLER_USER, DOMAINCRAWLER_PASSWORD,
// DOMAINCRAWLER_BASE_URL, DOMAINCRAWLER_ACCEPT_UNFINISHED (true or false,
// default false) and DOMAINCRAWLER_UNFINISHED_WAIT (a duration, default
// 1m). A value that does not parse is reported by New.
func ConfigFromEnv(getenv func(string) string) Config {
	c := Config{
		User:     getenv("DOMAINCRAWLER_USER"),
		Password: providers.Secret(getenv("DOMAINCRAWLER_PASSWORD")),
		BaseURL:  strings.TrimSpace(getenv("DOMAINCRAWLER_BASE_URL")),
	}
	if v := strings.TrimSpace(getenv("DOMAINCRAWLER_ACCEPT_UNFINISHED")); v != "" {
		b, err := strconv.ParseBool(v)
		if err != nil {
			c.envErr = fmt.Errorf("DOMAINCRAWLER_ACCEPT_UNFINISHED=%q: want true or false", v)
		}
		c.AcceptUnfinished = b
	}
	if v := strings.TrimSpace(getenv("DOMAINCRAWLER_UNFINISHED_WAIT")); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil || d <= 0 {
			c.envErr = errors.Join(c.envErr, fmt.Errorf("DOMAINCRAWLER_UNFINISHED_WAIT=%q: want a positive duration such as 1m", v))
		}
		c.UnfinishedWait = d
	}
	return c
}

// Client calls the Backlink API: one call, one page.
type Client struct {
	user, password   string
	providers.Remote // the base URL (no user info), the HTTP client and the body cap
	acceptUnfin      bool
	unfinWait        time.Duration
}

// String hides the password, so that a logged client leaks nothing.
func (c *Client) String() string {
	return fmt.Sprintf("domaincrawler.Client{user:%q base:%q}", c.user, c.Base.String())
}

// GoString hides the password from %#v too.
func (c *Client) GoString() string { return c.String() }

// New checks the account and builds a client.
func New(cfg Config) (*Client, error) {
	if cfg.envErr != nil {
		return nil, fmt.Errorf("domaincrawler: %w", cfg.envErr)
	}
	if cfg.UnfinishedWait <= 0 {
		cfg.UnfinishedWait = DefaultUnfinishedWait
	}
	if cfg.User == "" || cfg.Password == "" {
		return nil, errors.New("domaincrawler: DOMAINCRAWLER_USER and DOMAINCRAWLER_PASSWORD are required")
	}
	if cfg.BaseURL == "" {
		return nil, errors.New("domaincrawler: DOMAINCRAWLER_BASE_URL is required: the API host is account-specific and has no default")
	}
	r, err := cfg.Remote(Name, "DOMAINCRAWLER_BASE_URL", cfg.BaseURL, false, DefaultTimeout, maxBody)
	if err != nil {
		return nil, err
	}
	return &Client{user: cfg.User, password: cfg.Password.Reveal(), Remote: r, acceptUnfin: cfg.AcceptUnfinished, unfinWait: cfg.UnfinishedWait}, nil
}

// Paging describes an endpoint's pagination.
func (c *Client) Paging(name string) (providers.Paging, error) {
	return providers.BodyCap(c.MaxBody)(paging(name))
}

func paging(name string) (providers.Paging, error) {
	e, err := lookup(name)
	if err != nil {
		return providers.Paging{}, err
	}
	switch e.paging {
	case pageOffset:
		// No offset cap is documented.
		return providers.Paging{Kind: providers.PagingOffset, PageSize: maxLimit, MaxBody: maxBody}, nil
	case pageNext:
		return providers.Paging{Kind: providers.PagingCursor, PageSize: e.pageSize(), MaxBody: maxBody}, nil
	}
	return providers.Paging{Kind: providers.PagingNone, MaxBody: maxBody}, nil
}

// checkParams rejects parameters the endpoint does not document: unknown
// keys, order values outside its list, filters on other fields or with
// other operations, dates not in yyyyMMdd, a missing histogram `from`.
func checkParams(name string, params map[string]json.RawMessage) error {
	e, err := lookup(name)
	if err != nil {
		return err
	}
	if _, err := e.parseParams(params); err != nil {
		return fmt.Errorf("%s: %w", e.name, err)
	}
	return nil
}

// maxGETQuery is the longest query sent with GET; longer URL lists go by
// the documented POST form, which proxies and servers do not truncate.
const maxGETQuery = 4000

// call is one built HTTP request; redacted is what errors show.
type call struct {
	method, url, redacted string
	body                  []byte
}

// build turns a request into the vendor's HTTP call. It is the one place
// URLs are made; none of them hold credentials (Basic auth is a header).
func (c *Client) build(e *endpoint, req providers.Request, o *options) (*call, error) {
	if strings.TrimSpace(req.Domain) == "" {
		return nil, errors.New("no domain")
	}
	var q query
	switch e.target {
	case targetURL:
		q.add("url", req.Domain)
	case targetURLs:
		for i, u := range append([]string{req.Domain}, o.urls...) {
			q.add("urls["+strconv.Itoa(i)+"]", u)
		}
	}
	switch e.paging {
	case pageOffset, pageNext:
		limit := req.Limit
		if limit == 0 {
			limit = e.pageSize()
		}
		if limit < 0 || limit > maxLimit {
			return nil, fmt.Errorf("limit %d: the API takes 1 to %d rows", limit, maxLimit)
		}
		q.add("limit", strconv.Itoa(limit))
		if e.paging == pageOffset {
			if req.Offset < 0 {
				return nil, fmt.Errorf("offset %d is negative", req.Offset)
			}
			q.add("offset", strconv.Itoa(req.Offset))
		} else if req.Cursor != "" {
			q.add("next", req.Cursor)
		}
	case pageDates:
		q.add("from", o.from)
		if o.to != "" {
			q.add("to", o.to)
		}
	}
	for i, v := range o.order {
		q.add("order["+strconv.Itoa(i)+"]", v)
	}
	if o.where != "" {
		q.add("where", o.where)
	}
	if o.showgroup != nil {
		q.add("showgroup", strconv.FormatBool(*o.showgroup))
	}
	if len(o.resources) > 0 {
		q.add("resources", o.resources...) // comma-joined, commas unescaped as in the docs
	}

	u := c.Base.String() + e.path
	cl := &call{method: http.MethodGet, url: u + "?" + q.String(), redacted: u + "?" + q.String()}
	if e.post != postNone && len(q.String()) > maxGETQuery {
		var body any
		switch e.post {
		case postURLs:
			body = append([]string{req.Domain}, o.urls...)
		case postObject:
			body = struct {
				URL       string   `json:"url"`
				Resources []string `json:"resources"`
			}{req.Domain, o.resources}
		}
		b, err := json.Marshal(body)
		if err != nil {
			return nil, err
		}
		cl.method, cl.url, cl.redacted, cl.body = http.MethodPost, u, u+" (POST)", b
	}
	return cl, nil
}

// Fetch makes one call for one page. The Content-Type is not checked: the
// docs do not state it, and a PHP-style API that labels JSON text/html
// would otherwise fail every call; a body that is not the JSON envelope is
// a retryable bad body whatever its label.
func (c *Client) Fetch(ctx context.Context, req providers.Request) (*providers.Page, error) {
	e, err := lookup(req.Endpoint)
	if err != nil {
		return nil, &providers.Error{Provider: Name, Class: providers.Fatal, Code: "endpoint", Message: err.Error()}
	}
	o, err := e.parseParams(req.Params)
	if err != nil {
		return nil, &providers.Error{Provider: Name, Class: providers.Fatal, Code: "params", Message: e.name + ": " + err.Error()}
	}
	cl, err := c.build(e, req, o)
	if err != nil {
		return nil, &providers.Error{Provider: Name, Class: providers.Fatal, Code: "request", Message: e.name + ": " + err.Error()}
	}
	var body io.Reader
	if cl.body != nil {
		body = bytes.NewReader(cl.body)
	}
	hreq, err := http.NewRequestWithContext(ctx, cl.method, cl.url, body)
	if err != nil {
		return nil, &providers.Error{Provider: Name, Class: providers.Fatal, Code: "request", Message: cl.redacted}
	}
	hreq.SetBasicAuth(c.user, c.password)
	hreq.Header.Set("Accept", "application/json")
	if cl.body != nil {
		hreq.Header.Set("Content-Type", "application/json")
	}
	resp, err := c.HC.Do(hreq)
	if err != nil {
		return nil, providers.TransportError(Name, cl.redacted, err)
	}
	defer resp.Body.Close()
	b, err := providers.ReadBody(Name, resp.Body, resp.ContentLength, c.MaxBody)
	if err != nil {
		return nil, err
	}
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return nil, c.redact(providers.HTTPStatus(Name, resp.StatusCode, resp.Header.Get("Retry-After"), errorMessage(b, resp.StatusCode)))
	}
	page, err := decode(e, b, req.Offset, c.acceptUnfin, c.unfinWait, resp.Header.Get("Retry-After"))
	if pe, ok := providers.AsError(err); ok {
		return nil, c.redact(pe)
	}
	return page, err
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

// query keeps parameters in the order they are added, with the keys
// written as the docs write them (order[0], urls[1]: brackets unescaped)
// and values escaped with %20 for spaces, the form the docs ask for in
// `where` ("where=frequency%20gt%2010").
type query struct{ b strings.Builder }

// add appends k=v; several values are joined with unescaped commas.
func (q *query) add(k string, vs ...string) {
	if q.b.Len() > 0 {
		q.b.WriteByte('&')
	}
	q.b.WriteString(k)
	q.b.WriteByte('=')
	for i, v := range vs {
		if i > 0 {
			q.b.WriteByte(',')
		}
		// QueryEscape writes a literal '+' as %2B, so every '+' it emits is a space.
		q.b.WriteString(strings.ReplaceAll(url.QueryEscape(v), "+", "%20"))
	}
}

func (q *query) String() string { return q.b.String() }
