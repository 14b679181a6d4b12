package entity

import (
	"context"
	"errors"
	"reflect"
	"sync"
	"sync/atomic"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"

	"github.com/eventsourced-go/eventsourced/eventlog"
	itel "github.com/eventsourced-go/eventsourced/internal/telemetry"
)

// scope is the OpenTelemetry instrumentation scope of this package.
const scope = "github.com/eventsourced-go/eventsourced/entity"

// outcome names how a command ended, for the commands metric and the
// command span.
type outcomeKind uint8

const (
	outcomeOK outcomeKind = iota
	outcomeRejected
	outcomePanic
	outcomeConflict
	outcomePersistFailed
	outcomeRecoveryFailed
	outcomeCanceled  // its caller gave up before it started: it never ran
	outcomeAbandoned // its caller gave up after it started: unknown
	outcomeMailboxFull
	outcomeClosed
	outcomeInvalid
	outcomeDeleted // the entity was deleted for good (Kind.Delete)
	numOutcomes
)

var outcomeNames = [numOutcomes]string{"ok", "rejected", "panic", "conflict", "persist_failed", "recovery_failed", "canceled", "abandoned", "mailbox_full", "closed", "invalid", "deleted"}

// classify returns the outcome of a command that ended with err. The
// common case, nil, allocates nothing: errors.As's targets live in helpers.
func classify(err error) outcomeKind {
	if err == nil {
		return outcomeOK
	}
	return classifyError(err)
}

func classifyError(err error) outcomeKind {
	var pe *PersistError
	var ae *abandonedError
	switch {
	case errors.Is(err, ErrClosed):
		return outcomeClosed
	case errors.Is(err, ErrMailboxFull):
		return outcomeMailboxFull
	case errors.Is(err, ErrInvalid):
		return outcomeInvalid
	case isPanic(err):
		return outcomePanic
	case errors.Is(err, eventlog.ErrDeleted):
		return outcomeDeleted
	case errors.As(err, &pe):
		if errors.Is(err, eventlog.ErrConflict) {
			return outcomeConflict
		}
		return outcomePersistFailed
	case errors.Is(err, ErrRecovery):
		return outcomeRecoveryFailed
	case errors.As(err, &ae):
		return outcomeAbandoned
	case errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		return outcomeCanceled
	}
	return outcomeRejected
}

// sysTelemetry is a System's tracer, propagator and instruments. Metric
// names follow the OpenTelemetry conventions; entity ids are never metric
// attributes.
type sysTelemetry struct {
	off      bool // WithoutTelemetry: nothing is measured at all
	tracing  *itel.Tracing
	metering *itel.Metering
	prop     propagation.TextMapPropagator
	inst     itel.Instruments

	commands       metric.Int64Counter
	commandTime    metric.Float64Histogram
	appendCommands metric.Int64Histogram
	appendEvents   metric.Int64Histogram
	appendTime     metric.Float64Histogram
	activations    metric.Int64Counter
	passivations   metric.Int64Counter
	recoveryTime   metric.Float64Histogram
	recoveryEvents metric.Int64Histogram
	snapshots      metric.Int64Counter
	unusable       metric.Int64Counter
	live           metric.Int64ObservableGauge
	actors         metric.Int64ObservableGauge
	registration   metric.Registration
}

// telemetryConfig is what the System's telemetry options set.
type telemetryConfig struct {
	tp   trace.TracerProvider // nil: the global one
	mp   metric.MeterProvider // nil: the global one
	prop propagation.TextMapPropagator
	off  bool
}

func (s *System) initTelemetry(c telemetryConfig) {
	t := &s.tel
	t.off = c.off
	t.tracing = itel.NewTracing(c.tp, scope, c.off)
	t.prop = c.prop
	if t.prop == nil {
		t.prop = itel.DefaultPropagator()
	}
	t.metering = itel.NewMetering(c.mp, scope, c.off)
	t.inst = itel.Instruments{Meter: t.metering.Meter()}
	in := &t.inst
	t.commands = in.Counter("eventsourced.commands", "{command}", "Commands handled, by entity type and outcome.")
	t.commandTime = in.Histogram("eventsourced.command.duration", "s", "Time from Ask to its answer, queueing included.", itel.Durations...)
	t.appendCommands = in.IntHistogram("eventsourced.append.commands", "{command}", "Commands whose events one append carries.", itel.Sizes...)
	t.appendEvents = in.IntHistogram("eventsourced.append.events", "{event}", "Events one append carries.", itel.Sizes...)
	t.appendTime = in.Histogram("eventsourced.append.duration", "s", "Time of an append to the event log, by entity type and outcome.", itel.Durations...)
	t.activations = in.Counter("eventsourced.activations", "{entity}", "Entities activated.")
	t.passivations = in.Counter("eventsourced.passivations", "{entity}", "Entities passivated.")
	t.recoveryTime = in.Histogram("eventsourced.recovery.duration", "s", "Time to recover an entity from its snapshot and events, by outcome.", itel.Durations...)
	t.recoveryEvents = in.IntHistogram("eventsourced.recovery.events", "{event}", "Events replayed by a recovery.", itel.Sizes...)
	t.snapshots = in.Counter("eventsourced.snapshots", "{snapshot}", "Snapshots saved or failed, by entity type and outcome.")
	t.unusable = in.Counter("eventsourced.snapshots.unusable", "{snapshot}", "Snapshots recovery could not use (a state revision it cannot read, bytes it cannot decode), by entity type.")
	t.live = in.Gauge("eventsourced.entities.live", "{entity}", "Live entities, by entity type.")
	t.actors = in.Gauge("eventsourced.actors.running", "{actor}", "Entity actors running: entities whose commands queue up.")
	t.registration = in.Observe(s.observe, t.live, t.actors)
}

// observe reports the System's gauges.
func (s *System) observe(_ context.Context, o metric.Observer) error {
	s.mu.Lock()
	kinds := make([]kindHandle, 0, len(s.kinds))
	for _, k := range s.kinds {
		kinds = append(kinds, k)
	}
	s.mu.Unlock()
	for _, k := range kinds {
		k.observe(o)
	}
	o.ObserveInt64(s.tel.actors, s.running.Load())
	return nil
}

// kindTelemetry is a Kind's share: its attribute sets, precomputed so that
// measuring a command allocates nothing.
type kindTelemetry struct {
	sys      *sysTelemetry
	typeName attribute.KeyValue
	// byType, byOutcome, ok and failed are the attributes of the
	// measurements by entity type, by entity type and command outcome, and
	// by entity type and "ok" or "failed" (appends, recoveries, snapshots).
	byType    itel.Attrs
	byOutcome [numOutcomes]itel.Attrs
	ok        itel.Attrs
	failed    itel.Attrs
	names     sync.Map // reflect.Type of a command -> *commandNames
	// now is what the System measures, as of the last housekeeping tick:
	// asking the providers at every command would cost more than the
	// instrumentation itself when nothing records.
	now atomic.Uint32
}

// commandNames are the span name and attribute of one command type.
type commandNames struct {
	span string
	attr attribute.KeyValue
}

// init sets t up for entity type name of the System whose telemetry is sys.
func (t *kindTelemetry) init(sys *sysTelemetry, name string) {
	t.sys, t.typeName = sys, itel.EntityType.String(name)
	t.byType = itel.NewAttrs(t.typeName)
	for o := range numOutcomes {
		t.byOutcome[o] = itel.NewAttrs(t.typeName, itel.Outcome.String(outcomeNames[o]))
	}
	t.ok = t.byOutcome[outcomeOK]
	t.failed = itel.NewAttrs(t.typeName, itel.Outcome.String("failed"))
	t.refresh()
}

// refresh asks the providers again what the System measures; the Kind's
// housekeeper calls it every tick (a second at most), so an SDK installed
// while the System runs is used from the next tick on.
func (t *kindTelemetry) refresh() { t.now.Store(uint32(t.sys.active())) }

// commandNames returns the span name and attribute of cmd's type.
func (t *kindTelemetry) commandNames(cmd any) *commandNames {
	rt := reflect.TypeOf(cmd)
	if v, ok := t.names.Load(rt); ok {
		return v.(*commandNames)
	}
	name := rt.Name()
	if rt.Kind() == reflect.Pointer {
		name = rt.Elem().Name()
	}
	if name == "" {
		name = rt.String()
	}
	v, _ := t.names.LoadOrStore(rt, &commandNames{span: t.typeName.Value.AsString() + " " + name, attr: itel.Command.String(name)})
	return v.(*commandNames)
}

// flags says what is measured: spans, metrics. Ask decides it once per
// command, and the shell reads it from the commands it runs, so a command
// asks the providers once whether anyone listens.
type flags uint8

const (
	traced flags = 1 << iota
	metered
)

// active returns what the System measures now.
func (s *sysTelemetry) active() flags {
	var f flags
	if s.off {
		return 0
	}
	if s.tracing.On() {
		f |= traced
	}
	if s.metering.On() {
		f |= metered
	}
	return f
}

// commandStart is what Ask measures a command from.
type commandStart struct {
	span  trace.Span // nil unless traced
	start time.Time  // zero unless timed
	flags flags
}

// startCommand starts the span of a command to id, a child of ctx's, and
// returns the ctx for the command.
func (t *kindTelemetry) startCommand(ctx context.Context, id string, cmd any) (context.Context, commandStart) {
	cs := commandStart{flags: flags(t.now.Load())}
	if cs.flags == 0 {
		return ctx, cs
	}
	if cs.flags&traced != 0 {
		n := t.commandNames(cmd)
		ctx, cs.span = t.sys.tracing.Tracer().Start(ctx, n.span, trace.WithSpanKind(trace.SpanKindInternal),
			trace.WithAttributes(t.typeName, itel.EntityID.String(id), n.attr))
	}
	if cs.span != nil || t.sys.commandTime.Enabled(ctx) {
		cs.start = time.Now()
	}
	return ctx, cs
}

// endCommand records how the command ended.
func (t *kindTelemetry) endCommand(ctx context.Context, cs commandStart, err error) {
	if cs.flags == 0 {
		return
	}
	o := classify(err)
	attrs := &t.byOutcome[o]
	if cs.flags&metered != 0 {
		t.sys.commands.Add(ctx, 1, attrs.Add...)
		if !cs.start.IsZero() {
			t.sys.commandTime.Record(ctx, time.Since(cs.start).Seconds(), attrs.Record...)
		}
	}
	if cs.span != nil {
		cs.span.SetAttributes(itel.Outcome.String(outcomeNames[o]))
		if err != nil {
			cs.span.RecordError(err)
			cs.span.SetStatus(codes.Error, outcomeNames[o])
		}
		cs.span.End()
	}
}
