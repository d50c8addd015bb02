package registry

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"go.opentelemetry.io/otel"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"

	"github.com/linkharvest/linkharvest/internal/telemetry"
	"github.com/linkharvest/linkharvest/providers"
)

// TestVendorsDescribeThemselves checks that every vendor in the list
// fills in what the rest of the system reads of it.
func TestVendorsDescribeThemselves(t *testing.T) {
	t.Parallel()
	if !slices.IsSorted(Names()) || len(slices.Compact(Names())) != len(Vendors) {
		t.Fatalf("Names() = %v: want sorted and unique", Names())
	}
	units := []string{providers.UnitUSD, providers.UnitCredits, providers.UnitCalls}
	signals := []providers.ChangeSignal{providers.ChangeCounts, providers.ChangeRows, providers.ChangeHistogram}
	for _, v := range Vendors {
		t.Run(v.Name, func(t *testing.T) {
			if v.Name == "" || len(v.Endpoints) == 0 || v.Paging == nil || v.CheckParams == nil || v.FromEnv == nil || v.Mount == nil {
				t.Fatalf("incomplete: %+v", v)
			}
			for _, e := range v.Endpoints {
				if _, err := v.Paging(e); err != nil {
					t.Errorf("Paging(%q): %v", e, err)
				}
			}
			if _, err := v.Paging("no-such-endpoint"); err == nil {
				t.Error("Paging accepts an unknown endpoint")
			}
			if err := v.CheckParams(v.Endpoints[0], map[string]json.RawMessage{"no_such_option": json.RawMessage("1")}); err == nil {
				t.Error("CheckParams accepts an unknown option")
			}
			if v.Env.BaseURL == "" || len(v.Env.Secrets) == 0 {
				t.Errorf("Env %+v: want a base-URL variable and at least one secret", v.Env)
			}
			for _, s := range v.Env.Secrets {
				if !slices.Contains(v.Env.Account, s) {
					t.Errorf("secret %s is not among the account's variables %v", s, v.Env.Account)
				}
			}
			if len(v.Prices) == 0 {
				t.Error("no price")
			}
			for _, p := range v.Prices {
				if !slices.Contains(units, p.Unit) || p.PerCall < 0 || p.PerRow < 0 || p.PerCall+p.PerRow == 0 {
					t.Errorf("price %+v", p)
				}
			}
			for _, s := range v.ChangeSignals {
				if !slices.Contains(signals, s) {
					t.Errorf("undocumented change signal %q", s)
				}
			}
			// The sandbox environment builds a client; an empty one does not.
			env := SandboxEnv("http://127.0.0.1:1")
			if c, err := v.FromEnv(func(k string) string { return env[k] }, nil); err != nil || c == nil {
				t.Errorf("FromEnv(sandbox env) = %v, %v", c, err)
			} else {
				for _, e := range v.Endpoints {
					want, _ := v.Paging(e)
					if got, err := c.Paging(e); err != nil || got != want {
						t.Errorf("the client's paging of %s is %+v (%v), the descriptor's %+v", e, got, err, want)
					}
				}
			}
			if c, err := v.FromEnv(func(string) string { return "" }, nil); err == nil || c != nil {
				t.Errorf("FromEnv(empty env) = %v, %v; want an error and no client", c, err)
			}
		})
	}
}

// TestDefaultLimitsAreThePublishedOnes: DataForSEO publishes 2000 calls a
// minute and 30 at once, and states the account's own on every answer.
func TestDefaultLimitsAreThePublishedOnes(t *testing.T) {
	t.Parallel()
	v, err := Lookup("dataforseo")
	if err != nil {
		t.Fatal(err)
	}
	want := providers.Limits{Rate: 2000, Period: time.Minute, InFlight: 30, Header: "X-RateLimit-Limit", HeaderPer: time.Minute}
	if v.Limits != want {
		t.Errorf("dataforseo limits %+v, want %+v", v.Limits, want)
	}
	if _, err := Lookup("nosuch"); err == nil || !strings.Contains(err.Error(), "dataforseo") {
		t.Errorf("Lookup(nosuch) = %v: want an error listing the known ones", err)
	}
}

// credentialName is what a variable holding a credential is called.
var credentialName = regexp.MustCompile(`(?i)(PASSWORD|SECRET|TOKEN|APIKEY|_KEY$|AUTH)`)

// TestVendorSecretsNeverShown iterates the list, so a vendor added to it
// is covered without editing the test: every variable a vendor's client
// reads that names a credential must be declared secret, and with
// recognisable values in them, a failing call (an error page echoing the
// request, a refused connection) must show none of them in the error,
// in the client's formatting, in slog output or in a span's attributes,
// with the worker's span redaction fed from the descriptor.
func TestVendorSecretsNeverShown(t *testing.T) {
	rec := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec))
	prev := otel.GetTracerProvider()
	otel.SetTracerProvider(tp)
	t.Cleanup(func() { otel.SetTracerProvider(prev) })

	// A proxy's error page that quotes the request, credentials and all.
	echo := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		auth, _ := base64.StdEncoding.DecodeString(strings.TrimPrefix(r.Header.Get("Authorization"), "Basic "))
		quote := fmt.Sprintf("%s %s auth=%s body=%s", r.Method, r.URL.String(), auth, body)
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusInternalServerError)
		fmt.Fprintf(w, `{"message":%q,"error":%q,"status_message":%q,"apiErrorMessage":%q}`, quote, quote, quote, quote)
	}))
	t.Cleanup(echo.Close)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	refused := "http://" + ln.Addr().String()
	ln.Close()

	for _, v := range Vendors {
		for _, base := range []string{echo.URL, refused} {
			t.Run(v.Name+"/"+base, func(t *testing.T) {
				rec.Reset()
				env := SandboxEnv(base)
				var secrets []string
				for i, s := range v.Env.Secrets {
					// Characters that URLs escape, so every encoded form is checked.
					env[s] = fmt.Sprintf("Sx%d%s+k/y=z", i, strings.ToLower(v.Name))
					secrets = append(secrets, env[s])
				}
				read := map[string]bool{}
				getenv := func(k string) string { read[k] = true; return env[k] }
				hc := &http.Client{Transport: telemetry.Transport(http.DefaultTransport, v.SecretValues(getenv)...), Timeout: 10 * time.Second}
				c, err := v.FromEnv(getenv, hc)
				if err != nil {
					t.Fatal(err)
				}
				for k := range read {
					if credentialName.MatchString(k) && !slices.Contains(v.Env.Secrets, k) {
						t.Errorf("the client reads %s, a credential not in Env.Secrets", k)
					}
				}
				_, ferr := c.Fetch(context.Background(), providers.Request{Endpoint: v.Endpoints[0], Domain: "example.com", Page: 1, Params: sandboxParams(v)})
				if ferr == nil {
					t.Fatal("the call succeeded against a failing server")
				}
				var hay bytes.Buffer
				fmt.Fprintf(&hay, "%v\n%+v\n%#v\n%v %+v %#v %s\n", ferr, ferr, ferr, c, c, c, c)
				for e := ferr; e != nil; e = errorsUnwrap(e) {
					hay.WriteString(e.Error() + "\n")
				}
				lg := slog.New(slog.NewJSONHandler(&hay, nil))
				lg.Error("call failed", "err", ferr, "client", c)
				slog.New(slog.NewTextHandler(&hay, nil)).Error("call failed", "err", ferr, "client", c)
				tp.ForceFlush(context.Background())
				spans := rec.Ended()
				if base == echo.URL && len(spans) == 0 {
					t.Error("no span recorded: the check of spans would pass vacuously")
				}
				for _, s := range spans {
					for _, a := range s.Attributes() {
						fmt.Fprintf(&hay, "span %s %s=%s\n", s.Name(), a.Key, a.Value.Emit())
					}
					for _, ev := range s.Events() {
						for _, a := range ev.Attributes {
							fmt.Fprintf(&hay, "event %s %s=%s\n", ev.Name, a.Key, a.Value.Emit())
						}
					}
					fmt.Fprintf(&hay, "status %s\n", s.Status().Description)
				}
				for _, s := range secrets {
					for _, form := range []string{s, url.QueryEscape(s), url.PathEscape(s)} {
						if i := strings.Index(hay.String(), form); i >= 0 {
							t.Errorf("secret shown as %q: …%s…", form, hay.String()[max(0, i-120):min(hay.Len(), i+40)])
						}
					}
				}
			})
		}
	}
}

func errorsUnwrap(err error) error {
	u, ok := err.(interface{ Unwrap() error })
	if !ok {
		return nil
	}
	return u.Unwrap()
}

// sandboxParams are the options an endpoint cannot go without (none for
// most; a histogram's from date).
func sandboxParams(v providers.Vendor) map[string]json.RawMessage {
	if v.CheckParams(v.Endpoints[0], nil) == nil {
		return nil
	}
	return map[string]json.RawMessage{"from": json.RawMessage(`"20260101"`)}
}
