package entity

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/trace"

	"github.com/eventsourced-go/eventsourced/binarize"
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
		r, err = replay(ctx, &k.def, k.sys.eventLog, snaps, k.cfg.snapshotPolicy, in.id, k.cfg.idem)
		if err == nil {
			in.state, in.seq, in.ready = r.state, r.seq, true
			in.idem = r.idem
			in.snapSeq.Store(r.snapSeq)
			in.snapDone = r.snapSeq
			if r.unusable != nil {
				in.replaceSnapshot(parent, r.unusable)
			}
			return nil
		}
		// A gap, or an unusable snapshot whose events are gone, can be a
		// race with the saver of a newer snapshot deleting the events it
		// covers: loading again finds that snapshot.
		if !k.cfg.deleteEvents || !errors.Is(err, errGap) && !errors.Is(err, ErrUnusableSnapshot) {
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
	state    S
	seq      uint64
	snapSeq  uint64
	events   int               // replayed after the snapshot
	unusable *unusableSnapshot // the latest snapshot, skipped
	idem     *idemWindow       // the keys recorded in the window; nil if none
}

// unusableSnapshot is a snapshot that recovery could not decode.
type unusableSnapshot struct {
	seq      uint64
	revision uint32
	err      error
}

// replay loads the entity (def, id) from snaps (if not nil) and the log
// events. A snapshot it cannot decode is skipped under policy
// RecoverFromEvents, if the events it covers are still there. With keys
// on (idem not nil), it also gathers the idempotency keys recorded in the
// window, reading back the events before the snapshot that it covers.
func replay[S, E any](ctx context.Context, def *Type[S, E], events eventlog.Log, snaps snapshotstore.Store, policy SnapshotPolicy, id string, idem *idemConfig) (recovered[S], error) {
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
			var state S
			err := guard(def.Name, id, func() error {
				var err error
				state, err = def.decodeSnapshot(ctx, snap.Revision, snap.Data)
				return err
			})
			switch {
			case err == nil:
				r.state, r.seq, r.snapSeq = state, snap.Seq, snap.Seq
			case !unusable(err):
				// Not the bytes' fault (a key store out of reach, say):
				// nothing is skipped, the next command tries again.
				return fail(snap.Seq, fmt.Errorf("decode snapshot: %w", err))
			case policy == FailOnUnusableSnapshot:
				return fail(snap.Seq, fmt.Errorf("%w: snapshot at seq %d, state rev %d (FailOnUnusableSnapshot): %w", ErrUnusableSnapshot, snap.Seq, snap.Revision, err))
			default:
				r.unusable = &unusableSnapshot{seq: snap.Seq, revision: snap.Revision, err: err}
			}
		}
	}
	// deleted reports that the events an unusable snapshot covers are gone.
	deleted := func() (recovered[S], error) {
		u := r.unusable
		return fail(u.seq, fmt.Errorf("%w: snapshot at seq %d, state rev %d, cannot be read (%w), and events %d to %d, which it covers, are no longer in the log (deleted by WithDeleteEventsOnSnapshot), so recovery cannot replay them: register an upcaster of state revision %d (binarize.UpcastValue on a binarize.Versioned State codec), or deploy the release that wrote it",
			ErrUnusableSnapshot, u.seq, u.revision, u.err, r.seq+1, u.seq, u.revision))
	}
	cc := def.contextEvents()
	// base is where the state stands before the events: the keys recorded
	// in the window events before it are read back, neither decoded nor
	// applied.
	base, from, window := r.seq, r.seq+1, uint64(0)
	if idem != nil {
		window = idem.window
		if base > 0 {
			from = base - min(base-1, window-1)
		}
	}
	for rec, err := range events.ReadEntity(ctx, def.Name, id, from) {
		if err != nil {
			return fail(r.seq+1, fmt.Errorf("read events: %w", err))
		}
		if window > 0 {
			// A key without a reply is not one the runtime recorded (a
			// sender's metadata, say): it is not one.
			if key := rec.Metadata[IdempotencyKeyMetadata]; key != "" {
				if reply, ok := rec.Metadata[IdempotencyReplyMetadata]; ok {
					if r.idem == nil {
						r.idem = new(idemWindow)
					}
					r.idem.add(key, idemRecord{seq: rec.Seq, pos: rec.Position, reply: reply}, rec.Seq, window)
				}
			}
			if rec.Seq <= base {
				continue
			}
		}
		if rec.Seq != r.seq+1 {
			if r.unusable != nil {
				return deleted()
			}
			return fail(r.seq+1, fmt.Errorf("%w: event seq %d follows seq %d", errGap, rec.Seq, r.seq))
		}
		err := guard(def.Name, id, func() error {
			var e E
			var err error
			if cc != nil {
				e, err = cc.DecodeContext(ctx, rec.Name, rec.Revision, rec.Data)
			} else {
				e, err = def.Events.Decode(rec.Name, rec.Revision, rec.Data)
			}
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
	if r.unusable != nil && r.seq < r.unusable.seq {
		return deleted()
	}
	if r.idem != nil {
		r.idem.evict(r.seq, window)
	}
	return r, nil
}

// replaceSnapshot reports the unusable snapshot u that recovery skipped,
// and saves a fresh one of the state recovered from the events, so that
// the next recovery need not replay them all again.
func (in *instance[S, E]) replaceSnapshot(ctx context.Context, u *unusableSnapshot) {
	k := in.kind
	k.sys.logger.Warn("entity: snapshot unusable; recovered from the events instead",
		slog.String("type", k.def.Name), slog.String("id", in.id), slog.Uint64("seq", u.seq),
		slog.Uint64("revision", uint64(u.revision)), slog.Uint64("state_revision", uint64(k.def.stateRevision())),
		slog.Int64("events", int64(in.seq)), slog.Any("error", u.err))
	k.tel.sys.unusable.Add(ctx, 1, k.tel.byType.Add...)
	in.takeSnapshot()
}

// unusable reports whether err, from decoding a snapshot, says the
// snapshot's bytes cannot be used: a revision the codec cannot read, bytes
// it cannot decode, or a panic of the codec.
func unusable(err error) bool {
	return errors.Is(err, binarize.ErrUnknownRevision) || errors.Is(err, binarize.ErrDecode) || isPanic(err)
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
