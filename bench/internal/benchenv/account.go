package benchenv

import (
	"flag"
	"fmt"
	"os"
	"strconv"
	"time"
)

// Checker returns a bench program's check: on an error it prints name and
// the error and leaves through Exit, so that no child process or scratch
// directory outlives a failed run. Every bench stops so on any error.
func Checker(name string) func(error) {
	return func(err error) {
		if err != nil {
			fmt.Fprintln(os.Stderr, name+":", err)
			Exit(1)
		}
	}
}

// Account is the DataForSEO account's limits a run imposes, alike on the
// sandbox (whose own counters judge the run) and on the workers' shared
// limiter (PROVIDER_LIMITS): a bench of the limits must give both the
// same figures, and the others lift both. 0 is unlimited.
type Account struct {
	Rate     int // calls a minute
	InFlight int // calls at once
}

// Unlimited lifts the limits on both sides.
var Unlimited = Account{}

// AccountFlags registers -rate and -inflight with the defaults rate and
// inflight; of ("" or e.g. " of the limited job") says in their help whose
// limits they are.
func AccountFlags(rate, inflight int, of string) *Account {
	a := &Account{}
	flag.IntVar(&a.Rate, "rate", rate, "calls per minute"+of+" (sandbox and workers); 0: unlimited")
	flag.IntVar(&a.InFlight, "inflight", inflight, "calls in flight"+of+" (sandbox and workers); 0: unlimited")
	return a
}

// SandboxArgs are the sandbox's arguments for a, with every answer
// delayed by latency.
func (a Account) SandboxArgs(latency time.Duration) []string {
	return []string{"--rate", a.rate(), "--concurrency", strconv.Itoa(a.InFlight), "--latency", latency.String()}
}

// WorkerLimits is the workers' PROVIDER_LIMITS setting for a.
func (a Account) WorkerLimits() string {
	return "PROVIDER_LIMITS=dataforseo=" + a.rate() + ":" + strconv.Itoa(a.InFlight)
}

func (a Account) rate() string {
	if a.Rate == 0 {
		return "0"
	}
	return strconv.Itoa(a.Rate) + "/1m"
}
