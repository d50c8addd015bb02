package tasks

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"hash/maphash"
	"io"
	"slices"
	"sort"
	"strconv"
	"time"

	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"

	"github.com/linkharvest/linkharvest/sink"
)

// Manifest is jobs/{job}/manifest.json: every data object, every
// (provider, endpoint, domain) outcome, the rejected input lines, totals.
type Manifest struct {
	JobID      string             `json:"job_id"`
	Date       string             `json:"dt"`
	CreatedAt  string             `json:"created_at"`
	FinishedAt string             `json:"finished_at"`
	Spec       Spec               `json:"spec"`
	Objects    []ManifestObject   `json:"objects"`
	Outcomes   []ManifestOutcome  `json:"outcomes"`
	Rejected   []Reject           `json:"rejected"`
	Totals     ManifestTotals     `json:"totals"`
	Paused     map[string]string  `json:"paused,omitempty"`
	Cost       map[string]float64 `json:"cost,omitempty"`
	// Interrupted: a submission of the job ended before reading its whole
	// list, and no later one closed: the job holds only what was read.
	// Resubmitting the same list under the same id completes it.
	Interrupted bool `json:"interrupted,omitempty"`
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
	Status   string `json:"status"` // ok, empty, failed
	Pages    int    `json:"pages"`
	Records  int    `json:"records"`
	Error    string `json:"error,omitempty"`
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

func (w *Worker) processFinalize(ctx context.Context, t *asynq.Task) error {
	var p FinalizePayload
	if err := json.Unmarshal(t.Payload(), &p); err != nil {
		return fatal(fmt.Errorf("finalize task: bad payload: %w", err))
	}
	ok, err := w.Store.beginFinalize(ctx, p.Job)
	if err != nil {
		return err
	}
	if !ok {
		return nil // work was added since, or it is done: its own end finalizes
	}
	finished := w.now().UTC().Format(time.RFC3339Nano)
	totals, err := w.finalize(ctx, p.Job, finished)
	if err != nil {
		// Let pages of work added meanwhile go on; the retry claims again.
		if rerr := w.Store.releaseFinalize(context.WithoutCancel(ctx), p.Job); rerr != nil {
			w.log().Warn("releasing a failed finalize", "job", p.Job, "err", rerr)
		}
		return err
	}
	done, err := w.Store.commitFinalize(ctx, p.Job, finished)
	if err != nil {
		return err
	}
	if !done {
		// Work was added while the manifest was written: the job is
		// running again, and its first new page removes this _SUCCESS.
		w.log().Info("job gained work while it was being finalized", "job", p.Job)
		return nil
	}
	if err := w.Store.expire(ctx, p.Job, w.Retention); err != nil {
		return err
	}
	w.log().Info("job finished", "job", p.Job, "records", totals.Records, "objects", totals.Objects, "failed", totals.Failed)
	return nil
}

// finalize writes the manifest, then _SUCCESS strictly after it (data
// objects are all written: each before its unit ended). A reopened job's
// _SUPERSEDED marker goes between the two.
func (w *Worker) finalize(ctx context.Context, job, finished string) (ManifestTotals, error) {
	var totals ManifestTotals
	err := w.Sink.PutStream(ctx, sink.ManifestKey(job), func(out io.Writer) error {
		var err error
		totals, err = w.Store.writeManifest(ctx, out, job, finished)
		return err
	}, "application/json")
	if err != nil {
		return totals, &sinkError{fmt.Errorf("writing the manifest of job %s: %w", job, err)}
	}
	if err := w.Sink.Delete(ctx, sink.SupersededKey(job)); err != nil {
		return totals, &sinkError{fmt.Errorf("removing the _SUPERSEDED marker of job %s: %w", job, err)}
	}
	if err := w.Sink.Put(ctx, sink.SuccessKey(job), nil, "text/plain"); err != nil {
		return totals, &sinkError{fmt.Errorf("writing _SUCCESS of job %s: %w", job, err)}
	}
	return totals, nil
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
// field, one array element per line) to out and returns its totals.
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
	parts := int((st.Tasks + int64(manifestPartUnits) - 1) / int64(manifestPartUnits))
	parts = max(parts, 1)
	seed := maphash.MakeSeed()
	inPart := func(domain string, part int) bool {
		return parts == 1 || int(maphash.String(seed, domain)%uint64(parts)) == part
	}
	mw := &manifestWriter{w: bufio.NewWriterSize(out, 64<<10)}
	mw.raw("{\n")
	mw.field("job_id", job)
	mw.field("dt", j.Date)
	mw.field("created_at", st.CreatedAt)
	mw.field("finished_at", finishedAt)
	mw.field("spec", j.Spec)

	mw.startArray("objects")
	for part := 0; part < parts && mw.err == nil; part++ {
		var objs []ManifestObject
		err := s.scanOutcomes(ctx, job, func(_, _, domain string, _ int, raw string) error {
			if !inPart(domain, part) {
				return nil
			}
			var o Outcome
			if err := json.Unmarshal([]byte(raw), &o); err != nil {
				return err
			}
			if o.Key != "" {
				objs = append(objs, ManifestObject{Key: o.Key, Records: o.Records, Bytes: o.Bytes})
			}
			return nil
		})
		if err != nil {
			return totals, err
		}
		sort.Slice(objs, func(a, b int) bool { return objs[a].Key < objs[b].Key })
		for _, o := range objs {
			mw.elem(o)
			totals.Objects++
			totals.Records += int64(o.Records)
			totals.Bytes += o.Bytes
		}
	}
	mw.endArray()

	mw.startArray("outcomes")
	type dkey struct{ p, e, d string }
	for part := 0; part < parts && mw.err == nil; part++ {
		outcomes := map[dkey]*ManifestOutcome{}
		err := s.scanOutcomes(ctx, job, func(provider, endpoint, domain string, page int, raw string) error {
			if !inPart(domain, part) {
				return nil
			}
			var o Outcome
			if err := json.Unmarshal([]byte(raw), &o); err != nil {
				return err
			}
			totals.Tasks++
			dk := dkey{provider, endpoint, domain}
			mo := outcomes[dk]
			if mo == nil {
				mo = &ManifestOutcome{Provider: provider, Endpoint: endpoint, Domain: domain, Status: "empty"}
				outcomes[dk] = mo
			}
			mo.Pages++
			mo.Records += o.Records
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
			}
			return nil
		})
		if err != nil {
			return totals, err
		}
		sorted := make([]*ManifestOutcome, 0, len(outcomes))
		domains := map[string]bool{} // a domain is in one part only
		for _, o := range outcomes {
			sort.Ints(o.FailedPages)
			if len(o.TotalsSeen) < 2 {
				o.TotalsSeen = nil
			} else {
				sort.Ints(o.TotalsSeen)
			}
			sorted = append(sorted, o)
			domains[o.Domain] = true
			if o.Status == "failed" {
				totals.Failed++
			}
		}
		totals.Domains += len(domains)
		sort.Slice(sorted, func(a, b int) bool {
			x, y := sorted[a], sorted[b]
			if x.Provider != y.Provider {
				return x.Provider < y.Provider
			}
			if x.Endpoint != y.Endpoint {
				return x.Endpoint < y.Endpoint
			}
			return x.Domain < y.Domain
		})
		for _, o := range sorted {
			mw.elem(o)
		}
	}
	mw.endArray()

	rej, err := s.rdb.LRange(ctx, keysFor(job).rejected, 0, -1).Result() // at most MaxListedRejects
	if err != nil && err != redis.Nil {
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
	if len(st.Cost) > 0 {
		mw.field("cost", st.Cost)
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

// scanOutcomes calls fn for every ended page unit of a job, in HSCAN order.
func (s *Store) scanOutcomes(ctx context.Context, job string, fn func(provider, endpoint, domain string, page int, outcome string) error) error {
	var cursor uint64
	for {
		kv, next, err := s.rdb.HScan(ctx, keysFor(job).ended, cursor, "", 2000).Result()
		if err != nil {
			return fmt.Errorf("reading outcomes of job %s: %w", job, err)
		}
		for i := 0; i+1 < len(kv); i += 2 {
			provider, endpoint, domain, page, ok := parseUnit(kv[i])
			if !ok {
				continue // a submission unit
			}
			if err := fn(provider, endpoint, domain, page, kv[i+1]); err != nil {
				return fmt.Errorf("outcome of %s: %w", kv[i], err)
			}
		}
		cursor = next
		if cursor == 0 {
			return nil
		}
	}
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
