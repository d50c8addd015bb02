package tasks

import (
	"fmt"
	"maps"
	"math"
	"slices"
	"strconv"
	"strings"

	"github.com/linkharvest/linkharvest/internal/spend"
)

// Status is a job's progress.
type Status struct {
	JobID      string `json:"job_id"`
	State      string `json:"state"` // running, budget, done
	Date       string `json:"dt"`
	CreatedAt  string `json:"created_at,omitempty"`
	FinishedAt string `json:"finished_at,omitempty"`
	Domains    int64  `json:"domains"`
	Rejected   int64  `json:"rejected"`
	Tasks      int64  `json:"tasks"`   // page tasks created
	Ended      int64  `json:"ended"`   // page tasks ended
	Open       int64  `json:"open"`    // units not yet ended (incl. a running submission)
	Records    int64  `json:"records"` // rows written
	Objects    int64  `json:"objects"` // data objects written
	Bytes      int64  `json:"bytes"`   // bytes written
	Failed     int64  `json:"failed"`  // pages failed for good
	// Unfed are domains in the job's feed, not yet registered (feed.go):
	// the job is running while there are any.
	Unfed int64 `json:"unfed,omitempty"`
	// Spend is the ledger: what the job's pages cost, per provider, in the
	// provider's unit, each page counted once.
	Spend map[string]float64 `json:"spend,omitempty"`
	// Budget is the most the job may spend per provider; Charged is what
	// the vendor billed against it (Spend, plus any call whose page was
	// lost and fetched again).
	Budget  map[string]float64 `json:"budget,omitempty"`
	Charged map[string]float64 `json:"charged,omitempty"`
	// BudgetBlocked names the providers whose pages wait for a larger
	// budget (state "budget").
	BudgetBlocked []string          `json:"budget_blocked,omitempty"`
	Paused        map[string]string `json:"paused,omitempty"` // provider -> why its queue was paused
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
	// A refresh's (provider, endpoint, domain) outcomes so far: unchanged
	// since its base job, fetched as a delta, and fetched in full.
	BaseJob   string `json:"base_job,omitempty"`
	Unchanged int64  `json:"unchanged,omitempty"`
	Changed   int64  `json:"changed,omitempty"`
	Full      int64  `json:"full,omitempty"`
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
	for _, p := range s.BudgetBlocked {
		parts = append(parts, fmt.Sprintf("a larger budget for %s: %s spent of %s (raise it with `enqueue budget %s %s=AMOUNT`)",
			p, FormatAmount(s.Charged[p], p), FormatAmount(s.Budget[p], p), s.JobID, p))
	}
	for _, p := range slices.Sorted(maps.Keys(s.Paused)) {
		parts = append(parts, fmt.Sprintf("provider %s, paused: %s", p, s.Paused[p]))
	}
	if s.Finalizing || (s.Open == 0 && s.Submissions == 0) {
		parts = append(parts, "the manifest and _SUCCESS to be written")
	}
	return strings.Join(parts, "; ")
}

// BudgetStopped reports whether the job can make no progress until its
// budget is raised.
func (s *Status) BudgetStopped() bool { return s.State == "budget" }

// FormatAmount shows an amount in provider's unit.
func FormatAmount(v float64, provider string) string {
	return strconv.FormatFloat(math.Round(v*1e6)/1e6, 'f', -1, 64) + " " + spend.Default().Unit(provider)
}

// Done reports whether every unit has ended and the manifest is written.
func (s *Status) Done() bool { return s.State == "done" }
