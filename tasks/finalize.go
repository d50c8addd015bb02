package tasks

import (
	"context"
	"encoding/json"
	"fmt"
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
	k := keysFor(p.Job)
	open, err := w.Store.rdb.SCard(ctx, k.open).Result()
	if err != nil {
		return err
	}
	if open > 0 {
		return nil // work was added since; its last unit will finalize again
	}
	m, err := w.Store.buildManifest(ctx, p.Job, w.now())
	if err != nil {
		return err
	}
	body, err := json.MarshalIndent(m, "", " ")
	if err != nil {
		return fatal(err)
	}
	// Data objects are all written (each before its unit ended); now the
	// manifest, and _SUCCESS strictly after it.
	if err := w.Sink.Put(ctx, sink.ManifestKey(p.Job), body, "application/json"); err != nil {
		return fmt.Errorf("writing manifest of job %s: %w", p.Job, err)
	}
	if err := w.Sink.Put(ctx, sink.SuccessKey(p.Job), nil, "text/plain"); err != nil {
		return fmt.Errorf("writing _SUCCESS of job %s: %w", p.Job, err)
	}
	if err := w.Store.rdb.HSet(ctx, k.meta, "state", "done", "finished_at", m.FinishedAt).Err(); err != nil {
		return err
	}
	w.log().Info("job finished", "job", p.Job, "records", m.Totals.Records, "objects", m.Totals.Objects, "failed", m.Totals.Failed)
	return nil
}

// buildManifest gathers a job's outcomes from Redis.
func (s *Store) buildManifest(ctx context.Context, job string, now time.Time) (*Manifest, error) {
	j, err := s.Job(ctx, job)
	if err != nil {
		return nil, err
	}
	st, err := s.Status(ctx, job)
	if err != nil {
		return nil, err
	}
	k := keysFor(job)
	m := &Manifest{JobID: job, Date: j.Date, CreatedAt: st.CreatedAt, FinishedAt: now.UTC().Format(time.RFC3339Nano),
		Spec: j.Spec, Paused: st.Paused, Cost: st.Cost, Objects: []ManifestObject{}, Outcomes: []ManifestOutcome{}, Rejected: []Reject{}}
	type dkey struct{ p, e, d string }
	outcomes := map[dkey]*ManifestOutcome{}
	var cursor uint64
	for {
		kv, next, err := s.rdb.HScan(ctx, k.ended, cursor, "", 1000).Result()
		if err != nil {
			return nil, fmt.Errorf("reading outcomes of job %s: %w", job, err)
		}
		for i := 0; i+1 < len(kv); i += 2 {
			provider, endpoint, domain, page, ok := parseUnit(kv[i])
			if !ok {
				continue // a submission unit
			}
			var o Outcome
			if err := json.Unmarshal([]byte(kv[i+1]), &o); err != nil {
				return nil, fmt.Errorf("outcome of %s: %w", kv[i], err)
			}
			m.Totals.Tasks++
			if o.Key != "" {
				m.Objects = append(m.Objects, ManifestObject{Key: o.Key, Records: o.Records, Bytes: o.Bytes})
				m.Totals.Records += int64(o.Records)
				m.Totals.Bytes += o.Bytes
			}
			dk := dkey{provider, endpoint, domain}
			out := outcomes[dk]
			if out == nil {
				out = &ManifestOutcome{Provider: provider, Endpoint: endpoint, Domain: domain, Status: "empty"}
				outcomes[dk] = out
			}
			out.Pages++
			out.Records += o.Records
			switch {
			case o.Status == "failed":
				out.Status = "failed"
				out.FailedPages = append(out.FailedPages, page)
				if out.Error == "" {
					out.Error = o.Error
				}
			case out.Status != "failed" && o.Records > 0:
				out.Status = "ok"
			}
		}
		cursor = next
		if cursor == 0 {
			break
		}
	}
	domainsSeen := map[string]bool{}
	for _, o := range outcomes {
		sort.Ints(o.FailedPages)
		m.Outcomes = append(m.Outcomes, *o)
		domainsSeen[o.Domain] = true
		if o.Status == "failed" {
			m.Totals.Failed++
		}
	}
	sort.Slice(m.Outcomes, func(a, b int) bool {
		x, y := m.Outcomes[a], m.Outcomes[b]
		if x.Provider != y.Provider {
			return x.Provider < y.Provider
		}
		if x.Endpoint != y.Endpoint {
			return x.Endpoint < y.Endpoint
		}
		return x.Domain < y.Domain
	})
	sort.Slice(m.Objects, func(a, b int) bool { return m.Objects[a].Key < m.Objects[b].Key })
	m.Totals.Domains = len(domainsSeen)
	m.Totals.Objects = len(m.Objects)
	rej, err := s.rdb.LRange(ctx, k.rejected, 0, -1).Result()
	if err != nil && err != redis.Nil {
		return nil, err
	}
	for _, r := range rej {
		var rr Reject
		if json.Unmarshal([]byte(r), &rr) == nil {
			m.Rejected = append(m.Rejected, rr)
		}
	}
	m.Totals.Rejected = int(st.Rejected) // the list stops at MaxListedRejects
	return m, nil
}

var _ = strconv.Itoa
