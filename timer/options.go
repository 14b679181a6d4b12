package timer

import (
	"fmt"
	"log/slog"
	"time"

	"github.com/eventsourced-go/eventsourced/entity"
	"github.com/eventsourced-go/eventsourced/eventlog"
	"github.com/eventsourced-go/eventsourced/projection"
	"go.opentelemetry.io/otel/metric"
)

// Defaults of the options.
const (
	// DefaultConcurrency is how many timers fire at once by default.
	DefaultConcurrency = 16
	// DefaultMarkInterval is how often the low-water mark is saved by
	// default.
	DefaultMarkInterval = time.Second
	// DefaultRenewAfter is how many timer events after its Scheduled a
	// pending timer is renewed by default (see [WithRenewAfter]).
	DefaultRenewAfter = 10000
	// MaxPayload is the largest payload a timer carries, in bytes. A
	// timer's payload is in its Scheduled event, which every backend must
	// store (a NATS server refuses messages above its max_payload, 1 MiB
	// by default): a timer should carry a reference, not a document.
	MaxPayload = 256 << 10
)

// Clock tells the time and waits. The scheduler reads Now to decide what
// is due and waits on After until the next timer is; tests give a clock
// they move by hand. The default is the system clock.
type Clock interface {
	Now() time.Time
	// After returns a channel that receives once d has passed.
	After(d time.Duration) <-chan time.Time
}

// systemClock is the default [Clock].
type systemClock struct{}

func (systemClock) Now() time.Time                         { return time.Now() }
func (systemClock) After(d time.Duration) <-chan time.Time { return time.After(d) }

// Option configures [Timers].
type Option func(*config) error

type config struct {
	typ         string
	concurrency int
	initial     time.Duration
	maxDelay    time.Duration
	clock       Clock
	logger      *slog.Logger
	slice       [2]int // i, n; n 0 for none
	markEvery   time.Duration
	renewAfter  int
	kopts       []entity.KindOption
	popts       []projection.Option
	control     time.Duration
	mp          metric.MeterProvider // nil: the global one
}

// WithEntityType stores the timers as entities of type typ (default
// "<name>-timers"): one stream per timer id.
func WithEntityType(typ string) Option {
	return func(c *config) error {
		if err := eventlog.ValidateType(typ); err != nil {
			return fmt.Errorf("%w: WithEntityType: %w", ErrInvalid, err)
		}
		c.typ = typ
		return nil
	}
}

// WithConcurrency lets up to n timers fire at once (default
// [DefaultConcurrency]). A fire function that waits on something slow
// holds one of them; the others keep firing.
func WithConcurrency(n int) Option {
	return func(c *config) error {
		if n < 1 {
			return fmt.Errorf("%w: WithConcurrency(%d): must be >= 1", ErrInvalid, n)
		}
		c.concurrency = n
		return nil
	}
}

// WithControlInterval sets how often running timers read their control
// records when the offset store keeps them ([projection.Controls]):
// default [projection.DefaultControlInterval]. A [projection.Pause] of
// the timers' name (or of their slice's name) stops the firing within d;
// [projection.Resume] lets it go on.
func WithControlInterval(d time.Duration) Option {
	return func(c *config) error {
		if d <= 0 {
			return fmt.Errorf("%w: WithControlInterval(%v): must be positive", ErrInvalid, d)
		}
		c.control = d
		return nil
	}
}

// WithMeterProvider sets the meter provider of the timers' metrics
// (default: the global one, so nothing is measured until a program
// installs an SDK). The metrics are eventsourced.timer.fires,
// .lateness, .store.errors and the gauges .pending, .due and .paused,
// with the attribute eventsourced.timers naming the timers (their
// slice's name for a slice). The projection that reads the timers has
// its own (projection.WithMeterProvider through [WithProjectionOptions]).
func WithMeterProvider(mp metric.MeterProvider) Option {
	return func(c *config) error {
		if mp == nil {
			return fmt.Errorf("%w: WithMeterProvider(nil)", ErrInvalid)
		}
		c.mp = mp
		return nil
	}
}

// WithRetry sets the backoff of a timer whose fire function failed (or
// whose check or record failed in the store): it is tried again after
// initial, then twice as long each time, up to max (defaults 100ms and
// 30s), for as long as the timers run. A failing timer waits in the queue
// meanwhile and holds no worker, so it never delays the others.
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

// WithClock sets the clock (default the system clock), for tests.
func WithClock(clk Clock) Option {
	return func(c *config) error {
		if clk == nil {
			return fmt.Errorf("%w: WithClock(nil)", ErrInvalid)
		}
		c.clock = clk
		return nil
	}
}

// WithLogger logs failed fires and store failures to l (default
// slog.Default()). Healthy timers log nothing.
func WithLogger(l *slog.Logger) Option {
	return func(c *config) error {
		if l == nil {
			return fmt.Errorf("%w: WithLogger(nil)", ErrInvalid)
		}
		c.logger = l
		return nil
	}
}

// WithSlice makes these Timers slice i of n: the scheduler reads and
// fires only the timers whose ids projection.SliceOf puts in slice i, and
// keeps its low-water mark under projection.SliceName(name, i, n). Run the
// n slices, each with its own WithSlice, in one process or spread over
// several, one runner per slice at a time. The timer's id decides the
// slice that fires it; send its Schedule and Cancel through the process
// that runs that slice (see the package documentation, Slices).
func WithSlice(i, n int) Option {
	return func(c *config) error {
		if n < 1 || n > projection.MaxSlices || i < 0 || i >= n {
			return fmt.Errorf("%w: WithSlice(%d, %d): want 0 <= i < n <= %d", ErrInvalid, i, n, projection.MaxSlices)
		}
		c.slice = [2]int{i, n}
		return nil
	}
}

// WithMarkInterval sets how often the low-water mark is saved (default
// [DefaultMarkInterval]); Stop saves it too. A mark saved late only makes
// a restart read more.
func WithMarkInterval(d time.Duration) Option {
	return func(c *config) error {
		if d <= 0 {
			return fmt.Errorf("%w: WithMarkInterval(%v): must be positive", ErrInvalid, d)
		}
		c.markEvery = d
		return nil
	}
}

// WithRenewAfter renews a pending timer due more than a minute ahead once
// more than n timer events (or twice the number of pending timers, if
// more) have been read after its Scheduled (default [DefaultRenewAfter];
// 0 never): the scheduler
// records its Scheduled again, same generation, time and payload, so the
// low-water mark moves past the old one and a restart does not read every
// event since a timer due far ahead was scheduled. Renewals are checked
// every mark interval, at most 1,000 at a time, and add at most one event
// for every two read.
func WithRenewAfter(n int) Option {
	return func(c *config) error {
		if n < 0 {
			return fmt.Errorf("%w: WithRenewAfter(%d): must be >= 0", ErrInvalid, n)
		}
		c.renewAfter = n
		return nil
	}
}

// WithKindOptions passes options to the registration of the timer entity
// type, after the timers' own (entities passivate after a minute idle).
// entity.WithStoreTimeout among them bounds the store calls of the
// commands the scheduler sends the timers (the check before a fire, the
// record after it), which have no other deadline.
func WithKindOptions(opts ...entity.KindOption) Option {
	return func(c *config) error {
		for i, o := range opts {
			if o == nil {
				return fmt.Errorf("%w: WithKindOptions: option %d is nil", ErrInvalid, i+1)
			}
		}
		c.kopts = append(c.kopts, opts...)
		return nil
	}
}

// WithProjectionOptions passes options to the projection the scheduler
// reads the timers with, after its own: telemetry providers, buffer and
// batch sizes. projection.WithSlice works as [WithSlice] does.
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
