package xovi

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/linkharvest/linkharvest/providers"
	"github.com/linkharvest/linkharvest/providers/providertest"
)

// testKey has characters that paths and queries escape, so that every
// escaped form of the key is checked for leaks too.
const testKey = "k3y/Secret+&=x?y"

func newClient(t testing.TB, base string, queryForm bool) *Client {
	t.Helper()
	c, err := New(Config{Key: testKey, BaseURL: base, QueryForm: queryForm})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func xmlParams() map[string]json.RawMessage {
	return map[string]json.RawMessage{"format": json.RawMessage(`"xml"`)}
}

func show(p *string) string {
	if p == nil {
		return "<nil>"
	}
	return fmt.Sprintf("%q", *p)
}

type want struct{ source, target, anchor, title string }

func checkRow(t *testing.T, i int, it providers.Item, w want) {
	t.Helper()
	if it.Kind != KindBacklink {
		t.Errorf("item %d: kind %q", i, it.Kind)
	}
	for _, f := range []struct {
		name string
		got  *string
		want string
	}{{"source_url", it.SourceURL, w.source}, {"target_url", it.TargetURL, w.target}, {"anchor", it.Anchor, w.anchor}, {"source_title", it.SourceTitle, w.title}} {
		if f.got == nil || *f.got != f.want {
			t.Errorf("item %d: %s = %s, want %q", i, f.name, show(f.got), f.want)
		}
	}
	if it.Nofollow != nil {
		t.Errorf("item %d: nofollow = %v, want nil (XOVI has no such field)", i, *it.Nofollow)
	}
}

// TestContractJSON replays the reconstructed JSON answer (built around the
// seed's webtitle lines) in both resultCount placements.
func TestContractJSON(t *testing.T) {
	t.Parallel()
	for _, file := range []string{"getBacklinks.json", "getBacklinks_apimeta.json"} {
		t.Run(file, func(t *testing.T) {
			body := providertest.Testdata(t, file)
			srv, reqs := providertest.Serve(t, 200, map[string]string{"Content-Type": "application/json"}, body)
			page, err := newClient(t, srv.URL, false).Fetch(context.Background(),
				providers.Request{Endpoint: "backlinks", Domain: "www.xovi.de", Page: 1, Offset: 0, Limit: 1000})
			if err != nil {
				t.Fatal(err)
			}
			r := (*reqs)[0]
			if r.URL.EscapedPath() != "/links/getBacklinks/k3y%2FSecret+&=x%3Fy/www.xovi.de/json/1000/0" || r.URL.RawQuery != "" {
				t.Errorf("request %s ? %s", r.URL.EscapedPath(), r.URL.RawQuery)
			}
			if r.Header.Get("Accept") != "application/json" {
				t.Errorf("Accept %q", r.Header.Get("Accept"))
			}
			if page.Total != 35870 || page.Cost != 1 || page.CostUnit != "credits" || page.Next != "" || len(page.Items) != 2 {
				t.Fatalf("page total %d cost %v %s next %q items %d", page.Total, page.Cost, page.CostUnit, page.Next, len(page.Items))
			}
			checkRow(t, 0, page.Items[0], want{
				source: "http://www.unternehmer-blog.example/business-es-sind-die-kleinigkeiten/", target: "http://www.xovi.de/",
				anchor: "XOVI", title: "» Business: Es sind die Kleinigkeiten …...",
			})
			checkRow(t, 1, page.Items[1], want{
				source: "http://www.startup-magazin.example/2015/fuenf-deutsche-internet-unternehmen/", target: "http://www.xovi.de/seo-tool/",
				anchor: "", title: "Fünf deutsche Internet-Unternehmen, die es 2015 n...",
			})
			var env struct{ APIResult []json.RawMessage }
			if err := json.Unmarshal(body, &env); err != nil {
				t.Fatal(err)
			}
			for i, it := range page.Items {
				if !bytes.Equal(it.Raw, env.APIResult[i]) || !bytes.Contains(body, it.Raw) {
					t.Errorf("item %d: raw is not verbatim: %s", i, it.Raw)
				}
			}
			if !bytes.Contains(page.Items[0].Raw, []byte(`"webtitle":"» Business: Es sind die Kleinigkeiten \u2026..."`)) {
				t.Errorf("raw lost the vendor's escapes: %s", page.Items[0].Raw)
			}
		})
	}
}

// TestContractXML replays the reconstructed XML answer: rows become JSON
// objects of their elements, the title's HTML entity is decoded.
func TestContractXML(t *testing.T) {
	t.Parallel()
	srv, reqs := providertest.Serve(t, 200, map[string]string{"Content-Type": "text/xml"}, providertest.Testdata(t, "getBacklinks.xml"))
	page, err := newClient(t, srv.URL, false).Fetch(context.Background(),
		providers.Request{Endpoint: "backlinks", Domain: "www.xovi.de", Page: 1, Params: xmlParams()})
	if err != nil {
		t.Fatal(err)
	}
	r := (*reqs)[0]
	if !strings.HasSuffix(r.URL.EscapedPath(), "/www.xovi.de/xml/1000/0") || !strings.Contains(r.Header.Get("Accept"), "xml") {
		t.Errorf("request %s, Accept %q", r.URL.EscapedPath(), r.Header.Get("Accept"))
	}
	if page.Total != 35870 || page.Cost != 1 || len(page.Items) != 2 {
		t.Fatalf("page total %d cost %v items %d", page.Total, page.Cost, len(page.Items))
	}
	checkRow(t, 0, page.Items[0], want{
		source: "http://www.unternehmer-blog.example/business-es-sind-die-kleinigkeiten/", target: "http://www.xovi.de/",
		anchor: "XOVI", title: "» Business: Es sind die...",
	})
	checkRow(t, 1, page.Items[1], want{
		source: "http://www.startup-magazin.example/2015/fuenf-deutsche-internet-unternehmen/", target: "http://www.xovi.de/seo-tool/",
		anchor: "", title: "Fünf deutsche Internet-Unternehmen, die es 2015 n...",
	})
	wantRaw := []string{
		`{"linkingUrl":"http://www.unternehmer-blog.example/business-es-sind-die-kleinigkeiten/","anchor":"XOVI","linksIntern":"85","linksExtern":"12","webtitle":"&raquo; Business: Es sind die...","linkedUrl":"http://www.xovi.de/"}`,
		`{"linkingUrl":"http://www.startup-magazin.example/2015/fuenf-deutsche-internet-unternehmen/","anchor":"","linksIntern":"143","linksExtern":"31","webtitle":"F&uuml;nf deutsche Internet-Unternehmen, die es 2015 n...","linkedUrl":"http://www.xovi.de/seo-tool/"}`,
	}
	for i, it := range page.Items {
		if string(it.Raw) != wantRaw[i] {
			t.Errorf("item %d raw\n got %s\nwant %s", i, it.Raw, wantRaw[i])
		}
	}
}

func TestContractResultEmpty(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		file   string
		offset int
		total  int
	}{
		{"result_empty.json", 0, 0},     // the first page is empty: so is the domain
		{"result_empty.xml", 0, 0},      //
		{"result_empty.json", 3000, -1}, // past the end: the total is not known
	} {
		srv, _ := providertest.Serve(t, 200, nil, providertest.Testdata(t, tc.file))
		page, err := newClient(t, srv.URL, false).Fetch(context.Background(),
			providers.Request{Endpoint: "backlinks", Domain: "no-links.example", Offset: tc.offset, Limit: 1000})
		if err != nil {
			t.Fatalf("%s: %v", tc.file, err)
		}
		if len(page.Items) != 0 || page.Total != tc.total || page.Cost != 1 {
			t.Errorf("%s at %d: %d items, total %d, cost %v; want 0, %d, 1", tc.file, tc.offset, len(page.Items), page.Total, page.Cost, tc.total)
		}
	}
}

func TestQueryForm(t *testing.T) {
	t.Parallel()
	srv, reqs := providertest.Serve(t, 200, nil, providertest.Testdata(t, "getBacklinks.json"))
	c := newClient(t, srv.URL+"/api/", true)
	if _, err := c.Fetch(context.Background(), providers.Request{Endpoint: "backlinks", Domain: "www.xovi.de", Offset: 2000, Limit: 1000}); err != nil {
		t.Fatal(err)
	}
	r := (*reqs)[0]
	q := r.URL.Query()
	if r.URL.Path != "/api/" || q.Get("service") != "links" || q.Get("method") != "getBacklinks" || q.Get("key") != testKey ||
		q.Get("domain") != "www.xovi.de" || q.Get("format") != "json" || q.Get("limit") != "1000" || q.Get("skip") != "2" {
		t.Errorf("query form request %s ? %s", r.URL.Path, r.URL.RawQuery)
	}
}

func TestWindow(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		offset, n, limit, skip, drop int
		ok                           bool
	}{
		{0, 1000, 1000, 0, 0, true},
		{1000, 1000, 1000, 1, 0, true},
		{2000, 1000, 1000, 2, 0, true},
		{2000, 500, 500, 4, 0, true},
		{2000, 300, 329, 6, 26, true}, // rows 1974..2302, of which 2000..2299
		{1000, 300, 325, 3, 25, true},
		{999, 2, 3, 333, 0, true},
		{5, 10, 15, 0, 5, true},
		{0, 1, 1, 0, 0, true},
		{1, 1000, 0, 0, 0, false},
		{5, 1000, 0, 0, 0, false},
		{0, 1001, 0, 0, 0, false},
		{-1, 10, 0, 0, 0, false},
		{0, 0, 0, 0, 0, false},
	} {
		l, s, d, ok := window(tc.offset, tc.n)
		if ok != tc.ok || ok && (l != tc.limit || s != tc.skip || d != tc.drop) {
			t.Errorf("window(%d, %d) = %d, %d, %d, %v; want %d, %d, %d, %v", tc.offset, tc.n, l, s, d, ok, tc.limit, tc.skip, tc.drop, tc.ok)
		}
	}
	// Any answer covers exactly the rows asked for.
	r := rand.New(rand.NewPCG(1, 2))
	for i := 0; i < 20000; i++ {
		off, n := r.IntN(100000), 1+r.IntN(1000)
		if r.IntN(2) == 0 {
			off = n * r.IntN(100) // the pipeline's offsets
		}
		l, s, d, ok := window(off, n)
		if !ok {
			if off%n == 0 {
				t.Fatalf("window(%d, %d): a multiple of n must be reachable", off, n)
			}
			continue
		}
		if l < n || l > MaxLimit || s*l+d != off || d+n > l {
			t.Fatalf("window(%d, %d) = %d, %d, %d", off, n, l, s, d)
		}
	}
}

// TestTrim: a page that is not a whole vendor page is cut from the
// smallest vendor page that holds it.
func TestTrim(t *testing.T) {
	t.Parallel()
	const total = 2300
	var paths []string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		paths = append(paths, r.URL.EscapedPath())
		seg := strings.Split(r.URL.EscapedPath(), "/")
		limit, _ := strconv.Atoi(seg[len(seg)-2])
		skip, _ := strconv.Atoi(seg[len(seg)-1])
		var rows []string
		for i := skip * limit; i < min((skip+1)*limit, total); i++ {
			rows = append(rows, fmt.Sprintf(`{"linkingUrl":"https://s%d.example/","anchor":"a","linksIntern":1,"linksExtern":1,"webtitle":"t","linkedUrl":"https://x.example/"}`, i))
		}
		fmt.Fprintf(w, `{"apiErrorCode":0,"apiErrorMessage":"0k.","resultCount":%d,"apiResult":[%s]}`, total, strings.Join(rows, ","))
	}))
	defer srv.Close()
	c := newClient(t, srv.URL, false)
	for _, tc := range []struct {
		offset, limit int
		path          string
	}{
		{2000, 300, "/json/329/6"},
		{5, 10, "/json/15/0"},
		{0, 1000, "/json/1000/0"},
		{1000, 1000, "/json/1000/1"},
		{2000, 1000, "/json/1000/2"},
		{1998, 4, "/json/6/333"},
	} {
		paths = nil
		page, err := c.Fetch(context.Background(), providers.Request{Endpoint: "backlinks", Domain: "x.example", Offset: tc.offset, Limit: tc.limit})
		if err != nil {
			t.Fatal(err)
		}
		if !strings.HasSuffix(paths[0], tc.path) {
			t.Errorf("offset %d limit %d: request %s, want %s", tc.offset, tc.limit, paths[0], tc.path)
		}
		n := min(tc.limit, total-tc.offset)
		if len(page.Items) != n || page.Total != total {
			t.Fatalf("offset %d limit %d: %d items, total %d", tc.offset, tc.limit, len(page.Items), page.Total)
		}
		for i, it := range page.Items {
			if want := fmt.Sprintf("https://s%d.example/", tc.offset+i); *it.SourceURL != want {
				t.Fatalf("offset %d limit %d: item %d is %s, want %s", tc.offset, tc.limit, i, *it.SourceURL, want)
			}
		}
	}
}

func TestAPIResultShapes(t *testing.T) {
	t.Parallel()
	row := func(i int) string {
		return fmt.Sprintf(`{"linkingUrl":"https://s%d.example/","linkedUrl":"https://x.example/"}`, i)
	}
	for _, tc := range []struct {
		name    string
		result  string
		sources []string
		bad     bool
	}{
		{"list", `[` + row(0) + `,` + row(1) + `]`, []string{"https://s0.example/", "https://s1.example/"}, false},
		{"object by index", `{"0":` + row(0) + `,"2":` + row(2) + `,"1":` + row(1) + `}`, []string{"https://s0.example/", "https://s2.example/", "https://s1.example/"}, false},
		{"one row", row(7), []string{"https://s7.example/"}, false},
		{"empty list", `[]`, nil, false},
		{"empty object", `{}`, nil, false},
		{"null", `null`, nil, false},
		{"empty string", `""`, nil, false},
		{"false", `false`, nil, false},
		{"text", `"rows"`, nil, true},
		{"number", `12`, nil, true},
		{"rows not objects", `[1,"a",null]`, []string{"", "", ""}, false},
	} {
		body := `{"apiErrorCode":"0","apiErrorMessage":"0k.","apiResult":` + tc.result + `}`
		page, err := decodeForTest(t, []byte(body))
		if tc.bad {
			if providers.ClassOf(err) != providers.Retryable {
				t.Errorf("%s: %v, want a bad body", tc.name, err)
			}
			continue
		}
		if err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		if len(page.Items) != len(tc.sources) {
			t.Fatalf("%s: %d items, want %d", tc.name, len(page.Items), len(tc.sources))
		}
		for i, s := range tc.sources {
			got := ""
			if page.Items[i].SourceURL != nil {
				got = *page.Items[i].SourceURL
			}
			if got != s {
				t.Errorf("%s: item %d source %q, want %q", tc.name, i, got, s)
			}
		}
	}
}

// decodeForTest runs a 200 body through the client's judging.
func decodeForTest(t testing.TB, body []byte) (*providers.Page, error) {
	c := &Client{key: testKey, perCall: 1}
	env, err := parse(body)
	if err != nil {
		return nil, err
	}
	return c.page(env, 0, 0, MaxLimit)
}

// envJSON and envXML build an answer with a message, in both formats.
func envJSON(code, msg string) string {
	return `{"apiMeta":{"service":"links","method":"getBacklinks"},"apiErrorCode":` + code + `,"apiErrorMessage":"` + msg + `","apiResult":[]}`
}

func envXML(code, msg string) string {
	return `<?xml version="1.0"?><response><apiMeta><service>links</service></apiMeta><apiErrorCode>` + code +
		`</apiErrorCode><apiErrorMessage>` + msg + `</apiErrorMessage><apiResult/></response>`
}

// TestErrorClasses: the seed's messages, HTTP statuses and broken bodies,
// in both formats; no message holds the key.
func TestErrorClasses(t *testing.T) {
	t.Parallel()
	type tc struct {
		name       string
		status     int
		header     map[string]string
		body       string
		class      providers.Class // 0: success (an empty page)
		account    bool
		code       string
		retryAfter time.Duration
	}
	var cases []tc
	for _, m := range []struct {
		msg     string
		code    string
		class   providers.Class
		account bool
	}{
		{"cost error", "6", providers.Fatal, true},
		{"no permission", "2", providers.Fatal, true},
		{"no access", "2", providers.Fatal, true},
		{"internal error", "3", providers.Retryable, false},
		{"maximum limit exeeded", "1", providers.Fatal, false},
		{"maximum limit exceeded", "1", providers.Fatal, false},
		{"param missing", "4", providers.Fatal, false},
		{"param invalid", "5", providers.Fatal, false},
		{"result empty", "0", 0, false},
		{"Result Empty", "0", 0, false},
		{"something new", "9", providers.Retryable, false},
	} {
		code := strings.ToLower(m.msg) // the message is the error's code
		cases = append(cases,
			tc{"json " + m.msg, 200, nil, envJSON(m.code, m.msg), m.class, m.account, code, 0},
			tc{"xml " + m.msg, 200, nil, envXML(m.code, m.msg), m.class, m.account, code, 0})
	}
	cases = append(cases,
		tc{"seed cost error", 200, nil, string(providertest.Testdata(t, "cost_error.json")), providers.Fatal, true, "cost error", 0},
		tc{"seed no permission", 200, nil, string(providertest.Testdata(t, "no_permission.xml")), providers.Fatal, true, "no permission", 0},
		tc{"0k. with a code", 200, nil, envJSON("5", "0k."), providers.Retryable, false, "apiErrorCode 5", 0},
		tc{"code as text", 200, nil, envJSON(`"x"`, "0k."), providers.Retryable, false, "apiErrorCode x", 0},
		tc{"429", 429, map[string]string{"Retry-After": "4"}, envJSON("7", "too many requests"), providers.Throttled, false, "http 429", 4 * time.Second},
		tc{"429 bare", 429, nil, ``, providers.Throttled, false, "http 429", 0},
		tc{"500 internal error", 500, nil, envJSON("3", "internal error"), providers.Retryable, false, "http 500", 0},
		tc{"502 html", 502, nil, `<html><body>Bad Gateway</body></html>`, providers.Retryable, false, "http 502", 0},
		tc{"503", 503, map[string]string{"Retry-After": "2"}, ``, providers.Retryable, false, "http 503", 2 * time.Second},
		tc{"401 bare", 401, nil, ``, providers.Fatal, true, "http 401", 0},
		tc{"403 no permission", 403, nil, envJSON("2", "no permission"), providers.Fatal, true, "no permission", 0},
		tc{"404 html", 404, nil, `<html><body>Not Found</body></html>`, providers.Fatal, false, "http 404", 0},
		tc{"404 result empty", 404, nil, envJSON("0", "result empty"), 0, false, "", 0},
		tc{"200 truncated json", 200, nil, string(providertest.Testdata(t, "getBacklinks.json")[:300]), providers.Retryable, false, "bad body", 0},
		tc{"200 truncated xml", 200, nil, string(providertest.Testdata(t, "getBacklinks.xml")[:400]), providers.Retryable, false, "bad body", 0},
		tc{"200 truncated xml at a row end", 200, nil, strings.SplitAfter(string(providertest.Testdata(t, "getBacklinks.xml")), "</item>")[0], providers.Retryable, false, "bad body", 0},
		tc{"200 malformed json", 200, nil, `{"apiErrorCode":0,"apiErrorMessage":"0k.","apiResult":[{"a":1,}]}`, providers.Retryable, false, "bad body", 0},
		tc{"200 malformed xml", 200, nil, `<response><apiErrorCode>0</apiErrorMessage></response>`, providers.Retryable, false, "bad body", 0},
		tc{"200 html", 200, nil, `<!DOCTYPE html><html><body>maintenance</body></html>`, providers.Retryable, false, "bad body", 0},
		tc{"200 empty", 200, nil, ``, providers.Retryable, false, "bad body", 0},
		tc{"200 text", 200, nil, `0k.`, providers.Retryable, false, "bad body", 0},
		tc{"200 no envelope", 200, nil, `{"status":"ok"}`, providers.Retryable, false, "bad body", 0},
		tc{"200 bad charset", 200, nil, `<?xml version="1.0" encoding="KOI8-R"?><r><apiErrorCode>0</apiErrorCode></r>`, providers.Retryable, false, "bad body", 0},
		// A vendor that echoes the key: scrubbed.
		tc{"echo in message", 200, nil, envJSON("4", "param missing for key "+strings.ReplaceAll(testKey, "/", `\/`)), providers.Retryable, false, "param missing for key REDACTED", 0},
		tc{"echo in 500", 500, nil, envJSON("3", "boom /links/getBacklinks/k3y%2FSecret+&=x%3Fy/x"), providers.Retryable, false, "http 500", 0},
	)
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			srv, _ := providertest.Serve(t, tc.status, tc.header, []byte(tc.body))
			page, err := newClient(t, srv.URL, false).Fetch(context.Background(), providers.Request{Endpoint: "backlinks", Domain: "xovi.de", Limit: 1000})
			if tc.class == 0 {
				if err != nil || len(page.Items) != 0 {
					t.Fatalf("err %v, want an empty page", err)
				}
				return
			}
			pe, ok := providers.AsError(err)
			if !ok {
				t.Fatalf("err = %v, want a *providers.Error", err)
			}
			if pe.Class != tc.class || pe.Account != tc.account || pe.Code != tc.code || pe.RetryAfter != tc.retryAfter || pe.Provider != Name {
				t.Errorf("got class %v account %v code %q retry-after %v; want %v %v %q %v (%v)",
					pe.Class, pe.Account, pe.Code, pe.RetryAfter, tc.class, tc.account, tc.code, tc.retryAfter, err)
			}
			providertest.NoSecret(t, err, testKey)
		})
	}
}

func TestCheckParams(t *testing.T) {
	t.Parallel()
	c := newClient(t, "http://x.invalid", false)
	for _, tc := range []struct {
		endpoint string
		params   map[string]json.RawMessage
		ok       bool
	}{
		{"backlinks", nil, true},
		{"backlinks", map[string]json.RawMessage{"format": json.RawMessage(`"json"`)}, true},
		{"backlinks", map[string]json.RawMessage{"format": json.RawMessage(`"XML"`)}, true},
		{"backlinks", map[string]json.RawMessage{"format": json.RawMessage(`"csv"`)}, false},
		{"backlinks", map[string]json.RawMessage{"format": json.RawMessage(`1`)}, false},
		{"backlinks", map[string]json.RawMessage{"limit": json.RawMessage(`100`)}, false},
		{"backlinks", map[string]json.RawMessage{"skip": json.RawMessage(`1`)}, false},
		{"backlinks", map[string]json.RawMessage{"key": json.RawMessage(`"k"`)}, false},
		{"getLinkedPages", nil, false},
	} {
		if err := checkParams(tc.endpoint, tc.params); (err == nil) != tc.ok {
			t.Errorf("CheckParams(%s, %v) = %v, want ok=%v", tc.endpoint, tc.params, err, tc.ok)
		}
	}
	if got := Vendor.Endpoints; len(got) != 1 || got[0] != "backlinks" {
		t.Errorf("Endpoints() = %v", got)
	}
	pg, err := c.Paging("backlinks")
	if err != nil || pg != (providers.Paging{Kind: providers.PagingOffset, PageSize: 1000, MaxBody: maxBody}) {
		t.Errorf("Paging = %+v, %v", pg, err)
	}
}

func TestNewAndConfig(t *testing.T) {
	t.Parallel()
	env := map[string]string{"XOVI_KEY": "k"}
	cfg := ConfigFromEnv(func(k string) string { return env[k] })
	if cfg.Key != "k" || cfg.BaseURL != "https://suite.xovi.net/api" || cfg.QueryForm {
		t.Errorf("ConfigFromEnv = %#v", cfg)
	}
	for _, tc := range []struct {
		cfg Config
		ok  bool
	}{
		{Config{Key: "k", BaseURL: "https://suite.xovi.net/api"}, true},
		{Config{Key: "k", BaseURL: "https://suite.xovi.net/api/", QueryForm: true}, true},
		{Config{BaseURL: "https://suite.xovi.net/api"}, false},
		{Config{Key: "k"}, false},
		{Config{Key: "k", BaseURL: "suite.xovi.net/api"}, false},
		{Config{Key: "k", BaseURL: "https://suite.xovi.net/api?key=k"}, false},
		{Config{Key: "k", BaseURL: "https://u:p@suite.xovi.net/api"}, false},
		{Config{Key: "k", BaseURL: "https://suite.xovi.net/api", CreditsPerCall: -1}, false},
	} {
		if _, err := New(tc.cfg); (err == nil) != tc.ok {
			t.Errorf("New(%v) = %v, want ok=%v", tc.cfg, err, tc.ok)
		}
	}
	hc := &http.Client{}
	if _, err := New(Config{Key: "k", BaseURL: "https://suite.xovi.net/api", Conn: providers.Conn{HTTPClient: hc}}); err != nil || hc.CheckRedirect != nil {
		t.Errorf("New changed the caller's http.Client (%v)", err)
	}
}

func TestCost(t *testing.T) {
	t.Parallel()
	body := providertest.Testdata(t, "getBacklinks.json")
	srv, _ := providertest.Serve(t, 200, nil, body)
	for _, tc := range []struct {
		perCall, perRow, want float64
	}{{0, 0, 1}, {2, 0, 2}, {0, 0.5, 1}, {1, 1, 3}} {
		c, _ := New(Config{Key: "k", BaseURL: srv.URL, CreditsPerCall: tc.perCall, CreditsPerRow: tc.perRow})
		page, err := c.Fetch(context.Background(), providers.Request{Endpoint: "backlinks", Domain: "xovi.de"})
		if err != nil || page.Cost != tc.want {
			t.Errorf("per call %v per row %v: cost %v (%v), want %v", tc.perCall, tc.perRow, page.Cost, err, tc.want)
		}
	}
}

func TestFetchRejectsBadRequests(t *testing.T) {
	t.Parallel()
	var calls atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { calls.Add(1) }))
	defer srv.Close()
	c := newClient(t, srv.URL, false)
	for _, req := range []providers.Request{
		{Endpoint: "backlinks", Domain: "x.com", Limit: 1001},
		{Endpoint: "backlinks", Domain: "x.com", Limit: -1},
		{Endpoint: "backlinks", Domain: "x.com", Offset: -1000},
		{Endpoint: "backlinks", Domain: "x.com", Offset: 1, Limit: 1000},
		{Endpoint: "backlinks", Domain: ""},
		{Endpoint: "summary", Domain: "x.com"},
		{Endpoint: "backlinks", Domain: "x.com", Params: map[string]json.RawMessage{"format": json.RawMessage(`"csv"`)}},
	} {
		_, err := c.Fetch(context.Background(), req)
		if providers.ClassOf(err) != providers.Fatal {
			t.Errorf("Fetch(%+v) = %v, want fatal", req, err)
		}
		providertest.NoSecret(t, err, testKey)
	}
	if calls.Load() != 0 {
		t.Errorf("%d calls made for requests that cannot succeed", calls.Load())
	}
}

func TestRedactionStrings(t *testing.T) {
	t.Parallel()
	cfg := Config{Key: testKey, BaseURL: "https://suite.xovi.net/api"}
	c, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	// Formatting, logs and transport errors: providertest (TestSuite).
	for _, qf := range []bool{false, true} {
		c.queryForm = qf
		cl := c.build("example.com", "json", 1000, 3)
		if strings.Contains(cl.redacted, "k3y") || !strings.Contains(cl.redacted, providers.Redacted) {
			t.Errorf("redacted URL %q", cl.redacted)
		}
		if RedactURL(cl.url) != cl.redacted {
			t.Errorf("RedactURL(%q) = %q, want %q", cl.url, RedactURL(cl.url), cl.redacted)
		}
	}
	for in, want := range map[string]string{
		"https://suite.xovi.net/api/links/getBacklinks/abc/xovi.de/json/100/0":           "https://suite.xovi.net/api/links/getBacklinks/REDACTED/xovi.de/json/100/0",
		"https://suite.xovi.net/api/links/getBacklinks/abc":                              "https://suite.xovi.net/api/links/getBacklinks/REDACTED",
		"https://suite.xovi.net/api/?service=links&method=getBacklinks&key=abc&domain=d": "https://suite.xovi.net/api/?service=links&method=getBacklinks&key=REDACTED&domain=d",
		"https://suite.xovi.net/api/?KEY=abc":                                            "https://suite.xovi.net/api/?KEY=REDACTED",
		"https://suite.xovi.net/api/?domain=key.de&monkey=1":                             "https://suite.xovi.net/api/?domain=key.de&monkey=1",
	} {
		if got := RedactURL(in); got != want {
			t.Errorf("RedactURL(%q) = %q, want %q", in, got, want)
		}
	}
}
