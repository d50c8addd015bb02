package dataforseo

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/linkharvest/linkharvest/providers"
)

func TestNew(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name    string
		cfg     Config
		wantErr string
		base    string
	}{
		{"ok", Config{Login: "l", Password: "p", BaseURL: "https://api.dataforseo.com/"}, "", "https://api.dataforseo.com"},
		{"user info dropped", Config{Login: "l", Password: "p", BaseURL: "https://x:y@sandbox.dataforseo.com/base/"}, "", "https://sandbox.dataforseo.com/base"},
		{"no login", Config{Password: "p", BaseURL: "https://a"}, "DATAFORSEO_LOGIN", ""},
		{"no password", Config{Login: "l", BaseURL: "https://a"}, "DATAFORSEO_PASSWORD", ""},
		{"no base", Config{Login: "l", Password: "p"}, "base URL", ""},
		{"relative base", Config{Login: "l", Password: "p", BaseURL: "api.dataforseo.com"}, "absolute", ""},
		{"query", Config{Login: "l", Password: "p", BaseURL: "https://a/?x=1"}, "query", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, err := New(tc.cfg)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("err = %v, want %q", err, tc.wantErr)
				}
				if strings.Contains(err.Error(), "y@") || strings.Contains(err.Error(), tc.cfg.Password.Reveal()+"@") {
					t.Errorf("error leaks credentials: %v", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if c.Base.String() != tc.base {
				t.Errorf("base = %q, want %q", c.Base, tc.base)
			}
			if c.HC == nil || c.HC.Timeout != DefaultTimeout {
				t.Errorf("default HTTP client not set")
			}
		})
	}
}

func TestConfigFromEnv(t *testing.T) {
	t.Parallel()
	env := map[string]string{"DATAFORSEO_LOGIN": "me", "DATAFORSEO_PASSWORD": "pw"}
	cfg := ConfigFromEnv(func(k string) string { return env[k] })
	if cfg.Login != "me" || cfg.Password != "pw" || cfg.BaseURL != DefaultBaseURL {
		t.Errorf("%+v", cfg)
	}
	env["DATAFORSEO_BASE_URL"] = "http://127.0.0.1:8089"
	if cfg := ConfigFromEnv(func(k string) string { return env[k] }); cfg.BaseURL != "http://127.0.0.1:8089" {
		t.Errorf("base %q", cfg.BaseURL)
	}
}

func TestEndpointsAndPaging(t *testing.T) {
	t.Parallel()
	c, _ := New(Config{Login: "l", Password: "p", BaseURL: "http://spec.invalid"})
	if got := Vendor.Endpoints; !reflect.DeepEqual(got, []string{"backlinks", "summary"}) {
		t.Errorf("Endpoints = %v", got)
	}
	for _, tc := range []struct {
		ep   string
		want providers.Paging
	}{
		{"backlinks", providers.Paging{Kind: providers.PagingOffset, PageSize: 1000, MaxOffset: 20000, CursorPastMax: true, MaxBody: maxBody}},
		{"", providers.Paging{Kind: providers.PagingOffset, PageSize: 1000, MaxOffset: 20000, CursorPastMax: true, MaxBody: maxBody}},
		{"summary", providers.Paging{Kind: providers.PagingNone, MaxBody: maxBody}},
	} {
		got, err := c.Paging(tc.ep)
		if err != nil || got != tc.want {
			t.Errorf("Paging(%q) = %+v, %v", tc.ep, got, err)
		}
	}
	if _, err := c.Paging("anchors"); err == nil {
		t.Error("Paging(anchors): want an error")
	}
}

func TestCheckParams(t *testing.T) {
	t.Parallel()
	cases := []struct {
		ep, key, value string
		wantErr        string // "" = accepted
	}{
		{"backlinks", "mode", `"as_is"`, ""},
		{"backlinks", "mode", `"one_per_domain"`, ""},
		{"backlinks", "mode", `"one_per_anchor"`, ""},
		{"backlinks", "mode", `"all"`, "one of"},
		{"backlinks", "mode", `null`, "one of"},
		{"backlinks", "custom_mode", `{"field":"domain_from","value":100}`, ""},
		{"backlinks", "custom_mode", `{"field":"anchor","value":1000}`, ""},
		{"backlinks", "custom_mode", `{"field":"domain_from","value":0}`, "1 to 1000"},
		{"backlinks", "custom_mode", `{"field":"domain_from","value":1001}`, "1 to 1000"},
		{"backlinks", "custom_mode", `{"field":"domain_from","value":"5"}`, "1 to 1000"},
		{"backlinks", "custom_mode", `{"field":"url_from","value":5}`, "field"},
		{"backlinks", "custom_mode", `{"field":"anchor"}`, "value is required"},
		{"backlinks", "custom_mode", `{"field":"anchor","value":5,"limit":3}`, "unknown member"},
		{"backlinks", "filters", `["dofollow","=",true]`, ""},
		{"backlinks", "filters", `["anchor","like","%forbes%"]`, ""},
		{"backlinks", "filters", `[["dofollow","=",true],"and",["page_from_rank",">",55]]`, ""},
		{"backlinks", "filters", `[["a","=",1],"or",[["b",">",2],"and",["c","in",[1,2]]]]`, ""},
		{"backlinks", "filters", eightFilters(8), ""},
		{"backlinks", "filters", eightFilters(9), "at most 8"},
		{"backlinks", "filters", `["dofollow","==",true]`, "operator"},
		{"backlinks", "filters", `["dofollow","="]`, "field, operator, value"},
		{"backlinks", "filters", `[["a","=",1],["b","=",2]]`, `"and" or "or"`},
		{"backlinks", "filters", `[["a","=",1],"xor",["b","=",2]]`, `"and" or "or"`},
		{"backlinks", "filters", `[]`, "empty"},
		{"backlinks", "filters", `{"dofollow":true}`, "array"},
		{"backlinks", "order_by", `["rank,desc"]`, ""},
		{"backlinks", "order_by", `["rank,desc","domain_from_rank,asc","first_seen,desc"]`, ""},
		{"backlinks", "order_by", `["rank,desc","a,asc","b,asc","c,asc"]`, "1 to 3"},
		{"backlinks", "order_by", `["rank desc"]`, `"rank,desc"`},
		{"backlinks", "order_by", `["rank,down"]`, "field,asc"},
		{"backlinks", "order_by", `"rank,desc"`, "array"},
		{"backlinks", "backlinks_status_type", `"lost"`, ""},
		{"backlinks", "backlinks_status_type", `"dead"`, "one of"},
		{"backlinks", "include_subdomains", `false`, ""},
		{"backlinks", "include_subdomains", `"false"`, "true or false"},
		{"backlinks", "include_indirect_links", `true`, ""},
		{"backlinks", "exclude_internal_backlinks", `true`, ""},
		{"backlinks", "rank_scale", `"one_hundred"`, ""},
		{"backlinks", "rank_scale", `"one_million"`, "one of"},
		{"backlinks", "tag", `"job-42"`, ""},
		{"backlinks", "tag", `"` + strings.Repeat("é", 255) + `"`, ""},
		{"backlinks", "tag", `"` + strings.Repeat("x", 256) + `"`, "255"},
		{"backlinks", "tag", `42`, "string"},
		{"backlinks", "limit", `100`, "pager"},
		{"backlinks", "offset", `0`, "pager"},
		{"backlinks", "search_after_token", `"x"`, "pager"},
		{"backlinks", "target", `"x.com"`, "domain"},
		{"backlinks", "internal_list_limit", `10`, "unknown option"},
		{"backlinks", "limti", `10`, "unknown option"},
		{"summary", "internal_list_limit", `10`, ""},
		{"summary", "internal_list_limit", `1000`, ""},
		{"summary", "internal_list_limit", `1001`, "1 to 1000"},
		{"summary", "internal_list_limit", `0`, "1 to 1000"},
		{"summary", "backlinks_filters", `["dofollow","=",true]`, ""},
		{"summary", "backlinks_filters", eightFilters(9), "at most 8"},
		{"summary", "backlinks_status_type", `"all"`, ""},
		{"summary", "include_subdomains", `true`, ""},
		{"summary", "include_indirect_links", `false`, ""},
		{"summary", "exclude_internal_backlinks", `true`, ""},
		{"summary", "rank_scale", `"one_thousand"`, ""},
		{"summary", "tag", `"t"`, ""},
		{"summary", "filters", `["dofollow","=",true]`, "unknown option"},
		{"summary", "mode", `"as_is"`, "unknown option"},
		{"summary", "limit", `10`, "pager"},
	}
	for _, tc := range cases {
		t.Run(tc.ep+"/"+tc.key+"="+trunc(tc.value), func(t *testing.T) {
			err := checkParams(tc.ep, map[string]json.RawMessage{tc.key: json.RawMessage(tc.value)})
			if tc.wantErr == "" {
				if err != nil {
					t.Fatalf("rejected: %v", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Fatalf("err = %v, want one containing %q", err, tc.wantErr)
			}
		})
	}
	if err := checkParams("anchors", nil); err == nil {
		t.Error("unknown endpoint accepted")
	}
	if err := checkParams("backlinks", nil); err != nil {
		t.Errorf("no options: %v", err)
	}
}

func trunc(s string) string {
	if len(s) > 40 {
		return s[:40]
	}
	return s
}

func eightFilters(n int) string {
	var parts []string
	for i := 0; i < n; i++ {
		parts = append(parts, fmt.Sprintf(`["page_from_rank",">",%d]`, i))
	}
	return "[" + strings.Join(parts, `,"and",`) + "]"
}

const okEmpty = `{"version":"0.1","status_code":20000,"status_message":"Ok.","cost":0.02,"tasks_count":1,"tasks_error":0,"tasks":[{"id":"x","status_code":20000,"status_message":"Ok.","cost":0.02,"result_count":1,"result":[{"target":"a.com","total_count":0,"items_count":0,"items":[],"search_after_token":"tok"}]}]}`

// The POST body: one task, the pipeline's target and paging, the job's
// options verbatim; with a cursor, search_after_token instead of offset.
func TestRequestBody(t *testing.T) {
	t.Parallel()
	params := map[string]json.RawMessage{
		"mode":                       json.RawMessage(`"one_per_domain"`),
		"filters":                    json.RawMessage(`[["dofollow", "=", true], "and", ["page_from_rank", ">", 55]]`),
		"order_by":                   json.RawMessage(`["rank,desc"]`),
		"backlinks_status_type":      json.RawMessage(`"all"`),
		"include_subdomains":         json.RawMessage(`false`),
		"include_indirect_links":     json.RawMessage(`false`),
		"exclude_internal_backlinks": json.RawMessage(`true`),
		"rank_scale":                 json.RawMessage(`"one_hundred"`),
		"tag":                        json.RawMessage(`"job \"7\""`),
	}
	for _, tc := range []struct {
		name string
		req  providers.Request
		want map[string]string // member -> JSON; "-" = must be absent
	}{
		{"first page", providers.Request{Endpoint: "backlinks", Domain: "example.com", Page: 1, Limit: 1000},
			map[string]string{"target": `"example.com"`, "limit": `1000`, "offset": `0`, "search_after_token": "-"}},
		{"default limit", providers.Request{Endpoint: "", Domain: "example.com", Page: 3, Offset: 2000},
			map[string]string{"limit": `1000`, "offset": `2000`}},
		{"last offset page", providers.Request{Endpoint: "backlinks", Domain: "example.com", Page: 21, Offset: 20000, Limit: 1000},
			map[string]string{"offset": `20000`, "search_after_token": "-"}},
		// The chain's request repeats the offset and limit of the request
		// that produced the token, whatever the page's planned position
		// and size (a shorter last page included).
		{"cursor page", providers.Request{Endpoint: "backlinks", Domain: "example.com", Page: 22, Offset: 21000, Limit: 500, Cursor: makeCursor(20000, 1000, "dG9rZW4=")},
			map[string]string{"target": `"example.com"`, "limit": `1000`, "offset": "20000", "search_after_token": `"dG9rZW4="`}},
		// A bare vendor token (a task enqueued by an older version).
		{"bare token", providers.Request{Endpoint: "backlinks", Domain: "example.com", Page: 22, Offset: 21000, Limit: 500, Cursor: "dG9rZW4="},
			map[string]string{"target": `"example.com"`, "limit": `500`, "offset": "-", "search_after_token": `"dG9rZW4="`}},
		{"idn target", providers.Request{Endpoint: "backlinks", Domain: "xn--bcher-kva.example", Limit: 10},
			map[string]string{"target": `"xn--bcher-kva.example"`, "limit": `10`}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, rp := replayClient(t, 200, []byte(okEmpty))
			tc.req.Params = params
			if _, err := c.Fetch(context.Background(), tc.req); err != nil {
				t.Fatal(err)
			}
			task := postedTask(t, rp.last(t).body)
			for k, v := range tc.want {
				if v == "-" {
					if _, ok := task[k]; ok {
						t.Errorf("%s sent, want it absent", k)
					}
					continue
				}
				sameJSON(t, k, task[k], json.RawMessage(v))
			}
			for k, v := range params {
				sameJSON(t, k, task[k], v)
			}
			n := len(params) + 1 // target
			for _, k := range []string{"limit", "offset", "search_after_token"} {
				if v, ok := tc.want[k]; (ok && v != "-") || (!ok && k != "search_after_token") {
					n++
				}
			}
			if len(task) != n {
				t.Errorf("%d members, want %d: %s", len(task), n, rp.last(t).body)
			}
		})
	}

	// A token chain as the pipeline plans it (the page at 20,000, then
	// pages by cursor at planned positions 21,000 and 22,000, the last one
	// planned shorter): every request of the chain is its predecessor
	// but for the token, as the vendor requires.
	c, rp := replayClient(t, 200, []byte(okEmpty))
	req := providers.Request{Endpoint: "backlinks", Domain: "example.com", Offset: 20000, Limit: 1000, Params: params}
	page, err := c.Fetch(context.Background(), req)
	if err != nil {
		t.Fatal(err)
	}
	prev := postedTask(t, rp.last(t).body)
	for i, next := range []providers.Request{{Offset: 21000, Limit: 1000}, {Offset: 22000, Limit: 300}} {
		req.Offset, req.Limit, req.Cursor = next.Offset, next.Limit, page.Next
		if page, err = c.Fetch(context.Background(), req); err != nil {
			t.Fatal(err)
		}
		cur := postedTask(t, rp.last(t).body)
		if len(cur) != len(prev)+1-min(i, 1) {
			t.Errorf("chain request %d has %d members after %d: %s", i+1, len(cur), len(prev), rp.last(t).body)
		}
		for k := range prev {
			if k != "search_after_token" {
				sameJSON(t, fmt.Sprintf("chain request %d %s", i+1, k), cur[k], prev[k])
			}
		}
		sameJSON(t, "token", cur["search_after_token"], json.RawMessage(`"tok"`))
		prev = cur
	}

	// Summary: target and options only.
	c, rp = replayClient(t, 200, readTestdata(t, "summary_live.json"))
	if _, err := c.Fetch(context.Background(), providers.Request{Endpoint: "summary", Domain: "a.com", Limit: 1000, Offset: 5, Cursor: "x",
		Params: map[string]json.RawMessage{"internal_list_limit": json.RawMessage(`5`)}}); err != nil {
		t.Fatal(err)
	}
	task := postedTask(t, rp.last(t).body)
	if len(task) != 2 || string(task["internal_list_limit"]) != "5" {
		t.Errorf("summary task %s", rp.last(t).body)
	}
}

// Requests the vendor would refuse fail before any call, as Fatal.
func TestRequestRejectedLocally(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		req  providers.Request
	}{
		{"limit over 1000", providers.Request{Domain: "a.com", Limit: 1001}},
		{"negative limit", providers.Request{Domain: "a.com", Limit: -1}},
		{"offset over 20000", providers.Request{Domain: "a.com", Offset: 21000}},
		{"negative offset", providers.Request{Domain: "a.com", Offset: -5}},
		{"no domain", providers.Request{Domain: " "}},
		{"unknown endpoint", providers.Request{Endpoint: "anchors", Domain: "a.com"}},
		{"unknown option", providers.Request{Domain: "a.com", Params: map[string]json.RawMessage{"limit": json.RawMessage(`5`)}}},
		{"bad option", providers.Request{Domain: "a.com", Params: map[string]json.RawMessage{"order_by": json.RawMessage(`["rank desc"]`)}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, rp := replayClient(t, 200, []byte(okEmpty))
			_, err := c.Fetch(context.Background(), tc.req)
			if e, ok := providers.AsError(err); !ok || e.Class != providers.Fatal || e.Account {
				t.Fatalf("err = %v, want Fatal", err)
			}
			if len(rp.reqs) != 0 {
				t.Errorf("a call was made")
			}
		})
	}
}

// Every status code of docs/vendors.md ("DataForSEO: errors"), at the request level and at the task
// level, plus the HTTP statuses the vendor uses and broken bodies.
func TestClassification(t *testing.T) {
	t.Parallel()
	type want struct {
		class   providers.Class
		account bool
	}
	codeCases := map[int]want{
		40202: {providers.Throttled, false}, 40209: {providers.Throttled, false},
		50000: {providers.Retryable, false}, 50301: {providers.Retryable, false}, 50303: {providers.Retryable, false},
		50304: {providers.Retryable, false}, 50401: {providers.Retryable, false},
		40100: {providers.Fatal, true}, 40104: {providers.Fatal, true}, 40200: {providers.Fatal, true}, 40201: {providers.Fatal, true},
		40203: {providers.Fatal, true}, 40204: {providers.Fatal, true}, 40210: {providers.Fatal, true},
		40000: {providers.Fatal, false}, 40006: {providers.Fatal, false},
		// A path the vendor does not know: the base URL is wrong for every call.
		40400: {providers.Fatal, true}, 40402: {providers.Fatal, true},
		40501: {providers.Fatal, false}, 40502: {providers.Fatal, false}, 40503: {providers.Fatal, false}, 40506: {providers.Fatal, false},
		// Codes outside the table, judged by range.
		40999: {providers.Fatal, false}, 50999: {providers.Retryable, false}, 10000: {providers.Retryable, false},
	}
	type tcase struct {
		name   string
		status int
		body   string
		want   want
		code   string
		msg    string
	}
	var cases []tcase
	for code, w := range codeCases {
		msg := fmt.Sprintf("vendor says %d", code)
		cases = append(cases,
			tcase{fmt.Sprintf("top %d", code), 200,
				fmt.Sprintf(`{"version":"0.1","status_code":%d,"status_message":%q,"tasks_count":0,"tasks_error":0,"tasks":null}`, code, msg), w, fmt.Sprint(code), msg},
			tcase{fmt.Sprintf("task %d", code), 200,
				fmt.Sprintf(`{"version":"0.1","status_code":20000,"status_message":"Ok.","tasks_count":1,"tasks_error":1,"tasks":[{"id":"x","status_code":%d,"status_message":%q,"cost":0,"result_count":0,"path":["v3"],"data":{},"result":null}]}`, code, msg), w, fmt.Sprint(code), msg},
			tcase{fmt.Sprintf("both %d", code), 200,
				fmt.Sprintf(`{"status_code":%d,"status_message":%q,"tasks":[{"status_code":%d,"status_message":%q,"result":null}]}`, code, msg, code, msg), w, fmt.Sprint(code), msg},
		)
	}
	env401 := `{"version":"0.1","status_code":40100,"status_message":"You are not authorized to access this resource.","tasks":null}`
	cases = append(cases,
		tcase{"http 401 envelope", 401, env401, want{providers.Fatal, true}, "40100", "You are not authorized to access this resource."},
		tcase{"http 401 bare", 401, `Unauthorized`, want{providers.Fatal, true}, "http 401", "Unauthorized"},
		tcase{"http 402 envelope", 402, `{"status_code":40200,"status_message":"Payment Required."}`, want{providers.Fatal, true}, "40200", "Payment Required."},
		tcase{"http 402 bare", 402, ``, want{providers.Fatal, true}, "http 402", "Payment Required"},
		tcase{"http 404 envelope", 404, `{"status_code":40400,"status_message":"Not Found."}`, want{providers.Fatal, true}, "40400", "Not Found."},
		tcase{"http 404 html", 404, `<html>nope</html>`, want{providers.Fatal, true}, "http 404", "Not Found"},
		tcase{"http 500 envelope", 500, `{"status_code":50000,"status_message":"Internal Server Error."}`, want{providers.Retryable, false}, "http 500 / 50000", "Internal Server Error."},
		tcase{"http 500 with a 4xxxx body", 500, `{"status_code":40501,"status_message":"odd"}`, want{providers.Retryable, false}, "http 500 / 40501", "odd"},
		tcase{"http 502 html", 502, `<html>bad gateway</html>`, want{providers.Retryable, false}, "http 502", "Bad Gateway"},
		tcase{"http 429 never sent but handled", 429, ``, want{providers.Throttled, false}, "http 429", "Too Many Requests"},
		tcase{"truncated", 200, okEmpty[:len(okEmpty)/2], want{providers.Retryable, false}, "bad body", ""},
		tcase{"malformed", 200, `{"status_code":20000,"tasks":[{"status_code":20000,"result":[{"items":[{"url_from":"x",}]}]}]}`, want{providers.Retryable, false}, "bad body", ""},
		tcase{"html 200", 200, `<html>maintenance</html>`, want{providers.Retryable, false}, "bad body", ""},
		tcase{"empty 200", 200, ``, want{providers.Retryable, false}, "bad body", ""},
		tcase{"no status", 200, `{"tasks":[]}`, want{providers.Retryable, false}, "bad body", ""},
		tcase{"ok without tasks", 200, `{"status_code":20000,"tasks":null}`, want{providers.Retryable, false}, "bad body", ""},
		tcase{"task without status", 200, `{"status_code":20000,"tasks":[{"result":null}]}`, want{providers.Retryable, false}, "bad body", ""},
		tcase{"items not an array", 200, `{"status_code":20000,"tasks":[{"status_code":20000,"result":[{"items":{"a":1}}]}]}`, want{providers.Retryable, false}, "bad body", ""},
		tcase{"result not an array", 200, `{"status_code":20000,"tasks":[{"status_code":20000,"result":{"items":[]}}]}`, want{providers.Retryable, false}, "bad body", ""},
		tcase{"error with odd result", 200, `{"status_code":20000,"tasks":[{"status_code":40501,"status_message":"Invalid Field: 'x'.","result":"odd"}]}`, want{providers.Fatal, false}, "40501", "Invalid Field: 'x'."},
		tcase{"message echoing the password", 200, `{"status_code":40100,"status_message":"bad password ` + testPassword + `"}`, want{providers.Fatal, true}, "40100", "bad password [redacted]"},
	)
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c, _ := replayClient(t, tc.status, []byte(tc.body))
			page, err := c.Fetch(context.Background(), providers.Request{Endpoint: "backlinks", Domain: "a.com", Limit: 1000})
			if err == nil {
				t.Fatalf("no error; page %+v", page)
			}
			e, ok := providers.AsError(err)
			if !ok {
				t.Fatalf("unclassified error %v", err)
			}
			if e.Class != tc.want.class || e.Account != tc.want.account {
				t.Errorf("class %v account %v, want %v %v (%v)", e.Class, e.Account, tc.want.class, tc.want.account, err)
			}
			if e.Code != tc.code {
				t.Errorf("code %q, want %q", e.Code, tc.code)
			}
			if tc.msg != "" && e.Message != tc.msg {
				t.Errorf("message %q, want %q", e.Message, tc.msg)
			}
			if e.Provider != Name {
				t.Errorf("provider %q", e.Provider)
			}
			if e.RetryAfter != 0 {
				t.Errorf("RetryAfter %v: the vendor sends none", e.RetryAfter)
			}
			// Only the daily cost limit lifts by itself, at the next 00:00 UTC.
			if e.Code == "40203" {
				now := time.Now().UTC()
				if e.Until.Hour() != 0 || e.Until.Minute() != 0 || e.Until.Location() != time.UTC ||
					!e.Until.After(now.Add(-time.Minute)) || e.Until.After(now.Add(24*time.Hour)) {
					t.Errorf("40203 lifts at %v, want the next 00:00 UTC after %v", e.Until, now)
				}
			} else if !e.Until.IsZero() {
				t.Errorf("%s lifts by itself at %v", e.Code, e.Until)
			}
			if strings.Contains(err.Error(), testPassword) {
				t.Errorf("error leaks the password: %v", err)
			}
		})
	}
}

// Transport failures are retried and never show credentials.
func TestTransportErrors(t *testing.T) {
	t.Parallel()
	// A connection the server drops before answering.
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		conn, _, err := w.(http.Hijacker).Hijack()
		if err == nil {
			conn.Close()
		}
	}))
	defer srv.Close()
	c, _ := New(Config{Login: "l", Password: testPassword, BaseURL: srv.URL})
	_, err := c.Fetch(context.Background(), providers.Request{Domain: "a.com"})
	if providers.ClassOf(err) != providers.Retryable || strings.Contains(err.Error(), testPassword) {
		t.Errorf("dropped connection: %v", err)
	}

	// Nothing listening.
	ln, _ := net.Listen("tcp", "127.0.0.1:0")
	addr := ln.Addr().String()
	ln.Close()
	c, _ = New(Config{Login: "l", Password: testPassword, BaseURL: "http://" + addr})
	_, err = c.Fetch(context.Background(), providers.Request{Domain: "a.com"})
	if providers.ClassOf(err) != providers.Retryable || strings.Contains(err.Error(), testPassword) {
		t.Errorf("refused: %v", err)
	}

	// A body over MaxBody is fatal (fetching it again pays again).
	c, _ = replayClient(t, 200, []byte(okEmpty))
	c.MaxBody = 10
	_, err = c.Fetch(context.Background(), providers.Request{Domain: "a.com"})
	if providers.ClassOf(err) != providers.Fatal {
		t.Errorf("oversized body: %v", err)
	}
}

// result null, result [], items null, items [] and items absent are pages
// without rows, not errors.
func TestEmptyResults(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name   string
		result string
		total  int
		next   string
	}{
		{"result null", `null`, 0, ""},
		{"result empty", `[]`, 0, ""},
		{"result absent", ``, 0, ""},
		{"result [null]", `[null]`, 0, ""},
		{"items null", `[{"target":"a.com","total_count":0,"items_count":0,"items":null,"search_after_token":"t1"}]`, 0, "t1"},
		{"items empty", `[{"target":"a.com","total_count":12,"items_count":0,"items":[],"search_after_token":"t2"}]`, 12, "t2"},
		{"items absent", `[{"target":"a.com","total_count":3}]`, 3, ""},
		{"total as string", `[{"total_count":"7","items":[],"search_after_token":null}]`, 7, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			res := ""
			if tc.result != "" {
				res = `,"result":` + tc.result
			}
			body := `{"version":"0.1","status_code":20000,"status_message":"Ok.","cost":0.02,"tasks_count":1,"tasks_error":0,"tasks":[{"id":"x","status_code":20000,"status_message":"Ok.","cost":0.02,"result_count":0` + res + `}]}`
			c, _ := replayClient(t, 200, []byte(body))
			page, err := c.Fetch(context.Background(), providers.Request{Domain: "a.com"})
			if err != nil {
				t.Fatal(err)
			}
			cur, _ := parseCursor(page.Next)
			if len(page.Items) != 0 || page.Total != tc.total || cur.token != tc.next || page.Cost != 0.02 || page.CostUnit != "usd" {
				t.Errorf("page %+v", page)
			}
		})
		t.Run("summary "+tc.name, func(t *testing.T) {
			if strings.Contains(tc.result, "{") { // a result object is a summary row
				return
			}
			body := `{"status_code":20000,"tasks":[{"status_code":20000,"cost":0.02,"result":` + tc.result + `null}]}`
			if tc.result != "" {
				body = `{"status_code":20000,"tasks":[{"status_code":20000,"cost":0.02,"result":` + tc.result + `}]}`
			}
			c, _ := replayClient(t, 200, []byte(body))
			page, err := c.Fetch(context.Background(), providers.Request{Endpoint: "summary", Domain: "a.com"})
			if err != nil {
				t.Fatal(err)
			}
			if len(page.Items) != 0 || page.Total != 0 {
				t.Errorf("page %+v", page)
			}
		})
	}
}

// The normalised fields of one row, for every shape a member can take.
func TestNormaliseItem(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name                          string
		item                          string
		source, target, anchor, title *string
		nofollow                      *bool
	}{
		{"all", `{"url_from":"https://a.org/x","url_to":"https://t.com/","anchor":"best tools","dofollow":true,"page_from_title":"A | B"}`,
			ptr("https://a.org/x"), ptr("https://t.com/"), ptr("best tools"), ptr("A | B"), ptr(false)},
		{"nofollow", `{"dofollow":false}`, nil, nil, nil, nil, ptr(true)},
		{"dofollow null", `{"dofollow":null,"anchor":null,"url_from":null}`, nil, nil, nil, nil, nil},
		{"dofollow missing", `{"url_to":""}`, nil, ptr(""), nil, nil, nil},
		{"dofollow a string", `{"dofollow":"true"}`, nil, nil, nil, nil, nil},
		{"escapes", `{"anchor":"say \"hi\"\n\u00e9\ud83d\ude00","page_from_title":"Caf\u00e9 – é"}`, nil, nil, ptr("say \"hi\"\né😀"), ptr("Café – é"), nil},
		{"numbers are not strings", `{"url_from":12,"anchor":true}`, nil, nil, nil, nil, nil},
		{"nested members ignored", `{"data":{"url_from":"no","dofollow":false},"list":[{"anchor":"no"}],"url_from":"yes"}`, ptr("yes"), nil, nil, nil, nil},
		{"later duplicate wins", `{"anchor":"one","anchor":"two","dofollow":true,"dofollow":false}`, nil, nil, ptr("two"), nil, ptr(true)},
		{"whitespace", "{ \"url_from\" : \"u\" ,\n\t\"dofollow\" :\ttrue }", ptr("u"), nil, nil, nil, ptr(false)},
		{"not an object", `"just a string"`, nil, nil, nil, nil, nil},
		{"null item", `null`, nil, nil, nil, nil, nil},
		{"invalid utf-8", "{\"anchor\":\"a\xffb\"}", nil, nil, ptr("a\ufffdb"), nil, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			body := `{"status_code":20000,"tasks":[{"status_code":20000,"result":[{"total_count":1,"items":[` + tc.item + `]}]}]}`
			page, err := Decode("backlinks", []byte(body))
			if err != nil {
				t.Fatal(err)
			}
			if len(page.Items) != 1 {
				t.Fatalf("%d items", len(page.Items))
			}
			it := page.Items[0]
			if it.Kind != "backlink" || string(it.Raw) != tc.item {
				t.Errorf("kind %q raw %s", it.Kind, it.Raw)
			}
			eqPtr(t, "SourceURL", it.SourceURL, tc.source)
			eqPtr(t, "TargetURL", it.TargetURL, tc.target)
			eqPtr(t, "Anchor", it.Anchor, tc.anchor)
			eqPtr(t, "SourceTitle", it.SourceTitle, tc.title)
			eqPtr(t, "Nofollow", it.Nofollow, tc.nofollow)
		})
	}
}
