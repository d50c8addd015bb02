package tasks

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"

	"github.com/linkharvest/linkharvest/internal/spend"
	"github.com/linkharvest/linkharvest/internal/telemetry"
	"github.com/linkharvest/linkharvest/limiter"
	"github.com/linkharvest/linkharvest/providers"
)

// The budget, worker side. Before a vendor call (and before the shared
// limiter's slot: a page that cannot be paid for holds no capacity) the
// worker reserves the most the call can cost, the price of the request at
// its limit, against the job's remaining budget for the provider, in one
// Redis script; after the answer it settles the reservation to the actual
// charge in another. The reservation is a lease renewed while the call
// runs, so a worker that dies gives its reservation back. A reservation
// that does not fit makes the page wait (budgetError: not a failure, no
// retry spent) until the budget is raised.

// reservationLease is how long a reservation outlives its last renewal;
// it is renewed every third of it while the call runs.
var reservationLease = 30 * time.Second // a var: tests shorten it

// budgetError is a page whose call does not fit in its job's budget.
type budgetError struct {
	provider         string
	charged, limit   int64
	reserved, amount int64
}

func (e *budgetError) Error() string {
	return fmt.Sprintf("waiting for budget: %s has spent %s of its budget of %s (%s held by calls in flight); this call may cost %s",
		e.provider, fmtNano(e.charged, e.provider), fmtNano(e.limit, e.provider), fmtNano(e.reserved, e.provider), fmtNano(e.amount, e.provider))
}

func fmtNano(n int64, provider string) string { return FormatAmount(spend.FromNano(n), provider) }

// hold is a reservation being renewed while its call runs.
type hold struct {
	r    *Reservation
	stop context.CancelFunc
	done chan struct{}
}

// reserve holds the most p's call can cost. It returns nil, nil when the
// provider has no budget in the job.
func (w *Worker) reserve(ctx context.Context, job *Job, p *PagePayload, prov Provider) (*hold, error) {
	if w.Store == nil { // a worker without a job store (unit tests of the call path)
		return nil, nil
	}
	price := w.Prices.Price(p.Provider, p.Endpoint)
	limit := p.Limit
	if limit <= 0 {
		if pg, err := prov.Paging(p.Endpoint); err == nil {
			limit = pageSize(job.Spec.MaxRows, pg)
		}
	}
	amount := spend.ToNano(price.At(limit))
	var id [8]byte
	_, _ = rand.Read(id[:])
	r, res, err := w.Store.reserve(ctx, p.Job, p.Provider, amount, reservationLease, hex.EncodeToString(id[:]))
	if err != nil {
		return nil, err
	}
	if res.unlimited {
		return nil, nil
	}
	if !res.held {
		return nil, &budgetError{provider: p.Provider, charged: res.charged, limit: res.limit, reserved: res.reserved, amount: amount}
	}
	// Renewed while the call runs, and never past the task's own time: a
	// call that never settles (a panic) cannot hold the budget for ever.
	rctx, stop := context.WithTimeout(context.WithoutCancel(ctx), TaskTimeout)
	h := &hold{r: r, stop: stop, done: make(chan struct{})}
	go w.renewHold(rctx, p.Job, h)
	return h, nil
}

func (w *Worker) renewHold(ctx context.Context, job string, h *hold) {
	defer close(h.done)
	tick(ctx, reservationLease/3, func() bool {
		ok, err := w.Store.renewReservation(ctx, job, h.r, reservationLease)
		if err == nil && !ok {
			w.log().Warn("a budget reservation expired while its call ran (the worker was paused or cut from Redis); the budget may be exceeded by this call",
				"job", job, "provider", h.r.Provider)
			return false
		}
		return true
	})
}

// settleFailed settles the reservation of a call that failed: nothing
// for an answer the vendor refused with a code of its own (it bills none)
// or a call the limiter never let out; the whole reservation when it is
// unknown whether the vendor billed (the connection broke, the body was
// cut).
func (w *Worker) settleFailed(ctx context.Context, p *PagePayload, h *hold, callErr error) {
	if h == nil {
		return
	}
	charge := h.r.Amount
	if pe, ok := providers.AsError(callErr); errors.Is(callErr, limiter.ErrWaitEnded) || ok && pe.Code != "" {
		charge = 0
	}
	w.settleNano(ctx, p, h, charge)
}

// settle replaces the reservation of a call that answered by what it
// cost (charge, in the provider's unit). The caller settles once the
// answer is in the ledger (a page's memo, a check's memo): until then the
// reservation shows the call in flight, so a job never reads "budget"
// while a page it paid for is still being written.
func (w *Worker) settle(ctx context.Context, p *PagePayload, h *hold, charge float64) {
	if h == nil {
		return
	}
	w.settleNano(ctx, p, h, spend.ToNano(charge))
}

func (w *Worker) settleNano(ctx context.Context, p *PagePayload, h *hold, charge int64) {
	h.stop()
	<-h.done
	if charge > h.r.Amount {
		w.log().Warn("a call cost more than its reservation; the ledger records what it cost",
			"job", p.Job, "provider", p.Provider, "endpoint", p.Endpoint, "domain", p.Domain, "page", p.Page,
			"reserved", spend.FromNano(h.r.Amount), "charged", spend.FromNano(charge))
	}
	bg := context.WithoutCancel(ctx)
	var err error
	for attempt := 0; attempt < 5; attempt++ {
		if _, err = w.Store.settle(bg, p.Job, h.r, charge); err == nil {
			return
		}
		time.Sleep(time.Duration(attempt+1) * 200 * time.Millisecond)
	}
	w.log().Error("settling a budget reservation failed; it is freed when its lease expires, and this call's charge is not counted against the budget",
		"job", p.Job, "provider", p.Provider, "err", err)
}

// charge is what a call that answered page cost, in the provider's unit:
// what the vendor states it charged where it does (DataForSEO's cost),
// else the price of the rows it returned.
func (w *Worker) charge(p *PagePayload, page *providers.Page) (float64, string) {
	price := w.Prices.Price(p.Provider, p.Endpoint)
	if price.Unit == "" { // a provider without a price: what it says
		return page.Cost, page.CostUnit
	}
	if price.Reported {
		return page.Cost, price.Unit
	}
	return price.For(len(page.Items)), price.Unit
}

// countSpend adds a written page's cost to the spend metric (once per
// page: a page's memo is kept once).
func countSpend(ctx context.Context, provider string, m *memo) {
	if m.Cost <= 0 {
		return
	}
	telemetry.M().Spend.Add(ctx, m.Cost, metric.WithAttributes(attribute.String("provider", provider), attribute.String("unit", m.CostUnit)))
}

// ParseBudget reads a budget SPEC for a job of the given providers: AMOUNT
// (a job with one provider) or provider=AMOUNT,... in each provider's unit.
func ParseBudget(spec string, jobProviders []string) (map[string]float64, error) {
	spec = strings.TrimSpace(spec)
	if spec == "" {
		return nil, errors.New("budget: empty (AMOUNT, or provider=AMOUNT,...)")
	}
	out := map[string]float64{}
	if !strings.Contains(spec, "=") {
		if len(jobProviders) != 1 {
			return nil, fmt.Errorf("budget %q: the job has %d providers (%s): write provider=AMOUNT for each", spec, len(jobProviders), strings.Join(jobProviders, ", "))
		}
		v, err := spend.ParseAmount(spec)
		if err != nil {
			return nil, fmt.Errorf("budget: %w", err)
		}
		out[jobProviders[0]] = v
		return out, nil
	}
	for _, entry := range strings.Split(spec, ",") {
		name, val, ok := strings.Cut(strings.TrimSpace(entry), "=")
		name = strings.ToLower(strings.TrimSpace(name))
		if !ok || name == "" {
			return nil, fmt.Errorf("budget %q: want provider=AMOUNT", entry)
		}
		if !slices.Contains(jobProviders, name) {
			return nil, fmt.Errorf("budget %q: %s is not a provider of the job (%s)", entry, name, strings.Join(jobProviders, ", "))
		}
		if _, dup := out[name]; dup {
			return nil, fmt.Errorf("budget %q: %s given twice", entry, name)
		}
		v, err := spend.ParseAmount(val)
		if err != nil {
			return nil, fmt.Errorf("budget %q: %w", entry, err)
		}
		out[name] = v
	}
	return out, nil
}
