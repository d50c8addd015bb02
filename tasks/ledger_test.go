package tasks

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/linkharvest/linkharvest/internal/testenv"
	"github.com/linkharvest/linkharvest/sink"
)

func TestOutcomeCodec(t *testing.T) {
	const job, dt = "j1", "2026-12-02"
	unit := "dataforseo|backlinks|a.example|3"
	std := sink.PageKey("dataforseo", "backlinks", dt, job, "a.example", 3)
	cases := []struct {
		name      string
		o         Outcome
		wantShort bool
	}{
		{"ok with its standard key", Outcome{Status: "ok", Key: std, Records: 1000, Bytes: 150123, Total: 25000, Spend: 0.05003, Unit: "usd"}, true},
		{"empty", Outcome{Status: "empty", Total: 0}, false},
		{"a key of another job", Outcome{Status: "ok", Key: sink.PageKey("dataforseo", "backlinks", dt, "j2", "a.example", 3), Records: 1}, false},
		{"a key of another page", Outcome{Status: "ok", Key: sink.PageKey("dataforseo", "backlinks", dt, job, "a.example", 4), Records: 1}, false},
		{"a key that is not a page's", Outcome{Status: "ok", Key: "elsewhere/x.ndjson.gz", Records: 1}, false},
		{"failed, with | and \\ in its message", Outcome{Status: "failed", Error: `40501 | bad "limit" \p value`, Refetch: true}, false},
		{"unchanged with a reason", Outcome{Status: "unchanged", Refresh: RefreshUnchanged, RefreshReason: "0 new | 0 lost"}, false},
		{"a status the codec has no letter for", Outcome{Status: "odd|status", Records: 2}, false},
		{"negative and fractional figures", Outcome{Status: "ok", Records: 0, Bytes: 1, Total: -1, Spend: 1e-9}, false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			long, short, kdt := encodeOutcome(job, unit, c.o)
			if (short != "") != c.wantShort {
				t.Fatalf("short form %q, want one: %v", short, c.wantShort)
			}
			forms := []string{long}
			if c.wantShort {
				if kdt != dt {
					t.Errorf("key date %q, want %q", kdt, dt)
				}
				if len(short) >= len(long) {
					t.Errorf("short form %q is not shorter than %q", short, long)
				}
				forms = append(forms, short)
			}
			for _, v := range forms {
				got, err := decodeOutcome(job, dt, unit, v)
				if err != nil {
					t.Fatalf("decode %q: %v", v, err)
				}
				if got != c.o {
					t.Errorf("decode(%q) = %+v, want %+v", v, got, c.o)
				}
			}
		})
	}
	if _, err := decodeOutcome(job, dt, unit, "o|x"); err == nil {
		t.Error("a malformed entry decoded without an error")
	}
}

// TestLedgerRoundTrip ends units through the store and reads them back
// as the manifest does; the short form is kept only under the job's own date.
func TestLedgerRoundTrip(t *testing.T) {
	rds := testenv.Redis(t)
	s := NewStore(rds.Client(t))
	ctx := context.Background()
	job := "ledger"
	j, err := s.create(ctx, job, Spec{Providers: []string{"dataforseo"}, Endpoints: map[string][]string{"dataforseo": {"backlinks"}}}, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]Outcome{}
	var units []string
	for i := range 300 {
		units = append(units, fmt.Sprintf("dataforseo|backlinks|d%03d.example|1", i))
	}
	if _, err := s.register(ctx, job, 0, 1, units); err != nil {
		t.Fatal(err)
	}
	for i, u := range units {
		d := fmt.Sprintf("d%03d.example", i)
		o := Outcome{Status: "ok", Records: i + 1, Key: sink.PageKey("dataforseo", "backlinks", j.Date, job, d, 1), Spend: 0.02, Unit: "usd"}
		if i%7 == 0 { // a key under another date is kept whole
			o.Key = sink.PageKey("dataforseo", "backlinks", "1999-01-01", job, d, 1)
		}
		if i%11 == 0 {
			o = Outcome{Status: "failed", Error: "boom | again"}
		}
		want[u] = o
		if _, err := s.end(ctx, job, u, o, true, nil); err != nil {
			t.Fatal(err)
		}
		// A second end of the unit changes nothing.
		if _, err := s.end(ctx, job, u, Outcome{Status: "empty"}, true, nil); err != nil {
			t.Fatal(err)
		}
	}
	got := map[string]Outcome{}
	err = s.scanOutcomes(ctx, job, func(p, e, d string, page int, o Outcome) error {
		got[fmt.Sprintf("%s|%s|%s|%d", p, e, d, page)] = o
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != len(want) {
		t.Fatalf("read %d outcomes, want %d", len(got), len(want))
	}
	for u, o := range want {
		if got[u] != o {
			t.Errorf("%s: %+v, want %+v", u, got[u], o)
		}
	}
	states, err := s.register(ctx, job, 0, 1, units[:3])
	if err != nil || states[0] != 0 || states[1] != 0 {
		t.Errorf("registering ended units again: %v, %v; want 0 (ended) each", states, err)
	}
	var n int
	if err := s.Domains(ctx, job, func(string) error { n++; return nil }); err != nil || n != len(units) {
		t.Errorf("Domains: %d, %v; want %d", n, err, len(units))
	}
	used, _ := s.usedBuckets(ctx, job)
	if len(used) == 0 || len(used) > len(units) {
		t.Errorf("%d buckets in use for %d units", len(used), len(units))
	}
	if enc, _ := s.rdb.ObjectEncoding(ctx, keysFor(job).bucket(units[1])).Result(); enc != "listpack" {
		t.Errorf("a bucket is kept as %q, want listpack", enc)
	}
}
