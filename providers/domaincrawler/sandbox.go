package domaincrawler

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/linkharvest/linkharvest/providers"
	"github.com/linkharvest/linkharvest/providers/sandbox"
)

// Mount serves every endpoint on its documented path (GET; backlinkshort
// and iscached also take their documented POST forms), with HTTP Basic
// auth and the vendor's transient faults under --fail. The vendor
// documents no rate limit: past the sandbox's limits nothing is refused,
// the calls are only counted.
//
// Data: rows come from sandbox.Rand(seed, "domaincrawler", dataset, domain,
// row), where the dataset is the endpoint's name except that backlinks and
// exportbacklinks share "backlinks" (two ways to read the same backlinks).
// The sandbox checks order[] and where as the client does, but does not
// sort or filter: rows always come in the same order. exportpages pages
// carry Options.LinksPerPage links each. With Options.Unfinished N, the
// first N answers per endpoint and domain of the endpoints that have
// exportFinished say false and hold half of the rows (what the index
// holds so far).
func Mount(s *sandbox.Server) {
	m := s.Meter(Name)
	for i := range endpoints {
		e := &endpoints[i]
		h := &sbHandler{m: m, e: e}
		s.Handle("GET "+e.path, h)
		if e.post != postNone {
			s.Handle("POST "+e.path, h)
		}
	}
}

type sbHandler struct {
	m *sandbox.Meter
	e *endpoint
	// calls counts the answers per domain, for Options.Unfinished.
	calls sync.Map // domain -> *atomic.Int64
}

// finished reports whether this answer for domain says the export is
// done: the first Options.Unfinished answers per endpoint and domain say
// it is not.
func (h *sbHandler) finished(domain string) bool {
	n := h.m.Options().Unfinished
	if n <= 0 || !h.e.exportFinished {
		return true
	}
	v, _ := h.calls.LoadOrStore(domain, new(atomic.Int64))
	return v.(*atomic.Int64).Add(1) > int64(n)
}

func (h *sbHandler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	call := h.m.Begin()
	defer call.End()
	if err := h.m.Wait(r.Context()); err != nil {
		return
	}
	// The vendor documents no rate limit (its errors are 400, 401, 404,
	// 405 and 500), so the sandbox's --rate and --concurrency only count
	// (max_calls_in_window, max_in_flight in /stats).
	fault := h.m.StatusFault()
	if st := fault.Status(); st != 0 {
		sbError(w, st, "Internal Server Error – We had a problem with our server. Try again later.")
		return
	}
	if fault == sandbox.FaultDropped {
		if sandbox.Drop(w) {
			return
		}
		sbError(w, http.StatusServiceUnavailable, "Service Unavailable")
		return
	}
	user, pass, ok := r.BasicAuth()
	if !ok || user == "" || pass == "" || user == "bad" || pass == "bad" {
		w.Header().Set("WWW-Authenticate", `Basic realm="Backlink API"`)
		sbError(w, http.StatusUnauthorized, "Unauthorized – Login or password is wrong.")
		return
	}
	body, status := h.answer(r)
	if status == http.StatusOK {
		h.m.Charge(price.For(0))
	}
	if fault == sandbox.FaultTruncated {
		body = body[:len(body)/2] // truncated
	}
	if fault == sandbox.FaultMalformed {
		body = append([]byte(`{"exportFinished":true,"response":[{"nofollow":fal`), "se}}}]"...) // malformed
	}
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.WriteHeader(status)
	w.Write(body)
}

func sbError(w http.ResponseWriter, status int, msg string) {
	b, _ := json.Marshal(obj{{"status", status}, {"message", msg}})
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.WriteHeader(status)
	w.Write(b)
}

type badRequest string

// answer builds the response body of a call with valid credentials.
func (h *sbHandler) answer(r *http.Request) ([]byte, int) {
	env, err := h.respond(r)
	if err != "" {
		b, _ := json.Marshal(obj{{"status", 400}, {"message", "Bad Request – " + string(err)}})
		return b, http.StatusBadRequest
	}
	b, merr := env.MarshalJSON() // not json.Marshal: that would scan the whole page once more
	if merr != nil {
		b, _ = json.Marshal(obj{{"status", 500}, {"message", merr.Error()}})
		return b, http.StatusInternalServerError
	}
	return b, http.StatusOK
}

// sbReq is a parsed request.
type sbReq struct {
	seed      int64
	domain    string   // normalised url
	urls      []string // anaurls, backlinkshort
	from, to  string
	showgroup bool
	resources []string
}

func (h *sbHandler) respond(r *http.Request) (obj, badRequest) {
	e := h.e
	seed := h.m.Options().Seed
	q := r.URL.Query()
	req := sbReq{seed: seed}

	if r.Method == http.MethodPost {
		var err error
		switch e.post {
		case postURLs:
			err = json.NewDecoder(r.Body).Decode(&req.urls)
		case postObject:
			var b struct {
				URL       string   `json:"url"`
				Resources []string `json:"resources"`
			}
			if err = json.NewDecoder(r.Body).Decode(&b); err == nil {
				q.Set("url", b.URL)
				q.Set("resources", strings.Join(b.Resources, ","))
			}
		}
		if err != nil {
			return nil, "the POST data is not valid JSON"
		}
	}
	switch e.target {
	case targetURL:
		req.domain = sbDomain(q.Get("url"))
		if req.domain == "" {
			return nil, "url is required"
		}
	case targetURLs:
		if r.Method == http.MethodGet {
			req.urls = indexed(q, "urls")
		}
		if len(req.urls) == 0 {
			return nil, "urls[] is required"
		}
	}
	if e.order != nil {
		for _, o := range indexed(q, "order") {
			if !slices.Contains(e.order, o) {
				return nil, badRequest(fmt.Sprintf("order %q is not available", o))
			}
		}
	}
	if w := q.Get("where"); e.where != nil && w != "" {
		if err := checkWhere(w, e.where); err != nil {
			return nil, badRequest("where: " + err.Error())
		}
	}
	if e.paging == pageDates {
		req.from, req.to = q.Get("from"), q.Get("to")
		if req.to == "" {
			req.to = time.Now().UTC().Format("20060102")
		}
		if checkDate(req.from) != nil || checkDate(req.to) != nil || req.to < req.from {
			return nil, "from (required) and to must be dates as yyyyMMdd, from not after to"
		}
	}
	if e.showgroup {
		req.showgroup = q.Get("showgroup") == "true" || q.Get("showgroup") == "1"
	}
	if e.resources {
		for _, s := range strings.Split(q.Get("resources"), ",") {
			if s = strings.TrimSpace(s); s != "" {
				req.resources = append(req.resources, s)
			}
		}
		if len(req.resources) == 0 {
			return nil, "resources is required"
		}
	}

	g := sbGens[e.name]
	switch e.paging {
	case pageOffset, pageNext:
		return h.listPage(q, &req, g)
	case pageDates:
		rows, calendar := g.dates(&req, e.name)
		return obj{{"calendar", calendar}, {"response", rows}, {"count", len(rows)}, {"status", 200}}, ""
	}
	resp := g.all(&req)
	env := obj{}
	if e.exportFinished {
		env = append(env, kv{"exportFinished", h.finished(req.domain)})
	}
	env = append(env, kv{"response", resp})
	if e.count {
		if rows, ok := resp.([]any); ok {
			env = append(env, kv{"count", len(rows)})
		}
	}
	if !e.resources { // iscached's answer has no status
		env = append(env, kv{"status", 200})
	}
	return env, ""
}

// listPage answers the limit/offset and next-token endpoints.
func (h *sbHandler) listPage(q url.Values, req *sbReq, g sbGen) (obj, badRequest) {
	e := h.e
	limit, offset := 50, 0 // the documented defaults
	if v := q.Get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > maxLimit {
			return nil, badRequest(fmt.Sprintf("limit must be 1 to %d", maxLimit))
		}
		limit = n
	}
	if e.paging == pageOffset {
		if v := q.Get("offset"); v != "" {
			n, err := strconv.Atoi(v)
			if err != nil || n < 0 {
				return nil, "offset must be 0 or more"
			}
			offset = n
		}
	} else if v := q.Get("next"); v != "" {
		n, ok := parseNext(req.seed, e.name, req.domain, v)
		if !ok {
			return nil, "next is not a valid token"
		}
		offset = n
	}
	total := g.total(req.seed, req.domain)
	done := true
	if e.exportFinished {
		if done = h.finished(req.domain); !done {
			total /= 2 // what the index holds so far
		}
	}
	end := min(offset+limit, total)
	rows := make([]any, 0, max(end-offset, 0))
	links := h.m.Options().LinksPerPage
	if links <= 0 {
		links = sandbox.DefaultLinksPerPage
	}
	for i := offset; i < end; i++ {
		if e.name == "exportpages" {
			rows = append(rows, exportPage(req.seed, req.domain, i, links))
			continue
		}
		rows = append(rows, g.row(req.seed, req.domain, i))
	}
	if e.paging == pageNext {
		env := obj{}
		if end < total {
			env = append(env, kv{"next", makeNext(req.seed, e.name, req.domain, end)})
		}
		// As in the docs' only example, count is this page's rows.
		return append(env, kv{"response", rows}, kv{"count", len(rows)}, kv{"status", 200}), ""
	}
	env := obj{}
	if e.exportFinished {
		env = append(env, kv{"exportFinished", done})
	}
	env = append(env, kv{"response", rows}, kv{"count", total})
	if e.hasRange {
		env = append(env, kv{"range", obj{{"offset", offset}, {"limit", limit}}})
	}
	return append(env, kv{"status", 200}), ""
}

// indexed collects name[0], name[1], … and name[] values, in index order.
func indexed(q url.Values, name string) []string {
	var out []string
	for i := 0; ; i++ {
		v, ok := q[name+"["+strconv.Itoa(i)+"]"]
		if !ok {
			break
		}
		out = append(out, v...)
	}
	return append(out, q[name+"[]"]...)
}

// sbDomain reduces a url parameter (URL, host or domain, maybe with a
// scheme) to the host whose data is served.
func sbDomain(u string) string {
	u = strings.ToLower(strings.TrimSpace(u))
	if _, rest, ok := strings.Cut(u, "://"); ok {
		u = rest
	}
	u, _, _ = strings.Cut(u, "/")
	return strings.TrimPrefix(u, "www.")
}

// Next tokens are opaque to clients: base64url of endpoint, domain and
// position, with a check value so that a garbled or foreign token is refused.
func makeNext(seed int64, endpoint, domain string, offset int) string {
	pos := strconv.Itoa(offset)
	mac := sandbox.Hash(seed, "next", endpoint, domain, pos)
	return base64.RawURLEncoding.EncodeToString(fmt.Appendf(nil, "%s|%x", pos, mac))
}

func parseNext(seed int64, endpoint, domain, tok string) (int, bool) {
	b, err := base64.RawURLEncoding.DecodeString(tok)
	if err != nil {
		return 0, false
	}
	pos, mac, ok := bytes.Cut(b, []byte("|"))
	if !ok {
		return 0, false
	}
	n, err := strconv.Atoi(string(pos))
	if err != nil || n < 0 || string(mac) != fmt.Sprintf("%x", sandbox.Hash(seed, "next", endpoint, domain, string(pos))) {
		return 0, false
	}
	return n, true
}

// obj is a JSON object that keeps its keys in the documented order.
type obj []kv

type kv struct {
	k string
	v any
}

func (o obj) MarshalJSON() ([]byte, error) {
	var b bytes.Buffer
	enc := json.NewEncoder(&b) // writes each value in place, no copy of a page of rows
	put := func(v any) error {
		if err := enc.Encode(v); err != nil {
			return err
		}
		b.Truncate(b.Len() - 1) // Encode's newline: keep the body compact, as a vendor's is
		return nil
	}
	b.WriteByte('{')
	for i, f := range o {
		if i > 0 {
			b.WriteByte(',')
		}
		if err := put(f.k); err != nil {
			return nil, err
		}
		b.WriteByte(':')
		if err := put(f.v); err != nil {
			return nil, err
		}
	}
	b.WriteByte('}')
	return b.Bytes(), nil
}

// sbGen makes an endpoint's data. List endpoints (limit/offset, next) have
// total and row; single-call endpoints all; histograms dates.
type sbGen struct {
	total func(seed int64, domain string) int
	row   func(seed int64, domain string, i int) any
	all   func(req *sbReq) any
	dates func(req *sbReq, endpoint string) (rows []any, calendar []int)
}

func rnd(seed int64, dataset, domain string, i int) *rand.Rand {
	return sandbox.Rand(seed, Name, dataset, domain, strconv.Itoa(i))
}

func totalOf(dataset string) func(int64, string) int {
	return func(seed int64, domain string) int { return sandbox.Total(seed, Name, dataset, domain) }
}

// hashedTotal is 1 to max rows, for lists drawn from a fixed table.
func hashedTotal(dataset string, max int) func(int64, string) int {
	return func(seed int64, domain string) int {
		return 1 + int(sandbox.Hash(seed, Name, dataset, domain)%uint64(max))
	}
}

func fixedTotal(n int) func(int64, string) int { return func(int64, string) int { return n } }

type place struct{ ccode, country, city string }

var places = []place{{"SE", "Sweden", "Stockholm"}, {"DE", "Germany", "Hebertsfelden"}, {"US", "United States", ""},
	{"GB", "United Kingdom", "London"}, {"FR", "France", "Paris"}, {"NL", "Netherlands", "Amsterdam"},
	{"PL", "Poland", "Warsaw"}, {"JP", "Japan", "Tokyo"}, {"BR", "Brazil", "São Paulo"}, {"CA", "Canada", "Toronto"},
	{"ES", "Spain", "Madrid"}, {"IT", "Italy", "Rome"}, {"FI", "Finland", "Helsinki"}, {"NO", "Norway", "Oslo"}}

var tlds = []string{"org", "com", "net", "de", "se", "uk", "io", "info", "nl", "fr", "pl", "jp",
	"br", "ca", "es", "it", "fi", "no", "ru", "ch", "at", "be", "dk", "eu"}

var tags = []string{"a", "aimg", "iframe", "301", "302"}

func pct(r *rand.Rand) float64 { return float64(r.IntN(10000)) / 100 }
func sr(r *rand.Rand) float64  { return float64(r.IntN(1000)) / 100 }
func ip(r *rand.Rand) string {
	return fmt.Sprintf("%d.%d.%d.%d", 1+r.IntN(222), r.IntN(256), r.IntN(256), 1+r.IntN(254))
}

// uniqueIP is distinct for every row index below 2^24.
func uniqueIP(i int) string { return fmt.Sprintf("10.%d.%d.%d", i>>16&255, i>>8&255, i&255) }

var epoch = time.Date(2019, 1, 1, 0, 0, 0, 0, time.UTC)

func day(r *rand.Rand) time.Time { return epoch.AddDate(0, 0, r.IntN(2000)) }

// backlink is one generated backlink, read by backlinks and exportbacklinks.
type backlink struct {
	Nofollow     bool    `json:"nofollow"`
	Country      string  `json:"country"`
	Nr           int     `json:"nr,omitempty"`
	ExtL         int     `json:"extL"`
	InsDate      string  `json:"insDate"`
	City         string  `json:"city"`
	IP           string  `json:"ip"`
	Active       *bool   `json:"active,omitempty"`
	IntL         int     `json:"intL"`
	Linktarget   string  `json:"linktarget"`
	Title        string  `json:"title"`
	UpdDate      string  `json:"updDate"`
	Ccode        string  `json:"ccode"`
	Blpcount     int     `json:"blpcount"`
	Cdate        string  `json:"cdate,omitempty"`
	Backlinkpage string  `json:"backlinkpage"`
	Pos          int     `json:"pos"`
	SumL         int     `json:"sumL"`
	Linktext     string  `json:"linktext"`
	Tag          string  `json:"tag"`
	Udate        string  `json:"udate,omitempty"`
	Sr           float64 `json:"sr"`
}

var anchors = []string{"", "click here", "read more", "homepage"}

func genBacklink(seed int64, domain string, i int, export bool) any {
	r := rnd(seed, "backlinks", domain, i)
	p := places[r.IntN(len(places))]
	ins := day(r)
	upd := ins.AddDate(0, 0, r.IntN(400))
	ext, in := r.IntN(120), r.IntN(120)
	b := &backlink{
		Nofollow: r.IntN(10) == 0, Country: p.country, City: p.city, Ccode: p.ccode, IP: ip(r),
		ExtL: ext, IntL: in, SumL: ext + in, InsDate: ins.Format("20060102"), UpdDate: upd.Format("20060102"),
		Backlinkpage: sandbox.SourceURL(r, domain, i),
		Linktarget:   fmt.Sprintf("https://%s/%s/", domain, sandbox.Word(r)),
		Title:        fmt.Sprintf("%s %s | %s", sandbox.Word(r), sandbox.Word(r), sandbox.Word(r)),
		Blpcount:     1 + r.IntN(3), Pos: 1 + r.IntN(200), Tag: tags[r.IntN(len(tags))], Sr: sr(r),
	}
	if a := r.IntN(len(anchors) + 2); a < len(anchors) {
		b.Linktext = anchors[a]
	} else {
		b.Linktext = domain
	}
	if export {
		b.Active = providers.Bool(r.IntN(20) != 0)
	} else {
		b.Nr = i + 1 // "Row index number + offset", 1-based as in the example
		b.Cdate, b.Udate = b.InsDate, b.UpdDate
	}
	return b
}

// word2 is two words, for titles and anchor texts.
func word2(r *rand.Rand) string { return sandbox.Word(r) + " " + sandbox.Word(r) }

// distribution is the top nine and the rest ("others"), percentages summing to about 100.
func distribution(seed int64, domain, dataset, key string, value func(r *rand.Rand, i int) string) []any {
	rows := make([]any, 0, 10)
	left := 100.0
	for i := 0; i < 10; i++ {
		r := rnd(seed, dataset, domain, i)
		share := float64(int(left*float64(10+r.IntN(30)))) / 100
		if i == 9 {
			share = float64(int(left*100)) / 100
		}
		left -= share
		v := "others"
		if i < 9 {
			v = value(r, i)
		}
		rows = append(rows, obj{{key, v}, {"percentage", share}, {"refdoms", r.IntN(300)}, {"frequency", 1 + r.IntN(500)}})
	}
	return rows
}

// sbGens makes each endpoint's rows like the seed's examples.
var sbGens = map[string]sbGen{
	"backlinks": {total: totalOf("backlinks"),
		row: func(s int64, d string, i int) any { return genBacklink(s, d, i, false) }},
	"exportbacklinks": {total: totalOf("backlinks"),
		row: func(s int64, d string, i int) any { return genBacklink(s, d, i, true) }},
	"linktexts": {total: totalOf("linktexts"), row: func(s int64, d string, i int) any {
		r := rnd(s, "linktexts", d, i)
		return obj{{"percentage", pct(r)}, {"refdoms", r.IntN(300)}, {"anchortext", fmt.Sprintf("%s %d", word2(r), i)},
			{"type", []string{"OnlyImages", "OnlyText", "MostlyImages", "MostlyText"}[r.IntN(4)]}, {"frequency", 1 + r.IntN(2000)}}
	}},
	"linkedpages": {total: totalOf("linkedpages"), row: func(s int64, d string, i int) any {
		r := rnd(s, "linkedpages", d, i)
		return obj{{"linkedpage", fmt.Sprintf("https://www.%s/%s-%d/", d, sandbox.Word(r), i)}, {"percentage", pct(r)},
			{"refdoms", r.IntN(300)}, {"frequency", 1 + r.IntN(1000)}}
	}},
	"tagtypes": {total: fixedTotal(len(tags)), row: func(s int64, d string, i int) any {
		r := rnd(s, "tagtypes", d, i)
		return obj{{"tag", tags[i]}, {"frequency", r.IntN(2000)}}
	}},
	"referringdomains": {total: totalOf("referringdomains"), row: func(s int64, d string, i int) any {
		r := rnd(s, "referringdomains", d, i)
		p := places[r.IntN(len(places))]
		return obj{{"dsCount", i + 1}, {"ccode", p.ccode}, {"domain", fmt.Sprintf("%s-%d.example.net", sandbox.Word(r), i)},
			{"ip", ip(r)}, {"links", 1 + r.IntN(2000)}, {"ip_count_additional", r.IntN(3)}, {"sr", sr(r)}}
	}},
	"iplist": {total: totalOf("iplist"), row: func(s int64, d string, i int) any {
		r := rnd(s, "iplist", d, i)
		p := places[r.IntN(len(places))]
		return obj{{"ccode", p.ccode}, {"country", p.country}, {"city", p.city}, {"ip", uniqueIP(i)},
			{"percentage", pct(r)}, {"links", 1 + r.IntN(2000)}}
	}},
	"tldlist": {total: hashedTotal("tldlist", len(tlds)), row: func(s int64, d string, i int) any {
		r := rnd(s, "tldlist", d, i)
		return obj{{"diffdomains", 1 + r.IntN(50)}, {"toplevel", tlds[i]}, {"percentage", pct(r)}, {"links", 1 + r.IntN(3000)}}
	}},
	"geolocationshort": {total: hashedTotal("geolocationshort", len(places)), row: func(s int64, d string, i int) any {
		r := rnd(s, "geolocationshort", d, i)
		return obj{{"ccode", places[i].ccode}, {"country", places[i].country}, {"percentage", pct(r)}, {"links", 1 + r.IntN(1000)}}
	}},
	"outgoinghosts": {total: totalOf("outgoinghosts"), row: func(s int64, d string, i int) any {
		r := rnd(s, "outgoinghosts", d, i)
		return obj{{"host", fmt.Sprintf("www.%s-%d.example.com", sandbox.Word(r), i)}, {"frequency", 1 + r.IntN(50)}}
	}},
	"outgoinglinktexts": {total: totalOf("outgoinglinktexts"), row: func(s int64, d string, i int) any {
		r := rnd(s, "outgoinglinktexts", d, i)
		return obj{{"linktext", fmt.Sprintf("%s %d", word2(r), i)}, {"frequency", 1 + r.IntN(50)}}
	}},
	"outgoinglinkcount": {total: fixedTotal(3), row: func(s int64, d string, i int) any {
		r := rnd(s, "outgoinglinkcount", d, 0)
		pages, ext, in := 1+r.IntN(100), r.IntN(1000), r.IntN(1000)
		freq := []int{ext + in, ext, in}[i]
		return obj{{"avg", freq / pages}, {"pages", pages}, {"linktype", []string{"all", "extLinks", "intLinks"}[i]}, {"frequency", freq}}
	}},
	"outgoingtoppages": {total: totalOf("outgoingtoppages"), row: func(s int64, d string, i int) any {
		r := rnd(s, "outgoingtoppages", d, i)
		return obj{{"webpage", fmt.Sprintf("%s/%s-%d/", d, sandbox.Word(r), i)}, {"extLinks", 1 + r.IntN(20)}}
	}},
	"outgoinglinks": {total: totalOf("outgoinglinks"), row: func(s int64, d string, i int) any {
		r := rnd(s, "outgoinglinks", d, i)
		return obj{{"backlinkpage", fmt.Sprintf("%s/%s-%d/", d, sandbox.Word(r), i)},
			{"title", fmt.Sprintf("%s | %s", word2(r), d)}, {"linktarget", fmt.Sprintf("www.%s.example.com/%s", sandbox.Word(r), sandbox.Word(r))},
			{"linktext", sandbox.Word(r)}, {"tag", tags[r.IntN(len(tags))]}, {"nofollow", r.IntN(5) == 0},
			{"pos", 1 + r.IntN(100)}, {"sr", sr(r)}, {"cdate", atoi(day(r).Format("20060102"))}}
	}},
	"exportpages": {total: totalOf("exportpages"), row: func(s int64, d string, i int) any {
		return exportPage(s, d, i, sandbox.DefaultLinksPerPage)
	}},

	"anabacklinks": {all: func(q *sbReq) any {
		return []any{obj{{"backlinks", sandbox.Total(q.seed, Name, "backlinks", q.domain)}}}
	}},
	"domainpopularity": {all: func(q *sbReq) any {
		return []any{obj{{"domainpopularity", sandbox.Total(q.seed, Name, "referringdomains", q.domain)}}}
	}},
	"ippopularity": {all: func(q *sbReq) any {
		n := sandbox.Total(q.seed, Name, "iplist", q.domain)
		return []any{obj{{"ip", n}, {"class_a", n * 9 / 10}, {"class_b", n * 8 / 10}, {"class_c", n * 7 / 10}, {"class_d", 0}, {"class_e", 0}}}
	}},
	"linkratio": {all: func(q *sbReq) any {
		n := sandbox.Total(q.seed, Name, "backlinks", q.domain)
		home := n / 10
		return []any{obj{{"homelinks", home}}, obj{{"deeplinks", n - home}}}
	}},
	"linkspread": {all: func(q *sbReq) any {
		n := sandbox.Total(q.seed, Name, "backlinks", q.domain)
		nf := n / 10
		return []any{obj{{"follow", n - nf}}, obj{{"nofollow", nf}}}
	}},
	"linktypes": {all: func(q *sbReq) any {
		n := sandbox.Total(q.seed, Name, "backlinks", q.domain)
		img := n * 4 / 10
		return []any{obj{{"linktype", "text"}, {"links", n - img}}, obj{{"linktype", "image"}, {"links", img}}}
	}},
	"linktextdistribution": {all: func(q *sbReq) any {
		return distribution(q.seed, q.domain, "linktextdistribution", "anchortext", func(r *rand.Rand, i int) string {
			return fmt.Sprintf("%s %d", word2(r), i)
		})
	}},
	"pagedistribution": {all: func(q *sbReq) any {
		return distribution(q.seed, q.domain, "pagedistribution", "linkedpage", func(r *rand.Rand, i int) string {
			return fmt.Sprintf("www.%s-%d.example.com/", sandbox.Word(r), i)
		})
	}},
	"edugovlinks": {all: func(q *sbReq) any {
		r := rnd(q.seed, "edugovlinks", q.domain, 0)
		e, g := r.IntN(10), r.IntN(5)
		return []any{obj{{"refdoms", e}, {"links", e + r.IntN(10)}, {"type", "edu"}}, obj{{"refdoms", g}, {"links", g + r.IntN(5)}, {"type", "gov"}}}
	}},
	"backlinkshort": {all: func(q *sbReq) any {
		rows := make([]any, len(q.urls))
		for i, u := range q.urls {
			d := sbDomain(u)
			rows[i] = obj{{"backlinks", sandbox.Total(q.seed, Name, "backlinks", d)}, {"refdoms", sandbox.Total(q.seed, Name, "referringdomains", d)},
				{"url", u}, {"sr", sr(rnd(q.seed, "sr", d, 0))}}
		}
		return rows
	}},
	"anaurls": {all: func(q *sbReq) any {
		rows := make([]any, len(q.urls))
		for i, u := range q.urls {
			d := sbDomain(u)
			rows[i] = obj{{"backlinks", sandbox.Total(q.seed, Name, "backlinks", d)}, {"refdoms", sandbox.Total(q.seed, Name, "referringdomains", d)}, {"url", u}}
		}
		return rows
	}},
	"sr": {all: func(q *sbReq) any { return []any{obj{{"sr", sr(rnd(q.seed, "sr", q.domain, 0))}}} }},
	"srspread": {all: func(q *sbReq) any {
		bins := []string{"0", "1", "2", "3", "4", "5", "6", "7", "8", "9", "10"}
		if q.showgroup {
			bins = []string{"0", "1-2", "3-4", "5-6", "7-8", "9-10"}
		}
		left := sandbox.Total(q.seed, Name, "backlinks", q.domain)
		rows := make([]any, len(bins))
		for i, b := range bins {
			n := left
			if i < len(bins)-1 {
				n = left * (50 + rnd(q.seed, "srspread", q.domain, i).IntN(50)) / 100
			}
			left -= n
			rows[i] = obj{{"links", n}, {"sr", b}}
		}
		return rows
	}},
	"iscached": {all: func(q *sbReq) any {
		o := obj{}
		for _, res := range q.resources {
			o = append(o, kv{res, true})
		}
		return o
	}},

	"backlinks-histogram": {dates: histogram(func(r *rand.Rand, date int) any {
		return obj{{"date", date}, {"urls", r.IntN(3000)}, {"domains", r.IntN(300)}}
	})},
	"newandlost-histogram": {dates: histogram(func(r *rand.Rand, date int) any {
		return obj{{"date", date}, {"urls", obj{{"new", r.IntN(50)}, {"lost", r.IntN(50)}}},
			{"domains", obj{{"new", r.IntN(20)}, {"lost", r.IntN(20)}}}}
	})},
}

// maxDailyPoints: longer ranges get one point a month, so that a range of
// decades stays a small answer.
const maxDailyPoints = 366

// histogram returns one row per day of the range (per month past a year);
// a date's row depends only on the date, not on the range asked for.
func histogram(row func(r *rand.Rand, date int) any) func(*sbReq, string) ([]any, []int) {
	return func(q *sbReq, endpoint string) ([]any, []int) {
		from, _ := time.Parse("20060102", q.from)
		to, _ := time.Parse("20060102", q.to)
		monthly := to.Sub(from) >= maxDailyPoints*24*time.Hour
		var rows []any
		var cal []int
		for d := from; !d.After(to); {
			date := atoi(d.Format("20060102"))
			rows = append(rows, row(sandbox.Rand(q.seed, Name, endpoint, q.domain, strconv.Itoa(date)), date))
			cal = append(cal, date)
			if monthly {
				d = time.Date(d.Year(), d.Month()+1, 1, 0, 0, 0, 0, time.UTC)
			} else {
				d = d.AddDate(0, 0, 1)
			}
		}
		return rows, cal
	}
}

func atoi(s string) int {
	n, _ := strconv.Atoi(s)
	return n
}

// exportPage is row i of exportpages: a page of the domain carrying every
// link on it, as the docs' example shows them (intL and extL, each link
// with nofollow, pos, anchor, tag and url), links in all: about seven in
// ten internal, in order of appearance. The page's own fields come first
// from the row's generator, so the number of links changes only the lists.
func exportPage(s int64, d string, i, links int) obj {
	r := rnd(s, "exportpages", d, i)
	page := fmt.Sprintf("https://%s/%s-%d/", d, sandbox.Word(r), i)
	p := places[r.IntN(len(places))]
	info := obj{{"ccode", p.ccode}, {"charset", "utf-8"}, {"insDate", day(r).Format("20060102")}, {"ip", ip(r)},
		{"description", word2(r)}, {"content-type", "text/html"}, {"title", word2(r)}, {"http-code", 200},
		{"url", page}, {"sr", sr(r)}}
	intL, extL := make([]obj, 0, links*7/10+1), make([]obj, 0, links*3/10+1)
	for pos := 1; pos <= links; pos++ {
		link := obj{{"nofollow", r.IntN(5) == 0}, {"pos", pos}, {"anchor", word2(r)}, {"tag", "a"}}
		if r.IntN(10) < 7 {
			intL = append(intL, append(link, kv{"url", fmt.Sprintf("https://%s/%s/%s-%d/", d, sandbox.Word(r), sandbox.Word(r), pos)}))
		} else {
			extL = append(extL, append(link, kv{"url", fmt.Sprintf("https://www.%s-%d.example.com/%s/", sandbox.Word(r), r.IntN(1000), sandbox.Word(r))}))
		}
	}
	return obj{{"extL", extL}, {"intL", intL}, {"info", info}}
}
