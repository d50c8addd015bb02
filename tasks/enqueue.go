package tasks

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/hibiken/asynq"
)

// enqueuePages registers pages with their job and enqueues those not yet
// ended. A unit is registered before its task exists, so the job cannot
// look finished between the two; a task id that already exists (a retry
// of the parent, a second submission) is not an error.
func enqueuePages(ctx context.Context, store *Store, client *asynq.Client, job string, maxRetry int, pages []PagePayload) error {
	units := make([]string, len(pages))
	for i := range pages {
		units[i] = pages[i].Unit()
	}
	states, err := store.register(ctx, job, 0, 0, units)
	if err != nil {
		return err
	}
	for i := range pages {
		if states[i] == 0 {
			continue // ended already
		}
		if _, err := enqueuePage(ctx, client, &pages[i], maxRetry); err != nil {
			return err
		}
	}
	return nil
}

func enqueuePage(ctx context.Context, client *asynq.Client, p *PagePayload, maxRetry int) (bool, error) {
	return enqueueTask(ctx, client, TypePage, p.TaskID(), p.Provider, p, maxRetry)
}

// enqueueTask enqueues a task of a provider's queue under its
// deterministic id; false: it exists already.
func enqueueTask(ctx context.Context, client *asynq.Client, typ, id, queue string, payload any, maxRetry int) (bool, error) {
	b, err := json.Marshal(payload)
	if err != nil {
		return false, err
	}
	_, err = client.EnqueueContext(ctx, asynq.NewTask(typ, b),
		asynq.TaskID(id), asynq.Queue(queue), asynq.MaxRetry(maxRetry+retrySlack), asynq.Timeout(TaskTimeout))
	if errors.Is(err, asynq.ErrTaskIDConflict) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("enqueueing %s: %w", id, redisErr(err))
	}
	return true, nil
}

// enqueueFinalize asks for the job's manifest once its last unit ended.
// Its id names the submission generation, so a redelivered last page does
// not finalize twice, and a later resubmission that adds work can.
func enqueueFinalize(ctx context.Context, store *Store, client *asynq.Client, job string) error {
	gen, err := store.gen(ctx, job)
	if err != nil {
		return err
	}
	b, err := json.Marshal(FinalizePayload{Job: job, Gen: gen})
	if err != nil {
		return fmt.Errorf("job %s: %w", job, err)
	}
	_, err = client.EnqueueContext(ctx, asynq.NewTask(TypeFinalize, b),
		asynq.TaskID("lh:"+job+":finalize:"+strconv.FormatInt(gen, 10)), asynq.Queue(ControlQueue),
		asynq.MaxRetry(MaxRetry), asynq.Retention(24*time.Hour))
	if err != nil && !errors.Is(err, asynq.ErrTaskIDConflict) {
		return fmt.Errorf("enqueueing finalize of job %s: %w", job, err)
	}
	return nil
}
