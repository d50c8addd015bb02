package limiter

import (
	"context"
	"strings"
	"strconv"
	"testing"
	"time"

	"github.com/linkharvest/linkharvest/internal/testenv"
)

func TestTmpDiag(t *testing.T) {
	rs := testenv.Redis(t)
	rdb := rs.Client(t)
	ctx := context.Background()
	rdb.ConfigSet(ctx, "latency-monitor-threshold", "20")
	lim := Limit{Rate: 2000, Period: time.Minute, InFlight: 30}
	s := hammerSpec{Addr: rs.Addr, Name: "dataforseo", Limit: lim, Workers: 20,
		Start: time.Now().Add(1500 * time.Millisecond), Duration: 10 * time.Second, MinLatency: time.Second, MaxLatency: time.Second}
	calls := runHammer(t, s, 2, 1)
	from, to := s.Start.Add(2*time.Second), s.Start.Add(s.Duration)
	busyFrac := busy(calls, from, to).Seconds() / (float64(lim.InFlight) * to.Sub(from).Seconds())
	info, _ := rdb.Info(ctx, "persistence").Result()
	for _, l := range strings.Split(info, "\n") {
		if strings.Contains(l, "delayed_fsync") || strings.Contains(l, "aof_last_write_status") { t.Log(l) }
	}
	res, _ := rdb.Do(ctx, "LATENCY", "LATEST").Result()
	t.Logf("busy %.3f; latency %v", busyFrac, res)
	// in flight per 250ms
	var line []string
	for ts := s.Start; ts.Before(to); ts = ts.Add(250 * time.Millisecond) {
		n := 0
		for _, c := range calls {
			if c.start <= ts.UnixNano() && c.end > ts.UnixNano() { n++ }
		}
		line = append(line, strconv.Itoa(n))
	}
	t.Log(strings.Join(line, " "))
}
