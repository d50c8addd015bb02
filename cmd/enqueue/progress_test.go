package main

import (
	"strings"
	"testing"
	"time"

	"github.com/linkharvest/linkharvest/tasks"
)

// TestProgressLine: fed status snapshots over time, the plain line says
// pages, rows, spend of budget, calls a minute against the account's
// limit, elapsed time and an ETA.
func TestProgressLine(t *testing.T) {
	t.Parallel()
	t0 := time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)
	limits := accountLimits([]string{"dataforseo"}, func(string) string { return "" })
	type snap struct {
		at time.Duration
		s  tasks.Status
	}
	budget := map[string]float64{"dataforseo": 5}
	for _, tc := range []struct {
		name  string
		snaps []snap
		want  []string
		not   []string
	}{
		{
			name: "running",
			snaps: []snap{
				{0, tasks.Status{State: "running", Tasks: 1500, Ended: 0}},
				{10 * time.Second, tasks.Status{State: "running", Tasks: 1500, Ended: 100}},
				{30 * time.Second, tasks.Status{State: "running", Tasks: 1500, Ended: 500, Records: 500000, Failed: 2,
					Spend: map[string]float64{"dataforseo": 1.5}, Charged: map[string]float64{"dataforseo": 1.5}, Budget: budget}},
			},
			want: []string{"500/1500 pages", "500000 records", "2 failed", "dataforseo spent 1.5 usd of 5 usd",
				"1000 calls/min (limit dataforseo 2000/min)", "elapsed 30s", "ETA 1m0s"},
		},
		{
			// Only the last minute counts: 200 pages in the first minute,
			// then 100 in the next, is 100 a minute.
			name: "last minute only",
			snaps: []snap{
				{0, tasks.Status{State: "running", Tasks: 1000}},
				{60 * time.Second, tasks.Status{State: "running", Tasks: 1000, Ended: 200}},
				{90 * time.Second, tasks.Status{State: "running", Tasks: 1000, Ended: 250}},
				{120 * time.Second, tasks.Status{State: "running", Tasks: 1000, Ended: 300}},
			},
			want: []string{"300/1000 pages", "100 calls/min", "elapsed 2m0s", "ETA 7m0s"},
		},
		{
			name:  "just started",
			snaps: []snap{{0, tasks.Status{State: "running", Tasks: 10}}},
			want:  []string{"0/10 pages", "- calls/min", "elapsed 0s", "ETA -"},
		},
		{
			name: "at the budget",
			snaps: []snap{
				{0, tasks.Status{State: "running", Tasks: 10}},
				{20 * time.Second, tasks.Status{State: "budget", Tasks: 10, Ended: 4, Charged: map[string]float64{"dataforseo": 5}, Budget: budget}},
			},
			want: []string{"dataforseo spent 5 usd of 5 usd", "ETA: stopped at the budget"},
			not:  []string{"ETA -"},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m := newProgressMeter(t0, limits)
			var line string
			for _, sn := range tc.snaps {
				s := sn.s
				m.observe(t0.Add(sn.at), &s)
				line = m.line(t0.Add(sn.at), &s)
			}
			for _, w := range tc.want {
				if !strings.Contains(line, w) {
					t.Errorf("line lacks %q:\n%s", w, line)
				}
			}
			for _, w := range tc.not {
				if strings.Contains(line, w) {
					t.Errorf("line has %q:\n%s", w, line)
				}
			}
			if bar := m.bar(t0.Add(tc.snaps[len(tc.snaps)-1].at), &tc.snaps[len(tc.snaps)-1].s); !strings.Contains(bar, "calls/min") || !strings.Contains(bar, "elapsed") {
				t.Errorf("the bar lacks the rate or the time: %s", bar)
			}
		})
	}
}

// TestAccountLimits: PROVIDER_LIMITS over the defaults, per minute whatever
// the period; a provider without a rate limit has none to show.
func TestAccountLimits(t *testing.T) {
	t.Parallel()
	env := func(v string) func(string) string { return func(string) string { return v } }
	got := accountLimits([]string{"xovi", "dataforseo", "domdetailer"}, env("dataforseo=1000/1m:30,domdetailer=2/1s:5"))
	if len(got) != 2 || got[0] != (accountLimit{"dataforseo", 1000}) || got[1] != (accountLimit{"domdetailer", 120}) {
		t.Errorf("limits %v", got)
	}
	if got := accountLimits([]string{"dataforseo"}, env("")); len(got) != 1 || got[0].perMin != 2000 {
		t.Errorf("default: %v", got)
	}
}
