package tasks

import (
	"fmt"
	"maps"
	"slices"
	"strings"
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
	for _, p := range slices.Sorted(maps.Keys(s.Paused)) {
		parts = append(parts, fmt.Sprintf("provider %s, paused: %s", p, s.Paused[p]))
	}
	if s.Finalizing || (s.Open == 0 && s.Submissions == 0) {
		parts = append(parts, "the manifest and _SUCCESS to be written")
	}
	return strings.Join(parts, "; ")
}

// Done reports whether every unit has ended and the manifest is written.
func (s *Status) Done() bool { return s.State == "done" }
