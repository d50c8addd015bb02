package domaincrawler

import (
	"encoding/json"
	"fmt"
	"strconv"
	"time"

	"github.com/linkharvest/linkharvest/providers"
)

// envelope is the documented response:
// {"exportFinished":bool,"response":[…],"count":N,"range":{…},"status":200},
// with "next" on the export endpoints and "calendar" on the histograms.
// Every member is read leniently, one by one, so that an odd type in a
// member we do not need never costs a page.
type envelope struct {
	ExportFinished json.RawMessage `json:"exportFinished"`
	Response       json.RawMessage `json:"response"`
	Count          json.RawMessage `json:"count"`
	Next           json.RawMessage `json:"next"`
	Status         json.RawMessage `json:"status"`
}

// decode turns a 2xx body into a page. offset is the request's first row
// (it tells a page count from a total on the export endpoints).
func decode(e *endpoint, body []byte, offset int, acceptUnfinished bool, unfinishedWait time.Duration, retryAfter string) (*providers.Page, error) {
	var env envelope
	if err := providers.DecodeObject(Name, body, &env); err != nil {
		return nil, err
	}
	// `status` repeats the HTTP status in the body; a gateway that answers
	// 200 around an error must not pass for success.
	if st, ok := providers.JSONInt(env.Status); ok && st != 0 && (st < 200 || st > 299) {
		perr := providers.HTTPStatus(Name, st, retryAfter, errorMessage(body, st))
		perr.Code = "status " + strconv.Itoa(st)
		return nil, perr
	}
	if !acceptUnfinished && isFalse(env.ExportFinished) {
		wait := providers.ParseRetryAfter(retryAfter, time.Now())
		if wait <= 0 {
			wait = unfinishedWait
		}
		return nil, &providers.Error{Provider: Name, Class: providers.Pending, Code: "export unfinished",
			Message:    e.name + ": the vendor has not finished exporting this domain's data into its index (exportFinished: false)",
			RetryAfter: wait}
	}

	var rows []json.RawMessage
	switch providers.FirstByte(env.Response) {
	case 0, 'n': // absent or null: no rows
	case '[':
		if err := json.Unmarshal(env.Response, &rows); err != nil {
			return nil, providers.BadBody(Name, err)
		}
	case '{': // iscached answers one object
		rows = []json.RawMessage{env.Response}
	default:
		return nil, providers.BadBody(Name, fmt.Errorf("response is neither a list nor an object"))
	}

	var next string
	switch providers.FirstByte(env.Next) {
	case 0, 'n':
	case '"':
		if err := json.Unmarshal(env.Next, &next); err != nil {
			return nil, providers.BadBody(Name, err)
		}
	default:
		// A token we cannot read would end the export early, silently.
		return nil, providers.BadBody(Name, fmt.Errorf("next is not a string"))
	}

	page := &providers.Page{Items: make([]providers.Item, len(rows)), Total: -1, Next: next}
	for i, r := range rows {
		page.Items[i] = item(e.kind, r)
	}
	if n, ok := providers.JSONInt(env.Count); ok && n >= 0 {
		page.Total = n
		if e.paging == pageNext {
			page.Total = exportTotal(n, offset, len(rows), next != "")
		}
	}
	return page, nil
}

// exportTotal reads `count` on the export endpoints. The docs call it the
// total of the collection, but their one example shows "count": 1 beside a
// page of one row and a `next` token, i.e. the rows of this page. Both
// readings are taken: count is the total only when it agrees with what has
// been read so far (more than read while a token follows, exactly what was
// read on the last page); otherwise the total is unknown (-1) and the chain
// of tokens alone says when the export ends.
func exportTotal(count, offset, rows int, more bool) int {
	read := offset + rows
	if more && count > read || !more && count == read {
		return count
	}
	return -1
}

// backlinkRow holds the fields of a backlink row the normalised record
// needs (backlinks, exportbacklinks).
type backlinkRow struct {
	Backlinkpage json.RawMessage `json:"backlinkpage"`
	Linktarget   json.RawMessage `json:"linktarget"`
	Linktext     json.RawMessage `json:"linktext"`
	Title        json.RawMessage `json:"title"`
	Nofollow     json.RawMessage `json:"nofollow"`
}

// item normalises one row; Raw keeps the vendor's bytes verbatim.
func item(kind string, raw json.RawMessage) providers.Item {
	it := providers.Item{Kind: kind, Raw: raw}
	if kind != "backlink" {
		return it
	}
	var r backlinkRow
	if providers.FirstByte(raw) != '{' || json.Unmarshal(raw, &r) != nil {
		return it // not an object: nothing to normalise, the row is kept as is
	}
	it.SourceURL = providers.JSONText(r.Backlinkpage)
	it.TargetURL = providers.JSONText(r.Linktarget)
	it.Anchor = providers.JSONText(r.Linktext)
	it.SourceTitle = providers.JSONText(r.Title)
	it.Nofollow = providers.JSONFlag(r.Nofollow)
	return it
}

func isFalse(raw json.RawMessage) bool {
	b := providers.JSONFlag(raw)
	return b != nil && !*b
}

// errorMessage is the vendor's message from an error body. Its form is
// undocumented: a JSON object's message/error/…, a JSON string, or plain
// text are taken; HTML pages and empty bodies give the status text.
func errorMessage(body []byte, status int) string {
	msg := ""
	var obj map[string]json.RawMessage
	if json.Unmarshal(body, &obj) == nil {
		for _, k := range []string{"message", "error", "msg", "detail", "description", "errors", "response"} {
			if s := providers.JSONText(obj[k]); s != nil && *s != "" {
				msg = *s
				break
			}
		}
	} else if providers.FirstByte(body) == '"' {
		_ = json.Unmarshal(body, &msg)
	}
	return providers.ErrorText(msg, body, status)
}
