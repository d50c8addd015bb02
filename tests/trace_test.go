package tests

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/hibiken/asynq"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/propagation"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"

	"github.com/linkharvest/linkharvest/internal/runner"
	"github.com/linkharvest/linkharvest/internal/telemetry"
	"github.com/linkharvest/linkharvest/internal/testenv"
	"github.com/linkharvest/linkharvest/providers/registry"
	"github.com/linkharvest/linkharvest/providers/sandbox"
	"github.com/linkharvest/linkharvest/tasks"
)

// TestTraceConnectedAndNoSecrets runs enqueue → worker in one process with
// an in-memory span recorder: one trace must connect the enqueue span to
// each vendor call and S3 write, and no span or log line may hold a
// credential (the DomDetailer and XOVI keys travel in URLs).
func TestTraceConnectedAndNoSecrets(t *testing.T) {
	rds := testenv.Redis(t)
	s3 := testenv.MinIO(t)
	s3.Setenv(t)

	rec := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec))
	prevTP, prevProp := otel.GetTracerProvider(), otel.GetTextMapPropagator()
	otel.SetTracerProvider(tp)
	otel.SetTextMapPropagator(propagation.TraceContext{})
	t.Cleanup(func() { otel.SetTracerProvider(prevTP); otel.SetTextMapPropagator(prevProp) })

	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	hs := &http.Server{Handler: registry.Sandbox(sandbox.Options{Seed: 1})}
	go hs.Serve(ln)
	t.Cleanup(func() { hs.Close() })
	base := "http://" + ln.Addr().String()

	secrets := map[string]string{}
	for i, k := range registry.SecretVars() {
		secrets[k] = fmt.Sprintf("sec-Zq%dx%s", i, strings.ToLower(k))
	}
	env := registry.SandboxEnv(base)
	for k, v := range secrets {
		env[k] = v
	}
	getenv := func(k string) string { return env[k] }

	logs := &lockedBuffer{}
	log := slog.New(telemetry.LogHandler{Handler: slog.NewJSONHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug})})
	rdb := rds.Client(t)
	ctx := context.Background()
	r, err := runner.Start(ctx, runner.Config{Redis: rdb, SinkURL: s3.SinkURL("trace"), Concurrency: 8, Getenv: getenv, Log: log})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Shutdown()

	client := asynq.NewClientFromRedisClient(rdb)
	defer client.Close()
	sub := &tasks.Submitter{Store: tasks.NewStore(rdb), Client: client}
	spec := tasks.Spec{Providers: []string{"dataforseo", "domdetailer", "xovi"},
		Endpoints: map[string][]string{"dataforseo": {"backlinks"}, "domdetailer": {"backlinks"}, "xovi": {"backlinks"}}}
	root, span := telemetry.Tracer().Start(ctx, "enqueue")
	b, err := sub.Begin(root, "trace-job", spec, telemetry.Inject(root))
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range []string{"rows-1500.example", "rows-3.example"} {
		if err := b.Add(root, d); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := b.Close(root); err != nil {
		t.Fatal(err)
	}
	span.End()
	waitDone(t, tasks.NewStore(rdb), "trace-job", 2*time.Minute)
	r.Shutdown()

	spans := rec.Ended()
	traceID := span.SpanContext().TraceID()
	byID := map[string]sdktrace.ReadOnlySpan{}
	for _, s := range spans {
		byID[s.SpanContext().SpanID().String()] = s
	}
	// Every vendor call and S3 write must lead back to the enqueue span.
	rooted := func(s sdktrace.ReadOnlySpan) bool {
		for i := 0; i < 10; i++ {
			if s.SpanContext().SpanID() == span.SpanContext().SpanID() {
				return true
			}
			p, ok := byID[s.Parent().SpanID().String()]
			if !ok {
				return s.Parent().SpanID() == span.SpanContext().SpanID()
			}
			s = p
		}
		return false
	}
	var calls, puts, waits int
	for _, s := range spans {
		name := s.Name()
		switch {
		case strings.HasPrefix(name, "vendor "):
			calls++
		case name == "sink put":
			puts++
		case name == "limiter wait":
			waits++
		default:
			continue
		}
		if s.SpanContext().TraceID() != traceID || !rooted(s) {
			t.Errorf("span %q is not in the enqueue trace", name)
		}
	}
	if calls < 4 || puts < 4 || waits < 1 {
		t.Errorf("spans: %d vendor calls, %d sink puts, %d limiter waits; want ≥4, ≥4, ≥1", calls, puts, waits)
	}
	// No credential in any span (name, attributes, events) or log line.
	var dump strings.Builder
	for _, s := range spans {
		fmt.Fprintf(&dump, "%s %v %v %v\n", s.Name(), s.Attributes(), s.Events(), s.Status())
	}
	for name, v := range secrets {
		if strings.Contains(dump.String(), v) {
			t.Errorf("a span holds %s", name)
		}
		if strings.Contains(logs.String(), v) {
			t.Errorf("a log line holds %s", name)
		}
	}
	if !strings.Contains(logs.String(), `"trace_id":"`+traceID.String()) {
		t.Error("no log line carries the job's trace id")
	}
}

func waitDone(t *testing.T, store *tasks.Store, job string, d time.Duration) *tasks.Status {
	t.Helper()
	deadline := time.Now().Add(d)
	for time.Now().Before(deadline) {
		s, err := store.Status(context.Background(), job)
		if err == nil && s.Done() {
			return s
		}
		time.Sleep(100 * time.Millisecond)
	}
	s, _ := store.Status(context.Background(), job)
	t.Fatalf("job %s did not finish within %v: %+v", job, d, s)
	return nil
}
