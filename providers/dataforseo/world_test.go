package dataforseo

import (
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"math"
	"strings"
	"testing"
	"time"

	"github.com/linkharvest/linkharvest/providers"
	"github.com/linkharvest/linkharvest/providers/sandbox"
)

func mustDay(t *testing.T, s string) time.Time {
	t.Helper()
	d, err := sandbox.ParseDay(s)
	if err != nil {
		t.Fatal(err)
	}
	return d
}

// With churn 0 the answers are, byte for byte, what the sandbox answered
// before its world changed over time: the hashes are of results recorded
// from that sandbox (seed 1), whatever the day.
func TestSandboxChurnZeroUnchanged(t *testing.T) {
	const bl = "/v3/backlinks/backlinks/live"
	golden := []struct{ path, body, sum string }{
		{bl, `[{"target":"rows-25000.example","limit":1000}]`, "8f16fa81a213480e"},
		{bl, `[{"target":"rows-25000.example","limit":1000,"offset":20000}]`, "346bbcea32ceb0df"},
		{bl, `[{"target":"rows-25000.example","limit":1000,"offset":20000,"search_after_token":"TOKEN"}]`, "4ce5198eac6219ff"},
		{bl, `[{"target":"example.com","limit":1000,"filters":[["dofollow","=",true],"and",["page_from_rank",">",5]],"backlinks_status_type":"live","mode":"one_per_domain"}]`, "f704fffdbf33af24"},
		{bl, `[{"target":"https://rows-3.example/pricing","limit":3}]`, "c4aa81d61b4d661c"},
		{bl, `[{"target":"grow-10-20.example"}]`, "6ba06499439a2105"},
		{bl, `[{"target":"grow-10-20.example","offset":5}]`, "8c8e87246addc621"},
		{"/v3/backlinks/summary/live", `[{"target":"a.com"}]`, "5774ae970de95997"},
		{bulkBacklinksPath, `[{"targets":["a.com","rows-5.example","https://rows-3.example/pricing"]}]`, "ec32ec5fd5178158"},
	}
	for k, o := range []sandbox.Options{{Seed: 1}, {Seed: 1, Today: mustDay(t, "2025-06-01")}, {Seed: 1, Today: mustDay(t, "2031-02-10")}} {
		t.Run(fmt.Sprint(k), func(t *testing.T) {
			_, _, base := newSandbox(t, o)
			tok := "" // the token of the previous answer
			for _, g := range golden {
				_, env := post(t, base+g.path, "user", strings.Replace(g.body, "TOKEN", tok, 1))
				if len(env.Tasks) != 1 || len(env.Tasks[0].Result) != 1 {
					t.Fatalf("%s: %+v", g.body, env)
				}
				res := env.Tasks[0].Result[0]
				var r struct {
					Token string `json:"search_after_token"`
				}
				json.Unmarshal(res, &r)
				tok = r.Token
				if sum := fmt.Sprintf("%x", sha256.Sum256(res))[:16]; sum != g.sum {
					t.Errorf("%s: result %s, want %s as before", g.body, sum, g.sum)
				}
			}
		})
	}
}

// drawnSeen, which filters use, finds the dates and is_new that appendRow
// writes.
func TestSandboxDrawnSeen(t *testing.T) {
	for _, target := range []string{"rows-2000.example", "https://rows-9.example/pricing", "example.com"} {
		g := newRowGen(3, target)
		for i := range 2000 {
			var row struct {
				IsNew     bool   `json:"is_new"`
				FirstSeen string `json:"first_seen"`
				PrevSeen  string `json:"prev_seen"`
				LastSeen  string `json:"last_seen"`
			}
			if err := json.Unmarshal(g.appendRow(nil, i), &row); err != nil {
				t.Fatal(err)
			}
			f, p, l, isNew := g.drawnSeen(i)
			got := fmt.Sprintf("%s | %s | %s | %v", appendSeen(nil, f), appendSeen(nil, p), appendSeen(nil, l), isNew)
			if want := fmt.Sprintf("%s | %s | %s | %v", row.FirstSeen, row.PrevSeen, row.LastSeen, row.IsNew); got != want {
				t.Fatalf("%s row %d: drawn %s, written %s", target, i, got, want)
			}
		}
	}
}

// seenRow is what the world tests read of a row.
type seenRow struct {
	key               string // url_from url_to
	first, prev, last int64
	isNew, isLost     bool
	firstS            string
}

func readRows(t *testing.T, items []providers.Item) []seenRow {
	t.Helper()
	out := make([]seenRow, len(items))
	for k, it := range items {
		var r struct {
			URLFrom   string `json:"url_from"`
			URLTo     string `json:"url_to"`
			IsNew     bool   `json:"is_new"`
			IsLost    bool   `json:"is_lost"`
			FirstSeen string `json:"first_seen"`
			PrevSeen  string `json:"prev_seen"`
			LastSeen  string `json:"last_seen"`
		}
		if err := json.Unmarshal(it.Raw, &r); err != nil {
			t.Fatal(err)
		}
		at := func(s string) int64 {
			v, ok := parseSeen(s)
			if !ok {
				t.Fatalf("date %q", s)
			}
			return v
		}
		out[k] = seenRow{key: r.URLFrom + " " + r.URLTo, first: at(r.FirstSeen), prev: at(r.PrevSeen), last: at(r.LastSeen),
			isNew: r.IsNew, isLost: r.IsLost, firstS: r.FirstSeen}
	}
	return out
}

func keys(rows []seenRow) map[string]bool {
	m := make(map[string]bool, len(rows))
	for _, r := range rows {
		m[r.key] = true
	}
	return m
}

// params builds a request's options from JSON members.
func params(members ...string) map[string]json.RawMessage {
	p := map[string]json.RawMessage{}
	for k := 0; k+1 < len(members); k += 2 {
		p[members[k]] = json.RawMessage(members[k+1])
	}
	return p
}

// newLostCount asks bulk_new_lost_backlinks for targets over HTTP.
func newLostCount(t *testing.T, base string, dateFrom string, targets ...string) map[string][2]int {
	t.Helper()
	tj, _ := json.Marshal(targets)
	task := `{"targets":` + string(tj)
	if dateFrom != "" {
		task += `,"date_from":"` + dateFrom + `"`
	}
	_, env := post(t, base+bulkNewLostPath, "user", "["+task+"}]")
	if len(env.Tasks) != 1 || env.Tasks[0].StatusCode != 20000 {
		t.Fatalf("bulk_new_lost: %+v", env)
	}
	var res struct {
		Items []struct {
			Type   string `json:"type"`
			Target string `json:"target"`
			New    int    `json:"new_backlinks"`
			Lost   int    `json:"lost_backlinks"`
		} `json:"items"`
	}
	if err := json.Unmarshal(env.Tasks[0].Result[0], &res); err != nil || len(res.Items) != len(targets) {
		t.Fatalf("%s: %v", env.Tasks[0].Result[0], err)
	}
	out := map[string][2]int{}
	for _, it := range res.Items {
		if it.Type != "backlinks_bulk_new_lost_backlinks" {
			t.Errorf("item type %q", it.Type)
		}
		out[it.Target] = [2]int{it.New, it.Lost}
	}
	return out
}

// A rows-N domain keeps N live rows every day, whatever the churn; the
// bulk count says N too.
func TestSandboxWorldKeepsN(t *testing.T) {
	for _, tc := range []struct {
		domain string
		n      int
	}{{"rows-1.example", 1}, {"rows-7.example", 7}, {"rows-1000.example", 1000}, {"rows-25000.example", 25000}} {
		for _, d := range []string{"2024-01-01", "2024-03-17", "2025-01-15", "2026-07-30", "2031-02-10"} {
			o := sandbox.Options{Seed: 2, Churn: 1, Today: mustDay(t, d)}
			h := o.World().History(tc.domain, sandbox.Total(2, Name, "backlinks", tc.domain))
			if lo, hi := h.Live(); hi-lo != tc.n {
				t.Errorf("%s on %s: live [%d, %d)", tc.domain, d, lo, hi)
			}
			if d > "2024-03-01" && len(h.Events) == 0 {
				t.Errorf("%s on %s: churn 1 and no change", tc.domain, d)
			}
			_, _, base := newSandbox(t, o)
			_, env := post(t, base+"/v3/backlinks/backlinks/live", "user", `[{"target":"`+tc.domain+`","limit":1}]`)
			var r struct {
				Total int `json:"total_count"`
			}
			if json.Unmarshal(env.Tasks[0].Result[0], &r); r.Total != tc.n {
				t.Errorf("%s on %s: total_count %d", tc.domain, d, r.Total)
			}
			_, env = post(t, base+bulkBacklinksPath, "user", `[{"targets":["`+tc.domain+`"]}]`)
			if !strings.Contains(string(env.Tasks[0].Result[0]), fmt.Sprintf(`"backlinks":%d}`, tc.n)) {
				t.Errorf("%s on %s: bulk %s", tc.domain, d, env.Tasks[0].Result[0])
			}
		}
	}
}

// The world on a day is seen at its 00:00:00: a change on day E shows
// from E+1 on, its new rows first seen and its lost rows last seen on E.
func TestSandboxWorldChangeDay(t *testing.T) {
	const domain = "rows-1000.example"
	o := sandbox.Options{Seed: 5, Churn: 1, Today: mustDay(t, "2025-06-01")}
	h := o.World().History(domain, 1000)
	if len(h.Events) < 3 {
		t.Fatalf("%d changes", len(h.Events))
	}
	e := h.Events[len(h.Events)-2]
	onE := e.Day.Format(time.DateOnly)
	filter := `["first_seen",">=","` + onE + `"]`
	for _, tc := range []struct {
		today      time.Time
		new, lost  int
		startAfter int
	}{
		{e.Day, 0, 0, e.Start - e.K},
		{e.Day.AddDate(0, 0, 1), e.K, e.K, e.Start},
	} {
		o.Today = tc.today
		if lo, _ := o.World().History(domain, 1000).Live(); lo != tc.startAfter {
			t.Errorf("on %s: first live row %d, want %d", tc.today, lo, tc.startAfter)
		}
		c, _, base := newSandbox(t, o)
		added := readRows(t, pageItems(t, c, domain, params("filters", filter)))
		lost := readRows(t, pageItems(t, c, domain, params("backlinks_status_type", `"lost"`, "filters", strings.Replace(filter, "first_seen", "last_seen", 1))))
		if len(added) != tc.new || len(lost) != tc.lost {
			t.Fatalf("on %s: %d new, %d lost since %s, want %d and %d", tc.today, len(added), len(lost), onE, tc.new, tc.lost)
		}
		for _, r := range append(added, lost...) {
			if d := time.Unix(r.first, 0).UTC(); !r.isLost && sandbox.Day(d) != e.Day {
				t.Errorf("new row first seen %s, not on %s", d, onE)
			}
			if d := time.Unix(r.last, 0).UTC(); r.isLost && sandbox.Day(d) != e.Day {
				t.Errorf("lost row last seen %s, not on %s", d, onE)
			}
		}
		if c := newLostCount(t, base, onE, domain)[domain]; c != [2]int{tc.new, tc.lost} {
			t.Errorf("on %s: bulk_new_lost %v", tc.today, c)
		}
	}
}

// A harvest on D1 plus what changed since is the harvest on D2: live(D2)
// = live(D1) − lost since D1 + new since D1, each list read through the
// HTTP API as the pipeline pages (offsets, then search_after_token past
// 20,000), and the bulk counts are the lengths of the lists.
func TestSandboxWorldChanges(t *testing.T) {
	const seed = 4
	d1, d2 := mustDay(t, "2025-01-15"), mustDay(t, "2025-11-20")
	for _, tc := range []struct {
		domain string
		churn  float64
		// the lists are long enough to be read past offset 20,000
		long bool
	}{
		{"rows-25000.example", 1, true},
		{"example.com", 0.5, false},
		{"https://rows-3000.example/pricing", 0.8, false},
		{"rows-40.example", 0, false},
	} {
		t.Run(tc.domain, func(t *testing.T) {
			at := func(d time.Time) (*Client, string) {
				c, _, base := newSandbox(t, sandbox.Options{Seed: seed, Churn: tc.churn, Today: d})
				return c, base
			}
			c1, _ := at(d1)
			c2, base2 := at(d2)
			since := `"` + d1.Format(time.DateOnly) + ` 00:00:00 +00:00"`
			live1 := readRows(t, pageItems(t, c1, tc.domain, nil))
			live2 := readRows(t, pageItems(t, c2, tc.domain, params("backlinks_status_type", `"live"`)))
			added := readRows(t, pageItems(t, c2, tc.domain, params("filters", `["first_seen",">=",`+since+`]`)))
			lost := readRows(t, pageItems(t, c2, tc.domain, params("backlinks_status_type", `"lost"`, "filters", `[["last_seen",">=",`+since+`]]`)))
			if tc.long && (len(added) <= 20000 || len(lost) <= 20000) {
				t.Fatalf("%d new, %d lost: want lists past offset 20,000", len(added), len(lost))
			}
			if tc.churn > 0 && (len(added) == 0 || len(lost) == 0) {
				t.Fatalf("%d new, %d lost: no change to test", len(added), len(lost))
			}
			n := sandbox.Total(seed, Name, "backlinks", tc.domain)
			if len(live1) != n || len(live2) != n {
				t.Fatalf("live %d and %d rows, want %d", len(live1), len(live2), n)
			}

			want := keys(live1)
			for _, r := range lost {
				delete(want, r.key) // rows that came and went after D1 are not there: no matter
			}
			for _, r := range added {
				if want[r.key] {
					t.Fatalf("new row %s was live on D1", r.key)
				}
				want[r.key] = true
			}
			got := keys(live2)
			if len(got) != len(want) {
				t.Fatalf("live on D2: %d rows, D1 − lost + new: %d", len(got), len(want))
			}
			for k := range got {
				if !want[k] {
					t.Fatalf("live on D2, not in D1 − lost + new: %s", k)
				}
			}

			// What the rows say agrees with the lists they are in.
			liveDay := d2.Unix() - 86400
			for _, r := range live2 {
				if r.isLost || r.first > r.prev || r.prev > r.last || (tc.churn > 0 && (r.last < liveDay || r.last >= d2.Unix())) {
					t.Fatalf("live row %+v (day %s)", r, d2)
				}
			}
			for _, r := range added {
				if r.isLost || r.first < d1.Unix() || r.first >= d2.Unix() || r.isNew != (r.first >= d2.Unix()-30*86400) {
					t.Fatalf("new row %+v", r)
				}
			}
			for _, r := range lost {
				if !r.isLost || r.last < d1.Unix() || r.last >= d2.Unix() || r.first > r.prev || r.prev > r.last {
					t.Fatalf("lost row %+v", r)
				}
			}

			// The bulk counts are the lists' lengths, the Go view their rows.
			counts := newLostCount(t, base2, d1.Format(time.DateOnly), tc.domain)
			if c := counts[tc.domain]; c != [2]int{len(added), len(lost)} {
				t.Errorf("bulk_new_lost %v, want %d new %d lost", c, len(added), len(lost))
			}
			gl, ga, gx := SandboxChanges(sandbox.Options{Seed: seed, Churn: tc.churn, Today: d2}, tc.domain, d1)
			for _, v := range []struct {
				name string
				urls []string
				rows []seenRow
			}{{"live", gl, live2}, {"new", ga, added}, {"lost", gx, lost}} {
				if len(v.urls) != len(v.rows) {
					t.Fatalf("SandboxChanges %s: %d rows, the API %d", v.name, len(v.urls), len(v.rows))
				}
				for k, u := range v.urls {
					if !strings.HasPrefix(v.rows[k].key, u+" ") {
						t.Fatalf("SandboxChanges %s row %d: %s, the API %s", v.name, k, u, v.rows[k].key)
					}
				}
			}
		})
	}
}

// Filters on the dates select exactly the rows whose dates pass, with
// and before or and nested groups; other conditions are not applied. The
// rows' own dates, read unfiltered with backlinks_status_type all, decide.
func TestSandboxWorldFilters(t *testing.T) {
	const domain = "rows-3000.example"
	c, _, _ := newSandbox(t, sandbox.Options{Seed: 6, Churn: 0.7, Today: mustDay(t, "2026-05-05")})
	all := readRows(t, pageItems(t, c, domain, params("backlinks_status_type", `"all"`)))
	nLost := 0
	for _, r := range all {
		if r.isLost {
			nLost++
		}
	}
	if nLost < 200 || len(all) != 3000+nLost {
		t.Fatalf("%d rows, %d lost", len(all), nLost)
	}
	at := func(s string) int64 { v, _ := parseSeen(s); return v }
	d := at("2025-09-01")
	for _, tc := range []struct {
		name, status, filters string
		want                  func(r seenRow) bool
	}{
		{"first_seen after", "all", `["first_seen",">","2025-09-01 00:00:00 +00:00"]`, func(r seenRow) bool { return r.first > d }},
		{"a day stands for its midnight", "all", `["first_seen",">=","2025-09-01"]`, func(r seenRow) bool { return r.first >= d }},
		{"another offset", "all", `["first_seen","<","2025-09-01 02:00:00 +02:00"]`, func(r seenRow) bool { return r.first < d }},
		{"last_seen before", "lost", `["last_seen","<=","2025-09-01 00:00:00 +00:00"]`, func(r seenRow) bool { return r.last <= d }},
		{"prev_seen not", "live", `["prev_seen","<>","2025-09-01 00:00:00 +00:00"]`, func(r seenRow) bool { return r.prev != d }},
		{"equal to a row's own time", "all", `["first_seen","=","` + all[3100].firstS + `"]`, func(r seenRow) bool { return r.first == all[3100].first }},
		{"and before or", "all", `[["first_seen","<","2024-06-01"],"or",["last_seen",">","2026-01-01"],"and",["is_lost","=",true]]`,
			func(r seenRow) bool { return r.first < at("2024-06-01") || (r.last > at("2026-01-01") && r.isLost) }},
		{"nested group", "all", `[["is_new","=",false],"and",[["first_seen","<","2024-06-01"],"or",["last_seen",">","2026-01-01"]]]`,
			func(r seenRow) bool { return !r.isNew && (r.first < at("2024-06-01") || r.last > at("2026-01-01")) }},
		{"is_lost false", "all", `["is_lost","<>",true]`, func(r seenRow) bool { return !r.isLost }},
		{"other fields not applied", "all", `[["dofollow","=",true],"and",["first_seen",">=","2025-09-01"]]`, func(r seenRow) bool { return r.first >= d }},
		{"or with a field not applied: every row", "all", `[["dofollow","=",true],"or",["first_seen",">=","2025-09-01"]]`, func(seenRow) bool { return true }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var want []string
			for _, r := range all {
				if tc.want(r) && (tc.status == "all" || r.isLost == (tc.status == "lost")) {
					want = append(want, r.key)
				}
			}
			got := readRows(t, pageItems(t, c, domain, params("backlinks_status_type", `"`+tc.status+`"`, "filters", tc.filters)))
			if len(got) != len(want) {
				t.Fatalf("%d rows, want %d", len(got), len(want))
			}
			for k := range got {
				if got[k].key != want[k] {
					t.Fatalf("row %d: %s, want %s (rows by index)", k, got[k].key, want[k])
				}
			}
		})
	}
}

// Filters on the dates are checked before anything is enqueued, and the
// sandbox refuses what the check refuses (40501).
func TestSandboxWorldFilterChecks(t *testing.T) {
	_, _, base := newSandbox(t, sandbox.Options{Seed: 1, Churn: 0.5, Today: mustDay(t, "2026-01-01")})
	for _, tc := range []struct {
		name, filters, wantErr string
	}{
		{"date and time", `["first_seen",">","2025-01-01 00:00:00 +00:00"]`, ""},
		{"day", `["last_seen","<=","2025-01-01"]`, ""},
		{"nested", `[["prev_seen","<>","2025-01-01"],"or",[["first_seen","=","2025-01-01"],"and",["is_lost","=",true]]]`, ""},
		{"like", `["first_seen","like","2025%"]`, "takes the operators"},
		{"a word", `["first_seen",">","yesterday"]`, "want a date"},
		{"RFC 3339", `["first_seen",">","2025-01-01T00:00:00Z"]`, "want a date"},
		{"a number", `["last_seen",">",1735689600]`, "want a date"},
		{"nine", `[` + strings.Repeat(`["first_seen",">","2025-01-01"],"and",`, 8) + `["first_seen",">","2025-01-01"]]`, "at most 8"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := checkParams("backlinks", params("filters", tc.filters))
			if (err == nil) != (tc.wantErr == "") || (err != nil && !strings.Contains(err.Error(), tc.wantErr)) {
				t.Fatalf("checkParams: %v, want %q", err, tc.wantErr)
			}
			_, env := post(t, base+"/v3/backlinks/backlinks/live", "user", `[{"target":"rows-10.example","filters":`+tc.filters+`}]`)
			task := env.Tasks[0]
			if tc.wantErr == "" {
				if task.StatusCode != 20000 {
					t.Errorf("sandbox: %d %s", task.StatusCode, task.StatusMessage)
				}
			} else if task.StatusCode != 40501 || !strings.Contains(task.StatusMessage, "'filters'") || !strings.Contains(task.StatusMessage, tc.wantErr) {
				t.Errorf("sandbox: %d %q, want 40501 on filters", task.StatusCode, task.StatusMessage)
			}
		})
	}
}

// About Churn of the domains change in an epoch: with the day at an
// epoch's end and date_from at its start, the targets with lost rows are
// those that changed in it.
func TestSandboxWorldChurnFraction(t *testing.T) {
	today := sandbox.ChurnStart.AddDate(0, 0, 20*sandbox.EpochDays)
	from := today.AddDate(0, 0, -sandbox.EpochDays).Format(time.DateOnly)
	targets := make([]string, 2000)
	for i := range targets {
		targets[i] = fmt.Sprintf("rows-100.d%d.example", i)
	}
	for _, churn := range []float64{0, 0.05, 0.3, 0.9, 1} {
		t.Run(fmt.Sprint(churn), func(t *testing.T) {
			_, s, base := newSandbox(t, sandbox.Options{Seed: 9, Churn: churn, Today: today})
			changed := 0
			for k := 0; k < len(targets); k += MaxBulkTargets {
				for _, c := range newLostCount(t, base, from, targets[k:k+MaxBulkTargets]...) {
					if c[1] > 0 {
						changed++
					}
					if c[0] != c[1] || c[1] > 20 {
						t.Fatalf("counts %v: a rows-100 domain replaces 1 to 20 rows a change", c)
					}
				}
			}
			if got := float64(changed) / float64(len(targets)); math.Abs(got-churn) > 0.05 {
				t.Errorf("%.3f of the domains changed in the epoch, want about %v", got, churn)
			}
			if st := s.Stats()[Name]; st.Calls != 2 || math.Abs(st.Cost-2*(0.02+1000*0.00003)) > 1e-9 {
				t.Errorf("stats %+v: two calls at 0.02 + 0.00003 a target", st)
			}
		})
	}
}

// bulk_new_lost_backlinks checks its task as bulk_backlinks does, and
// date_from: a day from 365 days before the world's day to the day.
func TestSandboxNewLostRequests(t *testing.T) {
	_, _, base := newSandbox(t, sandbox.Options{Seed: 1, Churn: 0.2, Today: mustDay(t, "2026-03-01")})
	for _, tc := range []struct {
		name, task string
		want       int
		field      string // the member a 40501 names
	}{
		{"default date_from", `{"targets":["a.com"]}`, 20000, ""},
		{"the day itself", `{"targets":["a.com"],"date_from":"2026-03-01"}`, 20000, ""},
		{"365 days back", `{"targets":["a.com"],"date_from":"2025-03-01"}`, 20000, ""},
		{"366 days back", `{"targets":["a.com"],"date_from":"2025-02-28"}`, 40501, "date_from"},
		{"after the day", `{"targets":["a.com"],"date_from":"2026-03-02"}`, 40501, "date_from"},
		{"not a day", `{"targets":["a.com"],"date_from":"2026-3-1"}`, 40501, "date_from"},
		{"a time", `{"targets":["a.com"],"date_from":"2026-02-01 00:00:00 +00:00"}`, 40501, "date_from"},
		{"a number", `{"targets":["a.com"],"date_from":20260201}`, 40501, "date_from"},
		{"tag", `{"targets":["a.com"],"tag":"x"}`, 20000, ""},
		{"no targets", `{"date_from":"2026-02-01"}`, 40501, "targets"},
		{"empty target", `{"targets":["a.com"," "]}`, 40501, "targets"},
		{"too many targets", `{"targets":[` + strings.Repeat(`"a.com",`, MaxBulkTargets) + `"b.com"]}`, 40501, "targets"},
		{"unknown field", `{"targets":["a.com"],"date_to":"2026-02-01"}`, 40506, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, env := post(t, base+bulkNewLostPath, "user", "["+tc.task+"]")
			if len(env.Tasks) != 1 {
				t.Fatalf("%+v", env)
			}
			task := env.Tasks[0]
			if task.StatusCode != tc.want {
				t.Fatalf("task %d %s, want %d", task.StatusCode, task.StatusMessage, tc.want)
			}
			if tc.field != "" && !strings.Contains(task.StatusMessage, "'"+tc.field+"'") {
				t.Errorf("message %q does not name %s", task.StatusMessage, tc.field)
			}
			if strings.Join(task.Path, "/") != "v3/backlinks/bulk_new_lost_backlinks/live" || task.Data["function"] != "bulk_new_lost_backlinks" {
				t.Errorf("path %v data %v", task.Path, task.Data)
			}
			if tc.want == 20000 && math.Abs(task.Cost-0.02003) > 1e-9 {
				t.Errorf("cost %v, want 0.02 + 0.00003", task.Cost)
			}
		})
	}
	// The default is 30 days back.
	d30 := newLostCount(t, base, "2026-01-30", "rows-2000.example", "example.com")
	if def := newLostCount(t, base, "", "rows-2000.example", "example.com"); fmt.Sprint(def) != fmt.Sprint(d30) {
		t.Errorf("default %v, 30 days back %v", def, d30)
	}
}

// A filtered request visits only the dates of the rows it passes over,
// and writes only the rows it returns.
func BenchmarkSandboxWorldNewSince(b *testing.B) {
	o := sandbox.Options{Seed: 1, Churn: 1, Today: time.Date(2026, 6, 1, 0, 0, 0, 0, time.UTC)}
	raw := json.RawMessage(`[{"target":"rows-100000.example","limit":1000,"backlinks_status_type":"all","filters":["first_seen",">=","2026-01-01"]}]`)
	var tasks []json.RawMessage
	json.Unmarshal(raw, &tasks)
	b.ReportAllocs()
	for b.Loop() {
		res := backlinksEP.run(o, tasks[0])
		if res.code != statusOK {
			b.Fatal(res.msg)
		}
		res.write(nil)
	}
}
