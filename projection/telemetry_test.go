package projection_test

import (
	"context"
	"errors"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"

	"github.com/eventsourced-go/eventsourced/binarize"
	"github.com/eventsourced-go/eventsourced/entity"
	"github.com/eventsourced-go/eventsourced/eventlog"
	"github.com/eventsourced-go/eventsourced/internal/natstest"
	"github.com/eventsourced-go/eventsourced/internal/pgtest"
	"github.com/eventsourced-go/eventsourced/internal/telemetrytest"
	"github.com/eventsourced-go/eventsourced/projection"
	"github.com/eventsourced-go/eventsourced/projection/natsprojection"
	"github.com/eventsourced-go/eventsourced/projection/pgprojection"
)

// observed is what the SDK's test helpers record of spans and metrics.
type observed struct{ *telemetrytest.Observed }

func newObserved(t *testing.T) *observed { return &observed{telemetrytest.New(t)} }

func (o *observed) options() []projection.Option {
	return []projection.Option{projection.WithTracerProvider(o.TP), projection.WithMeterProvider(o.MP)}
}

// eventually polls cond every few milliseconds for up to 10 s; it only
// bounds how long the test waits, and fails it if cond never holds.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// The entity of the tests: a tally whose AddTwice persists two events.

type tally struct{ N int }

type tallyEvent interface{ tallyEvent() }

type added struct{ N int }

func (added) tallyEvent() {}

type addTwice struct{ N int }

func (c addTwice) Handle(tx *entity.Tx[tally, tallyEvent]) (int, error) {
	tx.Persist(added{c.N})
	return tx.Persist(added{c.N}).N, nil
}

func tallyType() entity.Type[tally, tallyEvent] {
	events := binarize.NewRegistry[tallyEvent](binarize.Msgpack)
	binarize.MustRegister[added](events, "Added")
	return entity.Type[tally, tallyEvent]{
		Name:   "Tally",
		Apply:  func(s tally, e tallyEvent) tally { s.N += e.(added).N; return s },
		Events: events,
	}
}

// backend is an event log and an offset store over the same storage.
type backend struct {
	name  string
	setup func(t *testing.T) (eventlog.Log, projection.OffsetStore)
}

var backends = []backend{
	{"memory", func(*testing.T) (eventlog.Log, projection.OffsetStore) {
		return eventlog.NewMemory(), projection.NewMemory()
	}},
	{"nats", natsBackend},
	{"postgres", pgBackend},
}

func natsBackend(t *testing.T) (eventlog.Log, projection.OffsetStore) {
	log, js := natstest.Log(t)
	store, err := natsprojection.New(t.Context(), js)
	if err != nil {
		t.Fatal(err)
	}
	return log, store
}

func pgBackend(t *testing.T) (eventlog.Log, projection.OffsetStore) {
	log, pool, schema := pgtest.Log(t, "projtel_")
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	store, err := pgprojection.New(pool, pgprojection.WithTable(schema+".offsets"))
	if err != nil {
		t.Fatal(err)
	}
	if err := store.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	return log, store
}

// A projection's work shows in the trace of the command that wrote its
// events: an entity command asked inside a caller's span writes events
// carrying the command span's trace context, and the projection's batch
// span is that command span's child, in the caller's trace. The handler's
// ctx carries the batch span, so the handler's own spans are its children.
func TestTelemetryBatchSpanContinuesTheCommandsTrace(t *testing.T) {
	for _, b := range backends {
		t.Run(b.name, func(t *testing.T) {
			o := newObserved(t)
			log, store := b.setup(t)
			sys, err := entity.NewSystem(log, entity.WithTracerProvider(o.TP), entity.WithMeterProvider(o.MP))
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { sys.Shutdown(context.Background()) })
			kind, err := entity.Register(sys, tallyType())
			if err != nil {
				t.Fatal(err)
			}
			ctx, caller := o.TP.Tracer("test").Start(context.Background(), "HTTP POST /tallies/t1")
			if _, err := entity.Ask(ctx, kind.Ref("t1"), addTwice{N: 1}); err != nil {
				t.Fatal(err)
			}
			caller.End()
			cmds := o.Named("Tally addTwice")
			if len(cmds) != 1 {
				t.Fatalf("%d command spans, want 1", len(cmds))
			}
			cmd := cmds[0].SpanContext()

			var mu sync.Mutex // guards handled
			var handled int
			h := func(ctx context.Context, batch []eventlog.Record) error {
				_, span := o.TP.Tracer("test").Start(ctx, "read model write")
				span.End()
				mu.Lock()
				handled += len(batch)
				mu.Unlock()
				return nil
			}
			p, err := projection.New(log, "Tally", "tallies", store, h,
				append(o.options(), projection.WithBatchSize(10))...)
			if err != nil {
				t.Fatal(err)
			}
			if err := p.Start(t.Context()); err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { p.Stop(context.Background()) })
			eventually(t, "2 events handled", func() bool { return p.Status().Handled == 2 })
			if err := p.Stop(context.Background()); err != nil {
				t.Fatal(err)
			}
			mu.Lock()
			if handled != 2 {
				t.Errorf("the handler got %d events, want 2", handled)
			}
			mu.Unlock()

			batches := o.Named("projection tallies")
			if len(batches) == 0 {
				t.Fatal("no batch span")
			}
			var events int64
			for _, s := range batches {
				if s.SpanContext().TraceID() != caller.SpanContext().TraceID() {
					t.Errorf("batch span in trace %s, want the caller's %s", s.SpanContext().TraceID(), caller.SpanContext().TraceID())
				}
				if s.Parent().SpanID() != cmd.SpanID() {
					t.Errorf("batch span's parent %s, want the command span %s", s.Parent().SpanID(), cmd.SpanID())
				}
				if len(s.Links()) != 0 {
					t.Errorf("batch span links %v, want none: both events carry the parent's trace context", s.Links())
				}
				if s.SpanKind() != trace.SpanKindConsumer || s.Status().Code == codes.Error {
					t.Errorf("batch span kind %v, status %v; want consumer, not an error", s.SpanKind(), s.Status())
				}
				if telemetrytest.Attr(s, "eventsourced.projection").AsString() != "tallies" || telemetrytest.Attr(s, "eventsourced.entity.type").AsString() != "Tally" {
					t.Errorf("batch span attributes %v", s.Attributes())
				}
				first, last := telemetrytest.Attr(s, "eventsourced.position.first").AsInt64(), telemetrytest.Attr(s, "eventsourced.position.last").AsInt64()
				if first <= 0 || last < first {
					t.Errorf("batch span positions %d..%d", first, last)
				}
				events += telemetrytest.Attr(s, "eventsourced.events").AsInt64()
			}
			if events != 2 {
				t.Errorf("batch spans carry %d events, want 2", events)
			}
			for _, s := range o.Named("read model write") {
				if !isChildOfOne(s, batches) {
					t.Errorf("the handler's span (parent %s) is not a child of a batch span", s.Parent().SpanID())
				}
			}
			if got := o.Count(t, "eventsourced.projection.events", attribute.String("eventsourced.projection", "tallies")); got != 2 {
				t.Errorf("projection.events = %d, want 2", got)
			}
		})
	}
}

func isChildOfOne(s sdktrace.ReadOnlySpan, parents []sdktrace.ReadOnlySpan) bool {
	for _, p := range parents {
		if s.Parent().SpanID() == p.SpanContext().SpanID() && s.SpanContext().TraceID() == p.SpanContext().TraceID() {
			return true
		}
	}
	return false
}

// traceparent returns a valid W3C traceparent for trace tid and span sid.
func traceparent(tid, sid string) string { return "00-" + tid + "-" + sid + "-01" }

// A batch span's parent is the first valid trace context of its events;
// it links to the other distinct ones; a garbage or truncated traceparent
// is neither parent nor link and no error: the event is handled, and a
// batch with no valid trace context is a root span even if the projection
// was started inside a span.
func TestTelemetryBatchParentAndLinks(t *testing.T) {
	const (
		tidA = "0af7651916cd43dd8448eb211c80319c"
		sidA = "b7ad6b7169203331"
		tidB = "4bf92f3577b34da6a3ce929d0e0e4736"
		sidB = "00f067aa0ba902b7"
	)
	garbage := []string{"not-a-traceparent", traceparent(tidA, sidA)[:30]}
	synctest.Test(t, func(t *testing.T) {
		o := newObserved(t)
		log := eventlog.NewMemory()
		gate := make(chan struct{})
		var batches [][]eventlog.Record // the handler's, in order
		h := func(ctx context.Context, batch []eventlog.Record) error {
			if len(batches) == 0 {
				<-gate
			}
			batches = append(batches, append([]eventlog.Record(nil), batch...))
			return nil
		}
		app := func(id string, tp string) {
			t.Helper()
			md := map[string]string{}
			if tp != "" {
				md["traceparent"] = tp
			}
			if _, err := log.Append(context.Background(), "Tab", id, 0, eventlog.Event{Name: "E", Metadata: md}); err != nil {
				t.Fatal(err)
			}
		}
		app("gate", "")
		// Started inside a span: the batches are not its children.
		ctx, outer := o.TP.Tracer("test").Start(t.Context(), "main")
		defer outer.End()
		p := mustNew(t, log, "Tab", "tabs", projection.NewMemory(), h, append(o.options(), projection.WithBatchSize(10))...)
		if err := p.Start(ctx); err != nil {
			t.Fatal(err)
		}
		synctest.Wait() // the gate event is in the handler
		app("g1", garbage[0])
		app("g2", garbage[1])
		app("a1", traceparent(tidA, sidA))
		app("b1", traceparent(tidB, sidB))
		app("a2", traceparent(tidA, sidA))
		app("none", "")
		synctest.Wait() // all of them wait in the read-ahead buffer
		close(gate)
		synctest.Wait()
		if len(batches) != 2 || len(batches[1]) != 6 {
			t.Fatalf("batches %v, want the gate event, then the 6 others together", batchLens(batches))
		}
		// The garbage alone, a batch at a time.
		app("g3", garbage[0])
		synctest.Wait()
		app("g4", garbage[1])
		synctest.Wait()
		if st := p.Status(); st.Handled != 9 || st.LastError != nil {
			t.Errorf("status %+v, want 9 handled and no error", st)
		}
		spans := o.Named("projection tabs")
		if len(spans) != 4 {
			t.Fatalf("%d batch spans, want 4", len(spans))
		}
		for _, s := range spans {
			if s.Status().Code == codes.Error {
				t.Errorf("batch span at %d has status %v", telemetrytest.Attr(s, "eventsourced.position.first").AsInt64(), s.Status())
			}
		}
		mixed := spans[1]
		if got := mixed.Parent(); got.TraceID().String() != tidA || got.SpanID().String() != sidA || !got.IsRemote() {
			t.Errorf("mixed batch: parent %s/%s, want the first valid trace context %s/%s", got.TraceID(), got.SpanID(), tidA, sidA)
		}
		if l := mixed.Links(); len(l) != 1 || l[0].SpanContext.TraceID().String() != tidB || l[0].SpanContext.SpanID().String() != sidB {
			t.Errorf("mixed batch: links %v, want only %s/%s", l, tidB, sidB)
		}
		for _, i := range []int{0, 2, 3} {
			s := spans[i]
			if s.Parent().IsValid() || len(s.Links()) != 0 {
				t.Errorf("batch %d: parent %v, links %v; want a root with no links", i, s.Parent(), s.Links())
			}
		}
	})
}

func batchLens(bs [][]eventlog.Record) []int {
	var n []int
	for _, b := range bs {
		n = append(n, len(b))
	}
	return n
}

// Retries and poison events are counted; a failed attempt's span has an
// error status; the lag gauges report the events waiting and how old the
// last handled one is.
func TestTelemetryRetriesPoisonAndLag(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		o := newObserved(t)
		log := eventlog.NewMemory()
		t0 := time.Now()
		pos := appendN(t, log, "Tab", "t1", 3)
		boom := errors.New("boom")
		calls := map[uint64]int{}
		release := make(chan struct{})
		h := func(ctx context.Context, batch []eventlog.Record) error {
			rec := batch[0]
			calls[rec.Seq]++
			switch rec.Seq {
			case 1: // fails twice, then succeeds
				if calls[1] <= 2 {
					return boom
				}
			case 2: // poison
				return boom
			case 3:
				select {
				case <-release:
				case <-ctx.Done():
					return ctx.Err()
				}
			}
			return nil
		}
		p := mustNew(t, log, "Tab", "tabs", projection.NewMemory(), h, append(o.options(),
			projection.WithRetry(time.Millisecond, time.Millisecond, 3), projection.WithPoison(projection.SkipPoison))...)
		start(t, p)
		time.Sleep(time.Second) // the bubble's clock: the retries are done
		synctest.Wait()
		// Seq 1: 2 retries; seq 2: 2 retries, then skipped; seq 3 waits.
		if got := o.Count(t, "eventsourced.projection.retries"); got != 4 {
			t.Errorf("projection.retries = %d, want 4", got)
		}
		if got := o.Count(t, "eventsourced.projection.poison", attribute.String("eventsourced.outcome", "skipped")); got != 1 {
			t.Errorf("projection.poison{outcome=skipped} = %d, want 1", got)
		}
		if got := o.Count(t, "eventsourced.projection.events"); got != 1 {
			t.Errorf("projection.events = %d, want 1 (a skipped event is not handled)", got)
		}
		failed := 0
		for _, s := range o.Named("projection tabs") {
			if s.Status().Code == codes.Error {
				failed++
			}
		}
		if failed != 5 {
			t.Errorf("%d batch spans with an error status, want 5", failed)
		}
		// Seq 3 is in the handler: 1 event behind, and the last handled
		// (seq 2, skipped) committed at t0.
		lag := o.Metric(t, "eventsourced.projection.lag").(metricdata.Gauge[int64])
		if len(lag.DataPoints) != 1 || lag.DataPoints[0].Value != 1 {
			t.Errorf("projection.lag %+v, want 1", lag.DataPoints)
		}
		lagTime := o.Metric(t, "eventsourced.projection.lag.time").(metricdata.Gauge[float64])
		if want := time.Since(t0).Seconds(); len(lagTime.DataPoints) != 1 || lagTime.DataPoints[0].Value != want {
			t.Errorf("projection.lag.time %+v, want %v s", lagTime.DataPoints, want)
		}
		close(release)
		synctest.Wait()
		if st := p.Status(); st.Offset != pos[2] {
			t.Fatalf("offset %d, want %d", st.Offset, pos[2])
		}
		lag = o.Metric(t, "eventsourced.projection.lag").(metricdata.Gauge[int64])
		lagTime = o.Metric(t, "eventsourced.projection.lag.time").(metricdata.Gauge[float64])
		if lag.DataPoints[0].Value != 0 || lagTime.DataPoints[0].Value != 0 {
			t.Errorf("caught up: lag %d, lag.time %v; want 0 and 0", lag.DataPoints[0].Value, lagTime.DataPoints[0].Value)
		}
		stop(t, p)
		if m := o.Metric(t, "eventsourced.projection.lag"); m != nil && len(m.(metricdata.Gauge[int64]).DataPoints) != 0 {
			t.Errorf("projection.lag reported after Stop: %+v", m)
		}
	})
}
