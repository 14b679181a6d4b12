package entity

import (
	"context"
	"fmt"
	"iter"
	"sync/atomic"
	"time"

	"go.opentelemetry.io/otel/metric"

	"github.com/eventsourced-go/eventsourced/eventlog"
)

// Kind is a registered entity type: it activates one actor per entity id on
// demand and hands out [Ref]s. Create it with [Register].
type Kind[S, E any] struct {
	sys *System
	def Type[S, E]
	cfg kindConfig

	live liveMap[*instance[S, E]]
	// actors holds the live instances that have an actor.
	actors liveMap[*instance[S, E]]
	count  atomic.Int64
	// requests recycles the requests of Ask, see request.
	requests requestPools
	// clock counts housekeeping ticks (see housekeep); an instance records
	// the tick of its last use instead of reading the time.
	clock atomic.Int64
	tel   kindTelemetry
	// deletes is set by the first Delete: from then on the entities look
	// for Deletes among their commands.
	deletes atomic.Bool
	// async is the log's AppendAsync, nil if it has none; deadlines bound
	// its appends.
	async     eventlog.AsyncAppender
	deadlines *coarseDeadlines
	// round is the log's AppendRound, nil if it has none: an inline
	// caller then waits on its round's channel (see runAsync).
	round eventlog.RoundAppender
}

// Register adds entity type def to sys and returns its Kind. It fails if the
// definition or an option is invalid, or the name is taken.
func Register[S, E any](sys *System, def Type[S, E], opts ...KindOption) (*Kind[S, E], error) {
	if sys == nil {
		return nil, fmt.Errorf("%w: Register with a nil System", ErrInvalid)
	}
	if err := def.validate(); err != nil {
		return nil, err
	}
	cfg := kindConfig{keepSnapshots: 2, mailbox: 4096, maxBatch: 256, timeout: DefaultStoreTimeout}
	for _, opt := range opts {
		if err := opt(&cfg); err != nil {
			return nil, fmt.Errorf("entity type %q: %w", def.Name, err)
		}
	}
	if cfg.snapshotEvery > 0 {
		if sys.snapshots == nil {
			return nil, fmt.Errorf("%w: entity type %q: WithSnapshotEvery needs a System WithSnapshotStore", ErrInvalid, def.Name)
		}
		if def.State == nil {
			return nil, fmt.Errorf("%w: entity type %q: WithSnapshotEvery needs a State codec", ErrInvalid, def.Name)
		}
	}
	if cfg.deleteEvents {
		if cfg.snapshotEvery == 0 {
			return nil, fmt.Errorf("%w: entity type %q: WithDeleteEventsOnSnapshot needs WithSnapshotEvery", ErrInvalid, def.Name)
		}
		if _, ok := sys.eventLog.(eventlog.Deleter); !ok {
			return nil, fmt.Errorf("%w: entity type %q: WithDeleteEventsOnSnapshot: the log (%T) cannot delete events", ErrInvalid, def.Name, sys.eventLog)
		}
	}
	if cfg.idem != nil && cfg.idem.window == 0 {
		return nil, fmt.Errorf("%w: entity type %q: WithReplyCodec needs WithIdempotency or WithIdempotencyWindow", ErrInvalid, def.Name)
	}
	k := &Kind[S, E]{sys: sys, def: def, cfg: cfg}
	if a, ok := sys.eventLog.(eventlog.AsyncAppender); ok && !cfg.syncAppends {
		// The appends of commands run for their callers are not canceled by
		// Close, which waits for them (see System.Close), as for Append.
		k.async, k.deadlines = a, newCoarseDeadlines(context.Background(), cfg.timeout)
		k.round, _ = a.(eventlog.RoundAppender)
	}
	k.def.resolve()
	k.tel.init(&sys.tel, def.Name)
	k.live.init()
	k.actors.init()

	sys.mu.Lock()
	defer sys.mu.Unlock()
	if sys.closed.Load() {
		return nil, ErrClosed
	}
	if _, dup := sys.kinds[def.Name]; dup {
		return nil, fmt.Errorf("%w: entity type %q is already registered", ErrInvalid, def.Name)
	}
	sys.kinds[def.Name] = k
	sys.bg.Add(1)
	go k.housekeep()
	return k, nil
}

// Name returns the entity type name.
func (k *Kind[S, E]) Name() string { return k.def.Name }

// Type returns the entity type definition.
func (k *Kind[S, E]) Type() *Type[S, E] { return &k.def }

// Ref returns a reference to the entity id. It is cheap and does not activate
// the entity: the first command does.
func (k *Kind[S, E]) Ref(id string) Ref[S, E] { return Ref[S, E]{kind: k, id: id} }

// Live returns how many entities of this kind are active.
func (k *Kind[S, E]) Live() int { return int(k.count.Load()) }

// instance returns the live instance of id, activating it if needed; an
// id is checked (eventlog.ValidateStream) when it is activated, once.
// Activation is cheap: recovery runs with the first command, and the actor
// is spawned only when commands queue up (see instance).
func (k *Kind[S, E]) instance(id string) (*instance[S, E], error) {
	if in, ok := k.live.Load(id); ok {
		return in, nil // its id was checked when it was activated
	}
	if err := eventlog.ValidateStream(k.def.Name, id); err != nil {
		return nil, fmt.Errorf("%w: Ask: %w", ErrInvalid, err)
	}
	in := newInstance(k, id)
	if v, loaded := k.live.LoadOrStore(id, in); loaded {
		return v, nil
	}
	k.count.Add(1)
	k.tel.sys.activations.Add(context.Background(), 1, k.tel.byType.Add...)
	// Close may have swept the kinds between our closed check and the store
	// above; then this instance is ours to stop.
	if k.sys.closed.Load() {
		k.retire(in)
		return nil, ErrClosed
	}
	return in, nil
}

// retire stops in if it is still taking commands, failing those waiting.
func (k *Kind[S, E]) retire(in *instance[S, E]) {
	in.mu.Lock()
	if in.stopped {
		in.mu.Unlock()
		return
	}
	in.stopped = true
	waiting := in.queue
	in.queue = nil
	in.mu.Unlock()
	for _, p := range waiting {
		in.finish(p, ErrClosed)
	}
	if k.live.CompareAndDelete(in.id, in) {
		k.count.Add(-1)
	}
	in.stopActor()
}

// observe reports the Kind's gauges.
func (k *Kind[S, E]) observe(o metric.Observer) {
	o.ObserveInt64(k.tel.sys.live, k.count.Load(), k.tel.byType.Observe...)
}

func (k *Kind[S, E]) closeAll() {
	k.live.Range(func(in *instance[S, E]) bool {
		k.retire(in)
		return true
	})
}

// actorIdleTick is the housekeeping period when passivation is off or
// slower: an entity's actor is stopped after 2 to 3 ticks without queued
// commands.
const actorIdleTick = time.Second

// housekeep runs until the System closes. Every tick it stops the actors of
// entities whose commands have not queued up for 2 ticks (the entity stays
// live, state and all; an actor costs more memory than the rest of an idle
// entity, and is spawned again when commands queue up), and, with
// WithPassivateAfter(d), it passivates entities idle for more than d (and
// less than 1.5 d): the tick is at most d/4.
func (k *Kind[S, E]) housekeep() {
	defer k.sys.bg.Done()
	period, idleTicks, every := actorIdleTick, int64(0), int64(1)
	if d := k.cfg.passivateAfter; d > 0 {
		period = min(period, max(d/4, time.Nanosecond))
		// Idle for idleTicks ticks means idle for more than (idleTicks-1)
		// periods, at least d. Looking every d/4 (every ticks) notices it
		// within d/4 more.
		idleTicks = int64((d+period-1)/period) + 1
		every = max(1, int64(d/4/period))
	}
	tick := time.NewTicker(period)
	defer tick.Stop()
	for {
		select {
		case <-k.sys.done:
			return
		case <-tick.C:
		}
		now := k.clock.Add(1)
		k.tel.refresh()
		k.actors.Range(func(in *instance[S, E]) bool {
			if now-in.actorUsed.Load() >= 2 {
				k.stopIdleActor(in)
			}
			return true
		})
		if idleTicks == 0 || now%every != 0 {
			continue
		}
		k.live.Range(func(in *instance[S, E]) bool {
			if now-in.lastUsed.Load() >= idleTicks {
				k.passivate(in)
			}
			return true
		})
	}
}

// stopIdleActor stops in's actor if no commands are queued or running;
// the entity stays live.
func (k *Kind[S, E]) stopIdleActor(in *instance[S, E]) {
	in.mu.Lock()
	if in.busy || len(in.queue) > 0 {
		in.mu.Unlock()
		return
	}
	pid := in.pid
	in.pid = nil
	in.spare = nil
	in.mu.Unlock()
	k.actors.CompareAndDelete(in.id, in)
	if pid != nil {
		k.sys.actors.Root.Stop(pid)
	}
}

// passivate stops in if it is idle; it reports false if it is busy.
func (k *Kind[S, E]) passivate(in *instance[S, E]) bool {
	in.mu.Lock()
	if in.busy || len(in.queue) > 0 {
		in.mu.Unlock()
		return false
	}
	wasStopped := in.stopped
	in.stopped = true
	in.mu.Unlock()
	if wasStopped {
		return true
	}
	if k.live.CompareAndDelete(in.id, in) {
		k.count.Add(-1)
		k.tel.sys.passivations.Add(context.Background(), 1, k.tel.byType.Add...)
	}
	in.stopActor()
	return true
}

// LiveIDs yields the ids of the live entities of this kind. Entities
// activated or passivated while it runs may or may not be yielded; each id
// live throughout is yielded once. Package cluster uses it to stop the
// entities whose ownership moved to another member.
func (k *Kind[S, E]) LiveIDs() iter.Seq[string] {
	return func(yield func(string) bool) {
		k.live.Range(func(in *instance[S, E]) bool { return yield(in.id) })
	}
}

// Passivate stops the live entity id if it is idle, as idle passivation
// would: the next command activates it again and it recovers from the log.
// It reports false only if the entity is busy (commands waiting or running);
// if it is not live, there is nothing to do and it reports true. Package
// cluster uses it to stop entities whose ownership moved to another member.
func (k *Kind[S, E]) Passivate(id string) bool {
	in, ok := k.live.Load(id)
	if !ok {
		return true
	}
	return k.passivate(in)
}

// submit runs p for entity id at once if the entity is idle (ran true: p
// has been delivered), or queues it, activating the entity if needed.
func (k *Kind[S, E]) submit(ctx context.Context, id string, p pending[S, E]) (ran bool, err error) {
	sys := k.sys
	for {
		if sys.closed.Load() {
			return false, ErrClosed
		}
		in, err := k.instance(id)
		if err != nil {
			return false, err
		}
		// Counted before closed is checked again: see System.inflight.
		// The instance holds its id's counter, so the id is hashed once.
		in.flight.Add(1)
		if sys.closed.Load() {
			in.flight.Add(-1)
			return false, ErrClosed
		}
		ran, accepted, err := in.submit(ctx, p)
		if err != nil {
			in.flight.Add(-1)
			return false, err
		}
		if accepted {
			return ran, nil
		}
		in.flight.Add(-1)
		// The instance was passivated or retired after we found it; its
		// successor takes the command.
		if k.live.CompareAndDelete(id, in) {
			k.count.Add(-1)
		}
	}
}
