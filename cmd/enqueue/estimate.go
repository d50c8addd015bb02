package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"math"
	"net"
	"net/http"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/linkharvest/linkharvest/internal/redact"
	"github.com/linkharvest/linkharvest/internal/runner"
	"github.com/linkharvest/linkharvest/internal/settings"
	"github.com/linkharvest/linkharvest/internal/spend"
	"github.com/linkharvest/linkharvest/limiter"
	"github.com/linkharvest/linkharvest/providers"
	"github.com/linkharvest/linkharvest/providers/dataforseo"
	"github.com/linkharvest/linkharvest/providers/registry"
	"github.com/linkharvest/linkharvest/providers/sandbox"
	"github.com/linkharvest/linkharvest/tasks"
)

// bulkCounter is a vendor client that counts the backlinks of many
// domains in one call (DataForSEO's backlinks/bulk_backlinks/live).
type bulkCounter interface {
	BulkBacklinks(ctx context.Context, targets []string) (map[string]int, float64, error)
}

// counted names, per provider, the endpoint whose rows its bulk count
// counts and the price key of the counting call.
var counted = map[string]struct{ endpoint, bulk string }{
	dataforseo.Name: {endpoint: "backlinks", bulk: dataforseo.BulkBacklinksEndpoint},
}

// estimateTimeout bounds one counting call; the vendor gives up on a live
// task after 120 s.
const estimateTimeout = 150 * time.Second

// estimator works out, while the list is read, what a job will take: the
// calls and money per provider and endpoint. Where a vendor counts many
// domains in one call it asks (one call per thousand domains, one at a
// time: the bulk calls are few and stay far below the account's 30 calls
// in flight); elsewhere one call per domain and endpoint is the lower
// bound, exact for an endpoint that answers in one call.
type estimator struct {
	spec    tasks.Spec
	prices  spend.Table
	counter map[string]bulkCounter // provider -> client, for the providers with a count
	// A refresh's estimate: the base job's state, and the clients that
	// count changes (the count is made as the refresh would make it).
	store   *tasks.Store
	changes map[string]tasks.ChangeCounter
	fates   map[string]*[3]int // provider -> unchanged, changed, in full
	pending []string           // domains waiting for the next bulk call
	domains int

	ep    map[string]*epEstimate // "provider/endpoint"
	cost  map[string]float64     // what the counting calls cost, per provider
	bulks map[string]int         // counting calls made, per provider
	close func()                 // stops what newEstimator started
}

// epEstimate is one provider endpoint's share of the job.
type epEstimate struct {
	provider, endpoint string
	calls              int64
	rows               int64
	spend              float64
	exact              bool   // from counts or one call per domain; else a lower bound
	note               string // how it was reckoned
	uncounted          int    // domains the count did not answer for (a call each counted)
}

// newEstimator builds the counting clients from the environment, as a
// worker builds its clients (credentials never leave this process). With
// --dev and no vendor base URL set it asks the built-in sandbox, as --dev
// runs would. With Redis named (--redis or REDIS_URL) the counting calls
// take their place in the shared limiter, beside the workers' calls on
// the same account; a Redis that does not answer is said and gone
// around (the calls are one at a time anyway). close stops what it started.
func newEstimator(ctx context.Context, o options, spec tasks.Spec, store *tasks.Store, getenv func(string) string, stderr io.Writer) (*estimator, error) {
	e := &estimator{spec: spec, prices: spend.Default(), counter: map[string]bulkCounter{}, store: store,
		changes: map[string]tasks.ChangeCounter{}, fates: map[string]*[3]int{},
		ep: map[string]*epEstimate{}, cost: map[string]float64{}, bulks: map[string]int{}, close: func() {}}
	if o.dev && !anyBaseURLSet() {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, fmt.Errorf("sandbox: %w", err)
		}
		srv := &http.Server{Handler: registry.Sandbox(sandbox.Options{Seed: 1}), ReadHeaderTimeout: 10 * time.Second}
		go srv.Serve(ln)
		e.close = func() { srv.Close() }
		env := registry.SandboxEnv("http://" + ln.Addr().String())
		getenv = func(k string) string {
			if v, ok := env[k]; ok {
				return v
			}
			return os.Getenv(k)
		}
	}
	if v := getenv("PROVIDER_PRICES"); strings.TrimSpace(v) != "" {
		t, err := spend.Parse(v)
		if err != nil {
			return nil, usageError{settings.Bad("PROVIDER_PRICES", v, "%v", err)}
		}
		e.prices = t
	}
	var rdb *redis.Client
	var limits map[string]limiter.Limit
	if o.redisSet && !o.dev {
		var err error
		if limits, err = estimateLimits(getenv); err != nil {
			return nil, err
		}
		if rdb, err = runner.OpenRedis(runner.RedisConfig{URL: o.redisURL, CAFile: o.redisCA}); err != nil {
			return nil, usageError{err}
		}
		pctx, cancel := context.WithTimeout(ctx, 3*time.Second)
		err = rdb.Ping(pctx).Err()
		cancel()
		if err != nil {
			fmt.Fprintf(stderr, "enqueue: --estimate: redis at %s: %v: the counting calls go around the shared limiter\n", redact.URL(o.redisURL), err)
			rdb.Close()
			rdb = nil
		} else {
			prev := e.close
			e.close = func() { prev(); rdb.Close() }
		}
	}
	for _, p := range spec.Providers {
		c, ok := counted[p]
		if !ok || !slices.Contains(spec.Endpoints[p], c.endpoint) {
			continue
		}
		hc := &http.Client{Timeout: estimateTimeout}
		if l, ok := limits[p]; ok && rdb != nil {
			v, _ := registry.Lookup(p)
			lim := limiter.New(rdb, p, l, limiter.WithAccountLimitHeader(v.Limits.Header, v.Limits.HeaderPer))
			hc = &http.Client{Transport: lim.Transport(http.DefaultTransport, limiter.CallTimeout(estimateTimeout))}
		}
		cl, err := registry.New(p, getenv, hc)
		if err != nil {
			return nil, usageError{fmt.Errorf("--estimate asks %s for counts, with a worker's credentials: %w", p, err)}
		}
		bc, ok := cl.(bulkCounter)
		if !ok {
			return nil, fmt.Errorf("--estimate: the %s client has no bulk count", p)
		}
		e.counter[p] = bc
		if spec.Refresh != nil {
			cc, ok := cl.(tasks.ChangeCounter)
			if !ok {
				return nil, fmt.Errorf("--estimate: the %s client cannot count changes", p)
			}
			e.changes[p] = cc
			e.fates[p] = &[3]int{}
		}
	}
	for _, p := range spec.Providers {
		desc, err := registry.Describe(p)
		if err != nil {
			return nil, err
		}
		for _, ep := range spec.Endpoints[p] {
			pg, err := desc.Paging(ep)
			if err != nil {
				return nil, err
			}
			x := &epEstimate{provider: p, endpoint: ep}
			switch {
			case e.changes[p] != nil && counted[p].endpoint == ep:
				x.exact = true
				x.note = "a refresh: changes counted by " + p + " " + dataforseo.BulkNewLostEndpoint + ", domains fetched in full by " + counted[p].bulk
			case e.counter[p] != nil && counted[p].endpoint == ep:
				x.exact = true
				x.note = "rows counted by " + p + " " + counted[p].bulk
				if len(spec.Params[p][ep]) > 0 {
					x.note += "; the options may return fewer rows, so this is the most"
				}
			case pg.Kind == providers.PagingNone:
				x.exact = true
				x.note = "one call per domain"
			default:
				x.note = "no cheap count at this vendor: at least one call per domain"
			}
			e.ep[p+"/"+ep] = x
		}
	}
	return e, nil
}

// add takes one domain of the list; a full batch is counted at once.
func (e *estimator) add(ctx context.Context, d string) error {
	e.domains++
	for _, x := range e.ep {
		if e.counter[x.provider] != nil && counted[x.provider].endpoint == x.endpoint {
			continue // reckoned from its count in flush
		}
		price := e.prices.Price(x.provider, x.endpoint)
		x.calls++
		if x.exact {
			x.spend += price.For(1) // a one-call endpoint answers one result
			x.rows++
		} else {
			x.spend += price.Request
		}
	}
	if len(e.counter) > 0 {
		e.pending = append(e.pending, d)
		if len(e.pending) >= dataforseo.MaxBulkTargets {
			return e.flush(ctx)
		}
	}
	return nil
}

// flush counts the pending domains at each counting vendor.
func (e *estimator) flush(ctx context.Context) error {
	if len(e.pending) == 0 {
		return nil
	}
	for _, p := range slices.Sorted(maps.Keys(e.counter)) {
		full := e.pending
		x := e.ep[p+"/"+counted[p].endpoint]
		desc, _ := registry.Describe(p)
		pg, _ := desc.Paging(x.endpoint)
		price := e.prices.Price(p, x.endpoint)
		add := func(n int) {
			calls, rows := pagesFor(n, e.spec.MaxRows, pg)
			x.calls += int64(calls)
			x.rows += int64(rows)
			x.spend += float64(calls)*price.Request + float64(rows)*price.Row
		}
		if cc := e.changes[p]; cc != nil {
			var err error
			if full, err = e.flushChanges(ctx, p, cc, add); err != nil {
				return err
			}
		}
		if len(full) == 0 {
			continue
		}
		counts, cost, err := countWithRetry(ctx, func(ctx context.Context) (map[string]int, float64, error) {
			return e.counter[p].BulkBacklinks(ctx, full)
		})
		e.bulks[p]++
		e.cost[p] += cost
		if err != nil {
			return fmt.Errorf("--estimate: %s %s after %d domains (the estimate had cost %s): %w",
				p, counted[p].bulk, e.domains-len(e.pending), tasks.FormatAmount(e.cost[p], p), err)
		}
		for _, d := range full {
			n, ok := counts[d]
			if !ok {
				x.uncounted++
				x.exact = false
				n = 0
			}
			add(n)
		}
	}
	e.pending = e.pending[:0]
	return nil
}

// flushChanges makes a refresh's change count of the pending domains the
// base job holds whole, as the refresh's check would, and adds what the
// changed ones take (their new and lost rows' pages); it returns the
// domains the refresh fetches in full.
func (e *estimator) flushChanges(ctx context.Context, p string, cc tasks.ChangeCounter, add func(rows int)) ([]string, error) {
	known, whole, err := e.store.BaseState(ctx, e.spec.Refresh.BaseJob, p, counted[p].endpoint, e.pending)
	if err != nil {
		return nil, err
	}
	var check, full []string
	for i, d := range e.pending {
		if known[i] && whole[i] {
			check = append(check, d)
		} else {
			full = append(full, d)
		}
	}
	if len(check) == 0 {
		return full, nil
	}
	// The refresh makes this count again: it is part of what it costs.
	x := e.ep[p+"/"+counted[p].endpoint]
	x.calls++
	x.spend += e.prices.Price(p, dataforseo.BulkNewLostEndpoint).For(len(check))
	since, _ := time.Parse(time.DateOnly, e.spec.Refresh.Since)
	var changes map[string]providers.ChangeCount
	_, cost, err := countWithRetry(ctx, func(ctx context.Context) (map[string]int, float64, error) {
		var cost float64
		var err error
		changes, cost, err = cc.CountChanges(ctx, check, since)
		return nil, cost, err
	})
	e.bulks[p]++
	e.cost[p] += cost
	if err != nil {
		return nil, fmt.Errorf("--estimate: %s %s after %d domains (the estimate had cost %s): %w",
			p, dataforseo.BulkNewLostEndpoint, e.domains-len(e.pending), tasks.FormatAmount(e.cost[p], p), err)
	}
	f := e.fates[p]
	for _, d := range check {
		n, ok := changes[d]
		switch {
		case !ok:
			full = append(full, d)
			continue
		case n.New == 0 && n.Lost == 0:
			f[0]++
			continue
		}
		f[1]++
		if n.New > 0 {
			add(n.New)
		}
		if n.Lost > 0 {
			add(n.Lost)
		}
	}
	f[2] += len(full)
	return full, nil
}

// countWithRetry makes one counting call, again after a throttle or a
// vendor fault (a few times, waiting longer each time): workers may share
// the account while the estimate runs.
func countWithRetry(ctx context.Context, count func(context.Context) (map[string]int, float64, error)) (map[string]int, float64, error) {
	wait := time.Second
	spent := 0.0
	for attempt := 1; ; attempt++ {
		counts, cost, err := count(ctx)
		spent += cost
		cls := providers.ClassOf(err)
		if err == nil || attempt == 4 || (cls != providers.Throttled && cls != providers.Retryable) {
			return counts, spent, err
		}
		select {
		case <-ctx.Done():
			return nil, spent, errors.Join(err, ctx.Err())
		case <-time.After(wait):
		}
		wait *= 2
	}
}

// pagesFor is what paging a domain of n rows takes, as the workers plan
// it (tasks.nextPages): pages of the vendor's page size, or of --max-rows
// when smaller, the rows capped at --max-rows; a domain with no rows still
// takes its first call.
func pagesFor(n, maxRows int, pg providers.Paging) (calls, rows int) {
	rows = n
	if maxRows > 0 && rows > maxRows {
		rows = maxRows
	}
	if pg.Kind == providers.PagingNone {
		return 1, min(rows, 1)
	}
	size := pg.PageSize
	if maxRows > 0 && (size <= 0 || maxRows < size) {
		size = maxRows
	}
	if size <= 0 || rows == 0 {
		return 1, rows
	}
	return (rows + size - 1) / size, rows
}

// finish counts what is left and fills the summary's estimate fields.
func (e *estimator) finish(ctx context.Context, s *summary) error {
	if err := e.flush(ctx); err != nil {
		return err
	}
	s.Calls = 0
	s.EstimatedSpend = map[string]float64{}
	s.EstimateSpend = map[string]float64{}
	for _, x := range e.ep {
		s.Calls += x.calls
		s.EstimatedSpend[x.provider] += x.spend
	}
	for p, v := range s.EstimatedSpend {
		s.EstimatedSpend[p] = round6(v) // sums of float prices, not the vendor's digits
	}
	for p, c := range e.cost {
		s.EstimateSpend[p] = round6(c)
	}
	return nil
}

// print writes the estimate per provider and endpoint, then its own cost;
// with a budget, whether the job fits in it.
func (e *estimator) print(w io.Writer, budget map[string]float64) {
	byProv := map[string][]*epEstimate{}
	for _, x := range e.ep {
		byProv[x.provider] = append(byProv[x.provider], x)
	}
	for _, p := range slices.Sorted(maps.Keys(byProv)) {
		eps := byProv[p]
		slices.SortFunc(eps, func(a, b *epEstimate) int { return strings.Compare(a.endpoint, b.endpoint) })
		var calls int64
		var money float64
		exact := true
		for _, x := range eps {
			calls += x.calls
			money += x.spend
			exact = exact && x.exact
		}
		atLeast := ""
		if !exact {
			atLeast = "at least "
		}
		fmt.Fprintf(w, "estimate %s: %s%d calls, %s%s\n", p, atLeast, calls, atLeast, tasks.FormatAmount(money, p))
		if lim, ok := budget[p]; ok {
			switch {
			case round6(money) > lim:
				fmt.Fprintf(w, "  over the budget of %s: the job would stop at it (exit 4 with --wait) having fetched part of the list\n", tasks.FormatAmount(lim, p))
			case exact:
				fmt.Fprintf(w, "  within the budget of %s\n", tasks.FormatAmount(lim, p))
			default:
				fmt.Fprintf(w, "  the budget of %s covers the lower bound; the job may need more\n", tasks.FormatAmount(lim, p))
			}
		}
		for _, x := range eps {
			rows := "" // known only where counted
			if e.counter[p] != nil && counted[p].endpoint == x.endpoint {
				rows = fmt.Sprintf(" for %d rows", x.rows)
			}
			fmt.Fprintf(w, "  %s: %d calls%s, %s (%s)\n", x.endpoint, x.calls, rows, tasks.FormatAmount(x.spend, p), x.note)
			if x.uncounted > 0 {
				fmt.Fprintf(w, "  %s: %d domains were not in the count's answer: one call each is counted\n", x.endpoint, x.uncounted)
			}
		}
	}
	for _, p := range slices.Sorted(maps.Keys(e.fates)) {
		f := e.fates[p]
		fmt.Fprintf(w, "refresh of %s at %s: %d domains unchanged (no call), %d changed (their new and lost rows), %d fetched in full\n",
			e.spec.Refresh.BaseJob, p, f[0], f[1], f[2])
	}
	if len(e.bulks) == 0 {
		fmt.Fprintln(w, "the estimate cost nothing (no vendor of this job counts many domains in one call)")
	}
	for _, p := range slices.Sorted(maps.Keys(e.bulks)) {
		what := counted[p].bulk
		if e.fates[p] != nil {
			what += " and " + dataforseo.BulkNewLostEndpoint
		}
		fmt.Fprintf(w, "the estimate cost %s: %d %s call(s) at %s\n", tasks.FormatAmount(e.cost[p], p), e.bulks[p], what, p)
	}
}

func round6(v float64) float64 { return math.Round(v*1e6) / 1e6 }

// estimateLimits are the accounts' limits as a worker reads them
// (PROVIDER_LIMITS over the defaults): the shared limiter's state is kept
// per limit, so the estimate must hold the same one.
func estimateLimits(getenv func(string) string) (map[string]limiter.Limit, error) {
	v := getenv("PROVIDER_LIMITS")
	lims, err := vendorLimits(v)
	if err != nil {
		return nil, usageError{settings.Bad("PROVIDER_LIMITS", v, "%v", err)}
	}
	return lims, nil
}

// vendorLimits are the limits the vendors publish (their descriptors),
// with PROVIDER_LIMITS's entries over them.
func vendorLimits(v string) (map[string]limiter.Limit, error) {
	out := map[string]limiter.Limit{}
	for _, vd := range registry.Vendors {
		if l := vd.Limits; l.Rate > 0 || l.InFlight > 0 {
			out[vd.Name] = limiter.Limit{Rate: l.Rate, Period: l.Period, InFlight: l.InFlight}
		}
	}
	parsed, err := limiter.ParseLimits(v)
	if err != nil {
		return out, err
	}
	maps.Copy(out, parsed)
	return out, nil
}
