package main

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"strings"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
	otelprom "go.opentelemetry.io/otel/exporters/prometheus"
	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/propagation"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"
	"go.opentelemetry.io/otel/trace/noop"
)

// telemetry is what the cafe measures with: the OpenTelemetry providers of
// its entities and HTTP handlers, the /metrics handler, and how to flush
// and stop them. The App takes it explicitly, so that a test can measure
// one App without touching the global providers that other tests see;
// main also installs it as the global providers (see [telemetry.install]),
// for the components the cafe gives no options: the event logs,
// projections and protoactor-go.
type telemetry struct {
	tracerProvider trace.TracerProvider // noop.TracerProvider without a span processor
	meterProvider  metric.MeterProvider
	propagator     propagation.TextMapPropagator
	metrics        http.Handler // serves the Prometheus text format
	tracing        bool         // whether spans go anywhere
	shutdown       func(context.Context) error
}

// openTelemetry returns the cafe's telemetry: metrics in a Prometheus
// registry of its own, and, if otlp is not empty, traces exported over
// OTLP/HTTP to otlp, either host:port (plain HTTP, the path /v1/traces) or
// a URL used as it is (https://collector.example:4318/v1/traces).
func openTelemetry(ctx context.Context, otlp string) (*telemetry, error) {
	res, err := resource.New(ctx,
		resource.WithAttributes(attribute.String("service.name", "cafe")),
		resource.WithFromEnv(), // OTEL_SERVICE_NAME, OTEL_RESOURCE_ATTRIBUTES
		resource.WithTelemetrySDK())
	if err != nil {
		return nil, err
	}
	var spans sdktrace.SpanProcessor
	if otlp != "" {
		opts := []otlptracehttp.Option{otlptracehttp.WithEndpoint(otlp), otlptracehttp.WithInsecure()}
		if strings.Contains(otlp, "://") {
			opts = []otlptracehttp.Option{otlptracehttp.WithEndpointURL(otlp)}
		}
		// New does not connect: an unreachable collector shows up as
		// export errors, which install logs.
		exp, err := otlptracehttp.New(ctx, opts...)
		if err != nil {
			return nil, err
		}
		spans = sdktrace.NewBatchSpanProcessor(exp)
	}
	return newTelemetry(res, spans)
}

// newTelemetry returns telemetry whose metrics go to a fresh Prometheus
// registry and whose spans go to spans; without spans (nil) nothing is
// traced.
func newTelemetry(res *resource.Resource, spans sdktrace.SpanProcessor) (*telemetry, error) {
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	exp, err := otelprom.New(otelprom.WithRegisterer(reg))
	if err != nil {
		return nil, err
	}
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(exp), sdkmetric.WithResource(res))
	t := &telemetry{
		tracerProvider: noop.NewTracerProvider(),
		meterProvider:  mp,
		propagator:     propagation.NewCompositeTextMapPropagator(propagation.TraceContext{}, propagation.Baggage{}),
		metrics:        promhttp.HandlerFor(reg, promhttp.HandlerOpts{}),
		shutdown:       mp.Shutdown,
	}
	if spans != nil {
		tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(spans), sdktrace.WithResource(res))
		t.tracerProvider, t.tracing = tp, true
		// The tracer provider goes first: its last spans were ended before
		// the shutdown, and exporting them needs nothing of the meter.
		t.shutdown = func(ctx context.Context) error { return errors.Join(tp.Shutdown(ctx), mp.Shutdown(ctx)) }
	}
	return t, nil
}

// install makes t the global providers and propagator, which every
// component of eventsourced uses unless given others by option, and logs
// the errors of exporting to logger: a collector that is down is a failure
// nobody else sees. Without tracing the global tracer provider stays the
// no-op one, so that components do not even start spans.
func (t *telemetry) install(logger *slog.Logger) {
	otel.SetMeterProvider(t.meterProvider)
	if t.tracing {
		otel.SetTracerProvider(t.tracerProvider)
	}
	otel.SetTextMapPropagator(t.propagator)
	otel.SetErrorHandler(otel.ErrorHandlerFunc(func(err error) {
		logger.Warn("telemetry", "err", err)
	}))
}
