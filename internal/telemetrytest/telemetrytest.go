package telemetrytest

import (
	"context"
	"slices"
	"testing"

	"go.opentelemetry.io/otel/attribute"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"
)

// Observed is the telemetry of the components under test as the SDK's test
// helpers record it: give them TP and MP.
type Observed struct {
	Spans  *tracetest.InMemoryExporter
	TP     *sdktrace.TracerProvider
	Reader *sdkmetric.ManualReader
	MP     *sdkmetric.MeterProvider

	// Always are attributes every data point that Sum and Histogram look
	// at must carry (a backend's eventsourced.backend, say); a point
	// without them fails the test.
	Always []attribute.KeyValue
}

// New returns an Observed whose providers shut down when t ends. Its
// tracer provider samples every span and exports it when it ends.
func New(t testing.TB) *Observed {
	o := &Observed{Spans: tracetest.NewInMemoryExporter(), Reader: sdkmetric.NewManualReader()}
	o.TP = sdktrace.NewTracerProvider(sdktrace.WithSyncer(o.Spans))
	o.MP = sdkmetric.NewMeterProvider(sdkmetric.WithReader(o.Reader))
	t.Cleanup(func() {
		_ = o.TP.Shutdown(context.Background())
		_ = o.MP.Shutdown(context.Background())
	})
	return o
}

// Caller starts a span named name, a child of ctx's, as the caller of the
// component under test would.
func (o *Observed) Caller(ctx context.Context, name string) (context.Context, trace.Span) {
	return o.TP.Tracer("test").Start(ctx, name)
}

// Named returns the ended spans named name, in the order they ended.
func (o *Observed) Named(name string) []sdktrace.ReadOnlySpan {
	var out []sdktrace.ReadOnlySpan
	for _, s := range o.Spans.GetSpans().Snapshots() {
		if s.Name() == name {
			out = append(out, s)
		}
	}
	return out
}

// Metric returns the data of the metric named name, nil if it has none.
func (o *Observed) Metric(t testing.TB, name string) metricdata.Aggregation {
	t.Helper()
	var rm metricdata.ResourceMetrics
	if err := o.Reader.Collect(context.Background(), &rm); err != nil {
		t.Fatalf("collecting metrics: %v", err)
	}
	for _, sm := range rm.ScopeMetrics {
		for _, m := range sm.Metrics {
			if m.Name == name {
				return m.Data
			}
		}
	}
	return nil
}

// Sum returns the sum of the data points of the int64 counter or up-down
// counter named name that carry every attribute of want; ok is false if
// none does (or the metric has no data).
func (o *Observed) Sum(t testing.TB, name string, want ...attribute.KeyValue) (n int64, ok bool) {
	t.Helper()
	data := o.Metric(t, name)
	if data == nil {
		return 0, false
	}
	s, isSum := data.(metricdata.Sum[int64])
	if !isSum {
		t.Fatalf("%s is a %T, want an int64 sum", name, data)
	}
	for _, dp := range s.DataPoints {
		o.checkAlways(t, name, dp.Attributes)
		if Has(dp.Attributes, want...) {
			n += dp.Value
			ok = true
		}
	}
	return n, ok
}

// Count is Sum without ok: 0 if no data point carries want.
func (o *Observed) Count(t testing.TB, name string, want ...attribute.KeyValue) int64 {
	t.Helper()
	n, _ := o.Sum(t, name, want...)
	return n
}

// Histogram returns the data point of o's histogram named name that
// carries every attribute of want, failing t unless there is exactly one.
func Histogram[N int64 | float64](t testing.TB, o *Observed, name string, want ...attribute.KeyValue) metricdata.HistogramDataPoint[N] {
	t.Helper()
	data := o.Metric(t, name)
	h, ok := data.(metricdata.Histogram[N])
	if !ok {
		t.Fatalf("%s is a %T, want a %T", name, data, h)
	}
	var found []metricdata.HistogramDataPoint[N]
	for _, dp := range h.DataPoints {
		o.checkAlways(t, name, dp.Attributes)
		if Has(dp.Attributes, want...) {
			found = append(found, dp)
		}
	}
	if len(found) != 1 {
		t.Fatalf("%s: %d data points with %v, want 1", name, len(found), want)
	}
	return found[0]
}

func (o *Observed) checkAlways(t testing.TB, name string, set attribute.Set) {
	t.Helper()
	if !Has(set, o.Always...) {
		t.Errorf("%s has a data point without %v: %v", name, o.Always, set.ToSlice())
	}
}

// Has reports whether set holds every attribute of want.
func Has(set attribute.Set, want ...attribute.KeyValue) bool {
	for _, kv := range want {
		if v, ok := set.Value(kv.Key); !ok || v != kv.Value {
			return false
		}
	}
	return true
}

// Attr returns the value of s's attribute key, the zero Value (type
// INVALID) if s has none.
func Attr(s sdktrace.ReadOnlySpan, key attribute.Key) attribute.Value {
	for _, kv := range s.Attributes() {
		if kv.Key == key {
			return kv.Value
		}
	}
	return attribute.Value{}
}

// Linked returns the span contexts s links to, in order.
func Linked(s sdktrace.ReadOnlySpan) []trace.SpanContext {
	out := make([]trace.SpanContext, 0, len(s.Links()))
	for _, l := range s.Links() {
		out = append(out, l.SpanContext)
	}
	return out
}

// SameSpans reports whether a and b are the same spans (trace and span
// ids), in any order.
func SameSpans(a, b []trace.SpanContext) bool {
	key := func(sc trace.SpanContext) string { return sc.TraceID().String() + sc.SpanID().String() }
	ka, kb := make([]string, len(a)), make([]string, len(b))
	for i := range a {
		ka[i] = key(a[i])
	}
	for i := range b {
		kb[i] = key(b[i])
	}
	slices.Sort(ka)
	slices.Sort(kb)
	return slices.Equal(ka, kb)
}
