package settings

import (
	"bytes"
	"errors"
	"flag"
	"strings"
	"testing"
	"time"
)

func env(m map[string]string) Getenv { return func(k string) string { return m[k] } }

func TestDuration(t *testing.T) {
	t.Parallel()
	cases := []struct {
		in   string
		want time.Duration
		ok   bool
	}{
		{"", time.Second, true}, // unset: the default
		{"0", 0, true},
		{"300ms", 300 * time.Millisecond, true},
		{"30d", 30 * 24 * time.Hour, true},
		{"1d12h", 36 * time.Hour, true},
		{"30", 0, false}, // no unit
		{"abc", 0, false},
		{"-5s", 0, false}, // below the range
		{"d", 0, false},
		{"1dx", 0, false},
		{"32d", 0, false}, // above the range
	}
	for _, c := range cases {
		got, err := Duration(env(map[string]string{"D": c.in}), "D", time.Second, 0, 31*24*time.Hour)
		if c.ok != (err == nil) || (c.ok && got != c.want) {
			t.Errorf("Duration(%q) = %v, %v; want %v, ok %v", c.in, got, err, c.want, c.ok)
		}
		var se *Error
		if err != nil && (!errors.As(err, &se) || se.Name != "D" || !strings.Contains(err.Error(), c.in)) {
			t.Errorf("Duration(%q): error %q does not name the setting and value", c.in, err)
		}
	}
	for _, d := range []time.Duration{0, time.Second, 90 * time.Second, 30 * 24 * time.Hour, 36 * time.Hour} {
		back, err := ParseDuration(FormatDuration(d))
		if err != nil || back != d {
			t.Errorf("FormatDuration(%v) = %q reads back as %v, %v", d, FormatDuration(d), back, err)
		}
	}
}

func TestInt(t *testing.T) {
	t.Parallel()
	for in, ok := range map[string]bool{"": true, "1": true, "40": true, "abc": false, "-5": false, "0": false, "1e3": false, "10001": false} {
		_, err := Int(env(map[string]string{"N": in}), "N", 40, 1, 10000)
		if ok != (err == nil) {
			t.Errorf("Int(%q): err %v, want ok %v", in, err, ok)
		}
	}
}

func TestBinder(t *testing.T) {
	t.Parallel()
	newFS := func() (*flag.FlagSet, *Binder, *bytes.Buffer) {
		var out bytes.Buffer
		fs := flag.NewFlagSet("p", flag.ContinueOnError)
		fs.SetOutput(&out)
		b := NewBinder(fs)
		b.Flag("concurrency", "CONC", "40", "tasks")
		b.Flag("redis", "REDIS_URL", "redis://127.0.0.1:6379/0", "url")
		b.Flag("metrics-addr", "METRICS_ADDR", "127.0.0.1:9090", "addr")
		b.EmptyMeans("METRICS_ADDR", "off")
		return fs, b, &out
	}
	osenv := map[string]string{"CONC": "7", "REDIS_URL": "redis://:env-secret@h:1/0", "METRICS_ADDR": ""}
	lookup := func(k string) (string, bool) { v, ok := osenv[k]; return v, ok }

	fs, b, _ := newFS()
	if err := fs.Parse([]string{"--concurrency", "abc"}); err != nil {
		t.Fatal(err)
	}
	get := b.Getenv(lookup)
	if get("CONC") != "abc" || get("REDIS_URL") != osenv["REDIS_URL"] {
		t.Errorf("flags do not win over the environment: CONC=%q REDIS_URL=%q", get("CONC"), get("REDIS_URL"))
	}
	if get("METRICS_ADDR") != "off" {
		t.Errorf("METRICS_ADDR set but empty reads %q, want off", get("METRICS_ADDR"))
	}
	_, err := Int(get, "CONC", 40, 1, 100)
	if err = b.Explain(err); err == nil || !strings.HasPrefix(err.Error(), `--concurrency="abc"`) {
		t.Errorf("a bad flag value is not named by the flag: %v", err)
	}

	fs, b, _ = newFS()
	_ = fs.Parse(nil)
	_, err = Int(b.Getenv(func(string) (string, bool) { return "x", true }), "CONC", 40, 1, 100)
	if err = b.Explain(err); err == nil || !strings.HasPrefix(err.Error(), `CONC="x"`) {
		t.Errorf("a bad variable is not named by the variable: %v", err)
	}

	// -help shows the built-in defaults, never the environment's values.
	fs, _, out := newFS()
	_ = fs.Parse([]string{"-help"})
	if s := out.String(); strings.Contains(s, "env-secret") || !strings.Contains(s, "(default 40)") {
		t.Errorf("-help:\n%s", s)
	}
}

func TestListenAddr(t *testing.T) {
	t.Parallel()
	for in, ok := range map[string]bool{"127.0.0.1:9090": true, ":9090": true, "[::1]:0": true, "9090": false, "127.0.0.1:http": false, "h:70000": false} {
		if err := ListenAddr("A", in); ok != (err == nil) {
			t.Errorf("ListenAddr(%q) = %v, want ok %v", in, err, ok)
		}
	}
}
