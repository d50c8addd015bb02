// Package registry is the list of vendors: every program, the limiter's
// defaults, the redaction of spans and the tests read it, and none keeps
// a list of its own. Adding a vendor is a new package under providers/
// exporting its providers.Vendor, and one line in Vendors.
package registry

import (
	"fmt"
	"net/http"
	"strings"

	"github.com/linkharvest/linkharvest/providers"
	"github.com/linkharvest/linkharvest/providers/dataforseo"
	"github.com/linkharvest/linkharvest/providers/domaincrawler"
	"github.com/linkharvest/linkharvest/providers/domdetailer"
	"github.com/linkharvest/linkharvest/providers/sandbox"
	"github.com/linkharvest/linkharvest/providers/xovi"
)

// Vendors are the vendors, sorted by name.
var Vendors = []providers.Vendor{
	dataforseo.Vendor,
	domaincrawler.Vendor,
	domdetailer.Vendor,
	xovi.Vendor,
}

// Client is what the pipeline needs of a vendor client.
type Client = providers.Client

// Names lists the vendors' names, sorted.
func Names() []string {
	out := make([]string, len(Vendors))
	for i, v := range Vendors {
		out[i] = v.Name
	}
	return out
}

// Lookup returns the vendor called name.
func Lookup(name string) (providers.Vendor, error) {
	for _, v := range Vendors {
		if v.Name == name {
			return v, nil
		}
	}
	return providers.Vendor{}, fmt.Errorf("unknown provider %q (known: %s)", name, strings.Join(Names(), ", "))
}

// New builds a vendor's client from the environment.
func New(name string, getenv func(string) string, hc *http.Client) (Client, error) {
	v, err := Lookup(name)
	if err != nil {
		return nil, err
	}
	c, err := v.FromEnv(getenv, hc)
	if err != nil {
		return nil, fmt.Errorf("provider %s: %w", name, err)
	}
	return c, nil
}

// Describe returns a vendor's description, for checking its endpoints
// and options without credentials.
func Describe(name string) (providers.Vendor, error) { return Lookup(name) }

// Sandbox returns a sandbox server with every vendor mounted.
func Sandbox(opts sandbox.Options) *sandbox.Server {
	s := sandbox.New(opts)
	for _, v := range Vendors {
		v.Mount(s)
	}
	return s
}

// SandboxEnv is the environment that points every client at a sandbox
// at baseURL, with placeholder credentials.
func SandboxEnv(baseURL string) map[string]string {
	env := map[string]string{}
	for _, v := range Vendors {
		env[v.Env.BaseURL] = baseURL
		for k, val := range v.Env.Sandbox {
			env[k] = val
		}
	}
	return env
}

// BaseURLVars names every vendor's base-URL variable.
func BaseURLVars() []string {
	out := make([]string, len(Vendors))
	for i, v := range Vendors {
		out[i] = v.Env.BaseURL
	}
	return out
}

// SecretVars names every vendor's secret variables.
func SecretVars() []string {
	var out []string
	for _, v := range Vendors {
		out = append(out, v.Env.Secrets...)
	}
	return out
}
