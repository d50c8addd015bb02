package spend

import (
	"math"
	"strings"
	"testing"
)

func TestDefaults(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		provider, endpoint string
		rows               int
		want               float64
		unit               string
	}{
		{"dataforseo", "backlinks", 5, 0.02015, USD}, // the vendor's own example
		{"dataforseo", "backlinks", 1000, 0.05, USD},
		{"dataforseo", "bulk_backlinks", 120, 0.0236, USD}, // a count a target
		{"domdetailer", "backlinks", 5000, 3, Credits},
		{"xovi", "backlinks", 1000, 1, Calls},
		{"domaincrawler", "exportbacklinks", 10000, 1, Calls},
	} {
		p := PriceOf(tc.provider, tc.endpoint)
		if got := p.For(tc.rows); math.Abs(got-tc.want) > 1e-12 || p.Unit != tc.unit {
			t.Errorf("%s %s %d rows: %v %s, want %v %s", tc.provider, tc.endpoint, tc.rows, got, p.Unit, tc.want, tc.unit)
		}
	}
	if PriceOf("nosuch", "x") != (Price{}) {
		t.Error("an unknown provider has a price")
	}
	// An override of the provider or of the endpoint reaches the bulk price.
	for spec, want := range map[string]float64{"dataforseo=0.03": 0.03, "dataforseo.bulk_backlinks=0.01+0.0001/row": 0.02} {
		tab, err := Parse(spec)
		if err != nil {
			t.Fatal(err)
		}
		if got := tab.Price("dataforseo", "bulk_backlinks").For(100); math.Abs(got-want) > 1e-12 {
			t.Errorf("%s: bulk_backlinks for 100 targets costs %v, want %v", spec, got, want)
		}
	}
}

func TestParse(t *testing.T) {
	t.Parallel()
	tb, err := Parse(" dataforseo=0.03+0.0001/row , dataforseo.summary=0.01, domdetailer=2.5 ")
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		provider, endpoint string
		want               Price
	}{
		{"dataforseo", "backlinks", Price{Request: 0.03, Row: 0.0001, Unit: USD, Reported: true}},
		{"dataforseo", "summary", Price{Request: 0.01, Unit: USD, Reported: true}},
		{"domdetailer", "backlinks", Price{Request: 2.5, Unit: Credits}},
		{"xovi", "backlinks", Price{Request: 1, Unit: Calls}}, // not overridden: the default
	} {
		if got := tb.Price(tc.provider, tc.endpoint); got != tc.want {
			t.Errorf("%s.%s: %+v, want %+v", tc.provider, tc.endpoint, got, tc.want)
		}
	}
	if tb, err := Parse(""); err != nil || tb.Price("dataforseo", "backlinks") != PriceOf("dataforseo", "backlinks") {
		t.Errorf("empty: %v", err)
	}
	for _, bad := range []string{
		"dataforsoe=1", "dataforseo", "=1", "dataforseo=", "dataforseo=abc", "dataforseo=-1",
		"dataforseo=1+2", "dataforseo=1+x/row", "dataforseo=NaN", "dataforseo=Inf", "dataforseo.=1",
		"xovi=1,xovi=2",
	} {
		if _, err := Parse(bad); err == nil {
			t.Errorf("%q: accepted", bad)
		} else if !strings.Contains(err.Error(), bad[:min(len(bad), 4)]) {
			t.Errorf("%q: error %v does not name the entry", bad, err)
		}
	}
}

func TestNano(t *testing.T) {
	t.Parallel()
	for _, f := range []float64{0, 0.00003, 0.02015, 0.05, 3, 25} {
		if got := FromNano(ToNano(f)); math.Abs(got-f) > 1e-9 {
			t.Errorf("%v -> %v", f, got)
		}
	}
	if ToNano(0.05) != 50_000_000 || ToNano(0.02+0.00003*1000) != 50_000_000 {
		t.Errorf("0.05 is %d nano", ToNano(0.05))
	}
}
