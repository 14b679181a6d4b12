package natslog_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/metric/noop"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"

	"github.com/eventsourced-go/eventsourced/eventlog"
	"github.com/eventsourced-go/eventsourced/internal/telemetrytest"
	"github.com/eventsourced-go/eventsourced/natslog"
	"github.com/eventsourced-go/eventsourced/snapshotstore"
)

// observed is the telemetry of a Log or SnapshotStore as the SDK's test
// helpers record it; every data point carries the backend attribute.
type observed struct{ *telemetrytest.Observed }

func newObserved(t *testing.T) *observed {
	o := &observed{telemetrytest.New(t)}
	o.Always = []attribute.KeyValue{natsAttr}
	return o
}

func (o *observed) options() []natslog.Option {
	return []natslog.Option{natslog.WithTracerProvider(o.TP), natslog.WithMeterProvider(o.MP)}
}

var natsAttr = attribute.String("eventsourced.backend", "nats")

// spanAttrs returns the attributes of s as a set.
func spanAttrs(s sdktrace.ReadOnlySpan) attribute.Set { return attribute.NewSet(s.Attributes()...) }

// TestAppendSpanIsAChildOfItsCaller checks the span of an append, a client
// span that is a child of its caller's, one that conflicts with an error
// status, and the append metrics by outcome.
func TestAppendSpanIsAChildOfItsCaller(t *testing.T) {
	o := newObserved(t)
	_, js := setup(t)
	l := newLog(t, js, o.options()...)
	ctx, caller := o.Caller(context.Background(), "caller")
	pos, err := l.Append(ctx, "Acct", "a", 0, eventlog.Event{Name: "Opened"}, eventlog.Event{Name: "Deposited"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := l.Append(ctx, "Acct", "a", 0, eventlog.Event{Name: "Opened"}); !errors.Is(err, eventlog.ErrConflict) {
		t.Fatalf("second creator: %v, want a conflict", err)
	}
	caller.End()

	spans := o.Named("natslog append")
	if len(spans) != 2 {
		t.Fatalf("%d append spans, want 2", len(spans))
	}
	for _, s := range spans {
		if s.Parent().SpanID() != caller.SpanContext().SpanID() || s.SpanContext().TraceID() != caller.SpanContext().TraceID() || s.SpanKind() != trace.SpanKindClient {
			t.Errorf("append span: parent %v, kind %v; want a client span, child of the caller's %v", s.Parent().SpanID(), s.SpanKind(), caller.SpanContext().SpanID())
		}
	}
	ok, conflict := spans[0], spans[1]
	if want := []attribute.KeyValue{natsAttr, attribute.String("eventsourced.entity.type", "Acct"), attribute.String("eventsourced.entity.id", "a"),
		attribute.Int64("eventsourced.seq", 1), attribute.Int64("eventsourced.events", 2), attribute.String("eventsourced.outcome", "ok"),
		attribute.Int64("eventsourced.position", int64(pos))}; !telemetrytest.Has(spanAttrs(ok), want...) || ok.Status().Code == codes.Error {
		t.Errorf("the append's span: %v, status %v; want %v and no error", ok.Attributes(), ok.Status(), want)
	}
	if !telemetrytest.Has(spanAttrs(conflict), attribute.String("eventsourced.outcome", "conflict")) || conflict.Status().Code != codes.Error {
		t.Errorf("the conflicting append's span: %v, status %v; want outcome conflict and an error status", conflict.Attributes(), conflict.Status())
	}

	if n, _ := o.Sum(t, "eventsourced.log.conflicts"); n != 1 {
		t.Errorf("conflicts: %d, want 1", n)
	}
	if n, ok := o.Sum(t, "eventsourced.log.append.inflight"); n != 0 || !ok {
		t.Errorf("appends in flight after they returned: %d (reported: %v), want 0", n, ok)
	}
	for _, outcome := range []string{"ok", "conflict"} {
		if d := telemetrytest.Histogram[float64](t, o.Observed, "eventsourced.log.append.duration", attribute.String("eventsourced.outcome", outcome)); d.Count != 1 {
			t.Errorf("append duration, outcome %s: %d appends, want 1", outcome, d.Count)
		}
	}
}

// TestLookupSpanLinksItsLookups checks that a multi-subject lookup of the
// readers has one span, a root linked to the spans of the lookups it
// serves, and that the lookups-per-get histogram records it.
func TestLookupSpanLinksItsLookups(t *testing.T) {
	o := newObserved(t)
	_, js := setup(t)
	l := newLog(t, js, o.options()...)
	const typ, n = "account", 5
	ids := make([]string, n)
	ctxs := make([]context.Context, n)
	callers := make([]trace.SpanContext, n)
	for i := range ids {
		ids[i] = fmt.Sprintf("acc-%d", i)
		if _, err := l.Append(context.Background(), typ, ids[i], 0, eventlog.Event{Name: "Opened"}); err != nil {
			t.Fatal(err)
		}
		var span trace.Span
		ctxs[i], span = o.Caller(context.Background(), "lookup "+ids[i])
		callers[i] = span.SpanContext()
		defer span.End()
	}
	queries, err := natslog.LookupLastsIn(l, ctxs, typ, ids)
	if err != nil || queries != 1 {
		t.Fatalf("LookupLastsIn: %d requests, %v; want 1", queries, err)
	}
	spans := o.Named("natslog lookup last")
	if len(spans) != 1 {
		t.Fatalf("%d lookup spans, want 1", len(spans))
	}
	s := spans[0]
	var got []string
	for _, link := range s.Links() {
		got = append(got, link.SpanContext.SpanID().String())
	}
	var want []string
	for _, sc := range callers {
		want = append(want, sc.SpanID().String())
	}
	slices.Sort(got)
	slices.Sort(want)
	if s.Parent().IsValid() || !slices.Equal(got, want) {
		t.Errorf("lookup span: parent %v, links %v; want a root linked to the callers' spans %v", s.Parent(), got, want)
	}
	if !telemetrytest.Has(spanAttrs(s), natsAttr, attribute.Int64("eventsourced.subjects", n), attribute.Int64("eventsourced.lookups", n)) {
		t.Errorf("lookup span attributes: %v", s.Attributes())
	}
	if h := telemetrytest.Histogram[int64](t, o.Observed, "eventsourced.log.multi_get.lookups"); h.Count != 1 || h.Sum != n {
		t.Errorf("lookups per multi-subject get: %d gets, %d lookups; want 1 and %d", h.Count, h.Sum, n)
	}
}

// syncBuffer is a bytes.Buffer safe for the connection watcher's goroutine
// writing while the test reads.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

// records returns the JSON log records written so far.
func (b *syncBuffer) records(t *testing.T) []map[string]any {
	t.Helper()
	b.mu.Lock()
	defer b.mu.Unlock()
	var out []map[string]any
	for line := range strings.Lines(b.buf.String()) {
		var r map[string]any
		if err := json.Unmarshal([]byte(line), &r); err != nil {
			t.Fatalf("log line %q: %v", line, err)
		}
		out = append(out, r)
	}
	return out
}

// TestDroppedConnectionIsCountedAndLogged drops the connection while an
// append is in flight: the append fails with ErrUnavailable, the requests
// lost counter counts it, and the Log's logger has one Warn saying the
// connection dropped, logged before the append failed; once the client is
// back, one Info says so.
func TestDroppedConnectionIsCountedAndLogged(t *testing.T) {
	o := newObserved(t)
	_, p, nc, js := proxied(t)
	var buf syncBuffer
	logger := slog.New(slog.NewJSONHandler(&buf, &slog.HandlerOptions{Level: slog.LevelDebug}))
	l := newLog(t, js, natslog.WithLogger(logger), natslog.WithMeterProvider(o.MP))
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := l.Append(ctx, "Acct", "a", 0, eventlog.Event{Name: "Opened"}); err != nil {
		t.Fatal(err)
	}
	if recs := buf.records(t); len(recs) != 0 {
		t.Fatalf("a healthy Log logged %v, want nothing", recs)
	}
	p.Stall()
	done := make(chan error, 1)
	go func() {
		_, err := l.Append(ctx, "Acct", "a", 1, eventlog.Event{Name: "Deposited"})
		done <- err
	}()
	// The append waits for its reply, which the stalled proxy holds.
	deadline := time.Now().Add(10 * time.Second)
	for natslog.InflightCalls(l) != 1 {
		if time.Now().After(deadline) {
			t.Fatal("the append never went in flight")
		}
		time.Sleep(time.Millisecond)
	}
	p.Drop()
	p.Resume()
	if err := <-done; !errors.Is(err, natslog.ErrUnavailable) {
		t.Fatalf("append in flight on the dropped connection: %v, want ErrUnavailable", err)
	}
	if n, _ := o.Sum(t, "eventsourced.log.requests.lost"); n != 1 {
		t.Errorf("requests lost: %d, want 1", n)
	}
	recs := buf.records(t)
	if len(recs) != 1 || recs[0]["level"] != "WARN" || !strings.HasPrefix(recs[0]["msg"].(string), "natslog: the connection to the server dropped") || recs[0]["component"] != "natslog.Log" {
		t.Fatalf("logged when the connection dropped: %v, want one Warn that it dropped", recs)
	}
	waitConnected(t, nc)
	// A call looks at the connection itself, so once it succeeds the Log
	// has seen the connection back.
	if _, err := l.LastSeq(ctx, "Acct", "a"); err != nil {
		t.Fatalf("LastSeq after reconnecting: %v", err)
	}
	recs = buf.records(t)
	if len(recs) != 2 || recs[1]["level"] != "INFO" || recs[1]["msg"] != "natslog: the connection to the server is back" {
		t.Errorf("logged when the connection came back: %v, want one Info that it is back", recs[1:])
	}
}

// TestSnapshotStoreTelemetry checks the spans of Save and Load, children of
// their caller's, and their durations by operation and outcome.
func TestSnapshotStoreTelemetry(t *testing.T) {
	o := newObserved(t)
	_, js := setup(t)
	s, err := natslog.NewSnapshotStore(context.Background(), js, o.options()...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	ctx, caller := o.Caller(context.Background(), "caller")
	if err := s.Save(ctx, snapshotstore.Snapshot{EntityType: "Acct", EntityID: "a", Seq: 3, Data: []byte("x")}, 1); err != nil {
		t.Fatal(err)
	}
	if _, ok, err := s.Load(ctx, "Acct", "a"); err != nil || !ok {
		t.Fatalf("Load: %v, %v", ok, err)
	}
	caller.End()
	for _, name := range []string{"natslog snapshot save", "natslog snapshot load"} {
		spans := o.Named(name)
		if len(spans) != 1 || spans[0].Parent().SpanID() != caller.SpanContext().SpanID() {
			t.Errorf("%s: %d spans, want 1, a child of the caller's", name, len(spans))
		}
	}
	for _, op := range []string{"save", "load"} {
		d := telemetrytest.Histogram[float64](t, o.Observed, "eventsourced.snapshotstore.operation.duration",
			attribute.String("eventsourced.operation", op), attribute.String("eventsourced.outcome", "ok"))
		if d.Count != 1 {
			t.Errorf("%s duration: %d operations, want 1", op, d.Count)
		}
	}
}

// TestTelemetryOptions checks that the telemetry options refuse nil and
// are refused, naming them, by the call that does not take them.
func TestTelemetryOptions(t *testing.T) {
	_, js := setup(t)
	ctx := context.Background()
	for _, opt := range []natslog.Option{natslog.WithTracerProvider(nil), natslog.WithMeterProvider(nil)} {
		if _, err := natslog.New(ctx, js, opt); !errors.Is(err, natslog.ErrInvalidOption) || !strings.Contains(err.Error(), "Provider(nil)") {
			t.Errorf("New with a nil provider: %v, want ErrInvalidOption naming it", err)
		}
		if _, err := natslog.NewSnapshotStore(ctx, js, opt); !errors.Is(err, natslog.ErrInvalidOption) {
			t.Errorf("NewSnapshotStore with a nil provider: %v, want ErrInvalidOption", err)
		}
	}
	err := natslog.Setup(ctx, js, natslog.WithMeterProvider(noop.NewMeterProvider()))
	if !errors.Is(err, natslog.ErrInvalidOption) || !strings.Contains(err.Error(), "WithMeterProvider is an option of New and NewSnapshotStore, not of Setup") {
		t.Errorf("Setup with WithMeterProvider: %v", err)
	}
	o := newObserved(t)
	err = natslog.Setup(ctx, js, natslog.WithTracerProvider(o.TP))
	if !errors.Is(err, natslog.ErrInvalidOption) || !strings.Contains(err.Error(), "WithTracerProvider is an option of New and NewSnapshotStore, not of Setup") {
		t.Errorf("Setup with WithTracerProvider: %v", err)
	}
}
