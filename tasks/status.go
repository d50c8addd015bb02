package tasks

import (
	"context"
	"fmt"
	"sort"
	"strconv"
	"strings"

	"github.com/redis/go-redis/v9"
)

// Status is a job's progress.
type Status struct {
	JobID      string             `json:"job_id"`
	State      string             `json:"state"` // running, done
	Date       string             `json:"dt"`
	CreatedAt  string             `json:"created_at,omitempty"`
	FinishedAt string             `json:"finished_at,omitempty"`
	Domains    int64              `json:"domains"`
	Rejected   int64              `json:"rejected"`
	Tasks      int64              `json:"tasks"`   // page tasks created
	Ended      int64              `json:"ended"`   // page tasks ended
	Open       int64              `json:"open"`    // units not yet ended (incl. a running submission)
	Records    int64              `json:"records"` // rows written
	Objects    int64              `json:"objects"` // data objects written
	Bytes      int64              `json:"bytes"`   // bytes written
	Failed     int64              `json:"failed"`  // pages failed for good
	Cost       map[string]float64 `json:"cost,omitempty"`
	Paused     map[string]string  `json:"paused,omitempty"` // provider -> why its queue was paused
	// Submissions is how many submissions are still reading the list (live leases).
	Submissions int64 `json:"submissions,omitempty"`
	// Interrupted is the last submission that ended before reading its
	// whole list, if no later one has closed since (0: none).
	Interrupted int64 `json:"interrupted,omitempty"`
	// Stashed pages were fetched but wait for the sink; StashBytes is their size.
	Stashed    int64 `json:"stashed,omitempty"`
	StashBytes int64 `json:"stash_bytes,omitempty"`
	// SinkDown is why the sink refused the last write of a page now stashed.
	SinkDown string `json:"sink_down,omitempty"`
	// Finalizing: the manifest and _SUCCESS are being written.
	Finalizing bool `json:"finalizing,omitempty"`
}

// WaitingFor says in words what a running job waits for.
func (s *Status) WaitingFor() string {
	if s.Done() {
		return ""
	}
	var parts []string
	if s.Submissions > 0 {
		parts = append(parts, fmt.Sprintf("%d submission(s) still reading the list", s.Submissions))
	}
	if n := s.Open; n > 0 {
		parts = append(parts, fmt.Sprintf("%d page(s) to fetch or write", n))
	}
	if s.Stashed > 0 {
		why := s.SinkDown
		if why == "" {
			why = "retrying"
		}
		parts = append(parts, fmt.Sprintf("the sink: %d fetched page(s) (%d bytes) kept in Redis until it takes writes (%s)", s.Stashed, s.StashBytes, why))
	} else if s.SinkDown != "" {
		parts = append(parts, "the sink, which refuses writes ("+s.SinkDown+")")
	}
	for _, p := range sortedKeys(s.Paused) {
		parts = append(parts, fmt.Sprintf("provider %s, paused: %s", p, s.Paused[p]))
	}
	if s.Finalizing || (s.Open == 0 && s.Submissions == 0) {
		parts = append(parts, "the manifest and _SUCCESS to be written")
	}
	return strings.Join(parts, "; ")
}

// Done reports whether every unit has ended and the manifest is written.
func (s *Status) Done() bool { return s.State == "done" }

// Status reads a job's progress.
func (s *Store) Status(ctx context.Context, job string) (*Status, error) {
	k := keysFor(job)
	vals, err := s.rdb.HGetAll(ctx, k.meta).Result()
	if err != nil {
		return nil, fmt.Errorf("job %s: %w", job, err)
	}
	if len(vals) == 0 {
		return nil, fmt.Errorf("job %s: %w", job, ErrNoJob)
	}
	var open *redis.IntCmd
	var now *redis.TimeCmd
	_, err = s.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		now = p.Time(ctx)
		open = p.SCard(ctx, k.open)
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("job %s: %w", job, err)
	}
	live, err := s.rdb.ZCount(ctx, k.subs, strconv.FormatInt(now.Val().UnixMilli(), 10), "+inf").Result()
	if err != nil {
		return nil, fmt.Errorf("job %s: %w", job, err)
	}
	n := func(f string) int64 { v, _ := strconv.ParseInt(vals[f], 10, 64); return v }
	st := &Status{JobID: job, State: vals["state"], Date: vals["dt"], CreatedAt: vals["created_at"], FinishedAt: vals["finished_at"],
		Domains: n("domains"), Rejected: n("rejected"), Tasks: n("units"), Ended: n("ended"), Open: open.Val(),
		Records: n("records"), Objects: n("objects"), Bytes: n("bytes"), Failed: n("failed"),
		Submissions: live, Interrupted: n("interrupted"), Stashed: n("stashed"), StashBytes: n("stash_bytes"),
		SinkDown: vals["sink_error"], Finalizing: n("finalizing") > now.Val().UnixMilli()}
	for f, v := range vals {
		switch {
		case strings.HasPrefix(f, "paused:"):
			if st.Paused == nil {
				st.Paused = map[string]string{}
			}
			st.Paused[strings.TrimPrefix(f, "paused:")] = v
		case strings.HasPrefix(f, "cost:"):
			if st.Cost == nil {
				st.Cost = map[string]float64{}
			}
			st.Cost[strings.TrimPrefix(f, "cost:")], _ = strconv.ParseFloat(v, 64)
		}
	}
	return st, nil
}

// Jobs lists the most recent job ids, newest first; jobs whose state has
// expired (Worker.Retention) are dropped from the index.
func (s *Store) Jobs(ctx context.Context, n int64) ([]string, error) {
	ids, err := s.rdb.ZRevRange(ctx, jobsIndex, 0, n-1).Result()
	if err != nil {
		return nil, err
	}
	live := ids[:0]
	for _, id := range ids {
		ok, err := s.rdb.Exists(ctx, keysFor(id).meta).Result()
		if err != nil {
			return nil, err
		}
		if ok == 0 {
			s.rdb.ZRem(ctx, jobsIndex, id)
			continue
		}
		live = append(live, id)
	}
	return live, nil
}

// ClearPause forgets a provider's pause reason on every job that recorded it.
func (s *Store) ClearPause(ctx context.Context, provider string) error {
	ids, err := s.Jobs(ctx, 1000)
	if err != nil {
		return err
	}
	for _, id := range ids {
		if err := s.rdb.HDel(ctx, keysFor(id).meta, "paused:"+provider).Err(); err != nil {
			return err
		}
	}
	return nil
}

func sortedKeys[V any](m map[string]V) []string {
	ks := make([]string, 0, len(m))
	for k := range m {
		ks = append(ks, k)
	}
	sort.Strings(ks)
	return ks
}
