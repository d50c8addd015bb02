package tasks

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/hibiken/asynq"
)

// ArchiveLister lists a queue's archived tasks (asynq.Inspector).
type ArchiveLister interface {
	ListArchivedTasks(queue string, opts ...asynq.ListOption) ([]*asynq.TaskInfo, error)
}

// ReconcileArchived ends, as failed, the still open units of page tasks in
// the queues' archives, and returns how many it ended. asynq's recoverer
// archives a task whose lease expired (its worker died mid-task) once its
// retries are spent without calling the error handler, so nothing else
// would end that unit and its job would never finish. Ending a unit is
// idempotent, so every worker may sweep at any time.
func (w *Worker) ReconcileArchived(ctx context.Context, lister ArchiveLister, queues []string) (int, error) {
	const pageSize = 500
	n := 0
	for _, q := range queues {
		for pg := 1; ; pg++ {
			infos, err := lister.ListArchivedTasks(q, asynq.PageSize(pageSize), asynq.Page(pg))
			if errors.Is(err, asynq.ErrQueueNotFound) {
				break
			}
			if err != nil {
				return n, fmt.Errorf("listing the archived tasks of queue %s: %w", q, err)
			}
			for _, ti := range infos {
				ended, err := w.reconcile(ctx, ti)
				if err != nil {
					return n, err
				}
				if ended {
					n++
				}
			}
			if len(infos) < pageSize {
				break
			}
		}
	}
	return n, nil
}

func (w *Worker) reconcile(ctx context.Context, ti *asynq.TaskInfo) (bool, error) {
	if ti.Type != TypePage {
		return false, nil
	}
	var p PagePayload
	if json.Unmarshal(ti.Payload, &p) != nil {
		return false, nil
	}
	unit := p.Unit()
	open, err := w.Store.isOpen(ctx, p.Job, unit)
	if err != nil || !open {
		return false, err
	}
	msg := ti.LastErr
	if msg == "" {
		msg = "archived without an error (its retries were spent)"
	}
	w.log().Error("ending a page that asynq archived without reporting it", "task", ti.ID, "job", p.Job, "err", msg)
	if err := w.endUnit(ctx, p.Job, unit, Outcome{Status: "failed", Error: msg}, true); err != nil {
		return false, err
	}
	return true, nil
}

// SweepArchived runs ReconcileArchived every interval until ctx ends.
func (w *Worker) SweepArchived(ctx context.Context, lister ArchiveLister, queues []string, every time.Duration) {
	tick(ctx, every, func() bool {
		if _, err := w.ReconcileArchived(ctx, lister, queues); err != nil && ctx.Err() == nil {
			w.log().Warn("sweeping archived tasks", "err", err)
		}
		return true
	})
}

// tick calls fn every interval until ctx ends or fn returns false.
func tick(ctx context.Context, every time.Duration, fn func() bool) {
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		if !fn() {
			return
		}
	}
}

// SweepSubmissions ends, every interval until ctx ends, the submissions
// whose process died (their lease expired), and finalizes the jobs they
// were the last to hold open. Every worker may sweep at any time: each
// step is atomic and idempotent.
func (w *Worker) SweepSubmissions(ctx context.Context, every time.Duration) {
	tick(ctx, every, func() bool {
		if err := w.sweepSubmissions(ctx); err != nil && ctx.Err() == nil {
			w.log().Warn("sweeping submissions", "err", err)
		}
		return true
	})
}

func (w *Worker) sweepSubmissions(ctx context.Context) error {
	zs, err := w.Store.expiredSubmissions(ctx, 100)
	if err != nil {
		return err
	}
	for _, z := range zs {
		job := z.Member.(string)
		// First the tasks a dead submission may not have created, then
		// its end: a crash in between leaves both to the next sweep.
		batches, err := w.Store.deadBatches(ctx, job)
		if err != nil {
			return err
		}
		for gen, units := range batches {
			if err := w.enqueueUnits(ctx, job, units); err != nil {
				return err
			}
			if err := w.Store.batchDone(ctx, job, gen); err != nil {
				return err
			}
		}
		finish, err := w.Store.sweepSub(ctx, z)
		if err != nil {
			return err
		}
		if len(batches) > 0 {
			w.log().Warn("a submission ended before reading its whole list; the job holds what it had read: resubmit the same list with the same --job to complete it", "job", job)
		}
		if finish {
			if err := enqueueFinalize(ctx, w.Store, w.Client, job); err != nil {
				return err
			}
		}
	}
	return nil
}

// enqueueUnits creates the tasks of first-page units (what submissions
// register); ids are deterministic, so a task that exists is not doubled.
func (w *Worker) enqueueUnits(ctx context.Context, job string, units []string) error {
	if len(units) == 0 {
		return nil
	}
	j, err := w.job(ctx, job)
	if err != nil {
		return err
	}
	var pages []PagePayload
	for _, u := range units {
		provider, endpoint, domain, page, ok := parseUnit(u)
		if !ok {
			continue
		}
		pages = append(pages, PagePayload{Job: job, Provider: provider, Endpoint: endpoint, Domain: domain, Page: page})
	}
	_, err = enqueueFirst(ctx, w.Client, &j.Spec, pages, 0)
	return err
}
