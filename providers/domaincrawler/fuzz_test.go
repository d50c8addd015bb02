package domaincrawler

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/linkharvest/linkharvest/providers"
)

// FuzzDecode feeds the response parser arbitrary bodies for every
// endpoint. The corpus (testdata/fuzz/FuzzDecode) holds the seed's
// examples and the error bodies of the tests; go test replays it.
func FuzzDecode(f *testing.F) {
	for i, e := range endpoints {
		if b, err := os.ReadFile(filepath.Join("testdata", e.name+".json")); err == nil {
			f.Add(uint8(i), 0, b)
		}
	}
	f.Add(uint8(0), 0, []byte(`{"exportFinished":false,"response":[],"status":200}`))
	f.Add(uint8(0), 0, []byte(`{"status":"429","message":"slow down"}`))
	f.Add(uint8(0), 5, []byte(`{"response":[null,1,"x",{"backlinkpage":7,"nofollow":"1"}],"count":"2.0e0"}`))
	f.Fuzz(func(t *testing.T, ep uint8, offset int, body []byte) {
		e := &endpoints[int(ep)%len(endpoints)]
		page, err := decode(e, body, offset, false, time.Minute, "5")
		if err != nil {
			pe, ok := providers.AsError(err)
			if !ok || pe.Provider != Name || (pe.Class != providers.Retryable && pe.Class != providers.Throttled && pe.Class != providers.Fatal && pe.Class != providers.Pending) {
				t.Fatalf("unclassified error %v", err)
			}
			return
		}
		if page.Total < -1 {
			t.Fatalf("total %d", page.Total)
		}
		if !json.Valid(body) {
			t.Fatal("an invalid body was accepted")
		}
		for _, it := range page.Items {
			if it.Kind != e.kind || !json.Valid(it.Raw) {
				t.Fatalf("item %+v", it)
			}
			if it.Kind != "backlink" && (it.SourceURL != nil || it.Nofollow != nil) {
				t.Fatalf("non-backlink row normalised: %+v", it)
			}
		}
	})
}

// TestFuzzCorpus keeps testdata/fuzz/FuzzDecode in step with the seed's
// examples; DC_WRITE_CORPUS=1 rewrites it.
func TestFuzzCorpus(t *testing.T) {
	t.Parallel()
	dir := filepath.Join("testdata", "fuzz", "FuzzDecode")
	for i, e := range endpoints {
		b, err := os.ReadFile(filepath.Join("testdata", e.name+".json"))
		if err != nil {
			t.Fatal(err)
		}
		want := fmt.Sprintf("go test fuzz v1\nbyte(%q)\nint(0)\n[]byte(%q)\n", byte(i), b)
		path := filepath.Join(dir, "seed-"+e.name)
		if os.Getenv("DC_WRITE_CORPUS") == "1" {
			if err := os.MkdirAll(dir, 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(path, []byte(want), 0o644); err != nil {
				t.Fatal(err)
			}
			continue
		}
		got, err := os.ReadFile(path)
		if err != nil || string(got) != want {
			t.Errorf("%s is missing or stale (run with DC_WRITE_CORPUS=1): %v", path, err)
		}
	}
}

// FuzzCheckWhere: the filter checker never panics and accepts only
// filters that start with a known field.
func FuzzCheckWhere(f *testing.F) {
	for _, s := range []string{"pos gt 10", "title eq 'it''s' AND ccode in ('SE','DE')", "linktext like '%a AND b%'", "pos gt 10 AND", "(", "'"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		if checkWhere(s, backlinkWhere) == nil && len(s) == 0 {
			t.Fatal("empty filter accepted")
		}
	})
}
