package cluster

import (
	"context"
	"errors"
	"log/slog"
	"strings"
	"sync/atomic"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"

	itel "github.com/eventsourced-go/eventsourced/internal/telemetry"
)

// scope is the OpenTelemetry instrumentation scope of this package.
const scope = "github.com/eventsourced-go/eventsourced/cluster"

// outcome names how a remote request ended, for the requests metric.
type outcome uint8

const (
	outcomeOK          outcome = iota
	outcomeFailed              // the owner answered an error
	outcomeTimeout             // no answer in time, or the caller gave up after sending
	outcomeUnavailable         // not delivered, no owner, or the owner was leaving
	numOutcomes
)

var outcomeNames = [numOutcomes]string{"ok", "failed", "timeout", "unavailable"}

// classify returns the outcome of a remote request that ended with err.
func classify(err error) outcome {
	switch {
	case err == nil:
		return outcomeOK
	case errors.Is(err, ErrTimeout):
		return outcomeTimeout
	case errors.Is(err, ErrUnavailable):
		return outcomeUnavailable
	case errors.Is(err, context.DeadlineExceeded), errors.Is(err, context.Canceled):
		return outcomeTimeout
	}
	return outcomeFailed
}

// memberTelemetry is a Member's tracer, propagator and instruments.
type memberTelemetry struct {
	tracing  *itel.Tracing
	metering *itel.Metering
	prop     propagation.TextMapPropagator
	inst     itel.Instruments

	requests    metric.Int64Counter
	requestTime metric.Float64Histogram
	retries     metric.Int64Counter
	perMessage  metric.Int64Histogram

	// unknownType are the attributes of measurements of a type this
	// member does not serve, which it may still route a batch for.
	unknownType kindTelemetry
}

// telemetryConfig is what the Member's telemetry options set.
type telemetryConfig struct {
	tp   trace.TracerProvider // nil: the global one
	mp   metric.MeterProvider // nil: the global one
	prop propagation.TextMapPropagator
}

func (t *memberTelemetry) init(c telemetryConfig) {
	t.tracing = itel.NewTracing(c.tp, scope, false)
	t.metering = itel.NewMetering(c.mp, scope, false)
	t.prop = c.prop
	if t.prop == nil {
		t.prop = itel.DefaultPropagator()
	}
	t.inst = itel.Instruments{Meter: t.metering.Meter()}
	in := &t.inst
	t.requests = in.Counter("eventsourced.cluster.requests", "{request}", "Commands sent to another member, each attempt once, by entity type and outcome (ok, failed, timeout, unavailable).")
	t.requestTime = in.Histogram("eventsourced.cluster.request.duration", "s", "Time from sending a command to another member to its answer, by entity type and outcome.", itel.Durations...)
	t.retries = in.Counter("eventsourced.cluster.retries", "{attempt}", "Commands sent again because they surely did not run (the owner was leaving, a dead letter, a conflict), by entity type.")
	t.perMessage = in.IntHistogram("eventsourced.cluster.message.commands", "{command}", "Commands one message to another member carries, by entity type.", itel.Sizes...)
	t.unknownType.init(t, "")
}

// kindTelemetry is a Kind's share: its attribute sets, precomputed so that
// measuring a command allocates nothing.
type kindTelemetry struct {
	m         *memberTelemetry
	typeName  attribute.KeyValue
	byType    itel.Attrs
	byOutcome [numOutcomes]itel.Attrs
}

func (t *kindTelemetry) init(m *memberTelemetry, name string) {
	t.m, t.typeName = m, itel.EntityType.String(name)
	t.byType = itel.NewAttrs(t.typeName)
	for o := range numOutcomes {
		t.byOutcome[o] = itel.NewAttrs(t.typeName, itel.Outcome.String(outcomeNames[o]))
	}
}

// flags says what is measured: spans, metrics. Ask decides it once per
// command.
type flags uint8

const (
	traced flags = 1 << iota
	metered
)

// active returns what the Member measures now: two atomic loads.
func (t *memberTelemetry) active() flags {
	var f flags
	if t.tracing.On() {
		f |= traced
	}
	if t.metering.On() {
		f |= metered
	}
	return f
}

// startAsk starts the client span of a command to id (named after the
// registered command), a child of ctx's span, and returns the ctx for the
// command; the span is nil unless f says traced.
func (t *kindTelemetry) startAsk(ctx context.Context, f flags, id, command string) (context.Context, trace.Span) {
	if f&traced == 0 {
		return ctx, nil
	}
	return t.m.tracing.Tracer().Start(ctx, t.typeName.Value.AsString()+" "+command,
		trace.WithSpanKind(trace.SpanKindClient),
		trace.WithAttributes(t.typeName, itel.EntityID.String(id), itel.Command.String(command)))
}

// startRequest returns when a remote request starts, zero unless it is
// timed.
func (t *kindTelemetry) startRequest(ctx context.Context, f flags) time.Time {
	if f&traced != 0 || (f&metered != 0 && t.m.requestTime.Enabled(ctx)) {
		return time.Now()
	}
	return time.Time{}
}

// endRequest records how a remote request to owner, started at start,
// ended.
func (t *kindTelemetry) endRequest(ctx context.Context, f flags, start time.Time, owner string, err error) {
	o := classify(err)
	if f&metered != 0 {
		attrs := &t.byOutcome[o]
		t.m.requests.Add(ctx, 1, attrs.Add...)
		if !start.IsZero() {
			t.m.requestTime.Record(ctx, time.Since(start).Seconds(), attrs.Record...)
		}
	}
	if f&traced != 0 {
		if span := trace.SpanFromContext(ctx); span.IsRecording() {
			span.AddEvent("request", trace.WithAttributes(itel.Member.String(owner),
				itel.Outcome.String(outcomeNames[o]), attribute.Float64("eventsourced.duration", time.Since(start).Seconds())))
		}
	}
}

// retried counts a retry.
func (t *kindTelemetry) retried(ctx context.Context, f flags, err error) {
	if f&metered != 0 {
		t.m.retries.Add(ctx, 1, t.byType.Add...)
	}
	if f&traced != 0 {
		if span := trace.SpanFromContext(ctx); span.IsRecording() {
			span.AddEvent("retry", trace.WithAttributes(attribute.String("error", err.Error())))
		}
	}
}

// owner records on the command's span the member that ran it (the last
// attempt's).
func (t *kindTelemetry) owner(ctx context.Context, f flags, owner string) {
	if f&traced != 0 {
		trace.SpanFromContext(ctx).SetAttributes(itel.Member.String(owner))
	}
}

// protoactorLog is the slog handler of protoactor-go's records. It drops
// those below Warn: what protoactor-go logs at Info (every endpoint,
// topology change and dead letter) is noise in the logs of a healthy
// member. It drops them all once the member shuts down, and the Error
// protoactor-go logs when it closes its own connection to a member that
// left: a graceful leave is healthy.
type protoactorLog struct {
	slog.Handler
	closing *atomic.Bool
}

func (h protoactorLog) Enabled(ctx context.Context, l slog.Level) bool {
	return l >= slog.LevelWarn && !h.closing.Load() && h.Handler.Enabled(ctx, l)
}

func (h protoactorLog) Handle(ctx context.Context, r slog.Record) error {
	if r.Message == "EndpointWriter lost connection" && closedHere(r) {
		return nil
	}
	return h.Handler.Handle(ctx, r)
}

// closedHere reports whether r's error says that the connection was
// closed by its own client, which protoactor-go does when the member at
// the other end leaves the cluster. gRPC says so in the text only.
func closedHere(r slog.Record) bool {
	found := false
	r.Attrs(func(a slog.Attr) bool {
		if a.Key == "error" && strings.Contains(a.Value.String(), "the client connection is closing") {
			found = true
			return false
		}
		return true
	})
	return found
}

func (h protoactorLog) WithAttrs(attrs []slog.Attr) slog.Handler {
	return protoactorLog{h.Handler.WithAttrs(attrs), h.closing}
}

func (h protoactorLog) WithGroup(name string) slog.Handler {
	return protoactorLog{h.Handler.WithGroup(name), h.closing}
}

// kindTelemetry returns the telemetry of entity type name.
func (m *Member) kindTelemetry(name string) *kindTelemetry {
	if h := m.served[name]; h != nil {
		return h.telemetry()
	}
	return &m.tel.unknownType
}
