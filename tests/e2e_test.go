package tests

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/linkharvest/linkharvest/internal/testenv"
	"github.com/linkharvest/linkharvest/providers"
	"github.com/linkharvest/linkharvest/providers/dataforseo"
	"github.com/linkharvest/linkharvest/sink"
	"github.com/linkharvest/linkharvest/tasks"
)

// e2eList is 200 valid domains (the rows-N edge cases among them) and 20
// malformed lines.
func e2eList() (list string, valid []string) {
	var b strings.Builder
	b.WriteString("# e2e list\n\n")
	special := []string{"rows-0.example", "rows-1.example", "rows-1000.example", "rows-1001.example", "rows-25000.example"}
	valid = append(valid, special...)
	for i := 0; len(valid) < 200; i++ {
		valid = append(valid, fmt.Sprintf("site-%03d.example.com", i))
	}
	bad := []string{"not a domain", "co.uk", "com", "192.168.0.1", "http://[::1]/x", "a.com&apikey=x", "../etc/passwd",
		"-bad-.com", "exa mple.com", strings.Repeat("a", 64) + ".com", "foo", "http://", "@@@", "example..com",
		"xn--.com", "10.0.0.1:8080", "a_b!.com", "*.example.com", "ex\tample.com", "%%.com"}
	for i, d := range valid {
		switch i % 3 { // the same domains as users write them
		case 0:
			b.WriteString(d + "\n")
		case 1:
			b.WriteString("https://www." + strings.ToUpper(d) + "/path?q=1\r\n")
		default:
			b.WriteString(d + ".\n")
		}
		if i < len(bad) {
			b.WriteString(bad[i] + "\n")
		}
	}
	b.WriteString("rows-1.example\n") // a duplicate counts once
	return b.String(), valid
}

func TestEndToEndDataForSEO(t *testing.T) {
	rds := testenv.Redis(t)
	s3 := testenv.MinIO(t)
	s3.Setenv(t)
	base, _ := startSandbox(t)
	sinkURL := s3.SinkURL("e2e")
	env := append(append(s3.Env(), vendorEnv(base)...), "REDIS_URL="+rds.URL, "SINK_URL="+sinkURL, "METRICS_ADDR=", "WORKER_CONCURRENCY=20")
	t0 := time.Now()
	w1 := start(t, env, "worker")
	w2 := start(t, env, "worker")

	list, valid := e2eList()
	file := filepath.Join(t.TempDir(), "domains.txt")
	if err := os.WriteFile(file, []byte(list), 0o644); err != nil {
		t.Fatal(err)
	}
	const job = "e2e-dataforseo"
	stdout, stderr, code := runCmd(t, env, nil, 4*time.Minute, "enqueue", "--job", job, "--wait", "--json", file)
	if code != 0 {
		t.Fatalf("enqueue exit %d\nstdout: %s\nstderr: %s", code, stdout, stderr)
	}
	var sum struct {
		JobID    string `json:"job_id"`
		Domains  int    `json:"domains"`
		Rejected int    `json:"rejected"`
		Tasks    int    `json:"tasks"`
		Records  int64  `json:"records"`
		Failed   int    `json:"failed"`
	}
	lastJSON(t, stdout, &sum)
	t.Logf("job done after %v", time.Since(t0))
	if sum.JobID != job || sum.Domains != 200 || sum.Rejected != 20 || sum.Failed != 0 {
		t.Fatalf("summary = %+v, want 200 domains, 20 rejected, 0 failed", sum)
	}
	for _, want := range []string{"line 4:", "public suffix"} {
		if !strings.Contains(stderr, want) {
			t.Errorf("rejects on stderr lack %q:\n%s", want, stderr)
		}
	}

	ctx := context.Background()
	snk, err := sink.Open(ctx, sinkURL)
	if err != nil {
		t.Fatal(err)
	}
	expected := expectedRows(t, base, valid)
	t.Logf("paged the sandbox after %v", time.Since(t0))
	got := verifyOutput(t, snk, job, "dataforseo", "backlinks", expected)
	if sum.Records != got {
		t.Errorf("summary records %d, output holds %d", sum.Records, got)
	}

	t.Logf("verified after %v", time.Since(t0))
	// The same job again: nothing new is fetched.
	resetStats(t, base)
	stdout, stderr, code = runCmd(t, env, nil, 2*time.Minute, "enqueue", "--job", job, "--wait", "--json", file)
	if code != 0 {
		t.Fatalf("second enqueue exit %d\nstdout: %s\nstderr: %s", code, stdout, stderr)
	}
	if calls := sandboxStats(t, base)["dataforseo"].Calls; calls != 0 {
		t.Errorf("resubmitting job %s made %d vendor calls, want 0", job, calls)
	}
	verifyOutput(t, snk, job, "dataforseo", "backlinks", expected)

	t.Logf("resubmitted after %v", time.Since(t0))
	w1.stop(t, 40*time.Second)
	w2.stop(t, 40*time.Second)
}

// expectedRows pages through the sandbox as DataForSEO's docs prescribe
// (limit 1000, offset up to 20,000, then search_after_token) and returns
// each domain's rows by source URL.
func expectedRows(t *testing.T, base string, domains []string) map[string][]string {
	t.Helper()
	c, err := dataforseo.New(dataforseo.Config{Login: "check", Password: "check", BaseURL: base})
	if err != nil {
		t.Fatal(err)
	}
	out := map[string][]string{}
	for _, d := range domains {
		var rows []string
		offset, cursor := 0, ""
		for {
			var page *providers.Page
			for attempt := 0; ; attempt++ {
				page, err = c.Fetch(context.Background(), providers.Request{Endpoint: "backlinks", Domain: d, Offset: offset, Limit: 1000, Cursor: cursor})
				if err == nil || attempt > 20 || providers.ClassOf(err) == providers.Fatal {
					break
				}
				time.Sleep(200 * time.Millisecond) // the sandbox's own limits
			}
			if err != nil {
				t.Fatalf("paging %s at %d: %v", d, offset, err)
			}
			for _, it := range page.Items {
				rows = append(rows, *it.SourceURL)
			}
			offset += len(page.Items)
			if len(page.Items) == 0 || offset >= page.Total {
				break
			}
			if offset > 20000 {
				cursor = page.Next
			}
		}
		out[d] = rows
	}
	return out
}

var pageKey = regexp.MustCompile(`/([^/]+)\.(\d{5})\.ndjson\.gz$`)

// verifyOutput proves the job's output holds every expected row exactly
// once, that the manifest agrees with the objects, and that _SUCCESS came
// last. It returns the number of rows.
func verifyOutput(t *testing.T, snk *sink.Sink, job, provider, endpoint string, expected map[string][]string) int64 {
	t.Helper()
	ctx := context.Background()
	objs, err := snk.List(ctx, "")
	if err != nil {
		t.Fatal(err)
	}
	gotRows := map[string]map[string]int{}
	sizes := map[string]int64{}
	counts := map[string]int{}
	var lastData, success, manifestTime time.Time
	var total int64
	for _, o := range objs {
		switch {
		case o.Key == sink.SuccessKey(job):
			success = o.LastModified
			continue
		case o.Key == sink.ManifestKey(job):
			manifestTime = o.LastModified
			continue
		case !strings.Contains(o.Key, "/job="+job+"/"):
			continue
		}
		if !strings.HasPrefix(o.Key, "provider="+provider+"/endpoint="+endpoint+"/dt=") {
			t.Errorf("unexpected object %s", o.Key)
			continue
		}
		m := pageKey.FindStringSubmatch(o.Key)
		if m == nil {
			t.Errorf("object key %s does not follow the layout", o.Key)
			continue
		}
		page, _ := strconv.Atoi(m[2])
		body, err := snk.Get(ctx, o.Key)
		if err != nil {
			t.Fatal(err)
		}
		recs, err := sink.DecodePage(body)
		if err != nil {
			t.Fatalf("%s: %v", o.Key, err)
		}
		sizes[o.Key] = int64(len(body))
		counts[o.Key] = len(recs)
		if o.LastModified.After(lastData) {
			lastData = o.LastModified
		}
		for _, r := range recs {
			if r.JobID != job || r.Provider != provider || r.Endpoint != endpoint || r.Domain != m[1] || r.Page != page || r.Kind != "backlink" {
				t.Fatalf("%s: record %+v does not match its key", o.Key, r)
			}
			var raw struct {
				URLFrom string `json:"url_from"`
			}
			if err := json.Unmarshal(r.Raw, &raw); err != nil || r.SourceURL == nil || raw.URLFrom != *r.SourceURL {
				t.Fatalf("%s: raw and source_url disagree: %s", o.Key, r.Raw)
			}
			if gotRows[r.Domain] == nil {
				gotRows[r.Domain] = map[string]int{}
			}
			gotRows[r.Domain][raw.URLFrom]++
			total++
		}
	}
	dups, lost := 0, 0
	for d, rows := range expected {
		for _, u := range rows {
			switch gotRows[d][u] {
			case 0:
				lost++
			case 1:
			default:
				dups++
			}
		}
		if len(gotRows[d]) != len(rows) {
			t.Errorf("%s: %d distinct rows written, sandbox serves %d", d, len(gotRows[d]), len(rows))
		}
	}
	var want int64
	for _, rows := range expected {
		want += int64(len(rows))
	}
	if dups != 0 || lost != 0 || total != want {
		t.Fatalf("rows: %d written, %d expected, %d duplicated, %d lost", total, want, dups, lost)
	}

	// The manifest agrees with the objects.
	mb, err := snk.Get(ctx, sink.ManifestKey(job))
	if err != nil {
		t.Fatalf("manifest: %v", err)
	}
	var man tasks.Manifest
	if err := json.Unmarshal(mb, &man); err != nil {
		t.Fatal(err)
	}
	if len(man.Objects) != len(counts) {
		t.Errorf("manifest lists %d objects, the sink holds %d", len(man.Objects), len(counts))
	}
	for _, o := range man.Objects {
		if counts[o.Key] != o.Records || sizes[o.Key] != o.Bytes {
			t.Errorf("manifest object %s: %d records %d bytes; actual %d records %d bytes", o.Key, o.Records, o.Bytes, counts[o.Key], sizes[o.Key])
		}
	}
	if man.Totals.Records != total {
		t.Errorf("manifest total records %d, objects hold %d", man.Totals.Records, total)
	}
	outcomes := map[string]tasks.ManifestOutcome{}
	for _, o := range man.Outcomes {
		outcomes[o.Domain] = o
	}
	for d, rows := range expected {
		o, ok := outcomes[d]
		wantStatus := "ok"
		if len(rows) == 0 {
			wantStatus = "empty"
		}
		if !ok || o.Status != wantStatus || o.Records != len(rows) {
			t.Errorf("manifest outcome of %s = %+v, want status %s with %d records", d, o, wantStatus, len(rows))
		}
	}
	if len(man.Rejected) != 20 {
		t.Errorf("manifest lists %d rejected lines, want 20", len(man.Rejected))
	}
	// _SUCCESS is written after the manifest, which is written after the data.
	if success.IsZero() || manifestTime.IsZero() || success.Before(manifestTime) || manifestTime.Before(lastData) {
		t.Errorf("order: last data %v, manifest %v, _SUCCESS %v", lastData, manifestTime, success)
	}
	return total
}
