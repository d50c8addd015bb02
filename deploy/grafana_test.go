package deploy

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"reflect"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus/promhttp"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"

	"github.com/linkharvest/linkharvest/internal/telemetry"
)

// exportedMetrics starts the worker's meter provider with its Prometheus
// exporter in this process, records one value on every instrument
// internal/telemetry defines (the struct's fields, found by reflection, so
// a new instrument is covered without editing this test) and on its
// observable gauges, scrapes the handler the worker serves on /metrics and
// returns the series names it exposes.
func exportedMetrics(t *testing.T) map[string]bool {
	t.Helper()
	ctx := context.Background()
	t.Setenv("OTEL_TRACES_EXPORTER", "none")
	shutdown, err := telemetry.Setup(ctx, "linkharvest-dashboard-test")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = shutdown(ctx) })
	attrs := metric.WithAttributes(attribute.String("provider", "dataforseo"))
	m := reflect.ValueOf(telemetry.M()).Elem()
	for i := range m.NumField() {
		switch inst := m.Field(i).Interface().(type) {
		case metric.Int64Counter:
			inst.Add(ctx, 1, attrs)
		case metric.Float64Counter:
			inst.Add(ctx, 1, attrs)
		case metric.Int64Histogram:
			inst.Record(ctx, 1, attrs)
		case metric.Float64Histogram:
			inst.Record(ctx, 1, attrs)
		case metric.Int64UpDownCounter:
			inst.Add(ctx, 1, attrs)
		case metric.Float64UpDownCounter:
			inst.Add(ctx, 1, attrs)
		default:
			t.Fatalf("telemetry.Metrics.%s is a %T: teach this test to record on it", m.Type().Field(i).Name, inst)
		}
	}
	if err := telemetry.Stash(func(context.Context) (int64, int64, error) { return 1, 1, nil }); err != nil {
		t.Fatal(err)
	}
	if err := telemetry.QueueDepth(func(context.Context) (map[string]map[string]int64, error) {
		return map[string]map[string]int64{"dataforseo": {"pending": 1}}, nil
	}); err != nil {
		t.Fatal(err)
	}
	if err := telemetry.AccountLimits(func() map[string]float64 { return map[string]float64{"dataforseo": 2000} }); err != nil {
		t.Fatal(err)
	}
	rec := httptest.NewRecorder()
	promhttp.Handler().ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/metrics", nil))
	names := map[string]bool{}
	for _, line := range strings.Split(rec.Body.String(), "\n") {
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		if i := strings.IndexAny(line, "{ "); i > 0 {
			names[line[:i]] = true
		}
	}
	return names
}

// family is a series name without the suffixes a histogram or a counter
// adds, so that a metric counts as shown whichever of its series a query uses.
func family(name string) string {
	for _, s := range []string{"_bucket", "_sum", "_count"} {
		if n, ok := strings.CutSuffix(name, s); ok {
			return n
		}
	}
	return name
}

var identRE = regexp.MustCompile(`[A-Za-z_:][A-Za-z0-9_:]*`)

// TestGrafanaDashboard: every query of deploy/grafana/linkharvest.json
// names at least one of our metrics and only metrics the worker exports
// (a renamed or mistyped metric fails), every metric the worker exports
// has a panel, and the dashboard draws what operators watch.
func TestGrafanaDashboard(t *testing.T) {
	raw, err := os.ReadFile("grafana/linkharvest.json")
	if err != nil {
		t.Fatal(err)
	}
	var dash struct {
		UID    string `json:"uid"`
		Panels []struct {
			Title   string `json:"title"`
			Targets []struct {
				Expr string `json:"expr"`
			} `json:"targets"`
		} `json:"panels"`
	}
	if err := json.Unmarshal(raw, &dash); err != nil {
		t.Fatalf("the dashboard is not JSON: %v", err)
	}
	if dash.UID == "" || len(dash.Panels) == 0 {
		t.Fatalf("the dashboard has no uid or no panels")
	}
	exported := exportedMetrics(t)
	ours := map[string]bool{} // families of the metrics we define
	for n := range exported {
		if strings.HasPrefix(n, "linkharvest_") {
			ours[family(n)] = true
		}
	}
	if len(ours) < 10 {
		t.Fatalf("only %d linkharvest metrics scraped: %v", len(ours), ours)
	}
	shown := map[string]bool{}
	for _, p := range dash.Panels {
		if len(p.Targets) == 0 {
			t.Errorf("panel %q has no query", p.Title)
		}
		for _, tg := range p.Targets {
			named := 0
			for _, id := range identRE.FindAllString(tg.Expr, -1) {
				if !strings.HasPrefix(id, "linkharvest") {
					continue // functions, keywords, labels, Grafana's variables
				}
				named++
				if !exported[id] {
					t.Errorf("panel %q: %s is not a metric the worker exports (query %s)", p.Title, id, tg.Expr)
				}
				shown[family(id)] = true
			}
			if named == 0 {
				t.Errorf("panel %q: the query %q names none of our metrics", p.Title, tg.Expr)
			}
		}
	}
	for _, n := range slices.Sorted(func(yield func(string) bool) {
		for n := range ours {
			if !yield(n) {
				return
			}
		}
	}) {
		if !shown[n] {
			t.Errorf("the worker exports %s, and no panel shows it", n)
		}
	}
	for _, want := range []string{"linkharvest_vendor_calls_total", "linkharvest_limiter_limit", "linkharvest_vendor_throttles_total",
		"linkharvest_spend_total", "linkharvest_queue_depth", "linkharvest_task_duration_seconds", "linkharvest_stash_pages"} {
		if !shown[want] {
			t.Errorf("the dashboard does not show %s", want)
		}
	}
}
