// Package spend holds what a vendor call costs: the price of each
// provider's endpoints in the unit the vendor bills in, overridable by
// PROVIDER_PRICES. It is the one place the workers (the ledger and the
// budget), the sandbox and the estimate read prices from.
package spend

import (
	"fmt"
	"math"
	"strconv"
	"strings"

	"github.com/linkharvest/linkharvest/providers"
	"github.com/linkharvest/linkharvest/providers/registry"
)

// Units, as budgets and the ledger state them.
const (
	USD     = providers.UnitUSD     // DataForSEO: what its answers' cost reports
	Credits = providers.UnitCredits // DomDetailer: 3 a call
	Calls   = providers.UnitCalls   // XOVI and DomainCrawler: no price in the vendors' documentation
)

// Price is what one call costs: Request a call plus Row a returned row.
type Price struct {
	Request float64
	Row     float64
	Unit    string
	// Reported: the vendor's answer states what it charged (DataForSEO's
	// cost); the ledger records that, not the price.
	Reported bool
}

// At is the most a call asking for limit rows can cost.
func (p Price) At(limit int) float64 { return p.Request + p.Row*float64(max(limit, 1)) }

// For is what a call that returned rows rows costs.
func (p Price) For(rows int) float64 { return p.Request + p.Row*float64(rows) }

func (p Price) String() string {
	s := strconv.FormatFloat(p.Request, 'f', -1, 64)
	if p.Row != 0 {
		s += "+" + strconv.FormatFloat(p.Row, 'f', -1, 64) + "/row"
	}
	return s + " " + p.Unit
}

// defaults are the vendors' documented prices, as their descriptors
// state them (providers.Vendor.Prices: DataForSEO 0.02 USD a request and
// 0.00003 a row, DomDetailer 3 credits a call, XOVI and DomainCrawler a
// call each), keyed "provider" and, for an endpoint priced on its own,
// "provider.endpoint".
var defaults = func() map[string]Price {
	out := map[string]Price{}
	for _, v := range registry.Vendors {
		for _, p := range v.Prices {
			key := v.Name
			if p.Endpoint != "" {
				key += "." + p.Endpoint
			}
			out[key] = Price{Request: p.PerCall, Row: p.PerRow, Unit: p.Unit, Reported: p.Reported}
		}
	}
	return out
}()

// Table is the prices in force: the defaults with overrides per provider
// or per provider and endpoint. The zero Table is the defaults.
type Table struct {
	over map[string]Price // "provider" or "provider.endpoint"
}

// Default is the vendors' documented prices.
func Default() Table { return Table{} }

// Price is what a call to provider's endpoint costs (zero for an unknown
// provider: no unit, nothing to hold a budget in).
func (t Table) Price(provider, endpoint string) Price {
	if p, ok := t.over[provider+"."+endpoint]; ok {
		return p
	}
	if p, ok := t.over[provider]; ok {
		return p
	}
	if p, ok := defaults[provider+"."+endpoint]; ok {
		return p
	}
	return defaults[provider]
}

// Unit is the unit provider's calls are billed in.
func (t Table) Unit(provider string) string { return defaults[provider].Unit }

// Known reports whether provider has a price.
func Known(provider string) bool { _, ok := defaults[provider]; return ok }

// Providers lists the providers with a price.
func Providers() []string {
	var out []string
	for _, n := range registry.Names() { // sorted
		if Known(n) {
			out = append(out, n)
		}
	}
	return out
}

// PriceOf is the documented price of a call to provider's endpoint.
func PriceOf(provider, endpoint string) Price { return Default().Price(provider, endpoint) }

// Parse reads PROVIDER_PRICES: comma-separated provider[.endpoint]=REQUEST
// or REQUEST+ROW/row, in the provider's unit, e.g.
// "dataforseo=0.02+0.00003/row,domdetailer=3,xovi.backlinks=2". An unknown
// provider, a number that does not parse, a negative price or an entry
// given twice is an error: a typo must not bill at the default.
func Parse(s string) (Table, error) {
	t := Table{over: map[string]Price{}}
	for _, entry := range strings.Split(s, ",") {
		entry = strings.TrimSpace(entry)
		if entry == "" {
			continue
		}
		name, val, ok := strings.Cut(entry, "=")
		name = strings.ToLower(strings.TrimSpace(name))
		if !ok || name == "" {
			return Table{}, fmt.Errorf("%q: want provider[.endpoint]=PRICE, e.g. dataforseo=0.02+0.00003/row", entry)
		}
		prov, ep, _ := strings.Cut(name, ".")
		def, known := defaults[prov]
		if !known {
			return Table{}, fmt.Errorf("%q: unknown provider %q (known: %s)", entry, prov, strings.Join(Providers(), ", "))
		}
		if ep == "" && strings.Contains(name, ".") {
			return Table{}, fmt.Errorf("%q: empty endpoint", entry)
		}
		if _, dup := t.over[name]; dup {
			return Table{}, fmt.Errorf("%q: %s is priced twice", entry, name)
		}
		p := Price{Unit: def.Unit, Reported: def.Reported}
		req, row, hasRow := strings.Cut(strings.TrimSpace(val), "+")
		var err error
		if p.Request, err = amount(req); err != nil {
			return Table{}, fmt.Errorf("%q: price a request: %w", entry, err)
		}
		if hasRow {
			r, ok := strings.CutSuffix(strings.TrimSpace(row), "/row")
			if !ok {
				return Table{}, fmt.Errorf("%q: the second part is a price a row: write it as N/row", entry)
			}
			if p.Row, err = amount(r); err != nil {
				return Table{}, fmt.Errorf("%q: price a row: %w", entry, err)
			}
		}
		t.over[name] = p
	}
	return t, nil
}

// ParseAmount reads a non-negative finite amount.
func ParseAmount(s string) (float64, error) { return amount(s) }

func amount(s string) (float64, error) {
	s = strings.TrimSpace(s)
	f, err := strconv.ParseFloat(s, 64)
	if err != nil || math.IsNaN(f) || math.IsInf(f, 0) {
		return 0, fmt.Errorf("%q is not a number", s)
	}
	if f < 0 {
		return 0, fmt.Errorf("%q is negative", s)
	}
	return f, nil
}

// Nano is the fixed point the budget keeps amounts in (a billionth of the
// unit): sums of integers stay exact where sums of floats drift.
const Nano = 1e9

// ToNano converts an amount to billionths, rounding up (a reservation or a
// charge never shrinks by rounding).
func ToNano(f float64) int64 { return int64(math.Ceil(f*Nano - 1e-6)) }

// FromNano converts billionths back.
func FromNano(n int64) float64 { return float64(n) / Nano }
