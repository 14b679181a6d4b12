package natslog

import (
	"context"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/trace"

	"github.com/eventsourced-go/eventsourced/eventlog"
	itel "github.com/eventsourced-go/eventsourced/internal/telemetry"
)

// scope is the OpenTelemetry instrumentation scope of this package.
const scope = "github.com/eventsourced-go/eventsourced/natslog"

// Attribute keys of this package's spans and metrics.
const (
	attrLookups  = attribute.Key("eventsourced.lookups")
	attrSubjects = attribute.Key("eventsourced.subjects")
)

// backendAttr is the eventsourced.backend attribute of everything this
// package reports.
var backendAttr = itel.Backend.String("nats")

// logTelemetry is a Log's tracer and instruments. Names follow the
// OpenTelemetry conventions; entity ids are span attributes only.
type logTelemetry struct {
	tracing  *itel.Tracing
	metering *itel.Metering

	appendTime metric.Float64Histogram
	conflicts  metric.Int64Counter
	inflight   metric.Int64UpDownCounter
	lookups    metric.Int64Histogram

	// Precomputed attribute sets, so that measuring allocates nothing.
	backend   itel.Attrs
	byOutcome [itel.NumAppendOutcomes]itel.Attrs
}

// newLogTelemetry returns the telemetry of a Log with cfg, and the counter
// of requests lost with the connection for its connWatch.
func newLogTelemetry(cfg *config) (logTelemetry, *lostCounter, error) {
	t := logTelemetry{
		tracing:  itel.NewTracing(cfg.tp, scope, false),
		metering: itel.NewMetering(cfg.mp, scope, false),
	}
	in := &itel.Instruments{Meter: t.metering.Meter()}
	t.appendTime = in.Histogram("eventsourced.log.append.duration", "s", "Time of an append to the event log, from the call to its answer; by backend and outcome (ok, conflict, deleted, failed).", itel.Durations...)
	t.conflicts = in.Counter("eventsourced.log.conflicts", "{append}", "Appends refused because the stream's last Seq was not the expected one.")
	t.inflight = in.UpDownCounter("eventsourced.log.append.inflight", "{append}", "Appends in flight: called and not yet answered.")
	t.lookups = in.IntHistogram("eventsourced.log.multi_get.lookups", "{lookup}", "Entities whose last message one multi-subject direct get looks up.", itel.Sizes...)
	t.backend = itel.NewAttrs(backendAttr)
	t.byOutcome = itel.AppendAttrs(backendAttr)
	lost := newLostCounter(t.metering, in)
	return t, lost, in.Err
}

// lostCounter counts the requests that failed because the connection
// dropped while they were in flight.
type lostCounter struct {
	metering *itel.Metering
	counter  metric.Int64Counter
	attrs    itel.Attrs
}

func newLostCounter(m *itel.Metering, in *itel.Instruments) *lostCounter {
	return &lostCounter{
		metering: m,
		counter:  in.Counter("eventsourced.log.requests.lost", "{request}", "Requests that failed because the connection to the server dropped while they were in flight: their outcome is unknown."),
		attrs:    itel.NewAttrs(backendAttr),
	}
}

// add counts one lost request.
func (c *lostCounter) add() {
	if c != nil && c.metering.On() {
		c.counter.Add(context.Background(), 1, c.attrs.Add...)
	}
}

// appendMeasured is Append when spans or metrics are on: a client span, a
// child of ctx's, if traced; the appends in flight, the duration by
// outcome and the conflicts if metered.
func (l *Log) appendMeasured(ctx context.Context, traced, metered bool, typ, id string, expected uint64, events []eventlog.Event) (uint64, error) {
	t := &l.tel
	var span trace.Span
	if traced {
		ctx, span = t.tracing.Tracer().Start(ctx, "natslog append", trace.WithSpanKind(trace.SpanKindClient),
			trace.WithAttributes(backendAttr, itel.EntityType.String(typ), itel.EntityID.String(id),
				itel.Seq.Int64(int64(expected+1)), itel.Events.Int(len(events))))
	}
	var start time.Time
	if metered {
		start = time.Now()
		t.inflight.Add(ctx, 1, t.backend.Add...)
	}
	pos, err := l.append(ctx, typ, id, expected, events)
	o := itel.AppendOutcome(err)
	if metered {
		t.inflight.Add(ctx, -1, t.backend.Add...)
		t.appendTime.Record(ctx, time.Since(start).Seconds(), t.byOutcome[o].Record...)
		if o == itel.AppendConflict {
			t.conflicts.Add(ctx, 1, t.backend.Add...)
		}
	}
	if span != nil {
		span.SetAttributes(itel.Outcome.String(itel.AppendOutcomeNames[o]))
		if err == nil {
			span.SetAttributes(itel.Position.Int64(int64(pos)))
		}
		itel.EndSpan(span, err)
	}
	return pos, err
}

// startLookups starts the span of a multi-subject direct get of subjects
// serving reqs: a root linked to the spans of the lookups, since it is
// theirs alike.
func (t *logTelemetry) startLookups(ctx context.Context, bySubj map[string][]*lastReq, subjects int) (context.Context, trace.Span) {
	var links []trace.Link
	lookups := 0
	for _, reqs := range bySubj {
		lookups += len(reqs)
		for _, r := range reqs {
			links = itel.LinkTo(links, r.ctx)
		}
	}
	return t.tracing.Tracer().Start(ctx, "natslog lookup last", trace.WithNewRoot(), trace.WithSpanKind(trace.SpanKindClient),
		trace.WithLinks(links...), trace.WithAttributes(backendAttr, attrSubjects.Int(subjects), attrLookups.Int(lookups)))
}

// newStoreTelemetry returns the measurement of a SnapshotStore's
// operations with cfg, and the counter of requests lost with the
// connection for its connWatch.
func newStoreTelemetry(cfg *config) (*itel.SnapshotOps, *lostCounter, error) {
	tracing := itel.NewTracing(cfg.tp, scope, false)
	metering := itel.NewMetering(cfg.mp, scope, false)
	in := &itel.Instruments{Meter: metering.Meter()}
	ops := itel.NewSnapshotOps(tracing, metering, in, backendAttr, "natslog")
	lost := newLostCounter(metering, in)
	return ops, lost, in.Err
}
