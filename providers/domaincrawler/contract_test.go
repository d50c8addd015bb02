package domaincrawler

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"reflect"
	"testing"

	"github.com/linkharvest/linkharvest/providers"
)

// requiredParams are what an endpoint cannot be called without.
func requiredParams(name string) map[string]json.RawMessage {
	switch name {
	case "backlinks-histogram", "newandlost-histogram":
		return map[string]json.RawMessage{"from": json.RawMessage(`"20200101"`), "to": json.RawMessage(`"20211201"`)}
	case "iscached":
		return map[string]json.RawMessage{"resources": json.RawMessage(`["backlinks","httpstatus"]`)}
	}
	return nil
}

func newTestClient(t testing.TB, base string) *Client {
	t.Helper()
	c, err := New(Config{User: "user", Password: "s3cret-pw", BaseURL: base})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// serveFile answers every request with a seed example.
func serveFile(t *testing.T, body []byte) *httptest.Server {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.Write(body)
	}))
	t.Cleanup(srv.Close)
	return srv
}

type wantBacklink struct {
	source, target, anchor, title string
	nofollow                      bool
}

// TestContractSeedExamples replays every example response of the vendor's documentation (testdata/)
// (testdata/<endpoint>.json, copied verbatim) through Fetch.
func TestContractSeedExamples(t *testing.T) {
	t.Parallel()
	tests := []struct {
		endpoint  string
		rows      int
		total     int
		next      string
		backlinks []wantBacklink
	}{
		{endpoint: "backlinks", rows: 1, total: 2396, backlinks: []wantBacklink{{
			source: "http://natbetalningar.se/direktbetalning/", target: "http://domaincrawler.com/",
			anchor: "domaincrawler.com", title: "  Direktbetalning", nofollow: false}}},
		{endpoint: "exportbacklinks", rows: 1, total: -1, // "count": 1 beside a next token: a page count, not a total
			next: "u-FqSXwgyTuGfEDg8P99YylhCRaQgT9I3mPxOg1K3onSdJXWx98tMpBrs1Vu0j24rUqXp4-skOR6aGv629W-qPiARoLotDJk",
			backlinks: []wantBacklink{{
				source: "http://www.webpagetest.org/result/170707_W1_11JR/", target: "https://domaincrawler.com/",
				anchor: "", title: "WebPageTest Test Result - Singapore - Fire...atim.tnial.mil.id/ - 07/07", nofollow: false}}},
		{endpoint: "linktexts", rows: 1, total: 108},
		{endpoint: "linkedpages", rows: 1, total: 53},
		{endpoint: "tagtypes", rows: 1, total: 5},
		{endpoint: "anabacklinks", rows: 1, total: -1},
		{endpoint: "domainpopularity", rows: 1, total: -1},
		{endpoint: "ippopularity", rows: 1, total: -1},
		{endpoint: "linkratio", rows: 2, total: -1},
		{endpoint: "linkspread", rows: 2, total: -1},
		{endpoint: "linktypes", rows: 2, total: 2},
		{endpoint: "linktextdistribution", rows: 10, total: 10},
		{endpoint: "pagedistribution", rows: 11, total: 11},
		{endpoint: "edugovlinks", rows: 2, total: 2},
		{endpoint: "referringdomains", rows: 1, total: 337},
		{endpoint: "iplist", rows: 1, total: 340},
		{endpoint: "tldlist", rows: 1, total: 23},
		{endpoint: "geolocationshort", rows: 1, total: 14},
		{endpoint: "backlinks-histogram", rows: 2, total: 2},
		{endpoint: "backlinkshort", rows: 2, total: 2},
		{endpoint: "newandlost-histogram", rows: 2, total: 2},
		{endpoint: "outgoinghosts", rows: 1, total: 11},
		{endpoint: "outgoinglinktexts", rows: 1, total: 17},
		{endpoint: "outgoinglinkcount", rows: 3, total: 2}, // the example's count (2) is the vendor's, taken as is
		{endpoint: "outgoingtoppages", rows: 3, total: 38},
		{endpoint: "outgoinglinks", rows: 1, total: 170},
		{endpoint: "anaurls", rows: 2, total: 2},
		{endpoint: "sr", rows: 1, total: -1},
		{endpoint: "srspread", rows: 6, total: -1},
		{endpoint: "exportpages", rows: 1, total: -1, next: "u-FqSXwgyTuGfEDg8P99Y6lsFEdB2W6qaVL64P1uvNg"},
		{endpoint: "iscached", rows: 1, total: -1},
	}
	seen := map[string]bool{}
	for _, tt := range tests {
		seen[tt.endpoint] = true
		t.Run(tt.endpoint, func(t *testing.T) {
			file, err := os.ReadFile(filepath.Join("testdata", tt.endpoint+".json"))
			if err != nil {
				t.Fatal(err)
			}
			c := newTestClient(t, serveFile(t, file).URL)
			page, err := c.Fetch(context.Background(), providers.Request{Endpoint: tt.endpoint, Domain: "domaincrawler.com", Page: 1, Params: requiredParams(tt.endpoint)})
			if err != nil {
				t.Fatalf("Fetch: %v", err)
			}
			if len(page.Items) != tt.rows || page.Total != tt.total || page.Next != tt.next {
				t.Fatalf("got %d rows, total %d, next %q; want %d, %d, %q", len(page.Items), page.Total, page.Next, tt.rows, tt.total, tt.next)
			}
			want := exampleRows(t, file)
			kind := byName[tt.endpoint].kind
			for i, it := range page.Items {
				if it.Kind != kind {
					t.Errorf("row %d: kind %q, want %q", i, it.Kind, kind)
				}
				// Raw is the vendor's bytes, verbatim, and the same value.
				if !bytes.Contains(file, it.Raw) {
					t.Errorf("row %d: raw is not a verbatim slice of the example: %s", i, it.Raw)
				}
				if !jsonEqual(t, it.Raw, want[i]) {
					t.Errorf("row %d: raw %s, want %s", i, it.Raw, want[i])
				}
				if kind != "backlink" {
					if it.SourceURL != nil || it.TargetURL != nil || it.Anchor != nil || it.Nofollow != nil || it.SourceTitle != nil {
						t.Errorf("row %d: a %s row has backlink fields: %+v", i, kind, it)
					}
					continue
				}
				b := tt.backlinks[i]
				check := func(field string, got *string, want string) {
					if got == nil || *got != want {
						t.Errorf("row %d %s: got %v, want %q", i, field, deref(got), want)
					}
				}
				check("source_url", it.SourceURL, b.source)
				check("target_url", it.TargetURL, b.target)
				check("anchor", it.Anchor, b.anchor)
				check("source_title", it.SourceTitle, b.title)
				if it.Nofollow == nil || *it.Nofollow != b.nofollow {
					t.Errorf("row %d nofollow: got %v, want %v", i, it.Nofollow, b.nofollow)
				}
			}
		})
	}
	for _, e := range endpoints {
		if !seen[e.name] {
			t.Errorf("endpoint %s has no contract test", e.name)
		}
	}
	files, _ := filepath.Glob(filepath.Join("testdata", "*.json"))
	if len(files) != len(endpoints) {
		t.Errorf("%d example files for %d endpoints", len(files), len(endpoints))
	}
}

// exampleRows reads the rows of an example independently of decode.
func exampleRows(t *testing.T, file []byte) []json.RawMessage {
	var env struct {
		Response json.RawMessage `json:"response"`
	}
	if err := json.Unmarshal(file, &env); err != nil {
		t.Fatal(err)
	}
	var rows []json.RawMessage
	if json.Unmarshal(env.Response, &rows) != nil {
		rows = []json.RawMessage{env.Response}
	}
	return rows
}

func jsonEqual(t *testing.T, a, b []byte) bool {
	t.Helper()
	var x, y any
	if err := json.Unmarshal(a, &x); err != nil {
		t.Fatalf("%s: %v", a, err)
	}
	if err := json.Unmarshal(b, &y); err != nil {
		t.Fatalf("%s: %v", b, err)
	}
	return reflect.DeepEqual(x, y)
}

func deref(s *string) any {
	if s == nil {
		return nil
	}
	return *s
}

// TestBacklinkNormalisation covers rows the seed has no example of:
// absent and null fields, other encodings of nofollow.
func TestBacklinkNormalisation(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name, row                     string
		source, target, anchor, title any
		nofollow                      any
	}{
		{"absent fields", `{"nr":1}`, nil, nil, nil, nil, nil},
		{"null fields", `{"backlinkpage":null,"linktarget":null,"linktext":null,"title":null,"nofollow":null}`, nil, nil, nil, nil, nil},
		{"nofollow as 1", `{"backlinkpage":"http://a.example/","nofollow":1}`, "http://a.example/", nil, nil, nil, true},
		{"nofollow as \"false\"", `{"nofollow":"false"}`, nil, nil, nil, nil, false},
		{"nofollow unreadable", `{"nofollow":"maybe"}`, nil, nil, nil, nil, nil},
		{"numeric title", `{"title":404}`, nil, nil, nil, "404", nil},
		{"escaped text", `{"linktext":"caf\u00e9 \"x\"","title":"a\nb"}`, nil, nil, "café \"x\"", "a\nb", nil},
		{"not an object", `"row"`, nil, nil, nil, nil, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			it := item("backlink", json.RawMessage(tt.row))
			if string(it.Raw) != tt.row || it.Kind != "backlink" {
				t.Fatalf("raw %s kind %s", it.Raw, it.Kind)
			}
			for _, f := range []struct {
				name string
				got  *string
				want any
			}{{"source", it.SourceURL, tt.source}, {"target", it.TargetURL, tt.target}, {"anchor", it.Anchor, tt.anchor}, {"title", it.SourceTitle, tt.title}} {
				if deref(f.got) != f.want {
					t.Errorf("%s: got %v, want %v", f.name, deref(f.got), f.want)
				}
			}
			var nf any
			if it.Nofollow != nil {
				nf = *it.Nofollow
			}
			if nf != tt.nofollow {
				t.Errorf("nofollow: got %v, want %v", nf, tt.nofollow)
			}
		})
	}
}

// TestExportTotal: both readings of `count` on the export endpoints.
func TestExportTotal(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name                string
		count, offset, rows int
		more                bool
		want                int
	}{
		{"total, first page", 25000, 0, 10000, true, 25000},
		{"total, last page", 25000, 20000, 5000, false, 25000},
		{"page count, first page", 10000, 0, 10000, true, -1},
		{"page count, middle page", 10000, 10000, 10000, true, -1},
		{"page count, last page", 5000, 20000, 5000, false, -1},
		{"single page, either reading", 7, 0, 7, false, 7},
		{"empty export", 0, 0, 0, false, 0},
		{"count disagrees", 3, 0, 5, false, -1},
	}
	for _, tt := range tests {
		if got := exportTotal(tt.count, tt.offset, tt.rows, tt.more); got != tt.want {
			t.Errorf("%s: got %d, want %d", tt.name, got, tt.want)
		}
	}
}
