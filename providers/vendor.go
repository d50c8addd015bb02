package providers

import (
	"cmp"
	"context"
	"encoding/json"
	"maps"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/linkharvest/linkharvest/providers/sandbox"
)

// Client is what the pipeline needs of a vendor client; what needs no
// client (the endpoints, checking a job's options) is in its Vendor.
type Client interface {
	Paging(endpoint string) (Paging, error)
	Fetch(ctx context.Context, req Request) (*Page, error)
}

// Vendor is everything the rest of the system knows of a vendor: each
// vendor package exports one (e.g. dataforseo.Vendor), and
// providers/registry lists them. Programs, the limiter's defaults, the
// redaction of spans and the tests read these values and keep no list of
// their own, so a new vendor is a new package and one line in the
// registry.
type Vendor struct {
	// Name is the provider name used in queues, keys, limits and output.
	Name string
	// Endpoints are the endpoint names, the default first.
	Endpoints []string
	// Paging and CheckParams describe an endpoint and check a job's
	// options for it without a client (enqueue runs without credentials).
	Paging      func(endpoint string) (Paging, error)
	CheckParams func(endpoint string, params map[string]json.RawMessage) error
	// FromEnv builds a client from the environment; hc carries the shared
	// limiter and tracing (nil: a plain client). It fails when the
	// account is not configured, and the worker then skips the vendor.
	FromEnv func(getenv func(string) string, hc *http.Client) (Client, error)
	Env     Env
	// Limits are the account's published limits, used where --limit does
	// not name the vendor; the zero value means none are published.
	Limits Limits
	// Prices say what calls cost, in the vendor's own unit.
	Prices []Price
	// ChangeSignals are the ways the vendor tells what changed since a
	// day without fetching every row again (none: only a full harvest).
	ChangeSignals []ChangeSignal
	// Delta says how a refresh fetches only what changed (nil: the vendor
	// cannot say, and a refresh fetches its domains in full).
	Delta *Delta
	// Mount adds the vendor's simulated API to a sandbox server.
	Mount func(*sandbox.Server)
}

// Env names the environment variables a vendor's client reads.
type Env struct {
	// BaseURL names the variable with the API's base URL.
	BaseURL string
	// Account names the variables that identify and authenticate the
	// account (logins included): deployments take them from a secret store.
	Account []string
	// Secrets are those of Account whose values are credentials: their
	// values never reach a log, a span, an error or a task payload.
	Secrets []string
	// Sandbox are values, besides BaseURL, that point the client at the
	// sandbox: placeholder credentials it accepts.
	Sandbox map[string]string
}

// SecretValues returns the values of the vendor's secret variables that
// are set, for redaction layers (spans, logs) to scrub.
func (v Vendor) SecretValues(getenv func(string) string) []string {
	var out []string
	for _, n := range v.Env.Secrets {
		if s := getenv(n); s != "" {
			out = append(out, s)
		}
	}
	return out
}

// Limits are an account's limits as the vendor publishes them.
type Limits struct {
	// Rate calls in any window of Period; 0: not limited.
	Rate   int
	Period time.Duration
	// InFlight calls at once; 0: not limited.
	InFlight int
	// Header names the response header in which the vendor states the
	// account's own limit, in calls per HeaderPer ("": it states none).
	Header    string
	HeaderPer time.Duration
}

// Units prices are given in.
const (
	UnitUSD     = "usd"
	UnitCredits = "credits"
	UnitCalls   = "calls" // the vendor bills calls against a quota
)

// Price is what one call of an endpoint costs: PerCall plus PerRow for
// every row it returns, in Unit. internal/spend reads these as the
// defaults that PROVIDER_PRICES overrides.
type Price struct {
	Endpoint string // "" for every endpoint not priced on its own
	Unit     string
	PerCall  float64
	PerRow   float64
	// Reported: the vendor's answer states what it charged (DataForSEO's
	// cost), which the ledger records rather than the price.
	Reported bool
}

// For is what a call that returned rows rows costs.
func (p Price) For(rows int) float64 { return p.PerCall + p.PerRow*float64(rows) }

// PriceOf returns the price of an endpoint's calls (its own, else the
// vendor's default; ok false when the vendor states none).
func (v Vendor) PriceOf(endpoint string) (p Price, ok bool) {
	for _, p := range v.Prices {
		if p.Endpoint == endpoint {
			return p, true
		}
	}
	for _, p := range v.Prices {
		if p.Endpoint == "" {
			return p, true
		}
	}
	return Price{}, false
}

// ChangeSignal is one way a vendor tells what changed since a day.
type ChangeSignal string

const (
	// ChangeCounts: one cheap call counts each of many targets' new and
	// lost rows since a day (DataForSEO's bulk_new_lost_backlinks), so an
	// unchanged target needs no other call.
	ChangeCounts ChangeSignal = "counts"
	// ChangeRows: rows can be asked for by when they were first seen, and
	// lost rows listed (DataForSEO's first_seen filters and lost status),
	// so only the delta is fetched.
	ChangeRows ChangeSignal = "rows"
	// ChangeHistogram: new and lost rows are counted per day
	// (DomainCrawler's newandlost-histogram), telling whether a target
	// changed but not which rows did.
	ChangeHistogram ChangeSignal = "histogram"
)

// FromEnv makes a Vendor.FromEnv of a vendor package's parts: the Config
// read from the environment and the constructor. The HTTP client is set
// through the Conn every Config embeds (P is *Cfg). A failed build gives
// a nil Client, not a typed nil.
func FromEnv[Cfg any, P interface {
	*Cfg
	setHTTPClient(*http.Client)
}, C Client](fromEnv func(getenv func(string) string) Cfg, build func(Cfg) (C, error)) func(func(string) string, *http.Client) (Client, error) {
	return func(getenv func(string) string, hc *http.Client) (Client, error) {
		cfg := fromEnv(getenv)
		P(&cfg).setHTTPClient(hc)
		c, err := build(cfg)
		if err != nil {
			return nil, err
		}
		return c, nil
	}
}

// EnvOr is the variable name's value, trimmed, or def when it is unset or
// blank: a ConfigFromEnv reads its base URL so.
func EnvOr(getenv func(string) string, name, def string) string {
	if v := strings.TrimSpace(getenv(name)); v != "" {
		return v
	}
	return def
}

// EachParam calls check with a job's options in the order of their names
// and stops at the first error, so that options with two faults always
// report the same one.
func EachParam(params map[string]json.RawMessage, check func(name string, value json.RawMessage) error) error {
	for _, k := range slices.Sorted(maps.Keys(params)) {
		if err := check(k, params[k]); err != nil {
			return err
		}
	}
	return nil
}

// BodyCap sets a Paging's MaxBody to max, for a client whose body cap is
// configured: a client's Paging(e) is BodyCap(c.maxBody)(paging(e)),
// where paging describes the endpoint without a client.
func BodyCap(max int64) func(Paging, error) (Paging, error) {
	return func(pg Paging, err error) (Paging, error) {
		pg.MaxBody = max
		return pg, err
	}
}

// Conn is how a client reaches its vendor, alike for every vendor: each
// vendor's Config embeds it.
type Conn struct {
	// HTTPClient carries the shared limiter and tracing; nil gets a plain
	// client with the vendor's DefaultTimeout. A client whose key is in
	// the URL copies it rather than change it: the copy refuses redirects
	// that would carry the key to another host.
	HTTPClient *http.Client
	// MaxBody caps a response body (0: the vendor's own cap).
	MaxBody int64
}

// setHTTPClient is how FromEnv hands a vendor's Config the shared client:
// one method on the embedded Conn rather than a setter in every vendor.
func (c *Conn) setHTTPClient(hc *http.Client) { c.HTTPClient = hc }

// Remote is what a built client keeps of its Conn, alike for every
// vendor: each vendor's Client embeds it, so that the checks of the base
// URL, the choice of HTTP client and the body cap are made in one place
// (Conn.Remote).
type Remote struct {
	Base    *url.URL     // scheme://host[/path]: no user info, no query, no trailing slash
	HC      *http.Client // never nil
	MaxBody int64        // the Config's cap, else the vendor's
}

// Remote checks the base URL raw, read from the variable env (named in
// messages), and makes a client's connection. keyInURL is for a vendor
// whose key travels in the URL: the base URL must hold no user info, and
// the HTTP client is a copy whose redirects stay on the base's host
// (GuardedClient). Otherwise credentials go in a header: user info is
// dropped and HTTPClient is used as it is (ClientOr). timeout bounds a
// call when HTTPClient is nil; maxBody is the vendor's body cap, used when
// MaxBody is 0.
func (c Conn) Remote(provider, env, raw string, keyInURL bool, timeout time.Duration, maxBody int64) (Remote, error) {
	u, err := ParseBaseURL(provider, env, raw, !keyInURL)
	if err != nil {
		return Remote{}, err
	}
	hc := ClientOr(c.HTTPClient, timeout)
	if keyInURL {
		hc = GuardedClient(c.HTTPClient, u, timeout)
	}
	return Remote{Base: u, HC: hc, MaxBody: cmp.Or(c.MaxBody, maxBody)}, nil
}

// The changes a refresh's delta rows carry (sink.Record.Change).
const (
	ChangeNew  = "new"  // live now, not in the base job
	ChangeLost = "lost" // in the base job, lost since
)

// Delta is how a vendor's rows are fetched as a change since a day: one
// call counts many targets' new and lost rows (the client's
// CountChanges), so an unchanged target costs nothing more, and the rows
// of a change are asked for with options of their own.
type Delta struct {
	// Endpoints are the job endpoints a refresh fetches as a delta.
	Endpoints []string
	// CountEndpoint is the price key of the counting call; CountBatch the
	// most targets it takes; MaxAge how far back the vendor counts.
	CountEndpoint string
	CountBatch    int
	MaxAge        time.Duration
	// Check refuses a job's options that a delta cannot honour.
	Check func(endpoint string, params map[string]json.RawMessage) error
	// Params returns the options that fetch the rows of one change
	// (ChangeNew, ChangeLost) since the start of day since.
	Params func(endpoint string, params map[string]json.RawMessage, change string, since time.Time) (map[string]json.RawMessage, error)
}

// Supports says whether endpoint is fetched as a delta.
func (d *Delta) Supports(endpoint string) bool {
	return d != nil && slices.Contains(d.Endpoints, endpoint)
}

// ChangeCount is how many of a target's rows are new and lost since a day.
type ChangeCount struct{ New, Lost int }
