package tasks

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/hibiken/asynq"

	"github.com/linkharvest/linkharvest/internal/testenv"
	"github.com/linkharvest/linkharvest/providers"
)

// TestVendorWaits: a vendor that is not ready makes the page wait (not a
// failure, its RetryAfter kept) up to maxPendingWaits times, counted per
// page across deliveries, then fails it for good; an account stop whose
// time has passed since the call pauses nothing and asks again soon.
func TestVendorWaits(t *testing.T) {
	rds := testenv.Redis(t)
	w := &Worker{Store: NewStore(rds.Client(t))}
	ctx := context.Background()
	p := &PagePayload{Job: "j", Provider: "domaincrawler", Endpoint: "backlinks", Domain: "a.example", Page: 1}
	other := *p
	other.Page = 2
	pending := &providers.Error{Provider: "domaincrawler", Class: providers.Pending, Code: "export unfinished", RetryAfter: time.Minute}
	for i := 1; i <= maxPendingWaits; i++ {
		err := w.vendorError(ctx, nil, p, pending)
		if IsFailure(err) || errors.Is(err, asynq.SkipRetry) {
			t.Fatalf("wait %d: %v is a failure", i, err)
		}
		if pe, ok := providers.AsError(err); !ok || pe.RetryAfter != time.Minute {
			t.Fatalf("wait %d: %v, want the vendor's wait kept", i, err)
		}
	}
	if err := w.vendorError(ctx, nil, p, pending); !errors.Is(err, asynq.SkipRetry) {
		t.Errorf("wait %d: %v, want a final failure", maxPendingWaits+1, err)
	}
	if err := w.vendorError(ctx, nil, &other, pending); IsFailure(err) {
		t.Errorf("another page's first wait: %v is a failure", err)
	}

	// A stop that lifted while the answer travelled: no pause (the worker
	// has no Pauser or Client here: touching them would panic).
	lifted := &providers.Error{Provider: "dataforseo", Class: providers.Fatal, Account: true, Code: "40203", Until: time.Now().Add(-time.Second)}
	err := w.vendorError(ctx, nil, p, lifted)
	if pe, ok := providers.AsError(err); !ok || pe.Class != providers.Pending || pe.RetryAfter != time.Second || IsFailure(err) {
		t.Errorf("a lifted stop: %v, want a short wait", err)
	}
}
