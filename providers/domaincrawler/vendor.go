package domaincrawler

import "github.com/linkharvest/linkharvest/providers"

// price: DomainCrawler documents no price for these calls, so a call is
// the unit; the sandbox charges it.
var price = providers.Price{Unit: providers.UnitCalls, PerCall: 1}

// Vendor describes DomainCrawler to the rest of the system. It
// publishes no limits and signals no throttle; a call is billed against
// the account's quota of calls.
var Vendor = providers.Vendor{
	Name: Name, Endpoints: names(), Paging: paging, CheckParams: checkParams,
	FromEnv: providers.FromEnv(ConfigFromEnv, New),
	Env: providers.Env{BaseURL: "DOMAINCRAWLER_BASE_URL",
		Account: []string{"DOMAINCRAWLER_USER", "DOMAINCRAWLER_PASSWORD"}, Secrets: []string{"DOMAINCRAWLER_PASSWORD"},
		Sandbox: map[string]string{"DOMAINCRAWLER_USER": "sandbox", "DOMAINCRAWLER_PASSWORD": "sandbox"}},
	Prices: []providers.Price{price},
	// newandlost-histogram counts new and lost links per day.
	ChangeSignals: []providers.ChangeSignal{providers.ChangeHistogram},
	Mount:         Mount,
}
