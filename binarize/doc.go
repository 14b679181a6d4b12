// Package binarize converts typed Go values to bytes and back: the events an
// entity persists, its state in snapshots, commands and replies.
//
// # Formats
//
// A [Format] is a wire format that works on any Go value it supports:
// [JSON] (encoding/json), [Msgpack] (github.com/vmihailenco/msgpack/v5) and
// [Protobuf] (google.golang.org/protobuf, generated messages only). The
// formats are not generic; the generic layer is built on them.
//
// # Values
//
// [Value] returns the [Codec] of one Go type in a format, for values whose
// type is known where they are read, such as an entity's state:
//
//	state := binarize.Value[Account](binarize.Msgpack)
//	b, err := state.Encode(acc)
//	acc, err = state.Decode(b)
//
// # Events
//
// Events are polymorphic: an entity's event type E is usually an interface
// that several structs implement, so the bytes of an event travel with the
// name of its type. A [Registry] is the [EventCodec] that maps each
// registered concrete type to its name and back:
//
//	events := binarize.NewRegistry[Event](binarize.JSON)
//	binarize.MustRegister[Deposited](events, "Deposited")
//	binarize.MustRegister[Withdrawn](events, "Withdrawn")
//	name, rev, b, err := events.Encode(Deposited{Amount: 10})
//	e, err := events.Decode(name, rev, b)
//
// Register every type at start-up; then the registry is read-only and the
// log reads events with any name it has seen, forever. A Registry is also
// an [AppendEventCodec]: AppendEncode writes an event's bytes to the end
// of a caller's buffer, which the entity runtime reuses from one append to
// the next.
//
// # Revisions and upcasting
//
// Every registered type has a schema revision, 0 unless [Register] is given
// [Revision], and [Registry.Encode] returns it beside the bytes for the event
// log to store. When a type's encoding changes in a way that old bytes no
// longer decode into it (a field changes type or meaning), raise its
// revision and tell the registry, with [Upcast], how to read the old one: the
// old bytes are decoded into a type with the old shape and a function turns
// that into the current event.
//
//	binarize.MustRegister[Deposited](events, "Deposited", binarize.Revision(1))
//	binarize.MustUpcast(events, "Deposited", 0, func(old DepositedV0) (Event, error) {
//		return Deposited{Cents: int64(old.Amount) * 100}, nil
//	})
//
// An upcaster may return a type of another name, so renaming an event type is
// registering the new name and upcasting every revision of the old name.
// [Registry.Decode] looks up exactly the name and revision it is given: the
// current type if the revision is the current one, else the upcaster of that
// revision. There is no implicit chaining; an upcaster of revision 0 that
// should go through revision 1 calls the code of both steps.
//
// Adding a field or ignoring one needs no new revision in any of the three
// formats: missing fields decode as zero values and unknown ones are skipped.
//
// # Concurrency
//
// The formats, the codecs returned by [Value] and a [Registry] are safe for
// concurrent use. A registry takes a lock only to register; Encode and Decode
// read an immutable snapshot of its contents through an atomic pointer, so
// they never wait. Registering while other goroutines encode and decode is
// safe too, though a registry is meant to be complete before it is used.
//
// # Errors
//
// Registration errors match [ErrInvalid] (an empty name, an interface type, a
// type that is not an event, a type the format cannot encode, an upcast
// revision not lower than the current one) or [ErrDuplicate] (a name, type
// or name and revision registered twice). [MustRegister] and [MustUpcast]
// panic with them.
//
// [Registry.Encode] returns an error matching [ErrNotRegistered] for a value
// of a type that is not registered, or a nil event; [Registry.Decode] returns
// one matching [ErrUnknownEvent] for a name and revision that have neither a
// type nor an upcaster, naming the current revision if the name has one.
//
// Bytes that do not decode give a [*DecodeError] (matching [ErrDecode]) with
// the event name, revision and size, wrapping the format's error, the
// upcaster's error, or a panic of the decoding library or the upcaster, which
// is recovered: no input bytes make Decode panic. A value that does not
// encode gives an [*EncodeError] (matching [ErrEncode]). Codecs from [Value]
// return the same two types, with the Go type's name as Name.
package binarize
