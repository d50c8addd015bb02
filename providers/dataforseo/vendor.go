package dataforseo

import (
	"time"

	"github.com/linkharvest/linkharvest/providers"
)

// price is from the vendor's example answer (cost 0.02015 for 5 rows):
// 0.02 USD a request and 0.00003 a row, the other endpoints priced alike;
// the answer's cost field is what was charged. The sandbox charges it.
var price = providers.Price{Unit: providers.UnitUSD, PerCall: 0.02, PerRow: 0.00003, Reported: true}

// bulkPrice is backlinks/bulk_backlinks/live's (the estimate's counts):
// priced like the other endpoints, 0.02 a request plus a small amount a
// row, one row a target; the amount a row is not stated for this
// endpoint, so the backlinks row price stands in, and the answer's cost
// is what the estimate reports.
var bulkPrice = providers.Price{Endpoint: BulkBacklinksEndpoint, Unit: providers.UnitUSD, PerCall: 0.02, PerRow: 0.00003, Reported: true}

// newLostPrice is backlinks/bulk_new_lost_backlinks/live's, one row a
// target, priced like bulk_backlinks: the amount a row is assumed, not
// stated for this endpoint; the answer's cost is what was charged.
var newLostPrice = providers.Price{Endpoint: BulkNewLostEndpoint, Unit: providers.UnitUSD, PerCall: 0.02, PerRow: 0.00003, Reported: true}

// Vendor describes DataForSEO to the rest of the system.
var Vendor = providers.Vendor{
	Name: Name, Endpoints: endpointNames(), Paging: paging, CheckParams: checkParams,
	FromEnv: providers.FromEnv(ConfigFromEnv, New),
	Env: providers.Env{BaseURL: "DATAFORSEO_BASE_URL",
		Account: []string{"DATAFORSEO_LOGIN", "DATAFORSEO_PASSWORD"}, Secrets: []string{"DATAFORSEO_PASSWORD"},
		Sandbox: map[string]string{"DATAFORSEO_LOGIN": "sandbox", "DATAFORSEO_PASSWORD": "sandbox"}},
	// The published general limit is 2000 calls a minute, 30 at once;
	// every answer states the account's own.
	Limits: providers.Limits{Rate: 2000, Period: time.Minute, InFlight: 30, Header: RateLimitHeader, HeaderPer: RateLimitPer},
	Prices: []providers.Price{price, bulkPrice, newLostPrice},
	// bulk_new_lost_backlinks counts; first_seen filters and lost rows.
	ChangeSignals: []providers.ChangeSignal{providers.ChangeCounts, providers.ChangeRows},
	Delta:         delta,
	Mount:         Mount,
}
