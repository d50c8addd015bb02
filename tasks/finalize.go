package tasks

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"time"

	"github.com/hibiken/asynq"

	"github.com/linkharvest/linkharvest/sink"
)

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
