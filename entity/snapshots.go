package entity

import (
	"context"
	"log/slog"

	"go.opentelemetry.io/otel/trace"

	"github.com/eventsourced-go/eventsourced/eventlog"
	itel "github.com/eventsourced-go/eventsourced/internal/telemetry"
	"github.com/eventsourced-go/eventsourced/snapshotstore"
)

// Snapshots: every WithSnapshotEvery events the owner of an entity encodes
// its state, and one saver goroutine per entity saves the latest encoded
// snapshot in the background.

// maybeSnapshot takes a snapshot every snapshotEvery events. The state is
// encoded here, by the entity's owner, and saved in the background by one
// saver goroutine at a time. A snapshot is never skipped because an earlier
// one is still being saved: the saver takes the latest encoded one next, so
// recovery never has more than snapshotEvery events to replay after the
// latest snapshot (plus what one batch overshoots). A failure is logged; a
// failed save is retried after the next persist, a state that cannot be
// encoded after the next snapshotEvery events.
func (in *instance[S, E]) maybeSnapshot() {
	k := in.kind
	every := k.cfg.snapshotEvery
	if every == 0 {
		return
	}
	if in.snapRetry.Swap(false) {
		in.snapDone = min(in.snapDone, in.snapSeq.Load())
	}
	if in.seq-in.snapDone < every {
		return
	}
	in.takeSnapshot()
}

// takeSnapshot encodes the state and hands it to the saver goroutine,
// starting one if none runs.
func (in *instance[S, E]) takeSnapshot() {
	k := in.kind
	def := &k.def
	var data []byte
	err := guard(def.Name, in.id, func() error {
		var err error
		data, err = def.State.Encode(in.state)
		return err
	})
	// Tried at this Seq, saved or not: a state that cannot be encoded is
	// tried again after the next snapshotEvery events, not after every
	// command (which would log each one).
	in.snapDone = in.seq
	if err != nil {
		k.sys.logger.Error("entity: encode snapshot", slog.String("type", def.Name), slog.String("id", in.id), slog.Uint64("seq", in.seq), slog.Any("error", err))
		k.tel.sys.snapshots.Add(context.Background(), 1, k.tel.failed.Add...)
		return
	}
	snap := &snapshotstore.Snapshot{EntityType: def.Name, EntityID: in.id, Seq: in.seq, Revision: def.stateRevision(), Data: data}
	in.snapMu.Lock()
	in.snapNext = snap
	start := !in.snapping
	in.snapping = true
	in.snapMu.Unlock()
	if start {
		k.sys.work.Add(1)
		go in.saveSnapshots()
	}
}

// saveSnapshots saves the latest encoded snapshot until there is none.
func (in *instance[S, E]) saveSnapshots() {
	defer in.kind.sys.work.Done()
	for {
		in.snapMu.Lock()
		snap := in.snapNext
		in.snapNext = nil
		if snap == nil {
			in.snapping = false
			in.snapMu.Unlock()
			return
		}
		in.snapMu.Unlock()
		if !in.saveSnapshot(*snap) {
			in.snapRetry.Store(true)
		}
	}
}

// saveSnapshot saves snap and deletes the events it covers if configured;
// it reports whether the snapshot was saved.
func (in *instance[S, E]) saveSnapshot(snap snapshotstore.Snapshot) (saved bool) {
	k := in.kind
	t := &k.tel
	ctx, cancel := context.WithTimeout(k.sys.bgCtx, k.cfg.timeout)
	defer cancel()
	var span trace.Span
	if !t.sys.off && t.sys.tracing.On() {
		ctx, span = t.sys.tracing.Tracer().Start(ctx, "snapshot "+k.def.Name,
			trace.WithAttributes(t.typeName, itel.EntityID.String(snap.EntityID), itel.Seq.Int64(int64(snap.Seq))))
	}
	var err error
	defer func() {
		attrs := &t.ok
		if !saved {
			attrs = &t.failed
		}
		t.sys.snapshots.Add(ctx, 1, attrs.Add...)
		itel.EndSpan(span, err)
	}()
	logger := k.sys.logger.With(slog.String("type", snap.EntityType), slog.String("id", snap.EntityID), slog.Uint64("seq", snap.Seq))
	if err = k.sys.snapshots.Save(ctx, snap, k.cfg.keepSnapshots); err != nil {
		if k.sys.bgCtx.Err() != nil {
			// Close canceled it: the events are the truth, nothing is lost.
			logger.Debug("entity: snapshot not saved: the system closed", slog.Any("error", err))
			return false
		}
		logger.Error("entity: save snapshot", slog.Any("error", err))
		return false
	}
	in.snapSeq.Store(snap.Seq)
	if k.cfg.deleteEvents {
		if derr := k.sys.eventLog.(eventlog.Deleter).DeleteTo(ctx, snap.EntityType, snap.EntityID, snap.Seq); derr != nil {
			logger.Error("entity: delete events covered by snapshot", slog.Any("error", derr))
		}
	}
	return true
}
