package entity

import (
	"fmt"
	"sync"
	"sync/atomic"
	"time"

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
	txPool sync.Pool // of *Tx[S, E], see runGroup
	// clock counts housekeeping ticks (see housekeep); an instance records
	// the tick of its last use instead of reading the time.
	clock atomic.Int64
}

type kindConfig struct {
	snapshotEvery  uint64
	keepSnapshots  int
	deleteEvents   bool
	passivateAfter time.Duration
	mailbox        int
	maxBatch       int
	timeout        time.Duration
}

// KindOption configures a [Kind].
type KindOption func(*kindConfig) error

// WithSnapshotEvery saves a snapshot of an entity's state every n events
// (0, the default, never). It needs a snapshot store on the System and a
// State codec on the Type. A failed snapshot is logged and retried after the
// next persist; it never fails a command.
func WithSnapshotEvery(n int) KindOption {
	return func(c *kindConfig) error {
		if n < 0 {
			return fmt.Errorf("%w: WithSnapshotEvery(%d): must be >= 0", ErrInvalid, n)
		}
		c.snapshotEvery = uint64(n)
		return nil
	}
}

// WithKeepSnapshots keeps the k most recent snapshots of each entity (default 2).
func WithKeepSnapshots(k int) KindOption {
	return func(c *kindConfig) error {
		if k < 1 {
			return fmt.Errorf("%w: WithKeepSnapshots(%d): must be >= 1", ErrInvalid, k)
		}
		c.keepSnapshots = k
		return nil
	}
}

// WithDeleteEventsOnSnapshot deletes the events a saved snapshot covers. The
// log must implement eventlog.Deleter.
func WithDeleteEventsOnSnapshot() KindOption {
	return func(c *kindConfig) error {
		c.deleteEvents = true
		return nil
	}
}

// WithPassivateAfter stops entities idle for d (0, the default, never); they
// recover on their next command. An idle entity is stopped between d and 1.5 d
// after its last command.
func WithPassivateAfter(d time.Duration) KindOption {
	return func(c *kindConfig) error {
		if d < 0 {
			return fmt.Errorf("%w: WithPassivateAfter(%v): must be >= 0", ErrInvalid, d)
		}
		c.passivateAfter = d
		return nil
	}
}

// WithMailboxSize bounds the commands waiting for one entity (default 4096);
// Ask returns [ErrMailboxFull] beyond it.
func WithMailboxSize(n int) KindOption {
	return func(c *kindConfig) error {
		if n < 1 {
			return fmt.Errorf("%w: WithMailboxSize(%d): must be >= 1", ErrInvalid, n)
		}
		c.mailbox = n
		return nil
	}
}

// WithMaxBatch bounds how many waiting commands an entity handles and
// persists in one append (default 256). 1 turns command batching off.
func WithMaxBatch(n int) KindOption {
	return func(c *kindConfig) error {
		if n < 1 {
			return fmt.Errorf("%w: WithMaxBatch(%d): must be >= 1", ErrInvalid, n)
		}
		c.maxBatch = n
		return nil
	}
}

// DefaultStoreTimeout is the default of [WithStoreTimeout].
const DefaultStoreTimeout = 10 * time.Second

// WithStoreTimeout bounds each call an entity makes to the log or snapshot
// store: a recovery, an append, a snapshot (default [DefaultStoreTimeout]).
// An append that times out fails its commands with a *PersistError.
//
// Callers never wait for it longer than their ctx allows (see [Ask]): the
// store timeout bounds the work that goes on without a caller's deadline,
// such as a recovery that a caller gave up on while other commands wait
// for it, an append of queued commands, or a snapshot. It is a backstop
// for a store that stops answering without dropping the connection, so it
// should be well above the store's slowest healthy answer: 10 s is as
// Akka's journal circuit breaker. A connection that drops fails the calls
// on it at once, whatever the timeout.
//
// The bound reaches the store as the Deadline and Done of the call's ctx;
// its clock starts when the store first asks for either, so a call to a
// store that never blocks (the in-memory log only checks Err) starts no
// timer.
func WithStoreTimeout(d time.Duration) KindOption {
	return func(c *kindConfig) error {
		if d <= 0 {
			return fmt.Errorf("%w: WithStoreTimeout(%v): must be > 0", ErrInvalid, d)
		}
		c.timeout = d
		return nil
	}
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
		if _, ok := sys.log.(eventlog.Deleter); !ok {
			return nil, fmt.Errorf("%w: entity type %q: WithDeleteEventsOnSnapshot: the log (%T) cannot delete events", ErrInvalid, def.Name, sys.log)
		}
	}
	k := &Kind[S, E]{sys: sys, def: def, cfg: cfg}
	k.live.init()
	k.actors.init()
	k.txPool.New = func() any { return new(Tx[S, E]) }

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

// instance returns the live instance of id, activating it if needed.
// Activation is cheap: recovery runs with the first command, and the actor
// is spawned only when commands queue up (see instance).
func (k *Kind[S, E]) instance(id string) (*instance[S, E], error) {
	if in, ok := k.live.Load(id); ok {
		return in, nil
	}
	in := newInstance(k, id)
	if v, loaded := k.live.LoadOrStore(id, in); loaded {
		return v, nil
	}
	k.count.Add(1)
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
	}
	in.stopActor()
	return true
}

// Ref is a cheap, copyable reference to one entity. The zero Ref is invalid.
type Ref[S, E any] struct {
	kind *Kind[S, E]
	id   string
}

// ID returns the entity id.
func (r Ref[S, E]) ID() string { return r.id }

// Type returns the entity type name.
func (r Ref[S, E]) Type() string {
	if r.kind == nil {
		return ""
	}
	return r.kind.def.Name
}

// String returns "type/id", the id as error messages quote it (see
// eventlog.FormatID): a long one is cut.
func (r Ref[S, E]) String() string { return r.Type() + "/" + eventlog.FormatID(r.id) }
