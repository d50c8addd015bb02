// Package sandbox is the machinery shared by the vendors' stand-in APIs:
// limits enforced as the vendors enforce them, injected failures, latency,
// deterministic data, and the /stats counters that tests and benchmarks read.
// Each vendor package mounts its own handler on a Server.
package sandbox

import (
	"context"
	"encoding/json"
	"fmt"
	"hash/fnv"
	"math/rand/v2"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Options are the sandbox's flags.
type Options struct {
	Latency     time.Duration // added to every call
	Rate        int           // calls allowed in any sliding window of Period; 0 = unlimited
	Period      time.Duration // window of Rate; default 1m
	Concurrency int           // calls allowed at once; 0 = unlimited
	Fail        float64       // probability of an injected transient failure
	Seed        int64         // data and failure seed
	// LinksPerPage is the links (internal and external) on each page an
	// export of pages returns (DomainCrawler exportpages); 0 means
	// DefaultLinksPerPage.
	LinksPerPage int
	// Unfinished is how many answers per endpoint and domain say the
	// vendor's export into its index has not finished (DomainCrawler
	// "exportFinished": false, with part of the data) before the export
	// is done; 0: always finished.
	Unfinished int
	// Today is the day the world is seen on (World); zero: the current
	// UTC date. CheckToday says which days can be.
	Today time.Time
	// Churn is the chance, 0..1, that a domain's rows change in each
	// 30-day epoch (World); 0: they never change, and every answer is
	// what it was before the world changed over time.
	Churn float64
}

// DefaultLinksPerPage is a page of a real site: a hundred links, over
// 10 KB of them.
const DefaultLinksPerPage = 100

// ParseRate reads "2000/1m" (also "2000/60s", "33/s"). "" or "0" is unlimited.
func ParseRate(s string) (n int, period time.Duration, err error) {
	s = strings.TrimSpace(s)
	if s == "" || s == "0" {
		return 0, time.Minute, nil
	}
	num, per, ok := strings.Cut(s, "/")
	if !ok {
		return 0, 0, fmt.Errorf("rate %q: want calls/period, e.g. 2000/1m", s)
	}
	n, err = strconv.Atoi(num)
	if err != nil || n < 0 {
		return 0, 0, fmt.Errorf("rate %q: bad count", s)
	}
	if per != "" && (per[0] < '0' || per[0] > '9') {
		per = "1" + per
	}
	period, err = time.ParseDuration(per)
	if err != nil || period <= 0 {
		return 0, 0, fmt.Errorf("rate %q: bad period", s)
	}
	return n, period, nil
}

// Stats are one provider's counters, as served by GET /stats.
type Stats struct {
	Calls            int64 `json:"calls"`
	Throttled        int64 `json:"throttled"`
	InjectedFailures int64 `json:"injected_failures"`
	MaxInFlight      int64 `json:"max_in_flight"`
	MaxCallsInWindow int64 `json:"max_calls_in_window"`
	// Cost is what the calls were charged, in the unit the provider bills
	// in (DataForSEO USD, DomDetailer credits, XOVI and DomainCrawler calls).
	Cost float64 `json:"cost"`
}

// Meter counts one provider's calls and enforces its limits.
type Meter struct {
	opts     Options
	mu       sync.Mutex
	inFlight int64
	window   []time.Time // arrival times within the last Period, oldest first
	stats    Stats
	rng      *rand.Rand
}

func newMeter(opts Options, name string) *Meter {
	if opts.Period <= 0 {
		opts.Period = time.Minute
	}
	return &Meter{opts: opts, rng: rand.New(rand.NewPCG(uint64(opts.Seed), Hash(opts.Seed, "fail", name)))}
}

// Call is one request's passage through a Meter.
type Call struct {
	m *Meter
	// OverConcurrency: more calls than Concurrency were in flight on arrival.
	OverConcurrency bool
	// OverRate: the sliding window ending at this arrival holds more than Rate calls.
	OverRate bool
	// InWindow is the number of calls in that window, this one included.
	InWindow int
	once     sync.Once
}

// Credentials every sandbox treats specially (any other non-empty login
// or key is accepted).
const (
	// BadCredential gets each vendor's authentication error.
	BadCredential = "bad"
	// NoFunds gets each vendor's documented out-of-funds error (DataForSEO
	// 40200 as HTTP 402, DomDetailer HTTP 402, XOVI "cost error"), so that
	// a job's pause on an account without money can be tried end to end.
	NoFunds = "nofunds"
)

// PerMinute is the sandbox's rate as calls a minute (what DataForSEO's
// X-RateLimit-Limit header states), 0 when the rate is not limited.
func (o Options) PerMinute() int {
	if o.Rate <= 0 {
		return 0
	}
	p := o.Period
	if p <= 0 {
		p = time.Minute
	}
	return int(int64(o.Rate) * int64(time.Minute) / int64(p))
}

// Begin records an arriving call. Every arrival counts toward the window
// and the in-flight peak, throttled or not, as the vendors count them.
func (m *Meter) Begin() *Call {
	now := time.Now()
	m.mu.Lock()
	defer m.mu.Unlock()
	m.stats.Calls++
	m.inFlight++
	if m.inFlight > m.stats.MaxInFlight {
		m.stats.MaxInFlight = m.inFlight
	}
	cut := now.Add(-m.opts.Period)
	i := 0
	for i < len(m.window) && !m.window[i].After(cut) {
		i++
	}
	if i > 0 {
		m.window = append(m.window[:0], m.window[i:]...)
	}
	m.window = append(m.window, now)
	n := int64(len(m.window))
	if n > m.stats.MaxCallsInWindow {
		m.stats.MaxCallsInWindow = n
	}
	return &Call{
		m:               m,
		OverConcurrency: m.opts.Concurrency > 0 && m.inFlight > int64(m.opts.Concurrency),
		OverRate:        m.opts.Rate > 0 && n > int64(m.opts.Rate),
		InWindow:        int(n),
	}
}

// End marks the call finished; safe to call twice.
func (c *Call) End() {
	c.once.Do(func() {
		c.m.mu.Lock()
		c.m.inFlight--
		c.m.mu.Unlock()
	})
}

// Throttled counts a throttled answer.
func (m *Meter) Throttled() {
	m.mu.Lock()
	m.stats.Throttled++
	m.mu.Unlock()
}

// Charge bills a call that was answered.
func (m *Meter) Charge(amount float64) {
	m.mu.Lock()
	m.stats.Cost += amount
	m.mu.Unlock()
}

// Inject reports whether this call gets an injected failure (probability
// Fail), and if so which of n kinds.
func (m *Meter) Inject(n int) (kind int, ok bool) {
	if m.opts.Fail <= 0 || n <= 0 {
		return 0, false
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.rng.Float64() >= m.opts.Fail {
		return 0, false
	}
	m.stats.InjectedFailures++
	return m.rng.IntN(n), true
}

// Wait sleeps the configured latency, or until ctx ends.
func (m *Meter) Wait(ctx context.Context) error {
	if m.opts.Latency <= 0 {
		return nil
	}
	t := time.NewTimer(m.opts.Latency)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Fault is a transient fault a sandbox injects under --fail, of the set
// the vendors whose errors are HTTP statuses share (DomainCrawler,
// DomDetailer); each answers a fault in its own error shape.
type Fault int

const (
	NoFault        Fault = iota
	Fault500             // HTTP 500 with the vendor's error body
	Fault502             // HTTP 502, likewise
	Fault503             // HTTP 503, likewise
	FaultTruncated       // half of the good body
	FaultMalformed       // a body that does not parse
	FaultDropped         // the connection closed without an answer (Drop)
	faultEnd
)

// StatusFault draws this call's fault from that set (NoFault: none), with
// Inject's odds.
func (m *Meter) StatusFault() Fault {
	kind, ok := m.Inject(int(faultEnd - Fault500))
	if !ok {
		return NoFault
	}
	return Fault500 + Fault(kind)
}

// Status is the HTTP status of Fault500, Fault502 and Fault503; 0 for
// the other faults.
func (f Fault) Status() int {
	switch f {
	case Fault500:
		return http.StatusInternalServerError
	case Fault502:
		return http.StatusBadGateway
	case Fault503:
		return http.StatusServiceUnavailable
	}
	return 0
}

// Drop closes the call's connection without an answer, the dropped
// connection every vendor's sandbox injects under --fail. It reports
// false when w cannot be taken over (HTTP/2): the caller then answers
// with the vendor's 503 instead.
func Drop(w http.ResponseWriter) bool {
	if hj, ok := w.(http.Hijacker); ok {
		if conn, _, err := hj.Hijack(); err == nil {
			conn.Close()
			return true
		}
	}
	return false
}

// Options returns the meter's options (Seed for data generation).
func (m *Meter) Options() Options { return m.opts }

// Snapshot returns the counters.
func (m *Meter) Snapshot() Stats {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.stats
}

func (m *Meter) reset() {
	m.mu.Lock()
	m.stats = Stats{}
	m.window = m.window[:0]
	m.stats.MaxInFlight = m.inFlight
	m.mu.Unlock()
}

// Server serves every mounted vendor on one port, plus /stats.
type Server struct {
	opts   Options
	mux    *http.ServeMux
	mu     sync.Mutex
	meters map[string]*Meter
}

// New returns a Server with /stats and /stats/reset mounted.
func New(opts Options) *Server {
	s := &Server{opts: opts, mux: http.NewServeMux(), meters: map[string]*Meter{}}
	s.mux.HandleFunc("GET /stats", s.serveStats)
	s.mux.HandleFunc("POST /stats/reset", s.serveReset)
	return s
}

// Meter returns the named provider's meter, creating it.
func (s *Server) Meter(provider string) *Meter {
	s.mu.Lock()
	defer s.mu.Unlock()
	m, ok := s.meters[provider]
	if !ok {
		m = newMeter(s.opts, provider)
		s.meters[provider] = m
	}
	return m
}

// Handle mounts a vendor's handler on a ServeMux pattern.
func (s *Server) Handle(pattern string, h http.Handler) { s.mux.Handle(pattern, h) }

func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) { s.mux.ServeHTTP(w, r) }

// Stats returns every provider's counters.
func (s *Server) Stats() map[string]Stats {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make(map[string]Stats, len(s.meters))
	for name, m := range s.meters {
		out[name] = m.Snapshot()
	}
	return out
}

func (s *Server) serveStats(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(s.Stats())
}

func (s *Server) serveReset(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	for _, m := range s.meters {
		m.reset()
	}
	s.mu.Unlock()
	w.WriteHeader(http.StatusNoContent)
}

// Hash mixes the seed and parts into a deterministic 64-bit value: the
// same provider, endpoint, domain, row and seed always give the same data.
func Hash(seed int64, parts ...string) uint64 {
	h := fnv.New64a()
	var b [8]byte
	for i := range b {
		b[i] = byte(seed >> (8 * i))
	}
	h.Write(b[:])
	for _, p := range parts {
		h.Write([]byte(p))
		h.Write([]byte{0})
	}
	return h.Sum64()
}

// Rand returns a deterministic generator for one row (or any other unit).
func Rand(seed int64, parts ...string) *rand.Rand {
	h := Hash(seed, parts...)
	return rand.New(rand.NewPCG(h, h^0x9e3779b97f4a7c15))
}

var (
	rowsLabel = regexp.MustCompile(`^rows-(\d{1,9})$`)
	growLabel = regexp.MustCompile(`^grow-(\d{1,9})-(\d{1,9})$`)
)

// Total is the number of rows a domain has at a provider's endpoint. A
// domain whose first label is rows-N has exactly N; grow-A-B has B (see
// TotalAt); others get a deterministic count below 2500.
func Total(seed int64, provider, endpoint, domain string) int {
	first, _, _ := strings.Cut(domain, ".")
	if m := rowsLabel.FindStringSubmatch(first); m != nil {
		n, _ := strconv.Atoi(m[1])
		return n
	}
	if m := growLabel.FindStringSubmatch(first); m != nil {
		n, _ := strconv.Atoi(m[2])
		return n
	}
	return int(Hash(seed, "total", provider, endpoint, domain) % 2500)
}

// TotalAt is the total a paged answer at offset reports. It is Total,
// except for a domain whose first label is grow-A-B: its index moves while
// it is paged, A rows at offset 0 and B at every later offset (B > A: rows
// were added after the first page; B < A: rows went). Rows keep their
// places, so paging it through yields rows 0 to B-1.
func TotalAt(seed int64, provider, endpoint, domain string, offset int) int {
	first, _, _ := strings.Cut(domain, ".")
	if m := growLabel.FindStringSubmatch(first); m != nil && offset == 0 {
		n, _ := strconv.Atoi(m[1])
		return n
	}
	return Total(seed, provider, endpoint, domain)
}

var words = []string{"seo", "guide", "review", "best", "tools", "backlinks", "home", "blog", "news", "shop",
	"travel", "recipes", "data", "cloud", "garden", "music", "sports", "finance", "health", "design"}

// Word returns a deterministic word.
func Word(r *rand.Rand) string { return words[r.IntN(len(words))] }

// SourceURL returns a unique referring URL for row i, so that every row a
// sandbox serves can be told apart in the output.
func SourceURL(r *rand.Rand, domain string, i int) string {
	return fmt.Sprintf("https://%s-%d.example.org/%s/%s-%d", Word(r), r.IntN(500), Word(r), strings.ReplaceAll(domain, ".", "-"), i)
}

// SkipSourceURL draws from r what SourceURL draws, without formatting: a
// generator that needs only a later value of a row (a date to filter on)
// reaches it this way. Keep the two in step.
func SkipSourceURL(r *rand.Rand) {
	Word(r)
	r.IntN(500)
	Word(r)
}
