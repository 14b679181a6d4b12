package entity

import (
	"fmt"
	"log/slog"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"

	"github.com/eventsourced-go/eventsourced/snapshotstore"
)

// Option configures a [System].
type Option func(*System) error

// WithSnapshotStore sets the store for snapshots. Without one, kinds cannot
// use [WithSnapshotEvery].
func WithSnapshotStore(s snapshotstore.Store) Option {
	return func(sys *System) error {
		if s == nil {
			return fmt.Errorf("%w: WithSnapshotStore(nil)", ErrInvalid)
		}
		sys.snapshots = s
		return nil
	}
}

// WithLogger sets the logger for failures that reach no caller, such as a
// failed snapshot (default slog.Default()). A healthy System logs nothing
// per command.
func WithLogger(l *slog.Logger) Option {
	return func(sys *System) error {
		if l == nil {
			return fmt.Errorf("%w: WithLogger(nil)", ErrInvalid)
		}
		sys.logger = l
		return nil
	}
}

// WithActorSystem runs the entities' actors in an existing protoactor-go
// actor system, such as a cluster member's. The System does not shut it down.
func WithActorSystem(as *actor.ActorSystem) Option {
	return func(sys *System) error {
		if as == nil {
			return fmt.Errorf("%w: WithActorSystem(nil)", ErrInvalid)
		}
		sys.actors = as
		return nil
	}
}

// WithTracerProvider sets the tracer provider of the System's spans: one
// per command, per append, per recovery and per snapshot saved. The default
// is the global provider (otel.GetTracerProvider), which records nothing
// until the program installs an SDK: then the System traces at once.
func WithTracerProvider(tp trace.TracerProvider) Option {
	return func(sys *System) error {
		if tp == nil {
			return fmt.Errorf("%w: WithTracerProvider(nil)", ErrInvalid)
		}
		sys.telCfg.tp = tp
		return nil
	}
}

// WithMeterProvider sets the meter provider of the System's metrics
// (default the global provider, otel.GetMeterProvider).
func WithMeterProvider(mp metric.MeterProvider) Option {
	return func(sys *System) error {
		if mp == nil {
			return fmt.Errorf("%w: WithMeterProvider(nil)", ErrInvalid)
		}
		sys.telCfg.mp = mp
		return nil
	}
}

// WithPropagator sets how a command's trace context is written into the
// metadata of its events, for projections and other readers to continue
// the trace (default W3C trace context: traceparent and tracestate).
func WithPropagator(p propagation.TextMapPropagator) Option {
	return func(sys *System) error {
		if p == nil {
			return fmt.Errorf("%w: WithPropagator(nil)", ErrInvalid)
		}
		sys.telCfg.prop = p
		return nil
	}
}

// WithoutTelemetry turns spans and metrics off entirely, whatever the
// providers: for measuring what telemetry costs.
func WithoutTelemetry() Option {
	return func(sys *System) error {
		sys.telCfg.off = true
		return nil
	}
}

type kindConfig struct {
	snapshotPolicy SnapshotPolicy
	snapshotEvery  uint64
	keepSnapshots  int
	deleteEvents   bool
	passivateAfter time.Duration
	mailbox        int
	maxBatch       int
	timeout        time.Duration
	syncAppends    bool
	idem           *idemConfig // nil: keyed commands are refused
}

// KindOption configures a [Kind].
type KindOption func(*kindConfig) error

// WithSnapshotEvery saves a snapshot of an entity's state every n events
// (0, the default, never). It needs a snapshot store on the System and a
// State codec on the Type. A snapshot that fails is logged at Error with the
// entity's type, id and Seq and counted in the eventsourced.snapshots metric
// (outcome failed); it never fails a command. A failed save is retried after
// the next persist; a state its codec cannot encode is tried again after
// the next n events.
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
// timer. Asynchronous appends ([WithSyncAppends]) share one context per
// sixteenth of the timeout: their deadline is between the timeout and 1/16
// more, and no append starts a timer of its own.
func WithStoreTimeout(d time.Duration) KindOption {
	return func(c *kindConfig) error {
		if d <= 0 {
			return fmt.Errorf("%w: WithStoreTimeout(%v): must be > 0", ErrInvalid, d)
		}
		c.timeout = d
		return nil
	}
}

// WithSyncAppends makes the entities append with the log's Append even if
// the log is an [eventlog.AsyncAppender]. By default a command that finds
// its entity idle appends with AppendAsync when nothing is measured (no
// OpenTelemetry SDK records spans or metrics of the runtime): its caller
// waits for the answer in [Ask], bounded by its ctx, while the append,
// bounded by the store timeout, settles on the log's goroutine, which
// answers the command and hands the entity to its next commands (on an
// [eventlog.RoundAppender] the caller waits on its append's round, woken
// with the other callers of that round by one close). That
// saves the caller's goroutine a trip through the log and the runtime a
// timer per append. With WithSyncAppends the caller's goroutine runs the
// append itself, bounded by the sooner of its ctx and the store timeout.
// Either way Ask returns by its ctx's deadline and an append's outcome is
// reported as Ask documents.
func WithSyncAppends() KindOption {
	return func(c *kindConfig) error {
		c.syncAppends = true
		return nil
	}
}

// SnapshotPolicy says what recovery does with a snapshot it cannot use: one
// of a state revision the State codec cannot read (an older one without an
// upcaster, or a newer one written by a later release: an error matching
// binarize.ErrUnknownRevision), or bytes it cannot decode (an error
// matching binarize.ErrDecode, or a panic of the codec). Other errors of
// the codec, such as a key store out of reach, say nothing of the bytes:
// they fail the recovery under every policy, and the next command tries
// again.
type SnapshotPolicy uint8

const (
	// RecoverFromEvents, the default, skips such a snapshot: recovery logs
	// it at Warn (type, id, snapshot Seq and revision, the error), counts it
	// in the eventsourced.snapshots.unusable metric, replays the entity's
	// events from Seq 1, which are the truth, and then saves a fresh
	// snapshot at once. If the events the snapshot covers were deleted
	// ([WithDeleteEventsOnSnapshot]) there is nothing to replay, and
	// recovery fails with an error matching [ErrUnusableSnapshot] that says
	// so.
	RecoverFromEvents SnapshotPolicy = iota
	// FailOnUnusableSnapshot fails recovery with a [*RecoveryError]
	// matching [ErrUnusableSnapshot] instead, so that every command of the
	// entity fails until the snapshot can be read: for types whose replay
	// from Seq 1 would be too slow to do unnoticed.
	FailOnUnusableSnapshot
)

// String returns the policy's name.
func (p SnapshotPolicy) String() string {
	switch p {
	case RecoverFromEvents:
		return "RecoverFromEvents"
	case FailOnUnusableSnapshot:
		return "FailOnUnusableSnapshot"
	}
	return fmt.Sprintf("SnapshotPolicy(%d)", uint8(p))
}

// WithSnapshotPolicy sets what recovery does with a snapshot it cannot use
// (default [RecoverFromEvents]).
func WithSnapshotPolicy(p SnapshotPolicy) KindOption {
	return func(c *kindConfig) error {
		if p > FailOnUnusableSnapshot {
			return fmt.Errorf("%w: WithSnapshotPolicy(%v): not a policy", ErrInvalid, p)
		}
		c.snapshotPolicy = p
		return nil
	}
}
