package dataforseo

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/linkharvest/linkharvest/providers"
	"github.com/linkharvest/linkharvest/providers/sandbox"
)

// newSandbox serves the sandbox on loopback and returns a client for it.
func newSandbox(t testing.TB, opts sandbox.Options) (*Client, *sandbox.Server, string) {
	t.Helper()
	s := sandbox.New(opts)
	Mount(s)
	srv := httptest.NewServer(s)
	t.Cleanup(srv.Close)
	c, err := New(Config{Login: "sandbox", Password: "sandbox", BaseURL: srv.URL})
	if err != nil {
		t.Fatal(err)
	}
	return c, s, srv.URL
}

// pageAll reads every row of a domain as the docs prescribe and the
// pipeline plans it: limit 1000 by offset up to 20,000 (the first page
// tells the total), then search_after_token from the page at 20,000 on.
// It returns the source URLs in order.
func pageAll(t *testing.T, c *Client, domain string, params map[string]json.RawMessage) []string {
	t.Helper()
	items := pageItems(t, c, domain, params)
	rows := make([]string, len(items))
	for i, it := range items {
		rows[i] = *it.SourceURL
	}
	return rows
}

// pageItems is pageAll's paging; it returns the rows.
func pageItems(t *testing.T, c *Client, domain string, params map[string]json.RawMessage) []providers.Item {
	t.Helper()
	ctx := context.Background()
	pg, _ := c.Paging("backlinks")
	fetch := func(off int, cursor string) *providers.Page {
		t.Helper()
		p, err := c.Fetch(ctx, providers.Request{Endpoint: "backlinks", Domain: domain, Offset: off, Limit: pg.PageSize, Cursor: cursor, Params: params})
		if err != nil {
			t.Fatalf("%s at %d: %v", domain, off, err)
		}
		return p
	}
	var rows []providers.Item
	add := func(p *providers.Page) {
		for _, it := range p.Items {
			if it.SourceURL == nil {
				t.Fatalf("row without url_from: %s", it.Raw)
			}
			rows = append(rows, it)
		}
	}
	first := fetch(0, "")
	add(first)
	total := first.Total
	last := first
	for off := pg.PageSize; off < total && off <= pg.MaxOffset; off += pg.PageSize {
		last = fetch(off, "")
		if last.Total != total {
			t.Fatalf("total changed from %d to %d", total, last.Total)
		}
		add(last)
	}
	for off := pg.MaxOffset + pg.PageSize; off < total; off += pg.PageSize {
		if last.Next == "" {
			t.Fatalf("no search_after_token at %d of %d", off, total)
		}
		last = fetch(off, last.Next)
		if len(last.Items) == 0 {
			t.Fatalf("empty cursor page at %d of %d", off, total)
		}
		add(last)
	}
	if len(rows) != total {
		t.Fatalf("%s: %d rows, total_count %d", domain, len(rows), total)
	}
	return rows
}

func TestSandboxPaging(t *testing.T) {
	t.Parallel()
	c, s, _ := newSandbox(t, sandbox.Options{Seed: 7})
	for _, tc := range []struct {
		domain string
		want   int // -1: sandbox.Total decides
	}{
		{"rows-0.example", 0},
		{"rows-1.example", 1},
		{"rows-1000.example", 1000},
		{"rows-1001.example", 1001},
		{"rows-25000.example", 25000},
		{"example.com", -1},
	} {
		t.Run(tc.domain, func(t *testing.T) {
			want := tc.want
			if want < 0 {
				want = sandbox.Total(7, Name, "backlinks", tc.domain)
			}
			rows := pageAll(t, c, tc.domain, nil)
			if len(rows) != want {
				t.Fatalf("%d rows, want %d", len(rows), want)
			}
			seen := make(map[string]bool, len(rows))
			for _, r := range rows {
				if seen[r] {
					t.Fatalf("row %s served twice", r)
				}
				seen[r] = true
			}
			again := pageAll(t, c, tc.domain, nil)
			for i := range rows {
				if rows[i] != again[i] {
					t.Fatalf("second pass differs at row %d: %s vs %s", i, rows[i], again[i])
				}
			}
		})
	}
	if st := s.Stats()[Name]; st.Throttled != 0 || st.InjectedFailures != 0 || st.Calls == 0 {
		t.Errorf("stats %+v", st)
	}

	// Another seed, other rows.
	c2, _, _ := newSandbox(t, sandbox.Options{Seed: 8})
	a, b := pageAll(t, c, "rows-5.example", nil), pageAll(t, c2, "rows-5.example", nil)
	if a[0] == b[0] && a[1] == b[1] {
		t.Errorf("seeds 7 and 8 give the same rows")
	}
}

// Options pass through and the token works with them; a token chain from
// the first page visits the same rows as offsets.
func TestSandboxTokenChain(t *testing.T) {
	t.Parallel()
	c, _, _ := newSandbox(t, sandbox.Options{Seed: 3})
	params := map[string]json.RawMessage{
		"mode":     json.RawMessage(`"one_per_domain"`),
		"filters":  json.RawMessage(`[["dofollow","=",true],"and",["page_from_rank",">",5]]`),
		"order_by": json.RawMessage(`["rank,desc"]`),
		"tag":      json.RawMessage(`"chain"`),
	}
	byOffset := pageAll(t, c, "rows-3500.example", params)
	var byToken []string
	cursor := ""
	for len(byToken) < 3500 {
		p, err := c.Fetch(context.Background(), providers.Request{Domain: "rows-3500.example", Limit: 700, Cursor: cursor, Params: params})
		if err != nil {
			t.Fatal(err)
		}
		if len(p.Items) == 0 {
			t.Fatalf("empty page after %d rows", len(byToken))
		}
		for _, it := range p.Items {
			byToken = append(byToken, *it.SourceURL)
		}
		cursor = p.Next
	}
	if strings.Join(byOffset, "\n") != strings.Join(byToken, "\n") {
		t.Error("token paging and offset paging give different rows")
	}
	// Past the end: a token page with no rows, not an error.
	p, err := c.Fetch(context.Background(), providers.Request{Domain: "rows-3500.example", Limit: 700, Cursor: cursor, Params: params})
	if err != nil || len(p.Items) != 0 || p.Total != 3500 {
		t.Errorf("page past the end: %+v %v", p, err)
	}
}

// A token request is refused (40501) when any member but the token
// differs from the request that produced the token, limit and offset
// included; the vendor: "all other parameters should be identical to the
// previous request". Raw requests, so that the client's own care cannot
// hide a lax sandbox.
func TestSandboxTokenMismatch(t *testing.T) {
	t.Parallel()
	_, _, base := newSandbox(t, sandbox.Options{Seed: 3})
	bl := base + "/v3/backlinks/backlinks/live"
	const first = `{"target":"rows-5000.example","limit":1000,"offset":0,"mode":"as_is"}`
	status, env := post(t, bl, "sandbox", "["+first+"]")
	if status != 200 || env.StatusCode != 20000 || len(env.Tasks) != 1 || env.Tasks[0].StatusCode != 20000 {
		t.Fatalf("first page: %d %+v", status, env)
	}
	var res []struct {
		Token string `json:"search_after_token"`
	}
	if err := json.Unmarshal(env.Tasks[0].Result[0], &res); err != nil {
		// Result is one object, not a list.
		var one struct {
			Token string `json:"search_after_token"`
		}
		if err := json.Unmarshal(env.Tasks[0].Result[0], &one); err != nil || one.Token == "" {
			t.Fatalf("no token in %s", env.Tasks[0].Result[0])
		}
		res = append(res, one)
	}
	tok := res[0].Token
	with := func(members string) string {
		return `[{"target":"rows-5000.example",` + members + `,"search_after_token":"` + tok + `"}]`
	}
	for _, tc := range []struct {
		name, body string
		wantOK     bool
	}{
		{"identical", with(`"limit":1000,"offset":0,"mode":"as_is"`), true},
		{"members in another order", `[{"search_after_token":"` + tok + `","mode":"as_is","offset":0,"limit":1000,"target":"rows-5000.example"}]`, true},
		{"other limit", with(`"limit":500,"offset":0,"mode":"as_is"`), false},
		{"other offset", with(`"limit":1000,"offset":1000,"mode":"as_is"`), false},
		{"offset dropped", with(`"limit":1000,"mode":"as_is"`), false},
		{"other option", with(`"limit":1000,"offset":0,"mode":"one_per_anchor"`), false},
		{"option dropped", with(`"limit":1000,"offset":0`), false},
		{"other target", strings.Replace(with(`"limit":1000,"offset":0,"mode":"as_is"`), "rows-5000", "rows-5001", 1), false},
		{"garbage", `[{"target":"rows-5000.example","limit":1000,"offset":0,"mode":"as_is","search_after_token":"not a token"}]`, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			status, env := post(t, bl, "sandbox", tc.body)
			if status != 200 || env.StatusCode != 20000 || len(env.Tasks) != 1 {
				t.Fatalf("%d %+v", status, env)
			}
			task := env.Tasks[0]
			if !tc.wantOK {
				if task.StatusCode != 40501 || !strings.Contains(task.StatusMessage, "search_after_token") {
					t.Errorf("task %d %q, want 40501 on search_after_token", task.StatusCode, task.StatusMessage)
				}
				return
			}
			if task.StatusCode != 20000 {
				t.Fatalf("task %d %q", task.StatusCode, task.StatusMessage)
			}
			var r struct {
				Items []struct {
					URL string `json:"url_from"`
				} `json:"items"`
			}
			if err := json.Unmarshal(task.Result[0], &r); err != nil || len(r.Items) != 1000 || !strings.HasSuffix(r.Items[0].URL, "-1000") {
				t.Errorf("token page: %d rows, first %v (%v)", len(r.Items), r.Items[:min(1, len(r.Items))], err)
			}
		})
	}
}

func TestSandboxAuth(t *testing.T) {
	t.Parallel()
	_, _, base := newSandbox(t, sandbox.Options{})
	for _, tc := range []struct{ name, login, password string }{
		{"bad login", "bad", "x"},
		{"bad password", "x", "bad"},
		{"empty password", "x", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, err := New(Config{Login: tc.login, Password: providers.Secret(tc.password), BaseURL: base})
			if err != nil {
				if tc.password == "" {
					return // New refuses it before any call
				}
				t.Fatal(err)
			}
			_, err = c.Fetch(context.Background(), providers.Request{Domain: "a.com"})
			e, ok := providers.AsError(err)
			if !ok || e.Class != providers.Fatal || !e.Account || e.Code != "40100" {
				t.Errorf("err = %v, want fatal account 40100", err)
			}
		})
	}
	// No Authorization header at all: HTTP 401 with 40100.
	status, env := post(t, base+"/v3/backlinks/backlinks/live", "", `[{"target":"a.com"}]`)
	if status != 401 || env.StatusCode != 40100 {
		t.Errorf("no auth: %d %+v", status, env)
	}
}

// The sandbox's accounts and paths that fail as a real account would:
// each answers the vendor's code, which the client classifies as a
// failure of the account (the provider is paused); 40203 lifts by itself.
func TestSandboxAccountFailures(t *testing.T) {
	t.Parallel()
	_, s, base := newSandbox(t, sandbox.Options{Seed: 1})
	for _, tc := range []struct {
		name, login, base, code string
		until                   bool
	}{
		{"no funds", sandbox.NoFunds, base, "40200", false},
		{"insufficient funds", "insufficient", base, "40210", false},
		{"daily cost limit", "costlimit", base, "40203", true},
		{"base URL ending in /v3", "sandbox", base + "/v3", "40400", false},
		{"base URL below backlinks", "sandbox", base + "/v3/backlinks", "40402", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, err := New(Config{Login: tc.login, Password: "pw", BaseURL: tc.base})
			if err != nil {
				t.Fatal(err)
			}
			_, err = c.Fetch(context.Background(), providers.Request{Domain: "rows-10.example"})
			e, ok := providers.AsError(err)
			if !ok || e.Class != providers.Fatal || !e.Account || e.Code != tc.code || e.Until.IsZero() == tc.until {
				t.Errorf("err = %v (until %v), want fatal account %s", err, e.Until, tc.code)
			}
		})
	}
	if st := s.Stats()[Name]; st.Calls != 5 {
		t.Errorf("%d calls, want 5", st.Calls)
	}
	// The vendor sends out of funds as HTTP 402.
	status, env := post(t, base+"/v3/backlinks/backlinks/live", sandbox.NoFunds, `[{"target":"a.com"}]`)
	if status != http.StatusPaymentRequired || env.StatusCode != 40200 {
		t.Errorf("nofunds: %d %+v", status, env)
	}
}

// X-RateLimit-Limit states the sandbox's rate as calls a minute, on every
// answer, errors and throttles included; Remaining counts down.
func TestSandboxRateLimitHeaders(t *testing.T) {
	t.Parallel()
	_, _, base := newSandbox(t, sandbox.Options{Seed: 1, Rate: 3, Period: 10 * time.Second})
	var got [][2]string
	for _, login := range []string{"sandbox", "sandbox", sandbox.BadCredential, "sandbox", "sandbox"} {
		req, _ := http.NewRequest(http.MethodPost, base+"/v3/backlinks/backlinks/live", strings.NewReader(`[{"target":"a.com","limit":1}]`))
		req.SetBasicAuth(login, "pw")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		got = append(got, [2]string{resp.Header.Get("X-RateLimit-Limit"), resp.Header.Get("X-RateLimit-Remaining")})
	}
	want := [][2]string{{"18", "2"}, {"18", "1"}, {"18", "0"}, {"18", "0"}, {"18", "0"}}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("headers %v, want %v", got, want)
	}
	// Unlimited: no ceiling to state.
	_, _, free := newSandbox(t, sandbox.Options{})
	resp, err := http.Post(free+"/v3/backlinks/backlinks/live", "application/json", strings.NewReader(`[]`))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if v := resp.Header.Get("X-RateLimit-Limit"); v != "" {
		t.Errorf("unlimited sandbox sends X-RateLimit-Limit %q", v)
	}
}

func TestSandboxRateLimit(t *testing.T) {
	t.Parallel()
	c, s, _ := newSandbox(t, sandbox.Options{Rate: 2, Period: time.Minute})
	var errs []error
	for i := 0; i < 4; i++ {
		_, err := c.Fetch(context.Background(), providers.Request{Domain: "rows-10.example"})
		errs = append(errs, err)
	}
	if errs[0] != nil || errs[1] != nil {
		t.Fatalf("within the limit: %v %v", errs[0], errs[1])
	}
	for _, err := range errs[2:] {
		e, ok := providers.AsError(err)
		if !ok || e.Class != providers.Throttled || e.Code != "40202" || e.RetryAfter != 0 || !strings.Contains(e.Message, "rate limit per minute exceeded") {
			t.Errorf("past the limit: %v, want throttled 40202", err)
		}
	}
	if st := s.Stats()[Name]; st.Throttled != 2 || st.Calls != 4 || st.InjectedFailures != 0 {
		t.Errorf("stats %+v", st)
	}
}

func TestSandboxConcurrencyLimit(t *testing.T) {
	t.Parallel()
	c, s, _ := newSandbox(t, sandbox.Options{Concurrency: 2, Latency: 200 * time.Millisecond})
	const n = 6
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, errs[i] = c.Fetch(context.Background(), providers.Request{Domain: "rows-10.example"})
		}()
	}
	wg.Wait()
	ok, throttled := 0, 0
	for _, err := range errs {
		if err == nil {
			ok++
			continue
		}
		e, isPE := providers.AsError(err)
		if !isPE || e.Class != providers.Throttled || e.Code != "40209" || !strings.Contains(e.Message, "too many simultaneous requests") {
			t.Errorf("err = %v, want throttled 40209", err)
			continue
		}
		throttled++
	}
	if ok < 1 || throttled < 1 || ok > 2 {
		t.Errorf("%d ok, %d throttled (limit 2 of %d at once)", ok, throttled, n)
	}
	if st := s.Stats()[Name]; st.Throttled != int64(throttled) {
		t.Errorf("stats %+v, %d throttled", st, throttled)
	}
}

// --fail: every injected failure is transient (40202 throttled, the rest
// retryable), counted as injected and not as a throttle.
func TestSandboxInjectedFailures(t *testing.T) {
	t.Parallel()
	c, s, _ := newSandbox(t, sandbox.Options{Fail: 1, Seed: 11})
	codes := map[string]int{}
	const n = 240
	for range n {
		_, err := c.Fetch(context.Background(), providers.Request{Domain: "rows-50.example", Limit: 50})
		e, ok := providers.AsError(err)
		if !ok {
			t.Fatalf("err = %v", err)
		}
		want := providers.Retryable
		if e.Code == "40202" {
			want = providers.Throttled
		}
		if e.Class != want || e.Account {
			t.Errorf("%v: class %v, want %v", err, e.Class, want)
		}
		codes[e.Code]++
	}
	for _, code := range []string{"40202", "50000", "50301", "http 500 / 50000", "50401", "bad body", "transport"} {
		if codes[code] == 0 {
			t.Errorf("no %q among injected failures %v", code, codes)
		}
	}
	// Truncated and malformed bodies both read as "bad body": 2 of 8 kinds.
	if codes["bad body"] < n/8 {
		t.Errorf("bad bodies %d of %d: want both truncated and malformed (%v)", codes["bad body"], n, codes)
	}
	if st := s.Stats()[Name]; st.InjectedFailures != n || st.Throttled != 0 {
		t.Errorf("stats %+v", st)
	}
}

type sbEnvelope struct {
	Version       string  `json:"version"`
	StatusCode    int     `json:"status_code"`
	StatusMessage string  `json:"status_message"`
	Time          string  `json:"time"`
	Cost          float64 `json:"cost"`
	TasksCount    int     `json:"tasks_count"`
	TasksError    int     `json:"tasks_error"`
	Tasks         []struct {
		ID            string            `json:"id"`
		StatusCode    int               `json:"status_code"`
		StatusMessage string            `json:"status_message"`
		Time          string            `json:"time"`
		Cost          float64           `json:"cost"`
		ResultCount   int               `json:"result_count"`
		Path          []string          `json:"path"`
		Data          map[string]any    `json:"data"`
		Result        []json.RawMessage `json:"result"`
	} `json:"tasks"`
}

func post(t *testing.T, url, auth, body string) (int, sbEnvelope) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPost, url, strings.NewReader(body))
	if auth != "" {
		req.SetBasicAuth(auth, auth)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	var env sbEnvelope
	if err := json.Unmarshal(b, &env); err != nil {
		t.Fatalf("%s: %v", b, err)
	}
	return resp.StatusCode, env
}

// The sandbox's answers to requests, at the HTTP level.
func TestSandboxRequests(t *testing.T) {
	t.Parallel()
	_, _, base := newSandbox(t, sandbox.Options{Seed: 1})
	bl, sum := base+"/v3/backlinks/backlinks/live", base+"/v3/backlinks/summary/live"
	tasks := func(n int) string {
		var parts []string
		for i := range n {
			parts = append(parts, fmt.Sprintf(`{"target":"rows-5.example","tag":"t%d"}`, i))
		}
		return "[" + strings.Join(parts, ",") + "]"
	}
	for _, tc := range []struct {
		name, url, body string
		top             int
		task            []int // status of each task
	}{
		{"empty body", bl, ``, 40502, nil},
		{"empty array", bl, `[]`, 40502, nil},
		{"object", bl, `{"target":"a.com"}`, 40503, nil},
		{"broken", bl, `[{"target":`, 40503, nil},
		{"101 tasks", bl, tasks(101), 40006, nil},
		{"100 tasks", bl, tasks(100), 20000, append([]int{20000}, repeat(40000, 99)...)},
		{"two tasks", bl, tasks(2), 20000, []int{20000, 40000}},
		{"limit 1000", bl, `[{"target":"a.com","limit":1000}]`, 20000, []int{20000}},
		{"limit 1001", bl, `[{"target":"a.com","limit":1001}]`, 20000, []int{40501}},
		{"limit 0", bl, `[{"target":"a.com","limit":0}]`, 20000, []int{40501}},
		{"offset 20000", bl, `[{"target":"a.com","offset":20000}]`, 20000, []int{20000}},
		{"offset 20001", bl, `[{"target":"a.com","offset":20001}]`, 20000, []int{40501}},
		{"unknown field", bl, `[{"target":"a.com","limti":10}]`, 20000, []int{40506}},
		{"no target", bl, `[{"limit":10}]`, 20000, []int{40501}},
		{"bad order_by", bl, `[{"target":"a.com","order_by":["rank desc"]}]`, 20000, []int{40501}},
		{"nine filters", bl, `[{"target":"a.com","filters":` + eightFilters(9) + `}]`, 20000, []int{40501}},
		{"task not an object", bl, `[42]`, 20000, []int{40503}},
		{"summary", sum, `[{"target":"a.com","internal_list_limit":3,"backlinks_filters":["dofollow","=",true]}]`, 20000, []int{20000}},
		{"summary limit is unknown", sum, `[{"target":"a.com","limit":3}]`, 20000, []int{40506}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			status, env := post(t, tc.url, "user", tc.body)
			if status != 200 || env.StatusCode != tc.top {
				t.Fatalf("HTTP %d status %d (%s), want 200 %d", status, env.StatusCode, env.StatusMessage, tc.top)
			}
			if env.Version == "" || !strings.HasSuffix(env.Time, " sec.") {
				t.Errorf("envelope %+v", env)
			}
			if len(env.Tasks) != len(tc.task) || env.TasksCount != len(tc.task) {
				t.Fatalf("%d tasks (tasks_count %d), want %d", len(env.Tasks), env.TasksCount, len(tc.task))
			}
			nerr := 0
			for i, tk := range env.Tasks {
				if tk.StatusCode != tc.task[i] {
					t.Errorf("task %d: %d %s, want %d", i, tk.StatusCode, tk.StatusMessage, tc.task[i])
				}
				if tk.StatusCode != 20000 {
					nerr++
					if tk.Result != nil || tk.Cost != 0 {
						t.Errorf("failed task %d has result %s cost %v", i, tk.Result, tk.Cost)
					}
				} else if len(tk.Result) != 1 || tk.ResultCount != 1 || tk.Cost <= 0 {
					t.Errorf("task %d: %d results (result_count %d) cost %v", i, len(tk.Result), tk.ResultCount, tk.Cost)
				}
				if tk.ID == "" || len(tk.Path) != 4 || tk.Path[0] != "v3" {
					t.Errorf("task %d: id %q path %v", i, tk.ID, tk.Path)
				}
				if tk.Data != nil && (tk.Data["api"] != "backlinks" || tk.Data["function"] != tk.Path[2]) {
					t.Errorf("task %d: data %v", i, tk.Data)
				}
			}
			if env.TasksError != nerr {
				t.Errorf("tasks_error %d, want %d", env.TasksError, nerr)
			}
		})
	}

	// data echoes the posted task, and cost follows the rows returned.
	_, env := post(t, bl, "user", `[{"target":"rows-30.example","limit":20,"offset":5,"tag":"echo me","mode":"one_per_anchor"}]`)
	d := env.Tasks[0].Data
	if d["target"] != "rows-30.example" || d["tag"] != "echo me" || d["limit"] != float64(20) || d["offset"] != float64(5) || d["mode"] != "one_per_anchor" {
		t.Errorf("data %v", d)
	}
	if env.Cost != 0.0206 || env.Tasks[0].Cost != 0.0206 {
		t.Errorf("cost %v / %v, want 0.02 + 20 × 0.00003", env.Cost, env.Tasks[0].Cost)
	}
	var res struct {
		Target     string            `json:"target"`
		Mode       string            `json:"mode"`
		TotalCount int               `json:"total_count"`
		ItemsCount int               `json:"items_count"`
		Items      []json.RawMessage `json:"items"`
		Token      string            `json:"search_after_token"`
	}
	if err := json.Unmarshal(env.Tasks[0].Result[0], &res); err != nil {
		t.Fatal(err)
	}
	if res.Target != "rows-30.example" || res.Mode != "one_per_anchor" || res.TotalCount != 30 || res.ItemsCount != 20 || len(res.Items) != 20 || res.Token == "" {
		t.Errorf("result %+v", res)
	}
	// Offset past the end: no rows, still a token.
	_, env = post(t, bl, "user", `[{"target":"rows-30.example","offset":40}]`)
	if err := json.Unmarshal(env.Tasks[0].Result[0], &res); err != nil || res.ItemsCount != 0 || res.Items != nil || res.Token == "" {
		t.Errorf("past the end: %+v %v", res, err)
	}

	// Other methods and paths.
	resp, err := http.Get(bl)
	if err == nil {
		resp.Body.Close()
		if resp.StatusCode != http.StatusMethodNotAllowed {
			t.Errorf("GET: %d", resp.StatusCode)
		}
	}
}

func repeat(v, n int) []int {
	out := make([]int, n)
	for i := range out {
		out[i] = v
	}
	return out
}

// Sandbox rows have every member of the seed's example item, in its order.
func TestSandboxRowShape(t *testing.T) {
	t.Parallel()
	keys := func(raw []byte) []string {
		var out []string
		dec := json.NewDecoder(bytes.NewReader(raw))
		dec.Token() // {
		for dec.More() {
			k, _ := dec.Token()
			out = append(out, k.(string))
			var skip json.RawMessage
			dec.Decode(&skip)
		}
		return out
	}
	want := keys(rawItems(t, readTestdata(t, "backlinks_live.json"), "items")[0])
	c, _, _ := newSandbox(t, sandbox.Options{Seed: 5})
	p, err := c.Fetch(context.Background(), providers.Request{Domain: "rows-300.example", Limit: 300})
	if err != nil {
		t.Fatal(err)
	}
	nofollow := 0
	for _, it := range p.Items {
		if got := keys(it.Raw); strings.Join(got, ",") != strings.Join(want, ",") {
			t.Fatalf("row members\n%v\nwant the seed's\n%v", got, want)
		}
		if it.TargetURL == nil || !strings.HasPrefix(*it.TargetURL, "https://rows-300.example/") {
			t.Errorf("url_to %v not on the target", show(it.TargetURL))
		}
		if it.Anchor == nil || it.SourceTitle == nil || it.Nofollow == nil {
			t.Errorf("row %s: missing normalised fields", it.Raw)
		}
		if *it.Nofollow {
			nofollow++
		}
	}
	if nofollow == 0 || nofollow == len(p.Items) {
		t.Errorf("%d of %d rows nofollow: want a mix", nofollow, len(p.Items))
	}

	// A page URL as target: url_to is that page.
	p, err = c.Fetch(context.Background(), providers.Request{Domain: "https://rows-3.example/pricing", Limit: 3})
	if err != nil || len(p.Items) != 3 || *p.Items[0].TargetURL != "https://rows-3.example/pricing" {
		t.Errorf("page target: %v %v", p, err)
	}
}

func TestSandboxSummary(t *testing.T) {
	t.Parallel()
	c, _, _ := newSandbox(t, sandbox.Options{Seed: 9})
	for _, domain := range []string{"rows-25000.example", "rows-0.example", "example.com"} {
		var prev []byte
		for pass := 0; pass < 2; pass++ {
			p, err := c.Fetch(context.Background(), providers.Request{Endpoint: "summary", Domain: domain,
				Params: map[string]json.RawMessage{"internal_list_limit": json.RawMessage(`3`)}})
			if err != nil {
				t.Fatal(err)
			}
			if len(p.Items) != 1 || p.Items[0].Kind != "summary" || p.Total != 1 || p.Next != "" || p.Cost <= 0 {
				t.Fatalf("page %+v", p)
			}
			var s struct {
				Target           string         `json:"target"`
				Backlinks        int            `json:"backlinks"`
				ReferringDomains int            `json:"referring_domains"`
				TLD              map[string]int `json:"referring_links_tld"`
			}
			if err := json.Unmarshal(p.Items[0].Raw, &s); err != nil {
				t.Fatal(err)
			}
			want := sandbox.Total(9, Name, "backlinks", domain)
			if s.Target != domain || s.Backlinks != want || s.ReferringDomains > s.Backlinks || len(s.TLD) != 3 {
				t.Errorf("%s: %+v, want backlinks %d", domain, s, want)
			}
			if prev != nil && !bytes.Equal(prev, p.Items[0].Raw) {
				t.Errorf("%s: summary differs between calls", domain)
			}
			prev = p.Items[0].Raw
		}
	}
}

// Generating a 1000-row page must stay cheap: benchmarks run the sandbox
// unlimited.
func BenchmarkSandboxPage1000(b *testing.B) {
	s := sandbox.New(sandbox.Options{Seed: 1})
	Mount(s)
	body := []byte(`[{"target":"rows-50000.example","limit":1000,"offset":3000}]`)
	b.ReportAllocs()
	var n int
	for b.Loop() {
		r := httptest.NewRequest(http.MethodPost, "/v3/backlinks/backlinks/live", bytes.NewReader(body))
		r.SetBasicAuth("a", "b")
		w := httptest.NewRecorder()
		s.ServeHTTP(w, r)
		n = w.Body.Len()
	}
	b.SetBytes(int64(n))
}

// The sandbox bills the documented price (0.02 a request, 0.00003 a row),
// states it in the answer's cost, and /stats adds up exactly what the
// answers stated; a refused task costs nothing.
func TestSandboxCost(t *testing.T) {
	t.Parallel()
	_, s, base := newSandbox(t, sandbox.Options{Seed: 1})
	bl := base + "/v3/backlinks/backlinks/live"
	var sum float64
	for _, tc := range []struct {
		body string
		want float64
	}{
		{`[{"target":"rows-2500.example","limit":1000}]`, 0.05},
		{`[{"target":"rows-2500.example","limit":1000,"offset":2000}]`, 0.035},
		{`[{"target":"rows-0.example"}]`, 0.02},
		{`[{"target":"a.com","limit":0}]`, 0}, // 40501: not run, not billed
	} {
		_, env := post(t, bl, "user", tc.body)
		if math.Abs(env.Cost-tc.want) > 1e-9 {
			t.Errorf("%s: cost %v, want %v", tc.body, env.Cost, tc.want)
		}
		sum += env.Cost
	}
	if got := s.Stats()[Name].Cost; math.Abs(got-sum) > 1e-9 || math.Abs(got-0.105) > 1e-9 {
		t.Errorf("/stats cost %v, want the answers' %v (0.105)", got, sum)
	}
}
