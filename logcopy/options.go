package logcopy

import (
	"fmt"
)

// Defaults of the options.
const (
	// DefaultBatchEvents and DefaultBatchBytes are the defaults of
	// [WithBatchLimits]. 100 events stays well inside the atomic batch
	// limit of JetStream (1,000 messages) and PostgreSQL's per-append
	// limits.
	DefaultBatchEvents = 100
	DefaultBatchBytes  = 1 << 20
	// DefaultCheckpointEvery is the default of [WithCheckpointEvery].
	DefaultCheckpointEvery = 1000
	// DefaultConcurrency is the default of [WithConcurrency]: one append at
	// a time, which keeps the source's order.
	DefaultConcurrency = 1
)

// Option configures [Copy].
type Option func(*config) error

type config struct {
	checkpoint    CheckpointStore
	batchEvents   int
	batchBytes    int
	every         int
	concurrency   int
	existing      bool
	skipTruncated bool
	progress      func(Progress)
}

func newConfig(opts []Option) (*config, error) {
	c := &config{
		batchEvents: DefaultBatchEvents,
		batchBytes:  DefaultBatchBytes,
		every:       DefaultCheckpointEvery,
		concurrency: DefaultConcurrency,
	}
	for _, o := range opts {
		if o == nil {
			return nil, fmt.Errorf("%w: nil Option", ErrInvalid)
		}
		if err := o(c); err != nil {
			return nil, err
		}
	}
	if c.checkpoint == nil {
		c.checkpoint = NewMemoryCheckpoints()
	}
	return c, nil
}

// WithCheckpoint keeps the copy's progress in s, so that a copy that was
// interrupted (an error, a canceled context, a crash) resumes where it
// stopped when Copy runs again with the same store, source and target.
// Without it the progress is kept in memory for the one call: a second
// call starts over, and finds the events the first one copied in the
// target ([TargetNotEmptyError], unless [WithExistingTargets]).
//
// A store belongs to one copy job (one source, one target, one set of
// types); another job needs another store.
func WithCheckpoint(s CheckpointStore) Option {
	return func(c *config) error {
		if s == nil {
			return fmt.Errorf("%w: WithCheckpoint(nil)", ErrInvalid)
		}
		c.checkpoint = s
		return nil
	}
}

// WithBatchLimits bounds one append to the target: at most events events
// and, unless one event alone is larger, about bytes bytes of data, names
// and metadata (defaults [DefaultBatchEvents] and [DefaultBatchBytes]).
// Consecutive events of one stream go in one append up to these limits.
//
// Records do not say which events the source appended together, so the
// target's appends follow these limits, not the source's: a reader of the
// target during the copy may see part of what the source appended at
// once. The best limits depend on the target. PostgreSQL commits a
// multi-event append in one transaction, so batches pay (10,000 events
// copied in 6.6 s with the defaults against 13.5 s with one event per
// append, on 2 shared cores). NATS JetStream stores a multi-event append
// as an atomic batch that waits for a disk sync, while single events are
// acknowledged from memory: there WithBatchLimits(1, n) copied 10,000
// events in 1.1 s against 13 s with the defaults.
func WithBatchLimits(events, bytes int) Option {
	return func(c *config) error {
		if events < 1 || bytes < 1 {
			return fmt.Errorf("%w: WithBatchLimits(%d, %d): both must be >= 1", ErrInvalid, events, bytes)
		}
		c.batchEvents, c.batchBytes = events, bytes
		return nil
	}
}

// WithCheckpointEvery sets how many source events the copy reads, appends
// and then checkpoints at a time (default [DefaultCheckpointEvery]). A
// resumed copy compares again at most this many events with the target;
// with [WithConcurrency] it is also the window within which the events of
// different streams may be reordered. They are held in memory meanwhile.
func WithCheckpointEvery(n int) Option {
	return func(c *config) error {
		if n < 1 {
			return fmt.Errorf("%w: WithCheckpointEvery(%d): must be >= 1", ErrInvalid, n)
		}
		c.every = n
		return nil
	}
}

// WithConcurrency lets up to n appends to different streams run at once
// (default 1), which backends with group commit turn into far fewer round
// trips. With n > 1 each stream's events keep their order (their Seq, as
// always), but the target's Position order of a type follows the source's
// only between checkpoints: within one [WithCheckpointEvery] window the
// events of a stream are appended together, and the streams in whatever
// order their appends commit. With n = 1 a type's events are appended in
// the source's Position order.
func WithConcurrency(n int) Option {
	return func(c *config) error {
		if n < 1 {
			return fmt.Errorf("%w: WithConcurrency(%d): must be >= 1", ErrInvalid, n)
		}
		c.concurrency = n
		return nil
	}
}

// WithExistingTargets allows target streams that already have events:
// where the target holds an event at a Seq the copy needs, the copy
// compares it with the source's and skips it when they are equal (as a
// resumed copy does with what it wrote before it was interrupted); an
// event that differs still fails the copy with a [*DiffersError], and
// nothing is overwritten. Without it such a stream fails the copy with a
// [*TargetNotEmptyError].
func WithExistingTargets() Option {
	return func(c *config) error {
		c.existing = true
		return nil
	}
}

// WithSkipTruncated skips the source streams whose first readable event
// has a Seq above 1, because their earlier events were deleted (after a
// snapshot), when the target stream has no events: such a stream cannot
// be reproduced with its Seqs without its snapshots, which a log copy does
// not carry. [Stats.Skipped] lists them. Without it they fail the copy
// with a [*GapError].
func WithSkipTruncated() Option {
	return func(c *config) error {
		c.skipTruncated = true
		return nil
	}
}

// WithProgress calls f after each window of [WithCheckpointEvery] events
// is appended and after each type is verified, on the goroutine that called [Copy]. f must not block for
// long: the copy waits for it.
func WithProgress(f func(Progress)) Option {
	return func(c *config) error {
		if f == nil {
			return fmt.Errorf("%w: WithProgress(nil)", ErrInvalid)
		}
		c.progress = f
		return nil
	}
}

// Progress reports how far a copy has come.
type Progress struct {
	// EntityType is the type being copied.
	EntityType string
	// Position is the source Position up to which the type is copied.
	Position uint64
	// Appended and Present count the type's events appended to the target
	// and found already there (and equal) by this call so far.
	Appended, Present int64
	// Verified is set once the type's counts have been verified.
	Verified bool
}
