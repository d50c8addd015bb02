package domdetailer

import (
	"encoding/json"
	"os"
	"path/filepath"
	"testing"

	"github.com/linkharvest/linkharvest/providers"
)

// FuzzDecode: any body gives either a page whose items are well formed or
// a classified error; never a panic. The corpus is testdata/*.json and
// testdata/fuzz/FuzzDecode.
func FuzzDecode(f *testing.F) {
	files, _ := filepath.Glob("testdata/*.json")
	for _, name := range files {
		b, err := os.ReadFile(name)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		page, err := decode(body)
		if err != nil {
			pe, ok := providers.AsError(err)
			if !ok || pe.Class == 0 || pe.Provider != Name {
				t.Fatalf("unclassified error %v", err)
			}
			return
		}
		backlinks := 0
		for i, it := range page.Items {
			if !json.Valid(it.Raw) {
				t.Fatalf("item %d: raw is not JSON: %q", i, it.Raw)
			}
			switch it.Kind {
			case KindMetrics:
				if i != 0 {
					t.Fatalf("metrics at %d", i)
				}
			case KindBacklink:
				backlinks++
				if it.Anchor != nil && *it.Anchor == "" && it.SourceTitle != nil && *it.SourceTitle != "" {
					t.Fatalf("item %d: empty anchor not filled from the title", i)
				}
			default:
				t.Fatalf("item %d: kind %q", i, it.Kind)
			}
		}
		if page.Total != backlinks || page.Cost != CreditsPerCall || page.CostUnit != "credits" {
			t.Fatalf("total %d for %d backlinks, cost %v %s", page.Total, backlinks, page.Cost, page.CostUnit)
		}
	})
}
