package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/linkharvest/linkharvest/tasks"
)

// specFlag names the flags that make a job's spec: a refresh takes its
// base job's, and refuses others.
var specFlag = map[string]bool{"provider": true, "endpoint": true, "param": true, "max-rows": true, "max-retries": true}

// checkRefreshFlags checks the flags that go with --refresh.
func checkRefreshFlags(o options, stderr io.Writer) (int, bool) {
	if o.refresh == "" {
		if o.since != "" {
			fmt.Fprintln(stderr, "enqueue: --since works with --refresh only")
			return exitUsage, false
		}
		return 0, true
	}
	if err := tasks.ValidJobID(o.refresh); err != nil {
		fmt.Fprintln(stderr, "enqueue: --refresh:", err)
		return exitUsage, false
	}
	if o.job == o.refresh {
		fmt.Fprintln(stderr, "enqueue: --job: a refresh is a job of its own; give it another id than its base job")
		return exitUsage, false
	}
	return 0, true
}

// refreshJob loads the base job and makes the refresh's spec, its budget
// and, without FILE, the base job's domains as the list to read.
func refreshJob(ctx context.Context, store *tasks.Store, o options) (tasks.Spec, map[string]float64, io.Reader, error) {
	base, err := store.Job(ctx, o.refresh)
	if errors.Is(err, tasks.ErrNoJob) {
		return tasks.Spec{}, nil, nil, usageError{fmt.Errorf("--refresh %s: no such job (or its state expired after the workers' retention)", o.refresh)}
	}
	if err != nil {
		return tasks.Spec{}, nil, nil, err
	}
	st, err := store.Status(ctx, o.refresh)
	if err != nil {
		return tasks.Spec{}, nil, nil, err
	}
	spec, err := tasks.NewRefreshSpec(tasks.RefreshRequest{Base: base, State: st.State, Since: o.since, Now: time.Now()})
	if err != nil {
		return tasks.Spec{}, nil, nil, usageError{err}
	}
	if len(o.specFlags) > 0 {
		asked, err := buildSpec(o)
		if err != nil {
			return tasks.Spec{}, nil, nil, usageError{err}
		}
		if !sameSpec(asked, base.Spec) {
			return tasks.Spec{}, nil, nil, usageError{fmt.Errorf("--refresh %s takes its base job's providers, endpoints and options; --%s ask for others (leave them out)",
				o.refresh, strings.Join(o.specFlags, ", --"))}
		}
	}
	var budget map[string]float64
	if o.budget != "" {
		if budget, err = tasks.ParseBudget(o.budget, spec.Providers); err != nil {
			return tasks.Spec{}, nil, nil, usageError{err}
		}
	}
	if len(o.files) > 0 {
		return spec, budget, nil, nil
	}
	pr, pw := io.Pipe()
	go func() {
		pw.CloseWithError(store.Domains(ctx, o.refresh, func(d string) error {
			_, err := io.WriteString(pw, d+"\n")
			return err
		}))
	}()
	return spec, budget, pr, nil
}

// sameSpec compares what two specs ask of the vendors, as the job store
// compares a resubmission's spec: by their JSON (map keys sorted).
func sameSpec(a, b tasks.Spec) bool {
	a.Refresh, b.Refresh = nil, nil
	ja, erra := json.Marshal(a)
	jb, errb := json.Marshal(b)
	return erra == nil && errb == nil && bytes.Equal(ja, jb)
}
