package runner

import (
	"time"

	"github.com/linkharvest/linkharvest/limiter"
	"github.com/linkharvest/linkharvest/providers/registry"
)

// What a worker takes from the vendors' descriptions (providers/registry).

// defaultLimits are the vendors' published limits, used where --limit
// does not name the vendor.
func defaultLimits() map[string]limiter.Limit {
	out := map[string]limiter.Limit{}
	for _, v := range registry.Vendors {
		if l := v.Limits; l.Rate > 0 || l.InFlight > 0 {
			out[v.Name] = limiter.Limit{Rate: l.Rate, Period: l.Period, InFlight: l.InFlight}
		}
	}
	return out
}

// accountLimitHeader names the response header in which a vendor states
// its account's limit, and that limit's period; "" if it states none.
func accountLimitHeader(provider string) (string, time.Duration) {
	v, _ := registry.Lookup(provider)
	return v.Limits.Header, v.Limits.HeaderPer
}

// secrets are a provider's credential values, kept out of spans.
func secrets(provider string, getenv func(string) string) []string {
	v, err := registry.Lookup(provider)
	if err != nil {
		return nil
	}
	return v.SecretValues(getenv)
}

// endpoints are a provider's endpoint names.
func endpoints(provider string) []string {
	v, _ := registry.Lookup(provider)
	return v.Endpoints
}
