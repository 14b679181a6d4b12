package postgreslog_test

import (
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"

	"github.com/eventsourced-go/eventsourced/eventlog"
	"github.com/eventsourced-go/eventsourced/internal/telemetrytest"
	"github.com/eventsourced-go/eventsourced/postgreslog"
	"github.com/eventsourced-go/eventsourced/snapshotstore"
)

// observed is the telemetry of a Log or SnapshotStore as the SDK's test
// helpers record it; every data point carries the backend attribute.
type observed struct{ *telemetrytest.Observed }

func newObserved(t *testing.T) *observed {
	o := &observed{telemetrytest.New(t)}
	o.Always = []attribute.KeyValue{postgresAttr}
	return o
}

func (o *observed) options() []postgreslog.Option {
	return []postgreslog.Option{postgreslog.WithTracerProvider(o.TP), postgreslog.WithMeterProvider(o.MP)}
}

var postgresAttr = attribute.String("eventsourced.backend", "postgres")

// intAttr returns the int attribute key of s, -1 if it has none.
func intAttr(s sdktrace.ReadOnlySpan, key string) int64 {
	for _, kv := range s.Attributes() {
		if string(kv.Key) == key {
			return kv.Value.AsInt64()
		}
	}
	return -1
}

// TestCommitSpanLinksItsAppends queues the appends of n callers, each in a
// span of its own, behind a transaction holding the Position lock, so that
// they commit in one transaction: that transaction has one span, a root
// linked to the n callers' spans, and the appends-per-transaction histogram
// records it. The queue gauge shows them waiting.
func TestCommitSpanLinksItsAppends(t *testing.T) {
	o := newObserved(t)
	pool := postgreslog.NewTestPool(t, nil)
	l := postgreslog.NewTestLog(t, pool, append(o.options(), postgreslog.WithConcurrency(1))...)
	ctx := testCtx(t, 60*time.Second)
	const typ, n = "account", 20

	// The first append takes the only worker, whose transaction then waits
	// for the lock; the others queue up and form the next transaction.
	release := postgreslog.HoldPositions(t, pool, l)
	firstSpan := make(chan trace.SpanContext, 1)
	firstDone := make(chan error, 1)
	go func() {
		ctx, span := o.Caller(ctx, "caller first")
		firstSpan <- span.SpanContext()
		_, err := l.Append(ctx, typ, "first", 0, events("first", 1)...)
		span.End()
		firstDone <- err
	}()
	waitFor(t, 10*time.Second, "the first transaction to wait for the lock", func() bool {
		return postgreslog.LockWaiters(t, pool, postgreslog.MetaTable(l)) == 1
	})
	callers := make([]trace.SpanContext, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			ctx, span := o.Caller(ctx, fmt.Sprintf("caller %d", i))
			callers[i] = span.SpanContext()
			_, errs[i] = l.Append(ctx, typ, fmt.Sprintf("acc-%02d", i), 0, events("open", 1)...)
			span.End()
		})
	}
	waitFor(t, 10*time.Second, "the appends to queue", func() bool { return postgreslog.QueueLen(l) == n })
	gauge, ok := o.Metric(t, "eventsourced.log.append.queued").(metricdata.Gauge[int64])
	if !ok || len(gauge.DataPoints) != 1 || gauge.DataPoints[0].Value != n ||
		!telemetrytest.Has(gauge.DataPoints[0].Attributes, postgresAttr, attribute.String("eventsourced.log.table", postgreslog.Schema(l)+".eventsourced_events")) {
		t.Errorf("queue gauge with %d appends queued: %+v", n, gauge)
	}
	release()
	wg.Wait()
	if err := <-firstDone; err != nil {
		t.Fatalf("first append: %v", err)
	}
	for i, err := range errs {
		if err != nil {
			t.Fatalf("append %d: %v", i, err)
		}
	}

	commits := o.Named("postgreslog commit")
	if len(commits) != 2 {
		t.Fatalf("%d commit spans, want 2 (the first append's transaction, then the queued ones')", len(commits))
	}
	first := <-firstSpan
	for _, c := range commits {
		if c.Parent().IsValid() || c.SpanKind() != trace.SpanKindClient || c.Status().Code == codes.Error {
			t.Errorf("commit span: parent %v, kind %v, status %v; want a root client span without error", c.Parent(), c.SpanKind(), c.Status())
		}
		if !telemetrytest.Has(attribute.NewSet(c.Attributes()...), postgresAttr) {
			t.Errorf("commit span without %v: %v", postgresAttr, c.Attributes())
		}
	}
	lone, batch := commits[0], commits[1]
	if len(lone.Links()) != 1 {
		lone, batch = batch, lone
	}
	if got := telemetrytest.Linked(lone); !telemetrytest.SameSpans(got, []trace.SpanContext{first}) {
		t.Errorf("the first transaction links %v, want the first caller's span %v", got, first)
	}
	if got := telemetrytest.Linked(batch); !telemetrytest.SameSpans(got, callers) {
		t.Errorf("the queued transaction links %d spans, want the %d callers' spans", len(got), n)
	}
	for key, want := range map[string]int64{"eventsourced.appends": n, "eventsourced.events": n, "eventsourced.conflicts": 0} {
		if got := intAttr(batch, key); got != want {
			t.Errorf("the queued transaction's span has %s = %d, want %d", key, got, want)
		}
	}

	appends := telemetrytest.Histogram[int64](t, o.Observed, "eventsourced.log.transaction.appends")
	if appends.Count != 2 || appends.Sum != n+1 {
		t.Errorf("appends per transaction: %d transactions, %d appends; want 2 and %d", appends.Count, appends.Sum, n+1)
	}
	if lo, _ := appends.Min.Value(); lo != 1 {
		t.Errorf("appends per transaction: min %d, want 1", lo)
	}
	if hi, _ := appends.Max.Value(); hi != n {
		t.Errorf("appends per transaction: max %d, want %d", hi, n)
	}
	if evs := telemetrytest.Histogram[int64](t, o.Observed, "eventsourced.log.transaction.events"); evs.Count != 2 || evs.Sum != n+1 {
		t.Errorf("events per transaction: %d transactions, %d events; want 2 and %d", evs.Count, evs.Sum, n+1)
	}
	if d := telemetrytest.Histogram[float64](t, o.Observed, "eventsourced.log.append.duration", attribute.String("eventsourced.outcome", "ok")); d.Count != n+1 {
		t.Errorf("append duration, outcome ok: %d appends, want %d", d.Count, n+1)
	}
	if c := o.Count(t, "eventsourced.log.conflicts"); c != 0 {
		t.Errorf("conflicts: %d, want 0", c)
	}
}

// TestConflictIsMeasured has a second Log, as another process would, move
// a stream on behind the first Log's back: the first Log's stale append
// runs its transaction twice (the unique key refuses it, then the full
// check finds the conflict). The conflict shows in the conflicts counter
// and as the append duration's outcome conflict, the second run in the
// retries counter, and the refused transaction in an error span.
func TestConflictIsMeasured(t *testing.T) {
	o := newObserved(t)
	pool := postgreslog.NewTestPool(t, nil)
	schema := postgreslog.FreshSchema(t, pool)
	setupSchema(t, pool, schema)
	a := postgreslog.OpenTestLog(t, pool, append(o.options(), postgreslog.WithSchema(schema))...)
	b := postgreslog.OpenTestLog(t, pool, postgreslog.WithSchema(schema))
	ctx := testCtx(t, 30*time.Second)
	const typ = "shared"

	mustAppend(t, ctx, a, typ, "s", 0, events("a", 2)...)
	mustAppend(t, ctx, b, typ, "s", 2, events("b", 1)...)
	sctx, span := o.Caller(ctx, "stale caller")
	_, err := a.Append(sctx, typ, "s", 2, events("a", 1)...)
	span.End()
	var ce *eventlog.ConflictError
	if !errors.As(err, &ce) || ce.Actual != 3 {
		t.Fatalf("stale append: %v, want a ConflictError with Actual 3", err)
	}

	if c := o.Count(t, "eventsourced.log.conflicts"); c != 1 {
		t.Errorf("conflicts: %d, want 1", c)
	}
	if c := o.Count(t, "eventsourced.log.transaction.retries"); c != 1 {
		t.Errorf("transactions retried: %d, want 1", c)
	}
	if d := telemetrytest.Histogram[float64](t, o.Observed, "eventsourced.log.append.duration", attribute.String("eventsourced.outcome", "conflict")); d.Count != 1 {
		t.Errorf("append duration, outcome conflict: %d appends, want 1", d.Count)
	}
	if d := telemetrytest.Histogram[float64](t, o.Observed, "eventsourced.log.append.duration", attribute.String("eventsourced.outcome", "ok")); d.Count != 1 {
		t.Errorf("append duration, outcome ok: %d appends, want 1", d.Count)
	}
	if s := o.Metric(t, "eventsourced.log.append.duration").(metricdata.Histogram[float64]); len(s.DataPoints) != 2 {
		t.Errorf("append duration has %d data points, want 2 (ok, conflict)", len(s.DataPoints))
	}

	// The stale append's two transactions link its caller's span: the one
	// the unique key refused with an error status, the other with the
	// conflict.
	var refused, conflicted int
	for _, c := range o.Named("postgreslog commit") {
		if !telemetrytest.SameSpans(telemetrytest.Linked(c), []trace.SpanContext{span.SpanContext()}) {
			continue
		}
		switch {
		case c.Status().Code == codes.Error:
			refused++
		case intAttr(c, "eventsourced.conflicts") == 1:
			conflicted++
		}
	}
	if refused != 1 || conflicted != 1 {
		t.Errorf("the stale append's transactions: %d refused, %d with a conflict; want 1 and 1", refused, conflicted)
	}
}

// TestFirstReadSpans holds both readers on a locked events table and queues
// the first reads of more streams behind them, each read in a caller's span:
// every read is served by exactly one span, a child of its caller's for a
// read queried alone, else a root linked to the callers of its batch.
func TestFirstReadSpans(t *testing.T) {
	o := newObserved(t)
	pool := postgreslog.NewTestPool(t, nil)
	l := postgreslog.NewTestLog(t, pool, o.options()...)
	ctx := testCtx(t, 60*time.Second)
	const typ, n = "account", 12
	for i := range n {
		mustAppend(t, ctx, l, typ, fmt.Sprintf("s-%02d", i), 0, events("e", 2)...)
	}
	unlock := lockEvents(t, ctx, pool, l)
	callers := make([]trace.SpanContext, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	read := func(i int) {
		wg.Go(func() {
			ctx, span := o.Caller(ctx, fmt.Sprintf("reader %d", i))
			defer span.End()
			callers[i] = span.SpanContext()
			for _, err := range l.ReadEntity(ctx, typ, fmt.Sprintf("s-%02d", i), 1) {
				if err != nil {
					errs[i] = err
				}
			}
		})
	}
	// One read for each reader, each then waiting for the lock...
	for i := range 2 {
		read(i)
		waitFor(t, 10*time.Second, "a reader to wait for the lock", func() bool {
			return postgreslog.LockWaiters(t, pool, postgreslog.EventsTable(l)) == i+1
		})
	}
	// ... and the others queue up.
	for i := 2; i < n; i++ {
		read(i)
	}
	waitFor(t, 10*time.Second, "the reads to queue", func() bool { return postgreslog.ReadQueueLen(l) == n-2 })
	unlock()
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Fatalf("read %d: %v", i, err)
		}
	}

	served := make(map[trace.SpanID]int)
	for _, s := range o.Named("postgreslog read first pages") {
		reads := intAttr(s, "eventsourced.reads")
		if s.Parent().IsValid() {
			if reads != 1 || len(s.Links()) != 0 {
				t.Errorf("a lone read's span has %d reads and %d links, want 1 and none", reads, len(s.Links()))
			}
			served[s.Parent().SpanID()]++
			continue
		}
		if reads != int64(len(s.Links())) || reads < 2 {
			t.Errorf("a batched read's span has %d reads and %d links, want as many, and at least 2", reads, len(s.Links()))
		}
		for _, sc := range telemetrytest.Linked(s) {
			served[sc.SpanID()]++
		}
	}
	for i, sc := range callers {
		if served[sc.SpanID()] != 1 {
			t.Errorf("read %d is served by %d spans, want 1", i, served[sc.SpanID()])
		}
	}
	if len(served) != n {
		t.Errorf("the read spans serve %d callers, want %d", len(served), n)
	}
}

// TestSnapshotStoreTelemetry checks the spans of Save and Load, children of
// their caller's, and their durations by operation and outcome.
func TestSnapshotStoreTelemetry(t *testing.T) {
	o := newObserved(t)
	pool := postgreslog.NewTestPool(t, nil)
	l := postgreslog.NewTestLog(t, pool)
	s, err := postgreslog.NewSnapshotStore(pool, append(o.options(), sameSchema(t, l))...)
	if err != nil {
		t.Fatal(err)
	}
	ctx := testCtx(t, 30*time.Second)
	sctx, span := o.Caller(ctx, "caller")
	if err := s.Save(sctx, snapshotstore.Snapshot{EntityType: "acct", EntityID: "a", Seq: 3, Data: []byte("x")}, 1); err != nil {
		t.Fatal(err)
	}
	if _, ok, err := s.Load(sctx, "acct", "a"); err != nil || !ok {
		t.Fatalf("Load: %v, %v", ok, err)
	}
	span.End()
	for _, name := range []string{"postgreslog snapshot save", "postgreslog snapshot load"} {
		spans := o.Named(name)
		if len(spans) != 1 || spans[0].Parent().SpanID() != span.SpanContext().SpanID() {
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
