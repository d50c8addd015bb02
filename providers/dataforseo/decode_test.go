package dataforseo

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/linkharvest/linkharvest/providers"
	"github.com/linkharvest/linkharvest/providers/sandbox"
)

// FuzzDecode: the response parser never panics, and whatever it accepts
// reads as encoding/json reads it: every backlink's Raw is valid JSON and
// its normalised fields are the item's exact members.
func FuzzDecode(f *testing.F) {
	for _, name := range []string{"backlinks_live.json", "summary_live.json"} {
		f.Add(readTestdata(f, name))
	}
	f.Add([]byte(okEmpty))
	f.Add([]byte(`{"status_code":20000,"tasks":[{"status_code":20000,"result":[{"total_count":2,"items":[{"url_from":"a\u00e9","dofollow":null},null,{"anchor":"x","anchor":1}]}]}]}`))
	f.Fuzz(func(t *testing.T, body []byte) {
		for _, ep := range []string{"backlinks", "summary"} {
			page, err := Decode(ep, body)
			if err != nil {
				if _, ok := providers.AsError(err); !ok {
					t.Fatalf("unclassified error %v", err)
				}
				continue
			}
			if ep == "summary" {
				for _, it := range page.Items {
					if it.Kind != "summary" || !json.Valid(it.Raw) {
						t.Fatalf("summary item %q", it.Raw)
					}
				}
				continue
			}
			for _, it := range page.Items {
				if it.Kind != "backlink" || !json.Valid(it.Raw) {
					t.Fatalf("item %q", it.Raw)
				}
				checkAgainstEncodingJSON(t, it)
			}
		}
	})
}

// checkAgainstEncodingJSON compares the hand scan with encoding/json's
// reading of the same item (map keys: exact names, later duplicates win).
func checkAgainstEncodingJSON(t *testing.T, it providers.Item) {
	t.Helper()
	var m map[string]any
	if json.Unmarshal(it.Raw, &m) != nil {
		m = nil // not an object: no fields
	}
	strField := func(name string, got *string) {
		want, ok := m[name].(string)
		switch {
		case !ok && got != nil:
			t.Fatalf("%s = %q, encoding/json reads %v in %s", name, *got, m[name], it.Raw)
		case ok && (got == nil || *got != want):
			t.Fatalf("%s = %v, encoding/json reads %q in %s", name, show(got), want, it.Raw)
		}
	}
	strField("url_from", it.SourceURL)
	strField("url_to", it.TargetURL)
	strField("anchor", it.Anchor)
	strField("page_from_title", it.SourceTitle)
	df, ok := m["dofollow"].(bool)
	switch {
	case !ok && it.Nofollow != nil:
		t.Fatalf("nofollow %v for dofollow %v in %s", *it.Nofollow, m["dofollow"], it.Raw)
	case ok && (it.Nofollow == nil || *it.Nofollow == df):
		t.Fatalf("nofollow %v for dofollow %v in %s", show(it.Nofollow), df, it.Raw)
	}
}

func TestSplitItems(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		in   string
		want []string
		err  bool
	}{
		{``, nil, false},
		{`null`, nil, false},
		{`[]`, []string{}, false},
		{` [ ] `, []string{}, false},
		{`[1]`, []string{`1`}, false},
		{`[{"a":"]"},[1,[2]],"x\"y",null , true]`, []string{`{"a":"]"}`, `[1,[2]]`, `"x\"y"`, `null`, `true`}, false},
		{`{"a":1}`, nil, true},
		{`[1,`, nil, true},
		{`[{"a":1`, nil, true},
		{`[1 2]`, nil, true},
	} {
		got, err := splitItems(json.RawMessage(tc.in))
		if (err != nil) != tc.err {
			t.Errorf("%s: err %v", tc.in, err)
			continue
		}
		if tc.err {
			continue
		}
		if (got == nil) != (tc.want == nil) || len(got) != len(tc.want) {
			t.Errorf("%s: %q, want %q", tc.in, got, tc.want)
			continue
		}
		for i := range got {
			if string(got[i]) != tc.want[i] {
				t.Errorf("%s: element %d %s, want %s", tc.in, i, got[i], tc.want[i])
			}
		}
	}
}

var (
	benchOnce sync.Once
	benchBody []byte
)

// page1000 is a 1000-row backlinks response from the sandbox (rows shaped
// like the seed's, about 1.1 MB).
func page1000(b *testing.B) []byte {
	benchOnce.Do(func() {
		s := sandbox.New(sandbox.Options{Seed: 1})
		Mount(s)
		r := httptest.NewRequest(http.MethodPost, "/v3/backlinks/backlinks/live", strings.NewReader(`[{"target":"rows-5000.example","limit":1000}]`))
		r.SetBasicAuth("a", "b")
		w := httptest.NewRecorder()
		s.ServeHTTP(w, r)
		benchBody = w.Body.Bytes()
	})
	return benchBody
}

// BenchmarkDecode1000 is decode and normalise of a 1000-row page; compare
// with BenchmarkDecode1000BareRaw (encoding/json, items as RawMessage, no
// normalising) and BenchmarkDecode1000BareStruct (encoding/json into a
// struct holding the five normalised members).
func BenchmarkDecode1000(b *testing.B) {
	body := page1000(b)
	b.SetBytes(int64(len(body)))
	b.ReportAllocs()
	for b.Loop() {
		p, err := Decode("backlinks", body)
		if err != nil || len(p.Items) != 1000 {
			b.Fatal(err)
		}
	}
}

func BenchmarkDecode1000BareRaw(b *testing.B) {
	body := page1000(b)
	b.SetBytes(int64(len(body)))
	b.ReportAllocs()
	for b.Loop() {
		var env struct {
			Tasks []struct {
				Result []struct {
					Items []json.RawMessage `json:"items"`
				} `json:"result"`
			} `json:"tasks"`
		}
		if err := json.Unmarshal(body, &env); err != nil || len(env.Tasks[0].Result[0].Items) != 1000 {
			b.Fatal(err)
		}
	}
}

func BenchmarkDecode1000BareStruct(b *testing.B) {
	body := page1000(b)
	b.SetBytes(int64(len(body)))
	b.ReportAllocs()
	for b.Loop() {
		var env struct {
			Tasks []struct {
				Result []struct {
					Items []struct {
						URLFrom  *string `json:"url_from"`
						URLTo    *string `json:"url_to"`
						Anchor   *string `json:"anchor"`
						Title    *string `json:"page_from_title"`
						Dofollow *bool   `json:"dofollow"`
					} `json:"items"`
				} `json:"result"`
			} `json:"tasks"`
		}
		if err := json.Unmarshal(body, &env); err != nil || len(env.Tasks[0].Result[0].Items) != 1000 {
			b.Fatal(err)
		}
	}
}
