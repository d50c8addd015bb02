package tasks

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"hash/maphash"
	"io"
	"os"
	"slices"
	"sort"
	"strconv"
)

// Manifest is jobs/{job}/manifest.json: every data object, every
// (provider, endpoint, domain) outcome, the rejected input lines, totals.
type Manifest struct {
	JobID      string            `json:"job_id"`
	Date       string            `json:"dt"`
	CreatedAt  string            `json:"created_at"`
	FinishedAt string            `json:"finished_at"`
	Spec       Spec              `json:"spec"`
	Objects    []ManifestObject  `json:"objects"`
	Outcomes   []ManifestOutcome `json:"outcomes"`
	Rejected   []Reject          `json:"rejected"`
	Totals     ManifestTotals    `json:"totals"`
	Paused     map[string]string `json:"paused,omitempty"`
	// Spend is what the job cost per provider (the ledger), Budget the
	// most it was allowed.
	Spend  map[string]float64 `json:"spend"`
	Budget map[string]float64 `json:"budget,omitempty"`
	// Interrupted: a submission of the job ended before reading its whole
	// list, and no later one closed: the job holds only what was read.
	// Resubmitting the same list under the same id completes it.
	Interrupted bool `json:"interrupted,omitempty"`
	// BaseJob and Since name, for a refresh, the job it refreshes and the
	// day its changes count from.
	BaseJob string `json:"base_job,omitempty"`
	Since   string `json:"since,omitempty"`
}

// ManifestObject is one data object.
type ManifestObject struct {
	Key     string `json:"key"`
	Records int    `json:"records"`
	Bytes   int64  `json:"bytes"`
}

// ManifestOutcome is how one domain went at one provider's endpoint.
type ManifestOutcome struct {
	Provider string `json:"provider"`
	Endpoint string `json:"endpoint"`
	Domain   string `json:"domain"`
	Status   string `json:"status"` // ok, empty, failed, unchanged
	// Refresh, in a refresh job, is how the domain was fetched:
	// unchanged (no call beyond the count), delta (records carry
	// change), full (RefreshReason says why).
	Refresh       string `json:"refresh,omitempty"`
	RefreshReason string `json:"refresh_reason,omitempty"`
	Pages         int    `json:"pages"`
	Records       int    `json:"records"`
	// Spend is what its pages cost, in the provider's unit.
	Spend float64 `json:"spend"`
	Error string  `json:"error,omitempty"`
	// FailedPages lists the pages that failed for good.
	FailedPages []int `json:"failed_pages,omitempty"`
	// TotalsSeen lists the distinct totals the vendor reported while the
	// domain was paged, when it reported more than one (its index moved).
	TotalsSeen []int `json:"totals_seen,omitempty"`
}

// ManifestTotals sums the manifest.
type ManifestTotals struct {
	Domains  int   `json:"domains"`
	Rejected int   `json:"rejected"`
	Tasks    int   `json:"tasks"`
	Objects  int   `json:"objects"`
	Records  int64 `json:"records"`
	Bytes    int64 `json:"bytes"`
	Failed   int   `json:"failed"` // (provider, endpoint, domain) outcomes that failed
}

// manifestPartUnits bounds what writeManifest holds in memory. A job's
// pages are split by a hash of their domain into parts of about this many;
// each part is read from Redis in its own pass (HSCAN of the job's
// outcomes), sorted, and written out, so memory stays at one part (some
// tens of MB) however big the job, and the manifest of a million-domain
// job never has to fit in a worker. A job of up to this many pages is
// written fully sorted; a bigger one is sorted within each part.
var manifestPartUnits = 100_000 // a var: tests make parts small

// writeManifest streams a job's manifest (the Manifest type, field by
// field, one array element per line) to out and returns its totals. Each
// part is read from Redis in one pass: its objects are written at once,
// its outcomes go to a spool file (the manifest lists every object before
// the first outcome) that is copied out after the last part.
func (s *Store) writeManifest(ctx context.Context, out io.Writer, job, finishedAt string) (ManifestTotals, error) {
	var totals ManifestTotals
	j, err := s.Job(ctx, job)
	if err != nil {
		return totals, err
	}
	st, err := s.Status(ctx, job)
	if err != nil {
		return totals, err
	}
	parts := max(int((st.Tasks+int64(manifestPartUnits)-1)/int64(manifestPartUnits)), 1)
	spool, err := os.CreateTemp("", "linkharvest-outcomes-")
	if err != nil {
		return totals, fmt.Errorf("manifest of job %s: %w", job, err)
	}
	defer func() { spool.Close(); os.Remove(spool.Name()) }()
	outcomes := &manifestWriter{w: bufio.NewWriterSize(spool, 64<<10), first: true}

	mw := &manifestWriter{w: bufio.NewWriterSize(out, 64<<10)}
	mw.raw("{\n")
	mw.field("job_id", job)
	mw.field("dt", j.Date)
	mw.field("created_at", st.CreatedAt)
	mw.field("finished_at", finishedAt)
	mw.field("spec", j.Spec)
	if r := j.Spec.Refresh; r != nil {
		mw.field("base_job", r.BaseJob)
		mw.field("since", r.Since)
	}
	mw.startArray("objects")
	seed := maphash.MakeSeed()
	for part := 0; part < parts && mw.err == nil && outcomes.err == nil; part++ {
		objs, outs, err := s.manifestPart(ctx, job, func(domain string) bool {
			return parts == 1 || int(maphash.String(seed, domain)%uint64(parts)) == part
		})
		if err != nil {
			return totals, err
		}
		for _, o := range objs {
			mw.elem(o)
			totals.Objects++
			totals.Records += int64(o.Records)
			totals.Bytes += o.Bytes
		}
		if err := s.setIncomplete(ctx, job, outs, part == 0); err != nil {
			return totals, err
		}
		domains := map[string]bool{} // a domain is in one part only
		for _, o := range outs {
			outcomes.elem(o)
			totals.Tasks += o.Pages
			domains[o.Domain] = true
			if o.Status == "failed" {
				totals.Failed++
			}
		}
		totals.Domains += len(domains)
	}
	mw.endArray()
	if outcomes.err == nil {
		outcomes.err = outcomes.w.Flush()
	}
	if outcomes.err != nil {
		return totals, fmt.Errorf("manifest of job %s: spooling outcomes: %w", job, outcomes.err)
	}
	mw.raw(` "outcomes": [`)
	if _, err := spool.Seek(0, io.SeekStart); err != nil {
		return totals, err
	}
	if mw.err == nil {
		_, mw.err = io.Copy(mw.w, spool)
	}
	mw.first = outcomes.first
	mw.endArray()

	rej, err := s.rejectedLines(ctx, job)
	if err != nil {
		return totals, err
	}
	mw.startArray("rejected")
	for _, r := range rej {
		var rr Reject
		if json.Unmarshal([]byte(r), &rr) == nil {
			mw.elem(rr)
		}
	}
	mw.endArray()
	totals.Rejected = int(st.Rejected) // the list stops at MaxListedRejects
	if len(st.Paused) > 0 {
		mw.field("paused", st.Paused)
	}
	if st.Spend == nil {
		st.Spend = map[string]float64{}
	}
	mw.field("spend", st.Spend)
	if len(st.Budget) > 0 {
		mw.field("budget", st.Budget)
	}
	if st.Interrupted > 0 {
		mw.field("interrupted", true)
	}
	mw.last("totals", totals)
	mw.raw("}\n")
	if mw.err == nil {
		mw.err = mw.w.Flush()
	}
	return totals, mw.err
}

// manifestPart reads, in one pass over the job's outcomes, the objects
// and the (provider, endpoint, domain) outcomes of the domains in a part,
// each sorted.
func (s *Store) manifestPart(ctx context.Context, job string, inPart func(domain string) bool) ([]ManifestObject, []*ManifestOutcome, error) {
	type dkey struct{ p, e, d string }
	var objs []ManifestObject
	byDomain := map[dkey]*ManifestOutcome{}
	err := s.scanOutcomes(ctx, job, func(provider, endpoint, domain string, page int, o Outcome) error {
		if !inPart(domain) {
			return nil
		}
		if o.Key != "" {
			objs = append(objs, ManifestObject{Key: o.Key, Records: o.Records, Bytes: o.Bytes})
		}
		dk := dkey{provider, endpoint, domain}
		mo := byDomain[dk]
		if mo == nil {
			mo = &ManifestOutcome{Provider: provider, Endpoint: endpoint, Domain: domain, Status: "empty"}
			byDomain[dk] = mo
		}
		if o.Status != "unchanged" { // no call was made
			mo.Pages++
		}
		if page == 1 && o.Refresh != "" {
			mo.Refresh, mo.RefreshReason = o.Refresh, o.RefreshReason
		}
		mo.Records += o.Records
		mo.Spend += o.Spend
		if o.Total > 0 && !slices.Contains(mo.TotalsSeen, o.Total) {
			mo.TotalsSeen = append(mo.TotalsSeen, o.Total)
		}
		switch {
		case o.Status == "failed":
			mo.Status = "failed"
			mo.FailedPages = append(mo.FailedPages, page)
			if mo.Error == "" {
				mo.Error = o.Error
			}
		case mo.Status != "failed" && o.Records > 0:
			mo.Status = "ok"
		case o.Status == "unchanged":
			mo.Status = "unchanged"
		}
		return nil
	})
	if err != nil {
		return nil, nil, err
	}
	sort.Slice(objs, func(a, b int) bool { return objs[a].Key < objs[b].Key })
	outs := make([]*ManifestOutcome, 0, len(byDomain))
	for _, o := range byDomain {
		sort.Ints(o.FailedPages)
		if len(o.TotalsSeen) < 2 {
			o.TotalsSeen = nil
		} else {
			sort.Ints(o.TotalsSeen)
		}
		outs = append(outs, o)
	}
	sort.Slice(outs, func(a, b int) bool {
		x, y := outs[a], outs[b]
		if x.Provider != y.Provider {
			return x.Provider < y.Provider
		}
		if x.Endpoint != y.Endpoint {
			return x.Endpoint < y.Endpoint
		}
		return x.Domain < y.Domain
	})
	return objs, outs, nil
}

// manifestWriter writes the manifest's JSON by hand, element by element,
// because encoding/json can only marshal a whole value, which for a big
// job would not fit in memory. The first error sticks.
type manifestWriter struct {
	w     *bufio.Writer
	err   error
	first bool // no element written yet in the open array
}

func (m *manifestWriter) raw(s string) {
	if m.err == nil {
		_, m.err = m.w.WriteString(s)
	}
}

func (m *manifestWriter) startArray(name string) {
	m.raw(" " + strconv.Quote(name) + ": [")
	m.first = true
}

func (m *manifestWriter) value(v any) {
	if m.err != nil {
		return
	}
	b, err := json.Marshal(v)
	if err != nil {
		m.err = err
		return
	}
	_, m.err = m.w.Write(b)
}

func (m *manifestWriter) field(name string, v any) {
	m.raw(" " + strconv.Quote(name) + ": ")
	m.value(v)
	m.raw(",\n")
}

func (m *manifestWriter) last(name string, v any) {
	m.raw(" " + strconv.Quote(name) + ": ")
	m.value(v)
	m.raw("\n")
}

func (m *manifestWriter) elem(v any) {
	if m.first {
		m.raw("\n  ")
		m.first = false
	} else {
		m.raw(",\n  ")
	}
	m.value(v)
}

func (m *manifestWriter) endArray() {
	if m.first {
		m.raw("],\n") // empty
		m.first = false
		return
	}
	m.raw("\n ],\n")
}
