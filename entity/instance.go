package entity

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"runtime/debug"
	"sync"
	"sync/atomic"

	"github.com/asynkron/protoactor-go/actor"

	"github.com/eventsourced-go/eventsourced/eventlog"
	"github.com/eventsourced-go/eventsourced/snapshotstore"
)

// wake tells an entity actor that its queue has commands. The queue lives in
// the instance, not in the actor's mailbox, so the actor can take every
// waiting command at once and persist them in one append.
type wake struct{}

var wakeMsg = &wake{}

// instance is one live entity: its state, its command queue and, while
// commands queue up behind one another, a protoactor-go actor that drains
// the queue.
//
// Whoever sets busy owns the entity: it alone runs commands and touches the
// fields below "Owned by the busy holder". A command that finds the entity
// idle (not busy, nothing queued) runs at once on the caller's goroutine:
// no hand-off to another goroutine and back, which is most of the cost of a
// command against a fast log. A command that finds it busy waits in the
// queue; when the owner is done it hands a non-empty queue to the entity's
// actor (spawned on first need), which takes every waiting command as one
// batch. So an entity that is never contended never needs an actor, and a
// contended one gets command batching. Invariant: the queue is empty unless
// busy is set.
type instance[S, E any] struct {
	kind   *Kind[S, E]
	id     string
	flight *atomic.Int64 // the System's in-flight counter for this id

	mu      sync.Mutex // guards queue, spare, busy, stopped and pid
	queue   []pending[S, E]
	spare   []pending[S, E] // the other queue buffer, swapped in by drain
	busy    bool            // a caller or the actor is running commands
	stopped bool            // passivated or retired: takes no more commands
	pid     *actor.PID      // the draining actor; nil until first needed

	lastUsed  atomic.Int64  // housekeeping tick of the last accepted command
	actorUsed atomic.Int64  // housekeeping tick of the last hand-off to the actor
	snapSeq   atomic.Uint64 // Seq of the latest saved snapshot
	snapRetry atomic.Bool   // a save failed: encode again after the next persist

	snapMu   sync.Mutex              // guards snapNext and snapping
	snapNext *snapshotstore.Snapshot // encoded, waiting for the saver
	snapping bool                    // a saver goroutine is running

	// Owned by the busy holder.
	ready    bool
	state    S
	seq      uint64
	outcomes []outcome[S, E]
	events   []eventlog.Event
	evBuf    []E
	snapDone uint64 // Seq of the latest snapshot encoded (saved or not)
}

func newInstance[S, E any](k *Kind[S, E], id string) *instance[S, E] {
	in := &instance[S, E]{kind: k, id: id, flight: k.sys.flightOf(id)}
	in.lastUsed.Store(k.clock.Load())
	return in
}

// touch records a use for passivation.
func (in *instance[S, E]) touch() {
	if in.kind.cfg.passivateAfter > 0 {
		in.lastUsed.Store(in.kind.clock.Load())
	}
}

// submit runs p at once if the entity is idle (ran true: p has been
// delivered), or queues it for the current owner. accepted is false without
// an error when the instance no longer takes commands.
func (in *instance[S, E]) submit(ctx context.Context, p pending[S, E]) (ran, accepted bool, err error) {
	in.mu.Lock()
	if in.stopped {
		in.mu.Unlock()
		return false, false, nil
	}
	if !in.busy {
		in.busy = true
		in.mu.Unlock()
		in.touch()
		in.runInline(ctx, p)
		return true, true, nil
	}
	if n := len(in.queue); n >= in.kind.cfg.mailbox {
		in.mu.Unlock()
		return false, false, fmt.Errorf("%w: %s/%s has %d commands waiting", ErrMailboxFull, eventlog.FormatID(in.kind.def.Name), eventlog.FormatID(in.id), n)
	}
	p.arm()
	in.queue = append(in.queue, p)
	in.mu.Unlock()
	in.touch()
	return false, true, nil
}

// runInline runs p, whose caller owns the entity, then releases it. The
// caller's ctx bounds everything, a recovery included: if it ends first, p
// never runs, and a recovery it cut short goes on in the background (see
// recoverBehind).
func (in *instance[S, E]) runInline(ctx context.Context, p pending[S, E]) {
	if !in.ready {
		err := in.recover(ctx)
		if cerr := ctx.Err(); cerr != nil {
			if !in.ready {
				in.kind.sys.work.Add(1) // before p is finished: Close waits for p first
				go in.recoverBehind()
				in.finish(p, cerr)
				return // the entity is the goroutine's now
			}
			err = cerr
		}
		if err != nil {
			in.finish(p, err)
			in.release()
			return
		}
	}
	var one [1]pending[S, E]
	one[0] = p
	in.process(ctx, p.storeCtx(), one[:])
	in.release()
}

// recoverBehind recovers the entity, whose ownership it took over from a
// caller that gave up during its recovery, then releases it: the commands
// that queued up meanwhile, or come next, find the work done, or as far as
// the store timeout let it go. A failure is not reported here; the next
// command recovers again and gets it.
func (in *instance[S, E]) recoverBehind() {
	defer in.kind.sys.work.Done()
	_ = in.recover(in.kind.sys.bgCtx)
	in.release()
}

// release gives up ownership, or hands it to the actor if commands queued
// up meanwhile: the releasing caller's own reply is not held up by them.
func (in *instance[S, E]) release() {
	in.mu.Lock()
	if len(in.queue) == 0 || in.stopped {
		in.busy = false
		in.mu.Unlock()
		return
	}
	k := in.kind
	in.actorUsed.Store(k.clock.Load())
	pid := in.pid
	if pid == nil {
		k.sys.running.Add(1)
		pid = k.sys.actors.Root.Spawn(actor.PropsFromProducer(func() actor.Actor { return in }))
		in.pid = pid
		k.actors.LoadOrStore(in.id, in)
	}
	in.mu.Unlock()
	k.sys.actors.Root.Send(pid, wakeMsg)
}

// stopActor stops the entity's actor, if it has one. The caller has set
// stopped.
func (in *instance[S, E]) stopActor() {
	in.mu.Lock()
	pid := in.pid
	in.pid = nil
	in.mu.Unlock()
	in.kind.actors.CompareAndDelete(in.id, in)
	if pid != nil {
		in.kind.sys.actors.Root.Stop(pid)
	}
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

// drain handles queued commands, a batch at a time, until the queue is
// empty, then releases the entity. It runs on the actor, which owns the
// entity from the wake on.
func (in *instance[S, E]) drain() {
	maxBatch := in.kind.cfg.maxBatch
	ctx := in.kind.sys.bgCtx
	for {
		in.mu.Lock()
		n := min(len(in.queue), maxBatch)
		if n == 0 {
			in.busy = false
			in.mu.Unlock()
			return
		}
		var batch []pending[S, E]
		if n == len(in.queue) {
			// Take the whole queue and give the callers the other buffer.
			batch = in.queue
			in.queue, in.spare = in.spare[:0], nil
		} else {
			batch = append(in.spare[:0], in.queue[:n]...)
			in.spare = nil
			clear(in.queue[:n])
			in.queue = in.queue[n:]
		}
		in.mu.Unlock()
		in.process(ctx, nil, batch)
		clear(batch)
		in.mu.Lock()
		if in.spare == nil && cap(batch) <= 4*maxBatch {
			in.spare = batch[:0]
		}
		in.mu.Unlock()
	}
}

// finish delivers the outcome of an accepted command.
func (in *instance[S, E]) finish(p pending[S, E], err error) {
	p.deliver(err)
	in.flight.Add(-1)
}

// process handles a batch of commands in order. ctx bounds the appends and
// recoveries on behalf of an inline caller; the actor passes the System's
// bgCtx, which ends only at Close.
// sctx, if not nil, is unused room for the context of the first append.
func (in *instance[S, E]) process(ctx context.Context, sctx *storeCtx, batch []pending[S, E]) {
	for len(batch) > 0 {
		if !in.ready {
			if err := in.recover(ctx); err != nil {
				for _, p := range batch {
					in.finish(p, err)
				}
				return
			}
		}
		batch = batch[in.runGroup(ctx, sctx, batch):]
		sctx = nil
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
// returns how many commands it consumed. sctx is as for process.
func (in *instance[S, E]) runGroup(ctx context.Context, sctx *storeCtx, batch []pending[S, E]) int {
	k := in.kind
	def := &k.def
	state, seq := in.state, in.seq
	events := in.events[:0]
	outcomes := in.outcomes[:0]
	dirty := false
	consumed := 0
	for _, p := range batch {
		consumed++
		if !p.start() {
			// The caller gave up before the command started; it never runs.
			in.flight.Add(-1)
			continue
		}
		// The Tx comes from a pool: a command's handler gets a pointer
		// through an interface, which would move a local Tx to the heap,
		// and a Tx in every instance would cost idle entities memory.
		tx := k.txPool.Get().(*Tx[S, E])
		*tx = Tx[S, E]{def: def, id: in.id, state: state, seq: seq, meta: p.metadata(), events: in.evBuf[:0]}
		err := in.run(p, tx)
		switch {
		case err == nil:
			mark := len(events)
			events, err = in.encode(events, tx.events, seq, tx.meta)
			if err != nil {
				events = events[:mark]
				dirty = true
			} else {
				state, seq = tx.state, tx.seq
			}
		case isPanic(err):
			dirty = true
		default:
			dirty = len(tx.events) > 0
		}
		clear(tx.events)
		if cap(tx.events) <= 64 {
			in.evBuf = tx.events[:0]
		}
		*tx = Tx[S, E]{}
		k.txPool.Put(tx)
		outcomes = append(outcomes, outcome[S, E]{p: p, err: err, own: dirty})
		if dirty {
			break
		}
	}
	if len(events) > 0 {
		if err := in.persist(ctx, sctx, events); err != nil {
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
	clear(events)
	in.events = events[:0]
	for _, o := range outcomes {
		in.finish(o.p, o.err)
	}
	clear(outcomes)
	in.outcomes = outcomes[:0]
	return consumed
}

// isPanic reports whether err is a *PanicError. It is a function of its own
// so that the target variable of errors.As is allocated only when a
// command failed.
func isPanic(err error) bool {
	var pe *PanicError
	return errors.As(err, &pe)
}

// run runs p's handler, turning a panic into a *PanicError.
func (in *instance[S, E]) run(p pending[S, E], tx *Tx[S, E]) (err error) {
	defer func() {
		if v := recover(); v != nil {
			err = &PanicError{EntityType: in.kind.def.Name, EntityID: in.id, Value: v, Stack: debug.Stack()}
		}
	}()
	return p.run(tx)
}

// encode appends the log form of evs, which follow Seq seq, to out.
func (in *instance[S, E]) encode(out []eventlog.Event, evs []E, seq uint64, meta map[string]string) ([]eventlog.Event, error) {
	for i, e := range evs {
		ev, err := in.encodeOne(e)
		if err != nil {
			return out, fmt.Errorf("entity: encode event %T of %s/%s at seq %d: %w", e, eventlog.FormatID(in.kind.def.Name), eventlog.FormatID(in.id), seq+uint64(i)+1, err)
		}
		ev.Metadata = meta
		out = append(out, ev)
	}
	return out, nil
}

// encodeOne encodes e, turning a panic of the codec into a *PanicError.
func (in *instance[S, E]) encodeOne(e E) (ev eventlog.Event, err error) {
	defer func() {
		if v := recover(); v != nil {
			err = &PanicError{EntityType: in.kind.def.Name, EntityID: in.id, Value: v, Stack: debug.Stack()}
		}
	}()
	ev.Name, ev.Revision, ev.Data, err = in.kind.def.Events.Encode(e)
	return ev, err
}

// persist appends events. ctx, if not nil, is unused room for the store
// context; else one is allocated.
func (in *instance[S, E]) persist(parent context.Context, ctx *storeCtx, events []eventlog.Event) error {
	k := in.kind
	if ctx == nil {
		ctx = new(storeCtx)
	}
	ctx.parent, ctx.timeout = parent, k.cfg.timeout
	defer ctx.release()
	if _, err := k.sys.log.Append(ctx, k.def.Name, in.id, in.seq, events...); err != nil {
		return &PersistError{EntityType: k.def.Name, EntityID: in.id, FirstSeq: in.seq + 1, Err: err}
	}
	return nil
}

// recover rebuilds the state from the latest snapshot and the events after
// it, under parent and the store timeout. A gap right after the snapshot can
// be a race with the deletion of events a newer snapshot covers; then it
// loads again.
func (in *instance[S, E]) recover(parent context.Context) error {
	k := in.kind
	ctx := newStoreCtx(parent, k.cfg.timeout)
	defer ctx.release()
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
			in.snapDone = r.snapSeq
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

// maybeSnapshot takes a snapshot every snapshotEvery events. The state is
// encoded here, by the entity's owner, and saved in the background by one
// saver goroutine at a time. A snapshot is never skipped because an earlier
// one is still being saved: the saver takes the latest encoded one next, so
// recovery never has more than snapshotEvery events to replay after the
// latest snapshot (plus what one batch overshoots). A failure is logged and
// retried after the next persist.
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
	def := &k.def
	var data []byte
	err := guard(def.Name, in.id, func() error {
		var err error
		data, err = def.State.Encode(in.state)
		return err
	})
	if err != nil {
		k.sys.logger.Error("entity: encode snapshot", slog.String("type", def.Name), slog.String("id", in.id), slog.Uint64("seq", in.seq), slog.Any("error", err))
		return
	}
	in.snapDone = in.seq
	snap := &snapshotstore.Snapshot{EntityType: def.Name, EntityID: in.id, Seq: in.seq, Data: data}
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
func (in *instance[S, E]) saveSnapshot(snap snapshotstore.Snapshot) bool {
	k := in.kind
	ctx, cancel := context.WithTimeout(k.sys.bgCtx, k.cfg.timeout)
	defer cancel()
	log := k.sys.logger.With(slog.String("type", snap.EntityType), slog.String("id", snap.EntityID), slog.Uint64("seq", snap.Seq))
	if err := k.sys.snapshots.Save(ctx, snap, k.cfg.keepSnapshots); err != nil {
		if k.sys.bgCtx.Err() != nil {
			// Close canceled it: the events are the truth, nothing is lost.
			log.Info("entity: snapshot not saved: the system closed", slog.Any("error", err))
			return false
		}
		log.Error("entity: save snapshot", slog.Any("error", err))
		return false
	}
	in.snapSeq.Store(snap.Seq)
	if k.cfg.deleteEvents {
		if err := k.sys.log.(eventlog.Deleter).DeleteTo(ctx, snap.EntityType, snap.EntityID, snap.Seq); err != nil {
			log.Error("entity: delete events covered by snapshot", slog.Any("error", err))
		}
	}
	return true
}
