package xovi

import (
	"bytes"
	"encoding/xml"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/linkharvest/linkharvest/providers/sandbox"
)

// Mount serves links/getBacklinks in both of its forms, below the base
// URL given as the sandbox's root or as /api (the vendor's base ends in
// /api, and either base works with the sandbox):
//
//	GET {,/api}/links/getBacklinks/{key}/{domain}/{format}/{limit}/{skip}   (route form)
//	GET {,/api}/?service=links&method=getBacklinks&key=…&domain=…           (query form, QueryPath)
//
// Errors come as the vendor sends them, in the body with HTTP 200: the key
// `bad` gets "no permission", the key `nofunds` "cost error", a missing
// parameter "param missing", a malformed one "param invalid", limit >
// 1000 "maximum limit exeeded", a page past the last row "result empty".
// XOVI documents no rate limit: past the sandbox's limits nothing is
// refused, the calls are only counted. Under --fail: "internal error" in the body,
// HTTP 500, HTTP 503, a truncated body (JSON or XML) or a dropped
// connection.
//
// Data: a domain (lower case, www. dropped) has sandbox.Total(seed,
// "xovi", "backlinks", domain) rows in a fixed order, row i drawn from
// sandbox.Rand(seed, "xovi", "backlinks", domain, i); page skip of limit
// rows holds rows skip*limit to skip*limit+limit-1. resultCount is sent at
// the top level. JSON is written as PHP's json_encode does (non-ASCII as
// \uXXXX); in XML, titles are HTML-escaped before XML-escaping, as the
// seed's "&amp;raquo;" shows.
func Mount(s *sandbox.Server) {
	h := &sbHandler{m: s.Meter(Name)}
	for _, prefix := range []string{"", "/api"} {
		s.Handle("GET "+prefix+RoutePath, h)
		s.Handle("GET "+prefix+RoutePath+"/", h)
		s.Handle("GET "+prefix+"/{$}", h)
	}
}

type sbHandler struct{ m *sandbox.Meter }

// failKinds: internal error in the body, HTTP 500, HTTP 503, truncated
// body, dropped connection.
const failKinds = 5

// sbReq is a parsed request; the strings are as sent.
type sbReq struct {
	form, key, domain, format, limit, skip string
	badForm                                string // a message for a wrong service/method
}

func (h *sbHandler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	call := h.m.Begin()
	defer call.End()
	if err := h.m.Wait(r.Context()); err != nil {
		return
	}
	q := sbParse(r)
	format := q.format
	if format != FormatXML {
		format = FormatJSON
	}
	// The vendor documents no rate limit and no throttle answer, so the
	// sandbox's --rate and --concurrency only count (max_calls_in_window,
	// max_in_flight in /stats): what a client configured for XOVI sends
	// is measured, not refused with an answer XOVI never gives.
	kind, fail := h.m.Inject(failKinds)
	switch {
	case fail && kind == 0:
		sbWrite(w, http.StatusOK, format, sbError(q, "internal error"))
		return
	case fail && kind == 1:
		sbWrite(w, http.StatusInternalServerError, format, sbError(q, "internal error"))
		return
	case fail && kind == 2:
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		w.WriteHeader(http.StatusServiceUnavailable)
		w.Write([]byte("<html><head><title>503 Service Unavailable</title></head><body><h1>Service Unavailable</h1></body></html>"))
		return
	case fail && kind == 4:
		if sandbox.Drop(w) {
			return
		}
		sbWrite(w, http.StatusServiceUnavailable, format, sbError(q, "internal error"))
		return
	}
	ans := h.answer(q)
	if ans.code == 0 {
		h.m.Charge(price.For(len(ans.rows)))
	}
	if fail && kind == 3 {
		body := ans.encode(format)
		w.Header().Set("Content-Type", contentType(format))
		w.Write(body[:len(body)/2])
		return
	}
	sbWrite(w, http.StatusOK, format, ans)
}

// sbParse reads either form. In the route form the segments are
// path-escaped: the escaped path is split, then each segment unescaped.
func sbParse(r *http.Request) sbReq {
	path := r.URL.EscapedPath()
	path = strings.TrimPrefix(path, "/api")
	if rest, ok := strings.CutPrefix(path, RoutePath); ok {
		q := sbReq{form: "route"}
		segs := strings.Split(strings.TrimPrefix(rest, "/"), "/")
		dst := []*string{&q.key, &q.domain, &q.format, &q.limit, &q.skip}
		for i, s := range segs {
			if i >= len(dst) {
				break
			}
			if v, err := url.PathUnescape(s); err == nil {
				*dst[i] = v
			} else {
				*dst[i] = "\x00" // fails every check below
			}
		}
		return q
	}
	v := r.URL.Query()
	q := sbReq{form: "query", key: v.Get("key"), domain: v.Get("domain"), format: v.Get("format"), limit: v.Get("limit"), skip: v.Get("skip")}
	switch {
	case v.Get("service") == "" || v.Get("method") == "":
		q.badForm = "param missing"
	case v.Get("service") != "links" || v.Get("method") != "getBacklinks":
		q.badForm = "param invalid"
	}
	return q
}

// sbAnswer is an answer before encoding.
type sbAnswer struct {
	meta        [][2]string // apiMeta, in order
	code        int
	message     string
	resultCount int // -1: not sent
	rows        []*sbRow
}

type sbRow struct {
	LinkingURL  string
	Anchor      string
	LinksIntern int
	LinksExtern int
	Webtitle    string
	LinkedURL   string
}

// sbCodes are the apiErrorCode values sent with each message. The seed
// gives the messages only; the numbers are the sandbox's own.
var sbCodes = map[string]int{
	"0k.": 0, "result empty": 0, "maximum limit exeeded": 1, "no permission": 2, "internal error": 3,
	"param missing": 4, "param invalid": 5, "cost error": 6,
}

func sbError(q sbReq, msg string) *sbAnswer {
	return &sbAnswer{meta: sbMeta(q, ""), code: sbCodes[msg], message: msg, resultCount: -1}
}

func sbMeta(q sbReq, domain string) [][2]string {
	if domain == "" {
		domain = q.domain
	}
	return [][2]string{{"service", "links"}, {"method", "getBacklinks"}, {"domain", domain},
		{"format", q.format}, {"limit", q.limit}, {"skip", q.skip}}
}

func (h *sbHandler) answer(q sbReq) *sbAnswer {
	if q.badForm != "" {
		return sbError(q, q.badForm)
	}
	if q.key == "" || q.domain == "" {
		return sbError(q, "param missing")
	}
	if q.key == sandbox.BadCredential {
		return sbError(q, "no permission")
	}
	if q.key == sandbox.NoFunds {
		return sbError(q, "cost error") // the credit pool is used up
	}
	switch q.format {
	case "":
		q.format = FormatJSON
	case FormatJSON, FormatXML:
	default:
		return sbError(q, "param invalid")
	}
	domain, ok := sbDomain(q.domain)
	if !ok {
		return sbError(q, "param invalid")
	}
	limit, skip := 100, 0 // the documented defaults
	if q.limit != "" {
		n, ok := digits(q.limit)
		if !ok || n == 0 {
			return sbError(q, "param invalid")
		}
		if n > MaxLimit {
			return sbError(q, "maximum limit exeeded")
		}
		limit = n
	}
	if q.skip != "" {
		n, ok := digits(q.skip)
		if !ok {
			return sbError(q, "param invalid")
		}
		skip = n
	}
	q.limit, q.skip = strconv.Itoa(limit), strconv.Itoa(skip)
	seed := h.m.Options().Seed
	total := sandbox.Total(seed, Name, "backlinks", domain)
	a := &sbAnswer{meta: sbMeta(q, domain), resultCount: total}
	if skip >= (total+limit-1)/limit { // skip*limit >= total, without overflow
		a.code, a.message = sbCodes["result empty"], "result empty"
		return a
	}
	a.message = "0k."
	start := skip * limit
	end := min(start+limit, total)
	a.rows = make([]*sbRow, 0, end-start)
	for i := start; i < end; i++ {
		a.rows = append(a.rows, genRow(seed, domain, i))
	}
	return a
}

// digits reads (0-9)+, the documented pattern of limit and skip.
func digits(s string) (int, bool) {
	if s == "" || len(s) > 9 {
		return 0, false
	}
	for _, c := range s {
		if c < '0' || c > '9' {
			return 0, false
		}
	}
	n, err := strconv.Atoi(s)
	return n, err == nil
}

// sbDomain checks the documented pattern (www.)?(A-Z|a-z|0-9)+.(a-z)+
// (hyphens allowed, as real domains have them) and returns the domain
// whose data is served: lower case, www. dropped.
func sbDomain(d string) (string, bool) {
	d = strings.ToLower(strings.TrimSpace(d))
	if !strings.Contains(d, ".") || strings.HasPrefix(d, ".") || strings.HasSuffix(d, ".") {
		return "", false
	}
	for _, c := range d {
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-' || c == '.') {
			return "", false
		}
	}
	return strings.TrimPrefix(d, "www."), true
}

var (
	titleHeads = []string{"» ", "", "", "Fünf ", "Über ", "Tipps & Tricks: "}
	titleTails = []string{" …", "", " – Blog", " | Startseite", "", ""}
	anchors    = []string{"", "hier", "mehr lesen", "Startseite"}
)

// genRow is row i of a domain, like the seed's rows.
func genRow(seed int64, domain string, i int) *sbRow {
	r := sandbox.Rand(seed, Name, "backlinks", domain, strconv.Itoa(i))
	row := &sbRow{LinkingURL: sandbox.SourceURL(r, domain, i)}
	if a := r.IntN(len(anchors) + 2); a < len(anchors) {
		row.Anchor = anchors[a]
	} else {
		row.Anchor = domain
	}
	row.LinksIntern, row.LinksExtern = r.IntN(200), r.IntN(80)
	w := sandbox.Word(r)
	row.Webtitle = titleHeads[r.IntN(len(titleHeads))] + strings.ToUpper(w[:1]) + w[1:] + " " + sandbox.Word(r) +
		": " + sandbox.Word(r) + titleTails[r.IntN(len(titleTails))]
	row.LinkedURL = "http://www." + domain + "/"
	if r.IntN(3) == 0 {
		row.LinkedURL += sandbox.Word(r) + "/"
	}
	return row
}

func contentType(format string) string {
	if format == FormatXML {
		return "text/xml; charset=utf-8"
	}
	return "application/json"
}

func sbWrite(w http.ResponseWriter, status int, format string, a *sbAnswer) {
	w.Header().Set("Content-Type", contentType(format))
	w.WriteHeader(status)
	w.Write(a.encode(format))
}

func (a *sbAnswer) encode(format string) []byte {
	if format == FormatXML {
		return a.xml()
	}
	return a.json()
}

// json writes the answer in the documented key order.
func (a *sbAnswer) json() []byte {
	var b bytes.Buffer
	b.WriteString(`{"apiMeta":{`)
	for i, kv := range a.meta {
		if i > 0 {
			b.WriteByte(',')
		}
		phpString(&b, kv[0])
		b.WriteByte(':')
		if n, err := strconv.Atoi(kv[1]); err == nil && (kv[0] == "limit" || kv[0] == "skip") {
			b.WriteString(strconv.Itoa(n))
		} else {
			phpString(&b, kv[1])
		}
	}
	fmt.Fprintf(&b, `},"apiErrorCode":%d,"apiErrorMessage":`, a.code)
	phpString(&b, a.message)
	if a.resultCount >= 0 {
		fmt.Fprintf(&b, `,"resultCount":%d`, a.resultCount)
	}
	b.WriteString(`,"apiResult":[`)
	for i, r := range a.rows {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString(`{"linkingUrl":`)
		phpString(&b, r.LinkingURL)
		b.WriteString(`,"anchor":`)
		phpString(&b, r.Anchor)
		fmt.Fprintf(&b, `,"linksIntern":%d,"linksExtern":%d,"webtitle":`, r.LinksIntern, r.LinksExtern)
		phpString(&b, r.Webtitle)
		b.WriteString(`,"linkedUrl":`)
		phpString(&b, r.LinkedURL)
		b.WriteByte('}')
	}
	b.WriteString("]}")
	return b.Bytes()
}

// phpString writes s as PHP's json_encode does by default, non-ASCII as
// \uXXXX (the seed's "F\u00fcnf"), but with / left unescaped.
func phpString(b *bytes.Buffer, s string) {
	b.WriteByte('"')
	for _, c := range s {
		switch {
		case c == '"' || c == '\\':
			b.WriteByte('\\')
			b.WriteRune(c)
		case c == '\n':
			b.WriteString(`\n`)
		case c == '\r':
			b.WriteString(`\r`)
		case c == '\t':
			b.WriteString(`\t`)
		case c < 0x20 || c == utf8.RuneError:
			fmt.Fprintf(b, `\u%04x`, c)
		case c < 0x80:
			b.WriteRune(c)
		case c > 0xffff:
			c -= 0x10000
			fmt.Fprintf(b, `\u%04x\u%04x`, 0xd800+(c>>10), 0xdc00+(c&0x3ff))
		default:
			fmt.Fprintf(b, `\u%04x`, c)
		}
	}
	b.WriteByte('"')
}

// htmlEntities are the named entities PHP's htmlentities writes for the
// characters of the sandbox's titles.
var htmlEntities = strings.NewReplacer("&", "&amp;", "<", "&lt;", ">", "&gt;", `"`, "&quot;",
	"»", "&raquo;", "…", "&hellip;", "–", "&ndash;", "ü", "&uuml;", "Ü", "&Uuml;", "ä", "&auml;", "ö", "&ouml;")

// xml writes the answer as the JSON's twin: one element per key, rows as
// <item> elements.
func (a *sbAnswer) xml() []byte {
	var b bytes.Buffer
	b.WriteString("<?xml version=\"1.0\"?>\n<response>\n <apiMeta>\n")
	for _, kv := range a.meta {
		leaf(&b, "  ", kv[0], kv[1])
	}
	b.WriteString(" </apiMeta>\n")
	leaf(&b, " ", "apiErrorCode", strconv.Itoa(a.code))
	leaf(&b, " ", "apiErrorMessage", a.message)
	if a.resultCount >= 0 {
		leaf(&b, " ", "resultCount", strconv.Itoa(a.resultCount))
	}
	if len(a.rows) == 0 {
		b.WriteString(" <apiResult/>\n</response>\n")
		return b.Bytes()
	}
	b.WriteString(" <apiResult>\n")
	for _, r := range a.rows {
		b.WriteString("  <item>\n")
		leaf(&b, "   ", "linkingUrl", r.LinkingURL)
		leaf(&b, "   ", "anchor", r.Anchor)
		leaf(&b, "   ", "linksIntern", strconv.Itoa(r.LinksIntern))
		leaf(&b, "   ", "linksExtern", strconv.Itoa(r.LinksExtern))
		leaf(&b, "   ", "webtitle", htmlEntities.Replace(r.Webtitle))
		leaf(&b, "   ", "linkedUrl", r.LinkedURL)
		b.WriteString("  </item>\n")
	}
	b.WriteString(" </apiResult>\n</response>\n")
	return b.Bytes()
}

func leaf(b *bytes.Buffer, indent, name, value string) {
	b.WriteString(indent + "<" + name + ">")
	_ = xml.EscapeText(b, []byte(value))
	b.WriteString("</" + name + ">\n")
}
