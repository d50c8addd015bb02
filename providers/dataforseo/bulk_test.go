package dataforseo

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"net/http"
	"strings"
	"testing"

	"github.com/linkharvest/linkharvest/providers"
	"github.com/linkharvest/linkharvest/providers/sandbox"
)

// TestBulkBacklinksContract: the request is the documented one (one task
// holding targets, POSTed to the bulk path with Basic auth), and the
// documented answer reads as counts by target and the answer's cost.
func TestBulkBacklinksContract(t *testing.T) {
	t.Parallel()
	body := readTestdata(t, "bulk_backlinks_live.json")
	c, rp := replayClient(t, 0, body)
	want := seedTask(t, "bulk_backlinks_request.json")
	var targets []string
	if err := json.Unmarshal(want["targets"], &targets); err != nil {
		t.Fatal(err)
	}
	counts, cost, err := c.BulkBacklinks(context.Background(), targets)
	if err != nil {
		t.Fatal(err)
	}
	r := rp.last(t)
	if r.method != http.MethodPost || r.path != "/v3/backlinks/bulk_backlinks/live" || !r.authOK || r.user != "user@example.com" || r.pass != testPassword {
		t.Errorf("request %s %s auth %v %q", r.method, r.path, r.authOK, r.user)
	}
	if r.contentType != "application/json" {
		t.Errorf("Content-Type %q", r.contentType)
	}
	got := postedTask(t, r.body)
	if len(got) != 1 {
		t.Errorf("task members %v, want only targets", got)
	}
	sameJSON(t, "targets", got["targets"], want["targets"])
	wantCounts := map[string]int{"forbes.com": 98327148, "cnn.com": 249187626, "bbc.com": 168264015, "yelp.com": 69862331, "https://www.apple.com/iphone/": 0}
	if fmt.Sprint(counts) != fmt.Sprint(wantCounts) {
		t.Errorf("counts %v, want %v", counts, wantCounts)
	}
	if cost != 0.02015 {
		t.Errorf("cost %v, want the answer's 0.02015", cost)
	}
}

// TestBulkBacklinksErrors: the status codes mean what they mean on the
// other endpoints, and a list too long for one call is refused unsent.
func TestBulkBacklinksErrors(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name   string
		status int
		body   string
		class  providers.Class
		code   string
	}{
		{"throttle in the task", 200, `{"status_code":40209,"status_message":"too many","tasks":[{"status_code":40209,"result":null}]}`, providers.Throttled, "40209"},
		{"unauthorised", 401, `{"status_code":40100,"status_message":"You are not authorized","tasks":null}`, providers.Fatal, "40100"},
		{"invalid field", 200, `{"status_code":20000,"tasks":[{"status_code":40501,"status_message":"Invalid Field: 'targets'.","result":null}]}`, providers.Fatal, "40501"},
		{"not json", 200, `<html>`, providers.Retryable, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, _ := replayClient(t, tc.status, []byte(tc.body))
			_, _, err := c.BulkBacklinks(context.Background(), []string{"a.com"})
			pe, ok := providers.AsError(err)
			if !ok || pe.Class != tc.class || (tc.code != "" && pe.Code != tc.code) {
				t.Errorf("err %v (%+v), want class %v code %s", err, pe, tc.class, tc.code)
			}
			if err != nil && strings.Contains(err.Error(), testPassword) {
				t.Errorf("the password shows: %v", err)
			}
		})
	}
	c, rp := replayClient(t, 0, []byte(`{}`))
	_, _, err := c.BulkBacklinks(context.Background(), make([]string, MaxBulkTargets+1))
	if err == nil || len(rp.reqs) != 0 {
		t.Errorf("%d targets: err %v, %d requests sent; want refused unsent", MaxBulkTargets+1, err, len(rp.reqs))
	}
}

// TestSandboxBulkBacklinks: the sandbox's counts are the rows paging
// yields (a rows-N domain counts N, any other domain its total), and the
// call is charged the bulk price, as /stats reports.
func TestSandboxBulkBacklinks(t *testing.T) {
	t.Parallel()
	c, s, base := newSandbox(t, sandbox.Options{Seed: 7})
	targets := []string{"rows-2500.example", "rows-0.example", "plain-domain.example", "another.example"}
	counts, cost, err := c.BulkBacklinks(context.Background(), targets)
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range targets {
		got, ok := counts[d]
		if !ok {
			t.Errorf("%s: no count", d)
			continue
		}
		if rows := len(pageAll(t, c, d, nil)); got != rows {
			t.Errorf("%s: counted %d, paging yields %d rows", d, got, rows)
		}
	}
	if counts["rows-2500.example"] != 2500 || counts["rows-0.example"] != 0 {
		t.Errorf("counts %v", counts)
	}
	if want := 0.02 + 4*0.00003; math.Abs(cost-want) > 1e-9 {
		t.Errorf("cost %v, want %v", cost, want)
	}
	paged := 0.0
	for _, d := range targets {
		n := counts[d]
		for off := 0; off < max(n, 1); off += 1000 {
			paged += 0.02 + 0.00003*float64(min(1000, n-off))
		}
	}
	if got := s.Stats()[Name].Cost; math.Abs(got-(cost+paged)) > 1e-6 {
		t.Errorf("/stats cost %v, want the bulk call's %v plus the pages' %v", got, cost, paged)
	}

	// Refused tasks: not run, not billed.
	before := s.Stats()[Name].Cost
	long := make([]string, MaxBulkTargets+1)
	for i := range long {
		long[i] = fmt.Sprintf("d%d.example", i)
	}
	lb, _ := json.Marshal(long)
	for body, code := range map[string]int{
		`[{"targets":` + string(lb) + `}]`:  40501,
		`[{"targets":[]}]`:                  40501,
		`[{"targets":["a.com"],"limit":5}]`: 40506,
		`[{"target":"a.com"}]`:              40506,
	} {
		_, env := post(t, base+"/v3/backlinks/bulk_backlinks/live", "user", body)
		if len(env.Tasks) != 1 || env.Tasks[0].StatusCode != code {
			t.Errorf("%.60s: %+v, want task status %d", body, env, code)
		}
	}
	if got := s.Stats()[Name].Cost; got != before {
		t.Errorf("refused tasks were billed: %v -> %v", before, got)
	}
	// Bad credentials get the vendor's auth error here as everywhere.
	bad, _ := New(Config{Login: sandbox.BadCredential, Password: "x", BaseURL: base})
	if _, _, err := bad.BulkBacklinks(context.Background(), []string{"a.com"}); providers.ClassOf(err) != providers.Fatal {
		t.Errorf("bad credentials: %v", err)
	}
}
