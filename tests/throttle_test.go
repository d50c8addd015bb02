package tests

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/linkharvest/linkharvest/internal/testenv"
	"github.com/linkharvest/linkharvest/sink"
)

// TestThrottleSpendsNoRetry: a throttle is the vendor asking for patience,
// never a page's failure (docs/contract.md: --max-retries counts failures;
// "throttles do not count"). The workers' limits are set above what the
// vendor allows (30 calls in flight against the sandbox's 2), so most
// first calls are throttled; with --max-retries 0 no page may be listed as
// failed for it, and every row arrives exactly once.
//
// Asynq archives a task whose retry count has reached its maximum whatever
// IsFailure says, so a page throttled on its last allowed attempt used to
// be archived and listed as failed with the throttle as its error.
func TestThrottleSpendsNoRetry(t *testing.T) {
	rds := testenv.Redis(t)
	s3 := testenv.MinIO(t)
	s3.Setenv(t)
	base, _ := startSandbox(t, "--concurrency", "2", "--latency", "100ms")
	sinkURL := s3.SinkURL("throttle")
	env := append(append(s3.Env(), vendorEnv(base)...), "REDIS_URL="+rds.URL, "SINK_URL="+sinkURL,
		"METRICS_ADDR=", "WORKER_CONCURRENCY=30", "RETRY_BASE_DELAY=100ms", "PROVIDER_LIMITS=dataforseo=2000/1m:30")
	w := start(t, env, "worker")
	var domains []string
	var b strings.Builder
	for i := 0; i < 30; i++ {
		d := fmt.Sprintf("rows-%d.t%02d.example", 10+i, i)
		domains = append(domains, d)
		b.WriteString(d + "\n")
	}
	file := filepath.Join(t.TempDir(), "domains.txt")
	if err := os.WriteFile(file, []byte(b.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	stdout, stderr, code := runCmd(t, env, nil, 3*time.Minute, "enqueue", "--job", "throttle", "--wait", "--json", "--max-retries", "0", file)
	st := sandboxStats(t, base)["dataforseo"]
	t.Logf("vendor: %d calls, %d throttled", st.Calls, st.Throttled)
	if st.Throttled == 0 {
		t.Fatal("the vendor throttled nothing: the test tests nothing")
	}
	if code != 0 {
		t.Fatalf("enqueue exit %d: throttled pages were failed\n%s\n%s", code, tail(stdout, 3000), tail(stderr, 2000))
	}
	snk, err := sink.Open(t.Context(), sinkURL)
	if err != nil {
		t.Fatal(err)
	}
	expected := map[string]map[string][]string{"dataforseo/backlinks": expectedRows(t, base, "dataforseo", "backlinks", nil, domains)}
	verifyOutput(t, snk, "throttle", expected, 0)
	w.stop(t, 40*time.Second)
}
