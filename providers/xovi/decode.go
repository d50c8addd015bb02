package xovi

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"html"
	"strings"
	"unicode/utf8"

	"github.com/linkharvest/linkharvest/providers"
)

// KindBacklink is the Item.Kind of a row.
const KindBacklink = "backlink"

// envelope is an answer in either format: apiMeta, apiErrorCode,
// apiErrorMessage, apiResult and resultCount (JSON keys = XML elements).
type envelope struct {
	hasCode bool
	code    int  // apiErrorCode, when hasCode
	codeOK  bool // apiErrorCode reads as 0
	codeRaw string
	message *string // apiErrorMessage as written
	// total is resultCount, -1 when absent. Where it sits is unconfirmed
	// (top level or inside apiMeta): both are read, the top level first.
	total  int
	rows   []json.RawMessage // apiResult's rows, each as a JSON value
	result bool              // apiResult present and not null
	// badResult: apiResult has a shape no rows can be read from. It is
	// an error only for a successful answer: error answers may carry
	// anything there.
	badResult error
}

// parse reads either format, by the body's first byte rather than the
// format asked for (error pages and odd gateways answer as they please).
func parse(body []byte) (*envelope, error) {
	body = bytes.TrimPrefix(body, []byte("\xef\xbb\xbf")) // a UTF-8 BOM
	switch providers.FirstByte(body) {
	case '{':
		return parseJSON(body)
	case '<':
		return parseXML(body)
	}
	return nil, providers.BadBody(Name, errors.New("the body is neither a JSON object nor XML"))
}

func parseJSON(body []byte) (*envelope, error) {
	var top map[string]json.RawMessage
	if err := json.Unmarshal(body, &top); err != nil {
		return nil, providers.BadBody(Name, err)
	}
	env := &envelope{total: -1}
	if raw, ok := top["apiErrorCode"]; ok && providers.FirstByte(raw) != 'n' {
		env.hasCode = true
		env.codeRaw = strings.TrimSpace(string(raw))
		if s := providers.JSONText(raw); s != nil {
			env.codeRaw = *s
		}
		env.code, env.codeOK = providers.JSONInt(raw)
		env.codeOK = env.codeOK && env.code == 0
	}
	env.message = providers.JSONText(top["apiErrorMessage"])
	if n, ok := providers.JSONInt(top["resultCount"]); ok && n >= 0 {
		env.total = n
	} else if providers.FirstByte(top["apiMeta"]) == '{' {
		var meta map[string]json.RawMessage
		if json.Unmarshal(top["apiMeta"], &meta) == nil {
			if n, ok := providers.JSONInt(meta["resultCount"]); ok && n >= 0 {
				env.total = n
			}
		}
	}
	raw, ok := top["apiResult"]
	if !ok || providers.FirstByte(raw) == 'n' {
		return env, nil
	}
	env.result = true
	env.rows, env.badResult = jsonRows(raw)
	return env, nil
}

// jsonRows reads apiResult: a list of rows as documented ("a numerical
// array"); an object keyed by index, which PHP's json_encode makes of an
// array with gaps in its keys; a single row object; or an empty value.
func jsonRows(raw json.RawMessage) ([]json.RawMessage, error) {
	switch providers.FirstByte(raw) {
	case '[':
		var rows []json.RawMessage
		if err := json.Unmarshal(raw, &rows); err != nil {
			return nil, err
		}
		return rows, nil
	case '{':
		vals, err := objectValues(raw)
		if err != nil {
			return nil, err
		}
		for _, v := range vals {
			if c := providers.FirstByte(v); c != '{' && c != '[' {
				return []json.RawMessage{raw}, nil // one row, not a map of rows
			}
		}
		return vals, nil
	}
	switch strings.TrimSpace(string(raw)) {
	case `""`, "false", "0", "[]":
		return nil, nil
	}
	return nil, errors.New("apiResult is neither a list nor an object")
}

// objectValues returns an object's values in document order.
func objectValues(raw json.RawMessage) ([]json.RawMessage, error) {
	d := json.NewDecoder(bytes.NewReader(raw))
	if _, err := d.Token(); err != nil { // {
		return nil, err
	}
	var out []json.RawMessage
	for d.More() {
		if _, err := d.Token(); err != nil { // key
			return nil, err
		}
		var v json.RawMessage
		if err := d.Decode(&v); err != nil {
			return nil, err
		}
		out = append(out, v)
	}
	return out, nil
}

// outcome is what an answer's message means.
type outcome int

const (
	outOK outcome = iota
	outEmpty
	outError
)

// messages are the messages the vendor documents (docs/vendors.md, "XOVI: errors") (and "no access", which the vendor's
// pages for its other links methods use for the same thing), by what each
// means for the call.
var messages = map[string]struct {
	class       providers.Class
	account     bool
	description string
}{
	// The pool of credits is used up: every call fails until it refills.
	"cost error": {providers.Fatal, true, "The current credit amount is not sufficient to handle the request."},
	// The key lacks access to this function (or is wrong): nothing works.
	"no permission":  {providers.Fatal, true, "This key has no access to this function."},
	"no access":      {providers.Fatal, true, "This key has no access to this function."},
	"internal error": {providers.Retryable, false, "An internal error occured."},
	// limit > 1000: this client's bug, and the same call fails again.
	"maximum limit exeeded":  {providers.Fatal, false, "The maximum limit is reached (limit > 1000)."},
	"maximum limit exceeded": {providers.Fatal, false, "The maximum limit is reached (limit > 1000)."},
	"param missing":          {providers.Fatal, false, "A required parameter is missing."},
	"param invalid":          {providers.Fatal, false, "The value of a parameter is not valid."},
}

// judge reads apiErrorCode and apiErrorMessage. Success is "0k." (also
// read: "ok", "0k", with or without the dot) with apiErrorCode 0 or
// absent; "result empty" is an empty page; the documented failures are
// classified as above; anything else failing is retried, as an unknown
// failure is more often transient and the retry budget bounds the cost.
func judge(env *envelope) (outcome, *providers.Error) {
	msg := ""
	if env.message != nil {
		msg = strings.ToLower(strings.Join(strings.Fields(*env.message), " "))
	}
	switch msg {
	case "0k.", "0k", "ok.", "ok", "":
		if !env.hasCode || env.codeOK {
			return outOK, nil
		}
		return outError, &providers.Error{Provider: Name, Class: providers.Retryable, Code: "apiErrorCode " + clip(env.codeRaw),
			Message: fmt.Sprintf("apiErrorCode %s with apiErrorMessage %q", clip(env.codeRaw), clip(msg))}
	case "result empty":
		return outEmpty, nil
	}
	e := &providers.Error{Provider: Name, Class: providers.Retryable, Code: clip(strings.TrimSpace(*env.message))}
	if m, ok := messages[msg]; ok {
		e.Class, e.Account, e.Code, e.Message = m.class, m.account, msg, m.description
	} else {
		e.Message = "unknown apiErrorMessage"
	}
	if env.hasCode {
		e.Message += " (apiErrorCode " + clip(env.codeRaw) + ")"
	}
	return outError, e
}

// clip shortens a vendor string for a message.
func clip(s string) string {
	if len(s) <= 120 {
		return s
	}
	s = s[:120]
	for len(s) > 0 && !utf8.ValidString(s) {
		s = s[:len(s)-1]
	}
	return s + "…"
}

// page turns a judged envelope into the rows [drop, drop+n) of the answer.
func (c *Client) page(env *envelope, skip, drop, n int) (*providers.Page, error) {
	if !env.hasCode && env.message == nil && !env.result {
		return nil, providers.BadBody(Name, errors.New("not a XOVI answer: no apiErrorCode, apiErrorMessage or apiResult"))
	}
	out, perr := judge(env)
	if perr != nil {
		return nil, perr
	}
	page := &providers.Page{Total: env.total, CostUnit: "credits", Items: []providers.Item{}}
	page.Cost = c.perCall
	if out == outEmpty {
		if page.Total < 0 && skip == 0 {
			page.Total = 0 // the first page is empty: so is the domain
		}
		return page, nil
	}
	if env.badResult != nil {
		return nil, providers.BadBody(Name, env.badResult)
	}
	page.Cost += c.perRow * float64(len(env.rows))
	rows := env.rows
	if drop < len(rows) {
		rows = rows[drop:]
	} else {
		rows = nil
	}
	if len(rows) > n {
		rows = rows[:n]
	}
	page.Items = make([]providers.Item, len(rows))
	for i, r := range rows {
		page.Items[i] = item(r)
	}
	return page, nil
}

// row holds the fields of a row that the normalised record needs.
type row struct {
	LinkingURL json.RawMessage `json:"linkingUrl"`
	Anchor     json.RawMessage `json:"anchor"`
	Webtitle   json.RawMessage `json:"webtitle"`
	LinkedURL  json.RawMessage `json:"linkedUrl"`
}

// item normalises one row; Raw keeps the row verbatim (for XML, the row as
// a JSON object of its elements). XOVI has no nofollow field: nil.
func item(raw json.RawMessage) providers.Item {
	it := providers.Item{Kind: KindBacklink, Raw: raw}
	var r row
	if providers.FirstByte(raw) != '{' || json.Unmarshal(raw, &r) != nil {
		return it
	}
	it.SourceURL = providers.JSONText(r.LinkingURL)
	it.TargetURL = providers.JSONText(r.LinkedURL)
	it.Anchor = providers.JSONText(r.Anchor)
	// Titles come HTML-escaped at least in XML answers (the seed's
	// "&amp;raquo; Business" is "&raquo; Business" once XML is decoded,
	// "» Business" in its JSON twin): entities are decoded so that both
	// formats give the same title. Raw keeps them as sent.
	if t := providers.JSONText(r.Webtitle); t != nil {
		it.SourceTitle = providers.Str(html.UnescapeString(*t))
	}
	return it
}
