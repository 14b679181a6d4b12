package telemetry

import (
	"context"
	"reflect"
	"sync/atomic"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"
	"go.opentelemetry.io/otel/trace/noop"
)

// Attribute keys. Entity ids are span attributes only, never metric
// attributes: their number is unbounded.
const (
	EntityType = attribute.Key("eventsourced.entity.type")
	EntityID   = attribute.Key("eventsourced.entity.id")
	Command    = attribute.Key("eventsourced.command")
	Outcome    = attribute.Key("eventsourced.outcome")
	Backend    = attribute.Key("eventsourced.backend")
	Seq        = attribute.Key("eventsourced.seq")
	Position   = attribute.Key("eventsourced.position")
	Events     = attribute.Key("eventsourced.events")
	Commands   = attribute.Key("eventsourced.commands")
	Projection = attribute.Key("eventsourced.projection")
	Member     = attribute.Key("eventsourced.member")
)

// DefaultPropagator is the propagator used when none is configured: W3C
// trace context (traceparent, tracestate).
func DefaultPropagator() propagation.TextMapPropagator { return propagation.TraceContext{} }

// Inject returns md with the trace context of ctx's span added by p, as
// event metadata carries it. It returns md itself, not a copy, when ctx
// carries no valid span context; otherwise a copy, since md may be shared
// by many commands.
func Inject(ctx context.Context, p propagation.TextMapPropagator, md map[string]string) map[string]string {
	if !trace.SpanContextFromContext(ctx).IsValid() {
		return md
	}
	out := make(map[string]string, len(md)+2)
	for k, v := range md {
		out[k] = v
	}
	p.Inject(ctx, propagation.MapCarrier(out))
	return out
}

// Extract returns the span context p finds in md, invalid if there is none
// or it is malformed: a new root then, never an error.
func Extract(p propagation.TextMapPropagator, md map[string]string) trace.SpanContext {
	if len(md) == 0 {
		return trace.SpanContext{}
	}
	return trace.SpanContextFromContext(p.Extract(context.Background(), propagation.MapCarrier(md)))
}

// Tracing tells the instrumentation whether spans are worth starting: a
// program without an OpenTelemetry SDK would pay allocations for spans
// that record and propagate nothing. It is on for a tracer provider the
// caller gave, unless it is the API's no-op one; for the global provider
// (the default) it is on once the program has installed one with
// otel.SetTracerProvider, checked at every use, so an SDK installed after
// the component was made is found at once.
type Tracing struct {
	tracer trace.Tracer
	global bool // follow the global provider
	on     bool // for a provider the caller gave
	scope  string
	// cur is the global provider's tracer, for the provider installed
	// last: the API's global delegates to the first one installed only,
	// so a program that replaces its SDK would keep feeding the old one.
	cur atomic.Pointer[globalTracer]
}

// globalTracer is a tracer of the global provider tp.
type globalTracer struct {
	tp     trace.TracerProvider
	tracer trace.Tracer
}

// initialGlobal is the global tracer provider as the program started,
// before any SDK was installed: this package is initialized before the
// packages that import it, the program's main among them.
var initialGlobal = otel.GetTracerProvider()

// NewTracing returns the Tracing of tp, the global provider if tp is nil,
// with a tracer of instrumentation scope scope. Disabled tracing is off
// for good.
func NewTracing(tp trace.TracerProvider, scope string, disabled bool) *Tracing {
	switch {
	case disabled:
		return &Tracing{}
	case tp == nil:
		return &Tracing{tracer: otel.GetTracerProvider().Tracer(scope), global: true, scope: scope}
	}
	_, noopTP := tp.(noop.TracerProvider)
	return &Tracing{tracer: tp.Tracer(scope), on: !noopTP}
}

// On reports whether spans are worth starting: an atomic load.
func (t *Tracing) On() bool {
	if t.global {
		return otel.GetTracerProvider() != initialGlobal
	}
	return t.on
}

// Tracer returns the tracer; nil when tracing is disabled. Following the
// global provider, it is a tracer of the provider installed last.
func (t *Tracing) Tracer() trace.Tracer {
	if !t.global {
		return t.tracer
	}
	tp := otel.GetTracerProvider()
	if tp == initialGlobal {
		return t.tracer
	}
	// cur holds providers of comparable types only, so this comparison
	// cannot panic.
	if g := t.cur.Load(); g != nil && g.tp == tp {
		return g.tracer
	}
	g := &globalTracer{tp: tp, tracer: tp.Tracer(t.scope)}
	if reflect.TypeOf(tp).Comparable() {
		t.cur.Store(g)
	}
	return g.tracer
}
