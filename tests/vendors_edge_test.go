package tests

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/hibiken/asynq"

	"github.com/linkharvest/linkharvest/providers/sandbox"
	"github.com/linkharvest/linkharvest/sink"
	"github.com/linkharvest/linkharvest/tasks"
)

// waitFor polls cond until it holds or d passes.
func waitFor(t *testing.T, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %v", what, d)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestVendorAccountFailurePausesAtOnce: an account without funds, and a
// base URL the vendor does not know, fail the first page with the
// vendor's message and pause the provider's queue after one call, so the
// rest of the job does not burn on it. DomainCrawler documents no
// out-of-funds error, so it has no case here.
func TestVendorAccountFailurePausesAtOnce(t *testing.T) {
	cases := []struct {
		name, provider string
		env            map[string]string
		message        string
	}{
		{"dataforseo no funds", "dataforseo", map[string]string{"DATAFORSEO_LOGIN": sandbox.NoFunds}, "40200: Payment Required."},
		{"dataforseo insufficient funds", "dataforseo", map[string]string{"DATAFORSEO_LOGIN": "insufficient"}, "40210: Insufficient Funds."},
		{"dataforseo base URL", "dataforseo", map[string]string{"DATAFORSEO_BASE_URL": "{base}/v3"}, "40400: Not Found."},
		{"dataforseo path", "dataforseo", map[string]string{"DATAFORSEO_BASE_URL": "{base}/v3/backlinks"}, "40402: Invalid Path."},
		{"domdetailer no funds", "domdetailer", map[string]string{"DOMDETAILER_APIKEY": sandbox.NoFunds}, "http 402: insufficient_credits: Out of credits"},
		{"xovi no funds", "xovi", map[string]string{"XOVI_KEY": sandbox.NoFunds}, "cost error"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			ip := startInProcess(t, sandbox.Options{Seed: 1}, c.env, "file://"+t.TempDir())
			job := "acct-" + strings.ReplaceAll(c.name, " ", "-")
			ip.submit(t, job, oneEndpoint(c.provider, "backlinks"), "rows-10.example")
			st := waitDone(t, ip.store, job, time.Minute)
			if st.Failed != 1 {
				t.Fatalf("status %+v: want the page failed", st)
			}
			if calls := ip.sb.Stats()[c.provider].Calls; calls != 1 {
				t.Errorf("%d calls, want exactly 1", calls)
			}
			if why := st.Paused[c.provider]; !strings.Contains(why, c.message) {
				t.Errorf("pause reason %q lacks the vendor's message %q", why, c.message)
			}
			qi, err := asynq.NewInspectorFromRedisClient(ip.store.Redis()).GetQueueInfo(c.provider)
			if err != nil || !qi.Paused {
				t.Errorf("queue %s not paused (%v)", c.provider, err)
			}
		})
	}
}

// TestDataForSEOCostLimitPausesUntilMidnight: the owner's daily cost limit
// (40203) pauses the provider after one call until the next 00:00 UTC,
// which status states; the page is not failed and waits; a resume task is
// scheduled for that moment on the control queue, and when it runs (run
// here at once, as the clock would at midnight) the queue is unpaused and
// the pause note cleared.
func TestDataForSEOCostLimitPausesUntilMidnight(t *testing.T) {
	ip := startInProcess(t, sandbox.Options{Seed: 1}, map[string]string{"DATAFORSEO_LOGIN": "costlimit"}, "file://"+t.TempDir())
	before := time.Now().UTC()
	ip.submit(t, "costlimit", oneEndpoint("dataforseo", "backlinks"), "rows-10.example")
	insp := asynq.NewInspectorFromRedisClient(ip.store.Redis())
	var st *tasks.Status
	waitFor(t, 30*time.Second, "the pause", func() bool {
		var err error
		st, err = ip.store.Status(context.Background(), "costlimit")
		return err == nil && st.Paused["dataforseo"] != ""
	})
	y, m, d := before.Date()
	midnight := time.Date(y, m, d+1, 0, 0, 0, 0, time.UTC)
	why := st.Paused["dataforseo"]
	if !strings.Contains(why, "40203") || !strings.Contains(why, "paused until "+midnight.Format(time.RFC3339)) {
		t.Errorf("pause reason %q: want 40203 and until %s", why, midnight.Format(time.RFC3339))
	}
	if qi, err := insp.GetQueueInfo("dataforseo"); err != nil || !qi.Paused {
		t.Fatalf("queue not paused (%v)", err)
	}
	// The page waits: not failed, not archived, retried after midnight.
	waitFor(t, 10*time.Second, "the page's retry", func() bool {
		rt, err := insp.ListRetryTasks("dataforseo")
		return err == nil && len(rt) == 1
	})
	rt, _ := insp.ListRetryTasks("dataforseo")
	if !rt[0].NextProcessAt.After(midnight.Add(-time.Second)) || rt[0].Retried != 0 {
		t.Errorf("the page retries at %v after %d failures; want after %v, none counted", rt[0].NextProcessAt, rt[0].Retried, midnight)
	}
	if st.Failed != 0 || st.Done() {
		t.Errorf("status %+v: the page must wait, not fail", st)
	}
	if calls := ip.sb.Stats()["dataforseo"].Calls; calls != 1 {
		t.Errorf("%d calls, want 1", calls)
	}
	sched, err := insp.ListScheduledTasks(tasks.ControlQueue)
	if err != nil {
		t.Fatal(err)
	}
	var resume *asynq.TaskInfo
	for _, ti := range sched {
		if ti.Type == tasks.TypeResume {
			if resume != nil {
				t.Errorf("two resume tasks: %s and %s", resume.ID, ti.ID)
			}
			resume = ti
		}
	}
	if resume == nil || !resume.NextProcessAt.Equal(midnight) {
		t.Fatalf("resume task %+v: want one at %v", resume, midnight)
	}
	// Midnight, now.
	if err := insp.RunTask(tasks.ControlQueue, resume.ID); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 30*time.Second, "the resume", func() bool {
		qi, err := insp.GetQueueInfo("dataforseo")
		s, serr := ip.store.Status(context.Background(), "costlimit")
		return err == nil && serr == nil && !qi.Paused && s.Paused["dataforseo"] == ""
	})
}

// TestDomainCrawlerUnfinishedWaits: exports the vendor has not finished
// (exportFinished: false, three times per domain here) are waited for,
// not failed: with no retries allowed at all, every page ends ok with
// every row once, after one wait per unfinished answer.
func TestDomainCrawlerUnfinishedWaits(t *testing.T) {
	dir := t.TempDir()
	const unfinished = 3
	ip := startInProcess(t, sandbox.Options{Seed: 4, Unfinished: unfinished}, map[string]string{"DOMAINCRAWLER_UNFINISHED_WAIT": "50ms"}, "file://"+dir)
	domains := []string{"rows-1.example", "rows-2500.example", "rows-12000.example", "gamma.example.com"}
	spec := oneEndpoint("domaincrawler", "backlinks")
	zero := 0
	spec.MaxRetry = &zero
	ip.submit(t, "unfinished", spec, domains...)
	st := waitDone(t, ip.store, "unfinished", 2*time.Minute)
	if st.Failed != 0 {
		t.Fatalf("status %+v: pages failed on an unfinished export", st)
	}
	// rows-12000 takes two pages of 10,000; the second is asked after the
	// export finished.
	if calls, want := ip.sb.Stats()["domaincrawler"].Calls, int64(len(domains)*(unfinished+1)+1); calls != want {
		t.Errorf("%d calls, want %d (each domain's first page asked %d times, then once more for rows-12000)", calls, want, unfinished+1)
	}
	clean := startInProcess(t, sandbox.Options{Seed: 4}, nil, "file://"+t.TempDir())
	snk, err := sink.Open(context.Background(), "file://"+dir)
	if err != nil {
		t.Fatal(err)
	}
	verifyOutput(t, snk, "unfinished", map[string]map[string][]string{
		"domaincrawler/backlinks": expectedRows(t, clean.base, "domaincrawler", "backlinks", nil, domains)}, 0)
}

// TestDataForSEOAccountRateBelowConfigured: the account allows fewer calls
// than configured (the sandbox at 10 per 10 s states 60 a minute in
// X-RateLimit-Limit; the workers are configured for 2000 a minute). Once a
// first answer has stated it, the shared limiter paces every call by the
// account's limit: the vendor throttles nothing (at most the one call
// granted before the statement could count against a window), and every
// row arrives once.
func TestDataForSEOAccountRateBelowConfigured(t *testing.T) {
	dir := t.TempDir()
	ip := startInProcess(t, sandbox.Options{Seed: 5, Rate: 10, Period: 10 * time.Second}, nil, "file://"+dir)
	ip.submit(t, "learn", oneEndpoint("dataforseo", "backlinks"), "rows-3.example")
	waitDone(t, ip.store, "learn", time.Minute)
	var domains []string
	for i := 0; i < 20; i++ {
		domains = append(domains, fmt.Sprintf("rows-%d.r%02d.example", 5+i, i))
	}
	ip.submit(t, "paced", oneEndpoint("dataforseo", "backlinks"), domains...)
	st := waitDone(t, ip.store, "paced", 2*time.Minute)
	stats := ip.sb.Stats()["dataforseo"]
	t.Logf("sandbox: %+v", stats)
	if st.Failed != 0 {
		t.Fatalf("status %+v", st)
	}
	if stats.Throttled > 1 || stats.MaxCallsInWindow > 11 {
		t.Errorf("the vendor throttled %d calls, busiest window %d calls of 10 allowed: the account's limit was not followed", stats.Throttled, stats.MaxCallsInWindow)
	}
	clean := startInProcess(t, sandbox.Options{Seed: 5}, nil, "file://"+t.TempDir())
	snk, err := sink.Open(context.Background(), "file://"+dir)
	if err != nil {
		t.Fatal(err)
	}
	verifyOutput(t, snk, "paced", map[string]map[string][]string{
		"dataforseo/backlinks": expectedRows(t, clean.base, "dataforseo", "backlinks", nil, domains)}, 0)
}
