package providertest

import (
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/linkharvest/linkharvest/providers"
)

// Helpers for a vendor package's own tests (its seeds' examples, its
// error table).

// Testdata reads testdata/name of the package under test.
func Testdata(t testing.TB, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// Serve answers every request with status, headers and body until the
// test ends, and records the requests.
func Serve(t testing.TB, status int, header map[string]string, body []byte) (*httptest.Server, *[]*http.Request) {
	t.Helper()
	var reqs []*http.Request
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		reqs = append(reqs, r)
		for k, v := range header {
			w.Header().Set(k, v)
		}
		w.WriteHeader(status)
		w.Write(body)
	}))
	t.Cleanup(srv.Close)
	return srv, &reqs
}

// NoSecret fails if secret shows, as is or escaped as URLs escape it, in
// any form of err: its message, %+v, %#v, and every error of its chain.
func NoSecret(t testing.TB, err error, secret string) {
	t.Helper()
	if err == nil {
		return
	}
	forms := []string{err.Error(), fmt.Sprintf("%+v", err), fmt.Sprintf("%#v", err)}
	for e := errors.Unwrap(err); e != nil; e = errors.Unwrap(e) {
		forms = append(forms, e.Error(), fmt.Sprintf("%#v", e))
	}
	if pe, ok := providers.AsError(err); ok && pe.Err != nil {
		forms = append(forms, pe.Err.Error(), fmt.Sprintf("%#v", pe.Err))
	}
	for _, f := range forms {
		for _, k := range []string{secret, url.QueryEscape(secret), url.PathEscape(secret)} {
			if strings.Contains(f, k) {
				t.Fatalf("the secret shows (%q) in %q", k, f)
			}
		}
	}
}
