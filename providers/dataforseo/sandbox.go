package dataforseo

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"net/http"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/linkharvest/linkharvest/internal/jsonstr"
	"github.com/linkharvest/linkharvest/providers/sandbox"
)

// Mount serves backlinks/live and summary/live on their documented paths
// (POST only), answering as the vendor does: HTTP Basic auth (401/40100
// for a missing credential or the literal `bad`), a JSON array of tasks of
// which only the first runs, errors as status codes inside HTTP 200 at the
// request or task level, 40202/40209 past the sandbox's rate and
// concurrency limits, and the vendor's transient faults under --fail.
//
// Data: row i of a target comes from sandbox.Rand(seed, "dataforseo",
// "backlinks", target, i); the live rows are the N rows from the world's
// first live row on (sandbox.History; row i at position i while the world
// does not change), N = sandbox.Total(seed, "dataforseo", "backlinks",
// target), which a summary reports as its backlinks.
// backlinks_status_type lists live rows, lost rows or both, and filters
// on first_seen, prev_seen, last_seen, is_lost and is_new are applied
// (world_sandbox.go); mode, custom_mode, order_by and filters on other
// fields are checked as the client checks them but not applied: rows
// always come in index order, so paging with any options visits every
// listed row once.
//
// search_after_token is base64 of {"v":1,"h":hash,"p":position}: the hash
// covers every task member but the token itself (limit and offset too, as
// sent: a member left out differs from one sent with its default), the
// position is the row after the last one returned. A token request starts
// at its position whatever its offset says, and is refused (40501) if any
// other member differs from the request that produced the token: the
// vendor's rule is that "all other parameters should be identical to the
// previous request".
//
// Accounts, by login: `nofunds` gets HTTP 402 with 40200 (payment
// required), `insufficient` the task error 40210 (insufficient funds),
// `costlimit` the task error 40203 (the owner's daily cost limit). Any
// other path under /v3/ is answered HTTP 404 with 40400 (not found), or
// 40402 (invalid path) below /v3/backlinks/, as a wrong base URL or path
// would be. Every answer of the live endpoints carries X-RateLimit-Limit
// (the sandbox's rate as calls a minute, when it has one) and
// X-RateLimit-Remaining.
func Mount(s *sandbox.Server) {
	m := s.Meter(Name)
	for _, e := range endpoints {
		s.Handle("POST "+e.path, &sbHandler{m: m, e: e})
	}
	mountBulk(s, m) // bulk_sandbox.go
	s.Handle("/v3/", sbNotFound{m})
}

// Sandbox logins with their own answers (see Mount).
const (
	sbInsufficient = "insufficient"
	sbCostLimit    = "costlimit"
)

// sbNotFound answers the paths under /v3/ that are not served; they are
// calls to the vendor too, and counted.
type sbNotFound struct{ m *sandbox.Meter }

func (h sbNotFound) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	call := h.m.Begin()
	defer call.End()
	for _, e := range endpoints {
		if r.URL.Path == e.path { // a live endpoint asked with another method
			w.Header().Set("Allow", http.MethodPost)
			http.Error(w, "Method Not Allowed", http.StatusMethodNotAllowed)
			return
		}
	}
	code, msg := 40400, "Not Found."
	if strings.HasPrefix(r.URL.Path, "/v3/backlinks/") {
		code, msg = 40402, "Invalid Path."
	}
	b := appendEnvelopeHead(nil, code, msg, 0, 0, 0, 0)
	writeBody(w, http.StatusNotFound, append(b, "null}"...))
}

// rateHeaders states the account's ceiling a minute and what is left of
// it in the current window, as the vendor does on every answer.
func (h *sbHandler) rateHeaders(w http.ResponseWriter, call *sandbox.Call) {
	per := h.m.Options().PerMinute()
	if per == 0 {
		return
	}
	w.Header().Set("X-RateLimit-Limit", strconv.Itoa(per))
	w.Header().Set("X-RateLimit-Remaining", strconv.Itoa(max(h.m.Options().Rate-call.InWindow, 0)))
}

type sbHandler struct {
	m *sandbox.Meter
	e *endpoint
	// run answers a task in place of e.run (the bulk counts, whose task
	// has targets, not a target).
	run func(o sandbox.Options, task json.RawMessage) sbResult
}

const (
	sbVersion = "0.1.20240801"
	// sbMaxBody caps a POST: a task is a few hundred bytes; 100 of them
	// with filters fit well within this.
	sbMaxBody = 1 << 20
)

// Injected failures under --fail: 40202 (injected, not counted as a
// throttle), 50000 in the task, 50301 for the request, HTTP 500, 50401,
// a truncated body, a malformed body, a dropped connection.
const (
	failThrottle = iota
	failTask50000
	failTop50301
	failHTTP500
	failTimeout50401
	failTruncated
	failMalformed
	failDrop
	failKinds
)

func (h *sbHandler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	call := h.m.Begin()
	defer call.End()
	if err := h.m.Wait(r.Context()); err != nil {
		return
	}
	h.rateHeaders(w, call)
	login, pass, ok := r.BasicAuth()
	if !ok || login == "" || pass == "" || login == sandbox.BadCredential || pass == sandbox.BadCredential {
		h.writeTop(w, http.StatusUnauthorized, start, 40100, "You are not authorized to access this resource.")
		return
	}
	if login == sandbox.NoFunds {
		h.writeTop(w, http.StatusPaymentRequired, start, 40200, "Payment Required.")
		return
	}
	body, rerr := io.ReadAll(http.MaxBytesReader(w, r.Body, sbMaxBody))
	tasks, code, msg := parseTasks(body, rerr)
	var data json.RawMessage // echo of the first task for error tasks, if any
	if len(tasks) > 0 {
		data = tasks[0]
	}
	switch {
	case code != 0:
	case login == sbInsufficient:
		h.writeTaskError(w, start, 40210, "Insufficient Funds.", data, false)
		return
	case login == sbCostLimit:
		h.writeTaskError(w, start, 40203, "Daily Cost Limit Exceeded.", data, false)
		return
	}

	switch {
	case call.OverConcurrency:
		h.m.Throttled()
		h.writeTaskError(w, start, 40209, "too many simultaneous requests", data, true)
		return
	case call.OverRate:
		h.m.Throttled()
		h.writeTaskError(w, start, 40202, "rate limit per minute exceeded", data, true)
		return
	}
	kind, fail := h.m.Inject(failKinds)
	if fail {
		switch kind {
		case failThrottle:
			h.writeTaskError(w, start, 40202, "rate limit per minute exceeded", data, true)
			return
		case failTask50000:
			h.writeTaskError(w, start, 50000, "Internal Error.", data, false)
			return
		case failTop50301:
			h.writeTop(w, http.StatusOK, start, 50301, "Service Temporarily Unavailable.")
			return
		case failHTTP500:
			h.writeTop(w, http.StatusInternalServerError, start, 50000, "Internal Server Error.")
			return
		case failTimeout50401:
			h.writeTaskError(w, start, 50401, "Internal Timeout. Please, try again later.", data, false)
			return
		case failMalformed:
			writeBody(w, http.StatusOK, []byte(`{"version":"`+sbVersion+`","status_code":20000,"status_message":"Ok.","tasks":[{"status_code":20000,"result":[{"items":[{"url_from":"https://x.example/",}]}]}`))
			return
		case failDrop:
			if sandbox.Drop(w) {
				return
			}
			h.writeTop(w, http.StatusServiceUnavailable, start, 50301, "Service Temporarily Unavailable.")
			return
		}
	}
	if code != 0 {
		h.writeTop(w, http.StatusOK, start, code, msg)
		return
	}

	bp := bufPool.Get().(*[]byte)
	defer bufPool.Put(bp)
	out := h.answer((*bp)[:0], start, tasks)
	if fail && kind == failTruncated {
		out = out[:len(out)/2]
	}
	writeBody(w, http.StatusOK, out)
	*bp = out[:0]
}

var bufPool = sync.Pool{New: func() any { b := make([]byte, 0, 64<<10); return &b }}

// parseTasks reads the POST body as the vendor does: an array of 1 to 100
// tasks. code is the request-level error, 0 if none.
func parseTasks(body []byte, rerr error) (tasks []json.RawMessage, code int, msg string) {
	if rerr != nil {
		return nil, 40503, "POST Data Is Invalid."
	}
	if len(bytes.TrimSpace(body)) == 0 {
		return nil, 40502, "POST Data Is Empty."
	}
	if first(body) != '[' || json.Unmarshal(body, &tasks) != nil {
		return nil, 40503, "POST Data Is Invalid."
	}
	if len(tasks) == 0 {
		return nil, 40502, "POST Data Is Empty."
	}
	if len(tasks) > maxTasksPerPOST {
		return tasks, 40006, "You can set no more than 100 tasks in one request."
	}
	return tasks, 0, ""
}

func writeBody(w http.ResponseWriter, status int, b []byte) {
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.Header().Set("Content-Length", strconv.Itoa(len(b)))
	w.WriteHeader(status)
	w.Write(b)
}

// writeTop answers with a request-level error: no task ran.
func (h *sbHandler) writeTop(w http.ResponseWriter, status int, start time.Time, code int, msg string) {
	b := appendEnvelopeHead(nil, code, msg, time.Since(start), 0, 0, 0)
	b = append(b, "null}"...)
	writeBody(w, status, b)
}

// writeTaskError answers with one failed task. Throttles set the code at
// both levels, as docs/vendors.md describes them; other task errors leave
// the request-level status at 20000.
func (h *sbHandler) writeTaskError(w http.ResponseWriter, start time.Time, code int, msg string, data json.RawMessage, both bool) {
	top, topMsg := 20000, "Ok."
	if both {
		top, topMsg = code, msg
	}
	el := time.Since(start)
	b := appendEnvelopeHead(nil, top, topMsg, el, 0, 1, 1)
	b = append(b, '[')
	b = h.appendTaskHead(b, code, msg, el, 0, 0, data)
	b = append(b, "null}]}"...)
	writeBody(w, http.StatusOK, b)
}

// answer runs the first task and refuses the others with 40000.
func (h *sbHandler) answer(b []byte, start time.Time, tasks []json.RawMessage) []byte {
	run := h.e.run
	if h.run != nil {
		run = h.run
	}
	res := run(h.m.Options(), tasks[0])
	cost := 0.0
	nerr := len(tasks) - 1
	if res.code == statusOK {
		// What the answer states is what /stats reports: one rounding.
		cost = math.Round(res.cost*1e6) / 1e6
		h.m.Charge(cost)
	} else {
		nerr++
	}
	el := time.Since(start)
	b = appendEnvelopeHead(b, statusOK, "Ok.", el, cost, len(tasks), nerr)
	b = append(b, '[')
	if res.code != statusOK {
		b = h.appendTaskHead(b, res.code, res.msg, el, 0, 0, tasks[0])
		b = append(b, "null}"...)
	} else {
		b = h.appendTaskHead(b, statusOK, "Ok.", el, cost, 1, tasks[0])
		b = append(b, '[')
		b = res.write(b)
		b = append(b, "]}"...)
	}
	for _, t := range tasks[1:] {
		b = append(b, ',')
		b = h.appendTaskHead(b, 40000, "You can set only one task at a time.", 0, 0, 0, t)
		b = append(b, "null}"...)
	}
	return append(b, "]}"...)
}

// appendEnvelopeHead writes the envelope up to the value of tasks.
func appendEnvelopeHead(b []byte, code int, msg string, el time.Duration, cost float64, count, nerr int) []byte {
	b = append(b, `{"version":"`+sbVersion+`",`...)
	b = appendStatus(b, code, msg, el, cost)
	b = append(b, `,"tasks_count":`...)
	b = strconv.AppendInt(b, int64(count), 10)
	b = append(b, `,"tasks_error":`...)
	b = strconv.AppendInt(b, int64(nerr), 10)
	return append(b, `,"tasks":`...)
}

// appendStatus writes the status, time and cost fields that the envelope
// and every task carry alike.
func appendStatus(b []byte, code int, msg string, el time.Duration, cost float64) []byte {
	b = append(b, `"status_code":`...)
	b = strconv.AppendInt(b, int64(code), 10)
	b = append(b, `,"status_message":`...)
	b = jsonstr.Append(b, msg)
	b = append(b, `,"time":"`...)
	b = strconv.AppendFloat(b, el.Seconds(), 'f', 4, 64)
	b = append(b, ` sec.","cost":`...)
	return appendCost(b, cost)
}

var taskSeq atomic.Uint64

// appendTaskHead writes a task up to the value of result. data is the
// posted task, echoed with api and function first as the vendor does.
func (h *sbHandler) appendTaskHead(b []byte, code int, msg string, el time.Duration, cost float64, nres int, data json.RawMessage) []byte {
	now := time.Now().UTC()
	b = append(b, `{"id":"`...)
	b = fmt.Appendf(b, "%02d%02d%02d%02d-1535-0%03d-0000-%012x", int(now.Month()), now.Day(), now.Hour(), now.Minute(),
		now.Second()*10+now.Nanosecond()/1e8, taskSeq.Add(1)&0xffffffffffff)
	b = append(b, `",`...)
	b = appendStatus(b, code, msg, el, cost)
	b = append(b, `,"result_count":`...)
	b = strconv.AppendInt(b, int64(nres), 10)
	b = append(b, `,"path":["v3","backlinks","`...)
	b = append(b, h.e.function...)
	b = append(b, `","live"],"data":`...)
	b = appendData(b, h.e.function, data)
	return append(b, `,"result":`...)
}

func appendData(b []byte, function string, data json.RawMessage) []byte {
	d := bytes.TrimSpace(data)
	if len(d) < 2 || d[0] != '{' {
		return append(b, "null"...)
	}
	b = append(b, `{"api":"backlinks","function":"`...)
	b = append(b, function...)
	b = append(b, '"')
	inner := bytes.TrimSpace(d[1 : len(d)-1])
	if len(inner) > 0 {
		b = append(b, ',')
		b = append(b, inner...)
	}
	return append(b, '}')
}

func appendCost(b []byte, c float64) []byte {
	return strconv.AppendFloat(b, math.Round(c*1e6)/1e6, 'f', -1, 64)
}

// sbResult is a task's outcome: an error code, or a result to write.
type sbResult struct {
	code  int
	msg   string
	cost  float64
	write func([]byte) []byte
}

func taskError(code int, msg string) sbResult { return sbResult{code: code, msg: msg} }

func invalidField(k string, detail string) sbResult {
	msg := "Invalid Field: '" + k + "'."
	if detail != "" {
		msg += " " + detail
	}
	return taskError(40501, msg)
}

// run validates a task and produces its result.
func (e *endpoint) run(o sandbox.Options, raw json.RawMessage) sbResult {
	seed := o.Seed
	var t map[string]json.RawMessage
	if first(raw) != '{' || json.Unmarshal(raw, &t) != nil {
		return taskError(40503, "POST Data Is Invalid.")
	}
	var unknown []string
	for k := range t {
		if _, ok := e.params[k]; ok || k == "target" {
			continue
		}
		if e.paged && (k == "limit" || k == "offset" || k == "search_after_token") {
			continue
		}
		unknown = append(unknown, k)
	}
	if len(unknown) > 0 {
		sort.Strings(unknown)
		return taskError(40506, "Unknown Fields in POST Data: "+strings.Join(unknown, ", ")+".")
	}
	var target string
	if first(t["target"]) != '"' || json.Unmarshal(t["target"], &target) != nil || strings.TrimSpace(target) == "" {
		return invalidField("target", "")
	}
	keys := make([]string, 0, len(t))
	for k := range t {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		if _, ok := e.params[k]; ok {
			if err := e.checkParam(k, t[k]); err != nil {
				return invalidField(k, err.Error())
			}
		}
	}
	if !e.paged {
		return summaryResult(seed, target, t)
	}

	limit, offset := defaultLimit, 0
	if v, ok := t["limit"]; ok {
		n, ok := intValue(v)
		if !ok || n < 1 || n > maxLimit {
			return invalidField("limit", fmt.Sprintf("limit must be from 1 to %d.", maxLimit))
		}
		limit = n
	}
	w := newSBWorld(o, target)
	status := "live"
	if v, ok := t["backlinks_status_type"]; ok {
		json.Unmarshal(v, &status) // checked above
	}
	var filter *sbFilter
	if v, ok := t["filters"]; ok {
		filter = compileFilters(v) // checked above
	}
	hash := taskHash(seed, keys, t)
	if v, ok := t["search_after_token"]; ok {
		var tok string
		if first(v) != '"' || json.Unmarshal(v, &tok) != nil {
			return invalidField("search_after_token", "")
		}
		lo, hi := w.candidates(status, max(w.h.N, sandbox.TotalAt(seed, Name, "backlinks", target, 0)))
		pos, ok := parseToken(tok, hash, hi-lo)
		if !ok {
			return invalidField("search_after_token", "The token is invalid or does not belong to these parameters.")
		}
		offset = pos // the offset, if sent, is ignored
	} else if v, ok := t["offset"]; ok {
		n, ok := intValue(v)
		if !ok || n < 0 || n > maxOffset {
			return invalidField("offset", fmt.Sprintf("offset must be from 0 to %d; use search_after_token to go further.", maxOffset))
		}
		offset = n
	}
	lo, hi := w.candidates(status, sandbox.TotalAt(seed, Name, "backlinks", target, offset))
	total, rows := w.page(lo, hi, filter, offset, limit)
	n := len(rows)
	mode, custom := json.RawMessage("null"), json.RawMessage("null")
	if v, ok := t["custom_mode"]; ok {
		custom = v
	} else if v, ok := t["mode"]; ok {
		mode = v
	} else {
		mode = json.RawMessage(`"as_is"`)
	}
	return sbResult{code: statusOK, cost: price.For(n), write: func(b []byte) []byte {
		b = append(b, `{"target":`...)
		b = jsonstr.Append(b, target)
		b = append(b, `,"mode":`...)
		b = append(b, mode...)
		b = append(b, `,"custom_mode":`...)
		b = append(b, custom...)
		b = append(b, `,"total_count":`...)
		b = strconv.AppendInt(b, int64(total), 10)
		b = append(b, `,"items_count":`...)
		b = strconv.AppendInt(b, int64(n), 10)
		if n == 0 {
			b = append(b, `,"items":null`...)
		} else {
			b = append(b, `,"items":[`...)
			for k, i := range rows {
				if k > 0 {
					b = append(b, ',')
				}
				b = w.appendRow(b, i)
			}
			b = append(b, ']')
		}
		b = append(b, `,"search_after_token":"`...)
		b = append(b, makeToken(hash, offset+n)...)
		return append(b, `"}`...)
	}}
}

// taskHash identifies a request apart from its token: every member but
// search_after_token, values compacted.
func taskHash(seed int64, keys []string, t map[string]json.RawMessage) uint64 {
	parts := make([]string, 0, 2*len(keys)+1)
	parts = append(parts, "search_after")
	var c bytes.Buffer
	for _, k := range keys {
		if k == "search_after_token" {
			continue
		}
		c.Reset()
		if json.Compact(&c, t[k]) != nil {
			c.Write(t[k])
		}
		parts = append(parts, k, c.String())
	}
	return sandbox.Hash(seed, parts...)
}

func makeToken(hash uint64, pos int) string {
	return base64.StdEncoding.EncodeToString(fmt.Appendf(nil, `{"v":1,"h":"%016x","p":%d}`, hash, pos))
}

func parseToken(tok string, hash uint64, total int) (int, bool) {
	b, err := base64.StdEncoding.DecodeString(tok)
	if err != nil {
		return 0, false
	}
	var v struct {
		V int    `json:"v"`
		H string `json:"h"`
		P *int   `json:"p"`
	}
	if json.Unmarshal(b, &v) != nil || v.V != 1 || v.P == nil || v.H != fmt.Sprintf("%016x", hash) {
		return 0, false
	}
	if *v.P < 0 || *v.P > total {
		return 0, false
	}
	return *v.P, true
}

// rowGen writes backlink rows of one target, shaped like the seed's
// example item (every member, in its order).
type rowGen struct {
	seed            int64
	target          string
	domainTo, urlTo string // the target's host; the target itself if it is a page URL
	isPage          bool
	idx             []byte
}

func newRowGen(seed int64, target string) *rowGen {
	g := &rowGen{seed: seed, target: target, domainTo: target}
	if _, rest, ok := strings.Cut(target, "://"); ok {
		g.isPage = true
		g.urlTo = target
		g.domainTo, _, _ = strings.Cut(rest, "/")
	}
	return g
}

var (
	platforms = []string{`["cms","blogs"]`, `["unknown"]`, `["cms","blogs","organization"]`, `["news"]`, `["ecommerce"]`, `["message-boards"]`}
	countries = []string{`"US"`, `"GB"`, `"DE"`, `"FR"`, `"IN"`, `"ZW"`, `null`, `null`}
	languages = []string{"en", "en", "en", "de", "fr", "es"}
	itemTypes = []string{"anchor", "anchor", "anchor", "anchor", "anchor", "image", "redirect", "canonical"}
	semantic  = []string{"article", "section", "main", "footer", "", "aside", "header"}
	titleEnds = []string{" | Blog", " – News", " - Reviews", ""}
	seenEpoch = time.Date(2019, 1, 1, 0, 0, 0, 0, time.UTC).Unix()
	day       = int64(86400)
)

// initialSeenDays is the span of an initial row's first_seen from
// seenEpoch: all before 2023-01-01, so before any day date_from may name.
const initialSeenDays = 4 * 365

func (g *rowGen) appendRow(b []byte, i int) []byte { return g.appendRowSeen(b, i, nil) }

// appendRowSeen writes row i; seen, unless nil, replaces the dates and
// flags the generator draws (which are drawn all the same, so that every
// other member stays what it is).
func (g *rowGen) appendRowSeen(b []byte, i int, seen *sbSeen) []byte {
	r := g.rand(i)
	urlFrom := sandbox.SourceURL(r, g.target, i)
	domainFrom := strings.TrimPrefix(urlFrom, "https://")
	domainFrom, _, _ = strings.Cut(domainFrom, "/")

	b = append(b, `{"type":"backlink","domain_from":`...)
	b = jsonstr.Append(b, domainFrom)
	b = append(b, `,"url_from":`...)
	b = jsonstr.Append(b, urlFrom) // the target is part of it, and may hold anything
	b = append(b, `,"url_from_https":true,"domain_to":`...)
	b = jsonstr.Append(b, g.domainTo)
	b = append(b, `,"url_to":`...)
	if g.isPage {
		b = jsonstr.Append(b, g.urlTo)
	} else {
		b = append(b, `"https://`...)
		b = jsonstr.AppendEscaped(b, g.domainTo)
		if r.IntN(3) > 0 {
			b = append(b, '/')
			b = append(b, sandbox.Word(r)...)
		}
		b = append(b, `/"`...)
	}
	b = append(b, `,"url_to_https":true,"tld_from":"org","is_new":`...)
	isNew, isLost := r.IntN(20) == 0, false
	if seen != nil {
		isNew, isLost = seen.isNew, seen.isLost
	}
	b = strconv.AppendBool(b, isNew)
	b = append(b, `,"is_lost":`...)
	b = strconv.AppendBool(b, isLost)
	b = append(b, `,"backlink_spam_score":`...)
	b = strconv.AppendInt(b, int64(r.IntN(60)), 10)
	b = append(b, `,"rank":`...)
	b = strconv.AppendInt(b, int64(r.IntN(400)), 10)
	b = append(b, `,"page_from_rank":`...)
	b = strconv.AppendInt(b, int64(r.IntN(300)), 10)
	b = append(b, `,"domain_from_rank":`...)
	b = strconv.AppendInt(b, int64(r.IntN(900)), 10)
	b = append(b, `,"domain_from_platform_type":`...)
	b = append(b, platforms[r.IntN(len(platforms))]...)
	b = append(b, `,"domain_from_is_ip":false,"domain_from_ip":"`...)
	for k := 0; k < 4; k++ {
		if k > 0 {
			b = append(b, '.')
		}
		b = strconv.AppendInt(b, int64(1+r.IntN(254)), 10)
	}
	b = append(b, `","domain_from_country":`...)
	b = append(b, countries[r.IntN(len(countries))]...)
	b = append(b, `,"page_from_external_links":`...)
	b = strconv.AppendInt(b, int64(r.IntN(200)), 10)
	b = append(b, `,"page_from_internal_links":`...)
	b = strconv.AppendInt(b, int64(r.IntN(300)), 10)
	b = append(b, `,"page_from_size":`...)
	b = strconv.AppendInt(b, int64(5000+r.IntN(200000)), 10)
	b = append(b, `,"page_from_encoding":"utf-8","page_from_language":"`...)
	b = append(b, languages[r.IntN(len(languages))]...)
	b = append(b, `","page_from_title":"`...)
	b = appendTitle(b, sandbox.Word(r))
	b = append(b, ' ')
	b = append(b, sandbox.Word(r)...)
	b = append(b, titleEnds[r.IntN(len(titleEnds))]...)
	b = append(b, `","page_from_status_code":200,"first_seen":"`...)
	firstSeen, prev, last := drawSeen(r)
	if seen != nil {
		firstSeen, prev, last = seen.first, seen.prev, seen.last
	}
	b = appendSeen(b, firstSeen)
	b = append(b, `","prev_seen":"`...)
	b = appendSeen(b, prev)
	b = append(b, `","last_seen":"`...)
	b = appendSeen(b, last)
	itemType := itemTypes[r.IntN(len(itemTypes))]
	dofollow := r.IntN(4) > 0
	b = append(b, `","item_type":"`...)
	b = append(b, itemType...)
	b = append(b, `","attributes":`...)
	switch {
	case !dofollow:
		b = append(b, `["external","nofollow"]`...)
	case r.IntN(5) == 0:
		b = append(b, `["noopener"]`...)
	default:
		b = append(b, "null"...)
	}
	b = append(b, `,"dofollow":`...)
	b = strconv.AppendBool(b, dofollow)
	b = append(b, `,"original":`...)
	b = strconv.AppendBool(b, r.IntN(10) == 0)
	b = append(b, `,"alt":`...)
	if itemType == "image" {
		b = append(b, '"')
		b = append(b, sandbox.Word(r)...)
		b = append(b, `"`...)
	} else {
		b = append(b, "null"...)
	}
	b = append(b, `,"anchor":`...)
	switch a := r.IntN(10); {
	case itemType == "image" || a == 0:
		b = append(b, `""`...) // empty anchors occur, as in the seed
	case a == 1:
		b = append(b, `"https://`...)
		b = jsonstr.AppendEscaped(b, g.domainTo)
		b = append(b, '"')
	default:
		b = append(b, '"')
		b = append(b, sandbox.Word(r)...)
		b = append(b, ' ')
		b = append(b, sandbox.Word(r)...)
		b = append(b, '"')
	}
	b = append(b, `,"text_pre":`...)
	b = appendMaybeWords(b, r)
	b = append(b, `,"text_post":`...)
	b = appendMaybeWords(b, r)
	b = append(b, `,"semantic_location":"`...)
	b = append(b, semantic[r.IntN(len(semantic))]...)
	b = append(b, `","links_count":`...)
	b = strconv.AppendInt(b, int64(1+r.IntN(3)), 10)
	b = append(b, `,"group_count":`...)
	b = strconv.AppendInt(b, int64(1+r.IntN(5)), 10)
	b = append(b, `,"is_broken":false,"url_to_status_code":`...)
	if r.IntN(10) == 0 {
		b = append(b, `null,"url_to_spam_score":null`...)
	} else {
		b = append(b, `200,"url_to_spam_score":`...)
		b = strconv.AppendInt(b, int64(r.IntN(10)), 10)
	}
	return append(b, `,"url_to_redirect_target":null}`...)
}

// drawSeen draws a row's first_seen, prev_seen and last_seen as the
// generator has always drawn them: first seen from 2019 to 2022 (before
// sandbox.ChurnStart), seen again within a year, last within half a year
// more.
func drawSeen(r *rand.Rand) (first, prev, last int64) {
	first = seenEpoch + r.Int64N(initialSeenDays*day)
	prev = first + r.Int64N(365*day)
	last = prev + r.Int64N(180*day)
	return first, prev, last
}

// rand is row i's generator: every draw of the row comes from it, in
// appendRowSeen's order.
func (g *rowGen) rand(i int) *rand.Rand {
	g.idx = strconv.AppendInt(g.idx[:0], int64(i), 10)
	return sandbox.Rand(g.seed, Name, "backlinks", g.target, string(g.idx))
}

// sourceURL is row i's url_from.
func (g *rowGen) sourceURL(i int) string { return sandbox.SourceURL(g.rand(i), g.target, i) }

func appendTitle(b []byte, w string) []byte {
	if w == "" {
		return b
	}
	b = append(b, w[0]-'a'+'A')
	return append(b, w[1:]...)
}

func appendMaybeWords(b []byte, r *rand.Rand) []byte {
	if r.IntN(2) == 0 {
		return append(b, "null"...)
	}
	b = append(b, '"')
	b = append(b, sandbox.Word(r)...)
	b = append(b, ' ')
	b = append(b, sandbox.Word(r)...)
	return append(b, '"')
}

// appendSeen writes a Unix time as the vendor writes dates:
// "2022-01-27 20:18:57 +00:00".
func appendSeen(b []byte, sec int64) []byte {
	t := time.Unix(sec, 0).UTC()
	y, mo, d := t.Date()
	hh, mm, ss := t.Clock()
	b = strconv.AppendInt(b, int64(y), 10)
	b = append(b, '-', byte('0'+int(mo)/10), byte('0'+int(mo)%10), '-', byte('0'+d/10), byte('0'+d%10), ' ',
		byte('0'+hh/10), byte('0'+hh%10), ':', byte('0'+mm/10), byte('0'+mm%10), ':', byte('0'+ss/10), byte('0'+ss%10))
	return append(b, " +00:00"...)
}

// summaryResult answers summary/live: one overview of the target whose
// backlinks equal the backlinks endpoint's total_count.
func summaryResult(seed int64, target string, t map[string]json.RawMessage) sbResult {
	limit := 10 // internal_list_limit default
	if v, ok := t["internal_list_limit"]; ok {
		limit, _ = intValue(v)
	}
	total := sandbox.Total(seed, Name, "backlinks", target)
	r := sandbox.Rand(seed, Name, "summary", target)
	pct := func(n, lo, hi int) int { return n * (lo + r.IntN(hi-lo+1)) / 100 }
	refDomains := pct(total, 10, 40)
	if total > 0 && refDomains == 0 {
		refDomains = 1
	}
	refMain := pct(refDomains, 85, 100)
	refIPs := pct(refDomains, 80, 95)
	rank := r.IntN(1000)
	if v, ok := t["rank_scale"]; ok && string(bytes.TrimSpace(v)) == `"one_hundred"` {
		rank /= 10
	}
	return sbResult{code: statusOK, cost: price.For(1), write: func(b []byte) []byte {
		b = append(b, `{"target":`...)
		b = jsonstr.Append(b, target)
		b = append(b, `,"first_seen":`...)
		if total == 0 {
			b = append(b, "null"...)
		} else {
			b = append(b, '"')
			b = appendSeen(b, seenEpoch+r.Int64N(3*365*day))
			b = append(b, '"')
		}
		b = append(b, `,"lost_date":null,"rank":`...)
		b = strconv.AppendInt(b, int64(rank), 10)
		num := func(name string, v int) {
			b = append(b, `,"`...)
			b = append(b, name...)
			b = append(b, `":`...)
			b = strconv.AppendInt(b, int64(v), 10)
		}
		num("backlinks", total)
		num("backlinks_spam_score", r.IntN(40))
		num("crawled_pages", 1+r.IntN(5000))
		b = append(b, `,"info":{"server":"`...)
		b = append(b, []string{"cloudflare", "nginx", "Apache", "LiteSpeed"}[r.IntN(4)]...)
		b = append(b, `","cms":`...)
		b = append(b, []string{"null", `"WordPress"`}[r.IntN(2)]...)
		b = append(b, `,"platform_type":`...)
		b = append(b, platforms[r.IntN(len(platforms))]...)
		b = fmt.Appendf(b, `,"ip_address":"%d.%d.%d.%d","country":`, 1+r.IntN(254), r.IntN(256), r.IntN(256), 1+r.IntN(254))
		b = append(b, countries[r.IntN(len(countries)-2)]...)
		b = append(b, `,"is_ip":false,"target_spam_score":`...)
		b = strconv.AppendInt(b, int64(r.IntN(30)), 10)
		b = append(b, '}')
		num("internal_links_count", 2*total+r.IntN(1000))
		num("external_links_count", pct(total, 20, 60))
		num("broken_backlinks", pct(total, 0, 2))
		num("broken_pages", r.IntN(300))
		num("referring_domains", refDomains)
		num("referring_domains_nofollow", pct(refDomains, 5, 30))
		num("referring_main_domains", refMain)
		num("referring_main_domains_nofollow", pct(refMain, 5, 30))
		num("referring_ips", refIPs)
		num("referring_subnets", pct(refIPs, 50, 80))
		num("referring_pages", pct(total, 60, 95))
		dist := func(name string, keys []string) {
			b = append(b, `,"`...)
			b = append(b, name...)
			b = append(b, `":{`...)
			left := total
			for k, key := range keys[:min(limit, len(keys))] {
				share := left / 2
				if k == len(keys)-1 || k == limit-1 {
					share = left
				}
				if k > 0 {
					b = append(b, ',')
				}
				b = jsonstr.Append(b, key)
				b = append(b, ':')
				b = strconv.AppendInt(b, int64(share), 10)
				left -= share
			}
			b = append(b, '}')
		}
		dist("referring_links_tld", []string{"com", "org", "net", "io", "co.uk", "de", "info", "co", "fr", "es"})
		dist("referring_links_types", []string{"anchor", "redirect", "image", "canonical"})
		dist("referring_links_attributes", []string{"nofollow", "noopener", "noreferrer", "external", "sponsored", "ugc"})
		dist("referring_links_platform_types", []string{"unknown", "cms", "blogs", "organization", "message-boards", "news", "ecommerce"})
		dist("referring_links_semantic_locations", []string{"", "article", "section", "main", "footer", "aside", "header"})
		dist("referring_links_countries", []string{"", "US", "GB", "DE", "IN", "FR", "ZW"})
		num("referring_pages_nofollow", pct(total, 5, 30))
		num("backlinks_nofollow", pct(total, 5, 30))
		return append(b, '}')
	}}
}
