// Package tasks turns a job (a domain list, providers, endpoints) into Asynq
// tasks and executes them: one task per (provider, endpoint, domain, page),
// fanned out from each domain's first page once its total is known, every
// page written to the sink under a key fixed before the call, and the job's
// manifest and _SUCCESS written when its last unit ends.
package tasks

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
)

// Task types.
const (
	TypePage     = "lh:page"
	TypeFinalize = "lh:finalize"
)

// ControlQueue carries job-control tasks (finalize); page tasks go to a
// queue named after their provider, so a provider can be paused alone.
const ControlQueue = "default"

// PagePayload is a page task's payload. It holds no credentials and no
// options: those come from the worker's environment and the job's spec.
type PagePayload struct {
	Job      string `json:"job"`
	Provider string `json:"provider"`
	Endpoint string `json:"endpoint"`
	Domain   string `json:"domain"`
	Page     int    `json:"page"`
	Offset   int    `json:"offset,omitempty"`
	Limit    int    `json:"limit,omitempty"`
	Cursor   string `json:"cursor,omitempty"`
	// Plan is the domain's total as known to whoever planned this page
	// (page 1's answer, or a later page's that saw the total grow): a
	// page whose answer reports more adds the pages beyond it.
	Plan int `json:"plan,omitempty"`
	// Change is a refresh's delta chain the page belongs to
	// (providers.ChangeNew on odd pages, ChangeLost on even); Full says
	// why a refresh fetches the domain in full.
	Change string `json:"change,omitempty"`
	Full   string `json:"full,omitempty"`
	// Attempt > 0 names a later task for the same page: one fetched again
	// after its answer was lost (its first task may still be archived).
	Attempt int `json:"attempt,omitempty"`
	// Trace carries the W3C trace context from enqueue to the worker.
	Trace map[string]string `json:"trace,omitempty"`
}

// Unit names the page within its job; the task id and the job's
// bookkeeping both derive from it, so a retry or a resubmission names the
// same unit and never makes a second copy.
func (p *PagePayload) Unit() string {
	return p.Provider + "|" + p.Endpoint + "|" + p.Domain + "|" + strconv.Itoa(p.Page)
}

// TaskID is the Asynq task id of a page.
func (p *PagePayload) TaskID() string {
	id := "lh:" + p.Job + ":" + p.Unit()
	if p.Attempt > 0 {
		id += ":a" + strconv.Itoa(p.Attempt)
	}
	return id
}

// parseUnit splits a page unit back into its parts.
func parseUnit(u string) (provider, endpoint, domain string, page int, ok bool) {
	parts := strings.Split(u, "|")
	if len(parts) != 4 {
		return "", "", "", 0, false
	}
	n, err := strconv.Atoi(parts[3])
	if err != nil {
		return "", "", "", 0, false
	}
	return parts[0], parts[1], parts[2], n, true
}

// FinalizePayload asks for a job's manifest and _SUCCESS.
type FinalizePayload struct {
	Job string `json:"job"`
	Gen int64  `json:"gen"`
}

// ValidJobID checks a job id: it names Redis keys and sink prefixes.
func ValidJobID(id string) error {
	if id == "" {
		return errors.New("job id: empty (give an id, or leave --job out for a new one)")
	}
	if len(id) > 64 {
		return fmt.Errorf("job id %q: 1 to 64 characters", ShortID(id))
	}
	for _, r := range id {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '_' || r == '.') || id == "." || id == ".." {
			return fmt.Errorf("job id %q: use letters, digits, '-', '_' and '.'", ShortID(id))
		}
	}
	return nil
}
