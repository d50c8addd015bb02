// Package telemetry sets up OpenTelemetry for the programs: traces that
// travel from enqueue through the task to the vendor call and the S3
// write, metrics served on the worker's /metrics, and slog records that
// carry the trace id. Credentials never reach a span: vendor URLs are
// redacted before otelhttp sees them.
package telemetry

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"net/url"
	"os"
	"strings"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"

	"go.opentelemetry.io/contrib/instrumentation/net/http/otelhttp"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
	otelprom "go.opentelemetry.io/otel/exporters/prometheus"
	"go.opentelemetry.io/otel/propagation"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	semconv "go.opentelemetry.io/otel/semconv/v1.26.0"
	"go.opentelemetry.io/otel/trace"

	"github.com/linkharvest/linkharvest/internal/redact"
)

// Scope names this module's tracer and meter.
const Scope = "github.com/linkharvest/linkharvest"

// Tracer returns the module's tracer (the global provider's).
func Tracer() trace.Tracer { return otel.Tracer(Scope) }

// Setup installs global providers. Traces go to OTLP/HTTP when the
// standard OTEL_EXPORTER_OTLP_(TRACES_)ENDPOINT is set and
// OTEL_TRACES_EXPORTER is not "none"; metrics go to the Prometheus
// default registry. The returned func flushes and stops them.
func Setup(ctx context.Context, service string) (func(context.Context) error, error) {
	otel.SetTextMapPropagator(propagation.NewCompositeTextMapPropagator(propagation.TraceContext{}, propagation.Baggage{}))
	res, _ := resource.Merge(resource.Default(), resource.NewSchemaless(semconv.ServiceName(service)))
	var shutdowns []func(context.Context) error
	if tracesWanted() {
		exp, err := otlptracehttp.New(ctx)
		if err != nil {
			return nil, err
		}
		tp := sdktrace.NewTracerProvider(sdktrace.WithBatcher(exp), sdktrace.WithResource(res))
		otel.SetTracerProvider(tp)
		shutdowns = append(shutdowns, tp.Shutdown)
	}
	pexp, err := otelprom.New()
	if err != nil {
		return nil, err
	}
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(pexp), sdkmetric.WithResource(res))
	otel.SetMeterProvider(mp)
	shutdowns = append(shutdowns, mp.Shutdown)
	return func(ctx context.Context) error {
		var errs []error
		for _, f := range shutdowns {
			errs = append(errs, f(ctx))
		}
		return errors.Join(errs...)
	}, nil
}

func tracesWanted() bool {
	if strings.EqualFold(os.Getenv("OTEL_TRACES_EXPORTER"), "none") || os.Getenv("OTEL_SDK_DISABLED") == "true" {
		return false
	}
	return os.Getenv("OTEL_EXPORTER_OTLP_ENDPOINT") != "" || os.Getenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") != "" ||
		strings.EqualFold(os.Getenv("OTEL_TRACES_EXPORTER"), "otlp")
}

// Inject returns ctx's trace context as a map, to carry in a task payload.
func Inject(ctx context.Context) map[string]string {
	c := propagation.MapCarrier{}
	otel.GetTextMapPropagator().Inject(ctx, c)
	if len(c) == 0 {
		return nil
	}
	return c
}

// Extract continues the trace carried in a task payload.
func Extract(ctx context.Context, carrier map[string]string) context.Context {
	if len(carrier) == 0 {
		return ctx
	}
	return otel.GetTextMapPropagator().Extract(ctx, propagation.MapCarrier(carrier))
}

type origURLKey struct{}

// Transport traces each vendor call with otelhttp while keeping secrets
// (API keys in query strings or paths, passwords) out of the span: otelhttp
// sees a copy of the request whose URL has every secret replaced, and the
// inner transport puts the real URL back before sending.
func Transport(inner http.RoundTripper, secrets ...string) http.RoundTripper {
	var ss []string
	for _, s := range secrets {
		if s != "" {
			ss = append(ss, s, url.QueryEscape(s), url.PathEscape(s))
		}
	}
	restore := roundTripFunc(func(r *http.Request) (*http.Response, error) {
		if u, ok := r.Context().Value(origURLKey{}).(*url.URL); ok {
			r = r.Clone(r.Context())
			r.URL = u
		}
		return inner.RoundTrip(r)
	})
	traced := otelhttp.NewTransport(restore,
		otelhttp.WithSpanNameFormatter(func(_ string, r *http.Request) string { return "vendor " + r.Method + " " + r.URL.Path }))
	return roundTripFunc(func(r *http.Request) (*http.Response, error) {
		red := RedactURL(r.URL, ss)
		if red.String() == r.URL.String() {
			return traced.RoundTrip(r)
		}
		ctx := context.WithValue(r.Context(), origURLKey{}, r.URL)
		r2 := r.Clone(ctx)
		r2.URL = red
		return traced.RoundTrip(r2)
	})
}

// RedactURL replaces every secret in u (user info, path, query) with REDACTED.
func RedactURL(u *url.URL, secrets []string) *url.URL {
	c := *u
	if c.User != nil {
		c.User = url.User(redact.Mark)
	}
	for _, s := range secrets {
		if s == "" {
			continue
		}
		c.Path = strings.ReplaceAll(c.Path, s, "REDACTED")
		c.RawPath = strings.ReplaceAll(c.RawPath, s, "REDACTED")
		c.RawQuery = strings.ReplaceAll(c.RawQuery, s, "REDACTED")
	}
	return &c
}

type roundTripFunc func(*http.Request) (*http.Response, error)

func (f roundTripFunc) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

// LogHandler adds trace_id and span_id to records logged with a context
// that carries a span.
type LogHandler struct{ slog.Handler }

func (h LogHandler) Handle(ctx context.Context, r slog.Record) error {
	if sc := trace.SpanContextFromContext(ctx); sc.IsValid() {
		r.AddAttrs(slog.String("trace_id", sc.TraceID().String()), slog.String("span_id", sc.SpanID().String()))
	}
	return h.Handler.Handle(ctx, r)
}

func (h LogHandler) WithAttrs(as []slog.Attr) slog.Handler {
	return LogHandler{h.Handler.WithAttrs(as)}
}
func (h LogHandler) WithGroup(n string) slog.Handler { return LogHandler{h.Handler.WithGroup(n)} }

type waitStartKey struct{}

// WaitStart wraps the shared limiter's transport: it notes when a call
// began to wait for capacity, for WaitEnd.
func WaitStart(limited http.RoundTripper) http.RoundTripper {
	return roundTripFunc(func(r *http.Request) (*http.Response, error) {
		return limited.RoundTrip(r.WithContext(context.WithValue(r.Context(), waitStartKey{}, time.Now())))
	})
}

// WaitEnd sits under the shared limiter: the call has its capacity now,
// so the time since WaitStart is the limiter wait, recorded as a span and
// a histogram.
func WaitEnd(provider string, inner http.RoundTripper) http.RoundTripper {
	return roundTripFunc(func(r *http.Request) (*http.Response, error) {
		if t0, ok := r.Context().Value(waitStartKey{}).(time.Time); ok {
			now := time.Now()
			_, span := Tracer().Start(r.Context(), "limiter wait", trace.WithTimestamp(t0),
				trace.WithAttributes(attribute.String("provider", provider)))
			span.End(trace.WithTimestamp(now))
			M().LimiterWait.Record(r.Context(), now.Sub(t0).Seconds(), metric.WithAttributes(attribute.String("provider", provider)))
		}
		return inner.RoundTrip(r)
	})
}
