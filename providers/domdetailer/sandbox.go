package domdetailer

import (
	"encoding/json"
	"fmt"
	"math"
	"net/http"
	"strconv"
	"strings"

	"github.com/linkharvest/linkharvest/providers/sandbox"
)

// Mount serves GET /api2/getBacklinks.php as the vendor documents it:
// apikey, app and domain required, onePerDomain optional (0 or 1); 401 for
// a missing key or the key `bad`, 402 (out of credits) for the key
// `nofunds`, 400 for a missing or invalid parameter,
// HTTP 429 with Retry-After: 1 past the sandbox's limits, and under --fail
// the vendor's transient faults (500, 502, 503, a truncated body, a
// malformed body, a dropped connection).
//
// Data: a domain has sandbox.Total(seed, "domdetailer", "backlinks",
// domain) backlinks, of which one call returns the first 5,000 (the
// vendor's cap) in a fixed order, row i drawn from sandbox.Rand(seed,
// "domdetailer", "backlinks", domain, i). onePerDomain keeps the first row
// of each source host, in the same order. The metrics describe the whole
// profile: links_in = the total, the follow/nofollow split counted over the
// sample (scaled to the total past 5,000), ref_domains = the sample's
// distinct source hosts; with at most 5,000 rows they agree exactly with
// the rows served.
func Mount(s *sandbox.Server) {
	s.Handle("GET "+Path, &sbHandler{m: s.Meter(Name)})
}

type sbHandler struct{ m *sandbox.Meter }

func (h *sbHandler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	call := h.m.Begin()
	defer call.End()
	if err := h.m.Wait(r.Context()); err != nil {
		return
	}
	if call.OverRate || call.OverConcurrency {
		// The seed documents the 429, not its body; answered in the
		// documented error shape.
		h.m.Throttled()
		w.Header().Set("Retry-After", "1")
		sbError(w, http.StatusTooManyRequests, "too_many_requests", "Too many requests, slow down")
		return
	}
	fault := h.m.StatusFault()
	switch {
	case fault.Status() != 0:
		sbError(w, fault.Status(), "server_error", "Temporary server error, please retry")
		return
	case fault == sandbox.FaultDropped:
		if sandbox.Drop(w) {
			return
		}
		sbError(w, http.StatusServiceUnavailable, "server_error", "Service unavailable")
		return
	}
	q := r.URL.Query()
	key := q.Get("apikey")
	if key == "" {
		sbError(w, http.StatusUnauthorized, "invalid_api_key", "API key not found or inactive")
		return
	}
	for _, p := range []string{"app", "domain"} {
		if strings.TrimSpace(q.Get(p)) == "" {
			sbError(w, http.StatusBadRequest, "missing_parameter", p+" is required")
			return
		}
	}
	domain, ok := sbDomain(q.Get("domain"))
	if !ok {
		sbError(w, http.StatusBadRequest, "invalid_parameter", "domain is invalid")
		return
	}
	one := false
	switch q.Get("onePerDomain") {
	case "", "0":
	case "1":
		one = true
	default:
		sbError(w, http.StatusBadRequest, "invalid_parameter", "onePerDomain must be 0 or 1")
		return
	}
	if key == sandbox.BadCredential {
		sbError(w, http.StatusUnauthorized, "invalid_api_key", "API key not found or inactive")
		return
	}
	if key == sandbox.NoFunds {
		// The seed documents the 402, not its body; answered in the
		// documented error shape.
		sbError(w, http.StatusPaymentRequired, "insufficient_credits", "Out of credits: a backlinks call costs 3")
		return
	}
	body, err := json.Marshal(sbAnswer(h.m.Options().Seed, domain, one))
	if err != nil {
		sbError(w, http.StatusInternalServerError, "server_error", "encoding the answer")
		return
	}
	h.m.Charge(price.For(0)) // the vendor bills the call, whatever reaches the client
	if fault == sandbox.FaultTruncated {
		body = body[:len(body)/2]
	}
	if fault == sandbox.FaultMalformed {
		body = []byte(`{"domain":"` + domain + `","metrics":{"links_in":1},"backlinks":[{"anchor":"x","nf":1,}]`)
	}
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.Write(body)
}

func sbError(w http.ResponseWriter, status int, code, msg string) {
	b, _ := json.Marshal(struct {
		Error   string `json:"error"`
		Message string `json:"message"`
	}{code, msg})
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.WriteHeader(status)
	w.Write(b)
}

// sbDomain normalises as the vendor says it does ("We normalize common
// prefixes (e.g., strip www.)"): scheme, path and www. dropped, lower case.
func sbDomain(d string) (string, bool) {
	d = strings.ToLower(strings.TrimSpace(d))
	if _, rest, ok := strings.Cut(d, "://"); ok {
		d = rest
	}
	d, _, _ = strings.Cut(d, "/")
	d = strings.TrimSuffix(strings.TrimPrefix(d, "www."), ".")
	if !strings.Contains(d, ".") || strings.HasPrefix(d, ".") {
		return "", false
	}
	for _, c := range d {
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-' || c == '.') {
			return "", false
		}
	}
	return d, true
}

type sbEnvelope struct {
	Domain    string        `json:"domain"`
	Metrics   sbMetrics     `json:"metrics"`
	Backlinks []*sbBacklink `json:"backlinks"`
}

type sbMetrics struct {
	PageCount         int     `json:"page_count"`
	LinksIn           int     `json:"links_in"`
	LinksOut          int     `json:"links_out"`
	BacklinksFollow   int     `json:"backlinks_follow"`
	BacklinksNofollow int     `json:"backlinks_nofollow"`
	NofollowRatio     float64 `json:"nofollow_ratio"`
	RefDomains        int     `json:"ref_domains"`
	LinksFromGov      int     `json:"links_from_gov"`
	LinksFromEdu      int     `json:"links_from_edu"`
}

type sbBacklink struct {
	Anchor string `json:"anchor"`
	Title  string `json:"title"`
	NF     int    `json:"nf"`
	Source string `json:"source"`
	Target string `json:"target"`
	host   string
}

// sbAnswer builds one call's answer.
func sbAnswer(seed int64, domain string, onePerDomain bool) *sbEnvelope {
	total := sandbox.Total(seed, Name, "backlinks", domain)
	n := min(total, MaxRows)
	sample := make([]*sbBacklink, n)
	hosts := make(map[string]bool, n)
	nf := 0
	for i := range sample {
		b := sbRow(seed, domain, i)
		sample[i] = b
		nf += b.NF
		hosts[b.host] = true
	}
	rows := sample
	if onePerDomain {
		seen := make(map[string]bool, len(hosts))
		rows = make([]*sbBacklink, 0, len(hosts))
		for _, b := range sample {
			if !seen[b.host] {
				seen[b.host] = true
				rows = append(rows, b)
			}
		}
	}
	nofollow := nf
	if total > n && n > 0 {
		nofollow = int(math.Round(float64(nf) * float64(total) / float64(n)))
	}
	ratio := 0.0
	if total > 0 {
		ratio = math.Round(1000*float64(nofollow)/float64(total)) / 10
	}
	h := sandbox.Hash(seed, Name, "metrics", domain)
	return &sbEnvelope{
		Domain: domain,
		Metrics: sbMetrics{
			PageCount: 1 + int(h%1000), LinksIn: total, LinksOut: int((h >> 10) % 5000),
			BacklinksFollow: total - nofollow, BacklinksNofollow: nofollow, NofollowRatio: ratio,
			RefDomains: len(hosts),
		},
		Backlinks: rows,
	}
}

// sbRow is row i of a domain, like the seed's example rows.
func sbRow(seed int64, domain string, i int) *sbBacklink {
	r := sandbox.Rand(seed, Name, "backlinks", domain, strconv.Itoa(i))
	b := &sbBacklink{Source: sandbox.SourceURL(r, domain, i)}
	b.host = strings.TrimPrefix(b.Source, "https://")
	b.host, _, _ = strings.Cut(b.host, "/")
	b.Title = fmt.Sprintf("%s %s | %s", title(sandbox.Word(r)), sandbox.Word(r), title(sandbox.Word(r)))
	switch r.IntN(6) {
	case 0:
		b.Anchor = "" // the client falls back to the title
	case 1:
		b.Anchor = title(domain)
	case 2:
		b.Anchor = "https://" + domain + "/"
	default:
		b.Anchor = title(sandbox.Word(r)) + " " + sandbox.Word(r)
	}
	if r.IntN(8) == 0 {
		b.NF = 1
	}
	b.Target = "https://" + domain + "/"
	if r.IntN(3) == 0 {
		b.Target += sandbox.Word(r) + "/"
	}
	return b
}

func title(s string) string {
	if s == "" {
		return s
	}
	return strings.ToUpper(s[:1]) + s[1:]
}
