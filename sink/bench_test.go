package sink

import (
	"bytes"
	"compress/gzip"
	"encoding/json"
	"fmt"
	"sync"
	"testing"
	"time"
)

// benchRecords makes n backlink rows like DataForSEO's: a ~1 KB raw item
// each (the seed's item shape), a few non-ASCII titles.
func benchRecords(n int) []Record {
	at := time.Date(2026, 3, 4, 5, 6, 7, 891000000, time.UTC)
	recs := make([]Record, n)
	for i := range recs {
		src := fmt.Sprintf("https://blog%d.example.org/posts/%d/some-article-title?ref=%d", i%97, i, i*7)
		title := fmt.Sprintf("Relevant Material %d | Tag a Life International — “quoted” ünïcode", i)
		raw := fmt.Sprintf(`{"type":"backlink","domain_from":"blog%d.example.org","url_from":%q,"url_from_https":true,"domain_to":"example.com","url_to":"https://example.com/page/%d","url_to_https":true,"tld_from":"org","is_new":false,"is_lost":false,"backlink_spam_score":%d,"rank":23,"page_from_rank":0,"domain_from_rank":27,"domain_from_platform_type":["cms","blogs"],"domain_from_is_ip":false,"domain_from_ip":"192.0.2.%d","domain_from_country":"ZW","page_from_external_links":6,"page_from_internal_links":60,"page_from_size":38802,"page_from_encoding":"utf-8","page_from_language":"en","page_from_title":%q,"page_from_status_code":200,"first_seen":"2022-01-27 20:18:57 +00:00","prev_seen":"2022-07-12 04:18:30 +00:00","last_seen":"2023-01-21 03:25:46 +00:00","item_type":"anchor","attributes":null,"dofollow":true,"original":false,"alt":null,"anchor":"anchor text %d","text_pre":null,"text_post":"","semantic_location":"article","links_count":1,"group_count":3,"is_broken":false,"url_to_status_code":200,"url_to_spam_score":0,"url_to_redirect_target":null}`,
			i%97, src, i%50, i%10, i%255, title, i)
		recs[i] = Record{JobID: "01JQ7ZK3X9N5V2B8M4C6D0E1F2", Provider: "dataforseo", Endpoint: "backlinks", Domain: "example.com", Page: 3, FetchedAt: at, Kind: "backlink",
			SourceURL: str(src), TargetURL: str(fmt.Sprintf("https://example.com/page/%d", i)), Anchor: str(fmt.Sprintf("anchor text %d", i)), Nofollow: boolp(i%3 == 0), SourceTitle: str(title),
			Raw: json.RawMessage(raw)}
	}
	return recs
}

// baselineRecord is the same row as encoding/json would write it from a
// tagged struct: the reference the hand-written encoder is measured against.
type baselineRecord struct {
	JobID       string          `json:"job_id"`
	Provider    string          `json:"provider"`
	Endpoint    string          `json:"endpoint"`
	Domain      string          `json:"domain"`
	Page        int             `json:"page"`
	FetchedAt   time.Time       `json:"fetched_at"`
	Kind        string          `json:"kind"`
	SourceURL   *string         `json:"source_url"`
	TargetURL   *string         `json:"target_url"`
	Anchor      *string         `json:"anchor"`
	Nofollow    *bool           `json:"nofollow"`
	SourceTitle *string         `json:"source_title"`
	Raw         json.RawMessage `json:"raw"`
}

// baselineEncode is encoding/json Marshal per row + compress/gzip.
func baselineEncode(recs []Record) ([]byte, error) {
	var out bytes.Buffer
	zw := gzip.NewWriter(&out)
	for i := range recs {
		r := &recs[i]
		b, err := json.Marshal(baselineRecord{r.JobID, r.Provider, r.Endpoint, r.Domain, r.Page, r.FetchedAt.UTC(), r.Kind,
			r.SourceURL, r.TargetURL, r.Anchor, r.Nofollow, r.SourceTitle, r.Raw})
		if err != nil {
			return nil, err
		}
		zw.Write(append(b, '\n'))
	}
	if err := zw.Close(); err != nil {
		return nil, err
	}
	return out.Bytes(), nil
}

var (
	baselineOnce sync.Once
	baselineNs   float64 // per page of benchPageRows
)

const benchPageRows = 1000

// BenchmarkEncodePage encodes a page of 1000 rows. Besides ns/row it
// reports x-baseline: how many times faster than encoding/json Marshal +
// compress/gzip of the same rows (the goal is >= 0.8).
func BenchmarkEncodePage(b *testing.B) {
	recs := benchRecords(benchPageRows)
	baselineOnce.Do(func() {
		// Timed by hand: testing.Benchmark cannot run inside a benchmark
		// (both take the benchmark lock). One warm-up, then >= 1 s.
		if _, err := baselineEncode(recs); err != nil {
			b.Fatal(err)
		}
		start, n := time.Now(), 0
		for ; n < 3 || time.Since(start) < time.Second; n++ {
			baselineEncode(recs)
		}
		baselineNs = float64(time.Since(start).Nanoseconds()) / float64(n)
	})
	var size int
	b.ReportAllocs()
	for b.Loop() {
		body, err := EncodePage(recs)
		if err != nil {
			b.Fatal(err)
		}
		size = len(body)
	}
	ns := float64(b.Elapsed().Nanoseconds()) / float64(b.N)
	b.ReportMetric(ns/benchPageRows, "ns/row")
	b.ReportMetric(baselineNs/benchPageRows, "baseline-ns/row")
	b.ReportMetric(baselineNs/ns, "x-baseline")
	b.ReportMetric(float64(size)/benchPageRows, "gz-bytes/row")
}

// BenchmarkEncodePageBaseline is the baseline on its own, for benchstat.
func BenchmarkEncodePageBaseline(b *testing.B) {
	recs := benchRecords(benchPageRows)
	var size int
	b.ReportAllocs()
	for b.Loop() {
		body, err := baselineEncode(recs)
		if err != nil {
			b.Fatal(err)
		}
		size = len(body)
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/benchPageRows, "ns/row")
	b.ReportMetric(float64(size)/benchPageRows, "gz-bytes/row")
}

// TestBaselineSameData checks the benchmark compares like with like: the
// baseline's rows decode to the same values as ours.
func TestBaselineSameData(t *testing.T) {
	t.Parallel()
	recs := benchRecords(50)
	ours, err := EncodePage(recs)
	if err != nil {
		t.Fatal(err)
	}
	base, err := baselineEncode(recs)
	if err != nil {
		t.Fatal(err)
	}
	a, b := gunzipLines(t, ours), gunzipLines(t, base)
	for i := range a {
		var x, y any
		json.Unmarshal([]byte(a[i]), &x)
		json.Unmarshal([]byte(b[i]), &y)
		xb, _ := json.Marshal(x)
		yb, _ := json.Marshal(y)
		if !bytes.Equal(xb, yb) {
			t.Fatalf("row %d differs:\n%s\n%s", i, a[i], b[i])
		}
	}
}
