package dataforseo

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"time"

	"github.com/linkharvest/linkharvest/providers"
)

// statusOK is the vendor's success code, at both levels.
const statusOK = 20000

// codeClass is what a vendor status code means to the pipeline.
type codeClass struct {
	class   providers.Class
	account bool
}

// codes classifies every status code docs/vendors.md lists.
var codes = map[int]codeClass{
	// Throttles: sent inside an HTTP 200, without Retry-After.
	40202: {class: providers.Throttled}, // rate limit per minute exceeded
	40209: {class: providers.Throttled}, // too many simultaneous requests
	// Transient faults of the vendor.
	50000: {class: providers.Retryable}, // internal error
	50301: {class: providers.Retryable}, // service unavailable
	50303: {class: providers.Retryable}, // update in progress
	50304: {class: providers.Retryable}, // function temporarily unavailable
	50401: {class: providers.Retryable}, // internal timeout (live task > 120 s)
	// The account: every further call fails the same way, so the
	// provider is paused rather than each task failing on its own.
	40100: {class: providers.Fatal, account: true}, // not authorized
	40104: {class: providers.Fatal, account: true}, // verify the account
	40200: {class: providers.Fatal, account: true}, // payment required
	40201: {class: providers.Fatal, account: true}, // access paused
	40203: {class: providers.Fatal, account: true}, // daily cost limit exceeded: lifts at 00:00 UTC (Until)
	40204: {class: providers.Fatal, account: true}, // access denied (subscription)
	40210: {class: providers.Fatal, account: true}, // insufficient funds
	// The configuration: the client posts to two fixed paths, so a path
	// the vendor does not know means a wrong base URL, and every call
	// fails the same way.
	40400: {class: providers.Fatal, account: true}, // not found
	40402: {class: providers.Fatal, account: true}, // invalid path
	// This request: sending it again gets the same answer.
	40000: {class: providers.Fatal}, // only one task at a time
	40006: {class: providers.Fatal}, // at most 100 tasks
	40501: {class: providers.Fatal}, // invalid field
	40502: {class: providers.Fatal}, // POST data empty
	40503: {class: providers.Fatal}, // POST data invalid
	40506: {class: providers.Fatal}, // unknown fields in POST data
}

// classify turns a vendor status code other than 20000 into an error.
// Codes not in the table are judged by their range: 5xxxx are the
// vendor's faults (retried), 4xxxx the request's (fatal); anything else is
// an answer a live endpoint should not give, retried within the task's
// budget.
func classify(code int, msg string) *providers.Error {
	e := &providers.Error{Provider: Name, Code: strconv.Itoa(code), Message: msg}
	if c, ok := codes[code]; ok {
		e.Class, e.Account = c.class, c.account
		return e
	}
	switch {
	case code >= 40000 && code < 50000:
		e.Class = providers.Fatal
	default:
		e.Class = providers.Retryable
	}
	return e
}

// httpError classifies a non-2xx answer (the vendor sends 401, 402, 404
// and 500 as HTTP statuses, usually with the envelope as body). A 5xx is
// retried whatever the body says; otherwise the body's code, when it is
// one we know, is more precise than the HTTP status.
func httpError(status int, retryAfter string, body []byte) *providers.Error {
	var env struct {
		StatusCode    lenientInt    `json:"status_code"`
		StatusMessage lenientString `json:"status_message"`
	}
	_ = json.Unmarshal(body, &env) // a proxy's HTML page has neither
	msg := string(env.StatusMessage)
	if msg == "" {
		msg = http.StatusText(status)
	}
	if env.StatusCode.ok && status < 500 {
		if _, known := codes[env.StatusCode.n]; known {
			return classify(env.StatusCode.n, msg)
		}
	}
	e := providers.HTTPStatus(Name, status, retryAfter, msg)
	if env.StatusCode.ok {
		e.Code = fmt.Sprintf("http %d / %d", status, env.StatusCode.n)
	}
	if status == http.StatusNotFound {
		// A 404 without the vendor's envelope (a proxy's page, another
		// server): the base URL is wrong for every call alike.
		e.Account = true
	}
	return e
}

// costLimitCode is the owner's daily cost limit, which the vendor lifts
// at 00:00 UTC.
const costLimitCode = "40203"

// liftsAt sets Until on an error that lifts by itself: for the daily cost
// limit, the first 00:00 UTC after the call was sent (not after its
// answer came: an answer that crosses midnight must not wait a day more).
func liftsAt(e *providers.Error, sent time.Time) *providers.Error {
	if e != nil && e.Code == costLimitCode {
		y, m, d := sent.UTC().Date()
		e.Until = time.Date(y, m, d+1, 0, 0, 0, 0, time.UTC)
	}
	return e
}

// The envelope. Only the members the pipeline reads are declared, so
// encoding/json skips the rest (version, time, path, data, ...) without
// building anything; the small members are read leniently, so an odd type
// in one of them never costs a page.
type envelope[R any] struct {
	StatusCode    lenientInt    `json:"status_code"`
	StatusMessage lenientString `json:"status_message"`
	Tasks         []task[R]     `json:"tasks"`
}

type task[R any] struct {
	StatusCode    lenientInt    `json:"status_code"`
	StatusMessage lenientString `json:"status_message"`
	Cost          lenientFloat  `json:"cost"`
	Result        []R           `json:"result"` // null or [] when there is nothing
}

// backlinksResult is one result of backlinks/live. Items stay raw bytes:
// the rows are split and their few normalised fields read by hand
// (splitItems, scanItem) rather than decoded into structs.
type backlinksResult struct {
	TotalCount       lenientInt      `json:"total_count"`
	SearchAfterToken lenientString   `json:"search_after_token"`
	Items            json.RawMessage `json:"items"`
}

// Decode parses a 2xx response body of an endpoint ("backlinks" or
// "summary") into a page, reading both status levels. It is exported for
// benchmarks outside the package; Fetch is the way to call the vendor.
func Decode(endpoint string, body []byte) (*providers.Page, error) {
	e, err := lookup(endpoint)
	if err != nil {
		return nil, err
	}
	p, perr := decode(e, body)
	if perr != nil {
		return nil, perr
	}
	return p, nil
}

func decode(e *endpoint, body []byte) (*providers.Page, *providers.Error) {
	if first(body) != '{' {
		return nil, providers.BadBody(Name, errors.New("the body is not a JSON object"))
	}
	if e.paged {
		var env envelope[backlinksResult]
		uerr := json.Unmarshal(body, &env)
		t, perr := checkStatus(&env, uerr)
		if perr != nil {
			return nil, perr
		}
		return backlinksPage(t)
	}
	var env envelope[json.RawMessage]
	uerr := json.Unmarshal(body, &env)
	t, perr := checkStatus(&env, uerr)
	if perr != nil {
		return nil, perr
	}
	page := &providers.Page{Cost: t.Cost.f, CostUnit: "usd"}
	for _, r := range t.Result {
		if k := first(r); k == 'n' || k == 0 {
			continue // a null result holds nothing
		}
		page.Items = append(page.Items, providers.Item{Kind: "summary", Raw: r})
	}
	page.Total = len(page.Items)
	return page, nil
}

// checkStatus reads the request-level and then the task-level status and
// returns the task to read results from. A body that is not JSON at all
// is retried; one whose members have unexpected types is judged by its
// status codes first (encoding/json fills what it can before reporting
// the mismatch), so a vendor error with an odd result is still classified.
func checkStatus[R any](env *envelope[R], uerr error) (*task[R], *providers.Error) {
	var syn *json.SyntaxError
	if uerr != nil && (errors.As(uerr, &syn) || !env.StatusCode.ok) {
		return nil, providers.BadBody(Name, uerr)
	}
	if !env.StatusCode.ok {
		return nil, providers.BadBody(Name, errors.New("the envelope has no status_code"))
	}
	if env.StatusCode.n != statusOK {
		return nil, classify(env.StatusCode.n, string(env.StatusMessage))
	}
	if len(env.Tasks) == 0 {
		return nil, providers.BadBody(Name, errors.New("status 20000 but no task in the response"))
	}
	t := &env.Tasks[0] // one task per POST: the first answers ours
	if !t.StatusCode.ok {
		return nil, providers.BadBody(Name, errors.New("the task has no status_code"))
	}
	if t.StatusCode.n != statusOK {
		return nil, classify(t.StatusCode.n, string(t.StatusMessage))
	}
	if uerr != nil {
		return nil, providers.BadBody(Name, uerr)
	}
	return t, nil
}

// backlinksPage normalises a backlinks task. result null or [] and items
// null or [] are pages with no rows, not errors (a target the vendor
// knows nothing about answers that way).
func backlinksPage(t *task[backlinksResult]) (*providers.Page, *providers.Error) {
	page := &providers.Page{Cost: t.Cost.f, CostUnit: "usd"}
	for i := range t.Result {
		r := &t.Result[i]
		if i == 0 {
			page.Total = 0
			if r.TotalCount.ok {
				page.Total = r.TotalCount.n
			}
			page.Next = string(r.SearchAfterToken)
		}
		items, err := splitItems(r.Items)
		if err != nil {
			return nil, providers.BadBody(Name, err)
		}
		page.Items = append(page.Items, normalise(items)...)
	}
	return page, nil
}

func normalise(items []json.RawMessage) []providers.Item {
	out := make([]providers.Item, len(items))
	block := make([]itemFields, len(items)) // one allocation for the page: Items point into it
	for i, raw := range items {
		f := &block[i]
		*f = scanItem(raw)
		out[i] = providers.Item{
			Kind:        "backlink",
			Raw:         raw,
			SourceURL:   ifHas(f, hasSource, &f.source),
			TargetURL:   ifHas(f, hasTarget, &f.target),
			Anchor:      ifHas(f, hasAnchor, &f.anchor),
			SourceTitle: ifHas(f, hasTitle, &f.title),
			Nofollow:    ifHas(f, hasNofollow, &f.nofollow),
		}
	}
	return out
}

// ifHas is v when the row had the field, nil (absent) when not.
func ifHas[T any](f *itemFields, bit int, v *T) *T {
	if f.has&bit == 0 {
		return nil
	}
	return v
}

// Lenient scalars: a value of another type reads as absent instead of
// failing the whole body.

type lenientInt struct {
	n  int
	ok bool
}

func (v *lenientInt) UnmarshalJSON(b []byte) error {
	if len(b) > 0 && b[0] == '"' {
		b = bytes.Trim(b, `"`)
	}
	if n, err := strconv.Atoi(string(b)); err == nil {
		*v = lenientInt{n: n, ok: true}
	} else if f, err := strconv.ParseFloat(string(b), 64); err == nil && f == float64(int(f)) {
		*v = lenientInt{n: int(f), ok: true}
	}
	return nil
}

type lenientFloat struct{ f float64 }

func (v *lenientFloat) UnmarshalJSON(b []byte) error {
	if len(b) > 0 && b[0] == '"' {
		b = bytes.Trim(b, `"`)
	}
	if f, err := strconv.ParseFloat(string(b), 64); err == nil {
		v.f = f
	}
	return nil
}

type lenientString string

func (v *lenientString) UnmarshalJSON(b []byte) error {
	if len(b) > 0 && b[0] == '"' {
		var s string
		if json.Unmarshal(b, &s) == nil {
			*v = lenientString(s)
		}
	}
	return nil
}
