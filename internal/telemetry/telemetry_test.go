package telemetry

import (
	"context"
	"errors"
	"fmt"
	"testing"

	"go.opentelemetry.io/otel"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"
	"go.opentelemetry.io/otel/trace/noop"

	"github.com/eventsourced-go/eventsourced/eventlog"
)

var testSpan = trace.NewSpanContext(trace.SpanContextConfig{
	TraceID:    trace.TraceID{0x4b, 0xf9, 0x2f, 0x35, 0x77, 0xb3, 0x4d, 0xa6, 0xa3, 0xce, 0x92, 0x9d, 0x0e, 0x0e, 0x47, 0x36},
	SpanID:     trace.SpanID{0x00, 0xf0, 0x67, 0xaa, 0x0b, 0xa9, 0x02, 0xb7},
	TraceFlags: trace.FlagsSampled,
})

// Inject leaves metadata alone without a span, and otherwise writes the
// W3C traceparent into a copy, never into the caller's map.
func TestInjectExtract(t *testing.T) {
	p := DefaultPropagator()
	md := map[string]string{"user": "u1"}
	if got := Inject(context.Background(), p, md); fmt.Sprint(got) != fmt.Sprint(md) || len(md) != 1 {
		t.Fatalf("no span: Inject = %v, md now %v; want md unchanged", got, md)
	}
	ctx := trace.ContextWithSpanContext(context.Background(), testSpan)
	got := Inject(ctx, p, md)
	const want = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
	if got["traceparent"] != want || got["user"] != "u1" || len(md) != 1 {
		t.Fatalf("Inject = %v (md now %v), want user=u1 and traceparent=%s in a copy", got, md, want)
	}
	if sc := Extract(p, got); !sc.Equal(testSpan.WithRemote(true)) {
		t.Errorf("Extract = %v, want %v (remote)", sc, testSpan)
	}
}

// Missing or malformed trace context extracts as an invalid span context:
// the reader starts a new root.
func TestExtractMalformed(t *testing.T) {
	for _, md := range []map[string]string{
		nil,
		{},
		{"traceparent": "garbage"},
		{"traceparent": "00-00000000000000000000000000000000-00f067aa0ba902b7-01"},
		{"traceparent": "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01"},
		{"traceparent": "zz-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"},
	} {
		if sc := Extract(DefaultPropagator(), md); sc.IsValid() {
			t.Errorf("Extract(%v) = %v, want invalid", md, sc)
		}
	}
}

// Tracing is off when disabled, for the no-op provider, and for the global
// provider until a program installs one; on for any other provider.
func TestTracingOn(t *testing.T) {
	if NewTracing(nil, "s", true).On() {
		t.Error("disabled tracing is on")
	}
	if NewTracing(noop.NewTracerProvider(), "s", false).On() {
		t.Error("tracing with the no-op provider is on")
	}
	if NewTracing(nil, "s", false).On() {
		t.Error("tracing with the untouched global provider is on")
	}
	if !NewTracing(recordingProvider{}, "s", false).On() {
		t.Error("tracing with a provider the caller gave is off")
	}
}

type recordingProvider struct{ noop.TracerProvider }

// LinkTo links only to valid span contexts.
func TestLinkTo(t *testing.T) {
	links := LinkTo(nil, context.Background())
	links = LinkTo(links, trace.ContextWithSpanContext(context.Background(), testSpan))
	if len(links) != 1 || !links[0].SpanContext.Equal(testSpan) {
		t.Errorf("links %v, want one to %v", links, testSpan)
	}
}

// AppendOutcome tells a conflict, wrapped or not, from other failures.
func TestAppendOutcome(t *testing.T) {
	for _, c := range []struct {
		err  error
		want string
	}{
		{nil, "ok"},
		{eventlog.ErrConflict, "conflict"},
		{fmt.Errorf("append Acct/a: %w", eventlog.ErrConflict), "conflict"},
		{&eventlog.DeletedError{EntityType: "Acct", EntityID: "a", Seq: 3}, "deleted"},
		{eventlog.ErrUnavailable, "failed"},
		{errors.New("boom"), "failed"},
	} {
		if got := AppendOutcomeNames[AppendOutcome(c.err)]; got != c.want {
			t.Errorf("AppendOutcome(%v) = %s, want %s", c.err, got, c.want)
		}
	}
}

// uncomparableTP is a tracer provider whose type cannot be compared.
type uncomparableTP struct {
	noop.TracerProvider
	attrs map[string]string
}

// Following the global provider, spans go to the provider installed last,
// not to the first one (to which the API's global delegates for good), and
// a provider of a type that cannot be compared is used without a panic.
func TestTracingFollowsTheProviderInstalledLast(t *testing.T) {
	tr := NewTracing(nil, "test", false)
	t.Cleanup(func() { otel.SetTracerProvider(initialGlobal) })
	first, second := tracetest.NewSpanRecorder(), tracetest.NewSpanRecorder()
	otel.SetTracerProvider(sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(first)))
	_, span := tr.Tracer().Start(context.Background(), "one")
	span.End()
	otel.SetTracerProvider(sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(second)))
	for range 2 {
		_, span = tr.Tracer().Start(context.Background(), "two")
		span.End()
	}
	if n1, n2 := len(first.Ended()), len(second.Ended()); n1 != 1 || n2 != 2 {
		t.Fatalf("spans: %d to the first provider, %d to the second; want 1 and 2", n1, n2)
	}
	otel.SetTracerProvider(uncomparableTP{attrs: map[string]string{}})
	for range 2 {
		if _, span := tr.Tracer().Start(context.Background(), "three"); span.SpanContext().IsValid() {
			t.Fatal("a no-op provider's span is valid")
		}
	}
	if n := len(second.Ended()); n != 2 {
		t.Fatalf("%d spans to the second provider after a third was installed, want 2", n)
	}
}
