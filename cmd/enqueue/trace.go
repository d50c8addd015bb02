package main

import (
	"context"

	"github.com/linkharvest/linkharvest/internal/telemetry"
)

// traceCarrier returns the W3C trace context to carry in the tasks, so a
// job's trace runs from enqueue to every vendor call and S3 write.
func traceCarrier(ctx context.Context) map[string]string { return telemetry.Inject(ctx) }
