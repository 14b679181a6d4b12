package postgreslog

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
const scope = "github.com/eventsourced-go/eventsourced/postgreslog"

// Attribute keys of this package's spans and of the queue gauge.
const (
	attrAppends   = attribute.Key("eventsourced.appends")
	attrConflicts = attribute.Key("eventsourced.conflicts")
	attrReads     = attribute.Key("eventsourced.reads")
	// attrTable names the events table of a Log, schema-qualified when a
	// schema is set: it tells apart the queue gauges of several Logs of
	// one process.
	attrTable = attribute.Key("eventsourced.log.table")
)

// backendAttr is the eventsourced.backend attribute of everything this
// package reports.
var backendAttr = itel.Backend.String("postgres")

// logTelemetry is a Log's tracer and instruments. Names follow the
// OpenTelemetry conventions; entity ids are span attributes only.
type logTelemetry struct {
	tracing  *itel.Tracing
	metering *itel.Metering
	inst     itel.Instruments

	appendTime   metric.Float64Histogram
	conflicts    metric.Int64Counter
	txAppends    metric.Int64Histogram
	txEvents     metric.Int64Histogram
	retries      metric.Int64Counter
	queued       metric.Int64ObservableGauge
	registration metric.Registration

	// Precomputed attribute sets, so that measuring allocates nothing.
	backend   itel.Attrs
	byOutcome [itel.NumAppendOutcomes]itel.Attrs
	queue     itel.Attrs
}

// initTelemetry sets up the telemetry of l from its config.
func (l *Log) initTelemetry() {
	t := &l.tel
	t.tracing = itel.NewTracing(l.cfg.tp, scope, false)
	t.metering = itel.NewMetering(l.cfg.mp, scope, false)
	t.inst = itel.Instruments{Meter: t.metering.Meter()}
	in := &t.inst
	t.appendTime = in.Histogram("eventsourced.log.append.duration", "s", "Time of an append to the event log, from the call to its answer, queueing included; by backend and outcome (ok, conflict, deleted, failed).", itel.Durations...)
	t.conflicts = in.Counter("eventsourced.log.conflicts", "{append}", "Appends refused because the stream's last Seq was not the expected one.")
	t.txAppends = in.IntHistogram("eventsourced.log.transaction.appends", "{append}", "Appends one committed group-commit transaction carried, conflicting ones included.", itel.Sizes...)
	t.txEvents = in.IntHistogram("eventsourced.log.transaction.events", "{event}", "Events one committed group-commit transaction inserted.", itel.Sizes...)
	t.retries = in.Counter("eventsourced.log.transaction.retries", "{transaction}", "Group-commit transactions run again because the server aborted them or the unique key refused a row written around the Log.")
	t.queued = in.Gauge("eventsourced.log.append.queued", "{append}", "Appends waiting for a group-commit worker, by Log (events table).")
	t.backend = itel.NewAttrs(backendAttr)
	t.byOutcome = itel.AppendAttrs(backendAttr)
	table := l.cfg.tables.Events
	if table == "" {
		table = l.cfg.prefix + "events"
	}
	if l.cfg.schema != "" {
		table = l.cfg.schema + "." + table
	}
	t.queue = itel.NewAttrs(backendAttr, attrTable.String(table))
	t.registration = in.Observe(func(_ context.Context, o metric.Observer) error {
		o.ObserveInt64(t.queued, int64(l.queue.len()), t.queue.Observe...)
		return nil
	}, t.queued)
	if in.Err != nil {
		l.cfg.logger.Warn("postgreslog: some metrics are not reported", "error", in.Err)
	}
}

// appendMeasured is Append when metrics are on: it records the append's
// duration by outcome.
func (l *Log) appendMeasured(ctx context.Context, typ, id string, expected uint64, events []eventlog.Event) (uint64, error) {
	start := time.Now()
	pos, err := l.append(ctx, typ, id, expected, events)
	l.tel.appendTime.Record(ctx, time.Since(start).Seconds(), l.tel.byOutcome[itel.AppendOutcome(err)].Record...)
	return pos, err
}

// startCommit starts the span of a group-commit transaction carrying reqs:
// a root linked to the spans of the appends, since it is theirs alike.
func (t *logTelemetry) startCommit(ctx context.Context, reqs []*appendReq) (context.Context, trace.Span) {
	links := make([]trace.Link, 0, len(reqs))
	for _, r := range reqs {
		links = itel.LinkTo(links, r.ctx)
	}
	return t.tracing.Tracer().Start(ctx, "postgreslog commit",
		trace.WithNewRoot(), trace.WithSpanKind(trace.SpanKindClient), trace.WithLinks(links...),
		trace.WithAttributes(backendAttr, attrAppends.Int(len(reqs))))
}

// startReads starts the span of a first-read query serving reqs: the
// child of the caller's span for a lone read, which runs under its
// caller's context, else a root linked to the spans of the reads.
func (t *logTelemetry) startReads(ctx context.Context, reqs []*readReq) (context.Context, trace.Span) {
	opts := []trace.SpanStartOption{trace.WithSpanKind(trace.SpanKindClient),
		trace.WithAttributes(backendAttr, attrReads.Int(len(reqs)))}
	if len(reqs) > 1 {
		links := make([]trace.Link, 0, len(reqs))
		for _, r := range reqs {
			links = itel.LinkTo(links, r.ctx)
		}
		opts = append(opts, trace.WithNewRoot(), trace.WithLinks(links...))
	}
	return t.tracing.Tracer().Start(ctx, "postgreslog read first pages", opts...)
}

// newStoreTelemetry returns the measurement of a SnapshotStore's
// operations with cfg.
func newStoreTelemetry(cfg *config) *itel.SnapshotOps {
	tracing := itel.NewTracing(cfg.tp, scope, false)
	metering := itel.NewMetering(cfg.mp, scope, false)
	return itel.NewSnapshotOps(tracing, metering, &itel.Instruments{Meter: metering.Meter()}, backendAttr, "postgreslog")
}
