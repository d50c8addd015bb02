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
// terminal and plain lines otherwise (logs, CI). Both say the same:
// pages, rows, spend (of the budget), calls a minute against the
// account's limit, the time since the wait began and an ETA.
func waitJob(ctx context.Context, store *tasks.Store, job string, out io.Writer) (*tasks.Status, error) {
	tty := false
	if f, ok := out.(*os.File); ok {
		tty = term.IsTerminal(int(f.Fd()))
	}
	var provs []string
	if j, err := store.Job(ctx, job); err == nil {
		provs = j.Spec.Providers
	}
	pm := newProgressMeter(time.Now(), accountLimits(provs, os.Getenv))
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
			now := time.Now()
			pm.observe(now, s)
			if tty {
				fmt.Fprintf(out, "\r%s", pm.bar(now, s))
			} else if time.Since(lastLine) >= 5*time.Second || s.Done() || s.BudgetStopped() {
				fmt.Fprintln(out, pm.line(now, s))
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

// accountLimit is a provider account's calls a minute, as the workers hold it.
type accountLimit struct {
	provider string
	perMin   float64
}

// accountLimits are the job's providers' rate limits: PROVIDER_LIMITS over
// the defaults, as a worker reads them (a limit that does not parse is
// left out: the worker would refuse it, the progress line need not).
func accountLimits(provs []string, getenv func(string) string) []accountLimit {
	lims, _ := vendorLimits(getenv("PROVIDER_LIMITS")) // estimate.go
	var out []accountLimit
	for _, p := range slices.Sorted(slices.Values(provs)) {
		if l, ok := lims[p]; ok && l.Rate > 0 && l.Period > 0 {
			out = append(out, accountLimit{p, float64(l.Rate) * float64(time.Minute) / float64(l.Period)})
		}
	}
	return out
}

// rateWindow is how far back calls a minute look.
const rateWindow = time.Minute

// progressMeter turns successive status snapshots into rates: each ended
// page is one call answered, so pages ended over the last minute are the
// job's calls a minute (throttled calls and retries not counted).
type progressMeter struct {
	start   time.Time
	limits  []accountLimit
	samples []progressSample // oldest first, spanning at least rateWindow once it has run that long
}

type progressSample struct {
	at    time.Time
	ended int64
}

func newProgressMeter(start time.Time, limits []accountLimit) *progressMeter {
	return &progressMeter{start: start, limits: limits}
}

func (m *progressMeter) observe(now time.Time, s *tasks.Status) {
	m.samples = append(m.samples, progressSample{now, s.Ended})
	// Keep one sample at or before the window's start, drop older ones.
	for len(m.samples) > 2 && now.Sub(m.samples[1].at) >= rateWindow {
		m.samples = m.samples[1:]
	}
}

// perMinute is pages ended a minute over the window; ok is false until
// there is a second's worth of samples.
func (m *progressMeter) perMinute() (float64, bool) {
	if len(m.samples) < 2 {
		return 0, false
	}
	first, last := m.samples[0], m.samples[len(m.samples)-1]
	d := last.at.Sub(first.at)
	if d < time.Second {
		return 0, false
	}
	return float64(last.ended-first.ended) / d.Minutes(), true
}

// facts are the rate, elapsed time and ETA, e.g. "1000 calls/min (limit
// dataforseo 2000/min), elapsed 30s, ETA 1m0s".
func (m *progressMeter) facts(now time.Time, s *tasks.Status) string {
	var b strings.Builder
	rate, ok := m.perMinute()
	if ok {
		fmt.Fprintf(&b, "%.0f calls/min", rate)
	} else {
		b.WriteString("- calls/min")
	}
	if len(m.limits) > 0 {
		parts := make([]string, len(m.limits))
		for i, l := range m.limits {
			parts[i] = fmt.Sprintf("%s %.0f/min", l.provider, l.perMin)
		}
		fmt.Fprintf(&b, " (limit %s)", strings.Join(parts, ", "))
	}
	fmt.Fprintf(&b, ", elapsed %s", now.Sub(m.start).Truncate(time.Second))
	left := s.Tasks - s.Ended
	switch {
	case s.Done():
	case s.BudgetStopped():
		b.WriteString(", ETA: stopped at the budget")
	case ok && rate > 0 && left >= 0:
		eta := time.Duration(float64(left) / rate * float64(time.Minute))
		fmt.Fprintf(&b, ", ETA %s", eta.Round(time.Second))
	default:
		b.WriteString(", ETA -")
	}
	return b.String()
}

// line is the plain progress line.
func (m *progressMeter) line(now time.Time, s *tasks.Status) string {
	return fmt.Sprintf("progress: %d/%d pages, %d records, %d failed%s, %s",
		s.Ended, s.Tasks, s.Records, s.Failed, spendLine(s), m.facts(now, s))
}

// bar is the terminal's progress line, redrawn in place.
func (m *progressMeter) bar(now time.Time, s *tasks.Status) string {
	const width = 30
	frac := 0.0
	if s.Tasks > 0 {
		frac = float64(s.Ended) / float64(s.Tasks)
	}
	n := int(frac * width)
	line := fmt.Sprintf("[%s%s] %3.0f%% %d/%d pages  %d records  %d failed",
		strings.Repeat("=", n), strings.Repeat(" ", width-n), frac*100, s.Ended, s.Tasks, s.Records, s.Failed)
	line += spendLine(s) + "  " + m.facts(now, s)
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
