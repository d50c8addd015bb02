package xovi

import (
	"net/http"

	"github.com/linkharvest/linkharvest/providers"
)

// Vendor describes XOVI to the rest of the system.
var Vendor = providers.Vendor{
	Name:        Name,
	Endpoints:   []string{EndpointBacklinks},
	Paging:      paging,
	CheckParams: checkParams,
	FromEnv: func(getenv func(string) string, hc *http.Client) (providers.Client, error) {
		cfg := ConfigFromEnv(getenv)
		cfg.HTTPClient = hc
		c, err := New(cfg)
		if err != nil {
			return nil, err
		}
		return c, nil
	},
	Env: providers.Env{
		BaseURL: "XOVI_BASE_URL",
		Account: []string{"XOVI_KEY"},
		Secrets: []string{"XOVI_KEY"},
		Sandbox: map[string]string{"XOVI_KEY": "sandbox"},
	},
	// No limits are published. A call is billed against the account's
	// quota of calls (see DefaultCreditsPerCall).
	Prices: []providers.Price{{Unit: providers.UnitCalls, PerCall: DefaultCreditsPerCall}},
	Mount:  Mount,
}
