package eventlog

import (
	"context"
	"errors"
	"fmt"
	"iter"
	"slices"
	"time"

	"github.com/eventsourced-go/eventsourced/internal/streamkey"
)

// Event is one event to append: its registered type name, the schema
// revision its bytes were written with, the encoded bytes and optional
// metadata. The log never interprets Data.
type Event struct {
	// Name is the event type name the binarizer registered, such as "Incremented".
	Name string
	// Revision is the schema revision of Data; 0 when the type has never changed.
	Revision uint32
	// Data is the encoded event. It may be empty.
	Data []byte
	// Metadata holds correlation id, causation id, trace context and the like.
	Metadata map[string]string
}

// Record is a stored event as read back from a [Log].
type Record struct {
	// EntityType and EntityID name the stream the event belongs to.
	EntityType string
	EntityID   string
	// Seq is the event's per-entity sequence number: 1, 2, 3 ... without gaps.
	Seq uint64
	// Position is the event's log-wide position: an append that starts
	// after another returned gets larger Positions, and readers by type
	// use them as offsets. Concurrent appends may commit out of Position
	// order; readers by Position then wait for the smaller ones (see
	// [Log.ReadType]).
	Position uint64
	// Name, Revision, Data and Metadata are as appended; see [Event].
	Name     string
	Revision uint32
	Data     []byte
	Metadata map[string]string
	// Time is when the log committed the event.
	Time time.Time
}

// Log is an append-only store of entity event streams. A stream is identified
// by (entity type, entity id).
//
// Implementations must be safe for concurrent use and must pass
// eventlogtest.Run.
type Log interface {
	// Append atomically appends events to the stream (typ, id) if and only if
	// the stream's last Seq equals expected (0: the stream must not exist or
	// have no events). The events get Seq expected+1, expected+2, ... On a
	// mismatch it returns a *ConflictError and appends nothing. It returns the
	// Position of the last appended event.
	Append(ctx context.Context, typ, id string, expected uint64, events ...Event) (uint64, error)

	// LastSeq returns the stream's last Seq, 0 if it has no events. Events
	// deleted with [Deleter] still count: the last Seq never goes down.
	LastSeq(ctx context.Context, typ, id string) (uint64, error)

	// ReadEntity yields the stream's events with Seq >= from in Seq order and
	// ends at the stream's current end. A stream that does not exist yields
	// nothing. An error is yielded once, as the last element.
	ReadEntity(ctx context.Context, typ, id string, from uint64) iter.Seq2[Record, error]

	// ReadType yields the events of every entity of type typ with Position >
	// after, in Position order, and ends at the current end. It never skips an
	// event that commits later with a smaller Position than one it yielded.
	ReadType(ctx context.Context, typ string, after uint64) iter.Seq2[Record, error]

	// Subscribe is ReadType that does not end: after the current end it waits
	// for new events and yields them as they commit, until ctx is done, when
	// it yields ctx.Err() and ends.
	Subscribe(ctx context.Context, typ string, after uint64) iter.Seq2[Record, error]
}

// AsyncAppender is the optional capability to append without the caller
// waiting for the outcome. The entity runtime uses it when a log has it: a
// command's caller then parks waiting for its reply, not inside the log, and
// no goroutine per append waits in the log for its commit.
type AsyncAppender interface {
	// AppendAsync is [Log.Append] that calls done with Append's results
	// instead of returning them. It calls done exactly once, from any
	// goroutine, possibly before AppendAsync returns (an invalid argument,
	// a closed log, a log without asynchronous support for the call).
	//
	// done runs on a goroutine of the log that answers other appends too:
	// it must not block, and must not call the log. The log keeps events
	// (and their Data and Metadata) until it calls done; the caller must not
	// modify them before.
	//
	// If ctx ends before the append was sent, done gets ctx's error and
	// nothing was appended. If it ends while the append is in flight, the
	// log either settles the append and reports its outcome, or reports an
	// error that leaves the outcome unknown, as Append would; either way it
	// calls done within its own timeouts, so a caller that waits for done
	// is never stuck. AppendAsync may block while the log applies
	// back-pressure (its queue is full), no longer than ctx allows.
	AppendAsync(ctx context.Context, typ, id string, expected uint64, events []Event, done func(pos uint64, err error))
}

// RoundAppender is the optional capability of an [AsyncAppender] that
// settles appends in rounds to wake the callers of a whole round at once.
// A caller that waits for each append's done on a channel of its own costs
// a channel and a wake-up per append; with AppendRound, the appends that
// joined the log's queue between two rounds share one channel, closed
// once, and the caller's done only records the outcome. The entity
// runtime uses it when a log has it.
type RoundAppender interface {
	AsyncAppender
	// AppendRound is [AsyncAppender.AppendAsync] that also returns a
	// channel that the log closes after done has returned. The channel
	// may be shared with other appends; the log closes it once done of
	// every one of them has returned, so it may close later than this
	// append's done returned, never earlier. If done runs before
	// AppendRound returns, the channel returned is already closed, or
	// closes without waiting for any round.
	//
	// Everything done wrote happens before the channel's close, so a
	// caller that receives from the channel may read it.
	AppendRound(ctx context.Context, typ, id string, expected uint64, events []Event, done func(pos uint64, err error)) <-chan struct{}
}

// Deleter is the optional capability to delete a stream's events up to and
// including a Seq, typically those covered by a snapshot. Deleting never
// lowers the stream's last Seq, and appends keep using it as expected.
type Deleter interface {
	// DeleteTo deletes the events of the stream (typ, id) with Seq <= seq.
	// A seq of 0 deletes nothing; a seq beyond the stream's last Seq deletes
	// all of its events. Deleted events are gone for every reader.
	DeleteTo(ctx context.Context, typ, id string, seq uint64) error
}

// AllReader is the optional capability to read the events of every entity
// type, or of a chosen set of types, in one order: log-wide Position order.
// It makes the Position promise of [Log.ReadType] for the whole log: a
// reader never skips an event that commits later with a smaller Position
// than one it has already yielded, so resuming after the last Position
// seen is always safe, whatever types are written concurrently. Events
// deleted with [Deleter] or [StreamDeleter] are skipped, as by ReadType.
type AllReader interface {
	// ReadAll yields the events with Position > after of every entity
	// type, or only of the types given (each validated as by
	// [ValidateType]; a type named twice counts once), in Position order,
	// and ends at the current end. An error is yielded once, as the last
	// element.
	ReadAll(ctx context.Context, after uint64, types ...string) iter.Seq2[Record, error]

	// SubscribeAll is ReadAll that does not end: after the current end it
	// waits for new events and yields them as they commit, until ctx is
	// done, when it yields ctx.Err() and ends.
	SubscribeAll(ctx context.Context, after uint64, types ...string) iter.Seq2[Record, error]
}

// StreamDeleter is the optional capability to delete a stream as a whole,
// leaving a tombstone at its last Seq so that the id cannot silently start
// again at Seq 1 under readers that remember it (projections, caches).
//
// After DeleteStream returns, in every process:
//   - no reader yields an event of the stream appended before the delete:
//     ReadEntity, ReadType, Subscribe and EntityIDs skip them (a
//     subscription that yielded some earlier keeps what it yielded);
//   - LastSeq still returns the Seq the stream reached (it never goes down);
//   - with reuse false (a final tombstone) Append to the stream fails with a
//     [*DeletedError], whatever Seq it expects, and ReadEntity yields one
//     [*DeletedError] and ends, so a reader tells a deleted id from one
//     that never existed without another call;
//   - with reuse true the stream stays open: it behaves as one whose events
//     were all deleted with [Deleter.DeleteTo], so Append expecting the last
//     Seq continues at last+1, and EntityIDs lists the id again once it has
//     a new event.
type StreamDeleter interface {
	// DeleteStream deletes every event of the stream (typ, id) and leaves a
	// tombstone at its last Seq, which it returns. Deleting a stream with
	// no events tombstones it at 0. Deleting again is not an error: it
	// returns the same Seq, and a final delete of a stream tombstoned for
	// reuse makes the tombstone final. A reuse delete of a finally
	// tombstoned stream fails with a [*DeletedError]: a final tombstone is
	// never lifted.
	DeleteStream(ctx context.Context, typ, id string, reuse bool) (uint64, error)
}

// IDLister is the optional capability to list the ids of the entities of a
// type that have at least one appended event, in no particular order.
type IDLister interface {
	// EntityIDs yields each id once. An error is yielded once, as the last
	// element.
	EntityIDs(ctx context.Context, typ string) iter.Seq2[string, error]
}

// TypeLister is the optional capability to list the entity types of a log,
// for tools that see a log without knowing the application's types
// (operators' commands, copies of a whole log).
type TypeLister interface {
	// EntityTypes yields, once each and in no particular order, every
	// entity type that has at least one appended event. A type whose
	// events were all deleted ([Deleter], [StreamDeleter]) may still be
	// listed. An error is yielded once, as the last element.
	EntityTypes(ctx context.Context) iter.Seq2[string, error]
}

// Closer is implemented by logs that hold resources to release.
type Closer interface {
	// Close releases the log's resources. Afterwards the log's methods
	// return [ErrClosed].
	Close() error
}

var (
	// ErrConflict is matched by every [*ConflictError]: the stream's last Seq
	// was not the expected one.
	ErrConflict = errors.New("eventlog: conflict")
	// ErrInvalid reports bad arguments: a type or id that [ValidateStream]
	// refuses (empty, longer than [MaxTypeLen] or [MaxIDLen], not UTF-8, with
	// a NUL byte), an append with no events or with an event without a name,
	// or an event larger than the backend can store (4 GiB for [Memory]).
	ErrInvalid = errors.New("eventlog: invalid argument")
	// ErrClosed reports use of a closed log.
	ErrClosed = errors.New("eventlog: closed")
	// ErrUnavailable reports that the store could not be reached or that the
	// connection to it broke: the server is down, restarting or cut off. A
	// read that fails with it may be retried as it is. An append that fails
	// with it may or may not have landed: read the stream before deciding
	// what to append next, as the entity runtime does. Backends wrap their
	// own sentinel and the native error around it.
	ErrUnavailable = errors.New("eventlog: store unavailable")
	// ErrDeleted is matched by every [*DeletedError]: the stream was deleted
	// with a final tombstone ([StreamDeleter]).
	ErrDeleted = errors.New("eventlog: stream deleted")
)

// DeletedError reports the use of a stream that [StreamDeleter.DeleteStream]
// deleted for good: an append to it, or a read of its events.
type DeletedError struct {
	EntityType string
	EntityID   string
	// Seq is the stream's last Seq when it was deleted, where the tombstone
	// stands.
	Seq uint64
}

// Error implements error.
func (e *DeletedError) Error() string {
	return fmt.Sprintf("eventlog: %s/%s was deleted at seq %d; its id cannot be used again", FormatID(e.EntityType), FormatID(e.EntityID), e.Seq)
}

// Is reports whether target is [ErrDeleted].
func (e *DeletedError) Is(target error) bool { return target == ErrDeleted }

// ConflictError reports an optimistic concurrency conflict on one stream.
type ConflictError struct {
	EntityType string
	EntityID   string
	// Expected is the last Seq the appender expected.
	Expected uint64
	// Actual is the stream's last Seq when the append was refused. Backends
	// whose native error does not carry it read it on the conflict path.
	Actual uint64
}

// Error implements error.
func (e *ConflictError) Error() string {
	return fmt.Sprintf("eventlog: conflict on %s/%s: expected seq %d, actual %d", FormatID(e.EntityType), FormatID(e.EntityID), e.Expected, e.Actual)
}

// Is reports whether target is [ErrConflict].
func (e *ConflictError) Is(target error) bool { return target == ErrConflict }

// MaxIDLen and MaxTypeLen are the longest entity id and entity type name,
// in bytes, that every Log and snapshot store accepts (255 each). Ids and
// names are also valid UTF-8 without NUL bytes. [ValidateStream] refuses
// anything else, before any I/O.
const (
	MaxIDLen   = streamkey.MaxLen
	MaxTypeLen = streamkey.MaxLen
)

// ValidateStream checks an entity type and id as every Log must before any
// I/O: not empty, at most [MaxTypeLen] and [MaxIDLen] bytes, valid UTF-8
// without NUL bytes. The error matches [ErrInvalid] and says which rule
// broke (for a long one, the limit and the length); it quotes the id as
// [FormatID] does.
func ValidateStream(typ, id string) error {
	if msg := streamkey.Check(typ, id); msg != "" {
		return fmt.Errorf("%w: %s", ErrInvalid, msg)
	}
	return nil
}

// ValidateType checks an entity type name given alone (ReadType, Subscribe,
// EntityIDs), as [ValidateStream] does.
func ValidateType(typ string) error {
	if msg := streamkey.CheckType(typ); msg != "" {
		return fmt.Errorf("%w: %s", ErrInvalid, msg)
	}
	return nil
}

// ValidateTypes checks the types of [AllReader.ReadAll] and
// [AllReader.SubscribeAll] as every AllReader must before any I/O: each as
// [ValidateType] does. It returns them without repeats, in the order they
// first appear, so a backend reads a type named twice once; none (nil)
// means every type.
func ValidateTypes(types []string) ([]string, error) {
	var out []string
	for i, typ := range types {
		if err := ValidateType(typ); err != nil {
			return nil, fmt.Errorf("%w (type %d of %d)", err, i+1, len(types))
		}
		if !slices.Contains(out, typ) {
			out = append(out, typ)
		}
	}
	return out, nil
}

// FormatID returns an entity id or type name as error messages quote it:
// as it is when it is short and plain, else quoted, and past 64 bytes cut
// and followed by its length, so no message carries a whole long id.
func FormatID(id string) string { return streamkey.Format(id) }

// Validate checks the arguments of an Append as every Log must: the stream
// as [ValidateStream] does, at least one event, every event named. Backends
// call it first.
func Validate(typ, id string, events []Event) error {
	if err := ValidateStream(typ, id); err != nil {
		return err
	}
	if len(events) == 0 {
		return fmt.Errorf("%w: append to %s/%s with no events", ErrInvalid, FormatID(typ), FormatID(id))
	}
	for i, ev := range events {
		if ev.Name == "" {
			return fmt.Errorf("%w: append to %s/%s: event %d has no name", ErrInvalid, FormatID(typ), FormatID(id), i)
		}
	}
	return nil
}
