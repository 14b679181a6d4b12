package telemetry

import (
	"context"
	"errors"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/trace"

	"github.com/eventsourced-go/eventsourced/eventlog"
)

// Outcomes of an append, for the outcome attribute of a backend's append
// duration.
const (
	AppendOK = iota
	AppendConflict
	AppendDeleted
	AppendFailed
	NumAppendOutcomes
)

// AppendOutcomeNames are the values of the outcome attribute, by append
// outcome.
var AppendOutcomeNames = [NumAppendOutcomes]string{"ok", "conflict", "deleted", "failed"}

// AppendOutcome classifies how an append that returned err ended.
func AppendOutcome(err error) int {
	switch {
	case err == nil:
		return AppendOK
	case errors.Is(err, eventlog.ErrConflict):
		return AppendConflict
	case errors.Is(err, eventlog.ErrDeleted):
		return AppendDeleted // refused: the stream was deleted for good
	}
	return AppendFailed
}

// AppendAttrs returns the attribute sets of a backend's append duration,
// by append outcome.
func AppendAttrs(backend attribute.KeyValue) [NumAppendOutcomes]Attrs {
	var a [NumAppendOutcomes]Attrs
	for o := range NumAppendOutcomes {
		a[o] = NewAttrs(backend, Outcome.String(AppendOutcomeNames[o]))
	}
	return a
}

// Operations of a snapshot store that are measured.
const (
	SnapshotSave = iota
	SnapshotLoad
	numSnapshotOps
)

var snapshotOpNames = [numSnapshotOps]string{"save", "load"}

// operation is the attribute key of a snapshot store operation.
const operation = attribute.Key("eventsourced.operation")

// SnapshotOps measures a snapshot store's operations: a client span per
// operation, a child of its caller's, and the duration by backend,
// operation and outcome (ok, failed). Each backend's store has one.
type SnapshotOps struct {
	tracing  *Tracing
	metering *Metering
	span     [numSnapshotOps]string
	opTime   metric.Float64Histogram
	backend  attribute.KeyValue
	// byOp holds the attributes of the duration by operation and outcome.
	byOp [numSnapshotOps][2]Attrs
}

// NewSnapshotOps returns the SnapshotOps of a store of backend with
// tracing and metering, creating its instrument with in; its spans are
// named "<name> snapshot save" and "<name> snapshot load".
func NewSnapshotOps(tracing *Tracing, metering *Metering, in *Instruments, backend attribute.KeyValue, name string) *SnapshotOps {
	s := &SnapshotOps{tracing: tracing, metering: metering, backend: backend}
	s.opTime = in.Histogram("eventsourced.snapshotstore.operation.duration", "s", "Time of a snapshot store operation, by backend, operation (save, load) and outcome (ok, failed).", Durations...)
	for op := range numSnapshotOps {
		s.span[op] = name + " snapshot " + snapshotOpNames[op]
		for i, outcome := range []string{"ok", "failed"} {
			s.byOp[op][i] = NewAttrs(backend, operation.String(snapshotOpNames[op]), Outcome.String(outcome))
		}
	}
	return s
}

// SnapshotOp is a snapshot store operation being measured.
type SnapshotOp struct {
	span  trace.Span // nil unless traced
	start time.Time  // zero unless metered
	op    int
}

// Start starts measuring operation op (SnapshotSave, SnapshotLoad) on the
// snapshot of typ/id: a span, a child of ctx's, when tracing is on; the
// time when metrics are.
func (s *SnapshotOps) Start(ctx context.Context, op int, typ, id string) (context.Context, SnapshotOp) {
	so := SnapshotOp{op: op}
	if s.tracing.On() {
		ctx, so.span = s.tracing.Tracer().Start(ctx, s.span[op], trace.WithSpanKind(trace.SpanKindClient),
			trace.WithAttributes(s.backend, EntityType.String(typ), EntityID.String(id)))
	}
	if s.metering.On() {
		so.start = time.Now()
	}
	return ctx, so
}

// End records how the operation ended.
func (s *SnapshotOps) End(ctx context.Context, so SnapshotOp, err error) {
	if !so.start.IsZero() {
		failed := 0
		if err != nil {
			failed = 1
		}
		s.opTime.Record(ctx, time.Since(so.start).Seconds(), s.byOp[so.op][failed].Record...)
	}
	EndSpan(so.span, err)
}
