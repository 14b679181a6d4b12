package entity

import (
	"context"
	"errors"
	"fmt"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/trace"

	"github.com/eventsourced-go/eventsourced/eventlog"
	itel "github.com/eventsourced-go/eventsourced/internal/telemetry"
	"github.com/eventsourced-go/eventsourced/snapshotstore"
)

// Recovery: an entity rebuilds its state from its latest snapshot and the
// events after it, on activation and after any failure that may have left
// its in-memory state wrong.

// restore rebuilds the state from the latest snapshot and the events after
// it, under parent and the store timeout. A gap right after the snapshot can
// be a race with the deletion of events a newer snapshot covers; then it
// loads again.
func (in *instance[S, E]) restore(parent context.Context) (err error) {
	k := in.kind
	t := &k.tel
	var span trace.Span
	var start time.Time
	var r recovered[S]
	if !t.sys.off {
		if t.sys.tracing.On() {
			parent, span = t.sys.tracing.Tracer().Start(parent, "recover "+k.def.Name,
				trace.WithAttributes(t.typeName, itel.EntityID.String(in.id)))
		}
		if span != nil || t.sys.recoveryTime.Enabled(parent) {
			start = time.Now()
		}
		defer func() {
			attrs := &t.ok
			if err != nil {
				attrs = &t.failed
			}
			if !start.IsZero() {
				t.sys.recoveryTime.Record(parent, time.Since(start).Seconds(), attrs.Record...)
			}
			if err == nil {
				t.sys.recoveryEvents.Record(parent, int64(r.events), t.byType.Record...)
			}
			if span != nil {
				span.SetAttributes(itel.Seq.Int64(int64(r.seq)), itel.Events.Int(r.events), snapshotSeq.Int64(int64(r.snapSeq)))
				itel.EndSpan(span, err)
			}
		}()
	}
	ctx := newStoreCtx(parent, k.cfg.timeout)
	defer ctx.release()
	var snaps snapshotstore.Store
	if k.cfg.snapshotEvery > 0 {
		snaps = k.sys.snapshots
	}
	for attempt := 0; attempt < 3; attempt++ {
		r, err = replay(ctx, &k.def, k.sys.eventLog, snaps, in.id)
		if err == nil {
			in.state, in.seq, in.ready = r.state, r.seq, true
			in.snapSeq.Store(r.snapSeq)
			in.snapDone = r.snapSeq
			return nil
		}
		if !errors.Is(err, errGap) || !k.cfg.deleteEvents {
			break
		}
	}
	return err
}

// snapshotSeq is the attribute of a recovery span naming the Seq of the
// snapshot it started from, 0 for none.
const snapshotSeq = attribute.Key("eventsourced.snapshot.seq")

var errGap = errors.New("gap in event seq")

type recovered[S any] struct {
	state   S
	seq     uint64
	snapSeq uint64
	events  int // replayed after the snapshot
}

// replay loads the entity (def, id) from snaps (if not nil) and the log
// events.
func replay[S, E any](ctx context.Context, def *Type[S, E], events eventlog.Log, snaps snapshotstore.Store, id string) (recovered[S], error) {
	fail := func(seq uint64, err error) (recovered[S], error) {
		return recovered[S]{}, &RecoveryError{EntityType: def.Name, EntityID: id, Seq: seq, Err: err}
	}
	r := recovered[S]{state: def.initial()}
	if snaps != nil {
		snap, found, err := snaps.Load(ctx, def.Name, id)
		if err != nil {
			return fail(0, fmt.Errorf("load snapshot: %w", err))
		}
		if found {
			err := guard(def.Name, id, func() error {
				var err error
				r.state, err = def.State.Decode(snap.Data)
				return err
			})
			if err != nil {
				return fail(snap.Seq, fmt.Errorf("decode snapshot: %w", err))
			}
			r.seq, r.snapSeq = snap.Seq, snap.Seq
		}
	}
	for rec, err := range events.ReadEntity(ctx, def.Name, id, r.seq+1) {
		if err != nil {
			return fail(r.seq+1, fmt.Errorf("read events: %w", err))
		}
		if rec.Seq != r.seq+1 {
			return fail(r.seq+1, fmt.Errorf("%w: event seq %d follows seq %d", errGap, rec.Seq, r.seq))
		}
		err := guard(def.Name, id, func() error {
			e, err := def.Events.Decode(rec.Name, rec.Revision, rec.Data)
			if err != nil {
				return fmt.Errorf("decode event %q rev %d: %w", rec.Name, rec.Revision, err)
			}
			r.state = def.Apply(r.state, e)
			return nil
		})
		if err != nil {
			return fail(rec.Seq, err)
		}
		r.seq = rec.Seq
		r.events++
	}
	return r, nil
}

// recoverBehind recovers the entity, whose ownership it took over from a
// caller that gave up during its recovery, then releases it: the commands
// that queued up meanwhile, or come next, find the work done, or as far as
// the store timeout let it go. A failure is not reported here; the next
// command recovers again and gets it.
func (in *instance[S, E]) recoverBehind() {
	defer in.kind.sys.work.Done()
	_ = in.restore(in.kind.sys.bgCtx)
	in.release()
}
