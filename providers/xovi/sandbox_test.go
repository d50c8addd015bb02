package xovi

import (
	"context"
	"encoding/json"
	"fmt"
	"html"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/linkharvest/linkharvest/providers"
	"github.com/linkharvest/linkharvest/providers/sandbox"
)

// sbServer is a sandbox with XOVI mounted that records request URLs.
type sbServer struct {
	*httptest.Server
	s    *sandbox.Server
	mu   sync.Mutex
	urls []string
}

func newSandbox(t testing.TB, opts sandbox.Options) *sbServer {
	t.Helper()
	s := sandbox.New(opts)
	Mount(s)
	sb := &sbServer{s: s}
	sb.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		sb.mu.Lock()
		sb.urls = append(sb.urls, r.URL.RequestURI())
		sb.mu.Unlock()
		s.ServeHTTP(w, r)
	}))
	t.Cleanup(sb.Close)
	return sb
}

func (sb *sbServer) take() []string {
	sb.mu.Lock()
	defer sb.mu.Unlock()
	u := sb.urls
	sb.urls = nil
	return u
}

func sbClient(t testing.TB, base, key string, queryForm bool) *Client {
	t.Helper()
	c, err := New(Config{Key: providers.Secret(key), BaseURL: base, QueryForm: queryForm})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// pageAll pages through a domain as the pipeline does with a fixed page
// size, retrying retryable errors, and returns the rows.
func pageAll(t *testing.T, c *Client, domain string, size int, params map[string]json.RawMessage) ([]providers.Item, int) {
	t.Helper()
	var rows []providers.Item
	total := -1
	for off := 0; total < 0 || off < total; off += size {
		var page *providers.Page
		var err error
		for attempt := 0; ; attempt++ {
			page, err = c.Fetch(context.Background(), providers.Request{Endpoint: "backlinks", Domain: domain, Offset: off, Limit: size, Params: params})
			if err == nil {
				break
			}
			if providers.ClassOf(err) == providers.Fatal || attempt > 60 {
				t.Fatalf("%s at %d: %v", domain, off, err)
			}
		}
		if total < 0 {
			total = page.Total
		} else if page.Total != total {
			t.Fatalf("%s: total changed from %d to %d", domain, total, page.Total)
		}
		rows = append(rows, page.Items...)
		if total < 0 {
			t.Fatalf("%s: no total", domain)
		}
	}
	return rows, total
}

// TestSandboxPaging: rows-2500 in pages of 1000 is skips 0, 1, 2, every
// row once, in both forms and both formats, with the same normalised rows.
func TestSandboxPaging(t *testing.T) {
	t.Parallel()
	sb := newSandbox(t, sandbox.Options{Seed: 1})
	var first []providers.Item
	for _, tc := range []struct {
		name      string
		base      string
		queryForm bool
		format    string
		prefix    string // of each request URI
	}{
		{"route json", sb.URL, false, "json", "/links/getBacklinks/sandbox/rows-2500.example/json/1000/"},
		{"route xml", sb.URL, false, "xml", "/links/getBacklinks/sandbox/rows-2500.example/xml/1000/"},
		{"query json", sb.URL, true, "json", "/?service=links&method=getBacklinks&key=sandbox&domain=rows-2500.example&format=json&limit=1000&skip="},
		{"query xml /api", sb.URL + "/api", true, "xml", "/api/?service=links&method=getBacklinks&key=sandbox&domain=rows-2500.example&format=xml&limit=1000&skip="},
		{"route json /api", sb.URL + "/api", false, "json", "/api/links/getBacklinks/sandbox/rows-2500.example/json/1000/"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			sb.take()
			c := sbClient(t, tc.base, "sandbox", tc.queryForm)
			params := map[string]json.RawMessage{"format": json.RawMessage(`"` + tc.format + `"`)}
			rows, total := pageAll(t, c, "rows-2500.example", 1000, params)
			urls := sb.take()
			want := []string{tc.prefix + "0", tc.prefix + "1", tc.prefix + "2"}
			if strings.Join(urls, " ") != strings.Join(want, " ") {
				t.Errorf("requests\n%s\nwant\n%s", strings.Join(urls, "\n"), strings.Join(want, "\n"))
			}
			if total != 2500 || len(rows) != 2500 {
				t.Fatalf("%d rows, total %d", len(rows), total)
			}
			seen := map[string]bool{}
			for i, it := range rows {
				if it.SourceURL == nil || it.TargetURL == nil || it.Anchor == nil || it.SourceTitle == nil || it.Nofollow != nil {
					t.Fatalf("row %d not normalised: %+v", i, it)
				}
				if seen[*it.SourceURL] {
					t.Fatalf("row %s twice", *it.SourceURL)
				}
				seen[*it.SourceURL] = true
				if strings.Contains(*it.SourceTitle, "&") && !strings.Contains(*it.SourceTitle, " & ") {
					t.Fatalf("row %d: title not unescaped: %q", i, *it.SourceTitle)
				}
			}
			if first == nil {
				first = rows
				return
			}
			for i := range rows {
				a, b := first[i], rows[i]
				if *a.SourceURL != *b.SourceURL || *a.TargetURL != *b.TargetURL || *a.Anchor != *b.Anchor || *a.SourceTitle != *b.SourceTitle {
					t.Fatalf("row %d differs from the route/json row: %s vs %s", i, b.Raw, a.Raw)
				}
				checkTwins(t, a.Raw, b.Raw)
			}
		})
	}
}

// checkTwins: a row's raw from XML has the JSON row's names and values
// (numbers as text, titles HTML-escaped).
func checkTwins(t *testing.T, jsonRaw, other json.RawMessage) {
	t.Helper()
	var j map[string]any
	var o map[string]any
	if err := json.Unmarshal(jsonRaw, &j); err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(other, &o); err != nil {
		t.Fatal(err)
	}
	if len(j) != len(o) {
		t.Fatalf("%s vs %s", jsonRaw, other)
	}
	for k, v := range j {
		js, os := fmt.Sprint(v), fmt.Sprint(o[k])
		if k == "webtitle" {
			os = html.UnescapeString(os)
		}
		if js != os {
			t.Fatalf("%s: %q vs %q", k, js, os)
		}
	}
}

// TestSandboxPipelinePages: the pages the pipeline plans (a short last
// page) and odd windows all land on the right rows.
func TestSandboxPipelinePages(t *testing.T) {
	t.Parallel()
	sb := newSandbox(t, sandbox.Options{Seed: 2})
	c := sbClient(t, sb.URL, "sandbox", false)
	all, total := pageAll(t, c, "rows-2300.example", 1000, nil)
	if total != 2300 || len(all) != 2300 {
		t.Fatalf("%d rows, total %d", len(all), total)
	}
	for _, tc := range []struct{ offset, limit int }{{2000, 300}, {1000, 1000}, {5, 10}, {1998, 4}, {0, 1}, {2299, 1}, {1500, 500}} {
		page, err := c.Fetch(context.Background(), providers.Request{Endpoint: "backlinks", Domain: "rows-2300.example", Offset: tc.offset, Limit: tc.limit})
		if err != nil {
			t.Fatal(err)
		}
		if len(page.Items) != tc.limit {
			t.Fatalf("offset %d limit %d: %d items", tc.offset, tc.limit, len(page.Items))
		}
		for i, it := range page.Items {
			if string(it.Raw) != string(all[tc.offset+i].Raw) {
				t.Fatalf("offset %d limit %d: item %d is not row %d", tc.offset, tc.limit, i, tc.offset+i)
			}
		}
	}
}

func TestSandboxEmpty(t *testing.T) {
	t.Parallel()
	sb := newSandbox(t, sandbox.Options{})
	for _, format := range []string{"json", "xml"} {
		c := sbClient(t, sb.URL, "sandbox", false)
		params := map[string]json.RawMessage{"format": json.RawMessage(`"` + format + `"`)}
		for _, tc := range []struct {
			domain        string
			offset, total int
		}{{"rows-0.example", 0, 0}, {"rows-2500.example", 3000, 2500}, {"rows-2500.example", 2500, 2500}} {
			page, err := c.Fetch(context.Background(), providers.Request{Endpoint: "backlinks", Domain: tc.domain, Offset: tc.offset, Limit: 500, Params: params})
			if err != nil || len(page.Items) != 0 || page.Total != tc.total {
				t.Errorf("%s %s at %d: %v, %+v; want an empty page, total %d", format, tc.domain, tc.offset, err, page, tc.total)
			}
		}
	}
}

func TestSandboxDeterminism(t *testing.T) {
	t.Parallel()
	a, b, c := newSandbox(t, sandbox.Options{Seed: 3}), newSandbox(t, sandbox.Options{Seed: 3}), newSandbox(t, sandbox.Options{Seed: 4})
	get := func(sb *sbServer, domain string) string {
		page, err := sbClient(t, sb.URL, "sandbox", false).Fetch(context.Background(), providers.Request{Endpoint: "backlinks", Domain: domain, Limit: 1000})
		if err != nil {
			t.Fatal(err)
		}
		var s []string
		for _, it := range page.Items {
			s = append(s, string(it.Raw))
		}
		return fmt.Sprint(page.Total, s)
	}
	ra := get(a, "example.com")
	if ra != get(b, "example.com") || ra != get(a, "example.com") || ra != get(a, "WWW.example.com") {
		t.Error("same seed and domain, different rows")
	}
	if ra == get(c, "example.com") || ra == get(a, "example.org") {
		t.Error("another seed or domain, the same rows")
	}
}

func TestSandboxAuth(t *testing.T) {
	t.Parallel()
	sb := newSandbox(t, sandbox.Options{})
	for _, qf := range []bool{false, true} {
		for _, format := range []string{"json", "xml"} {
			c := sbClient(t, sb.URL, "bad", qf)
			_, err := c.Fetch(context.Background(), providers.Request{Endpoint: "backlinks", Domain: "example.com",
				Params: map[string]json.RawMessage{"format": json.RawMessage(`"` + format + `"`)}})
			pe, ok := providers.AsError(err)
			if !ok || pe.Class != providers.Fatal || !pe.Account || pe.Code != "no permission" {
				t.Errorf("query form %v %s: %v, want fatal account no permission", qf, format, err)
			}
		}
	}
}

// TestSandboxMessages: the handler's answers to malformed requests.
func TestSandboxMessages(t *testing.T) {
	t.Parallel()
	sb := newSandbox(t, sandbox.Options{})
	for _, tc := range []struct{ uri, msg string }{
		{"/links/getBacklinks/k/example.com/json/1001/0", "maximum limit exeeded"},
		{"/links/getBacklinks/k/example.com/json/0/0", "param invalid"},
		{"/links/getBacklinks/k/example.com/json/ten/0", "param invalid"},
		{"/links/getBacklinks/k/example.com/csv/10/0", "param invalid"},
		{"/links/getBacklinks/k/not_a_domain/json/10/0", "param invalid"},
		{"/links/getBacklinks/k", "param missing"},
		{"/links/getBacklinks", "param missing"},
		{"/links/getBacklinks/bad/example.com", "no permission"},
		{"/links/getBacklinks/k/rows-5.example", "0k."}, // format, limit and skip default
		{"/links/getBacklinks/k/rows-5.example/json/100/1", "result empty"},
		{"/?service=links&method=getBacklinks&key=k&domain=rows-5.example", "0k."},
		{"/?service=links&method=getKeywords&key=k&domain=rows-5.example", "param invalid"},
		{"/?key=k&domain=rows-5.example", "param missing"},
		{"/api/?service=links&method=getBacklinks&key=k&domain=rows-5.example&limit=2&skip=2", "0k."},
	} {
		resp, err := http.Get(sb.URL + tc.uri)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		var env struct {
			APIErrorCode    int
			APIErrorMessage string
			APIResult       []json.RawMessage
		}
		if resp.StatusCode != 200 || json.Unmarshal(b, &env) != nil || env.APIErrorMessage != tc.msg || (tc.msg == "0k.") != (env.APIErrorCode == 0 && len(env.APIResult) > 0) {
			t.Errorf("%s: %d %s, want %q", tc.uri, resp.StatusCode, b, tc.msg)
		}
	}
}

// The key nofunds gets "cost error": the account's credits are used up.
func TestSandboxNoFunds(t *testing.T) {
	t.Parallel()
	sb := newSandbox(t, sandbox.Options{})
	c := sbClient(t, sb.URL, sandbox.NoFunds, false)
	_, err := c.Fetch(context.Background(), providers.Request{Endpoint: "backlinks", Domain: "rows-3.example"})
	pe, ok := providers.AsError(err)
	if !ok || pe.Class != providers.Fatal || !pe.Account || !strings.Contains(pe.Error(), "cost error") {
		t.Errorf("err = %v, want a fatal account failure \"cost error\"", err)
	}
}

// TestSandboxFailures: every injected failure is retryable, of every kind,
// and paging with retries gives the rows of a sandbox without failures.
func TestSandboxFailures(t *testing.T) {
	t.Parallel()
	sb := newSandbox(t, sandbox.Options{Fail: 1, Seed: 5})
	codes := map[string]int{}
	for i := 0; i < 80; i++ {
		format := []string{"json", "xml"}[i%2]
		_, err := sbClient(t, sb.URL, "sandbox", i%4 < 2).Fetch(context.Background(), providers.Request{Endpoint: "backlinks", Domain: "rows-50.example",
			Params: map[string]json.RawMessage{"format": json.RawMessage(`"` + format + `"`)}})
		pe, ok := providers.AsError(err)
		if !ok || pe.Class != providers.Retryable {
			t.Fatalf("call %d: %v, want retryable", i, err)
		}
		codes[pe.Code]++
	}
	for _, c := range []string{"internal error", "http 500", "http 503", "bad body"} {
		if codes[c] == 0 {
			t.Errorf("no %q among injected failures %v", c, codes)
		}
	}
	if codes["transport"]+codes["connection"] == 0 {
		t.Errorf("no dropped connection among injected failures %v", codes)
	}
	if st := sb.s.Stats()[Name]; st.InjectedFailures != st.Calls || st.Calls < 80 {
		t.Errorf("stats %+v", st)
	}

	// Retried pages giving the rows of a clean run: providertest (TestSuite).
}

// BenchmarkSandboxPage is the sandbox's cost of a full page, per format.
func BenchmarkSandboxPage(b *testing.B) {
	for _, format := range []string{"json", "xml"} {
		b.Run(format, func(b *testing.B) {
			sb := newSandbox(b, sandbox.Options{})
			c := sbClient(b, sb.URL, "k", false)
			params := map[string]json.RawMessage{"format": json.RawMessage(`"` + format + `"`)}
			for b.Loop() {
				if _, err := c.Fetch(context.Background(), providers.Request{Endpoint: "backlinks", Domain: "rows-5000.example", Offset: 1000, Limit: 1000, Params: params}); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
