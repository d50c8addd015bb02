// Package registry knows the four vendors by name: it builds their clients
// from the environment and mounts their sandboxes, so the programs' mains
// stay wiring only.
package registry

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"sort"
	"strings"
	"time"

	"github.com/linkharvest/linkharvest/providers"
	"github.com/linkharvest/linkharvest/providers/dataforseo"
	"github.com/linkharvest/linkharvest/providers/domaincrawler"
	"github.com/linkharvest/linkharvest/providers/domdetailer"
	"github.com/linkharvest/linkharvest/providers/sandbox"
	"github.com/linkharvest/linkharvest/providers/xovi"
)

// Client is what the pipeline needs of a vendor client.
type Client interface {
	Endpoints() []string
	Paging(endpoint string) (providers.Paging, error)
	CheckParams(endpoint string, params map[string]json.RawMessage) error
	Fetch(ctx context.Context, req providers.Request) (*providers.Page, error)
}

type vendor struct {
	// build returns a client from the environment; hc carries the shared
	// limiter and tracing.
	build func(getenv func(string) string, hc *http.Client) (Client, error)
	// spec returns a client good for describing endpoints and checking
	// options, needing no credentials (enqueue runs without them).
	spec  func() Client
	mount func(*sandbox.Server)
	// limitHeader names the response header in which the vendor states
	// the account's limit, in calls per limitPer ("" if it states none).
	limitHeader string
	limitPer    time.Duration
}

var vendors = map[string]vendor{
	dataforseo.Name: {
		build: func(getenv func(string) string, hc *http.Client) (Client, error) {
			c := dataforseo.ConfigFromEnv(getenv)
			c.HTTPClient = hc
			return dataforseo.New(c)
		},
		spec: func() Client {
			c, _ := dataforseo.New(dataforseo.Config{Login: "spec", Password: "spec", BaseURL: "http://spec.invalid"})
			return c
		},
		mount:       dataforseo.Mount,
		limitHeader: dataforseo.RateLimitHeader,
		limitPer:    dataforseo.RateLimitPer,
	},
	domdetailer.Name: {
		build: func(getenv func(string) string, hc *http.Client) (Client, error) {
			c := domdetailer.ConfigFromEnv(getenv)
			c.HTTPClient = hc
			return domdetailer.New(c)
		},
		spec: func() Client {
			c, _ := domdetailer.New(domdetailer.Config{APIKey: "spec", App: "spec", BaseURL: "http://spec.invalid"})
			return c
		},
		mount: domdetailer.Mount,
	},
	xovi.Name: {
		build: func(getenv func(string) string, hc *http.Client) (Client, error) {
			c := xovi.ConfigFromEnv(getenv)
			c.HTTPClient = hc
			return xovi.New(c)
		},
		spec: func() Client {
			c, _ := xovi.New(xovi.Config{Key: "spec", BaseURL: "http://spec.invalid"})
			return c
		},
		mount: xovi.Mount,
	},
	domaincrawler.Name: {
		build: func(getenv func(string) string, hc *http.Client) (Client, error) {
			c := domaincrawler.ConfigFromEnv(getenv)
			c.HTTPClient = hc
			return domaincrawler.New(c)
		},
		spec: func() Client {
			c, _ := domaincrawler.New(domaincrawler.Config{User: "spec", Password: "spec", BaseURL: "http://spec.invalid"})
			return c
		},
		mount: domaincrawler.Mount,
	},
}

// Names lists the vendors.
func Names() []string {
	out := make([]string, 0, len(vendors))
	for n := range vendors {
		out = append(out, n)
	}
	sort.Strings(out)
	return out
}

// New builds a vendor's client from the environment.
func New(name string, getenv func(string) string, hc *http.Client) (Client, error) {
	v, ok := vendors[name]
	if !ok {
		return nil, fmt.Errorf("unknown provider %q (known: %s)", name, strings.Join(Names(), ", "))
	}
	c, err := v.build(getenv, hc)
	if err != nil {
		return nil, fmt.Errorf("provider %s: %w", name, err)
	}
	return c, nil
}

// AccountLimitHeader names the response header in which a vendor states
// its account's limit, and that limit's period; "" if it states none.
func AccountLimitHeader(name string) (string, time.Duration) {
	v := vendors[name]
	return v.limitHeader, v.limitPer
}

// Describe returns a client for checking a provider's endpoints and
// options without credentials.
func Describe(name string) (Client, error) {
	v, ok := vendors[name]
	if !ok {
		return nil, fmt.Errorf("unknown provider %q (known: %s)", name, strings.Join(Names(), ", "))
	}
	return v.spec(), nil
}

// Sandbox returns a sandbox server with every vendor mounted.
func Sandbox(opts sandbox.Options) *sandbox.Server {
	s := sandbox.New(opts)
	for _, n := range Names() {
		vendors[n].mount(s)
	}
	return s
}

// SandboxEnv is the environment that points every client at a sandbox
// at baseURL, with placeholder credentials where none are set.
func SandboxEnv(baseURL string) map[string]string {
	return map[string]string{
		"DATAFORSEO_BASE_URL":    baseURL,
		"DATAFORSEO_LOGIN":       "sandbox",
		"DATAFORSEO_PASSWORD":    "sandbox",
		"DOMDETAILER_BASE_URL":   baseURL,
		"DOMDETAILER_APIKEY":     "sandbox",
		"DOMDETAILER_APP":        "linkharvest",
		"XOVI_BASE_URL":          baseURL,
		"XOVI_KEY":               "sandbox",
		"DOMAINCRAWLER_BASE_URL": baseURL,
		"DOMAINCRAWLER_USER":     "sandbox",
		"DOMAINCRAWLER_PASSWORD": "sandbox",
	}
}
