package dataforseo

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"reflect"
	"sync"
	"testing"

	"github.com/linkharvest/linkharvest/providers"
)

// replay serves one fixed body and records the requests it gets.
type replay struct {
	status int
	body   []byte
	mu     sync.Mutex
	reqs   []recorded
}

type recorded struct {
	method, path, user, pass string
	authOK                   bool
	contentType              string
	body                     []byte
}

func (rp *replay) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	b, _ := io.ReadAll(r.Body)
	u, p, ok := r.BasicAuth()
	rp.mu.Lock()
	rp.reqs = append(rp.reqs, recorded{method: r.Method, path: r.URL.Path, user: u, pass: p, authOK: ok, contentType: r.Header.Get("Content-Type"), body: b})
	rp.mu.Unlock()
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	status := rp.status
	if status == 0 {
		status = http.StatusOK
	}
	w.WriteHeader(status)
	w.Write(rp.body)
}

func (rp *replay) last(t *testing.T) recorded {
	t.Helper()
	rp.mu.Lock()
	defer rp.mu.Unlock()
	if len(rp.reqs) == 0 {
		t.Fatal("the server got no request")
	}
	return rp.reqs[len(rp.reqs)-1]
}

const testPassword = "s3cret-pass"

// replayClient starts a server answering body and a client pointed at it.
func replayClient(t *testing.T, status int, body []byte) (*Client, *replay) {
	t.Helper()
	rp := &replay{status: status, body: body}
	srv := httptest.NewServer(rp)
	t.Cleanup(srv.Close)
	c, err := New(Config{Login: "user@example.com", Password: testPassword, BaseURL: srv.URL})
	if err != nil {
		t.Fatal(err)
	}
	return c, rp
}

func readTestdata(t testing.TB, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// seedTask reads the one task of a seed's example request.
func seedTask(t *testing.T, name string) map[string]json.RawMessage {
	t.Helper()
	var tasks []map[string]json.RawMessage
	if err := json.Unmarshal(readTestdata(t, name), &tasks); err != nil || len(tasks) != 1 {
		t.Fatalf("%s: %v (%d tasks)", name, err, len(tasks))
	}
	return tasks[0]
}

// postedTask decodes a recorded POST body, requiring exactly one task.
func postedTask(t *testing.T, body []byte) map[string]json.RawMessage {
	t.Helper()
	var tasks []map[string]json.RawMessage
	if err := json.Unmarshal(body, &tasks); err != nil {
		t.Fatalf("POST body is not an array of task objects: %v\n%s", err, body)
	}
	if len(tasks) != 1 {
		t.Fatalf("POST body has %d tasks, want exactly 1: %s", len(tasks), body)
	}
	return tasks[0]
}

func sameJSON(t *testing.T, what string, got, want json.RawMessage) {
	t.Helper()
	var g, w any
	if err := json.Unmarshal(got, &g); err != nil {
		t.Fatalf("%s: %v", what, err)
	}
	if err := json.Unmarshal(want, &w); err != nil {
		t.Fatalf("%s: %v", what, err)
	}
	if !reflect.DeepEqual(g, w) {
		t.Errorf("%s = %s, want %s", what, got, want)
	}
}

// rawItems returns the byte-exact items of every task result, as an
// independent reading of the fixture (encoding/json RawMessage).
func rawItems(t *testing.T, body []byte, member string) []json.RawMessage {
	t.Helper()
	var env struct {
		Tasks []struct {
			Result []json.RawMessage `json:"result"`
		} `json:"tasks"`
	}
	if err := json.Unmarshal(body, &env); err != nil {
		t.Fatal(err)
	}
	var out []json.RawMessage
	for _, r := range env.Tasks[0].Result {
		if member == "" {
			out = append(out, r)
			continue
		}
		var res map[string]json.RawMessage
		if err := json.Unmarshal(r, &res); err != nil {
			t.Fatal(err)
		}
		var items []json.RawMessage
		if err := json.Unmarshal(res[member], &items); err != nil {
			t.Fatal(err)
		}
		out = append(out, items...)
	}
	return out
}

func ptr[T any](v T) *T { return &v }

func eqPtr[T comparable](t *testing.T, what string, got, want *T) {
	t.Helper()
	switch {
	case got == nil && want == nil:
	case got == nil || want == nil:
		t.Errorf("%s = %v, want %v", what, show(got), show(want))
	case *got != *want:
		t.Errorf("%s = %v, want %v", what, *got, *want)
	}
}

func show[T any](p *T) any {
	if p == nil {
		return "nil"
	}
	return *p
}

// The vendor's documented backlinks example (testdata/), replayed through Fetch with the seed's own request
// options: every normalised field of every row, the raw rows byte for
// byte, and the request as the vendor documents it.
func TestContractBacklinksSeed002(t *testing.T) {
	t.Parallel()
	body := readTestdata(t, "backlinks_live.json")
	c, rp := replayClient(t, http.StatusOK, body)

	// The seed's request, minus what the pipeline owns (target, limit).
	seed := seedTask(t, "backlinks_request.json")
	params := map[string]json.RawMessage{}
	for k, v := range seed {
		if _, ours := reserved[k]; !ours {
			params[k] = v
		}
	}
	if err := checkParams("backlinks", params); err != nil {
		t.Fatalf("CheckParams rejects the seed's own request: %v", err)
	}
	page, err := c.Fetch(context.Background(), providers.Request{Endpoint: "backlinks", Domain: "forbes.com", Page: 1, Offset: 0, Limit: 5, Params: params})
	if err != nil {
		t.Fatal(err)
	}

	req := rp.last(t)
	if req.method != http.MethodPost || req.path != "/v3/backlinks/backlinks/live" {
		t.Errorf("request %s %s", req.method, req.path)
	}
	if !req.authOK || req.user != "user@example.com" || req.pass != testPassword {
		t.Errorf("basic auth = %q/%q (%v)", req.user, req.pass, req.authOK)
	}
	if req.contentType != "application/json" {
		t.Errorf("Content-Type %q", req.contentType)
	}
	task := postedTask(t, req.body)
	sameJSON(t, "target", task["target"], json.RawMessage(`"forbes.com"`))
	sameJSON(t, "limit", task["limit"], json.RawMessage(`5`))
	sameJSON(t, "offset", task["offset"], json.RawMessage(`0`))
	for _, k := range []string{"custom_mode", "filters", "order_by"} {
		sameJSON(t, k, task[k], seed[k])
	}
	if len(task) != 6 {
		t.Errorf("posted task has %d members, want 6: %s", len(task), req.body)
	}

	if page.Total != 993857 {
		t.Errorf("Total = %d", page.Total)
	}
	const token = "eyJDdXJyZW50T2Zmc2V0IjowLCJSYXdSZXF1ZXN0Ijp7InRhcmdldCI6ImZvcmJlcy5jb20iLCJxdWVyeSI6eyJmaWVsZCI6ImFuY2hvciIsInR5cGUiOiJsaWtlIiwidmFsdWUiOiIlZm9yYmVzJSJ9LCJvcmRlcl9ieSI6eyJvcmRlcl9maWVsZCI6ImRvbWFpbl9mcm9tIiwib3JkZXJfdHlwZSI6ImRlc2MifSwibGltaXQiOjUsImJhY2tsaW5rc19zdGF0dXNfdHlwZSI6ImxpdmUiLCJpbmNsdWRlX3N1YmRvbWFpbnMiOnRydWUsImV4dGVuZGVkX21vZGUiOnsiZmllbGQiOiJkb21haW5fZnJvbSIsImxpbWl0X3Blcl9maWVsZCI6MTAwfSwiYWlkIjoxNTM1fSwiU2VhcmNoQWZ0ZXJEYXRhIjp7IlZlcnNpb24iOjEsIlNlYXJjaEFmdGVyVmFsdWVzIjp7ImRvbWFpbl9mcm9tIjoiencuY28udmVsb2NpdHlicm9hZGJhbmQud3d3LiIsImxhc3Rfc2VlbiI6IjIwMjItMTItMTFUMDg6NDA6MjErMDA6MDAifSwiVG9rZW5SZWFsT2Zmc2V0Ijo1fX0="
	// The cursor carries the vendor's token and the paging it was asked with.
	if cur, ok := parseCursor(page.Next); !ok || cur.token != token || cur.offset != 0 || cur.limit != 5 {
		t.Errorf("Next = %q (%+v)", page.Next, cur)
	}
	if page.Cost != 0.02015 || page.CostUnit != "usd" {
		t.Errorf("Cost = %v %s", page.Cost, page.CostUnit)
	}

	// The seed's rows have their URLs and anchors blanked to "": present
	// and empty is not absent, so the pointers are set.
	want := []struct {
		nofollow bool
		title    string
	}{
		{false, "Relevant Material | Tag a Life International"},
		{false, "Relevant Material | Tag a Life International"},
		{false, "Relevant Material – Tag a Life International"},
		{true, "15th NAMA nominees out - ZIMBUZZ"},
		{false, "The Future of the Internet | Velocity Broadband"},
	}
	raws := rawItems(t, body, "items")
	if len(page.Items) != len(want) || len(raws) != len(want) {
		t.Fatalf("%d items (fixture %d), want %d", len(page.Items), len(raws), len(want))
	}
	for i, it := range page.Items {
		if it.Kind != "backlink" {
			t.Errorf("item %d: Kind %q", i, it.Kind)
		}
		eqPtr(t, "SourceURL", it.SourceURL, ptr(""))
		eqPtr(t, "TargetURL", it.TargetURL, ptr(""))
		eqPtr(t, "Anchor", it.Anchor, ptr(""))
		eqPtr(t, "Nofollow", it.Nofollow, ptr(want[i].nofollow))
		eqPtr(t, "SourceTitle", it.SourceTitle, ptr(want[i].title))
		if !bytes.Equal(it.Raw, raws[i]) {
			t.Errorf("item %d: Raw is not the vendor's item verbatim:\n%s\nwant\n%s", i, it.Raw, raws[i])
		}
	}
}

// The vendor's documented summary example (testdata/): one summary item whose Raw is the result object.
func TestContractSummarySeed003(t *testing.T) {
	t.Parallel()
	body := readTestdata(t, "summary_live.json")
	c, rp := replayClient(t, http.StatusOK, body)
	seed := seedTask(t, "summary_request.json")
	params := map[string]json.RawMessage{}
	for k, v := range seed {
		if k != "target" {
			params[k] = v
		}
	}
	if err := checkParams("summary", params); err != nil {
		t.Fatalf("CheckParams rejects the seed's own request: %v", err)
	}
	// Limit, offset and cursor mean nothing to a summary and are not sent.
	page, err := c.Fetch(context.Background(), providers.Request{Endpoint: "summary", Domain: "explodingtopics.com", Page: 1, Limit: 1000, Offset: 0, Params: params})
	if err != nil {
		t.Fatal(err)
	}
	req := rp.last(t)
	if req.path != "/v3/backlinks/summary/live" {
		t.Errorf("path %s", req.path)
	}
	task := postedTask(t, req.body)
	if len(task) != len(seed) {
		t.Errorf("posted %s, want the seed's members %v", req.body, seed)
	}
	for k, v := range seed {
		sameJSON(t, k, task[k], v)
	}

	raws := rawItems(t, body, "")
	if len(page.Items) != 1 || len(raws) != 1 {
		t.Fatalf("%d items, want 1", len(page.Items))
	}
	it := page.Items[0]
	if it.Kind != "summary" || it.SourceURL != nil || it.TargetURL != nil || it.Anchor != nil || it.Nofollow != nil || it.SourceTitle != nil {
		t.Errorf("summary item %+v: want kind summary and no backlink fields", it)
	}
	if !bytes.Equal(it.Raw, raws[0]) {
		t.Errorf("Raw is not the result object verbatim")
	}
	var res struct {
		Target    string `json:"target"`
		Backlinks int    `json:"backlinks"`
	}
	if err := json.Unmarshal(it.Raw, &res); err != nil || res.Target != "explodingtopics.com" || res.Backlinks != 41245 {
		t.Errorf("Raw reads %+v, %v", res, err)
	}
	if page.Total != 1 || page.Next != "" || page.Cost != 0.02003 || page.CostUnit != "usd" {
		t.Errorf("page Total %d Next %q Cost %v %s", page.Total, page.Next, page.Cost, page.CostUnit)
	}
}
