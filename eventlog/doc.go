// Package eventlog defines the contract between the entity runtime and the
// storage of events: the [Log] interface, the [Event] appended and the
// [Record] read back, the errors every backend reports, and [Memory], the
// in-memory reference implementation.
//
// This is the package backends implement; applications use the entity
// runtime, which calls a Log. Logs speak bytes: encoding events is the
// runtime's business, not the log's.
//
// # Streams, Seq and Position
//
// A stream is the events of one entity, named by (entity type, entity id).
// Each event of a stream carries a Seq: 1 for the first, then 2, 3 ...
// without gaps on every backend. [Log.Append] is atomic (all of its events or
// none) and conditional: it succeeds only if the stream's last Seq equals the
// expected one, 0 meaning the stream must have no events, so the first write
// is guarded too. A mismatch is a [*ConflictError].
//
// An entity type name is 1 to [MaxTypeLen] bytes and an entity id 1 to
// [MaxIDLen] bytes (255 each), of valid UTF-8 without NUL bytes. Every Log
// refuses others with [ErrInvalid] before any I/O, so an id that one backend
// accepts works on all of them.
//
// Every record also carries a Position, unique in the log, that orders the
// events of one entity type for readers that follow a whole type, such as
// projections: [Log.ReadType] reads after a Position and ends at the current
// end, [Log.Subscribe] keeps waiting for more. Positions may have holes (they
// are shared between types, and a backend may burn some), but a reader never
// skips an event that commits later with a smaller Position than one it has
// already yielded: resuming after the last Position seen is always safe.
// Seq is for one entity's history; Position is for following many.
//
// Reads are iterators of ([Record], error). An error is yielded once, as the
// last element; a read stops early when the consumer breaks out of its loop,
// and stops with the context's error when its ctx is done.
//
// # Optional capabilities
//
// Backends may implement small extra interfaces, which callers find by type
// assertion and do without when they are missing:
//
//   - [Deleter] deletes a stream's events up to a Seq, typically those a
//     snapshot covers. The last Seq never goes down, so appends carry on
//     from it.
//   - [StreamDeleter] deletes a stream as a whole and leaves a tombstone
//     at its last Seq: a final one refuses every later append with a
//     [*DeletedError] and makes ReadEntity yield one, a reuse one lets the
//     stream continue after the last Seq. Either way no reader yields the
//     deleted events again, and EntityIDs skips the id until it has a new
//     event.
//   - [IDLister] lists the ids of the entities of a type.
//   - [TypeLister] lists the entity types.
//   - [AllReader] reads every entity type, or a set of types, in one
//     Position order, finite and live: read models built from several
//     types.
//   - [Closer] releases the backend's resources.
//   - [AsyncAppender] appends without its caller waiting: a callback gets
//     the outcome, so no goroutine waits inside the backend per append.
//   - [RoundAppender], for a backend that settles appends in rounds (a
//     transaction, a batch of acknowledgements), also returns a channel
//     shared by a round's appends and closed once all are answered, so one
//     close wakes their callers.
//
// [Memory] implements all of them but the last two: its Append does the
// work at once, on the caller's goroutine.
//
// # Writing a backend
//
// A backend implements [Log], calls [Validate] first in Append and
// [ValidateStream], [ValidateType] or [ValidateTypes] first in its other
// methods, translates its native conflict (a unique-key violation, a
// wrong-last-sequence error) into a [*ConflictError] rather than matching
// error strings, and wraps other errors with context, for example
// fmt.Errorf("mylog: append %s/%s: %w", typ, id, err). It then runs the
// conformance suite in its tests:
//
//	func TestLog(t *testing.T) {
//		eventlogtest.Run(t, func(t *testing.T) eventlog.Log {
//			l := mylog.New(...)
//			t.Cleanup(func() { l.Close() })
//			return l
//		})
//	}
//
// eventlogtest.Run checks every rule above, including concurrent appenders,
// guarded first writes and gap-free reading by Position with concurrent
// writers, and eventlogtest.Bench runs the shared benchmarks.
//
// # Concurrency
//
// Every [Log] is safe for concurrent use by multiple goroutines, and so is
// [Memory]. Iterators may be consumed in any goroutine, but one iterator by
// one goroutine at a time. [Memory] never holds a lock while the consumer
// of a read runs, so a slow reader does not block appenders.
//
// # Errors
//
// Each condition has one sentinel, matched with [errors.Is]:
// [ErrConflict] (always a [*ConflictError], whose Expected and Actual fields
// [errors.As] gives access to), [ErrInvalid] for bad arguments,
// [ErrClosed] after [Closer.Close], [ErrDeleted] (always a [*DeletedError]
// naming the stream and the Seq of its tombstone) for a stream deleted for
// good, and [ErrUnavailable] when the store is out of reach (a read may be
// retried; an append's outcome is unknown). Reads
// stopped by their context yield the context's error, matching
// [context.Canceled] or [context.DeadlineExceeded].
//
// # Waiting
//
// Every method that can block returns by its context's deadline (plus the
// time to notice it), and a backend fails the calls in flight on a
// connection it has lost at once, rather than waiting for their deadline.
package eventlog
