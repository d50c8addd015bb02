package limiter

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/linkharvest/linkharvest/internal/testenv"
)

type logBuf struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *logBuf) Write(p []byte) (int, error) { l.mu.Lock(); defer l.mu.Unlock(); return l.b.Write(p) }
func (l *logBuf) count(s string) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return strings.Count(l.b.String(), s)
}

// vendor answers with the account's limit in X-RateLimit-Limit.
func vendor(t *testing.T, limit *string) string {
	var mu sync.Mutex
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		w.Header().Set("X-RateLimit-Limit", *limit)
		mu.Unlock()
		io.WriteString(w, "{}")
	}))
	t.Cleanup(srv.Close)
	return srv.URL
}

func callThrough(t *testing.T, l *Limiter, url string) {
	t.Helper()
	hc := &http.Client{Transport: l.Transport(nil)}
	resp, err := hc.Post(url+"/v3/backlinks/backlinks/live", "application/json", strings.NewReader("[]"))
	if err != nil {
		t.Fatal(err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
}

// TestAccountLimitStated: a limit the vendor states below the configured
// one is applied by every process of the account, also by one that never
// saw the header, from its next call on, and said once in each process's
// log; a higher one changes nothing and is said once.
func TestAccountLimitStated(t *testing.T) {
	t.Parallel()
	rs := testenv.Redis(t)
	ctx := context.Background()
	conf := Limit{Rate: 2000, Period: time.Minute, InFlight: 30}
	var logA, logB logBuf
	a := New(rs.Client(t), "acct", conf, WithLogger(slog.New(slog.NewTextHandler(&logA, nil))), WithAccountLimitHeader("x-ratelimit-limit", time.Minute))
	b := New(rs.Client(t), "acct", conf, WithLogger(slog.New(slog.NewTextHandler(&logB, nil))), WithAccountLimitHeader("X-RateLimit-Limit", time.Minute))

	stated := "120"
	url := vendor(t, &stated)
	callThrough(t, a, url) // granted at the configured limit; its answer states 120
	if got := a.Applied().Rate; got != 2000 {
		t.Errorf("before any statement: applied %d, want the configured 2000", got)
	}
	for i := 0; i < 3; i++ {
		le, err := b.Acquire(ctx)
		if err != nil {
			t.Fatal(err)
		}
		le.Release(ctx)
	}
	if got := b.Applied(); got.Rate != 120 || got.Period != time.Minute || got.InFlight != 30 {
		t.Errorf("the other process applies %v, want 120/1m:30", got)
	}
	callThrough(t, a, url)
	callThrough(t, a, url)
	if got := a.Applied().Rate; got != 120 {
		t.Errorf("the process that saw it applies %d, want 120", got)
	}
	const lower = "states a lower limit"
	if n, m := logA.count(lower), logB.count(lower); n != 1 || m != 1 {
		t.Errorf("logged the lower limit %d and %d times, want once in each process:\n%s\n%s", n, m, logA.b.String(), logB.b.String())
	}
	// The bucket is the account's: the one a call is rated by at 120/min.
	if got, want := b.bucketFor(120), (Limit{Rate: 120, Period: time.Minute}).bucket(); got != want {
		t.Errorf("bucket %+v, want %+v", got, want)
	}
	// A higher statement: the configured limit stays, said once. (It
	// replaces the statement made under this path, so the account's
	// lowest is 5000.)
	stated = "5000"
	callThrough(t, a, url)
	callThrough(t, a, url)
	if got := a.Applied().Rate; got != 2000 {
		t.Errorf("with a higher statement: applied %d, want the configured 2000", got)
	}
	if n := logA.count("states a higher limit"); n != 1 {
		t.Errorf("logged the higher limit %d times, want once:\n%s", n, logA.b.String())
	}
}

// TestAccountLimitPeriods: a statement per minute is converted to the
// configured period; one that does not parse is ignored; without the
// option nothing is read.
func TestAccountLimitPeriods(t *testing.T) {
	t.Parallel()
	rs := testenv.Redis(t)
	ctx := context.Background()
	for _, tc := range []struct {
		name, stated string
		conf         Limit
		opt          bool
		want         int
	}{
		{"per 10s", "120", Limit{Rate: 300, Period: 10 * time.Second}, true, 20},
		{"garbage", "lots", Limit{Rate: 300, Period: 10 * time.Second}, true, 300},
		{"negative", "-5", Limit{Rate: 300, Period: 10 * time.Second}, true, 300},
		{"off", "120", Limit{Rate: 300, Period: 10 * time.Second}, false, 300},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var opts []Option
			if tc.opt {
				opts = append(opts, WithAccountLimitHeader("X-RateLimit-Limit", time.Minute))
			}
			l := New(rs.Client(t), "periods-"+strings.ReplaceAll(tc.name, " ", ""), tc.conf, opts...)
			stated := tc.stated
			callThrough(t, l, vendor(t, &stated))
			le, err := l.Acquire(ctx)
			if err != nil {
				t.Fatal(err)
			}
			le.Release(ctx)
			if got := l.Applied().Rate; got != tc.want {
				t.Errorf("applied %d, want %d", got, tc.want)
			}
		})
	}
}
