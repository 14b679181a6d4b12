package entity

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"go.opentelemetry.io/otel/trace"

	"github.com/eventsourced-go/eventsourced/eventlog"
	itel "github.com/eventsourced-go/eventsourced/internal/telemetry"
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
	group    decision[S, E] // the core's verdict on the running group; reused
	snapDone uint64         // Seq of the latest snapshot encoded (saved or not)
	pos      uint64         // Position of the last append
	idem     *idemWindow    // recent idempotency keys; nil until one is recorded
	// async holds the command of the asynchronous append in flight
	// (runAsync); onAppended is in.appended, made once.
	async      [1]pending[S, E]
	onAppended func(pos uint64, err error)
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
		return in.runInline(ctx, p), true, nil
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
// recoverBehind). It returns whether p has been answered; if not, p is
// armed and its answer comes from the asynchronous append (runAsync).
func (in *instance[S, E]) runInline(ctx context.Context, p pending[S, E]) bool {
	isDelete := in.isDelete(p)
	if !in.ready && !isDelete {
		err := in.restore(ctx)
		if cerr := ctx.Err(); cerr != nil {
			if !in.ready {
				in.kind.sys.work.Add(1) // before p is finished: Close waits for p first
				go in.recoverBehind()
				in.finish(p, cerr)
				return true // the entity is the goroutine's now
			}
			err = cerr
		}
		if err != nil {
			in.finish(p, err)
			in.release()
			return true
		}
	}
	if k := in.kind; k.async != nil && !isDelete && k.tel.now.Load() == 0 {
		return in.runAsync(ctx, p)
	}
	var one [1]pending[S, E]
	one[0] = p
	in.process(ctx, p.storeCtx(), one[:])
	in.release()
	return true
}

// runAsync runs p, whose caller owns the ready entity, appending its events
// with the log's AppendAsync: the caller then waits for its answer in Ask,
// not inside the log, and the log's goroutine that settles the append
// answers it and releases the entity (appended). A command without events
// is answered at once. It returns whether p has been answered.
//
// It runs only when nothing is measured: the spans and timings of an
// append belong to the goroutine that waits for it.
func (in *instance[S, E]) runAsync(ctx context.Context, p pending[S, E]) bool {
	k := in.kind
	d := &in.group
	in.async[0] = p
	decide(ctx, &k.def, in.id, in.state, in.seq, in.async[:], d, idemView{k.cfg.idem, in.idem})
	if len(d.events) == 0 {
		in.settle(in.async[:], nil)
		in.async[0] = nil
		in.release()
		return true
	}
	if in.onAppended == nil {
		in.onAppended = in.appended
	}
	if k.round != nil {
		// appended records p's answer without waking its caller, who
		// waits on the round's channel: one close wakes a round's callers.
		// p is its caller's: setting its channel after appended answered
		// it is no race.
		ch := k.round.AppendRound(k.deadlines.ctx(), k.def.Name, in.id, in.seq, d.events, in.onAppended)
		// The entity may be someone else's already: touch nothing of it.
		p.waitOn(ch)
		return false
	}
	p.arm() // before the append: appended may run before AppendAsync returns
	k.async.AppendAsync(k.deadlines.ctx(), k.def.Name, in.id, in.seq, d.events, in.onAppended)
	// The entity may be someone else's already: touch nothing of it.
	return false
}

// appended settles the asynchronous append of runAsync, on the log's
// goroutine: it applies the group's state, releases the entity (to its
// actor if commands queued up meanwhile) and then answers the command, so
// that a caller who sends its next command as soon as it has the answer
// finds the entity idle.
func (in *instance[S, E]) appended(pos uint64, err error) {
	d := &in.group
	var appendErr error
	if err != nil {
		appendErr = &PersistError{EntityType: in.kind.def.Name, EntityID: in.id, FirstSeq: in.seq + 1, Err: err}
		in.ready = false
	} else {
		in.pos = pos
		in.state, in.seq = d.state, d.seq
		if in.kind.cfg.idem != nil {
			in.recordKeys(d.keys.recorded, pos)
		}
		in.maybeSnapshot()
	}
	if d.recover {
		in.ready = false
	}
	clearEach(d.events)
	// What answering needs, taken before the entity is someone else's.
	p, o, flight := in.async[0], d.outcomes[0], in.flight
	in.async[0] = nil
	in.release()
	switch {
	case o.skipped:
		flight.Add(-1) // its caller is gone: nobody to answer
	case appendErr != nil && !o.own:
		p.deliver(appendErr)
		flight.Add(-1)
	default:
		if o.persisted && appendErr == nil {
			p.setPosition(pos)
		}
		p.deliver(o.err)
		flight.Add(-1)
	}
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
		n := len(batch)
		if in.kind.deletes.Load() {
			// A Delete runs alone, in its turn; the commands before it
			// run against the state before it.
			if r, dc := asDelete(batch[0]); dc != nil {
				in.runDelete(ctx, r, dc)
				batch = batch[1:]
				continue
			}
			n = untilDelete(batch)
		}
		if !in.ready {
			if err := in.restore(ctx); err != nil {
				for _, p := range batch[:n] {
					in.finish(p, err)
				}
				batch = batch[n:]
				continue
			}
		}
		batch = batch[in.runGroup(ctx, sctx, batch[:n]):]
		sctx = nil
	}
}

// isDelete reports whether p is a Delete, which needs no recovery first.
func (in *instance[S, E]) isDelete(p pending[S, E]) bool {
	if !in.kind.deletes.Load() {
		return false
	}
	_, dc := asDelete(p)
	return dc != nil
}

// runGroup runs the core (decide) on commands from the front of batch,
// appends all their events at once, then answers them. It returns how many
// commands it consumed: the core stops after a command whose failure may
// have left the state modified, and the entity recovers before the rest.
// sctx is as for process.
func (in *instance[S, E]) runGroup(ctx context.Context, sctx *storeCtx, batch []pending[S, E]) int {
	k := in.kind
	d := &in.group
	consumed := decide(ctx, &k.def, in.id, in.state, in.seq, batch, d, idemView{k.cfg.idem, in.idem})
	var appendErr error
	if len(d.events) > 0 {
		if appendErr = in.appendGroup(ctx, sctx, batch[:consumed]); appendErr != nil {
			in.ready = false
			// The log may still be using the events' Data (an append
			// that timed out may yet be sent): never reuse it.
			d.data = nil
		} else {
			in.state, in.seq = d.state, d.seq
			if k.cfg.idem != nil {
				in.recordKeys(d.keys.recorded, in.pos)
			}
			in.maybeSnapshot()
		}
	}
	in.settle(batch, appendErr)
	return consumed
}

// settle answers the commands of batch the core decided on in.group, given
// the outcome of their append (nil if it succeeded or there was none).
func (in *instance[S, E]) settle(batch []pending[S, E], appendErr error) {
	d := &in.group
	if d.recover {
		in.ready = false
	}
	clearEach(d.events)
	for i, o := range d.outcomes {
		switch {
		case o.skipped:
			in.flight.Add(-1) // its caller is gone: nobody to answer
		case appendErr != nil && !o.own:
			in.finish(batch[i], appendErr)
		case o.answer != 0:
			in.finish(batch[i], in.answerRecorded(batch[i], &d.keys.answers[o.answer-1], in.pos))
		default:
			if o.persisted && appendErr == nil {
				batch[i].setPosition(in.pos)
			}
			in.finish(batch[i], o.err)
		}
	}
}

// appendGroup appends the events of the group the core decided for cmds,
// measuring it: one span per append, a child of the caller's span when the
// command runs on its caller's goroutine, else a root linked to the spans
// of the commands it carries (it is theirs alike, and a child of one would
// be a false parentage).
func (in *instance[S, E]) appendGroup(ctx context.Context, sctx *storeCtx, cmds []pending[S, E]) error {
	t := &in.kind.tel
	s := t.sys
	d := &in.group
	f := flags(t.now.Load())
	if f == 0 {
		return in.persist(ctx, sctx, d.events)
	}
	commands := 0
	for _, o := range d.outcomes {
		if !o.skipped && o.err == nil {
			commands++
		}
	}
	var span trace.Span
	if f&traced != 0 {
		opts := []trace.SpanStartOption{trace.WithAttributes(t.typeName, itel.EntityID.String(in.id),
			itel.Seq.Int64(int64(in.seq+1)), itel.Events.Int(len(d.events)), itel.Commands.Int(commands))}
		if len(cmds) > 1 || !trace.SpanContextFromContext(ctx).IsValid() {
			opts = append(opts, trace.WithNewRoot())
			for _, c := range cmds {
				if sp := c.traceSpan(); sp != nil {
					opts = append(opts, trace.WithLinks(trace.Link{SpanContext: sp.SpanContext()}))
				}
			}
		}
		ctx, span = s.tracing.Tracer().Start(ctx, "append "+in.kind.def.Name, opts...)
	}
	var start time.Time
	timed := span != nil || (f&metered != 0 && s.appendTime.Enabled(ctx))
	if timed {
		start = time.Now()
	}
	err := in.persist(ctx, sctx, d.events)
	if f&metered != 0 {
		attrs := &t.ok
		if err != nil {
			attrs = &t.failed
			if errors.Is(err, eventlog.ErrConflict) {
				attrs = &t.byOutcome[outcomeConflict]
			} else if errors.Is(err, eventlog.ErrDeleted) {
				attrs = &t.byOutcome[outcomeDeleted]
			}
		}
		if timed {
			s.appendTime.Record(ctx, time.Since(start).Seconds(), attrs.Record...)
		}
		s.appendCommands.Record(ctx, int64(commands), t.byType.Record...)
		s.appendEvents.Record(ctx, int64(len(d.events)), t.byType.Record...)
	}
	itel.EndSpan(span, err)
	return err
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
	pos, err := k.sys.eventLog.Append(ctx, k.def.Name, in.id, in.seq, events...)
	if err != nil {
		return &PersistError{EntityType: k.def.Name, EntityID: in.id, FirstSeq: in.seq + 1, Err: err}
	}
	in.pos = pos
	return nil
}
