package entity

import (
	"context"
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
	// snapshots are off. A [binarize.RevisionCodec], such as a
	// *binarize.Versioned, also gives the state's revision and reads the
	// snapshots of older revisions through its upcasters.
	State binarize.Codec[S]
	// StateRevision is the revision of the state's schema as State encodes
	// it (0 by default). Every snapshot records it, so that a release that
	// changes S can tell the snapshots of an older one apart. Raise it when
	// an incompatible change to S ships: snapshots of another revision are
	// then not decoded but skipped, and the entity recovers from its events
	// (see [WithSnapshotPolicy]). With a [binarize.RevisionCodec] State,
	// leave it 0 or set it to the codec's revision, which is used.
	StateRevision uint32

	// events is Events as a ContextEventCodec, if it is one; appender is
	// Events as an AppendEventCodec, if it is one and not a
	// ContextEventCodec; resolved says that Register looked, so the
	// command path does not assert each time.
	events   binarize.ContextEventCodec[E]
	appender binarize.AppendEventCodec[E]
	resolved bool
}

// resolve looks once at what the codecs can do.
func (t *Type[S, E]) resolve() {
	t.events, _ = t.Events.(binarize.ContextEventCodec[E])
	if t.events == nil {
		t.appender, _ = t.Events.(binarize.AppendEventCodec[E])
	}
	t.resolved = true
}

// contextEvents returns Events as a ContextEventCodec, nil if it is not.
func (t *Type[S, E]) contextEvents() binarize.ContextEventCodec[E] {
	if t.resolved {
		return t.events
	}
	cc, _ := t.Events.(binarize.ContextEventCodec[E])
	return cc
}

// stateRevision returns the revision snapshots of the state are written at.
func (t *Type[S, E]) stateRevision() uint32 {
	if rc, ok := t.State.(binarize.RevisionCodec[S]); ok {
		return rc.Revision()
	}
	return t.StateRevision
}

// DecodeSnapshot returns the state that a snapshot's data, written at
// revision, holds, as recovery reads it: through State's DecodeRevision if
// State is a [binarize.RevisionCodec], else with State's Decode if revision
// is StateRevision. A revision it cannot read gives an error matching
// [binarize.ErrUnknownRevision]; bytes it cannot decode, the codec's error.
func (t *Type[S, E]) DecodeSnapshot(revision uint32, data []byte) (S, error) {
	return t.decodeSnapshot(context.Background(), revision, data)
}

// decodeSnapshot is DecodeSnapshot under ctx, for a State codec that is a
// [binarize.ContextRevisionCodec].
func (t *Type[S, E]) decodeSnapshot(ctx context.Context, revision uint32, data []byte) (S, error) {
	var zero S
	if cc, ok := t.State.(binarize.ContextRevisionCodec[S]); ok {
		return cc.DecodeRevisionContext(ctx, revision, data)
	}
	switch rc, ok := t.State.(binarize.RevisionCodec[S]); {
	case t.State == nil:
		return zero, fmt.Errorf("%w: entity type %q has no State codec", ErrInvalid, t.Name)
	case ok:
		return rc.DecodeRevision(revision, data)
	case revision != t.StateRevision:
		return zero, fmt.Errorf("%w: state of %s rev %d: the State codec reads only revision %d (StateRevision); make State a binarize.Versioned with an upcaster of revision %d to read it",
			binarize.ErrUnknownRevision, eventlog.FormatID(t.Name), revision, t.StateRevision, revision)
	}
	return t.State.Decode(data)
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
	if rc, ok := t.State.(binarize.RevisionCodec[S]); ok && t.StateRevision != 0 && t.StateRevision != rc.Revision() {
		return fmt.Errorf("%w: entity type %q: StateRevision %d differs from the revision of its State codec, %d; leave StateRevision 0", ErrInvalid, t.Name, t.StateRevision, rc.Revision())
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
