package domdetailer

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/linkharvest/linkharvest/providers"
	"github.com/linkharvest/linkharvest/providers/sandbox"
)

func newSandbox(t testing.TB, opts sandbox.Options) (*sandbox.Server, *httptest.Server) {
	t.Helper()
	s := sandbox.New(opts)
	Mount(s)
	srv := httptest.NewServer(s)
	t.Cleanup(srv.Close)
	return s, srv
}

func fetch(t testing.TB, base, domain string, one bool) (*providers.Page, error) {
	t.Helper()
	c, err := New(Config{APIKey: "sandbox", App: "linkharvest", BaseURL: base})
	if err != nil {
		t.Fatal(err)
	}
	var params map[string]json.RawMessage
	if one {
		params = map[string]json.RawMessage{"onePerDomain": json.RawMessage(`1`)}
	}
	return c.Fetch(context.Background(), providers.Request{Endpoint: "backlinks", Domain: domain, Page: 1, Params: params})
}

type metrics struct {
	PageCount, LinksIn, LinksOut, BacklinksFollow, BacklinksNofollow, RefDomains, LinksFromGov, LinksFromEdu int
	NofollowRatio                                                                                            float64
}

func (m *metrics) UnmarshalJSON(b []byte) error {
	var v struct {
		PageCount         int     `json:"page_count"`
		LinksIn           int     `json:"links_in"`
		LinksOut          int     `json:"links_out"`
		BacklinksFollow   int     `json:"backlinks_follow"`
		BacklinksNofollow int     `json:"backlinks_nofollow"`
		NofollowRatio     float64 `json:"nofollow_ratio"`
		RefDomains        int     `json:"ref_domains"`
		LinksFromGov      int     `json:"links_from_gov"`
		LinksFromEdu      int     `json:"links_from_edu"`
	}
	if err := json.Unmarshal(b, &v); err != nil {
		return err
	}
	*m = metrics{v.PageCount, v.LinksIn, v.LinksOut, v.BacklinksFollow, v.BacklinksNofollow, v.RefDomains, v.LinksFromGov, v.LinksFromEdu, v.NofollowRatio}
	return nil
}

func split(t *testing.T, page *providers.Page) (metrics, []providers.Item) {
	t.Helper()
	if len(page.Items) == 0 || page.Items[0].Kind != KindMetrics {
		t.Fatalf("page does not start with the metrics item")
	}
	var m metrics
	if err := json.Unmarshal(page.Items[0].Raw, &m); err != nil {
		t.Fatal(err)
	}
	rows := page.Items[1:]
	for i, it := range rows {
		if it.Kind != KindBacklink || it.SourceURL == nil || it.TargetURL == nil || it.Anchor == nil || it.Nofollow == nil || it.SourceTitle == nil {
			t.Fatalf("row %d not a full backlink: %+v", i, it)
		}
		if *it.Anchor == "" {
			t.Fatalf("row %d: empty anchor after the fallback: %s", i, it.Raw)
		}
	}
	return m, rows
}

func host(u string) string {
	p, _ := url.Parse(u)
	return p.Host
}

// TestSandboxRows: rows-N has N backlinks, of which one call returns at
// most 5,000, each once; the metrics agree with the rows.
func TestSandboxRows(t *testing.T) {
	t.Parallel()
	_, srv := newSandbox(t, sandbox.Options{Seed: 1})
	for _, n := range []int{0, 1, 7, 1001, 4999, 5000, 5001, 25000} {
		domain := "rows-" + itoa(n) + ".example"
		page, err := fetch(t, srv.URL, domain, false)
		if err != nil {
			t.Fatalf("%s: %v", domain, err)
		}
		m, rows := split(t, page)
		served := min(n, MaxRows)
		if len(rows) != served || page.Total != served {
			t.Errorf("%s: %d rows, total %d; want %d", domain, len(rows), page.Total, served)
		}
		seen := map[string]bool{}
		hosts := map[string]bool{}
		nf := 0
		for _, it := range rows {
			if seen[*it.SourceURL] {
				t.Fatalf("%s: source %s twice", domain, *it.SourceURL)
			}
			seen[*it.SourceURL] = true
			hosts[host(*it.SourceURL)] = true
			if *it.Nofollow {
				nf++
			}
			if !strings.HasPrefix(*it.TargetURL, "https://"+domain+"/") {
				t.Fatalf("%s: target %s", domain, *it.TargetURL)
			}
		}
		if m.LinksIn != n || m.BacklinksFollow+m.BacklinksNofollow != n {
			t.Errorf("%s: metrics %+v inconsistent with %d links", domain, m, n)
		}
		if n <= MaxRows && (m.BacklinksNofollow != nf || m.RefDomains != len(hosts)) {
			t.Errorf("%s: metrics %+v; rows have %d nofollow, %d hosts", domain, m, nf, len(hosts))
		}
		if n > 0 {
			want := float64(int(1000*float64(m.BacklinksNofollow)/float64(n)+0.5)) / 10
			if m.NofollowRatio != want {
				t.Errorf("%s: nofollow_ratio %v, want %v", domain, m.NofollowRatio, want)
			}
		}
	}
}

// TestSandboxOnePerDomain: the de-duplicated sample keeps the first row of
// each source host, in order, deterministically.
func TestSandboxOnePerDomain(t *testing.T) {
	t.Parallel()
	_, srv := newSandbox(t, sandbox.Options{Seed: 7})
	for _, domain := range []string{"rows-3000.example", "rows-9000.example", "example.com"} {
		full, err := fetch(t, srv.URL, domain, false)
		if err != nil {
			t.Fatal(err)
		}
		one, err := fetch(t, srv.URL, domain, true)
		if err != nil {
			t.Fatal(err)
		}
		mf, rowsF := split(t, full)
		mo, rowsO := split(t, one)
		if mf != mo {
			t.Errorf("%s: metrics differ with onePerDomain: %+v vs %+v", domain, mf, mo)
		}
		var want []string
		seen := map[string]bool{}
		for _, it := range rowsF {
			if h := host(*it.SourceURL); !seen[h] {
				seen[h] = true
				want = append(want, *it.SourceURL)
			}
		}
		if len(rowsO) != len(want) || len(rowsO) != mf.RefDomains || (len(rowsF) > 100 && len(rowsO) >= len(rowsF)) {
			t.Fatalf("%s: onePerDomain gives %d rows, want %d (ref_domains %d, full %d)", domain, len(rowsO), len(want), mf.RefDomains, len(rowsF))
		}
		for i, it := range rowsO {
			if *it.SourceURL != want[i] {
				t.Fatalf("%s: row %d = %s, want %s", domain, i, *it.SourceURL, want[i])
			}
		}
		again, _ := fetch(t, srv.URL, domain, true)
		if !sameItems(one, again) {
			t.Errorf("%s: onePerDomain not deterministic", domain)
		}
	}
}

func sameItems(a, b *providers.Page) bool {
	if len(a.Items) != len(b.Items) {
		return false
	}
	for i := range a.Items {
		if string(a.Items[i].Raw) != string(b.Items[i].Raw) || a.Items[i].Kind != b.Items[i].Kind {
			return false
		}
	}
	return true
}

func TestSandboxDeterminism(t *testing.T) {
	t.Parallel()
	_, a := newSandbox(t, sandbox.Options{Seed: 3})
	_, b := newSandbox(t, sandbox.Options{Seed: 3})
	_, c := newSandbox(t, sandbox.Options{Seed: 4})
	pa, err := fetch(t, a.URL, "example.com", false)
	if err != nil {
		t.Fatal(err)
	}
	pb, _ := fetch(t, b.URL, "example.com", false)
	pa2, _ := fetch(t, a.URL, "WWW.Example.com", false) // the vendor strips www.
	pc, _ := fetch(t, c.URL, "example.com", false)
	if !sameItems(pa, pb) || !sameItems(pa, pa2) {
		t.Error("same seed and domain, different rows")
	}
	if sameItems(pa, pc) {
		t.Error("another seed gives the same rows")
	}
	po, _ := fetch(t, a.URL, "example.org", false)
	if sameItems(pa, po) {
		t.Error("another domain gives the same rows")
	}
}

func TestSandboxAuthAndParams(t *testing.T) {
	t.Parallel()
	s, srv := newSandbox(t, sandbox.Options{})
	c, _ := New(Config{APIKey: "bad", App: "a", BaseURL: srv.URL})
	_, err := c.Fetch(context.Background(), providers.Request{Endpoint: "backlinks", Domain: "example.com"})
	pe, ok := providers.AsError(err)
	if !ok || pe.Class != providers.Fatal || !pe.Account || pe.Code != "http 401" || pe.Message != "invalid_api_key: API key not found or inactive" {
		t.Errorf("bad key: %v", err)
	}
	// Out of credits: HTTP 402, a failure of the account.
	c, _ = New(Config{APIKey: sandbox.NoFunds, App: "a", BaseURL: srv.URL})
	_, err = c.Fetch(context.Background(), providers.Request{Endpoint: "backlinks", Domain: "example.com"})
	pe, ok = providers.AsError(err)
	if !ok || pe.Class != providers.Fatal || !pe.Account || pe.Code != "http 402" || !strings.Contains(pe.Message, "Out of credits") {
		t.Errorf("nofunds key: %v", err)
	}
	// The vendor's documented error bodies, straight from the handler.
	for _, tc := range []struct {
		query  string
		status int
		body   string
	}{
		{"apikey=k&app=a", 400, `{"error":"missing_parameter","message":"domain is required"}`},
		{"apikey=k&domain=example.com", 400, `{"error":"missing_parameter","message":"app is required"}`},
		{"app=a&domain=example.com", 401, `{"error":"invalid_api_key","message":"API key not found or inactive"}`},
		{"apikey=bad&app=a&domain=example.com", 401, `{"error":"invalid_api_key","message":"API key not found or inactive"}`},
		{"apikey=k&app=a&domain=example.com&onePerDomain=yes", 400, `{"error":"invalid_parameter","message":"onePerDomain must be 0 or 1"}`},
		{"apikey=k&app=a&domain=nodot", 400, `{"error":"invalid_parameter","message":"domain is invalid"}`},
	} {
		resp, err := http.Get(srv.URL + "/api2/getBacklinks.php?" + tc.query)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != tc.status || string(b) != tc.body {
			t.Errorf("%s: %d %s, want %d %s", tc.query, resp.StatusCode, b, tc.status, tc.body)
		}
	}
	if st := s.Stats()[Name]; st.Calls != 8 || st.Throttled != 0 {
		t.Errorf("stats %+v", st)
	}
}

func TestSandboxRateLimit(t *testing.T) {
	t.Parallel()
	s, srv := newSandbox(t, sandbox.Options{Rate: 2, Period: time.Minute})
	for i := 0; i < 4; i++ {
		_, err := fetch(t, srv.URL, "rows-3.example", false)
		if i < 2 && err != nil {
			t.Fatalf("call %d: %v", i, err)
		}
		if i >= 2 {
			pe, ok := providers.AsError(err)
			if !ok || pe.Class != providers.Throttled || pe.RetryAfter != time.Second || pe.Code != "http 429" {
				t.Fatalf("call %d: %v, want throttled with Retry-After 1s", i, err)
			}
		}
	}
	// Only the answered calls are billed, 3 credits each.
	if st := s.Stats()[Name]; st.Calls != 4 || st.Throttled != 2 || st.Cost != 6 {
		t.Errorf("stats %+v", st)
	}
}

func TestSandboxConcurrencyLimit(t *testing.T) {
	t.Parallel()
	s, srv := newSandbox(t, sandbox.Options{Concurrency: 1, Latency: 300 * time.Millisecond})
	var wg sync.WaitGroup
	errs := make([]error, 3)
	for i := range errs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, errs[i] = fetch(t, srv.URL, "rows-3.example", false)
		}()
	}
	wg.Wait()
	ok, throttled := 0, 0
	for _, err := range errs {
		switch providers.ClassOf(err) {
		case 0:
			ok++
		case providers.Throttled:
			throttled++
		default:
			t.Errorf("unexpected %v", err)
		}
	}
	if ok < 1 || throttled < 1 || int64(throttled) != s.Stats()[Name].Throttled {
		t.Errorf("%d ok, %d throttled, stats %+v", ok, throttled, s.Stats()[Name])
	}
}

// TestSandboxFailures: every injected failure is a retryable error, and
// retrying gives the same answer as a sandbox without failures.
func TestSandboxFailures(t *testing.T) {
	t.Parallel()
	s, srv := newSandbox(t, sandbox.Options{Fail: 1, Seed: 5})
	codes := map[string]int{}
	for i := 0; i < 60; i++ {
		_, err := fetch(t, srv.URL, "rows-50.example", false)
		pe, ok := providers.AsError(err)
		if !ok || pe.Class != providers.Retryable {
			t.Fatalf("call %d: %v, want retryable", i, err)
		}
		codes[pe.Code]++
	}
	for _, c := range []string{"http 500", "http 502", "http 503", "bad body"} {
		if codes[c] == 0 {
			t.Errorf("no %q among injected failures %v", c, codes)
		}
	}
	if codes["transport"]+codes["connection"] == 0 {
		t.Errorf("no dropped connection among injected failures %v", codes)
	}
	// Go's transport retries a GET once when a reused connection drops
	// before any answer, so there may be more calls than fetches.
	if st := s.Stats()[Name]; st.InjectedFailures != st.Calls || st.Calls < 60 {
		t.Errorf("stats %+v", st)
	}

	// Retried pages giving the rows of a clean run: providertest (TestSuite).
}

func itoa(n int) string {
	b, _ := json.Marshal(n)
	return string(b)
}

// BenchmarkSandbox5000 is the sandbox's cost of its largest answer.
func BenchmarkSandbox5000(b *testing.B) {
	_, srv := newSandbox(b, sandbox.Options{})
	c, _ := New(Config{APIKey: "k", App: "a", BaseURL: srv.URL})
	for b.Loop() {
		if _, err := c.Fetch(context.Background(), providers.Request{Endpoint: "backlinks", Domain: "rows-5000.example"}); err != nil {
			b.Fatal(err)
		}
	}
}
