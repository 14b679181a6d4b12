package projection

import (
	"context"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"

	"github.com/eventsourced-go/eventsourced/eventlog"
	itel "github.com/eventsourced-go/eventsourced/internal/telemetry"
)

// scope is the OpenTelemetry instrumentation scope of this package.
const scope = "github.com/eventsourced-go/eventsourced/projection"

// The Positions of the first and last events of a batch, as span
// attributes.
const (
	firstPosition = attribute.Key("eventsourced.position.first")
	lastPosition  = attribute.Key("eventsourced.position.last")
)

// telemetry is a Projection's tracer, propagator and instruments.
type telemetry struct {
	tracing  *itel.Tracing
	metering *itel.Metering
	prop     propagation.TextMapPropagator
	inst     itel.Instruments

	events    metric.Int64Counter
	batchTime metric.Float64Histogram
	retries   metric.Int64Counter
	poison    metric.Int64Counter
	lag       metric.Int64ObservableGauge
	lagTime   metric.Float64ObservableGauge

	spanName string
	// names are the span attributes of every batch: projection and entity
	// type.
	names []attribute.KeyValue
	// byProjection, ok, failed, skipped and stopped are the metric
	// attributes: by projection (and entity type), and with an outcome.
	byProjection     itel.Attrs
	ok, failed       itel.Attrs
	skipped, stopped itel.Attrs
}

func (t *telemetry) init(c *config, name, typ string) {
	t.tracing = itel.NewTracing(c.tp, scope, false)
	t.metering = itel.NewMetering(c.mp, scope, false)
	t.prop = c.prop
	if t.prop == nil {
		t.prop = itel.DefaultPropagator()
	}
	t.inst = itel.Instruments{Meter: t.metering.Meter()}
	in := &t.inst
	t.events = in.Counter("eventsourced.projection.events", "{event}", "Events handled, by projection.")
	t.batchTime = in.Histogram("eventsourced.projection.batch.duration", "s", "Time of one attempt to handle a batch and commit its offset, by projection and outcome.", itel.Durations...)
	t.retries = in.Counter("eventsourced.projection.retries", "{attempt}", "Attempts retried after a failure of the handler, the offset store or the log, by projection.")
	t.poison = in.Counter("eventsourced.projection.poison", "{event}", "Poison events, by projection and outcome (skipped or stopped).")
	t.lag = in.Gauge("eventsourced.projection.lag", "{event}", "Events read from the log and not yet handled (Status.Lag), by projection.")
	t.lagTime = in.FloatGauge("eventsourced.projection.lag.time", "s", "How old the last event handled is, while events wait to be handled (0 when caught up), by projection.")

	t.spanName = "projection " + name
	pn, tn := itel.Projection.String(name), itel.EntityType.String(typ)
	t.names = []attribute.KeyValue{pn, tn}
	t.byProjection = itel.NewAttrs(pn, tn)
	t.ok = itel.NewAttrs(pn, tn, itel.Outcome.String("ok"))
	t.failed = itel.NewAttrs(pn, tn, itel.Outcome.String("failed"))
	t.skipped = itel.NewAttrs(pn, tn, itel.Outcome.String("skipped"))
	t.stopped = itel.NewAttrs(pn, tn, itel.Outcome.String("stopped"))
}

// batchStart is what an attempt is measured from.
type batchStart struct {
	span    trace.Span // nil unless traced
	start   time.Time  // zero unless timed
	metered bool
}

// startBatch starts measuring an attempt at batch and returns the context
// to run it with: with a span when tracing is on, whose parent is the
// trace context of the batch's first event that carries a valid one, so
// that the projection's work shows in the trace of the command that wrote
// the event. Without one the span is a root, whatever ctx carries: the
// caller of Start is not the cause of the events. With nothing recording,
// it costs two atomic loads.
func (t *telemetry) startBatch(ctx context.Context, batch []eventlog.Record, skipping bool) (context.Context, batchStart) {
	bs := batchStart{metered: t.metering.On()}
	if t.tracing.On() {
		ctx, bs.span = t.startSpan(ctx, batch, skipping)
	}
	if bs.span != nil || (bs.metered && !skipping && t.batchTime.Enabled(ctx)) {
		bs.start = time.Now()
	}
	return ctx, bs
}

// startSpan starts the span of an attempt at batch. It links to the other
// distinct trace contexts of the batch's events; a missing or malformed
// trace context is neither parent nor link.
func (t *telemetry) startSpan(ctx context.Context, batch []eventlog.Record, skipping bool) (context.Context, trace.Span) {
	type key struct {
		trace trace.TraceID
		span  trace.SpanID
	}
	var parent trace.SpanContext
	var links []trace.Link
	var seen map[key]struct{}
	for i := range batch {
		sc := itel.Extract(t.prop, batch[i].Metadata)
		if !sc.IsValid() {
			continue
		}
		k := key{sc.TraceID(), sc.SpanID()}
		if !parent.IsValid() {
			parent = sc
			if len(batch) > 1 {
				seen = map[key]struct{}{k: {}}
			}
			continue
		}
		if _, dup := seen[k]; dup {
			continue
		}
		seen[k] = struct{}{}
		links = append(links, trace.Link{SpanContext: sc})
	}
	attrs := make([]attribute.KeyValue, 0, len(t.names)+4)
	attrs = append(attrs, t.names...)
	attrs = append(attrs, itel.Events.Int(len(batch)),
		firstPosition.Int64(int64(batch[0].Position)), lastPosition.Int64(int64(batch[len(batch)-1].Position)))
	if skipping {
		attrs = append(attrs, itel.Outcome.String("skipped"))
	}
	opts := []trace.SpanStartOption{trace.WithSpanKind(trace.SpanKindConsumer), trace.WithAttributes(attrs...)}
	if len(links) > 0 {
		opts = append(opts, trace.WithLinks(links...))
	}
	if parent.IsValid() {
		ctx = trace.ContextWithRemoteSpanContext(ctx, parent)
	} else {
		opts = append(opts, trace.WithNewRoot())
	}
	return t.tracing.Tracer().Start(ctx, t.spanName, opts...)
}

// endBatch records how an attempt at n events ended: err is the commit's
// error, nil if it committed.
func (t *telemetry) endBatch(ctx context.Context, bs batchStart, n int, skipping bool, err error) {
	if bs.metered && !skipping {
		attrs := &t.ok
		if err == nil {
			t.events.Add(ctx, int64(n), t.byProjection.Add...)
		} else {
			attrs = &t.failed
		}
		if !bs.start.IsZero() {
			t.batchTime.Record(ctx, time.Since(bs.start).Seconds(), attrs.Record...)
		}
	}
	itel.EndSpan(bs.span, err)
}

// retried counts a retry.
func (t *telemetry) retried(ctx context.Context) {
	if t.metering.On() {
		t.retries.Add(ctx, 1, t.byProjection.Add...)
	}
}

// poisoned counts a poison event, skipped or stopped at.
func (t *telemetry) poisoned(ctx context.Context, skipped bool) {
	if !t.metering.On() {
		return
	}
	attrs := &t.stopped
	if skipped {
		attrs = &t.skipped
	}
	t.poison.Add(ctx, 1, attrs.Add...)
}

// observe reports the projection's lag gauges, while it runs (Start
// registers it, the end of the run unregisters it).
func (p *Projection) observe(_ context.Context, o metric.Observer) error {
	events, since := p.lag()
	var secs float64
	if events > 0 && !since.IsZero() {
		secs = max(time.Since(since).Seconds(), 0)
	}
	o.ObserveInt64(p.tel.lag, int64(events), p.tel.byProjection.Observe...)
	o.ObserveFloat64(p.tel.lagTime, secs, p.tel.byProjection.Observe...)
	return nil
}
