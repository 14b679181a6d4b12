// Package projection keeps read models up to date: a [Projection] runs a
// [Handler] over the events of one entity type, in Position order, from an
// offset that an [OffsetStore] keeps under the projection's name. It is the
// read side of CQRS: entities write events, projections turn them into
// whatever the queries need. Stores that can list every offset they keep
// implement [OffsetLister] (all of this module's do), which operators'
// tools such as cmd/esctl use.
//
//	p, err := projection.New(log, "Tab", "open-tabs", projection.NewMemory(),
//		projection.DecodeEach(tabEvents, func(ctx context.Context, ev projection.Decoded[TabEvent]) error {
//			return openTabs.Apply(ev.EntityID, ev.Event) // ev.Record has the Seq, Position, metadata
//		}))
//	...
//	p.Start(ctx)
//	defer p.Stop(context.Background())
//
// [Decode] and [DecodeEach] decode each record with the type's event codec
// (its *binarize.Registry, upcasters included) before the handler sees it;
// [PerEvent] and a plain [Handler] get the raw records.
//
// A projection reads the type with [eventlog.Log.Subscribe] after its stored
// offset, reads ahead into a bounded buffer ([WithBufferSize]) and hands the
// handler one event at a time or, with [WithBatchSize], whatever has arrived
// up to the batch size. After each batch it moves the offset to the Position
// of the batch's last event, through [OffsetStore.Commit].
//
// Several projections may follow one entity type, each under its own name
// and with its own offset. [Projection.Reset] sets the offset back to 0 and
// runs a function that empties the read model, and the next start rebuilds
// it from the first event. Stores that cannot do both atomically set the
// offset first.
//
// # Reading your own writes
//
// entity.AskPosition returns the Position of a command's events;
// [Projection.WaitFor] waits, under a context, until the projection has
// handled it, so a request handler can answer a query from the read model
// that sees its own command, without polling.
//
// # Delivery guarantees
//
// How the handler's work and the offset update combine is the store's
// business:
//
//   - A transactional store (package pgprojection) runs the handler inside
//     the database transaction that moves the offset. A crash, a cancel or a
//     failure anywhere before the commit rolls back both: each event changes
//     the read model exactly once.
//   - Other stores ([Memory], package natsprojection) run the handler, then
//     save the offset. A crash between the two delivers the batch again on
//     restart: at least once. Handlers must be idempotent, for instance by
//     remembering the last Seq applied per entity and ignoring events at or
//     below it.
//
// Commits are conditional on the offset the batch started from, so two
// runners of the same name cannot both move it: the loser gets
// [ErrOffsetMoved], reloads the offset and carries on from it.
//
// # Failures
//
// A failing batch is retried with exponential backoff ([WithRetry]). After
// the configured number of attempts a batch of several events is retried
// event by event; an event that still fails is poison. [WithPoison] decides:
// [StopOnPoison] (the default) stops the projection before the event and
// [Projection.Wait] returns a [*PoisonError]; [SkipPoison] moves past it and
// records it in [Status.Skipped] and, with [WithDeadLetters], in a durable
// dead-letter store (see Dead letters). A panic in the handler counts as a failure.
// Failures of the offset store and of the log are not the event's fault:
// they are retried with the same backoff for as long as the projection runs.
// A store that stops answering (a stalled database, a lost reply) is a
// failure only with [WithStoreTimeout], which bounds each call of the
// store, the handler inside a Commit included; without it such a call
// holds the projection until Stop. [Projection.Status] reports the offset, the lag, the failed attempts since
// the last commit and the last error.
//
// # Operating a projection
//
// Everything an operator does to a projection is a method, so a program
// can do it; what an operator does from another process (a CLI) goes
// through the offset store's control records, below.
//
//   - Stop and start: [Projection.Stop] and [Projection.Start]. The
//     offset is stored as the projection goes, so a restarted projection
//     carries on after the last event it handled.
//   - Skip ahead or rewind: [Projection.SetOffset], while stopped. It
//     moves the stored offset with one conditional [OffsetStore.Commit]
//     without a handler (no store needs more than the contract for it)
//     and leaves the read model alone.
//   - Rebuild: [Projection.Reset], while stopped, with a function that
//     empties the read model; the next Start replays every event.
//   - Status: [Projection.Status] gives the offset, the lag, the [State]
//     (running, stopped, or poisoned: stopped before a poison event that
//     [Status.Poison] names), the failed attempts since the last commit and
//     the last error.
//   - Dead letters: list, retry and drop them, below.
//
// The projection runs in the application's processes, perhaps several
// (slices over a cluster); the operator's CLI holds no Projection. An
// offset store with the [Controls] capability ([Memory], pgprojection,
// natsprojection) keeps a [Control] record per name beside the offsets,
// which functions write without a Projection:
//
//   - [Pause] and [Resume]: a running projection reads its record every
//     [WithControlInterval] (1 s by default: one read per interval, none
//     per batch) and before it handles anything after Start. Paused, it
//     calls no handler, keeps its offset and read-ahead buffer, and
//     [Status.State] is [StatePaused] since [Status.PausedSince]; Stop
//     and Start work as usual and a Start starts paused. Resumed, it
//     carries on from its offset: the events appended meanwhile are
//     handled, exactly once with pgprojection. Pausing the name given to
//     [New] pauses every slice of it ([WithSlice]): an operator thinks in
//     projection names, and one record for all slices pauses them all
//     with one write, however many and wherever they run. Each slice also
//     obeys the record of its own [SliceName], to pause one slice alone.
//   - [RequestRetry] of a dead letter, by its [DeadLetter.Projection] and
//     Position: the runner of that name serves it at its next read, as
//     [Projection.RetryDeadLetter] would (exactly once with pgprojection),
//     and removes the request, whether the handler succeeded (the dead
//     letter is dropped) or failed (the dead letter keeps the new error).
//     A paused projection serves none until resumed. A runner that dies
//     before it removes a request serves it again later and finds the
//     dead letter gone, so nothing is handled twice that the dead-letter
//     store does not allow. Listing and dropping dead letters need no
//     runner: use the [DeadLetters] store directly.
//   - [UpdateControl] and [Controls.LoadControl] read and change the
//     record; writes are conditional on its version, so an operator and a
//     runner never lose each other's changes ([ErrControlChanged]).
//
// Setting the offset (skip, rewind) and Reset have no control request.
// Reset needs the read model's clear function, which only the
// application has. An offset moved from outside is safe only while no
// runner handles: [Pause] the projection, wait until every runner's
// Status says paused, then call [Projection.SetOffset] on a Projection
// of that name that is not started. It moves the offset with one
// conditional commit, so a paused runner's next commit after [Resume] is
// refused ([ErrOffsetMoved]) and it reloads the new offset; with an
// at-least-once store the batch it had in hand may be applied once.
//
// # Dead letters
//
// With [SkipPoison] and [WithDeadLetters], each poison event the projection
// skips is put, whole (the [eventlog.Record] with its data and metadata),
// with the handler's last error and the number of attempts, into a durable
// [DeadLetters] store under the projection's name and the event's
// Position. The Put is part of the commit that moves the offset past the
// event: a transactional store (pgprojection) writes the dead letter and
// the offset together; with the others the dead letter is written first.
// A failing Put is retried like any store failure, and the offset does not
// move: no event is skipped without its dead letter. With [StopOnPoison]
// nothing is recorded, since the offset stays before the event and the next
// Start handles it again.
//
// [Projection.ListDeadLetters] pages through them in Position order.
// [Projection.RetryDeadLetter], once the cause is fixed, runs the
// projection's handler on the stored event and drops the dead letter if it
// succeeds; if it fails, the dead letter stays with the new error. It may
// run while the projection runs: the handler is never called concurrently
// with itself. With pgprojection the retry runs in the transaction that
// deletes the dead letter (exactly once); with the others a crash between
// the handler and the delete leaves the dead letter, so a later retry
// delivers the event again (at least once, as for every event with those
// stores). [Projection.DropDeadLetter] gives up on one. Stores:
// [MemoryDeadLetters], pgprojection.Store.DeadLetters (a table),
// natsprojection.NewDeadLetters (a key-value bucket).
//
// With an at-least-once offset store, a crash after the Put and before the
// offset update delivers the poison event again on restart; if the handler
// then succeeds, a dead letter of an event that was applied remains, and
// retrying it applies the event a second time, which idempotent handlers
// tolerate.
//
// # Lag
//
// [Status.Lag] counts the events the projection has read from the log and
// not yet handled. The contract of [eventlog.Log] has no cheap way to count
// the events of a type after a Position (Positions have holes, since they are
// shared between types), so the projection does not guess: it reads ahead up
// to its buffer size and reports what it holds. When [Status.ReadAheadFull]
// is set, more events may wait in the log and Lag is a lower bound.
//
// # Telemetry
//
// A projection reports through OpenTelemetry ([WithTracerProvider],
// [WithMeterProvider], both the global providers by default, which record
// nothing until the program installs an SDK; then they cost nothing: no
// span, no clock read, no allocation per batch).
//
// Each attempt to handle a batch is a span "projection <name>" of kind
// consumer around [OffsetStore.Commit], so it covers the handler and the
// offset update (pgprojection's transaction). Its parent is the trace
// context found in the metadata of the batch's first event that has a
// valid one ([WithPropagator], W3C traceparent by default, as package
// entity writes it): the projection's work shows in the trace of the
// command that wrote the event. The span links to the other distinct
// trace contexts of the batch; an event with no trace context, or a
// malformed one, adds nothing and is never an error, and a batch without
// any is a root span. The handler's ctx carries the span, so the
// handler's own spans are its children. Its attributes are the projection
// name, the entity type, the number of events and the first and last
// Position; a failed attempt has an error status, and the commit that
// skips a poison event the outcome "skipped".
//
// Metrics, by projection name and entity type: eventsourced.projection.events
// (events handled), eventsourced.projection.batch.duration (each attempt,
// by outcome ok or failed), eventsourced.projection.retries (attempts
// retried after a failure of the handler, the offset store or the log),
// eventsourced.projection.poison (by outcome skipped or stopped), and,
// while the projection runs, the gauges eventsourced.projection.lag
// ([Status.Lag]) and eventsourced.projection.lag.time (while events wait:
// how long ago the last event handled was committed, [Status.LastEventTime]).
//
// The logger ([WithLogger], slog.Default() by default) gets nothing from a
// healthy projection: retries and offset reloads at Warn, poison events and
// handler panics at Error, with the projection's name and entity type and
// the event's id, Seq and Position.
//
// # Concurrency
//
// A [Projection]'s methods are safe for concurrent use. Each running
// projection owns two goroutines, a reader and the handler loop, and
// [Projection.Stop] waits for both. The handler is called from one goroutine
// at a time, never concurrently with itself, [Projection.RetryDeadLetter]
// and retry requests included: the handler loop reads the control records
// between batches, so a pause or a retry request never overlaps a commit. [Memory] and [MemoryDeadLetters] are safe for concurrent use.
//
// # Errors
//
// Sentinels: [ErrInvalid] for bad arguments and options (and the
// dead-letter methods of a projection without a store), [ErrRunning] for
// Start, Reset or SetOffset on a running projection or one being reset,
// [ErrOffsetMoved] from [OffsetStore.Commit] when the stored offset is not
// the expected one, [ErrPoison], matched by [*PoisonError],
// [ErrNotFound] for a dead letter that does not exist, and
// [ErrControlChanged] from [Controls.SaveControl] when the control record
// is not at the version read.
package projection
