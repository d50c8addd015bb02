package sink

import "time"

// Manifest is jobs/{job}/manifest.json: written once every task of the
// job has ended, after the last data object and before _SUCCESS.
type Manifest struct {
	JobID      string              `json:"job_id"`
	Date       string              `json:"dt"` // the job's date, YYYY-MM-DD, as in the data keys
	CreatedAt  time.Time           `json:"created_at"`
	FinishedAt time.Time           `json:"finished_at"`
	Providers  []string            `json:"providers"`
	Endpoints  map[string][]string `json:"endpoints"` // per provider
	Objects    []ManifestObject    `json:"objects"`
	Outcomes   []Outcome           `json:"outcomes"`
	Rejected   []Rejected          `json:"rejected"`
	Totals     Totals              `json:"totals"`
}

// ManifestObject is one data object of the job.
type ManifestObject struct {
	Key     string `json:"key"` // relative to the sink
	Records int    `json:"records"`
	Bytes   int64  `json:"bytes"`
}

// Outcome statuses.
const (
	StatusOK     = "ok"     // every page fetched, at least one record
	StatusEmpty  = "empty"  // every page fetched, no record
	StatusFailed = "failed" // some page failed for good
)

// Outcome is how one domain went at one provider's endpoint.
type Outcome struct {
	Provider    string `json:"provider"`
	Endpoint    string `json:"endpoint"`
	Domain      string `json:"domain"`
	Status      string `json:"status"`
	Pages       int    `json:"pages"`
	Records     int    `json:"records"`
	Error       string `json:"error,omitempty"`
	FailedPages []int  `json:"failed_pages,omitempty"`
}

// Rejected is an input line that was not a valid domain.
type Rejected struct {
	Line   int    `json:"line"`
	Input  string `json:"input"`
	Reason string `json:"reason"`
}

// Totals sums the manifest.
type Totals struct {
	Domains  int   `json:"domains"`
	Rejected int   `json:"rejected"`
	Tasks    int   `json:"tasks"`
	Objects  int   `json:"objects"`
	Records  int64 `json:"records"`
	Bytes    int64 `json:"bytes"`
	Failed   int   `json:"failed"` // outcomes that failed
	// Cost is what the job cost per provider, in the provider's billing unit.
	Cost map[string]float64 `json:"cost,omitempty"`
}
