package xovi

import (
	"encoding/json"
	"os"
	"path/filepath"
	"testing"

	"github.com/linkharvest/linkharvest/providers"
)

// fuzzDecode checks what any body must give: a page of well-formed items
// or a classified error, never a panic.
func fuzzDecode(t *testing.T, body []byte, drop, n int) {
	page, err := decodeWindow(body, drop, n)
	if err != nil {
		pe, ok := providers.AsError(err)
		if !ok || pe.Class == 0 || pe.Provider != Name {
			t.Fatalf("unclassified error %v", err)
		}
		return
	}
	if len(page.Items) > n {
		t.Fatalf("%d items for a page of %d", len(page.Items), n)
	}
	if page.Total < -1 || page.CostUnit != "credits" || page.Cost != 1 {
		t.Fatalf("total %d cost %v %s", page.Total, page.Cost, page.CostUnit)
	}
	for i, it := range page.Items {
		if it.Kind != KindBacklink || it.Nofollow != nil || !json.Valid(it.Raw) {
			t.Fatalf("item %d: %+v", i, it)
		}
	}
}

func decodeWindow(body []byte, drop, n int) (*providers.Page, error) {
	c := &Client{key: "k", perCall: 1}
	env, err := parse(body)
	if err != nil {
		return nil, err
	}
	return c.page(env, 0, drop, n)
}

func addFiles(f *testing.F, pattern string) {
	files, _ := filepath.Glob(pattern)
	for _, name := range files {
		b, err := os.ReadFile(name)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b, uint16(0), uint16(1000))
	}
}

// FuzzDecodeJSON fuzzes the JSON parser (corpus: testdata/*.json and
// testdata/fuzz/FuzzDecodeJSON).
func FuzzDecodeJSON(f *testing.F) {
	addFiles(f, "testdata/*.json")
	f.Fuzz(func(t *testing.T, body []byte, drop, n uint16) {
		fuzzDecode(t, body, int(drop%1000), 1+int(n%1000))
	})
}

// FuzzDecodeXML fuzzes the XML parser (corpus: testdata/*.xml and
// testdata/fuzz/FuzzDecodeXML). A row that parses is a JSON object or
// string of its elements.
func FuzzDecodeXML(f *testing.F) {
	addFiles(f, "testdata/*.xml")
	f.Fuzz(func(t *testing.T, body []byte, drop, n uint16) {
		fuzzDecode(t, body, int(drop%1000), 1+int(n%1000))
		if len(body) > 0 && body[0] == '<' {
			if env, err := parseXML(body); err == nil {
				for i, r := range env.rows {
					if c := providers.FirstByte(r); c != '{' && c != '"' {
						t.Fatalf("row %d: %s", i, r)
					}
				}
			}
		}
	})
}
