package domdetailer

import (
	"encoding/json"
	"fmt"
	"strings"

	"github.com/linkharvest/linkharvest/providers"
)

// KindMetrics is the Item.Kind of the response's metrics summary.
//
// The summary (links_in, ref_domains, the follow/nofollow split, …) comes
// with every call at no extra cost and describes the domain's whole link
// profile, of which the rows are only a sample of at most 5,000. It is
// emitted as one item of its own kind, first on the page, with Raw = the
// vendor's "metrics" object verbatim: a warehouse query selects
// kind = 'backlink' for the rows and kind = 'metrics' for the summary.
// First, so that --max-rows, which keeps a page's leading items, never
// drops it. The price: a page holds the backlinks plus one record, and a
// domain with no backlinks ends "ok" with its one metrics record rather
// than "empty". It is not given its own endpoint: that would be a second
// paid call for data the first one already returned.
const KindMetrics = "metrics"

// KindBacklink is the Item.Kind of a backlink row.
const KindBacklink = "backlink"

// envelope is the documented response
// {"domain":…,"metrics":{…},"backlinks":[…]}; error bodies are
// {"error":…,"message":…}. Members are read one by one so that an odd type
// in one we do not need never costs a page.
type envelope struct {
	Metrics   json.RawMessage `json:"metrics"`
	Backlinks json.RawMessage `json:"backlinks"`
	Error     json.RawMessage `json:"error"`
	Message   json.RawMessage `json:"message"`
}

// row holds the fields of a backlink row that the normalised record needs.
type row struct {
	Anchor json.RawMessage `json:"anchor"`
	Title  json.RawMessage `json:"title"`
	NF     json.RawMessage `json:"nf"`
	Source json.RawMessage `json:"source"`
	Target json.RawMessage `json:"target"`
}

// decode turns a 2xx body into a page.
func decode(body []byte) (*providers.Page, error) {
	var env envelope
	if err := providers.DecodeObject(Name, body, &env); err != nil {
		return nil, err
	}
	// An error object inside a 2xx (undocumented, but PHP APIs do it).
	if providers.FirstByte(env.Backlinks) == 0 {
		if code, msg := providers.JSONString(env.Error), providers.JSONString(env.Message); code != "" || msg != "" {
			return nil, bodyError(code, msg)
		}
	}
	var rows []json.RawMessage
	switch providers.FirstByte(env.Backlinks) {
	case 0, 'n': // absent or null: a domain without backlinks
	case '[':
		if err := json.Unmarshal(env.Backlinks, &rows); err != nil {
			return nil, providers.BadBody(Name, err)
		}
	default:
		return nil, providers.BadBody(Name, fmt.Errorf("backlinks is not a list"))
	}
	page := &providers.Page{
		Items: make([]providers.Item, 0, len(rows)+1),
		// The rows one call returns are all that can be had for the
		// domain; the vendor's count of the whole profile is in the
		// metrics record (links_in).
		Total:    len(rows),
		Cost:     CreditsPerCall,
		CostUnit: "credits",
	}
	if providers.FirstByte(env.Metrics) == '{' {
		page.Items = append(page.Items, providers.Item{Kind: KindMetrics, Raw: env.Metrics})
	}
	for _, r := range rows {
		page.Items = append(page.Items, item(r))
	}
	return page, nil
}

// item normalises one backlink row; Raw keeps the vendor's bytes verbatim.
func item(raw json.RawMessage) providers.Item {
	it := providers.Item{Kind: KindBacklink, Raw: raw}
	var r row
	if providers.FirstByte(raw) != '{' || json.Unmarshal(raw, &r) != nil {
		return it // not an object: kept as is, nothing to normalise
	}
	it.SourceURL = providers.JSONText(r.Source)
	it.TargetURL = providers.JSONText(r.Target)
	// The docs: "anchor - visible link text (falls back to title if empty)".
	// The seed describes title as the source page's title, although its
	// example holds a URL there for one row; it is taken as documented.
	it.SourceTitle = providers.JSONText(r.Title)
	it.Anchor = providers.JSONText(r.Anchor)
	if it.Anchor == nil || strings.TrimSpace(*it.Anchor) == "" {
		if it.SourceTitle != nil && strings.TrimSpace(*it.SourceTitle) != "" {
			it.Anchor = it.SourceTitle
		}
	}
	// nf: 1 nofollow, 0 dofollow.
	it.Nofollow = providers.JSONFlag(r.NF)
	return it
}

// bodyError classifies an error object that came with a 2xx status. The
// seed documents two codes (missing_parameter, invalid_api_key); the rest
// is read from the words the vendor uses. What cannot be placed is retried:
// an unknown failure is more often transient, and the retry budget bounds
// the cost of being wrong.
func bodyError(code, msg string) *providers.Error {
	e := &providers.Error{Provider: Name, Code: code, Message: msg, Class: providers.Retryable}
	if e.Code == "" {
		e.Code = "error"
	}
	if e.Message == "" {
		e.Message = code
	}
	l := strings.ToLower(code + " " + msg)
	switch {
	case containsAny(l, "api_key", "apikey", "api key", "unauthori", "forbidden", "credit", "balance", "payment", "inactive"):
		e.Class, e.Account = providers.Fatal, true
	case containsAny(l, "rate", "too_many", "too many", "throttl", "slow down"):
		e.Class = providers.Throttled
	case containsAny(l, "parameter", "invalid", "required", "missing"):
		e.Class = providers.Fatal
	}
	return e
}

func containsAny(s string, subs ...string) bool {
	for _, sub := range subs {
		if strings.Contains(s, sub) {
			return true
		}
	}
	return false
}

// errorMessage is the vendor's message from an error body: "error: message"
// from the documented {"error","message"}, short plain text as it is, and
// the status text for HTML pages and empty bodies.
func errorMessage(body []byte, status int) string {
	msg := ""
	var obj map[string]json.RawMessage
	if providers.FirstByte(body) == '{' && json.Unmarshal(body, &obj) == nil {
		code, m := providers.JSONString(obj["error"]), providers.JSONString(obj["message"])
		switch {
		case code != "" && m != "":
			msg = code + ": " + m
		case m != "":
			msg = m
		default:
			msg = code
		}
	}
	return providers.ErrorText(msg, body, status)
}
