// Package providertest is the test suite every vendor package runs
// against its own sandbox, so that what the pipeline relies on of a
// vendor client is checked the same way for each, and a new vendor gets
// the checks by calling Run:
//
//	func TestSuite(t *testing.T) { providertest.Run(t, Vendor, providertest.Options{}) }
//
// It covers paging (every row exactly once, at page boundaries and past
// the vendor's largest offset), authentication failure, throttling,
// injected transient failures, and credentials that never show in
// errors, formatting or logs. What is particular to one vendor (its
// seeds' examples, its request forms) stays in that vendor's own tests.
package providertest

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/linkharvest/linkharvest/providers"
	"github.com/linkharvest/linkharvest/providers/sandbox"
)

// Options say how a vendor's sandbox behaves where vendors differ.
type Options struct {
	// NoThrottle: the vendor documents no throttle signal, and its sandbox
	// answers every call whatever its limits (the limiter alone keeps the
	// account's pace).
	NoThrottle bool
	// Params are options the default endpoint cannot go without.
	Params map[string]json.RawMessage
	// RowKind is the Item.Kind of the rows a rows-N domain has N of, when
	// a page holds other items too (DomDetailer's metrics); "" counts all.
	RowKind string
}

// Run runs the suite on v's default endpoint (v.Endpoints[0]).
func Run(t *testing.T, v providers.Vendor, o Options) {
	t.Run("Paging", func(t *testing.T) { testPaging(t, v, o) })
	t.Run("AuthFailure", func(t *testing.T) { testAuth(t, v, o) })
	t.Run("Throttle", func(t *testing.T) { testThrottle(t, v, o) })
	t.Run("InjectedFailures", func(t *testing.T) { testFailures(t, v, o) })
	t.Run("SecretsNeverShown", func(t *testing.T) { testSecrets(t, v, o) })
	t.Run("TransportFailures", func(t *testing.T) { testTransport(t, v, o) })
	t.Run("CrossHostRedirect", func(t *testing.T) { testRedirect(t, v, o) })
}

// Sandbox serves v's sandbox with opts until the test ends.
func Sandbox(t testing.TB, v providers.Vendor, opts sandbox.Options) (*sandbox.Server, string) {
	t.Helper()
	s := sandbox.New(opts)
	v.Mount(s)
	hs := httptest.NewServer(s)
	t.Cleanup(hs.Close)
	return s, hs.URL
}

// Client builds v's client from the sandbox environment at base, with
// the values in set overriding it.
func Client(t testing.TB, v providers.Vendor, base string, set map[string]string) providers.Client {
	t.Helper()
	env := map[string]string{v.Env.BaseURL: base}
	for k, val := range v.Env.Sandbox {
		env[k] = val
	}
	for k, val := range set {
		env[k] = val
	}
	c, err := v.FromEnv(func(k string) string { return env[k] }, &http.Client{Timeout: 30 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// withSecrets sets every secret variable of v to value.
func withSecrets(v providers.Vendor, value func(i int) string) map[string]string {
	out := map[string]string{}
	for i, k := range v.Env.Secrets {
		out[k] = value(i)
	}
	return out
}

func request(v providers.Vendor, o Options, domain string) providers.Request {
	return providers.Request{Endpoint: v.Endpoints[0], Domain: domain, Page: 1, Params: o.Params}
}

// FetchAll pages through a domain as the pipeline does: offset pages
// while the vendor takes offsets, each page chained to its predecessor's
// cursor past them, cursor pages until the vendor says there are no more.
// retries is how often a retryable failure is tried again. It returns
// the rows' raw JSON in order and the total the vendor stated (-1: none).
func FetchAll(t testing.TB, c providers.Client, endpoint, domain string, o Options, retries int) ([]string, int) {
	t.Helper()
	pg, err := c.Paging(endpoint)
	if err != nil {
		t.Fatal(err)
	}
	var rows []string
	fetch := func(page, off int, cursor string) *providers.Page {
		t.Helper()
		req := providers.Request{Endpoint: endpoint, Domain: domain, Page: page, Offset: off, Limit: pg.PageSize, Cursor: cursor, Params: o.Params}
		for attempt := 0; ; attempt++ {
			p, err := c.Fetch(context.Background(), req)
			if err == nil {
				for _, it := range p.Items {
					if o.RowKind == "" || it.Kind == o.RowKind {
						rows = append(rows, string(it.Raw))
					}
				}
				return p
			}
			if cl := providers.ClassOf(err); (cl != providers.Retryable && cl != providers.Throttled) || attempt >= retries {
				t.Fatalf("%s page %d (offset %d): %v", domain, page, off, err)
			}
		}
	}
	first := fetch(1, 0, "")
	total := first.Total
	switch pg.Kind {
	case providers.PagingOffset:
		if pg.PageSize <= 0 {
			t.Fatalf("offset paging without a page size: %+v", pg)
		}
		last := first
		for k := 2; (k-1)*pg.PageSize < total; k++ {
			off, cursor := (k-1)*pg.PageSize, ""
			if pg.MaxOffset > 0 && off > pg.MaxOffset {
				if !pg.CursorPastMax {
					break
				}
				if cursor = last.Next; cursor == "" {
					t.Fatalf("%s: no cursor at offset %d of %d", domain, off, total)
				}
			}
			last = fetch(k, off, cursor)
			if last.Total != total {
				t.Fatalf("%s: the total changed from %d to %d at offset %d", domain, total, last.Total, off)
			}
		}
	case providers.PagingCursor:
		last := first
		for k := 2; last.Next != "" && len(last.Items) > 0 && (total < 0 || len(rows) < total); k++ {
			last = fetch(k, len(rows), last.Next)
		}
	}
	return rows, total
}

// testPaging: every row of rows-N domains exactly once, for N around the
// page size, twice it, and past the vendor's largest offset.
func testPaging(t *testing.T, v providers.Vendor, o Options) {
	_, base := Sandbox(t, v, sandbox.Options{Seed: 1})
	c := Client(t, v, base, nil)
	pg, err := v.Paging(v.Endpoints[0])
	if err != nil {
		t.Fatal(err)
	}
	size := pg.PageSize
	ns := []int{0, 1, 7}
	if size > 1 {
		ns = append(ns, size-1, size, size+1, 2*size+1)
	}
	if pg.Kind == providers.PagingOffset && pg.MaxOffset > 0 && pg.CursorPastMax {
		ns = append(ns, pg.MaxOffset+size, pg.MaxOffset+size+1)
	}
	for _, n := range ns {
		domain := fmt.Sprintf("rows-%d.example", n)
		rows, total := FetchAll(t, c, v.Endpoints[0], domain, o, 0)
		want := n
		if pg.Kind == providers.PagingNone && size > 0 {
			want = min(n, size) // one call returns what the vendor caps it to
		}
		if len(rows) != want {
			t.Errorf("%s: %d rows, want %d", domain, len(rows), want)
		}
		if total >= 0 && total != n && !(pg.Kind == providers.PagingNone && total == want) {
			t.Errorf("%s: total %d, want %d", domain, total, n)
		}
		seen := make(map[string]int, len(rows))
		for i, r := range rows {
			if j, dup := seen[r]; dup {
				t.Errorf("%s: row %d is row %d again: %s", domain, i, j, r)
				break
			}
			seen[r] = i
		}
	}
}

// testAuth: a credential the vendor refuses is a fatal failure of the
// account (the provider's queue is paused), not something to retry.
func testAuth(t *testing.T, v providers.Vendor, o Options) {
	_, base := Sandbox(t, v, sandbox.Options{Seed: 1})
	c := Client(t, v, base, withSecrets(v, func(int) string { return sandbox.BadCredential }))
	_, err := c.Fetch(context.Background(), request(v, o, "rows-5.example"))
	pe, ok := providers.AsError(err)
	if !ok || pe.Class != providers.Fatal || !pe.Account || pe.Provider != v.Name {
		t.Errorf("bad credential: %v; want a fatal account failure of %s", err, v.Name)
	}
}

// testThrottle: past the sandbox's rate the client says Throttled (the
// limiter then slows every worker), unless the vendor signals none.
func testThrottle(t *testing.T, v providers.Vendor, o Options) {
	s, base := Sandbox(t, v, sandbox.Options{Seed: 1, Rate: 1, Period: time.Hour, Concurrency: 1})
	c := Client(t, v, base, nil)
	if _, err := c.Fetch(context.Background(), request(v, o, "rows-5.example")); err != nil {
		t.Fatalf("first call: %v", err)
	}
	_, err := c.Fetch(context.Background(), request(v, o, "rows-5.example"))
	st := s.Stats()[v.Name]
	if o.NoThrottle {
		if err != nil || st.Throttled != 0 || st.Calls != 2 {
			t.Errorf("second call: %v, stats %+v; want an answer: the vendor signals no throttle", err, st)
		}
		return
	}
	if providers.ClassOf(err) != providers.Throttled || st.Throttled != 1 {
		t.Errorf("second call within the hour: %v (stats %+v); want throttled", err, st)
	}
}

// testFailures: every injected failure (5xx, broken bodies, dropped
// connections, a vendor's spurious throttle) is retried, never fatal,
// and retried pages give exactly the rows of a clean run.
func testFailures(t *testing.T, v providers.Vendor, o Options) {
	s, base := Sandbox(t, v, sandbox.Options{Seed: 5, Fail: 1})
	c := Client(t, v, base, nil)
	const calls = 40
	for i := 0; i < calls; i++ {
		_, err := c.Fetch(context.Background(), request(v, o, "rows-50.example"))
		if pe, ok := providers.AsError(err); !ok || (pe.Class != providers.Retryable && pe.Class != providers.Throttled) || pe.Account || pe.Provider != v.Name {
			t.Fatalf("call %d: %v; want a retryable (or throttled) failure of %s", i, err, v.Name)
		}
	}
	// net/http itself retries a request whose connection was dropped.
	if st := s.Stats()[v.Name]; st.Calls < calls || st.InjectedFailures != st.Calls || st.Throttled != 0 {
		t.Errorf("stats %+v: want at least %d calls, all failed by injection", st, calls)
	}
	pg, _ := v.Paging(v.Endpoints[0])
	domain := fmt.Sprintf("rows-%d.example", 2*max(pg.PageSize, 1)+3)
	_, clean := Sandbox(t, v, sandbox.Options{Seed: 5})
	want, _ := FetchAll(t, Client(t, v, clean, nil), v.Endpoints[0], domain, o, 0)
	_, flaky := Sandbox(t, v, sandbox.Options{Seed: 5, Fail: 0.4})
	got, _ := FetchAll(t, Client(t, v, flaky, nil), v.Endpoints[0], domain, o, 40)
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("%s through injected failures: %d rows, not the %d of a clean run", domain, len(got), len(want))
	}
}

// testSecrets: with recognisable credentials, neither the errors of
// failing calls (refused, injected failures) nor the client's formatting
// nor slog output show them, in any of the forms a URL gives them.
func testSecrets(t *testing.T, v providers.Vendor, o Options) {
	set, secrets := secretValues(v)
	var hay bytes.Buffer
	lg := slog.New(slog.NewJSONHandler(&hay, nil))
	_, base := Sandbox(t, v, sandbox.Options{Seed: 7, Fail: 1})
	c := Client(t, v, base, set)
	for i := 0; i < 12; i++ {
		_, err := c.Fetch(context.Background(), request(v, o, "rows-5.example"))
		if err == nil {
			t.Fatal("a call succeeded against a sandbox failing every call")
		}
		fmt.Fprintf(&hay, "%v\n%+v\n%#v\n", err, err, err)
		lg.Error("call failed", "err", err, "client", c)
	}
	fmt.Fprintf(&hay, "%v %+v %#v %s\n", c, c, c, c)
	shows(t, "errors, formatting and logs", hay.String(), secrets)
}

// secretValues gives every secret variable of v a recognisable value,
// with characters URLs escape, and returns the values.
func secretValues(v providers.Vendor) (map[string]string, []string) {
	var secrets []string
	set := withSecrets(v, func(i int) string {
		s := fmt.Sprintf("Sx%d%s+k/y=z", i, v.Name)
		secrets = append(secrets, s)
		return s
	})
	return set, secrets
}

// shows reports where hay holds a secret, in any form a URL gives it.
func shows(t *testing.T, what, hay string, secrets []string) {
	t.Helper()
	for _, s := range secrets {
		for _, form := range []string{s, url.QueryEscape(s), url.PathEscape(s)} {
			if i := strings.Index(hay, form); i >= 0 {
				t.Errorf("%s shows a secret as %q: …%s…", what, form, hay[max(0, i-100):min(len(hay), i+40)])
			}
		}
	}
}

// testTransport: a refused connection and a timeout are retryable, and
// their errors (which net/http builds from the URL) show no secret.
func testTransport(t *testing.T, v providers.Vendor, o Options) {
	set, secrets := secretValues(v)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	refused := "http://" + ln.Addr().String()
	ln.Close() // nothing listens there now
	slow := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-r.Context().Done():
		case <-time.After(5 * time.Second):
		}
	}))
	t.Cleanup(slow.Close)
	for _, base := range []string{refused, slow.URL} {
		c := Client(t, v, base, set)
		ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
		_, err := c.Fetch(ctx, request(v, o, "example.com"))
		cancel()
		if providers.ClassOf(err) != providers.Retryable {
			t.Errorf("%s: %v; want retryable", base, err)
		}
		if err != nil {
			shows(t, "a transport error", fmt.Sprintf("%v %+v %#v", err, err, err), secrets)
		}
	}
}

// testRedirect: a redirect to another host never carries a credential
// there, in the URL or in a header.
func testRedirect(t *testing.T, v providers.Vendor, o Options) {
	set, secrets := secretValues(v)
	var seen atomic.Value
	seen.Store("")
	other := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		seen.Store(seen.Load().(string) + r.URL.String() + fmt.Sprint(r.Header))
	}))
	t.Cleanup(other.Close)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, other.URL+r.URL.RequestURI(), http.StatusTemporaryRedirect)
	}))
	t.Cleanup(srv.Close)
	_, err := Client(t, v, srv.URL, set).Fetch(context.Background(), request(v, o, "example.com"))
	if err == nil {
		t.Error("an empty answer from another host was taken for the vendor's")
	}
	shows(t, "the other host's requests", seen.Load().(string), secrets)
	if err != nil {
		shows(t, "the error", err.Error(), secrets)
	}
}
