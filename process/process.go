package process

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/eventsourced-go/eventsourced/binarize"
	"github.com/eventsourced-go/eventsourced/entity"
	"github.com/eventsourced-go/eventsourced/eventlog"
)

// ErrInvalid reports a definition, an option or an effect that cannot
// work, named in the error's text.
var ErrInvalid = errors.New("process: invalid")

// Definition defines a process manager once. S is the state of one
// instance: one run of the process, such as one order's fulfilment.
type Definition[S any] struct {
	// Name names the process. Its instances are entities of this type
	// (see package entity), and the manager's projection offset is stored
	// under it. It must be a valid entity type name.
	Name string
	// Sources are the entity types whose events the process reacts to.
	Sources []string
	// Correlate maps an event of a source type to the instance it belongs
	// to, such as the order id in the event. ok false ignores the event.
	// It must be deterministic.
	Correlate func(rec eventlog.Record) (instance string, ok bool)
	// Initial returns the state of an instance before its first step. Nil
	// means the zero S.
	Initial func() S
	// Handle is one step: given the instance's state and what happened,
	// the new state and the effects. It must be deterministic (a step
	// redelivered after a crash runs again on the same state and must
	// decide the same effects) and must not block: it runs inside the
	// instance's entity, one step at a time. An error refuses the input:
	// nothing is recorded, and the projection retries it (see the package
	// documentation, "Failures").
	Handle func(state S, in Input) (S, Effects, error)
	// State encodes the state in the instance's events; nil means
	// binarize.Value[S](binarize.JSON).
	State binarize.Codec[S]
}

// Input is what an instance reacts to: an event of a source type, or one
// of its timers firing.
type Input struct {
	// Instance is the instance's id.
	Instance string
	// Record is the event of a source type, or, when Timer is set, the
	// event that records the timer's firing.
	Record eventlog.Record
	// Timer is the timer that fired, nil for an event.
	Timer *Fired
}

// Fired is a timer of an instance that fired.
type Fired struct {
	// Name is the name the step that set it gave it.
	Name string
	// Payload is the payload it was set with.
	Payload []byte
}

// Effects is what a step decides besides the new state.
type Effects struct {
	// Commands are sent, in order, each once it has been recorded, with an
	// idempotency key (see entity.WithIdempotencyKey) derived from the
	// process, the instance, the Position of the input and the command's
	// index: a step run again after a crash sends the same commands with
	// the same keys, and entities that declare those commands idempotent
	// answer them from the first outcome.
	Commands []Command
	// Timers are set (or moved: a name set again replaces the timer of
	// that name) after the commands. A time in the past fires at once.
	Timers []Timer
	// Cancel names timers to cancel. A name with no timer is ignored.
	Cancel []string
}

// Timer is a timer a step sets: the instance gets an [Input] with Timer
// set when it fires.
type Timer struct {
	// Name names the timer within its instance; at most one timer of a
	// name is pending. It must not be empty nor contain '/'.
	Name string
	// At is when it fires.
	At time.Time
	// Payload comes back in [Fired.Payload].
	Payload []byte
}

// Command is a command a step sends; build it with [Send].
type Command struct {
	target string
	name   string
	send   func(ctx context.Context) error
	err    error // why it cannot be sent, found by Send
}

// String names the command and its target, as errors do.
func (c Command) String() string {
	if c.send == nil {
		return "empty command"
	}
	return c.name + " to " + c.target
}

// Send returns the command cmd to the entity t: a local entity.Ref or a
// cluster ref. Its reply is dropped; a failure fails the step (see the
// package documentation, "Failures").
func Send[S, E, R any](t entity.Target[S, E], cmd entity.Command[S, E, R]) Command {
	c := Command{target: "<nil target>", name: fmt.Sprintf("%T", cmd)}
	switch {
	case t == nil:
		c.err = fmt.Errorf("%w: command %s to a nil target", ErrInvalid, c.name)
	case cmd == nil:
		c.err = fmt.Errorf("%w: a nil command to %s/%s", ErrInvalid, t.Type(), eventlog.FormatID(t.ID()))
	default:
		c.target = t.Type() + "/" + eventlog.FormatID(t.ID())
		if err := eventlog.ValidateStream(t.Type(), t.ID()); err != nil {
			c.err = fmt.Errorf("%w: command %s to %s: %v (a zero Ref?)", ErrInvalid, c.name, c.target, err)
		}
	}
	c.send = func(ctx context.Context) error {
		if c.err != nil {
			return c.err
		}
		_, err := entity.AskTarget(ctx, t, cmd)
		return err
	}
	return c
}

// validate checks a definition.
func (d *Definition[S]) validate() error {
	if err := eventlog.ValidateType(d.Name); err != nil {
		return fmt.Errorf("%w: process name: %v", ErrInvalid, err)
	}
	if len(d.Sources) == 0 {
		return fmt.Errorf("%w: process %s: no source types", ErrInvalid, d.Name)
	}
	for _, s := range d.Sources {
		if err := eventlog.ValidateType(s); err != nil {
			return fmt.Errorf("%w: process %s: source type: %v", ErrInvalid, d.Name, err)
		}
		if s == d.Name {
			return fmt.Errorf("%w: process %s: its own type %s cannot be a source", ErrInvalid, d.Name, s)
		}
	}
	if d.Correlate == nil {
		return fmt.Errorf("%w: process %s: nil Correlate", ErrInvalid, d.Name)
	}
	if d.Handle == nil {
		return fmt.Errorf("%w: process %s: nil Handle", ErrInvalid, d.Name)
	}
	return nil
}

// validateEffects checks what a step returned; timed says whether the
// manager has timers.
func validateEffects(eff Effects, timed bool) error {
	if len(eff.Timers)+len(eff.Cancel) > 0 && !timed {
		return fmt.Errorf("%w: the step sets or cancels timers, but the manager has none (WithTimers)", ErrInvalid)
	}
	for i, c := range eff.Commands {
		switch {
		case c.send == nil:
			return fmt.Errorf("%w: command %d is empty (build commands with process.Send)", ErrInvalid, i+1)
		case c.err != nil:
			return fmt.Errorf("command %d: %w", i+1, c.err)
		}
	}
	seen := make(map[string]bool, len(eff.Timers))
	for i, t := range eff.Timers {
		if err := validTimerName(t.Name); err != nil {
			return fmt.Errorf("%w: timer %d: %v", ErrInvalid, i+1, err)
		}
		if t.At.IsZero() {
			return fmt.Errorf("%w: timer %q: zero time", ErrInvalid, t.Name)
		}
		if seen[t.Name] {
			return fmt.Errorf("%w: timer %q set twice in one step", ErrInvalid, t.Name)
		}
		seen[t.Name] = true
	}
	for _, name := range eff.Cancel {
		if err := validTimerName(name); err != nil {
			return fmt.Errorf("%w: cancel: %v", ErrInvalid, err)
		}
	}
	return nil
}

func validTimerName(name string) error {
	switch {
	case name == "":
		return errors.New("empty timer name")
	case strings.Contains(name, "/"):
		return fmt.Errorf("timer name %q contains '/'", name)
	}
	return nil
}
