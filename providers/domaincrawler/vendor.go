package domaincrawler

import (
	"net/http"

	"github.com/linkharvest/linkharvest/providers"
)

// Vendor describes DomainCrawler to the rest of the system.
var Vendor = providers.Vendor{
	Name:        Name,
	Endpoints:   names(),
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
		BaseURL: "DOMAINCRAWLER_BASE_URL",
		Account: []string{"DOMAINCRAWLER_USER", "DOMAINCRAWLER_PASSWORD"},
		Secrets: []string{"DOMAINCRAWLER_PASSWORD"},
		Sandbox: map[string]string{"DOMAINCRAWLER_USER": "sandbox", "DOMAINCRAWLER_PASSWORD": "sandbox"},
	},
	// No limits are published. A call is billed against the account's
	// quota of calls.
	Prices:        []providers.Price{{Unit: providers.UnitCalls, PerCall: 1}},
	ChangeSignals: []providers.ChangeSignal{providers.ChangeHistogram},
	Mount:         Mount,
}
