package projection

import (
	"fmt"
	"log/slog"
	"time"

	"github.com/eventsourced-go/eventsourced/eventlog"
	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"
)

// Option configures a [Projection].
type Option func(*config) error

type config struct {
	batch    int
	buffer   int
	initial  time.Duration
	maxDelay time.Duration
	attempts int
	poison   PoisonPolicy
	// deadLetters, if not nil, records the events SkipPoison skips.
	deadLetters DeadLetters
	logger      *slog.Logger
	tp          trace.TracerProvider          // nil: the global one
	mp          metric.MeterProvider          // nil: the global one
	prop        propagation.TextMapPropagator // nil: W3C trace context
	slice       sliceOpt
	// sliceKey, if not nil, says which slice an event belongs to (see
	// WithSliceKey).
	sliceKey func(rec eventlog.Record) string
	// controlInterval is how often a run reads its control records.
	controlInterval time.Duration
	// storeTimeout bounds each call of the offset store; 0: none.
	storeTimeout time.Duration
}

// WithBatchSize lets the handler get up to n events at once (default 1).
// The projection never waits to fill a batch: it hands over what has
// arrived. The offset moves once per batch.
func WithBatchSize(n int) Option {
	return func(c *config) error {
		if n < 1 {
			return fmt.Errorf("%w: WithBatchSize(%d): must be >= 1", ErrInvalid, n)
		}
		c.batch = n
		return nil
	}
}

// WithBufferSize sets how many events the projection reads ahead of its
// handler (default 256, and at least the batch size).
func WithBufferSize(n int) Option {
	return func(c *config) error {
		if n < 1 {
			return fmt.Errorf("%w: WithBufferSize(%d): must be >= 1", ErrInvalid, n)
		}
		c.buffer = n
		return nil
	}
}

// WithStoreTimeout bounds each call of the offset store: the Load of the
// offset, each read of a control record, and each Commit, with the
// handler inside it (in a transactional store the handler's writes are
// the store's). A call that takes longer is canceled and fails with an
// error naming the option, and is retried like any failure of the store:
// without limit, never counted against the handler's attempts, so a slow
// store never makes an event poison. Without it (the default, 0) a store
// that stops answering, such as a stalled database, holds the projection
// until its context ends or Stop, with nothing in its Status but the lag.
// Choose d well above the time of the largest batch.
func WithStoreTimeout(d time.Duration) Option {
	return func(c *config) error {
		if d < 0 {
			return fmt.Errorf("%w: WithStoreTimeout(%v): must be >= 0", ErrInvalid, d)
		}
		c.storeTimeout = d
		return nil
	}
}

// WithRetry sets the exponential backoff between attempts: the first retry
// waits initial, each next one twice as long, up to max. A batch whose
// handler fails attempts times in a row is poison (see [WithPoison]); a
// batch of several events is first retried event by event, so only the
// failing event is poison. Failures of the offset store and of the log are
// retried with the same backoff for as long as the projection runs. The
// defaults are 100ms, 10s and 5 attempts.
func WithRetry(initial, max time.Duration, attempts int) Option {
	return func(c *config) error {
		switch {
		case initial <= 0:
			return fmt.Errorf("%w: WithRetry: initial delay %v must be positive", ErrInvalid, initial)
		case max < initial:
			return fmt.Errorf("%w: WithRetry: max delay %v is below the initial delay %v", ErrInvalid, max, initial)
		case attempts < 1:
			return fmt.Errorf("%w: WithRetry: attempts %d must be >= 1", ErrInvalid, attempts)
		}
		c.initial, c.maxDelay, c.attempts = initial, max, attempts
		return nil
	}
}

// WithPoison sets what happens to a poison event (default [StopOnPoison]).
func WithPoison(p PoisonPolicy) Option {
	return func(c *config) error {
		if p != StopOnPoison && p != SkipPoison {
			return fmt.Errorf("%w: WithPoison(%d): unknown policy", ErrInvalid, p)
		}
		c.poison = p
		return nil
	}
}

// WithDeadLetters makes the projection record each poison event it skips
// ([SkipPoison]) in store, under its name and the event's Position, before
// its offset moves past the event. A failing Put is retried with backoff
// like a failure of the offset store, as long as the projection runs: no
// event is skipped unrecorded. Pass the same store to every runner of a
// projection; with a transactional offset store (pgprojection) use its
// own dead-letter store, so the dead letter and the offset commit
// together. The store also serves [Projection.ListDeadLetters],
// [Projection.RetryDeadLetter] and [Projection.DropDeadLetter].
//
// With [StopOnPoison] nothing is recorded: the offset stays before the
// event, which the next Start handles again, and a dead letter of it
// would apply it twice when retried.
func WithDeadLetters(store DeadLetters) Option {
	return func(c *config) error {
		if store == nil {
			return fmt.Errorf("%w: WithDeadLetters(nil)", ErrInvalid)
		}
		c.deadLetters = store
		return nil
	}
}

// WithLogger logs retries, offset reloads, handler panics, poison events
// and stops to l (default slog.Default()), with the projection's name and
// entity type and the id, Seq and Position of the event concerned. A
// healthy projection logs nothing.
func WithLogger(l *slog.Logger) Option {
	return func(c *config) error {
		if l == nil {
			return fmt.Errorf("%w: WithLogger(nil)", ErrInvalid)
		}
		c.logger = l
		return nil
	}
}

// WithTracerProvider sets the tracer provider of the projection's spans,
// one per attempt to handle a batch (see the package documentation on
// telemetry). The default is the global provider (otel.GetTracerProvider),
// which records nothing until the program installs an SDK.
func WithTracerProvider(tp trace.TracerProvider) Option {
	return func(c *config) error {
		if tp == nil {
			return fmt.Errorf("%w: WithTracerProvider(nil)", ErrInvalid)
		}
		c.tp = tp
		return nil
	}
}

// WithMeterProvider sets the meter provider of the projection's metrics
// (default the global provider, otel.GetMeterProvider).
func WithMeterProvider(mp metric.MeterProvider) Option {
	return func(c *config) error {
		if mp == nil {
			return fmt.Errorf("%w: WithMeterProvider(nil)", ErrInvalid)
		}
		c.mp = mp
		return nil
	}
}

// WithPropagator sets how the trace context of the command that wrote an
// event is read from the event's metadata (default W3C trace context, as
// entity.WithPropagator writes it by default).
func WithPropagator(p propagation.TextMapPropagator) Option {
	return func(c *config) error {
		if p == nil {
			return fmt.Errorf("%w: WithPropagator(nil)", ErrInvalid)
		}
		c.prop = p
		return nil
	}
}

// PoisonPolicy says what a projection does with an event its handler fails
// on every attempt.
type PoisonPolicy int

const (
	// StopOnPoison stops the projection before the event: [Projection.Wait]
	// returns a [*PoisonError] and the offset stays before the event. This
	// is the default: nothing is skipped silently.
	StopOnPoison PoisonPolicy = iota
	// SkipPoison moves the offset past the event without applying it, and
	// records it in [Status.Skipped] and, with [WithDeadLetters], durably
	// in a dead-letter store.
	SkipPoison
)
