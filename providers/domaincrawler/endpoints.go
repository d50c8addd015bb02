package domaincrawler

import (
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/linkharvest/linkharvest/providers"
)

// pagingMode is how an endpoint's rows are reached.
type pagingMode int

const (
	pageNone   pagingMode = iota // one call answers everything
	pageOffset                   // limit (max 10,000) and offset
	pageNext                     // limit and the opaque `next` token of the previous page
	pageDates                    // one call for the from/to range (yyyyMMdd), histograms
)

// target is how the domain is sent.
type target int

const (
	targetURL  target = iota // url=<domain>
	targetURLs               // urls[0]=<domain>, urls[1..]= the `urls` param
)

// postForm is the documented POST alternative of an endpoint, used when
// the GET query would be too long for proxies and servers.
type postForm int

const (
	postNone   postForm = iota
	postURLs            // body: JSON array of URLs (backlinkshort)
	postObject          // body: {"url":…,"resources":[…]} (iscached)
)

// endpoint describes one endpoint of the Backlink API as the vendor documents it (docs/vendors.md, "DomainCrawler")
// it. The client, CheckParams and the sandbox are all driven by this table.
type endpoint struct {
	name   string // the name used with `enqueue --endpoint`
	path   string // the documented path, relative to the account's base URL
	kind   string // Item.Kind of its rows
	paging pagingMode
	target target
	post   postForm
	// order lists the documented order[] values; nil: no ordering.
	order []string
	// where lists the fields a where filter may name; nil: no filter.
	where []string
	// showgroup: srspread's binning switch. resources: iscached's list.
	showgroup, resources bool
	// Members of the documented envelope besides response and status;
	// the sandbox answers alike (next and calendar follow from paging).
	exportFinished, count, hasRange bool
	// limit is the rows a call asks for, when not maxLimit (pageSize).
	limit int
}

// maxLimit is the documented upper limit of `limit` ("10.000 rows").
const maxLimit = 10000

// exportPagesLimit is the rows a call of exportpages asks for. Each row is
// a page of the site with every internal and external link on it: a page
// with a hundred links is over 10 KB, and pages with a thousand are
// common (navigation, footers, sitemaps), so 10,000 rows could be a body of
// 100 MB or more, past the body cap, and the export of the domain would
// fail at its first page. 25 rows keep a call at about 0.3 MB at a hundred
// links a page and about 3 MB at a thousand, well under the client's body
// cap (maxBody, 16 MiB, sized with the worker's memory stage); more calls,
// none too big to read.
const exportPagesLimit = 25

// pageSize is the rows a paged endpoint asks for a call.
func (e *endpoint) pageSize() int {
	if e.limit > 0 {
		return e.limit
	}
	return maxLimit
}

// both returns each field ascending and descending (order[] accepts f and -f).
func both(fields ...string) []string {
	out := make([]string, 0, 2*len(fields))
	for _, f := range fields {
		out = append(out, f, "-"+f)
	}
	return out
}

func list(names ...string) []string { return names }

// backlinkWhere are the fields of backlinks rows a filter may name.
var backlinkWhere = list("nofollow", "extL", "city", "country", "ccode", "ip", "intL", "linktarget", "title",
	"blpcount", "backlinkpage", "pos", "sumL", "linktext", "tag", "insDate", "updDate", "cdate", "udate", "sr")

// endpoints is every documented endpoint (docs/vendors.md, "DomainCrawler"), "backlinks" first (the default),
// the others in the seed's order.
var endpoints = []endpoint{
	{name: "backlinks", kind: "backlink", paging: pageOffset, hasRange: true, exportFinished: true, count: true,
		order: both("extL", "intL", "sr", "pos", "nofollow"), where: backlinkWhere},
	{name: "linktexts", kind: "linktext", paging: pageOffset, hasRange: true, exportFinished: true, count: true,
		order: both("anchortext", "frequency", "refdoms"), where: list("anchortext", "frequency")},
	{name: "linkedpages", kind: "linked_page", paging: pageOffset, hasRange: true, exportFinished: true, count: true,
		order: both("linkedpage", "frequency", "refdoms"), where: list("linkedpage", "frequency")},
	// The seed lists "-tag" twice and "tag" not at all, an evident typo:
	// both directions are accepted.
	{name: "tagtypes", kind: "tag_type", paging: pageOffset, hasRange: true, exportFinished: true, count: true,
		order: both("tag", "frequency", "refdoms"), where: list("tag")},
	{name: "anabacklinks", kind: "backlink_count"},
	{name: "domainpopularity", kind: "domain_popularity"},
	{name: "ippopularity", kind: "ip_popularity"},
	{name: "linkratio", kind: "link_ratio"},
	{name: "linkspread", kind: "link_spread"},
	{name: "linktypes", kind: "link_type", count: true},
	{name: "linktextdistribution", kind: "linktext_distribution", exportFinished: true, count: true,
		order: both("anchortext", "refdoms", "frequency"), where: list("frequency")},
	{name: "pagedistribution", kind: "page_distribution", exportFinished: true, count: true,
		order: both("linkedpage", "refdoms", "frequency"), where: list("frequency")},
	{name: "edugovlinks", kind: "edugov_links", count: true},
	{name: "referringdomains", kind: "referring_domain", paging: pageOffset, hasRange: true, exportFinished: true, count: true,
		order: both("domain", "sr", "links"), where: list("ccode", "ip", "links", "sr")},
	{name: "iplist", kind: "referring_ip", paging: pageOffset, hasRange: true, exportFinished: true, count: true,
		order: both("ip", "ccode", "country", "city", "links"), where: list("ccode", "country", "city", "ip", "links")},
	{name: "tldlist", kind: "referring_tld", paging: pageOffset, hasRange: true, exportFinished: true, count: true,
		order: both("toplevel", "links", "diffdomains"), where: list("links")},
	{name: "geolocationshort", kind: "geolocation", paging: pageOffset, hasRange: true, count: true,
		order: both("ccode", "country", "links")},
	{name: "backlinks-histogram", kind: "backlinks_histogram", paging: pageDates, count: true},
	{name: "backlinkshort", kind: "url_backlink_summary", target: targetURLs, post: postURLs, count: true},
	{name: "newandlost-histogram", kind: "newandlost_histogram", paging: pageDates, count: true},
	{name: "outgoinghosts", kind: "outgoing_host", paging: pageOffset, hasRange: true, exportFinished: true, count: true,
		order: both("frequency", "host"), where: list("frequency", "host")},
	{name: "outgoinglinktexts", kind: "outgoing_linktext", paging: pageOffset, hasRange: true, exportFinished: true, count: true,
		order: both("frequency", "linktext"), where: list("frequency", "linktext")},
	// Documented with limit and offset, but its example has no range.
	{name: "outgoinglinkcount", kind: "outgoing_link_count", paging: pageOffset, count: true,
		order: both("frequency", "linktype")},
	{name: "outgoingtoppages", kind: "outgoing_top_page", paging: pageOffset, hasRange: true, exportFinished: true, count: true,
		order: both("extLinks", "webpage")},
	// Links from the domain's own pages to other sites: not backlinks of
	// the domain, so not kind "backlink" (that would mix them into the
	// domain's backlinks downstream).
	{name: "outgoinglinks", kind: "outgoing_link", paging: pageOffset, hasRange: true, exportFinished: true, count: true,
		order: both("cdate", "sr"), where: list("title", "backlinkpage", "linktarget", "linktext", "nofollow", "pos", "sr", "tag", "cdate")},
	{name: "anaurls", kind: "url_summary", target: targetURLs, count: true},
	{name: "sr", kind: "search_rank"},
	{name: "srspread", kind: "sr_spread", showgroup: true},
	{name: "exportbacklinks", kind: "backlink", paging: pageNext, count: true},
	{name: "exportpages", kind: "page", paging: pageNext, count: true, limit: exportPagesLimit},
	{name: "iscached", kind: "cache_status", post: postObject, resources: true},
}

var byName = func() map[string]*endpoint {
	m := make(map[string]*endpoint, len(endpoints))
	for i := range endpoints {
		e := &endpoints[i]
		if e.path == "" {
			e.path = "/" + e.name // every documented path is the endpoint's name
		}
		m[e.name] = e
	}
	return m
}()

func names() []string {
	out := make([]string, len(endpoints))
	for i, e := range endpoints {
		out[i] = e.name
	}
	return out
}

func lookup(name string) (*endpoint, error) {
	e, ok := byName[name]
	if !ok {
		return nil, fmt.Errorf("unknown endpoint %q (known: %s)", name, strings.Join(names(), ", "))
	}
	return e, nil
}

// options are an endpoint's parameters, checked and in the vendor's form.
type options struct {
	order     []string
	where     string
	from, to  string // yyyyMMdd
	showgroup *bool
	urls      []string // extra URLs after the domain (anaurls, backlinkshort)
	resources []string // iscached
}

// reserved parameters are set by the pipeline, never by a job.
var reserved = map[string]string{
	"url":    "the domain is sent as url",
	"limit":  "the page size is set by the pipeline",
	"offset": "offsets are set by the pipeline",
	"next":   "next tokens are chained by the pipeline",
}

// accepted lists the parameters an endpoint takes from a job.
func (e *endpoint) accepted() []string {
	var out []string
	if e.order != nil {
		out = append(out, "order")
	}
	if e.where != nil {
		out = append(out, "where")
	}
	if e.paging == pageDates {
		out = append(out, "from", "to")
	}
	if e.showgroup {
		out = append(out, "showgroup")
	}
	if e.target == targetURLs {
		out = append(out, "urls")
	}
	if e.resources {
		out = append(out, "resources")
	}
	return out
}

// parseParams checks a job's parameters against the endpoint's description.
func (e *endpoint) parseParams(params map[string]json.RawMessage) (*options, error) {
	o := &options{}
	if err := providers.EachParam(params, func(k string, raw json.RawMessage) error { return e.parseParam(o, k, raw) }); err != nil {
		return nil, err
	}
	if e.paging == pageDates {
		if o.from == "" {
			return nil, fmt.Errorf("parameter \"from\" is required for %s (yyyyMMdd)", e.name)
		}
		if o.to != "" && o.to < o.from {
			return nil, fmt.Errorf("parameter \"to\" (%s) is before \"from\" (%s)", o.to, o.from)
		}
	}
	if e.resources && len(o.resources) == 0 {
		return nil, fmt.Errorf("parameter \"resources\" is required for %s (a list of endpoint names)", e.name)
	}
	return o, nil
}

// parseParam checks one parameter and keeps its value in o.
func (e *endpoint) parseParam(o *options, k string, raw json.RawMessage) error {
	if why, ok := reserved[k]; ok {
		return fmt.Errorf("parameter %q is not accepted: %s", k, why)
	}
	if !slices.Contains(e.accepted(), k) {
		acc := "none"
		if a := e.accepted(); len(a) > 0 {
			acc = strings.Join(a, ", ")
		}
		return fmt.Errorf("unknown parameter %q for %s (accepted: %s)", k, e.name, acc)
	}
	var err error
	switch k {
	case "order":
		o.order, err = stringList(raw, false)
		if err == nil {
			err = checkOrder(e, o.order)
		}
	case "where":
		o.where, err = stringValue(raw)
		if err == nil {
			err = checkWhere(o.where, e.where)
		}
	case "from":
		o.from, err = dateValue(raw)
	case "to":
		o.to, err = dateValue(raw)
	case "showgroup":
		var b bool
		b, err = boolValue(raw)
		o.showgroup = &b
	case "urls":
		o.urls, err = stringList(raw, false)
	case "resources":
		o.resources, err = stringList(raw, true)
		if err == nil {
			err = checkResources(o.resources)
		}
	}
	if err != nil {
		return fmt.Errorf("parameter %q: %w", k, err)
	}
	return nil
}

// stringList reads a JSON list of non-empty strings; a single string is a
// list of one (comma-separated when commas is set, as in iscached's GET form).
func stringList(raw json.RawMessage, commas bool) ([]string, error) {
	var one string
	if err := json.Unmarshal(raw, &one); err == nil {
		if commas {
			return nonEmpty(strings.Split(one, ","))
		}
		return nonEmpty([]string{one})
	}
	var many []string
	if err := json.Unmarshal(raw, &many); err != nil {
		return nil, fmt.Errorf("want a string or a list of strings")
	}
	if len(many) == 0 {
		return nil, fmt.Errorf("empty list")
	}
	return nonEmpty(many)
}

func nonEmpty(vs []string) ([]string, error) {
	for i, v := range vs {
		vs[i] = strings.TrimSpace(v)
		if vs[i] == "" {
			return nil, fmt.Errorf("empty value")
		}
		if !utf8.ValidString(vs[i]) {
			return nil, fmt.Errorf("value is not UTF-8")
		}
	}
	return vs, nil
}

func stringValue(raw json.RawMessage) (string, error) {
	var s string
	if err := json.Unmarshal(raw, &s); err != nil {
		return "", fmt.Errorf("want a string")
	}
	return s, nil
}

func boolValue(raw json.RawMessage) (bool, error) {
	var b bool
	if err := json.Unmarshal(raw, &b); err == nil {
		return b, nil
	}
	var s string
	if err := json.Unmarshal(raw, &s); err == nil {
		switch s {
		case "true":
			return true, nil
		case "false":
			return false, nil
		}
	}
	return false, fmt.Errorf("want true or false")
}

// dateValue reads a yyyyMMdd date, as a string or as a number (an
// `enqueue --param …from=20200101` arrives as the JSON number 20200101).
func dateValue(raw json.RawMessage) (string, error) {
	s := strings.TrimSpace(string(raw))
	var str string
	if err := json.Unmarshal(raw, &str); err == nil {
		s = str
	}
	if err := checkDate(s); err != nil {
		return "", err
	}
	return s, nil
}

func checkDate(s string) error {
	if len(s) != 8 {
		return fmt.Errorf("%q: want a date as yyyyMMdd", s)
	}
	if _, err := time.Parse("20060102", s); err != nil {
		return fmt.Errorf("%q: want a date as yyyyMMdd", s)
	}
	return nil
}

func checkOrder(e *endpoint, order []string) error {
	for _, v := range order {
		if !slices.Contains(e.order, v) {
			return fmt.Errorf("%q is not a documented order of %s (one of: %s)", v, e.name, strings.Join(e.order, " "))
		}
	}
	return nil
}

func checkResources(rs []string) error {
	for _, r := range rs {
		for _, c := range r {
			if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-' || c == '_') {
				return fmt.Errorf("%q is not an endpoint name", r)
			}
		}
	}
	return nil
}

// whereOps are the documented filter operations.
var whereOps = []string{"lt", "le", "gt", "ge", "eq", "ne", "like", "notlike", "in"}

// checkWhere checks a filter "<field> <op> <value> [AND …]". Values are a
// single-quoted string (a doubled quote inside stands for one), a parenthesised list (for
// in; its form is undocumented, so its inside is not judged) or a bare
// token. The filter itself is sent verbatim.
func checkWhere(s string, fields []string) error {
	p := 0
	skip := func() {
		for p < len(s) && s[p] == ' ' {
			p++
		}
	}
	token := func() string {
		start := p
		for p < len(s) && s[p] != ' ' {
			p++
		}
		return s[start:p]
	}
	skip()
	if p == len(s) {
		return fmt.Errorf("empty filter")
	}
	for n := 1; ; n++ {
		field := token()
		if !slices.Contains(fields, field) {
			return fmt.Errorf("condition %d: field %q cannot be filtered (fields: %s)", n, field, strings.Join(fields, " "))
		}
		skip()
		op := token()
		if !slices.Contains(whereOps, op) {
			return fmt.Errorf("condition %d: operation %q is not one of %s", n, op, strings.Join(whereOps, " "))
		}
		skip()
		if p == len(s) {
			return fmt.Errorf("condition %d: no value", n)
		}
		switch s[p] {
		case '\'':
			p++
			for {
				i := strings.IndexByte(s[p:], '\'')
				if i < 0 {
					return fmt.Errorf("condition %d: unterminated quoted value", n)
				}
				p += i + 1
				if p < len(s) && s[p] == '\'' { // '' is a quote inside the value
					p++
					continue
				}
				break
			}
		case '(':
			depth, quoted := 0, false
			for ; p < len(s); p++ {
				switch c := s[p]; {
				case c == '\'':
					quoted = !quoted
				case quoted:
				case c == '(':
					depth++
				case c == ')':
					depth--
				}
				if depth == 0 {
					p++
					break
				}
			}
			if depth != 0 || quoted {
				return fmt.Errorf("condition %d: unbalanced value list", n)
			}
		default:
			token()
		}
		if p < len(s) && s[p] != ' ' {
			return fmt.Errorf("condition %d: unexpected %q after the value", n, s[p:])
		}
		skip()
		if p == len(s) {
			return nil
		}
		if and := token(); !strings.EqualFold(and, "AND") {
			return fmt.Errorf("condition %d: conditions are joined with AND, not %q", n, and)
		}
		skip()
		if p == len(s) {
			return fmt.Errorf("filter ends with AND")
		}
	}
}
