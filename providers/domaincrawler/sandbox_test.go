package domaincrawler

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"reflect"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/linkharvest/linkharvest/providers"
	"github.com/linkharvest/linkharvest/providers/sandbox"
)

func startSandbox(t testing.TB, opts sandbox.Options) (*sandbox.Server, string) {
	t.Helper()
	s := sandbox.New(opts)
	Mount(s)
	srv := httptest.NewServer(s)
	t.Cleanup(srv.Close)
	return s, srv.URL
}

func sandboxClient(t testing.TB, base string) *Client {
	t.Helper()
	c, err := New(Config{User: "sandbox", Password: "sandbox", BaseURL: base})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// TestSandboxBacklinksOffsetPages: rows-25000 in pages of 10,000 at
// offsets 0, 10000, 20000; every row exactly once.
func TestSandboxBacklinksOffsetPages(t *testing.T) {
	t.Parallel()
	_, base := startSandbox(t, sandbox.Options{Seed: 1})
	c := sandboxClient(t, base)
	seen := map[string]bool{}
	for i, want := range []int{10000, 10000, 5000} {
		page, err := c.Fetch(context.Background(), providers.Request{Endpoint: "backlinks", Domain: "rows-25000.example", Page: i + 1, Offset: i * 10000, Limit: 10000})
		if err != nil {
			t.Fatal(err)
		}
		if len(page.Items) != want || page.Total != 25000 || page.Next != "" {
			t.Fatalf("page %d: %d rows, total %d, next %q", i+1, len(page.Items), page.Total, page.Next)
		}
		for _, it := range page.Items {
			if it.Kind != "backlink" || it.SourceURL == nil || it.TargetURL == nil || it.Anchor == nil || it.Nofollow == nil || it.SourceTitle == nil {
				t.Fatalf("row not normalised: %+v", it)
			}
			if seen[*it.SourceURL] {
				t.Fatalf("row %s twice", *it.SourceURL)
			}
			seen[*it.SourceURL] = true
		}
	}
	if len(seen) != 25000 {
		t.Fatalf("%d distinct rows", len(seen))
	}
	// Past the end: an empty page.
	page, err := c.Fetch(context.Background(), providers.Request{Endpoint: "backlinks", Domain: "rows-25000.example", Offset: 30000})
	if err != nil || len(page.Items) != 0 || page.Total != 25000 {
		t.Fatalf("past the end: %+v %v", page, err)
	}
}

// TestSandboxExportNext: exportbacklinks chained by next until the end;
// every row once, and the same backlinks as the backlinks endpoint.
func TestSandboxExportNext(t *testing.T) {
	t.Parallel()
	_, base := startSandbox(t, sandbox.Options{Seed: 1})
	c := sandboxClient(t, base)
	seen := map[string]bool{}
	cursor, offset, calls := "", 0, 0
	for {
		calls++
		page, err := c.Fetch(context.Background(), providers.Request{Endpoint: "exportbacklinks", Domain: "rows-25000.example", Page: calls, Offset: offset, Cursor: cursor})
		if err != nil {
			t.Fatal(err)
		}
		for _, it := range page.Items {
			if it.Kind != "backlink" || it.SourceURL == nil || seen[*it.SourceURL] {
				t.Fatalf("bad or repeated row %+v", it)
			}
			seen[*it.SourceURL] = true
		}
		if page.Total != -1 {
			t.Errorf("page %d: total %d; the sandbox's count is per page, as in the docs' example", calls, page.Total)
		}
		offset += len(page.Items)
		if page.Next == "" {
			break
		}
		cursor = page.Next
		if calls > 10 {
			t.Fatal("no end")
		}
	}
	if calls != 3 || len(seen) != 25000 {
		t.Fatalf("%d calls, %d rows", calls, len(seen))
	}
	// The export is another way to read the same backlinks.
	first, err := c.Fetch(context.Background(), providers.Request{Endpoint: "backlinks", Domain: "rows-25000.example"})
	if err != nil {
		t.Fatal(err)
	}
	for _, it := range first.Items {
		if !seen[*it.SourceURL] {
			t.Fatalf("%s is in backlinks but not in the export", *it.SourceURL)
		}
	}
}

// TestSandboxNextTokens: tokens are opaque, tied to endpoint and domain,
// and a garbled one is a 400.
func TestSandboxNextTokens(t *testing.T) {
	t.Parallel()
	_, base := startSandbox(t, sandbox.Options{Seed: 1})
	c := sandboxClient(t, base)
	page, err := c.Fetch(context.Background(), providers.Request{Endpoint: "exportbacklinks", Domain: "rows-120.example", Limit: 50})
	if err != nil || page.Next == "" || strings.Contains(page.Next, "rows-120") {
		t.Fatalf("%v %q", err, page.Next)
	}
	tok := page.Next
	for name, req := range map[string]providers.Request{
		"garbled":        {Endpoint: "exportbacklinks", Domain: "rows-120.example", Cursor: tok[:len(tok)-2] + "xx"},
		"not base64":     {Endpoint: "exportbacklinks", Domain: "rows-120.example", Cursor: "%%%"},
		"another domain": {Endpoint: "exportbacklinks", Domain: "rows-121.example", Cursor: tok},
		"another export": {Endpoint: "exportpages", Domain: "rows-120.example", Cursor: tok},
	} {
		_, err := c.Fetch(context.Background(), req)
		if pe, ok := providers.AsError(err); !ok || pe.Class != providers.Fatal || pe.Code != "http 400" || !strings.Contains(pe.Message, "next") {
			t.Errorf("%s: %v", name, err)
		}
	}
	page2, err := c.Fetch(context.Background(), providers.Request{Endpoint: "exportbacklinks", Domain: "rows-120.example", Limit: 50, Offset: 50, Cursor: tok})
	if err != nil || len(page2.Items) != 50 || page2.Next == "" {
		t.Fatalf("%v %d", err, len(page2.Items))
	}
	last, err := c.Fetch(context.Background(), providers.Request{Endpoint: "exportbacklinks", Domain: "rows-120.example", Limit: 50, Offset: 100, Cursor: page2.Next})
	if err != nil || len(last.Items) != 20 || last.Next != "" {
		t.Fatalf("%v %d %q", err, len(last.Items), last.Next)
	}
}

// TestSandboxSummaries: single-call endpoints agree with the backlink count.
func TestSandboxSummaries(t *testing.T) {
	t.Parallel()
	_, base := startSandbox(t, sandbox.Options{Seed: 1})
	c := sandboxClient(t, base)
	page, err := c.Fetch(context.Background(), providers.Request{Endpoint: "anabacklinks", Domain: "rows-25000.example"})
	if err != nil || len(page.Items) != 1 || page.Items[0].Kind != "backlink_count" || string(page.Items[0].Raw) != `{"backlinks":25000}` || page.Total != -1 {
		t.Fatalf("%+v %v", page, err)
	}
	page, err = c.Fetch(context.Background(), providers.Request{Endpoint: "linkspread", Domain: "rows-25000.example"})
	if err != nil || len(page.Items) != 2 || string(page.Items[0].Raw) != `{"follow":22500}` || string(page.Items[1].Raw) != `{"nofollow":2500}` {
		t.Fatalf("%+v %v", page, err)
	}
	page, err = c.Fetch(context.Background(), providers.Request{Endpoint: "srspread", Domain: "rows-25000.example",
		Params: map[string]json.RawMessage{"showgroup": raw(`true`)}})
	if err != nil || len(page.Items) != 6 {
		t.Fatalf("%+v %v", page, err)
	}
	urls, _ := json.Marshal([]string{"rows-7.example", "rows-9.example"})
	page, err = c.Fetch(context.Background(), providers.Request{Endpoint: "anaurls", Domain: "rows-5.example", Params: map[string]json.RawMessage{"urls": urls}})
	if err != nil || len(page.Items) != 3 || !strings.Contains(string(page.Items[2].Raw), `"backlinks":9`) || page.Total != 3 {
		t.Fatalf("%+v %v", page, err)
	}
}

// TestSandboxBacklinkshortPOST: the POST form, chosen for a long list.
func TestSandboxBacklinkshortPOST(t *testing.T) {
	t.Parallel()
	_, base := startSandbox(t, sandbox.Options{Seed: 1})
	c := sandboxClient(t, base)
	list := make([]string, 400)
	for i := range list {
		list[i] = fmt.Sprintf("rows-%d.example", i)
	}
	urls, _ := json.Marshal(list)
	page, err := c.Fetch(context.Background(), providers.Request{Endpoint: "backlinkshort", Domain: "example.com", Params: map[string]json.RawMessage{"urls": urls}})
	if err != nil || len(page.Items) != 401 || !strings.Contains(string(page.Items[400].Raw), `"backlinks":399,`) {
		t.Fatalf("%v %d", err, len(page.Items))
	}
	res := make([]string, 500)
	for i := range res {
		res[i] = fmt.Sprintf("res-%d", i)
	}
	rj, _ := json.Marshal(res)
	page, err = c.Fetch(context.Background(), providers.Request{Endpoint: "iscached", Domain: "example.com", Params: map[string]json.RawMessage{"resources": rj}})
	if err != nil || len(page.Items) != 1 || !strings.Contains(string(page.Items[0].Raw), `"res-499":true`) {
		t.Fatalf("%v %+v", err, page)
	}
}

// TestSandboxHistogram: one row per day of the range (per month past a
// year), a date's row independent of the range asked for.
func TestSandboxHistogram(t *testing.T) {
	t.Parallel()
	_, base := startSandbox(t, sandbox.Options{Seed: 1})
	c := sandboxClient(t, base)
	fetch := func(endpoint, from, to string) *providers.Page {
		t.Helper()
		p := map[string]json.RawMessage{"from": raw(`"` + from + `"`)}
		if to != "" {
			p["to"] = raw(`"` + to + `"`)
		}
		page, err := c.Fetch(context.Background(), providers.Request{Endpoint: endpoint, Domain: "example.com", Params: p})
		if err != nil {
			t.Fatal(err)
		}
		return page
	}
	jan := fetch("backlinks-histogram", "20240101", "20240131")
	if len(jan.Items) != 31 || jan.Total != 31 {
		t.Fatalf("%d rows, total %d", len(jan.Items), jan.Total)
	}
	for i, it := range jan.Items {
		var row struct{ Date, Urls, Domains int }
		if err := json.Unmarshal(it.Raw, &row); err != nil || row.Date != 20240101+i || it.Kind != "backlinks_histogram" {
			t.Fatalf("row %d: %s %v", i, it.Raw, err)
		}
	}
	mid := fetch("backlinks-histogram", "20240115", "20240116")
	if string(mid.Items[0].Raw) != string(jan.Items[14].Raw) {
		t.Errorf("a date's row depends on the range: %s vs %s", mid.Items[0].Raw, jan.Items[14].Raw)
	}
	years := fetch("newandlost-histogram", "20200101", "20211201")
	if len(years.Items) != 24 || !strings.HasPrefix(string(years.Items[23].Raw), `{"date":20211201,"urls":{"new":`) {
		t.Fatalf("%d rows, last %s", len(years.Items), years.Items[len(years.Items)-1].Raw)
	}
	today := fetch("backlinks-histogram", time.Now().UTC().AddDate(0, 0, -2).Format("20060102"), "")
	if len(today.Items) != 3 {
		t.Errorf("to defaults to today: %d rows", len(today.Items))
	}
}

// TestSandboxShapes: every endpoint answers through the client, with the
// members and row fields (names and JSON types) of the seed's example.
func TestSandboxShapes(t *testing.T) {
	t.Parallel()
	_, base := startSandbox(t, sandbox.Options{Seed: 7})
	c := sandboxClient(t, base)
	for _, e := range endpoints {
		t.Run(e.name, func(t *testing.T) {
			req := providers.Request{Endpoint: e.name, Domain: "rows-120.example", Limit: 100, Params: requiredParams(e.name)}
			if e.name == "iscached" {
				req.Params = map[string]json.RawMessage{"resources": raw(`["httpstatus","backlinks"]`)}
			}
			page, err := c.Fetch(context.Background(), req)
			if err != nil {
				t.Fatal(err)
			}
			if len(page.Items) == 0 {
				t.Fatal("no rows")
			}
			again, _ := c.Fetch(context.Background(), req)
			if !reflect.DeepEqual(page, again) && !strings.HasSuffix(e.name, "histogram") {
				t.Error("not deterministic")
			}
			// The whole body, compared member by member with the example.
			hreq, _ := http.NewRequest(http.MethodGet, base+"/"+e.name+"?"+sandboxQuery(e), nil)
			hreq.SetBasicAuth("u", "p")
			resp, err := http.DefaultClient.Do(hreq)
			if err != nil {
				t.Fatal(err)
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if ct := resp.Header.Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
				t.Errorf("content type %q", ct)
			}
			example, _ := os.ReadFile(filepath.Join("testdata", e.name+".json"))
			var got, want any
			json.Unmarshal(body, &got)
			json.Unmarshal(example, &want)
			if diff := sameShape("", got, want); diff != "" {
				t.Errorf("%s\nsandbox: %.400s", diff, body)
			}
			for _, it := range page.Items {
				if it.Kind != e.kind {
					t.Errorf("kind %q", it.Kind)
				}
			}
		})
	}
}

func sandboxQuery(e endpoint) string {
	switch {
	case e.paging == pageDates:
		return "url=rows-120.example&from=20200101&to=20200131"
	case e.target == targetURLs:
		return "urls[0]=rows-120.example&urls[1]=rows-5.example"
	case e.resources:
		return "url=rows-120.example&resources=httpstatus,backlinks"
	case e.paging == pageNext:
		return "url=rows-120.example&limit=1"
	}
	return "url=rows-120.example&limit=3&offset=0"
}

// sameShape compares object keys recursively (lists by their first
// element) and scalar JSON types; "" when alike.
func sameShape(path string, got, want any) string {
	switch w := want.(type) {
	case map[string]any:
		g, ok := got.(map[string]any)
		if !ok {
			return fmt.Sprintf("%s: %T, want an object", path, got)
		}
		if gk, wk := keys(g), keys(w); !reflect.DeepEqual(gk, wk) {
			return fmt.Sprintf("%s: keys %v, want %v", path, gk, wk)
		}
		for k := range w {
			if d := sameShape(path+"."+k, g[k], w[k]); d != "" {
				return d
			}
		}
	case []any:
		g, ok := got.([]any)
		if !ok {
			return fmt.Sprintf("%s: %T, want a list", path, got)
		}
		if len(w) > 0 && len(g) > 0 {
			return sameShape(path+"[0]", g[0], w[0])
		}
	default:
		if reflect.TypeOf(got) != reflect.TypeOf(want) {
			return fmt.Sprintf("%s: %T, want %T", path, got, want)
		}
	}
	return ""
}

func keys(m map[string]any) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// TestSandboxDeterministic: same seed, same rows; another seed, others.
func TestSandboxDeterministic(t *testing.T) {
	t.Parallel()
	_, b1 := startSandbox(t, sandbox.Options{Seed: 1})
	_, b1again := startSandbox(t, sandbox.Options{Seed: 1})
	_, b2 := startSandbox(t, sandbox.Options{Seed: 2})
	req := providers.Request{Endpoint: "referringdomains", Domain: "example.com", Limit: 20}
	p1, _ := sandboxClient(t, b1).Fetch(context.Background(), req)
	p1again, _ := sandboxClient(t, b1again).Fetch(context.Background(), req)
	p2, _ := sandboxClient(t, b2).Fetch(context.Background(), req)
	if !reflect.DeepEqual(p1, p1again) || reflect.DeepEqual(p1.Items, p2.Items) {
		t.Error("data is not a function of the seed")
	}
}

// TestSandboxAuth: `bad` or missing credentials get the vendor's 401.
func TestSandboxAuth(t *testing.T) {
	t.Parallel()
	s, base := startSandbox(t, sandbox.Options{Seed: 1})
	for _, cred := range [][2]string{{"bad", "x"}, {"x", "bad"}} {
		c, _ := New(Config{User: cred[0], Password: providers.Secret(cred[1]), BaseURL: base})
		_, err := c.Fetch(context.Background(), providers.Request{Endpoint: "backlinks", Domain: "example.com"})
		pe, ok := providers.AsError(err)
		if !ok || pe.Class != providers.Fatal || !pe.Account || pe.Code != "http 401" || !strings.Contains(pe.Message, "Login or password is wrong") {
			t.Errorf("%v: %v", cred, err)
		}
	}
	for _, set := range []func(*http.Request){
		func(r *http.Request) {},
		func(r *http.Request) { r.SetBasicAuth("", "p") },
		func(r *http.Request) { r.SetBasicAuth("u", "") },
	} {
		r, _ := http.NewRequest(http.MethodGet, base+"/backlinks?url=example.com", nil)
		set(r)
		resp, err := http.DefaultClient.Do(r)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != 401 || resp.Header.Get("WWW-Authenticate") == "" {
			t.Errorf("status %d", resp.StatusCode)
		}
	}
	if st := s.Stats()[Name]; st.Calls != 5 {
		t.Errorf("stats %+v", st)
	}
}

// TestSandboxBadRequests: what the sandbox refuses with 400 (and 405).
func TestSandboxBadRequests(t *testing.T) {
	t.Parallel()
	_, base := startSandbox(t, sandbox.Options{Seed: 1})
	tests := []struct {
		method, path string
		status       int
	}{
		{"GET", "/backlinks?url=example.com&limit=10001", 400},
		{"GET", "/backlinks?url=example.com&limit=0", 400},
		{"GET", "/backlinks?url=example.com&limit=x", 400},
		{"GET", "/backlinks?url=example.com&offset=-1", 400},
		{"GET", "/backlinks?limit=10", 400},
		{"GET", "/backlinks?url=example.com&order[0]=-nope", 400},
		{"GET", "/backlinks?url=example.com&order[]=-sr", 200},
		{"GET", "/backlinks?url=example.com&where=pos%20gt%2010", 200},
		{"GET", "/backlinks?url=example.com&where=pos+gt+10", 200},
		{"GET", "/backlinks?url=example.com&where=active%20eq%20true", 400},
		{"GET", "/exportbacklinks?url=example.com&limit=10001", 400},
		{"GET", "/backlinks-histogram?url=example.com", 400},
		{"GET", "/backlinks-histogram?url=example.com&from=20200230", 400},
		{"GET", "/backlinks-histogram?url=example.com&from=20200301&to=20200201", 400},
		{"GET", "/anaurls?url=example.com", 400},
		{"GET", "/anaurls?urls[]=example.com", 200},
		{"GET", "/iscached?url=example.com", 400},
		{"POST", "/backlinkshort", 400}, // no JSON body
		{"POST", "/backlinks?url=example.com", 405},
		{"GET", "/nope?url=example.com", 404},
	}
	for _, tt := range tests {
		r, _ := http.NewRequest(tt.method, base+tt.path, nil)
		r.SetBasicAuth("u", "p")
		resp, err := http.DefaultClient.Do(r)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != tt.status {
			t.Errorf("%s %s: %d %s", tt.method, tt.path, resp.StatusCode, body)
		}
	}
	// Through the client, a 400 is fatal and carries the vendor's message.
	c := sandboxClient(t, base)
	_, err := c.Fetch(context.Background(), providers.Request{Endpoint: "exportbacklinks", Domain: "example.com", Cursor: "garbage"})
	if pe, ok := providers.AsError(err); !ok || pe.Class != providers.Fatal || !strings.Contains(pe.Message, "Bad Request") {
		t.Errorf("%v", err)
	}
}

// TestSandboxFailures: under --fail every injected fault is retryable and
// each kind shows up.
func TestSandboxFailures(t *testing.T) {
	t.Parallel()
	s, base := startSandbox(t, sandbox.Options{Seed: 3, Fail: 1})
	c := sandboxClient(t, base)
	codes := map[string]int{}
	const calls = 120
	for i := 0; i < calls; i++ {
		_, err := c.Fetch(context.Background(), providers.Request{Endpoint: "backlinks", Domain: "example.com", Limit: 20})
		pe, ok := providers.AsError(err)
		if !ok || pe.Class != providers.Retryable {
			t.Fatalf("call %d: %v", i, err)
		}
		codes[pe.Code]++
	}
	for _, code := range []string{"http 500", "http 502", "http 503", "bad body", "transport"} {
		if codes[code] == 0 {
			t.Errorf("no %q among %v", code, codes)
		}
	}
	// Go's transport resends a GET whose reused connection was dropped, so
	// the sandbox may see more calls than Fetch made; each was a failure.
	if st := s.Stats()[Name]; st.InjectedFailures != st.Calls || st.Calls < calls {
		t.Errorf("stats %+v", st)
	}
}

// BenchmarkSandboxBacklinksPage: a page of 10,000 backlinks, served and decoded.
func BenchmarkSandboxBacklinksPage(b *testing.B) {
	_, base := startSandbox(b, sandbox.Options{Seed: 1})
	c := sandboxClient(b, base)
	for b.Loop() {
		if _, err := c.Fetch(context.Background(), providers.Request{Endpoint: "backlinks", Domain: "rows-25000.example", Limit: 10000}); err != nil {
			b.Fatal(err)
		}
	}
}

// TestExportPagesUnderTheCap: exportpages pages carry all their links
// (--links-per-page), and the client's page size keeps a call well under
// the body cap even at a thousand links a page, ten times the sandbox's
// default, where 10,000 pages a call would pass it.
func TestExportPagesUnderTheCap(t *testing.T) {
	t.Parallel()
	pg, err := sandboxClient(t, "http://x.invalid").Paging("exportpages")
	if err != nil {
		t.Fatal(err)
	}
	for _, links := range []int{0, 1000} {
		t.Run(fmt.Sprint("links ", links), func(t *testing.T) {
			_, base := startSandbox(t, sandbox.Options{Seed: 1, LinksPerPage: links})
			want := links
			if want == 0 {
				want = sandbox.DefaultLinksPerPage
			}
			req, _ := http.NewRequest(http.MethodGet, fmt.Sprintf("%s/exportpages?url=rows-20000.example&limit=%d", base, pg.PageSize), nil)
			req.SetBasicAuth("sandbox", "sandbox")
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			var env struct {
				Next     string `json:"next"`
				Response []struct {
					IntL []json.RawMessage `json:"intL"`
					ExtL []json.RawMessage `json:"extL"`
				} `json:"response"`
			}
			if err := json.Unmarshal(body, &env); err != nil || len(env.Response) != pg.PageSize || env.Next == "" {
				t.Fatalf("%d rows, next %q, %v", len(env.Response), env.Next, err)
			}
			for i, p := range env.Response {
				if len(p.IntL)+len(p.ExtL) != want || len(p.IntL) == 0 || len(p.ExtL) == 0 {
					t.Fatalf("page %d: %d internal + %d external links, want %d", i, len(p.IntL), len(p.ExtL), want)
				}
			}
			perPage := len(body) / pg.PageSize
			t.Logf("%d links a page: %d bytes a page, %d a call of %d pages", want, perPage, len(body), pg.PageSize)
			if want >= 100 && perPage < 10_000 {
				t.Errorf("a page with %d links is %d bytes; a real one is over 10 KB", want, perPage)
			}
			if len(body) > maxBody/4 {
				t.Errorf("a call is %d bytes, not well under the cap of %d", len(body), maxBody)
			}
			if want == 1000 && int64(perPage)*maxLimit <= maxBody {
				t.Errorf("at %d bytes a page the vendor's maximum of %d pages a call would fit the cap: the test proves nothing", perPage, maxLimit)
			}
		})
	}
}

// TestSandboxUnfinished: with --unfinished N the first N answers per
// endpoint and domain say exportFinished: false and hold part of the
// data; then the export is done. The client waits (Pending) by default
// and keeps the partial page when told to accept it.
func TestSandboxUnfinished(t *testing.T) {
	t.Parallel()
	_, base := startSandbox(t, sandbox.Options{Seed: 1, Unfinished: 2})
	c := sandboxClient(t, base)
	accept, _ := New(Config{User: "sandbox", Password: "sandbox", BaseURL: base, AcceptUnfinished: true})
	req := providers.Request{Endpoint: "backlinks", Domain: "rows-100.example"}
	_, err := c.Fetch(context.Background(), req)
	if pe, ok := providers.AsError(err); !ok || pe.Class != providers.Pending || pe.Code != "export unfinished" || pe.RetryAfter != DefaultUnfinishedWait {
		t.Fatalf("first answer: %v, want pending", err)
	}
	p, err := accept.Fetch(context.Background(), req)
	if err != nil || p.Total != 50 || len(p.Items) != 50 {
		t.Fatalf("second answer, accepted: total %d, %d rows, %v; want the 50 rows indexed so far", p.Total, len(p.Items), err)
	}
	p, err = c.Fetch(context.Background(), req)
	if err != nil || p.Total != 100 || len(p.Items) != 100 {
		t.Fatalf("third answer: %+v %v, want the finished export", p, err)
	}
	// Another domain and another endpoint have their own exports.
	if _, err := c.Fetch(context.Background(), providers.Request{Endpoint: "backlinks", Domain: "rows-7.example"}); providers.ClassOf(err) != providers.Pending {
		t.Errorf("another domain: %v, want pending", err)
	}
	if _, err := c.Fetch(context.Background(), providers.Request{Endpoint: "referringdomains", Domain: "rows-100.example"}); providers.ClassOf(err) != providers.Pending {
		t.Errorf("another endpoint: %v, want pending", err)
	}
	// Endpoints without the flag (the exports) are never unfinished.
	if _, err := c.Fetch(context.Background(), providers.Request{Endpoint: "exportbacklinks", Domain: "rows-9.example"}); err != nil {
		t.Errorf("exportbacklinks: %v", err)
	}
}
