package entity

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/eventsourced-go/eventsourced/eventlog"
	"github.com/eventsourced-go/eventsourced/snapshotstore"
)

// DeleteOption configures a [Kind.Delete].
type DeleteOption func(*deleteCommand)

// AllowReuse keeps the id usable after [Kind.Delete]: the next command
// finds the entity in its initial state and persists from the Seq after
// the deleted ones, never from Seq 1 again, so readers that remember the
// old events (projections) can tell. It needs a System with a snapshot
// store and a State codec: the runtime records where the entity starts
// again as a snapshot of the initial state at the tombstone's Seq.
func AllowReuse() DeleteOption {
	return func(c *deleteCommand) { c.reuse = true }
}

// Delete deletes the entity id as a whole: its events, leaving a tombstone
// at their last Seq (the log must implement eventlog.StreamDeleter), and
// its snapshots. It returns that Seq. It runs in turn with the entity's
// commands: those accepted before it run first, those after it find the
// entity deleted. Without [AllowReuse] the tombstone is final: every later
// command fails with a [*RecoveryError] that matches eventlog.ErrDeleted
// and names the type, id and Seq, in every process sharing the log, and
// the id can never be used again. Readers of the log (ReadType,
// Subscribe, EntityIDs) skip the deleted events from then on.
//
// Deleting again is not an error. If Delete fails after the events were
// deleted (the snapshot store failed), call it again: it is idempotent.
// Commands of the entity that another process runs at the same time are
// not stopped by it; with a final tombstone they fail at their next append
// and the entity then recovers to the error above. With AllowReuse such a
// process could still append to the old state, so in a cluster call Delete
// on the member that owns the entity (or stop the entity there first).
func (k *Kind[S, E]) Delete(ctx context.Context, id string, opts ...DeleteOption) (uint64, error) {
	dc := &deleteCommand{}
	for _, o := range opts {
		if o != nil {
			o(dc)
		}
	}
	if _, ok := k.sys.eventLog.(eventlog.StreamDeleter); !ok {
		return 0, fmt.Errorf("%w: Delete %s/%s: the log (%T) cannot delete streams (eventlog.StreamDeleter)", ErrInvalid, eventlog.FormatID(k.def.Name), eventlog.FormatID(id), k.sys.eventLog)
	}
	if dc.reuse && (k.sys.snapshots == nil || k.def.State == nil) {
		return 0, fmt.Errorf("%w: Delete %s/%s with AllowReuse needs a System WithSnapshotStore and a State codec", ErrInvalid, eventlog.FormatID(k.def.Name), eventlog.FormatID(id))
	}
	k.deletes.Store(true)
	// A Delete is not a command: it carries neither metadata nor a key.
	seq, _, err := ask(ctx, k.Ref(id), Command[S, E, uint64](deleteRun[S, E]{dc}), nil, nil)
	return seq, err
}

// deleteCommand is what a Delete asks for.
type deleteCommand struct{ reuse bool }

// deleteRun is the command of a Delete: the entity's owner recognises it
// and deletes the entity instead of running a handler.
type deleteRun[S, E any] struct{ *deleteCommand }

// Handle implements Command; it never runs.
func (deleteRun[S, E]) Handle(*Tx[S, E]) (uint64, error) {
	return 0, errors.New("entity: a delete is not run as a handler")
}

// asDelete returns p as a Delete's request, nil if it is a command.
func asDelete[S, E any](p pending[S, E]) (*request[S, E, uint64], *deleteCommand) {
	r, ok := p.(*request[S, E, uint64])
	if !ok {
		return nil, nil
	}
	d, ok := r.cmd.(deleteRun[S, E])
	if !ok {
		return nil, nil
	}
	return r, d.deleteCommand
}

// untilDelete returns how many commands of batch come before the first
// Delete.
func untilDelete[S, E any](batch []pending[S, E]) int {
	for i, p := range batch {
		if _, d := asDelete(p); d != nil {
			return i
		}
	}
	return len(batch)
}

// runDelete runs the Delete r, as the entity's owner.
func (in *instance[S, E]) runDelete(ctx context.Context, r *request[S, E, uint64], dc *deleteCommand) {
	if !r.start() {
		in.flight.Add(-1) // its caller is gone: nobody to answer
		return
	}
	seq, err := in.deleteNow(ctx, dc.reuse)
	r.reply = seq
	in.finish(r, err)
}

// deleteNow deletes the entity's events and snapshots. Whatever happens,
// the entity drops its state: its next command recovers from the log.
func (in *instance[S, E]) deleteNow(parent context.Context, reuse bool) (uint64, error) {
	k := in.kind
	typ := k.def.Name
	ctx, cancel := context.WithTimeout(parent, k.cfg.timeout)
	defer cancel()
	var zero S
	in.ready, in.state, in.seq, in.snapDone, in.idem = false, zero, 0, 0, nil
	in.snapSeq.Store(0)
	fail := func(what string, err error) error {
		return fmt.Errorf("entity: delete %s/%s: %s: %w", eventlog.FormatID(typ), eventlog.FormatID(in.id), what, err)
	}
	// No snapshot of the old state may be saved after the snapshots are
	// deleted: it would bring the state back.
	if err := in.dropSnapshots(ctx); err != nil {
		return 0, fail("wait for a snapshot being saved", err)
	}
	seq, err := k.sys.eventLog.(eventlog.StreamDeleter).DeleteStream(ctx, typ, in.id, reuse)
	if err != nil {
		return 0, fail("delete events", err)
	}
	if snaps := k.sys.snapshots; snaps != nil {
		if err := snaps.Delete(ctx, typ, in.id); err != nil {
			return seq, fail(fmt.Sprintf("events deleted at seq %d, snapshots not (call Delete again)", seq), err)
		}
		if reuse && seq > 0 {
			// Where the entity starts again: recovery reads no events up
			// to seq, so it needs to be told the Seq it is at.
			data, err := k.def.State.Encode(k.def.initial())
			if err == nil {
				err = snaps.Save(ctx, snapshotstore.Snapshot{EntityType: typ, EntityID: in.id, Seq: seq, Revision: k.def.stateRevision(), Data: data}, k.cfg.keepSnapshots)
			}
			if err != nil {
				return seq, fail(fmt.Sprintf("events deleted at seq %d for reuse, initial snapshot not saved (call Delete again)", seq), err)
			}
		}
	}
	return seq, nil
}

// dropSnapshots discards the snapshot waiting to be saved and waits for
// the one being saved, if any.
func (in *instance[S, E]) dropSnapshots(ctx context.Context) error {
	for {
		in.snapMu.Lock()
		in.snapNext = nil
		saving := in.snapping
		in.snapMu.Unlock()
		if !saving {
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(time.Millisecond):
		}
	}
}
