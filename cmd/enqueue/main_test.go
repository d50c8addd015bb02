package main

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/linkharvest/linkharvest/internal/testenv"
)

// TestDevRunsTheExample is the README's first command: the whole system
// in one process over examples/domains.txt, leaving NDJSON and a manifest.
func TestDevRunsTheExample(t *testing.T) {
	for _, k := range []string{"REDIS_URL", "DATAFORSEO_BASE_URL", "DOMDETAILER_BASE_URL", "XOVI_BASE_URL", "DOMAINCRAWLER_BASE_URL", "SINK_URL"} {
		t.Setenv(k, "")
	}
	out := t.TempDir()
	var stdout, stderr bytes.Buffer
	code := run(context.Background(), []string{"--dev", "--json", "--job", "dev-test", "--sink", out, "../../examples/domains.txt"}, nil, &stdout, &stderr)
	if code != 0 {
		t.Fatalf("exit %d\nstdout: %s\nstderr: %s", code, stdout.String(), stderr.String())
	}
	lines := strings.Split(strings.TrimSpace(stdout.String()), "\n")
	var sum summary
	if err := json.Unmarshal([]byte(lines[len(lines)-1]), &sum); err != nil {
		t.Fatalf("last line is not the JSON summary: %v\n%s", err, stdout.String())
	}
	if sum.JobID != "dev-test" || sum.Domains != 8 || sum.Rejected != 3 || sum.Records == 0 || sum.Failed != 0 || sum.State != "done" {
		t.Errorf("summary %+v", sum)
	}
	if !strings.Contains(stderr.String(), "public suffix only") {
		t.Errorf("rejects not reported:\n%s", stderr.String())
	}
	objs, _ := filepath.Glob(filepath.Join(out, "provider=dataforseo", "endpoint=backlinks", "dt=*", "job=dev-test", "*.ndjson.gz"))
	if len(objs) == 0 {
		t.Fatal("no NDJSON objects written")
	}
	for _, f := range []string{"manifest.json", "_SUCCESS"} {
		if _, err := os.Stat(filepath.Join(out, "jobs", "dev-test", f)); err != nil {
			t.Error(err)
		}
	}
}

func TestUsageErrors(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	junk := filepath.Join(dir, "junk.txt")
	os.WriteFile(junk, []byte("not a domain\ncom\n"), 0o644)
	good := filepath.Join(dir, "good.txt")
	os.WriteFile(good, []byte("example.com\nexample.com\nfoo bar\n"), 0o644)
	cases := []struct {
		name string
		args []string
		code int
		want string
	}{
		{"unknown provider", []string{"--provider", "nope", "--dry-run", good}, exitUsage, "unknown provider"},
		{"unknown endpoint", []string{"--endpoint", "nope", "--dry-run", good}, exitUsage, "none of the endpoints"},
		{"bad param", []string{"--param", "dataforseo.backlinks.mode=sideways", "--dry-run", good}, exitUsage, "mode"},
		{"param for another endpoint", []string{"--param", "dataforseo.summary.tag=x", "--dry-run", good}, exitUsage, "not part of this job"},
		{"histogram without from", []string{"--provider", "domaincrawler", "--endpoint", "backlinks-histogram", "--dry-run", good}, exitUsage, "from"},
		{"missing file", []string{"--dry-run", filepath.Join(dir, "none.txt")}, exitUsage, "no such file"},
		{"no valid domain", []string{"--dry-run", junk}, exitUsage, "0 domains"},
		{"feed-after 0", []string{"--feed-after", "0", "--dry-run", good}, exitUsage, "--feed-after must be ≥ 1"},
		{"bad job id", []string{"--job", "a/b", "--redis", "redis://127.0.0.1:1/0", good}, exitUsage, "job id"},
		{"redis down", []string{"--redis", "redis://127.0.0.1:1/0", good}, exitRuntime, "redis"},
		{"budget not a number", []string{"--budget", "lots", "--dry-run", good}, exitUsage, "not a number"},
		{"budget of two providers as one amount", []string{"--provider", "dataforseo,domdetailer", "--budget", "5", "--dry-run", good}, exitUsage, "provider=AMOUNT"},
		{"budget for a provider not in the job", []string{"--budget", "xovi=5", "--dry-run", good}, exitUsage, "not a provider of the job"},
		{"budget with redis down", []string{"--redis", "redis://127.0.0.1:1/0", "budget", "nosuch", "5"}, exitRuntime, "connection refused"},
		{"budget without its spec", []string{"budget", "job"}, exitUsage, "usage: enqueue budget JOB SPEC"},
		{"dry run", []string{"--dry-run", "--json", good}, exitOK, `"domains":1`},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			code := run(context.Background(), c.args, strings.NewReader(""), &stdout, &stderr)
			if code != c.code {
				t.Errorf("exit %d, want %d\nstdout: %s\nstderr: %s", code, c.code, stdout.String(), stderr.String())
			}
			if !strings.Contains(stdout.String()+stderr.String(), c.want) {
				t.Errorf("output lacks %q\nstdout: %s\nstderr: %s", c.want, stdout.String(), stderr.String())
			}
		})
	}
}

// TestBadInputList: a hostile list gets line-numbered rejects and the
// valid entries still count; nothing crashes.
func TestBadInputList(t *testing.T) {
	t.Parallel()
	var b bytes.Buffer
	b.WriteString("\xef\xbb\xbfhttps://user:pw@WWW.Example.COM:8443/path?q=1\r\n") // 1: BOM, CRLF, URL
	b.WriteString("Bücher.de.\n")                                                  // 2: IDN, trailing dot
	b.WriteString("a.com&apikey=x\n")                                              // 3
	b.WriteString("../etc/passwd\n")                                               // 4
	b.WriteString("nul\x00byte.com\n")                                             // 5
	b.WriteString(strings.Repeat("x", 10<<20) + "\n")                              // 6: 10 MB line
	b.Write([]byte{0xff, 0xfe, 0x00, 0x01, 0x80, '\n'})                            // 7: binary
	b.WriteString("example.com\n")                                                 // 8: duplicate of line 1
	var stdout, stderr bytes.Buffer
	code := run(context.Background(), []string{"--dry-run", "--json", "-"}, &b, &stdout, &stderr)
	if code != exitOK {
		t.Fatalf("exit %d\n%s\n%s", code, stdout.String(), stderr.String())
	}
	for _, want := range []string{"line 3:", "line 4:", "line 5:", "line 6: line too long", "line 7:"} {
		if !strings.Contains(stderr.String(), want) {
			t.Errorf("stderr lacks %q:\n%.2000s", want, stderr.String())
		}
	}
	if stderr.Len() > 10000 {
		t.Errorf("rejects echo the junk: %d bytes on stderr", stderr.Len())
	}
	lines := strings.Split(strings.TrimSpace(stdout.String()), "\n")
	var sum summary
	if err := json.Unmarshal([]byte(lines[len(lines)-1]), &sum); err != nil {
		t.Fatal(err)
	}
	if sum.Domains != 2 || sum.Rejected != 5 {
		t.Errorf("summary %+v, want 2 domains and 5 rejected", sum)
	}
}

// TestInputEdges: inputs that cannot make a job are refused before any
// job exists, with a clear message.
func TestInputEdges(t *testing.T) {
	t.Parallel()
	rds := testenv.Redis(t)
	rdb := rds.Client(t)
	dir := t.TempDir()
	junk := filepath.Join(dir, "junk.txt")
	os.WriteFile(junk, []byte("not a domain\ncom\n"), 0o644)
	good := filepath.Join(dir, "good.txt")
	os.WriteFile(good, []byte("example.com\n"), 0o644)
	cases := []struct {
		name  string
		args  []string
		stdin string
		want  string
	}{
		{"empty standard input", []string{"--job", "e1"}, "", "no valid domain"},
		{"only rejected lines", []string{"--job", "e2", junk}, "", "no valid domain"},
		{"empty job id", []string{"--job", "", good}, "", "--job is empty"},
		{"a directory among the files", []string{"--job", "e3", good, dir}, "", "is a directory"},
		{"a long bad job id is shortened", []string{"--job", strings.Repeat("x/", 500), good}, "", "bytes)"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			code := run(context.Background(), append([]string{"--redis", rds.URL}, c.args...), strings.NewReader(c.stdin), &stdout, &stderr)
			out := stdout.String() + stderr.String()
			if code != exitUsage || !strings.Contains(out, c.want) {
				t.Errorf("exit %d, want %d with %q\n%s", code, exitUsage, c.want, out)
			}
			if len(out) > 2000 {
				t.Errorf("%d bytes of output: the input is echoed", len(out))
			}
			if keys, _ := rdb.Keys(context.Background(), "*").Result(); len(keys) != 0 {
				t.Errorf("Redis holds %v: something was created", keys)
			}
		})
	}
}
