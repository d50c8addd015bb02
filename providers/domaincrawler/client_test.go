package domaincrawler

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/linkharvest/linkharvest/providers"
)

func raw(s string) json.RawMessage { return json.RawMessage(s) }

type seenRequest struct {
	method, path, rawQuery, user, pass, contentType string
	authOK                                          bool
	query                                           map[string][]string
	body                                            string
}

// recorder answers with the endpoint's seed example and keeps the request.
func recorder(t *testing.T) (*httptest.Server, func() seenRequest) {
	var mu sync.Mutex
	var last seenRequest
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		u, p, ok := r.BasicAuth()
		mu.Lock()
		last = seenRequest{method: r.Method, path: r.URL.Path, rawQuery: r.URL.RawQuery, user: u, pass: p, authOK: ok,
			query: r.URL.Query(), body: string(b), contentType: r.Header.Get("Content-Type")}
		mu.Unlock()
		name := strings.TrimPrefix(r.URL.Path, "/api/")
		file, err := os.ReadFile(filepath.Join("testdata", name+".json"))
		if err != nil {
			http.NotFound(w, r)
			return
		}
		w.Write(file)
	}))
	t.Cleanup(srv.Close)
	return srv, func() seenRequest { mu.Lock(); defer mu.Unlock(); return last }
}

// TestRequestBuilding: path, query (in the docs' form), method, body and
// auth of every endpoint.
func TestRequestBuilding(t *testing.T) {
	t.Parallel()
	manyURLs := make([]string, 300)
	for i := range manyURLs {
		manyURLs[i] = fmt.Sprintf("competitor-number-%03d.example.com", i)
	}
	manyJSON, _ := json.Marshal(manyURLs)
	wantBody, _ := json.Marshal(append([]string{"example.com"}, manyURLs...))
	tests := []struct {
		name  string
		req   providers.Request
		query string // raw query as sent
		where string // the where the server decodes, if any
		post  string // POST body; "" for GET
	}{
		{name: "backlinks first page", req: providers.Request{Endpoint: "backlinks", Domain: "example.com"},
			query: "url=example.com&limit=10000&offset=0"},
		{name: "backlinks order and where", req: providers.Request{Endpoint: "backlinks", Domain: "example.com", Offset: 20000, Limit: 5000,
			Params: map[string]json.RawMessage{"order": raw(`["-sr","extL"]`), "where": raw(`"pos gt 10 AND linktext like '%seo & co%'"`)}},
			query: "url=example.com&limit=5000&offset=20000&order[0]=-sr&order[1]=extL&where=pos%20gt%2010%20AND%20linktext%20like%20%27%25seo%20%26%20co%25%27",
			where: "pos gt 10 AND linktext like '%seo & co%'"},
		{name: "single order as a string", req: providers.Request{Endpoint: "referringdomains", Domain: "example.com", Limit: 100,
			Params: map[string]json.RawMessage{"order": raw(`"-links"`)}},
			query: "url=example.com&limit=100&offset=0&order[0]=-links"},
		{name: "linktexts", req: providers.Request{Endpoint: "linktexts", Domain: "example.com", Offset: 10000,
			Params: map[string]json.RawMessage{"where": raw(`"frequency gt 10"`)}},
			query: "url=example.com&limit=10000&offset=10000&where=frequency%20gt%2010", where: "frequency gt 10"},
		{name: "linkedpages", req: providers.Request{Endpoint: "linkedpages", Domain: "example.com"}, query: "url=example.com&limit=10000&offset=0"},
		{name: "tagtypes", req: providers.Request{Endpoint: "tagtypes", Domain: "example.com", Params: map[string]json.RawMessage{"where": raw(`"tag eq '301'"`), "order": raw(`["tag"]`)}},
			query: "url=example.com&limit=10000&offset=0&order[0]=tag&where=tag%20eq%20%27301%27", where: "tag eq '301'"},
		{name: "iplist", req: providers.Request{Endpoint: "iplist", Domain: "example.com"}, query: "url=example.com&limit=10000&offset=0"},
		{name: "tldlist", req: providers.Request{Endpoint: "tldlist", Domain: "example.com"}, query: "url=example.com&limit=10000&offset=0"},
		{name: "geolocationshort", req: providers.Request{Endpoint: "geolocationshort", Domain: "example.com"}, query: "url=example.com&limit=10000&offset=0"},
		{name: "outgoinghosts", req: providers.Request{Endpoint: "outgoinghosts", Domain: "example.com"}, query: "url=example.com&limit=10000&offset=0"},
		{name: "outgoinglinktexts", req: providers.Request{Endpoint: "outgoinglinktexts", Domain: "example.com"}, query: "url=example.com&limit=10000&offset=0"},
		{name: "outgoinglinkcount", req: providers.Request{Endpoint: "outgoinglinkcount", Domain: "example.com", Params: map[string]json.RawMessage{"order": raw(`["-linktype"]`)}},
			query: "url=example.com&limit=10000&offset=0&order[0]=-linktype"},
		{name: "outgoingtoppages", req: providers.Request{Endpoint: "outgoingtoppages", Domain: "example.com"}, query: "url=example.com&limit=10000&offset=0"},
		{name: "outgoinglinks", req: providers.Request{Endpoint: "outgoinglinks", Domain: "example.com", Params: map[string]json.RawMessage{"where": raw(`"nofollow eq true"`)}},
			query: "url=example.com&limit=10000&offset=0&where=nofollow%20eq%20true", where: "nofollow eq true"},
		{name: "anabacklinks", req: providers.Request{Endpoint: "anabacklinks", Domain: "example.com", Offset: 50, Limit: 7}, query: "url=example.com"},
		{name: "domainpopularity", req: providers.Request{Endpoint: "domainpopularity", Domain: "example.com"}, query: "url=example.com"},
		{name: "ippopularity", req: providers.Request{Endpoint: "ippopularity", Domain: "example.com"}, query: "url=example.com"},
		{name: "linkratio", req: providers.Request{Endpoint: "linkratio", Domain: "example.com"}, query: "url=example.com"},
		{name: "linkspread", req: providers.Request{Endpoint: "linkspread", Domain: "example.com"}, query: "url=example.com"},
		{name: "linktypes", req: providers.Request{Endpoint: "linktypes", Domain: "example.com"}, query: "url=example.com"},
		{name: "linktextdistribution", req: providers.Request{Endpoint: "linktextdistribution", Domain: "example.com", Params: map[string]json.RawMessage{"order": raw(`["-refdoms","-frequency"]`)}},
			query: "url=example.com&order[0]=-refdoms&order[1]=-frequency"},
		{name: "pagedistribution", req: providers.Request{Endpoint: "pagedistribution", Domain: "example.com"}, query: "url=example.com"},
		{name: "edugovlinks", req: providers.Request{Endpoint: "edugovlinks", Domain: "example.com"}, query: "url=example.com"},
		{name: "sr", req: providers.Request{Endpoint: "sr", Domain: "example.com"}, query: "url=example.com"},
		{name: "srspread", req: providers.Request{Endpoint: "srspread", Domain: "example.com", Params: map[string]json.RawMessage{"showgroup": raw(`true`)}},
			query: "url=example.com&showgroup=true"},
		{name: "backlinks-histogram", req: providers.Request{Endpoint: "backlinks-histogram", Domain: "example.com",
			Params: map[string]json.RawMessage{"from": raw(`20200101`), "to": raw(`"20211201"`)}},
			query: "url=example.com&from=20200101&to=20211201"},
		{name: "newandlost-histogram without to", req: providers.Request{Endpoint: "newandlost-histogram", Domain: "example.com",
			Params: map[string]json.RawMessage{"from": raw(`"20200101"`)}},
			query: "url=example.com&from=20200101"},
		{name: "anaurls", req: providers.Request{Endpoint: "anaurls", Domain: "example.com", Params: map[string]json.RawMessage{"urls": raw(`["nic.se"]`)}},
			query: "urls[0]=example.com&urls[1]=nic.se"},
		{name: "backlinkshort GET", req: providers.Request{Endpoint: "backlinkshort", Domain: "example.com"}, query: "urls[0]=example.com"},
		{name: "backlinkshort POST when the list is long", req: providers.Request{Endpoint: "backlinkshort", Domain: "example.com",
			Params: map[string]json.RawMessage{"urls": manyJSON}}, post: string(wantBody)},
		{name: "exportbacklinks first page", req: providers.Request{Endpoint: "exportbacklinks", Domain: "example.com"},
			query: "url=example.com&limit=10000"},
		{name: "exportbacklinks with next", req: providers.Request{Endpoint: "exportbacklinks", Domain: "example.com", Offset: 10000, Limit: 300,
			Cursor: "u-FqSXwgyTuGfEDg8P99Yylh+/="}, query: "url=example.com&limit=300&next=u-FqSXwgyTuGfEDg8P99Yylh%2B%2F%3D"},
		{name: "exportpages", req: providers.Request{Endpoint: "exportpages", Domain: "example.com", Cursor: "abc"}, query: "url=example.com&limit=25&next=abc"},
		{name: "iscached", req: providers.Request{Endpoint: "iscached", Domain: "example.com", Params: map[string]json.RawMessage{"resources": raw(`"backlinks,referringdomains"`)}},
			query: "url=example.com&resources=backlinks,referringdomains"},
		{name: "domain needing escapes", req: providers.Request{Endpoint: "sr", Domain: "xn--bcher-kva.example"}, query: "url=xn--bcher-kva.example"},
	}
	srv, last := recorder(t)
	c := newTestClient(t, srv.URL+"/api/") // a base URL with a path and a trailing slash
	covered := map[string]bool{}
	for _, tt := range tests {
		covered[tt.req.Endpoint] = true
		t.Run(tt.name, func(t *testing.T) {
			if _, err := c.Fetch(context.Background(), tt.req); err != nil {
				t.Fatalf("Fetch: %v", err)
			}
			got := last()
			if got.path != "/api/"+tt.req.Endpoint {
				t.Errorf("path %q", got.path)
			}
			if !got.authOK || got.user != "user" || got.pass != "s3cret-pw" {
				t.Errorf("basic auth: %q %q %v", got.user, got.pass, got.authOK)
			}
			if tt.post != "" {
				if got.method != http.MethodPost || got.body != tt.post || got.rawQuery != "" || got.contentType != "application/json" {
					t.Errorf("got %s ?%s %q body %.80s", got.method, got.rawQuery, got.contentType, got.body)
				}
				return
			}
			if got.method != http.MethodGet || got.rawQuery != tt.query {
				t.Errorf("got %s ?%s\nwant GET ?%s", got.method, got.rawQuery, tt.query)
			}
			if tt.where != "" && got.query["where"][0] != tt.where {
				t.Errorf("server decoded where %q, want %q", got.query["where"][0], tt.where)
			}
			if strings.Contains(got.rawQuery, "s3cret") {
				t.Error("the password is in the URL")
			}
		})
	}
	for _, e := range endpoints {
		if !covered[e.name] {
			t.Errorf("endpoint %s has no request-building test", e.name)
		}
	}
}

// TestIsCachedPOST: iscached's documented POST form, used for a long list.
func TestIsCachedPOST(t *testing.T) {
	t.Parallel()
	srv, last := recorder(t)
	c := newTestClient(t, srv.URL+"/api")
	res := make([]string, 400)
	for i := range res {
		res[i] = fmt.Sprintf("resource-%d", i)
	}
	rj, _ := json.Marshal(res)
	if _, err := c.Fetch(context.Background(), providers.Request{Endpoint: "iscached", Domain: "example.com", Params: map[string]json.RawMessage{"resources": rj}}); err != nil {
		t.Fatal(err)
	}
	got := last()
	want := `{"url":"example.com","resources":` + string(rj) + `}`
	if got.method != http.MethodPost || got.body != want {
		t.Errorf("got %s body %.100s", got.method, got.body)
	}
}

func TestEndpointsAndPaging(t *testing.T) {
	t.Parallel()
	c := newTestClient(t, "http://dc.invalid")
	eps := Vendor.Endpoints
	if len(eps) != 31 || eps[0] != "backlinks" {
		t.Fatalf("endpoints %v", eps)
	}
	offset := providers.Paging{Kind: providers.PagingOffset, PageSize: 10000, MaxBody: maxBody}
	cursor := providers.Paging{Kind: providers.PagingCursor, PageSize: 10000, MaxBody: maxBody}
	none := providers.Paging{Kind: providers.PagingNone, MaxBody: maxBody}
	want := map[string]providers.Paging{
		"backlinks": offset, "linktexts": offset, "linkedpages": offset, "tagtypes": offset, "referringdomains": offset,
		"iplist": offset, "tldlist": offset, "geolocationshort": offset, "outgoinghosts": offset, "outgoinglinktexts": offset,
		"outgoinglinkcount": offset, "outgoingtoppages": offset, "outgoinglinks": offset,
		"exportbacklinks": cursor, "exportpages": {Kind: providers.PagingCursor, PageSize: exportPagesLimit, MaxBody: maxBody},
		"anabacklinks": none, "domainpopularity": none, "ippopularity": none, "linkratio": none, "linkspread": none,
		"linktypes": none, "linktextdistribution": none, "pagedistribution": none, "edugovlinks": none,
		"backlinks-histogram": none, "newandlost-histogram": none, "backlinkshort": none, "anaurls": none,
		"sr": none, "srspread": none, "iscached": none,
	}
	for _, e := range eps {
		p, err := c.Paging(e)
		if err != nil || p != want[e] {
			t.Errorf("%s: paging %+v %v, want %+v", e, p, err, want[e])
		}
	}
	if _, err := c.Paging("nope"); err == nil {
		t.Error("unknown endpoint has paging")
	}
	if len(want) != len(eps) {
		t.Errorf("%d endpoints, %d expected", len(eps), len(want))
	}
}

func TestNewAndConfig(t *testing.T) {
	t.Parallel()
	env := map[string]string{"DOMAINCRAWLER_USER": "u", "DOMAINCRAWLER_PASSWORD": "p", "DOMAINCRAWLER_BASE_URL": " https://api.example.net/v1/ "}
	cfg := ConfigFromEnv(func(k string) string { return env[k] })
	if cfg.User != "u" || cfg.Password != "p" || cfg.BaseURL != "https://api.example.net/v1/" {
		t.Fatalf("config %+v", cfg)
	}
	c, err := New(cfg)
	if err != nil || c.Base.String() != "https://api.example.net/v1" || c.HC == nil || c.HC.Timeout != DefaultTimeout {
		t.Fatalf("New: %v %v", c, err)
	}
	tests := []struct {
		name string
		cfg  Config
		want string
	}{
		{"no base URL", Config{User: "u", Password: "p"}, "DOMAINCRAWLER_BASE_URL is required"},
		{"no user", Config{Password: "p", BaseURL: "https://x"}, "DOMAINCRAWLER_USER"},
		{"no password", Config{User: "u", BaseURL: "https://x"}, "DOMAINCRAWLER_PASSWORD"},
		{"not absolute", Config{User: "u", Password: "p", BaseURL: "api.example.net"}, "absolute http(s) URL"},
		{"bad scheme", Config{User: "u", Password: "p", BaseURL: "ftp://user:hunter2@api.example.net"}, "absolute http(s) URL"},
		{"query", Config{User: "u", Password: "p", BaseURL: "https://api.example.net/?k=1"}, "query"},
	}
	for _, tt := range tests {
		_, err := New(tt.cfg)
		if err == nil || !strings.Contains(err.Error(), tt.want) || strings.Contains(err.Error(), "hunter2") {
			t.Errorf("%s: %v", tt.name, err)
		}
	}
	// User info in the base URL is dropped: credentials travel in the header only.
	c, err = New(Config{User: "u", Password: "p", BaseURL: "https://x:hunter2@api.example.net"})
	if err != nil || strings.Contains(c.Base.String(), "hunter2") {
		t.Fatalf("%v %v", c.Base, err)
	}
}

// TestErrorClasses: what each failure means to the pipeline.
func TestErrorClasses(t *testing.T) {
	t.Parallel()
	const secret = "s3cret-pw"
	tests := []struct {
		name       string
		status     int
		header     map[string]string
		body       string
		class      providers.Class
		code       string
		account    bool
		retryAfter time.Duration
		message    string // part of the message
	}{
		{name: "400 with message", status: 400, body: `{"status":400,"message":"Bad Request – Check you query arguments."}`, class: providers.Fatal, code: "http 400", message: "Check you query arguments"},
		{name: "400 plain text", status: 400, body: "invalid where clause", class: providers.Fatal, code: "http 400", message: "invalid where clause"},
		{name: "message echoing the password", status: 401, body: `{"message":"user:s3cret-pw is wrong"}`, class: providers.Fatal, code: "http 401", account: true, message: "user:[redacted] is wrong"},
		{name: "body status echoing the password", status: 200, body: `{"status":400,"message":"bad s3cret-pw"}`, class: providers.Fatal, code: "status 400", message: "bad [redacted]"},
		{name: "401", status: 401, body: `{"error":"Unauthorized"}`, class: providers.Fatal, code: "http 401", account: true, message: "Unauthorized"},
		{name: "401 empty body", status: 401, class: providers.Fatal, code: "http 401", account: true, message: "Unauthorized"},
		{name: "404", status: 404, body: "<html>Not Found</html>", class: providers.Fatal, code: "http 404", message: "Not Found"},
		{name: "405", status: 405, class: providers.Fatal, code: "http 405", message: "Method Not Allowed"},
		{name: "429 with Retry-After", status: 429, header: map[string]string{"Retry-After": "7"}, class: providers.Throttled, code: "http 429", retryAfter: 7 * time.Second},
		{name: "429 without Retry-After", status: 429, class: providers.Throttled, code: "http 429"},
		{name: "500", status: 500, body: `{"status":500}`, class: providers.Retryable, code: "http 500"},
		{name: "502 html", status: 502, body: "<html><body>Bad Gateway</body></html>", class: providers.Retryable, code: "http 502", message: "Bad Gateway"},
		{name: "503 Retry-After", status: 503, header: map[string]string{"Retry-After": "30"}, class: providers.Retryable, code: "http 503", retryAfter: 30 * time.Second},
		{name: "truncated JSON", status: 200, body: `{"exportFinished":true,"response":[{"nofollow":false,"backlinkpa`, class: providers.Retryable, code: "bad body"},
		{name: "malformed JSON", status: 200, body: `{"response":[{]}`, class: providers.Retryable, code: "bad body"},
		{name: "empty body", status: 200, class: providers.Retryable, code: "bad body"},
		{name: "HTML with 200", status: 200, body: "<!doctype html><p>maintenance</p>", class: providers.Retryable, code: "bad body"},
		{name: "null body", status: 200, body: "null", class: providers.Retryable, code: "bad body"},
		{name: "response not a list", status: 200, body: `{"response":"x","status":200}`, class: providers.Retryable, code: "bad body"},
		{name: "next not a string", status: 200, body: `{"next":5,"response":[],"status":200}`, class: providers.Retryable, code: "bad body"},
		{name: "status 401 in body", status: 200, body: `{"status":401,"message":"Login or password is wrong."}`, class: providers.Fatal, code: "status 401", account: true, message: "Login or password is wrong"},
		{name: "status 400 in body", status: 200, body: `{"response":[],"status":"400"}`, class: providers.Fatal, code: "status 400"},
		{name: "status 429 in body", status: 200, header: map[string]string{"Retry-After": "3"}, body: `{"status":429}`, class: providers.Throttled, code: "status 429", retryAfter: 3 * time.Second},
		{name: "status 500 in body", status: 200, body: `{"status":500,"response":[]}`, class: providers.Retryable, code: "status 500"},
		{name: "export unfinished", status: 200, body: `{"exportFinished":false,"response":[],"count":0,"status":200}`, class: providers.Pending, code: "export unfinished", retryAfter: time.Minute},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				for k, v := range tt.header {
					w.Header().Set(k, v)
				}
				w.WriteHeader(tt.status)
				io.WriteString(w, tt.body)
			}))
			defer srv.Close()
			c := newTestClient(t, srv.URL)
			_, err := c.Fetch(context.Background(), providers.Request{Endpoint: "backlinks", Domain: "example.com"})
			pe, ok := providers.AsError(err)
			if !ok {
				t.Fatalf("error %v is not classified", err)
			}
			if pe.Class != tt.class || pe.Code != tt.code || pe.Account != tt.account || pe.RetryAfter != tt.retryAfter || pe.Provider != Name {
				t.Errorf("got %s %q account=%v after=%v; want %s %q account=%v after=%v", pe.Class, pe.Code, pe.Account, pe.RetryAfter, tt.class, tt.code, tt.account, tt.retryAfter)
			}
			if !strings.Contains(pe.Message, tt.message) {
				t.Errorf("message %q, want it to hold %q", pe.Message, tt.message)
			}
			if strings.Contains(err.Error(), secret) {
				t.Errorf("the password leaks: %v", err)
			}
		})
	}
}

// Unfinished exports: kept when accepted, waited for otherwise, and both
// settings read strictly from the environment.
func TestUnfinishedFromEnv(t *testing.T) {
	t.Parallel()
	env := func(kv ...string) func(string) string {
		m := map[string]string{"DOMAINCRAWLER_USER": "u", "DOMAINCRAWLER_PASSWORD": "p", "DOMAINCRAWLER_BASE_URL": "http://x.invalid"}
		for i := 0; i+1 < len(kv); i += 2 {
			m[kv[i]] = kv[i+1]
		}
		return func(k string) string { return m[k] }
	}
	for _, tc := range []struct {
		name   string
		env    []string
		accept bool
		wait   time.Duration
		bad    string
	}{
		{"defaults", nil, false, DefaultUnfinishedWait, ""},
		{"accept", []string{"DOMAINCRAWLER_ACCEPT_UNFINISHED", "true"}, true, DefaultUnfinishedWait, ""},
		{"accept 0", []string{"DOMAINCRAWLER_ACCEPT_UNFINISHED", "0"}, false, DefaultUnfinishedWait, ""},
		{"wait", []string{"DOMAINCRAWLER_UNFINISHED_WAIT", "5s"}, false, 5 * time.Second, ""},
		{"bad accept", []string{"DOMAINCRAWLER_ACCEPT_UNFINISHED", "yes please"}, false, 0, "DOMAINCRAWLER_ACCEPT_UNFINISHED"},
		{"bad wait", []string{"DOMAINCRAWLER_UNFINISHED_WAIT", "30"}, false, 0, "DOMAINCRAWLER_UNFINISHED_WAIT"},
		{"negative wait", []string{"DOMAINCRAWLER_UNFINISHED_WAIT", "-1s"}, false, 0, "DOMAINCRAWLER_UNFINISHED_WAIT"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, err := New(ConfigFromEnv(env(tc.env...)))
			if tc.bad != "" {
				if err == nil || !strings.Contains(err.Error(), tc.bad) {
					t.Fatalf("err = %v, want one naming %s", err, tc.bad)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if c.acceptUnfin != tc.accept || c.unfinWait != tc.wait {
				t.Errorf("accept %v wait %v, want %v %v", c.acceptUnfin, c.unfinWait, tc.accept, tc.wait)
			}
		})
	}
	// The configured wait is the page's RetryAfter.
	srv := serveFile(t, []byte(`{"exportFinished":false,"response":[],"count":0,"status":200}`))
	c, _ := New(Config{User: "u", Password: "p", BaseURL: srv.URL, UnfinishedWait: 7 * time.Second})
	_, err := c.Fetch(context.Background(), providers.Request{Endpoint: "backlinks", Domain: "example.com"})
	if pe, ok := providers.AsError(err); !ok || pe.Class != providers.Pending || pe.RetryAfter != 7*time.Second {
		t.Errorf("unfinished: %v, want pending after 7s", err)
	}
}

func TestUnfinishedAccepted(t *testing.T) {
	t.Parallel()
	srv := serveFile(t, []byte(`{"exportFinished":false,"response":[{"backlinkpage":"http://a.example/"}],"count":1,"status":200}`))
	c, _ := New(Config{User: "u", Password: "p", BaseURL: srv.URL, AcceptUnfinished: true})
	page, err := c.Fetch(context.Background(), providers.Request{Endpoint: "backlinks", Domain: "example.com"})
	if err != nil || len(page.Items) != 1 || page.Total != 1 {
		t.Fatalf("%+v %v", page, err)
	}
}

// TestClientSideFailures: errors found before or instead of an answer.
func TestClientSideFailures(t *testing.T) {
	t.Parallel()
	// A server that takes the connection and closes it.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			conn, err := ln.Accept()
			if err != nil {
				return
			}
			buf := make([]byte, 4096)
			conn.Read(buf)
			conn.Close()
		}
	}()
	dropped := newTestClient(t, "http://"+ln.Addr().String())
	big := serveFile(t, []byte(`{"response":[`+strings.Repeat(`{"a":1},`, 200)+`{}],"status":200}`))
	small, _ := New(Config{User: "user", Password: "s3cret-pw", BaseURL: big.URL, Conn: providers.Conn{MaxBody: 100}})
	ok := serveFile(t, []byte(`{"response":[],"status":200}`))
	c := newTestClient(t, ok.URL)
	canceled, cancel := context.WithCancel(context.Background())
	cancel()

	tests := []struct {
		name  string
		c     *Client
		ctx   context.Context
		req   providers.Request
		class providers.Class
		code  string
	}{
		{"dropped connection", dropped, context.Background(), providers.Request{Endpoint: "backlinks", Domain: "example.com"}, providers.Retryable, "transport"},
		{"body too large", small, context.Background(), providers.Request{Endpoint: "backlinks", Domain: "example.com"}, providers.Fatal, "body too large"},
		{"canceled", c, canceled, providers.Request{Endpoint: "backlinks", Domain: "example.com"}, providers.Retryable, "canceled"},
		{"unknown endpoint", c, context.Background(), providers.Request{Endpoint: "nope", Domain: "example.com"}, providers.Fatal, "endpoint"},
		{"bad params", c, context.Background(), providers.Request{Endpoint: "backlinks", Domain: "example.com", Params: map[string]json.RawMessage{"order": raw(`["-nope"]`)}}, providers.Fatal, "params"},
		{"histogram without from", c, context.Background(), providers.Request{Endpoint: "backlinks-histogram", Domain: "example.com"}, providers.Fatal, "params"},
		{"limit over 10000", c, context.Background(), providers.Request{Endpoint: "backlinks", Domain: "example.com", Limit: 10001}, providers.Fatal, "request"},
		{"negative offset", c, context.Background(), providers.Request{Endpoint: "backlinks", Domain: "example.com", Offset: -1}, providers.Fatal, "request"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := tt.c.Fetch(tt.ctx, tt.req)
			pe, ok := providers.AsError(err)
			if !ok || pe.Class != tt.class || pe.Code != tt.code {
				t.Fatalf("got %v", err)
			}
			if strings.Contains(err.Error(), "s3cret") {
				t.Errorf("the password leaks: %v", err)
			}
		})
	}
}

// TestCheckParams: what enqueue rejects before anything is queued.
func TestCheckParams(t *testing.T) {
	t.Parallel()
	tests := []struct {
		endpoint string
		params   map[string]string
		err      string // "" when valid
	}{
		{"backlinks", nil, ""},
		{"backlinks", map[string]string{"order": `["-sr","extL","nofollow"]`}, ""},
		{"backlinks", map[string]string{"order": `"-pos"`}, ""},
		{"backlinks", map[string]string{"order": `["-extl"]`}, `"-extl" is not a documented order`},
		{"backlinks", map[string]string{"order": `[]`}, "empty list"},
		{"backlinks", map[string]string{"order": `[1]`}, "want a string or a list"},
		{"backlinks", map[string]string{"where": `"pos gt 10"`}, ""},
		{"backlinks", map[string]string{"where": `"pos gt 10 AND nofollow eq false and linktext notlike '%casino%'"`}, ""},
		{"backlinks", map[string]string{"where": `"title eq 'it''s here' AND ccode in ('SE','DE')"`}, ""},
		{"backlinks", map[string]string{"where": `"linktext like 'a AND b'"`}, ""},
		{"backlinks", map[string]string{"where": `"pos >= 10"`}, `operation ">=" is not one of`},
		{"backlinks", map[string]string{"where": `"pos GT 10"`}, `operation "GT"`},
		{"backlinks", map[string]string{"where": `"active eq true"`}, `field "active" cannot be filtered`},
		{"backlinks", map[string]string{"where": `"pos gt 10 OR pos lt 2"`}, "joined with AND"},
		{"backlinks", map[string]string{"where": `"pos gt"`}, "no value"},
		{"backlinks", map[string]string{"where": `"title eq 'open"`}, "unterminated"},
		{"backlinks", map[string]string{"where": `"ccode in ('SE','DE'"`}, "unbalanced"},
		{"backlinks", map[string]string{"where": `"pos gt 10 AND"`}, "ends with AND"},
		{"backlinks", map[string]string{"where": `""`}, "empty filter"},
		{"backlinks", map[string]string{"where": `"title eq 'a'b"`}, "after the value"},
		{"backlinks", map[string]string{"where": `["pos gt 1"]`}, "want a string"},
		{"backlinks", map[string]string{"limit": `100`}, "page size is set by the pipeline"},
		{"backlinks", map[string]string{"offset": `100`}, "offsets are set by the pipeline"},
		{"backlinks", map[string]string{"url": `"x.com"`}, "the domain is sent as url"},
		{"backlinks", map[string]string{"mode": `"as_is"`}, `unknown parameter "mode" for backlinks (accepted: order, where)`},
		{"backlinks", map[string]string{"from": `"20200101"`}, `unknown parameter "from"`},
		{"exportbacklinks", map[string]string{"next": `"abc"`}, "chained by the pipeline"},
		{"exportbacklinks", map[string]string{"order": `["-sr"]`}, `unknown parameter "order" for exportbacklinks (accepted: none)`},
		{"tagtypes", map[string]string{"order": `["tag","-tag","refdoms"]`}, ""},
		{"outgoinglinks", map[string]string{"order": `["-extL"]`}, "not a documented order"},
		{"outgoinglinks", map[string]string{"where": `"cdate ge 20200101"`}, ""},
		{"geolocationshort", map[string]string{"where": `"links gt 1"`}, "unknown parameter \"where\""},
		{"linktextdistribution", map[string]string{"where": `"frequency gt 10"`, "order": `["-frequency"]`}, ""},
		{"linktextdistribution", map[string]string{"where": `"anchortext eq 'x'"`}, `field "anchortext" cannot be filtered`},
		{"backlinks-histogram", map[string]string{"from": `"20200101"`}, ""},
		{"backlinks-histogram", map[string]string{"from": `20200101`, "to": `20211201`}, ""},
		{"backlinks-histogram", nil, `"from" is required`},
		{"backlinks-histogram", map[string]string{"to": `"20211201"`}, `"from" is required`},
		{"backlinks-histogram", map[string]string{"from": `"2020-01-01"`}, "yyyyMMdd"},
		{"backlinks-histogram", map[string]string{"from": `"20200230"`}, "yyyyMMdd"},
		{"backlinks-histogram", map[string]string{"from": `"20211201"`, "to": `"20200101"`}, "before"},
		{"newandlost-histogram", map[string]string{"from": `"20200101"`, "to": `"2021"`}, "yyyyMMdd"},
		{"srspread", map[string]string{"showgroup": `true`}, ""},
		{"srspread", map[string]string{"showgroup": `"false"`}, ""},
		{"srspread", map[string]string{"showgroup": `"yes"`}, "true or false"},
		{"sr", map[string]string{"showgroup": `true`}, "unknown parameter"},
		{"anaurls", map[string]string{"urls": `["nic.se","example.org"]`}, ""},
		{"anaurls", map[string]string{"urls": `[""]`}, "empty value"},
		{"backlinkshort", map[string]string{"urls": `"nic.se"`}, ""},
		{"iscached", map[string]string{"resources": `["backlinks","httpstatus"]`}, ""},
		{"iscached", map[string]string{"resources": `"backlinks,referringdomains"`}, ""},
		{"iscached", nil, `"resources" is required`},
		{"iscached", map[string]string{"resources": `["back links"]`}, "not an endpoint name"},
		{"nope", nil, "unknown endpoint"},
	}
	for _, tt := range tests {
		params := map[string]json.RawMessage{}
		for k, v := range tt.params {
			params[k] = raw(v)
		}
		err := checkParams(tt.endpoint, params)
		switch {
		case tt.err == "" && err != nil:
			t.Errorf("%s %v: %v", tt.endpoint, tt.params, err)
		case tt.err != "" && (err == nil || !strings.Contains(err.Error(), tt.err)):
			t.Errorf("%s %v: got %v, want an error with %q", tt.endpoint, tt.params, err, tt.err)
		}
	}
}
