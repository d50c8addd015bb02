package tests

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/linkharvest/linkharvest/internal/testenv"
	"github.com/linkharvest/linkharvest/sink"
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
	expected := map[string]map[string][]string{"dataforseo/backlinks": expectedRows(t, base, "dataforseo", "backlinks", nil, valid)}
	t.Logf("paged the sandbox after %v", time.Since(t0))
	got := verifyOutput(t, snk, job, expected, 20)
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
	verifyOutput(t, snk, job, expected, 20)

	t.Logf("resubmitted after %v", time.Since(t0))
	w1.stop(t, 40*time.Second)
	w2.stop(t, 40*time.Second)
}
