package main

import (
	"context"
	"fmt"
	"io"
	"maps"
	"os"
	"slices"
	"strings"
	"time"

	"golang.org/x/term"

	"github.com/linkharvest/linkharvest/tasks"
)

// waitJob polls the job until it is done, drawing a progress bar on a
// terminal and plain lines otherwise (logs, CI).
func waitJob(ctx context.Context, store *tasks.Store, job string, out io.Writer) (*tasks.Status, error) {
	tty := false
	if f, ok := out.(*os.File); ok {
		tty = term.IsTerminal(int(f.Fd()))
	}
	tick := time.NewTicker(250 * time.Millisecond)
	defer tick.Stop()
	lastLine := time.Time{}
	var lastErr error
	for {
		s, err := store.Status(ctx, job)
		if err != nil {
			// Redis may be restarting: keep waiting, say so once.
			if lastErr == nil {
				fmt.Fprintf(out, "waiting for redis: %v\n", err)
			}
			lastErr = err
		} else {
			lastErr = nil
			if tty {
				fmt.Fprintf(out, "\r%s", bar(s))
			} else if time.Since(lastLine) >= 5*time.Second || s.Done() || s.BudgetStopped() {
				fmt.Fprintf(out, "progress: %d/%d pages, %d records, %d failed%s\n", s.Ended, s.Tasks, s.Records, s.Failed, spendLine(s))
				lastLine = time.Now()
			}
			if s.Done() || s.BudgetStopped() {
				if tty {
					fmt.Fprintln(out)
				}
				return s, nil
			}
			if len(s.Paused) > 0 && time.Since(lastLine) >= 5*time.Second && !tty {
				for p, why := range s.Paused {
					fmt.Fprintf(out, "provider %s paused: %s\n", p, why)
				}
			}
		}
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("stopped waiting (the job goes on; `enqueue status %s`): %w", job, ctx.Err())
		case <-tick.C:
		}
	}
}

func bar(s *tasks.Status) string {
	const width = 30
	frac := 0.0
	if s.Tasks > 0 {
		frac = float64(s.Ended) / float64(s.Tasks)
	}
	n := int(frac * width)
	line := fmt.Sprintf("[%s%s] %3.0f%% %d/%d pages  %d records  %d failed",
		strings.Repeat("=", n), strings.Repeat(" ", width-n), frac*100, s.Ended, s.Tasks, s.Records, s.Failed)
	line += spendLine(s)
	if len(s.Paused) > 0 {
		line += "  PAUSED"
	}
	if s.BudgetStopped() {
		line += "  BUDGET REACHED"
	}
	return line + "   "
}

// spendLine is the spend per provider, of its budget where it has one.
func spendLine(s *tasks.Status) string {
	var b strings.Builder
	seen := map[string]bool{}
	for p := range s.Spend {
		seen[p] = true
	}
	for p := range s.Budget {
		seen[p] = true
	}
	for _, p := range slices.Sorted(maps.Keys(seen)) {
		if lim, ok := s.Budget[p]; ok {
			fmt.Fprintf(&b, ", %s spent %s of %s", p, tasks.FormatAmount(s.Charged[p], p), tasks.FormatAmount(lim, p))
		} else {
			fmt.Fprintf(&b, ", %s spent %s", p, tasks.FormatAmount(s.Spend[p], p))
		}
	}
	return b.String()
}
