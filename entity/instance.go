package entity

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/asynkron/protoactor-go/actor"

	"github.com/eventsourced-go/eventsourced/eventlog"
	"github.com/eventsourced-go/eventsourced/snapshotstore"
)

// wake tells an entity actor that its queue has commands. The queue lives in
// the instance, not in the actor's mailbox, so the actor can take every
// waiting command at once and persist them in one append.
type wake struct{}

var wakeMsg = &wake{}

// instance is one live entity: a protoactor-go actor plus its command queue.
type instance[S, E any] struct {
	kind *Kind[S, E]
	id   string
	pid  *actor.PID

	mu        sync.Mutex // guards queue, scheduled and stopped
	queue     []pending[S, E]
	scheduled bool // a wake is on its way or the actor is draining
	stopped   bool // passivated or retired: takes no more commands

	lastUsed atomic.Int64 // unix nanoseconds of the last accepted command
	snapSeq  atomic.Uint64
	snapping atomic.Bool

	// Owned by the actor: only the goroutine running Receive touches these.
	ready bool
	state S
	seq   uint64
}

func newInstance[S, E any](k *Kind[S, E], id string) *instance[S, E] {
	in := &instance[S, E]{kind: k, id: id}
	in.lastUsed.Store(time.Now().UnixNano())
	return in
}

// enqueue adds p to the queue. It returns false without an error when the
// instance no longer takes commands.
func (in *instance[S, E]) enqueue(p pending[S, E]) (bool, error) {
	in.mu.Lock()
	if in.stopped {
		in.mu.Unlock()
		return false, nil
	}
	if n := len(in.queue); n >= in.kind.cfg.mailbox {
		in.mu.Unlock()
		return false, fmt.Errorf("%w: %s/%s has %d commands waiting", ErrMailboxFull, in.kind.def.Name, in.id, n)
	}
	in.queue = append(in.queue, p)
	wakeUp := !in.scheduled
	in.scheduled = true
	in.mu.Unlock()
	in.lastUsed.Store(time.Now().UnixNano())
	if wakeUp {
		in.kind.sys.actors.Root.Send(in.pid, wakeMsg)
	}
	return true, nil
}

// Receive implements actor.Actor.
func (in *instance[S, E]) Receive(c actor.Context) {
	switch c.Message().(type) {
	case *wake:
		in.drain()
	case *actor.Stopped:
		in.kind.sys.running.Add(-1)
	}
}

// drain handles queued commands, a batch at a time, until the queue is empty.
func (in *instance[S, E]) drain() {
	maxBatch := in.kind.cfg.maxBatch
	var batch []pending[S, E]
	for {
		in.mu.Lock()
		n := min(len(in.queue), maxBatch)
		if n == 0 {
			in.scheduled = false
			in.mu.Unlock()
			return
		}
		batch = append(batch[:0], in.queue[:n]...)
		clear(in.queue[:n])
		in.queue = in.queue[n:]
		if len(in.queue) == 0 {
			in.queue = nil
		}
		in.mu.Unlock()
		in.process(batch)
		clear(batch)
	}
}

// finish delivers the outcome of an accepted command.
func (in *instance[S, E]) finish(p pending[S, E], err error) {
	p.deliver(err)
	in.kind.sys.inflight.Add(-1)
}

// process handles a batch of commands in order.
func (in *instance[S, E]) process(batch []pending[S, E]) {
	for len(batch) > 0 {
		if !in.ready {
			if err := in.recover(); err != nil {
				for _, p := range batch {
					in.finish(p, err)
				}
				return
			}
		}
		batch = batch[in.runGroup(batch):]
	}
}

type outcome[S, E any] struct {
	p   pending[S, E]
	err error
	own bool // err is the command's own failure, kept even if the append fails
}

// runGroup handles commands from the front of batch against the in-memory
// state, appends all their events at once, then answers them. It stops early
// after a command whose failure may have left the state modified (a panic, or
// an error after Persist); the entity then recovers before the rest. It
// returns how many commands it consumed.
func (in *instance[S, E]) runGroup(batch []pending[S, E]) int {
	k := in.kind
	def := &k.def
	state, seq := in.state, in.seq
	var events []eventlog.Event
	outcomes := make([]outcome[S, E], 0, len(batch))
	dirty := false
	consumed := 0
	for _, p := range batch {
		consumed++
		if !p.start() {
			// The caller gave up before the command started; it never runs.
			k.sys.inflight.Add(-1)
			continue
		}
		tx := Tx[S, E]{def: def, id: in.id, state: state, seq: seq, meta: p.metadata()}
		err := guard(def.Name, in.id, func() error { return p.run(&tx) })
		var pe *PanicError
		switch {
		case errors.As(err, &pe):
			dirty = true
		case err != nil:
			dirty = len(tx.events) > 0
		default:
			mark := len(events)
			events, err = in.encode(events, tx.events, seq, tx.meta)
			if err != nil {
				events = events[:mark]
				dirty = true
			} else {
				state, seq = tx.state, tx.seq
			}
		}
		outcomes = append(outcomes, outcome[S, E]{p: p, err: err, own: dirty})
		if dirty {
			break
		}
	}
	if len(events) > 0 {
		if err := in.persist(events); err != nil {
			in.ready = false
			for i := range outcomes {
				if !outcomes[i].own {
					outcomes[i].err = err
				}
			}
		} else {
			in.state, in.seq = state, seq
			in.maybeSnapshot()
		}
	}
	if dirty {
		in.ready = false
	}
	for _, o := range outcomes {
		in.finish(o.p, o.err)
	}
	return consumed
}

// encode appends the log form of evs, which follow Seq seq, to out.
func (in *instance[S, E]) encode(out []eventlog.Event, evs []E, seq uint64, meta map[string]string) ([]eventlog.Event, error) {
	def := &in.kind.def
	for i, e := range evs {
		var ev eventlog.Event
		err := guard(def.Name, in.id, func() error {
			var err error
			ev.Name, ev.Revision, ev.Data, err = def.Events.Encode(e)
			return err
		})
		if err != nil {
			return out, fmt.Errorf("entity: encode event %T of %s/%s at seq %d: %w", e, def.Name, in.id, seq+uint64(i)+1, err)
		}
		ev.Metadata = meta
		out = append(out, ev)
	}
	return out, nil
}

func (in *instance[S, E]) persist(events []eventlog.Event) error {
	k := in.kind
	ctx, cancel := context.WithTimeout(context.Background(), k.cfg.timeout)
	defer cancel()
	if _, err := k.sys.log.Append(ctx, k.def.Name, in.id, in.seq, events...); err != nil {
		return &PersistError{EntityType: k.def.Name, EntityID: in.id, FirstSeq: in.seq + 1, Err: err}
	}
	return nil
}

// recover rebuilds the state from the latest snapshot and the events after it.
// A gap right after the snapshot can be a race with the deletion of events a
// newer snapshot covers; then it loads again.
func (in *instance[S, E]) recover() error {
	k := in.kind
	ctx, cancel := context.WithTimeout(context.Background(), k.cfg.timeout)
	defer cancel()
	var snaps snapshotstore.Store
	if k.cfg.snapshotEvery > 0 {
		snaps = k.sys.snapshots
	}
	var err error
	for attempt := 0; attempt < 3; attempt++ {
		var r recovered[S]
		r, err = replay(ctx, &k.def, k.sys.log, snaps, in.id)
		if err == nil {
			in.state, in.seq, in.ready = r.state, r.seq, true
			in.snapSeq.Store(r.snapSeq)
			return nil
		}
		if !errors.Is(err, errGap) || !k.cfg.deleteEvents {
			break
		}
	}
	return err
}

var errGap = errors.New("gap in event seq")

type recovered[S any] struct {
	state   S
	seq     uint64
	snapSeq uint64
}

// replay loads the entity (def, id) from snaps (if not nil) and log.
func replay[S, E any](ctx context.Context, def *Type[S, E], log eventlog.Log, snaps snapshotstore.Store, id string) (recovered[S], error) {
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
	for rec, err := range log.ReadEntity(ctx, def.Name, id, r.seq+1) {
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
	}
	return r, nil
}

// maybeSnapshot starts saving a snapshot when enough events have passed since
// the last one. The state is encoded here, on the actor, and saved in the
// background; a failure is retried after the next persist.
func (in *instance[S, E]) maybeSnapshot() {
	k := in.kind
	every := k.cfg.snapshotEvery
	if every == 0 || in.seq-in.snapSeq.Load() < every || !in.snapping.CompareAndSwap(false, true) {
		return
	}
	def := &k.def
	var data []byte
	err := guard(def.Name, in.id, func() error {
		var err error
		data, err = def.State.Encode(in.state)
		return err
	})
	if err != nil {
		in.snapping.Store(false)
		k.sys.logger.Error("entity: encode snapshot", slog.String("type", def.Name), slog.String("id", in.id), slog.Uint64("seq", in.seq), slog.Any("error", err))
		return
	}
	snap := snapshotstore.Snapshot{EntityType: def.Name, EntityID: in.id, Seq: in.seq, Data: data}
	k.sys.bg.Add(1)
	go func() {
		defer k.sys.bg.Done()
		defer in.snapping.Store(false)
		in.saveSnapshot(snap)
	}()
}

func (in *instance[S, E]) saveSnapshot(snap snapshotstore.Snapshot) {
	k := in.kind
	ctx, cancel := context.WithTimeout(context.Background(), k.cfg.timeout)
	defer cancel()
	log := k.sys.logger.With(slog.String("type", snap.EntityType), slog.String("id", snap.EntityID), slog.Uint64("seq", snap.Seq))
	if err := k.sys.snapshots.Save(ctx, snap, k.cfg.keepSnapshots); err != nil {
		log.Error("entity: save snapshot", slog.Any("error", err))
		return
	}
	in.snapSeq.Store(snap.Seq)
	if k.cfg.deleteEvents {
		if err := k.sys.log.(eventlog.Deleter).DeleteTo(ctx, snap.EntityType, snap.EntityID, snap.Seq); err != nil {
			log.Error("entity: delete events covered by snapshot", slog.Any("error", err))
		}
	}
}
