package domdetailer

import "github.com/linkharvest/linkharvest/providers"

// price is the documented 3 credits a call, whatever it returns; the
// sandbox charges it.
var price = providers.Price{Unit: providers.UnitCredits, PerCall: CreditsPerCall}

// Vendor describes DomDetailer to the rest of the system. It publishes
// no limits (its 429s are the only signal) and no way to tell changes.
var Vendor = providers.Vendor{
	Name: Name, Endpoints: []string{EndpointBacklinks}, Paging: paging, CheckParams: checkParams,
	FromEnv: providers.FromEnv(ConfigFromEnv, New),
	// The app names the integration to the vendor; it is not a secret.
	Env: providers.Env{BaseURL: "DOMDETAILER_BASE_URL",
		Account: []string{"DOMDETAILER_APIKEY", "DOMDETAILER_APP"}, Secrets: []string{"DOMDETAILER_APIKEY"},
		Sandbox: map[string]string{"DOMDETAILER_APIKEY": "sandbox", "DOMDETAILER_APP": "linkharvest"}},
	Prices: []providers.Price{price},
	Mount:  Mount,
}
