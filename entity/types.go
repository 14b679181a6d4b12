package entity

import (
	"fmt"

	"github.com/eventsourced-go/eventsourced/binarize"
	"github.com/eventsourced-go/eventsourced/eventlog"
)

// Type defines an entity type once: its name, initial state, how events change
// the state, and how events and state become bytes. S is the state and E the
// event type, usually an interface implemented by several event structs.
type Type[S, E any] struct {
	// Name identifies the type in the event log, such as "Counter". It must
	// not be empty and must be unique within a [System].
	Name string
	// Initial returns the state of an entity that has no events. Nil means
	// the zero S.
	Initial func() S
	// Apply returns the state after event e. It must be deterministic and
	// must not fail: events are facts. It runs on recovery, so it must not
	// have side effects.
	Apply func(state S, e E) S
	// Events encodes and decodes events, usually a *binarize.Registry[E].
	Events binarize.EventCodec[E]
	// State encodes and decodes state for snapshots. It may be nil when
	// snapshots are off.
	State binarize.Codec[S]
	// StateRevision is the revision of the state's schema as State encodes
	// it (0 by default). Every snapshot records it, so that a release that
	// changes S can tell the snapshots of an older one apart. Raise it when
	// an incompatible change to S ships.
	StateRevision uint32
}

func (t *Type[S, E]) initial() S {
	if t.Initial == nil {
		var zero S
		return zero
	}
	return t.Initial()
}

func (t *Type[S, E]) validate() error {
	switch {
	case t.Name == "":
		return fmt.Errorf("%w: entity type has no Name", ErrInvalid)
	case eventlog.ValidateType(t.Name) != nil:
		return fmt.Errorf("%w: %w", ErrInvalid, eventlog.ValidateType(t.Name))
	case t.Apply == nil:
		return fmt.Errorf("%w: entity type %q has no Apply", ErrInvalid, t.Name)
	case t.Events == nil:
		return fmt.Errorf("%w: entity type %q has no Events codec", ErrInvalid, t.Name)
	}
	return nil
}

// Command is a command for entities of state S and events E whose reply has
// type R. The command value carries its own handler, so [Ask] knows the reply
// type at compile time:
//
//	type Increment struct{ By int }
//
//	func (c Increment) Handle(tx *entity.Tx[Counter, Event]) (int, error) {
//		if c.By <= 0 {
//			return 0, errors.New("increment must be positive") // reject
//		}
//		s := tx.Persist(Incremented{By: c.By}) // persist, then reply
//		return s.Value, nil
//	}
//
// Handle expresses every effect: call [Tx.Persist] and return a reply computed
// from the new state (persist then reply), return a reply without persisting
// (reply only), return an error (reject: nothing is persisted, even if Persist
// was called), or return the zero reply (none). The runtime releases the reply
// only after the events are durable. Handle must not block or keep tx.
type Command[S, E, R any] interface {
	Handle(tx *Tx[S, E]) (R, error)
}

// Tx is what a command handler sees: the entity's id, state and Seq, and the
// means to persist events. It is valid only during the Handle call.
type Tx[S, E any] struct {
	def    *Type[S, E]
	id     string
	state  S
	seq    uint64
	events []E
	meta   map[string]string
}

// ID returns the entity id.
func (tx *Tx[S, E]) ID() string { return tx.id }

// State returns the current state, including events persisted earlier in this
// handler.
func (tx *Tx[S, E]) State() S { return tx.state }

// Seq returns the Seq of the last event in [Tx.State].
func (tx *Tx[S, E]) Seq() uint64 { return tx.seq }

// Metadata returns the command's metadata (see [WithMetadata]); every event
// persisted by the command carries it. The map must not be modified.
func (tx *Tx[S, E]) Metadata() map[string]string { return tx.meta }

// Persist records events to be persisted when the handler returns without an
// error, applies them and returns the new state. The reply is released only
// after the events are durable.
func (tx *Tx[S, E]) Persist(events ...E) S {
	for _, e := range events {
		tx.state = tx.def.Apply(tx.state, e)
		tx.seq++
	}
	tx.events = append(tx.events, events...)
	return tx.state
}
