package domdetailer

import (
	"net/http"

	"github.com/linkharvest/linkharvest/providers"
)

// Vendor describes DomDetailer to the rest of the system.
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
		BaseURL: "DOMDETAILER_BASE_URL",
		Account: []string{"DOMDETAILER_APIKEY", "DOMDETAILER_APP"},
		Secrets: []string{"DOMDETAILER_APIKEY"},
		Sandbox: map[string]string{"DOMDETAILER_APIKEY": "sandbox", "DOMDETAILER_APP": "linkharvest"},
	},
	// No limits are published: the account's 429s are the only signal.
	Prices: []providers.Price{{Unit: providers.UnitCredits, PerCall: CreditsPerCall}},
	Mount:  Mount,
}
