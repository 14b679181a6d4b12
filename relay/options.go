package relay

import (
	"fmt"
	"log/slog"
	"time"

	"github.com/eventsourced-go/eventsourced/eventlog"
	"github.com/eventsourced-go/eventsourced/projection"
)

// DefaultPrefix is the first token of the default map's subjects.
const DefaultPrefix = "events"

// DefaultBatchSize is how many events a relay publishes at once by
// default.
const DefaultBatchSize = 512

// Option configures a [Relay].
type Option func(*config) error

type config struct {
	mapf     func(eventlog.Record) (Message, bool, error)
	prefix   string
	batch    int
	initial  time.Duration
	maxDelay time.Duration
	logger   *slog.Logger
	popts    []projection.Option
	noResume bool
	offsets  projection.OffsetStore
}

// WithMap selects and maps the events: f returns the message to publish
// for a record and true, or false to leave the record out (counted in
// [Status.Filtered]). The relay fills in the message's ID ([DefaultID])
// when f leaves it empty, and its Position. f must be deterministic: a
// batch that fails is mapped again.
//
// An error from f (or a panic, or a message without a subject) is the
// event's fault: it is retried, then treated as a poison event by the
// projection's policy (projection.WithPoison through
// [WithProjectionOptions]): by default the relay stops before the event
// and Wait returns a *projection.PoisonError; with projection.SkipPoison it
// moves past it, recorded in Status.Skipped and, with
// projection.WithDeadLetters, in a dead-letter store. These are the only
// events a relay ever skips.
func WithMap(f func(eventlog.Record) (Message, bool, error)) Option {
	return func(c *config) error {
		if f == nil {
			return fmt.Errorf("%w: WithMap(nil)", ErrInvalid)
		}
		c.mapf = f
		return nil
	}
}

// WithPrefix sets the first token of the default map's subjects (default
// [DefaultPrefix]). It has no effect with [WithMap].
func WithPrefix(prefix string) Option {
	return func(c *config) error {
		if !subjectToken(prefix) {
			return fmt.Errorf("%w: WithPrefix(%q): not a subject token", ErrInvalid, prefix)
		}
		c.prefix = prefix
		return nil
	}
}

// WithBatchSize publishes up to n events at once (default
// [DefaultBatchSize]) and moves the offset once per batch. The relay never
// waits to fill a batch. Larger batches keep more publishes in flight and
// give the bus more to deduplicate after a crash.
func WithBatchSize(n int) Option {
	return func(c *config) error {
		if n < 1 {
			return fmt.Errorf("%w: WithBatchSize(%d): must be >= 1", ErrInvalid, n)
		}
		c.batch = n
		return nil
	}
}

// WithRetry sets the backoff between failed publishes: initial, doubled
// after each failure up to max (defaults 100ms and 10s). A relay retries a
// failing sink for as long as it runs; there is no attempt limit.
func WithRetry(initial, max time.Duration) Option {
	return func(c *config) error {
		switch {
		case initial <= 0:
			return fmt.Errorf("%w: WithRetry: initial delay %v must be positive", ErrInvalid, initial)
		case max < initial:
			return fmt.Errorf("%w: WithRetry: max delay %v is below the initial delay %v", ErrInvalid, max, initial)
		}
		c.initial, c.maxDelay = initial, max
		return nil
	}
}

// WithLogger logs failed publishes (and the projection's retries and
// poison events) to l (default slog.Default()). A healthy relay logs
// nothing.
func WithLogger(l *slog.Logger) Option {
	return func(c *config) error {
		if l == nil {
			return fmt.Errorf("%w: WithLogger(nil)", ErrInvalid)
		}
		c.logger = l
		return nil
	}
}

// WithProjectionOptions passes options to the projection the relay runs
// on, after the relay's own: projection.WithPoison and WithDeadLetters
// for the map's errors, WithRetry for how often a failing map is tried,
// WithSlice, WithBufferSize, the telemetry providers. With WithSlice, the
// relay does not resume from a [Resumer] sink's last message, since it
// holds every slice's messages.
func WithProjectionOptions(opts ...projection.Option) Option {
	return func(c *config) error {
		for i, o := range opts {
			if o == nil {
				return fmt.Errorf("%w: WithProjectionOptions: option %d is nil", ErrInvalid, i+1)
			}
		}
		c.popts = append(c.popts, opts...)
		return nil
	}
}

// WithoutResume makes the relay ignore a [Resumer] sink's last message
// and start from its stored offset alone, relying on the bus's
// deduplication for a batch published again after a crash. Slices need
// it (see [WithProjectionOptions]).
func WithoutResume() Option {
	return func(c *config) error {
		c.noResume = true
		return nil
	}
}
