package tasks

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/hibiken/asynq"

	"github.com/linkharvest/linkharvest/providers"
)

// The vendor's "not now", handled apart from failures and throttles:
//
//   - an account stopped until a known time (DataForSEO's daily cost limit,
//     lifted at 00:00 UTC: providers.Error.Until). Every call fails alike
//     until then, so the provider's queue is paused at once, as for any
//     account failure, and a resume task is scheduled on the control queue
//     for that time (one per provider and time: its id names both, so the
//     workers that see the same failure schedule it once). The page waits
//     until then without spending its failure budget;
//   - a request the vendor cannot answer yet (class Pending: DomainCrawler's
//     export of a domain into its index has not finished). The page asks
//     again after the vendor's RetryAfter, up to maxPendingWaits times,
//     counted in Redis across workers and retries; then it fails with the
//     vendor's message, so that a job always ends.

// TypeResume unpauses a provider's queue when its account's stop lifts.
const TypeResume = "lh:resume"

// maxPendingWaits bounds how often one page waits for a vendor that is not
// ready (DomainCrawler asks again after a minute: about three hours).
const maxPendingWaits = 180

// pendingTTL keeps a page's wait count; it outlives any reasonable wait.
const pendingTTL = 7 * 24 * time.Hour

// ResumePayload names the provider to resume and the stop it ends.
type ResumePayload struct {
	Provider string    `json:"provider"`
	Until    time.Time `json:"until"`
}

// unpauser is the half of asynq.Inspector the resume task needs.
type unpauser interface {
	UnpauseQueue(queue string) error
}

// isVendorWait tells the errors vendorWait handles.
func isVendorWait(pe *providers.Error) bool {
	return pe != nil && (pe.Class == providers.Pending || (pe.Account && !pe.Until.IsZero()))
}

// vendorWait turns the vendor's "not now" into what asynq should do: a
// Pending error (not a failure) with the wait as its RetryAfter, or, past
// the bound, a final failure.
func (w *Worker) vendorWait(ctx context.Context, p *PagePayload, pe *providers.Error) error {
	if pe.Account {
		return w.pauseUntil(ctx, p, pe)
	}
	n, err := w.countWait(ctx, p)
	if err != nil {
		return err // Redis trouble: retried like any
	}
	if n > maxPendingWaits {
		return fatal(fmt.Errorf("gave up after waiting %d times for the vendor: %w", maxPendingWaits, pe))
	}
	w.log().InfoContext(ctx, "vendor not ready; the page waits", "provider", p.Provider, "endpoint", p.Endpoint,
		"domain", p.Domain, "page", p.Page, "wait", pe.RetryAfter.String(), "waits", n, "err", pe.Error())
	return pe
}

func (w *Worker) countWait(ctx context.Context, p *PagePayload) (int64, error) {
	return w.Store.countWait(ctx, p.Job, p.Unit(), pendingTTL)
}

// pauseUntil pauses the provider until pe.Until and schedules the resume.
func (w *Worker) pauseUntil(ctx context.Context, p *PagePayload, pe *providers.Error) error {
	until := pe.Until.UTC()
	now := w.now()
	wait := &providers.Error{Provider: pe.Provider, Class: providers.Pending, Code: pe.Code, Message: pe.Message, Account: true, Until: until}
	if !until.After(now) {
		// The stop has lifted since the call was sent (an answer that
		// crossed midnight): ask again soon, pause nothing.
		wait.RetryAfter = time.Second
		return wait
	}
	// The page comes back a little after the resume, not before it.
	wait.RetryAfter = until.Sub(now) + time.Second
	bg := context.WithoutCancel(ctx)
	if w.Pauser != nil {
		if err := w.Pauser.PauseQueue(p.Provider); err != nil && !strings.Contains(err.Error(), "already paused") {
			w.log().Error("pausing provider queue", "provider", p.Provider, "err", err)
		}
	}
	reason := pe.Error() + "; paused until " + until.Format(time.RFC3339) + ", then resumes by itself"
	if err := w.Store.pause(bg, p.Job, p.Provider, reason); err != nil {
		w.log().Error("recording a provider's pause", "provider", p.Provider, "job", p.Job, "err", err)
	}
	b, err := json.Marshal(ResumePayload{Provider: p.Provider, Until: until})
	if err != nil {
		return err
	}
	_, err = w.Client.EnqueueContext(bg, asynq.NewTask(TypeResume, b),
		asynq.TaskID("lh:resume:"+p.Provider+":"+strconv.FormatInt(until.Unix(), 10)), asynq.Queue(ControlQueue),
		asynq.ProcessAt(until), asynq.MaxRetry(MaxRetry), asynq.Retention(24*time.Hour))
	switch {
	case errors.Is(err, asynq.ErrTaskIDConflict):
		// Another worker scheduled it.
	case err != nil:
		// Without the resume the provider would stay paused: let the page
		// fail this attempt (it is retried) rather than wait in silence.
		return fmt.Errorf("scheduling the resume of %s at %s: %w", p.Provider, until.Format(time.RFC3339), err)
	default:
		w.log().Warn("provider account stopped until a known time: queue paused, resume scheduled",
			"provider", p.Provider, "job", p.Job, "until", until.Format(time.RFC3339), "err", pe.Error())
	}
	return wait
}

// processResume unpauses a provider's queue and clears the jobs' pause
// notes. Should the account still fail (another failure arose meanwhile),
// the next call pauses it again, at the cost of the calls in flight.
func (w *Worker) processResume(ctx context.Context, t *asynq.Task) error {
	var rp ResumePayload
	if err := json.Unmarshal(t.Payload(), &rp); err != nil || rp.Provider == "" {
		return fatal(fmt.Errorf("resume task: bad payload: %v", err))
	}
	if u, ok := w.Pauser.(unpauser); ok {
		if err := u.UnpauseQueue(rp.Provider); err != nil && !strings.Contains(err.Error(), "not paused") {
			return fmt.Errorf("resuming provider %s: %w", rp.Provider, err)
		}
	}
	if err := w.Store.ClearPause(ctx, rp.Provider); err != nil {
		return fmt.Errorf("resuming provider %s: %w", rp.Provider, err)
	}
	w.log().Info("provider resumed: its account's stop has lifted", "provider", rp.Provider, "until", rp.Until.Format(time.RFC3339))
	return nil
}
