package entity_test

import (
	"context"
	"errors"
	"log/slog"
	"slices"
	"sync"
	"testing"
	"time"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"

	"github.com/eventsourced-go/eventsourced/binarize"
	"github.com/eventsourced-go/eventsourced/entity"
	"github.com/eventsourced-go/eventsourced/eventlog"
	"github.com/eventsourced-go/eventsourced/internal/telemetrytest"
	"github.com/eventsourced-go/eventsourced/snapshotstore"
)

// observed is a System's telemetry as the SDK's test helpers record it.
type observed struct{ *telemetrytest.Observed }

func newObserved(t *testing.T) *observed { return &observed{telemetrytest.New(t)} }

func (o *observed) options() []entity.Option {
	return []entity.Option{entity.WithTracerProvider(o.TP), entity.WithMeterProvider(o.MP)}
}

// Commands that queue up on one hot entity are appended together: one
// append span, linked to the span of every command it carries (a root, not
// a child of one of them), and the append metrics count one append of
// their commands.
func TestTelemetryBatchedAppendLinksItsCommands(t *testing.T) {
	o := newObserved(t)
	log := &gatedAppendLog{Memory: eventlog.NewMemory(), tokens: make(chan struct{})}
	k := register(t, newSystem(t, log, o.options()...))
	ref := k.Ref("hot")
	first := askAsync(context.Background(), ref, Add{N: 1})
	eventually(t, "the first append", func() bool { return log.started.Load() == 1 })
	const n = 5
	var rest []<-chan askResult
	for range n {
		rest = append(rest, askAsync(context.Background(), ref, Add{N: 1}))
	}
	eventually(t, "5 commands queued", func() bool { return entity.Queued(k, "hot") == n })
	close(log.tokens)
	<-first
	for _, c := range rest {
		if r := <-c; r.err != nil {
			t.Fatal(r.err)
		}
	}
	commands := o.Named("Counter Add")
	appends := o.Named("append Counter")
	if len(commands) != n+1 || len(appends) != 2 {
		t.Fatalf("%d command spans and %d append spans, want %d and 2", len(commands), len(appends), n+1)
	}
	// The first append ran on its caller's goroutine: a child of its
	// command. The second carries the 5 queued commands: a root linked to
	// each of them.
	var inline, batched sdktrace.ReadOnlySpan
	for _, a := range appends {
		if a.Parent().IsValid() {
			inline = a
		} else {
			batched = a
		}
	}
	if inline == nil || batched == nil {
		t.Fatalf("want one append with a parent and one without")
	}
	if got := telemetrytest.Attr(batched, "eventsourced.commands").AsInt64(); got != n {
		t.Errorf("the batched append carries %d commands, want %d", got, n)
	}
	var linked, queued []trace.SpanID
	for _, l := range batched.Links() {
		linked = append(linked, l.SpanContext.SpanID())
	}
	for _, c := range commands {
		if c.SpanContext().SpanID() != inline.Parent().SpanID() {
			queued = append(queued, c.SpanContext().SpanID())
		}
	}
	slices.SortFunc(linked, compareSpanIDs)
	slices.SortFunc(queued, compareSpanIDs)
	if !slices.Equal(linked, queued) {
		t.Errorf("the append links %v, want the %d queued commands' spans %v", linked, n, queued)
	}
	h := o.Metric(t, "eventsourced.append.commands").(metricdata.Histogram[int64])
	for _, dp := range h.DataPoints {
		if dp.Count != 2 || dp.Sum != n+1 {
			t.Errorf("append.commands: %d appends of %d commands in all, want 2 of %d", dp.Count, dp.Sum, n+1)
		}
		if m, _ := dp.Max.Value(); m != n {
			t.Errorf("append.commands: max %d, want %d", m, n)
		}
	}
	if got := o.Count(t, "eventsourced.commands", attribute.String("eventsourced.outcome", "ok")); got != n+1 {
		t.Errorf("commands{outcome=ok} = %d, want %d", got, n+1)
	}
}

func compareSpanIDs(a, b trace.SpanID) int {
	for i := range a {
		if a[i] != b[i] {
			return int(a[i]) - int(b[i])
		}
	}
	return 0
}

// A rejection, a persist failure and a panic each end their command span
// with an error status and count under their outcome.
func TestTelemetryFailedCommands(t *testing.T) {
	o := newObserved(t)
	log := &flakyLog{Log: eventlog.NewMemory()}
	k := register(t, newSystem(t, log, o.options()...))
	ref := k.Ref("f")
	ask(t, ref, Add{N: 1})
	if _, err := entity.Ask(context.Background(), ref, Add{N: -1}); err == nil {
		t.Fatal("a negative Add was not rejected")
	}
	log.set(func(l *flakyLog) { l.failBeforeWrite = 1 })
	if _, err := entity.Ask(context.Background(), ref, Add{N: 1}); !errors.Is(err, entity.ErrPersist) {
		t.Fatalf("persist failure: %v", err)
	}
	if _, err := entity.Ask(context.Background(), ref, Boom{}); !errors.Is(err, entity.ErrPanic) {
		t.Fatalf("panic: %v", err)
	}
	outcomes := map[string]int{}
	for _, s := range o.Spans.GetSpans().Snapshots() {
		if s.Name() != "Counter Add" && s.Name() != "Counter Boom" {
			continue
		}
		out := telemetrytest.Attr(s, "eventsourced.outcome").AsString()
		outcomes[out]++
		if failed := out != "ok"; failed != (s.Status().Code == codes.Error) {
			t.Errorf("span %s with outcome %s has status %v", s.Name(), out, s.Status())
		}
		if out != "ok" && len(s.Events()) == 0 {
			t.Errorf("span %s with outcome %s recorded no error", s.Name(), out)
		}
		if got := telemetrytest.Attr(s, "eventsourced.entity.id").AsString(); got != "f" {
			t.Errorf("span %s: entity id %q", s.Name(), got)
		}
	}
	if outcomes["ok"] != 1 || outcomes["rejected"] != 1 || outcomes["persist_failed"] != 1 || outcomes["panic"] != 1 {
		t.Errorf("command span outcomes %v, want one each of ok, rejected, persist_failed, panic", outcomes)
	}
	for out, n := range map[string]int64{"ok": 1, "rejected": 1, "persist_failed": 1, "panic": 1} {
		if got := o.Count(t, "eventsourced.commands", attribute.String("eventsourced.outcome", out)); got != n {
			t.Errorf("commands{outcome=%s} = %d, want %d", out, got, n)
		}
	}
	// The entity id is a span attribute, never a metric attribute.
	for _, dp := range o.Metric(t, "eventsourced.commands").(metricdata.Sum[int64]).DataPoints {
		if _, ok := dp.Attributes.Value("eventsourced.entity.id"); ok {
			t.Errorf("a metric data point carries the entity id: %v", dp.Attributes)
		}
	}
}

// A recovery from a snapshot and the events after it reports the
// snapshot's Seq and how many events it replayed.
func TestTelemetryRecovery(t *testing.T) {
	mem := eventlog.NewMemory()
	store := snapshotstore.NewMemory()
	{
		k := register(t, newSystem(t, mem, entity.WithSnapshotStore(store)), entity.WithSnapshotEvery(10))
		for range 13 {
			ask(t, k.Ref("r"), Add{N: 1})
		}
		eventually(t, "the snapshot", func() bool {
			s, found, _ := store.Load(context.Background(), "Counter", "r")
			return found && s.Seq == 10
		})
	}
	o := newObserved(t)
	k := register(t, newSystem(t, mem, append(o.options(), entity.WithSnapshotStore(store))...), entity.WithSnapshotEvery(10))
	if got := ask(t, k.Ref("r"), Get{}).Value; got != 13 {
		t.Fatalf("recovered %d, want 13", got)
	}
	spans := o.Named("recover Counter")
	if len(spans) != 1 {
		t.Fatalf("%d recovery spans, want 1", len(spans))
	}
	s := spans[0]
	if got := telemetrytest.Attr(s, "eventsourced.snapshot.seq").AsInt64(); got != 10 {
		t.Errorf("snapshot seq %d, want 10", got)
	}
	if got := telemetrytest.Attr(s, "eventsourced.events").AsInt64(); got != 3 {
		t.Errorf("events replayed %d, want 3", got)
	}
	h := o.Metric(t, "eventsourced.recovery.events").(metricdata.Histogram[int64])
	if len(h.DataPoints) != 1 || h.DataPoints[0].Count != 1 || h.DataPoints[0].Sum != 3 {
		t.Errorf("recovery.events %+v, want one recovery of 3 events", h.DataPoints)
	}
}

// A command asked inside the caller's span belongs to its trace, and so do
// the events it persists: their metadata carries the trace context.
func TestTelemetryTraceContextInEvents(t *testing.T) {
	o := newObserved(t)
	mem := eventlog.NewMemory()
	k := register(t, newSystem(t, mem, o.options()...))
	ctx, caller := o.TP.Tracer("test").Start(context.Background(), "HTTP POST /counters/c")
	ctx = entity.WithMetadata(ctx, map[string]string{entity.CorrelationID: "req-1"})
	if _, err := entity.Ask(ctx, k.Ref("c"), AddTwice{N: 1}); err != nil {
		t.Fatal(err)
	}
	caller.End()
	recs := records(t, mem, "c")
	if len(recs) != 2 {
		t.Fatalf("%d events, want 2", len(recs))
	}
	cmd := o.Named("Counter AddTwice")
	if len(cmd) != 1 || cmd[0].Parent().SpanID() != caller.SpanContext().SpanID() {
		t.Fatalf("command spans %d, parent %v; want one, the caller's child", len(cmd), cmd[0].Parent().SpanID())
	}
	want := cmd[0].SpanContext()
	for _, r := range recs {
		tp := r.Metadata["traceparent"]
		if tp != "00-"+want.TraceID().String()+"-"+want.SpanID().String()+"-01" {
			t.Errorf("event %d: traceparent %q, want the command span's %s/%s", r.Seq, tp, want.TraceID(), want.SpanID())
		}
		if r.Metadata[entity.CorrelationID] != "req-1" {
			t.Errorf("event %d lost the command's metadata: %v", r.Seq, r.Metadata)
		}
	}
}

// A System WithoutTelemetry measures nothing, whatever its providers.
func TestWithoutTelemetry(t *testing.T) {
	o := newObserved(t)
	k := register(t, newSystem(t, eventlog.NewMemory(), append(o.options(), entity.WithoutTelemetry())...))
	ask(t, k.Ref("x"), Add{N: 1})
	if n := len(o.Spans.GetSpans()); n != 0 {
		t.Errorf("%d spans, want none", n)
	}
	var rm metricdata.ResourceMetrics
	if err := o.Reader.Collect(context.Background(), &rm); err != nil {
		t.Fatal(err)
	}
	if len(rm.ScopeMetrics) != 0 {
		t.Errorf("metrics %+v, want none", rm.ScopeMetrics)
	}
}

// With the defaults (the global providers), a System made before the
// program installs an SDK traces once it does: the Kind looks at the
// providers again at every housekeeping tick (a second).
func TestTelemetryFollowsTheGlobalProvider(t *testing.T) {
	o := newObserved(t)
	k := register(t, newSystem(t, eventlog.NewMemory()))
	ask(t, k.Ref("g"), Add{N: 1})
	if n := len(o.Named("Counter Add")); n != 0 {
		t.Fatalf("%d command spans before the SDK was installed", n)
	}
	prev := otel.GetTracerProvider()
	otel.SetTracerProvider(o.TP)
	t.Cleanup(func() { otel.SetTracerProvider(prev) })
	start := time.Now()
	eventually(t, "a command span", func() bool {
		ask(t, k.Ref("g"), Add{N: 1})
		return len(o.Named("Counter Add")) > 0
	})
	if took := time.Since(start); took > 2*time.Second {
		t.Errorf("the first span came %v after the SDK was installed, want within a housekeeping tick (1s)", took.Round(time.Millisecond))
	}
}

// failingState is a State codec that cannot encode.
type failingState struct{ binarize.Codec[Counter] }

func (failingState) Encode(Counter) ([]byte, error) { return nil, errors.New("state not encodable") }

// levelRecorder keeps each record's level, message and attributes.
type levelRecorder struct {
	mu      sync.Mutex // guards records
	records []string
}

func (h *levelRecorder) Enabled(context.Context, slog.Level) bool { return true }
func (h *levelRecorder) Handle(_ context.Context, r slog.Record) error {
	line := r.Level.String() + " " + r.Message
	r.Attrs(func(a slog.Attr) bool {
		if a.Key != "error" {
			line += " " + a.String()
		}
		return true
	})
	h.mu.Lock()
	defer h.mu.Unlock()
	h.records = append(h.records, line)
	return nil
}
func (h *levelRecorder) WithAttrs([]slog.Attr) slog.Handler { return h }
func (h *levelRecorder) WithGroup(string) slog.Handler      { return h }

// A state that can never be encoded is seen by default: with no logger
// configured, slog.Default() gets an Error naming the type, id and Seq at
// each snapshotEvery events (not at every command), the snapshot metric
// counts each failure, and every command succeeds.
func TestUnencodableSnapshotIsLoggedByDefault(t *testing.T) {
	rec := &levelRecorder{}
	prev := slog.Default()
	slog.SetDefault(slog.New(rec))
	t.Cleanup(func() { slog.SetDefault(prev) })

	o := newObserved(t)
	sys := newSystem(t, eventlog.NewMemory(), append(o.options(), entity.WithSnapshotStore(snapshotstore.NewMemory()))...)
	typ := counterType()
	typ.State = failingState{typ.State}
	k, err := entity.Register(sys, typ, entity.WithSnapshotEvery(3))
	if err != nil {
		t.Fatal(err)
	}
	for i := 1; i <= 7; i++ {
		if got := ask(t, k.Ref("s"), Add{N: 1}); got != i {
			t.Fatalf("Add %d: reply %d", i, got)
		}
	}
	rec.mu.Lock()
	got := slices.Clone(rec.records)
	rec.mu.Unlock()
	want := []string{
		"ERROR entity: encode snapshot type=Counter id=s seq=3",
		"ERROR entity: encode snapshot type=Counter id=s seq=6",
	}
	if !slices.Equal(got, want) {
		t.Errorf("slog.Default() got\n%q\nwant\n%q", got, want)
	}
	if n := o.Count(t, "eventsourced.snapshots", attribute.String("eventsourced.outcome", "failed")); n != 2 {
		t.Errorf("snapshots{outcome=failed} = %d, want 2", n)
	}
}
