package limiter

import (
	"math"
	"math/rand/v2"
	"reflect"
	"strings"
	"testing"
	"time"
)

func TestParseLimits(t *testing.T) {
	t.Parallel()
	min, sec := time.Minute, time.Second
	tests := []struct {
		in      string
		want    map[string]Limit
		wantErr string // substring of the error; "" = no error
	}{
		{in: "", want: map[string]Limit{}},
		{in: "  ", want: map[string]Limit{}},
		{in: "dataforseo=2000/1m:30", want: map[string]Limit{"dataforseo": {2000, min, 30}}},
		{in: "dataforseo=2000/1m:30,domdetailer=60/1m:5", want: map[string]Limit{
			"dataforseo": {2000, min, 30}, "domdetailer": {60, min, 5}}},
		{in: " dataforseo = 2000 / 60s : 30 , xovi=10/s:2 ,", want: map[string]Limit{
			"dataforseo": {2000, 60 * sec, 30}, "xovi": {10, sec, 2}}},
		{in: "DataForSEO=2000/m:30", want: map[string]Limit{"dataforseo": {2000, min, 30}}},
		{in: "x=300/10s:5", want: map[string]Limit{"x": {300, 10 * sec, 5}}},
		{in: "x=100/1h30m:1", want: map[string]Limit{"x": {100, 90 * min, 1}}},
		{in: "x=100/1m", want: map[string]Limit{"x": {100, min, 0}}}, // in flight not limited
		{in: "x=0:5", want: map[string]Limit{"x": {0, min, 5}}},      // rate not limited
		{in: "x=0/1m:0", want: map[string]Limit{"x": {0, min, 0}}},   // nothing limited
		{in: "domain_crawler-2=5/1s:1", want: map[string]Limit{"domain_crawler-2": {5, sec, 1}}},

		{in: "dataforseo", wantErr: "no '='"},
		{in: "=2000/1m:30", wantErr: "bad provider name"},
		{in: "data forseo=2000/1m:30", wantErr: "bad provider name"},
		{in: "x=", wantErr: "missing number"},
		{in: "x=2000", wantErr: "has no period"},
		{in: "x=2000:30", wantErr: "has no period"},
		{in: "x=2000/:30", wantErr: "missing period"},
		{in: "x=2000/1y:30", wantErr: "not a duration"},
		{in: "x=2000/0s:30", wantErr: "out of range"},
		{in: "x=2000/-1m:30", wantErr: "not a duration"},
		{in: "x=2000/1ns:30", wantErr: "out of range"},
		{in: "x=abc/1m:30", wantErr: "not a whole number"},
		{in: "x=-5/1m:30", wantErr: "out of range"},
		{in: "x=2000/1m:-1", wantErr: "out of range"},
		{in: "x=2000/1m:thirty", wantErr: "not a whole number"},
		{in: "x=2000/1m:", wantErr: "missing number"},
		{in: "x=1.5/1m:3", wantErr: "not a whole number"},
		{in: "x=99999999999/1m:3", wantErr: "out of range"},
		{in: "x=2000/1m:30,x=10/1s:1", wantErr: "given twice"},
		{in: "X=1/1s:1,x=1/1s:1", wantErr: "given twice"},
		{in: "dataforseo=2000/1m:30;domdetailer=60/1m:5", wantErr: "dataforseo=2000/1m:30;domdetailer"},
	}
	for _, tc := range tests {
		got, err := ParseLimits(tc.in)
		if tc.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Errorf("ParseLimits(%q) = %v, %v; want an error containing %q", tc.in, got, err, tc.wantErr)
			}
			continue
		}
		if err != nil {
			t.Errorf("ParseLimits(%q): %v", tc.in, err)
			continue
		}
		if !reflect.DeepEqual(got, tc.want) {
			t.Errorf("ParseLimits(%q) = %v; want %v", tc.in, got, tc.want)
		}
	}
}

func TestParseLimitsErrorQuotesEntryAndForm(t *testing.T) {
	t.Parallel()
	_, err := ParseLimits("dataforseo=2000/1m:30,domdetailer=60/1x:5")
	if err == nil {
		t.Fatal("no error")
	}
	msg := err.Error()
	for _, want := range []string{`"domdetailer=60/1x:5"`, "NAME=CALLS/PERIOD:INFLIGHT"} {
		if !strings.Contains(msg, want) {
			t.Errorf("error %q lacks %q", msg, want)
		}
	}
}

func TestLimitStringRoundTrips(t *testing.T) {
	t.Parallel()
	for _, s := range []string{"2000/1m:30", "300/10s:5", "60/1m:0", "0:5", "100/1h30m:1", "7/1m30s:2"} {
		m, err := ParseLimits("x=" + s)
		if err != nil {
			t.Fatalf("%s: %v", s, err)
		}
		if got := m["x"].String(); got != s {
			t.Errorf("String() = %q; want %q", got, s)
		}
	}
}

// TestBucketArithmetic checks the sizing documented on Limit.bucket: a
// burst of 1 or 2, no closed window of the period over the limit even with
// arrival jitter just under 1% of the period, and a steady rate of at
// least 98% of limits from 100 up (97% below).
func TestBucketArithmetic(t *testing.T) {
	t.Parallel()
	for _, l := range []Limit{
		{2000, time.Minute, 30}, {300, 10 * time.Second, 5}, {60, time.Minute, 5}, {100, time.Minute, 1},
		{99, time.Minute, 1}, {10, time.Second, 1}, {5, time.Minute, 1}, {2, time.Second, 1}, {1, time.Minute, 1},
		{1_000_000, time.Hour, 1}, {33, time.Second, 1},
	} {
		b := l.bucket()
		if b.Burst < 1 || b.Burst > 2 {
			t.Errorf("%v: burst %d", l, b.Burst)
		}
		interval := float64(b.Period) / float64(b.Rate)
		bound := float64(b.Burst) + float64(l.Period)/interval // b + r·T
		if bound >= float64(l.Rate+1) {
			t.Errorf("%v: b + r·period = %.3f reaches %d", l, bound, l.Rate+1)
		}
		if l.Rate >= 102 && bound > float64(l.Rate) {
			t.Errorf("%v: b + r·period = %.3f > %d", l, bound, l.Rate)
		}
		if got := l.maxPerWindow(); got > l.Rate {
			t.Errorf("%v: %d calls fit a closed window of %s", l, got, l.Period)
		}
		// With arrival jitter just under 1% of the period the vendor still sees ≤ L.
		j := l.Period/100 - l.Period/10000
		if n := float64(b.Burst) + float64(l.Period+j)/interval; math.Floor(n) > float64(l.Rate) {
			t.Errorf("%v: with %s of arrival jitter %.3f calls fit a window", l, j, n)
		}
		steady := l.steadyRate() * l.Period.Seconds() / float64(l.Rate)
		if steady < 0.98 && l.Rate >= 100 || steady < 0.97 && l.Rate < 100 && l.Rate > 33 {
			t.Errorf("%v: steady rate is %.3f of the limit", l, steady)
		}
		t.Logf("%-14v burst %d, interval %-12v max/window %-7d steady %.2f%% of the limit",
			l, b.Burst, time.Duration(interval).Round(time.Microsecond), l.maxPerWindow(), 100*steady)
	}
}

// TestGCRAWindows runs redis_rate's algorithm (transcribed from its Lua,
// in the same floating point) against waiters that ask greedily but wake
// up to 3 ms late, and checks every closed window of the period and the
// long-run rate.
func TestGCRAWindows(t *testing.T) {
	t.Parallel()
	for _, l := range []Limit{{2000, time.Minute, 0}, {300, 10 * time.Second, 0}, {60, time.Minute, 0}, {7, time.Second, 0}} {
		b := l.bucket()
		rate, burst, period := float64(b.Rate), float64(b.Burst), b.Period.Seconds()
		interval := period / rate
		rng := rand.New(rand.NewPCG(1, 2))
		var tat float64
		now := 1000.0 // seconds since the script's 2017 epoch; any value
		var grants []float64
		for len(grants) < 5*l.Rate {
			// the script
			t0 := math.Max(tat, now)
			newTat := t0 + interval
			diff := now - (newTat - interval*burst)
			if diff >= 0 {
				tat = newTat
				grants = append(grants, now)
				now += rng.Float64() * 0.002 // the next waiter's round trip
				continue
			}
			now += -diff + rng.Float64()*0.003 // sleep RetryAfter, wake up to 3 ms late
		}
		maxN := 0
		for i, j := 0, 0; i < len(grants); i++ {
			for j < len(grants) && grants[j] <= grants[i]+l.Period.Seconds() {
				j++
			}
			maxN = max(maxN, j-i)
		}
		span := grants[len(grants)-1] - grants[0]
		got := float64(len(grants)-1) / span * l.Period.Seconds()
		if maxN > l.Rate {
			t.Errorf("%v: %d calls in a window", l, maxN)
		}
		if l.Rate >= 60 && got < 0.97*float64(l.Rate) {
			t.Errorf("%v: %.1f calls per period in the long run", l, got)
		}
		t.Logf("%-12v max %d per window, %.1f per period in the long run", l, maxN, got)
	}
}
