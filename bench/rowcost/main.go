// Command rowcost measures the worker's cost per row: a 1000-row
// DataForSEO page decoded, normalised, encoded and gzipped as the worker
// does it, against a bare baseline in the same run (encoding/json decode
// + encode + compress/gzip to io.Discard of the same bytes).
//
//	go run ./bench/rowcost
package main

import (
	"bytes"
	"compress/gzip"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"runtime"
	"testing"
	"time"

	"github.com/linkharvest/linkharvest/providers/dataforseo"
	"github.com/linkharvest/linkharvest/providers/registry"
	"github.com/linkharvest/linkharvest/providers/sandbox"
	"github.com/linkharvest/linkharvest/sink"
)

func main() {
	body := page()
	fmt.Fprintf(os.Stderr, "page: %d bytes, GOMAXPROCS %d\n", len(body), runtime.GOMAXPROCS(0))

	ours := testing.Benchmark(func(b *testing.B) {
		now := time.Now().UTC()
		for i := 0; i < b.N; i++ {
			pg, err := dataforseo.Decode("backlinks", body)
			if err != nil {
				b.Fatal(err)
			}
			recs := make([]sink.Record, len(pg.Items))
			for j, it := range pg.Items { // as tasks.Worker.encode builds them
				recs[j] = sink.Record{JobID: "bench", Provider: "dataforseo", Endpoint: "backlinks", Domain: "rows-25000.example",
					Page: 1, FetchedAt: now, Kind: it.Kind, SourceURL: it.SourceURL, TargetURL: it.TargetURL,
					Anchor: it.Anchor, Nofollow: it.Nofollow, SourceTitle: it.SourceTitle, Raw: it.Raw}
			}
			if _, err := sink.EncodePage(recs); err != nil {
				b.Fatal(err)
			}
		}
	})
	bare := testing.Benchmark(func(b *testing.B) {
		for i := 0; i < b.N; i++ {
			var env struct {
				Tasks []struct {
					Result []struct {
						Items []map[string]any `json:"items"`
					} `json:"result"`
				} `json:"tasks"`
			}
			if err := json.Unmarshal(body, &env); err != nil {
				b.Fatal(err)
			}
			zw := gzip.NewWriter(io.Discard)
			enc := json.NewEncoder(zw)
			for _, it := range env.Tasks[0].Result[0].Items {
				if err := enc.Encode(it); err != nil {
					b.Fatal(err)
				}
			}
			zw.Close()
		}
	})
	rows := 1000.0
	oursRate := rows / (float64(ours.NsPerOp()) / 1e9)
	bareRate := rows / (float64(bare.NsPerOp()) / 1e9)
	fmt.Println("| pipeline (one core) | ns/page | rows/s | allocs/page | ratio to bare |")
	fmt.Println("|---|---|---|---|---|")
	fmt.Printf("| worker: dataforseo.Decode + records + sink.EncodePage | %d | %.0f | %d | %.2f |\n", ours.NsPerOp(), oursRate, ours.AllocsPerOp(), oursRate/bareRate)
	fmt.Printf("| bare: encoding/json decode + encode + compress/gzip | %d | %.0f | %d | 1.00 |\n", bare.NsPerOp(), bareRate, bare.AllocsPerOp())
}

// page is one 1000-row backlinks response from the sandbox.
func page() []byte {
	srv := httptest.NewServer(registry.Sandbox(sandbox.Options{Seed: 1}))
	defer srv.Close()
	req, _ := http.NewRequest("POST", srv.URL+"/v3/backlinks/backlinks/live",
		bytes.NewReader([]byte(`[{"target":"rows-25000.example","limit":1000,"offset":0}]`)))
	req.SetBasicAuth("bench", "bench")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		panic(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		panic(err)
	}
	return b
}
