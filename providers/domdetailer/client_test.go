package domdetailer

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/linkharvest/linkharvest/providers"
	"github.com/linkharvest/linkharvest/providers/providertest"
)

// testKey has characters that URLs escape, so that every escaped form of
// the key is checked for leaks too.
const testKey = "k3y/Secret+&=x"

func newClient(t testing.TB, base string) *Client {
	t.Helper()
	c, err := New(Config{APIKey: testKey, App: "linkharvest", BaseURL: base})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func show(p *string) string {
	if p == nil {
		return "<nil>"
	}
	return fmt.Sprintf("%q", *p)
}

func boolp(p *bool) string {
	if p == nil {
		return "<nil>"
	}
	return fmt.Sprint(*p)
}

// want is a normalised backlink.
type want struct {
	source, target, anchor, title *string
	nofollow                      *bool
}

func checkBacklink(t *testing.T, i int, it providers.Item, w want) {
	t.Helper()
	if it.Kind != KindBacklink {
		t.Errorf("item %d: kind %q, want backlink", i, it.Kind)
	}
	for _, f := range []struct {
		name      string
		got, want *string
	}{{"source_url", it.SourceURL, w.source}, {"target_url", it.TargetURL, w.target}, {"anchor", it.Anchor, w.anchor}, {"source_title", it.SourceTitle, w.title}} {
		if show(f.got) != show(f.want) {
			t.Errorf("item %d: %s = %s, want %s", i, f.name, show(f.got), show(f.want))
		}
	}
	if boolp(it.Nofollow) != boolp(w.nofollow) {
		t.Errorf("item %d: nofollow = %s, want %s", i, boolp(it.Nofollow), boolp(w.nofollow))
	}
}

// rawMembers returns the verbatim bytes of each element of a JSON array
// member of the object in body.
func rawMembers(t *testing.T, body []byte, member string) []json.RawMessage {
	t.Helper()
	var env map[string]json.RawMessage
	if err := json.Unmarshal(body, &env); err != nil {
		t.Fatal(err)
	}
	var out []json.RawMessage
	if err := json.Unmarshal(env[member], &out); err != nil {
		t.Fatal(err)
	}
	return out
}

// TestContractExample replays the seed's example response through Fetch.
func TestContractExample(t *testing.T) {
	t.Parallel()
	body := providertest.Testdata(t, "example.json")
	srv, reqs := providertest.Serve(t, 200, map[string]string{"Content-Type": "application/json"}, body)
	c := newClient(t, srv.URL)
	page, err := c.Fetch(context.Background(), providers.Request{Endpoint: "backlinks", Domain: "domdetailer.com", Page: 1})
	if err != nil {
		t.Fatal(err)
	}

	// The request as documented.
	r := (*reqs)[0]
	if r.Method != http.MethodGet || r.URL.Path != "/api2/getBacklinks.php" {
		t.Errorf("request %s %s", r.Method, r.URL.Path)
	}
	q := r.URL.Query()
	if q.Get("apikey") != testKey || q.Get("app") != "linkharvest" || q.Get("domain") != "domdetailer.com" || q.Has("onePerDomain") {
		t.Errorf("query %v", q)
	}

	if page.Total != 2 || page.Cost != 3 || page.CostUnit != "credits" || page.Next != "" {
		t.Errorf("page total %d cost %v %s next %q; want 2, 3 credits, no next", page.Total, page.Cost, page.CostUnit, page.Next)
	}
	if len(page.Items) != 3 {
		t.Fatalf("%d items, want metrics + 2 backlinks", len(page.Items))
	}

	// The metrics summary: first, verbatim.
	var env map[string]json.RawMessage
	if err := json.Unmarshal(body, &env); err != nil {
		t.Fatal(err)
	}
	m := page.Items[0]
	if m.Kind != KindMetrics || !bytes.Equal(m.Raw, env["metrics"]) {
		t.Errorf("first item %q %s, want metrics %s", m.Kind, m.Raw, env["metrics"])
	}
	if m.SourceURL != nil || m.TargetURL != nil || m.Anchor != nil || m.Nofollow != nil || m.SourceTitle != nil {
		t.Errorf("metrics item has backlink fields: %+v", m)
	}
	if !bytes.Contains(body, m.Raw) {
		t.Errorf("metrics raw is not the vendor's bytes")
	}

	s := providers.Str
	wants := []want{
		{source: s("https://bestfew.com/elementor-test/"), target: s("https://domdetailer.com/"), anchor: s("Domdetailer.com"),
			title: s("Domdetailer.com"), nofollow: providers.Bool(true)},
		{source: s("https://docu.gsa-online.de/proxy_scraper/url_metrics?bootswatch-theme=paper"), target: s("https://domdetailer.com/"),
			anchor: s("DomDetailer Homepage"), title: s("https://domdetailer.com/"), nofollow: providers.Bool(false)},
	}
	raws := rawMembers(t, body, "backlinks")
	for i, w := range wants {
		it := page.Items[i+1]
		checkBacklink(t, i+1, it, w)
		if !bytes.Equal(it.Raw, raws[i]) || !bytes.Contains(body, it.Raw) {
			t.Errorf("item %d raw is not verbatim: %s", i+1, it.Raw)
		}
	}
}

// TestContractAnchorFallback: an empty or missing anchor falls back to
// the title, as the docs prescribe; nf may come as a string.
func TestContractAnchorFallback(t *testing.T) {
	t.Parallel()
	body := providertest.Testdata(t, "example_empty_anchor.json")
	srv, _ := providertest.Serve(t, 200, nil, body)
	page, err := newClient(t, srv.URL).Fetch(context.Background(), providers.Request{Endpoint: "backlinks", Domain: "domdetailer.com"})
	if err != nil {
		t.Fatal(err)
	}
	s := providers.Str
	wants := []want{
		{source: s("https://bestfew.com/elementor-test/"), target: s("https://domdetailer.com/"), anchor: s("Domdetailer.com"),
			title: s("Domdetailer.com"), nofollow: providers.Bool(true)},
		{source: s("https://docu.gsa-online.de/proxy_scraper/url_metrics?bootswatch-theme=paper"), target: s("https://domdetailer.com/"),
			anchor: s("https://domdetailer.com/"), title: s("https://domdetailer.com/"), nofollow: providers.Bool(false)},
		// Both empty: the vendor's (blank) anchor is kept.
		{source: s("https://example.org/empty-title/"), target: s("https://domdetailer.com/blog/"), anchor: s("   "),
			title: s(""), nofollow: providers.Bool(true)},
	}
	if len(page.Items) != 1+len(wants) || page.Total != len(wants) {
		t.Fatalf("%d items, total %d", len(page.Items), page.Total)
	}
	for i, w := range wants {
		checkBacklink(t, i+1, page.Items[i+1], w)
	}
}

func TestOnePerDomainParam(t *testing.T) {
	t.Parallel()
	srv, reqs := providertest.Serve(t, 200, nil, providertest.Testdata(t, "example.json"))
	c := newClient(t, srv.URL)
	for _, tc := range []struct {
		raw  string
		want bool
	}{{`1`, true}, {`true`, true}, {`"1"`, true}, {`0`, false}, {`false`, false}, {`"false"`, false}} {
		*reqs = nil
		_, err := c.Fetch(context.Background(), providers.Request{Endpoint: "backlinks", Domain: "example.com",
			Params: map[string]json.RawMessage{"onePerDomain": json.RawMessage(tc.raw)}})
		if err != nil {
			t.Fatal(err)
		}
		q := (*reqs)[0].URL.Query()
		if got := q.Get("onePerDomain") == "1"; got != tc.want || (!tc.want && q.Has("onePerDomain")) {
			t.Errorf("onePerDomain %s sent as %q", tc.raw, q.Get("onePerDomain"))
		}
	}
}

func TestCheckParams(t *testing.T) {
	t.Parallel()
	c := newClient(t, "http://x.invalid")
	for _, tc := range []struct {
		endpoint string
		params   map[string]json.RawMessage
		ok       bool
	}{
		{"backlinks", nil, true},
		{"backlinks", map[string]json.RawMessage{"onePerDomain": json.RawMessage(`1`)}, true},
		{"backlinks", map[string]json.RawMessage{"onePerDomain": json.RawMessage(`true`)}, true},
		{"backlinks", map[string]json.RawMessage{"onePerDomain": json.RawMessage(`"0"`)}, true},
		{"backlinks", map[string]json.RawMessage{"onePerDomain": json.RawMessage(`2`)}, false},
		{"backlinks", map[string]json.RawMessage{"onePerDomain": json.RawMessage(`"yes"`)}, false},
		{"backlinks", map[string]json.RawMessage{"onePerDomain": json.RawMessage(`null`)}, false},
		{"backlinks", map[string]json.RawMessage{"mode": json.RawMessage(`"as_is"`)}, false},
		{"backlinks", map[string]json.RawMessage{"apikey": json.RawMessage(`"other"`)}, false},
		{"summary", nil, false},
	} {
		err := checkParams(tc.endpoint, tc.params)
		if (err == nil) != tc.ok {
			t.Errorf("CheckParams(%s, %v) = %v, want ok=%v", tc.endpoint, tc.params, err, tc.ok)
		}
	}
	if got := Vendor.Endpoints; len(got) != 1 || got[0] != "backlinks" {
		t.Errorf("Endpoints() = %v", got)
	}
	pg, err := c.Paging("backlinks")
	if err != nil || pg.Kind != providers.PagingNone || pg.PageSize != 5000 {
		t.Errorf("Paging = %+v, %v", pg, err)
	}
	if _, err := c.Paging("nope"); err == nil {
		t.Error("Paging of an unknown endpoint: no error")
	}
}

func TestNewAndConfig(t *testing.T) {
	t.Parallel()
	env := map[string]string{"DOMDETAILER_APIKEY": " k ", "DOMDETAILER_APP": "app"}
	cfg := ConfigFromEnv(func(k string) string { return env[k] })
	if cfg.APIKey != "k" || cfg.App != "app" || cfg.BaseURL != "https://domdetailer.com" {
		t.Errorf("ConfigFromEnv = %#v", cfg)
	}
	for _, tc := range []struct {
		cfg Config
		ok  bool
	}{
		{Config{APIKey: "k", App: "a", BaseURL: "https://domdetailer.com"}, true},
		{Config{APIKey: "k", App: "a", BaseURL: "http://127.0.0.1:8089/"}, true},
		{Config{App: "a", BaseURL: "https://domdetailer.com"}, false},
		{Config{APIKey: "k", BaseURL: "https://domdetailer.com"}, false},
		{Config{APIKey: "k", App: "a"}, false},
		{Config{APIKey: "k", App: "a", BaseURL: "domdetailer.com"}, false},
		{Config{APIKey: "k", App: "a", BaseURL: "ftp://domdetailer.com"}, false},
		{Config{APIKey: "k", App: "a", BaseURL: "https://domdetailer.com/?apikey=k"}, false},
		{Config{APIKey: "k", App: "a", BaseURL: "https://u:p@domdetailer.com"}, false},
	} {
		_, err := New(tc.cfg)
		if (err == nil) != tc.ok {
			t.Errorf("New(%v) = %v, want ok=%v", tc.cfg, err, tc.ok)
		}
		if err != nil && strings.Contains(err.Error(), "k3y") {
			t.Errorf("New error leaks the key: %v", err)
		}
	}
	// A caller's client is copied, not changed.
	hc := &http.Client{Timeout: time.Second}
	if _, err := New(Config{APIKey: "k", App: "a", BaseURL: "https://domdetailer.com", Conn: providers.Conn{HTTPClient: hc}}); err != nil {
		t.Fatal(err)
	}
	if hc.CheckRedirect != nil {
		t.Error("New changed the caller's http.Client")
	}
}

// TestErrorClasses: how every documented (and some undocumented) failure
// is classified, and that no message holds the key.
func TestErrorClasses(t *testing.T) {
	t.Parallel()
	seed400, seed401 := providertest.Testdata(t, "error_400.json"), providertest.Testdata(t, "error_401.json")
	for _, tc := range []struct {
		name       string
		status     int
		header     map[string]string
		body       string
		class      providers.Class
		account    bool
		code       string
		message    string // contained in the error's message
		retryAfter time.Duration
	}{
		{"400 seed", 400, nil, string(seed400), providers.Fatal, false, "http 400", "missing_parameter: domain is required", 0},
		{"401 seed", 401, nil, string(seed401), providers.Fatal, true, "http 401", "invalid_api_key: API key not found or inactive", 0},
		{"402 out of credits", 402, nil, `{"error":"insufficient_credits","message":"Not enough credits"}`, providers.Fatal, true, "http 402", "insufficient_credits: Not enough credits", 0},
		{"402 no body", 402, nil, ``, providers.Fatal, true, "http 402", "Payment Required", 0},
		{"403", 403, nil, `{"error":"forbidden","message":"nope"}`, providers.Fatal, true, "http 403", "forbidden: nope", 0},
		{"404", 404, nil, `<html>not found</html>`, providers.Fatal, false, "http 404", "Not Found", 0},
		{"429 retry-after", 429, map[string]string{"Retry-After": "7"}, `{"error":"rate_limited","message":"Too many requests"}`, providers.Throttled, false, "http 429", "Too many requests", 7 * time.Second},
		{"429 bare", 429, nil, ``, providers.Throttled, false, "http 429", "Too Many Requests", 0},
		{"500", 500, nil, `{"error":"server_error","message":"oops"}`, providers.Retryable, false, "http 500", "oops", 0},
		{"502 html", 502, nil, `<html><body>Bad Gateway</body></html>`, providers.Retryable, false, "http 502", "Bad Gateway", 0},
		{"503", 503, map[string]string{"Retry-After": "3"}, ``, providers.Retryable, false, "http 503", "Service Unavailable", 3 * time.Second},
		{"504", 504, nil, `gateway timeout`, providers.Retryable, false, "http 504", "gateway timeout", 0},
		{"200 truncated", 200, nil, `{"domain":"x.com","metrics":{"links_in":5},"backlinks":[{"anchor":"a"`, providers.Retryable, false, "bad body", "", 0},
		{"200 malformed", 200, nil, `{"domain":"x.com","backlinks":[{"anchor":"a",}]}`, providers.Retryable, false, "bad body", "", 0},
		{"200 html", 200, nil, `<html>maintenance</html>`, providers.Retryable, false, "bad body", "", 0},
		{"200 empty", 200, nil, ``, providers.Retryable, false, "bad body", "", 0},
		{"200 list", 200, nil, `[]`, providers.Retryable, false, "bad body", "", 0},
		{"200 backlinks not a list", 200, nil, `{"backlinks":{"a":1}}`, providers.Retryable, false, "bad body", "", 0},
		{"200 error key", 200, nil, string(seed401), providers.Fatal, true, "invalid_api_key", "API key not found", 0},
		{"200 error param", 200, nil, string(seed400), providers.Fatal, false, "missing_parameter", "domain is required", 0},
		{"200 error credits", 200, nil, `{"error":"no_credits","message":"out of credits"}`, providers.Fatal, true, "no_credits", "out of credits", 0},
		{"200 error rate", 200, nil, `{"error":"rate_limit","message":"slow down"}`, providers.Throttled, false, "rate_limit", "slow down", 0},
		{"200 error unknown", 200, nil, `{"error":"oops","message":"something broke"}`, providers.Retryable, false, "oops", "something broke", 0},
		// A vendor that echoes the request in its message: the key is scrubbed.
		{"400 echo", 400, nil, `{"error":"invalid_parameter","message":"bad request /api2/getBacklinks.php?apikey=k3y%2FSecret%2B%26%3Dx&app=linkharvest"}`,
			providers.Fatal, false, "http 400", "apikey=REDACTED", 0},
		{"500 echo raw key", 500, nil, `key ` + testKey + ` failed`, providers.Retryable, false, "http 500", "key REDACTED failed", 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv, _ := providertest.Serve(t, tc.status, tc.header, []byte(tc.body))
			_, err := newClient(t, srv.URL).Fetch(context.Background(), providers.Request{Endpoint: "backlinks", Domain: "example.com"})
			pe, ok := providers.AsError(err)
			if !ok {
				t.Fatalf("err = %v, want a *providers.Error", err)
			}
			if pe.Class != tc.class || pe.Account != tc.account || pe.Code != tc.code || pe.RetryAfter != tc.retryAfter {
				t.Errorf("got class %v account %v code %q retry-after %v; want %v %v %q %v (%v)",
					pe.Class, pe.Account, pe.Code, pe.RetryAfter, tc.class, tc.account, tc.code, tc.retryAfter, err)
			}
			if pe.Provider != Name || !strings.Contains(pe.Message, tc.message) {
				t.Errorf("provider %q message %q, want %q", pe.Provider, pe.Message, tc.message)
			}
			providertest.NoSecret(t, err, testKey)
		})
	}
}

func TestEmptyBacklinks(t *testing.T) {
	t.Parallel()
	for _, body := range []string{
		`{"domain":"x.com","metrics":{"links_in":0},"backlinks":[]}`,
		`{"domain":"x.com","metrics":{"links_in":0},"backlinks":null}`,
		`{"domain":"x.com","metrics":{"links_in":0}}`,
	} {
		srv, _ := providertest.Serve(t, 200, nil, []byte(body))
		page, err := newClient(t, srv.URL).Fetch(context.Background(), providers.Request{Endpoint: "backlinks", Domain: "x.com"})
		if err != nil {
			t.Fatalf("%s: %v", body, err)
		}
		if page.Total != 0 || len(page.Items) != 1 || page.Items[0].Kind != KindMetrics {
			t.Errorf("%s: total %d items %+v", body, page.Total, page.Items)
		}
	}
}

func TestBodyTooLarge(t *testing.T) {
	t.Parallel()
	srv, _ := providertest.Serve(t, 200, nil, providertest.Testdata(t, "example.json"))
	c, err := New(Config{APIKey: testKey, App: "a", BaseURL: srv.URL, Conn: providers.Conn{MaxBody: 100}})
	if err != nil {
		t.Fatal(err)
	}
	_, err = c.Fetch(context.Background(), providers.Request{Endpoint: "backlinks", Domain: "x.com"})
	if pe, ok := providers.AsError(err); !ok || pe.Class != providers.Fatal || pe.Code != "body too large" {
		t.Errorf("err = %v, want fatal body too large", err)
	}
}

func TestFetchRejectsBadRequests(t *testing.T) {
	t.Parallel()
	var calls atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { calls.Add(1) }))
	defer srv.Close()
	c := newClient(t, srv.URL)
	for _, req := range []providers.Request{
		{Endpoint: "backlinks", Domain: "x.com", Offset: 5000},
		{Endpoint: "backlinks", Domain: "x.com", Page: 2},
		{Endpoint: "backlinks", Domain: "x.com", Cursor: "abc"},
		{Endpoint: "backlinks", Domain: " "},
		{Endpoint: "summary", Domain: "x.com"},
		{Endpoint: "backlinks", Domain: "x.com", Params: map[string]json.RawMessage{"limit": json.RawMessage(`10`)}},
	} {
		_, err := c.Fetch(context.Background(), req)
		if providers.ClassOf(err) != providers.Fatal {
			t.Errorf("Fetch(%+v) = %v, want fatal", req, err)
		}
	}
	if calls.Load() != 0 {
		t.Errorf("%d calls made for requests that cannot succeed", calls.Load())
	}
}

func TestRedactionStrings(t *testing.T) {
	t.Parallel()
	cfg := Config{APIKey: testKey, App: "a", BaseURL: "https://domdetailer.com"}
	c, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	// Formatting, logs and transport errors: providertest (TestSuite).
	cl := c.build("example.com", params{onePerDomain: true})
	if strings.Contains(cl.redacted, "k3y") || !strings.Contains(cl.redacted, "apikey=REDACTED&app=a&domain=example.com&onePerDomain=1") {
		t.Errorf("redacted URL %q", cl.redacted)
	}
	if RedactURL(cl.url) != cl.redacted {
		t.Errorf("RedactURL(%q) = %q, want %q", cl.url, RedactURL(cl.url), cl.redacted)
	}
	for in, want := range map[string]string{
		"https://d.com/api2/getBacklinks.php?apikey=abc&app=x":  "https://d.com/api2/getBacklinks.php?apikey=REDACTED&app=x",
		"https://d.com/api2/getBacklinks.php?app=x&APIKEY=abc":  "https://d.com/api2/getBacklinks.php?app=x&APIKEY=REDACTED",
		"GET https://d.com/x?apikey=a%2Fb#frag":                 "GET https://d.com/x?apikey=REDACTED#frag",
		"https://d.com/api/checkBalance.php?apikey=abc&app=x":   "https://d.com/api/checkBalance.php?apikey=REDACTED&app=x",
		"https://d.com/?noapikey=1":                             "https://d.com/?noapikey=1",
		"%%%bad url?apikey=abc":                                 "%%%bad url?apikey=REDACTED",
		"https://d.com/api2/getBacklinks.php?domain=apikey.com": "https://d.com/api2/getBacklinks.php?domain=apikey.com",
	} {
		if got := RedactURL(in); got != want {
			t.Errorf("RedactURL(%q) = %q, want %q", in, got, want)
		}
	}
}
