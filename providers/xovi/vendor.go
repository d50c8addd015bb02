package xovi

import "github.com/linkharvest/linkharvest/providers"

// price: XOVI documents no price for these calls, so a call is the unit;
// the sandbox charges it.
var price = providers.Price{Unit: providers.UnitCalls, PerCall: DefaultCreditsPerCall}

// Vendor describes XOVI to the rest of the system. It publishes no
// limits and signals no throttle; a call is billed against the account's
// quota (see DefaultCreditsPerCall).
var Vendor = providers.Vendor{
	Name: Name, Endpoints: []string{EndpointBacklinks}, Paging: paging, CheckParams: checkParams,
	FromEnv: providers.FromEnv(ConfigFromEnv, New),
	Env: providers.Env{BaseURL: "XOVI_BASE_URL", Account: []string{"XOVI_KEY"}, Secrets: []string{"XOVI_KEY"},
		Sandbox: map[string]string{"XOVI_KEY": "sandbox"}},
	Prices: []providers.Price{price},
	Mount:  Mount,
}
