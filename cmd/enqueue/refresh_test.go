package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/linkharvest/linkharvest/internal/testenv"
)

// TestRefreshRefusals: what a refresh cannot be is refused before
// anything is enqueued, each with a message that says what to do; a
// refresh that takes its base job's spec is accepted.
func TestRefreshRefusals(t *testing.T) {
	for _, k := range []string{"REDIS_URL", "DATAFORSEO_BASE_URL", "DOMDETAILER_BASE_URL", "XOVI_BASE_URL", "DOMAINCRAWLER_BASE_URL", "SINK_URL"} {
		t.Setenv(k, "")
	}
	rds := testenv.Redis(t)
	dir := t.TempDir()
	list := filepath.Join(dir, "d.txt")
	os.WriteFile(list, []byte("rows-3.example\nrows-0.example\n"), 0o644)
	// A finished base job (in-process workers on the built-in sandbox), and
	// one still running (no worker takes it).
	if code, out, errs := runEnqueue(t, "--dev", "--redis", rds.URL, "--sink", filepath.Join(dir, "out"), "--job", "base", list); code != exitOK {
		t.Fatalf("base job: exit %d\n%s%s", code, out, errs)
	}
	if code, out, errs := runEnqueue(t, "--redis", rds.URL, "--job", "running", list); code != exitOK {
		t.Fatalf("running job: exit %d\n%s%s", code, out, errs)
	}
	cases := []struct {
		name string
		args []string
		code int
		want string
	}{
		{"since without refresh", []string{"--since", "2026-01-01", "--dry-run", list}, exitUsage, "--since works with --refresh only"},
		{"unknown base", []string{"--refresh", "nosuch"}, exitUsage, "no such job"},
		{"base still running", []string{"--refresh", "running"}, exitUsage, "has not ended"},
		{"same id as the base", []string{"--refresh", "base", "--job", "base"}, exitUsage, "another id"},
		{"other providers", []string{"--refresh", "base", "--provider", "xovi"}, exitUsage, "takes its base job's providers"},
		{"other options", []string{"--refresh", "base", "--param", "dataforseo.backlinks.tag=x"}, exitUsage, "takes its base job's providers"},
		{"since not a day", []string{"--refresh", "base", "--since", "last week"}, exitUsage, "want YYYY-MM-DD"},
		{"since in the future", []string{"--refresh", "base", "--since", "2999-01-01"}, exitUsage, "in the future"},
		{"since past what the vendor counts", []string{"--refresh", "base", "--since", "2020-01-01"}, exitUsage, "at most 365 days"},
		{"the base's own spec, a dry run", []string{"--refresh", "base", "--provider", "dataforseo", "--dry-run"}, exitOK, "its calls depend on what changed"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			code, out, errs := runEnqueue(t, append([]string{"--redis", rds.URL}, c.args...)...)
			if code != c.code || !strings.Contains(out+errs, c.want) {
				t.Errorf("exit %d (want %d), output lacks %q?\nstdout: %s\nstderr: %s", code, c.code, c.want, out, errs)
			}
		})
	}
}
