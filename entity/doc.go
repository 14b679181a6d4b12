// Package entity is the event-sourced entity runtime: define an entity type
// once, and every entity id gets an actor that owns its state, handles
// commands one at a time, persists the resulting events to an [eventlog.Log],
// applies them, snapshots every N events and replies.
//
// A type is a [Type]: a name, an initial state, Apply, and codecs for events
// and state (package binarize). Commands are Go values that carry their own
// handler and reply type (see [Command]); [Ask] returns that reply type:
//
//	sys, _ := entity.NewSystem(eventlog.NewMemory())
//	counters, _ := entity.Register(sys, counterType)
//	n, err := entity.Ask(ctx, counters.Ref("c-1"), Increment{By: 2}) // n is an int
//
// # Lifecycle
//
// [Kind.Ref] is cheap and copyable; the first command activates the entity:
// it loads the latest snapshot, replays the events after it, then handles
// commands. Entities idle for [WithPassivateAfter] stop and reactivate on the
// next command. [System.Shutdown] drains accepted commands and stops;
// [System.Close] stops at once.
//
// # Batching
//
// A command to an idle entity runs at once, on the caller's goroutine: no
// hand-off to another goroutine and back. Commands that arrive while one
// runs wait in a per-entity queue, not in an actor's mailbox; when the
// running command is done, the entity's actor (spawned the first time
// commands queue up) takes every waiting command (up to [WithMaxBatch]),
// handles them in order against its in-memory state, persists all their
// events in one atomic append and only then releases all replies,
// rejections included. So a hot entity is not limited to one storage round
// trip per command, and per-entity order and read-your-writes hold. If the
// append fails, every command of the batch gets the error.
//
// # Waiting
//
// [Ask] returns by its ctx's deadline, whatever the entity or the store is
// doing. A command to an idle entity runs on the caller's goroutine and
// every store call it makes, a recovery included, is bounded by the
// caller's ctx (and the store timeout, [WithStoreTimeout]); a command that
// waits behind others waits only as long as its ctx lets it. A command
// whose caller gave up before it started never runs. A recovery whose
// caller gave up goes on in the background, bounded by the store timeout,
// so the commands that follow find it done; the store timeout also bounds
// the batches that entities' actors run for queued commands, and
// [System.Close] cancels them.
//
// # Failure semantics
//
//   - A reply (or nil error) means the command's events are durable.
//   - An error matching [ErrOutcomeUnknown] means the command may or may not
//     have taken effect; any other error means nothing of it was persisted
//     and it will not run later (see [Ask]).
//   - A failed append leaves it unknown whether the events landed. The caller
//     gets a [*PersistError]; the entity drops its state and recovers from the
//     log before the next command, so nothing is applied twice and nothing
//     acknowledged is lost. A conflict (another writer) is handled the same way.
//   - A rejection persists nothing, even if the handler called Persist first.
//   - A panic in a handler, Apply or codec is recovered: the caller gets a
//     [*PanicError] and the entity recovers from the log. Other entities and
//     the process are unaffected.
//   - An event that cannot be read or decoded stops recovery with a
//     [*RecoveryError] naming the type, id and Seq. Nothing is skipped; the
//     next command tries again. So does a snapshot that cannot be read.
//   - A snapshot that can be read but not used (see "Changing the state"
//     below) is skipped: the entity recovers from its events and saves a
//     fresh snapshot, unless [WithSnapshotPolicy] says to fail.
//   - A failed snapshot is logged at Error (type, id, Seq) and never fails a
//     command. A failed save is retried after the next persist; a state its
//     codec cannot encode, after the next WithSnapshotEvery events.
//
// # Idempotent commands
//
// A sender that cannot know whether its command took effect (it crashed,
// or Ask failed with [ErrOutcomeUnknown]) sends it again. To make that
// safe, it gives the command an idempotency key with
// [WithIdempotencyKey], derived from what made it send (a process
// manager: its id, the Position of the triggering event and the
// command's index; a durable timer: "timer/<id>/<generation>"), and the
// entity type keeps keys ([WithIdempotency], [WithIdempotencyWindow]):
//
//	accounts, _ := entity.Register(sys, accountType, entity.WithIdempotency())
//	ctx = entity.WithIdempotencyKey(ctx, "payout/p-7/42/0")
//	balance, err := entity.Ask(ctx, accounts.Ref("carol"), Deposit{Amount: 100})
//
// A keyed command that persists events records its key
// ([IdempotencyKeyMetadata]) and its reply, encoded
// ([IdempotencyReplyMetadata]; JSON, or the type's [WithReplyCodec]), in
// the metadata of its last event: in the same atomic append, so the key
// is recorded if and only if the command took effect. A command sent
// again with a key the entity has recorded does not run: Ask returns the
// recorded reply, decoded, and [AskPosition] the first outcome's Position
// (after a recovery, that of the event recording the key), without
// appending. So a command re-sent after a crash, after an outcome-unknown
// failure (the entity reads the log again before its next command and
// finds the key), or twice at once (the second, waiting behind the first
// or in its batch, gets the first's outcome) takes effect once.
//
// The limits:
//
//   - A keyed command that persists nothing (a rejection, a reply-only
//     command) records nothing: sent again, it runs again. Nothing was
//     applied, so running again is not applying twice; it may answer
//     differently if the state has changed.
//   - An entity remembers the keys recorded in its last n events
//     (default [DefaultIdempotencyWindow]); recovery reads them back from
//     the log, from before the snapshot it starts from if need be. A key
//     older than that, or whose event was deleted
//     ([WithDeleteEventsOnSnapshot], [Kind.Delete]), is forgotten: a
//     command re-sent that late runs again.
//   - A key belongs to one entity: the same key sent to two entities runs
//     on each. The key says nothing of the command: a different command
//     sent with a recorded key gets the recorded reply (if it decodes into
//     its reply type).
//   - The reply must survive its codec: JSON by default, which keeps only
//     exported fields and cannot decode into an interface type (such a
//     reply type is refused). A reply that cannot be encoded fails the
//     command with an error matching [ErrInvalid] that names the type, id,
//     key and command, and nothing is persisted; one that was recorded but
//     can no longer be decoded (its codec changed) fails the re-send with
//     an error matching ErrOutcomeUnknown: the command took effect.
//   - Ask refuses a keyed command to an entity type that keeps no keys
//     with an error matching ErrInvalid, rather than risk applying it
//     twice. An empty key is no key.
//
// A command without a key costs what it did: the key travels in the same
// context value as [WithMetadata]'s. [AskTarget] and cluster.Ask carry
// the key to the entity's owner wherever it runs.
//
// # Changing the state
//
// Snapshots outlive the release that wrote them. Each records the state's
// revision: [Type.StateRevision], or the revision of a
// [binarize.RevisionCodec] State codec such as binarize.Versioned. When a
// release changes the state so that older snapshots no longer decode into it
// correctly, it raises the revision and either
//
//   - registers a state upcaster (binarize.UpcastValue) that turns the older
//     revision into the current state: recovery reads old snapshots through
//     it, and entitytest.Fixture.GivenSnapshot tests it with the old bytes;
//   - or registers none: recovery skips snapshots of another revision (and
//     snapshots whose bytes do not decode), logs each at Warn, counts it in
//     eventsourced.snapshots.unusable, replays the events from Seq 1 and
//     saves a fresh snapshot at once. With [WithDeleteEventsOnSnapshot] the
//     events are gone, so such an entity fails to recover with an error
//     matching [ErrUnusableSnapshot] that says so, until an upcaster is
//     registered. [FailOnUnusableSnapshot] makes every unusable snapshot an
//     error.
//
// Events change through their registry's revisions and upcasters
// (binarize.Upcast).
//
// # Targets
//
// A [Ref] is a [Target], and so is a cluster.Ref: [AskTarget] sends a
// command through either, so calling code written against Target works
// when an entity type moves from one process to a cluster. [Ask] on a Ref
// is the allocation-free local path.
//
// # Deleting
//
// [Kind.Delete] deletes an entity as a whole, in turn with its commands: its
// events, leaving a tombstone at their last Seq (the log must implement
// eventlog.StreamDeleter), and its snapshots. Afterwards every command to
// the id fails with a [*RecoveryError] matching eventlog.ErrDeleted that
// names the type, id and Seq, in every process, and readers of the log no
// longer see its events. [AllowReuse] keeps the id usable: it starts again
// in its initial state at the Seq after the deleted ones, never at 1.
//
// # Telemetry
//
// A System reports through OpenTelemetry, to the global tracer and meter
// providers unless [WithTracerProvider] and [WithMeterProvider] say
// otherwise; a program that installs an SDK gets everything with no other
// code (a System notices an SDK installed after it was made within a
// second). Without an SDK, or [WithoutTelemetry], it costs nothing
// measurable.
//
//   - Spans: "<type> <command>" per command, a child of the caller's span,
//     with the entity type, id, command and outcome; "append <type>" per
//     append, a child of the command's span when the command ran alone on
//     its caller's goroutine, else a root linked to the spans of the
//     commands it carries; "recover <type>" per recovery, with the
//     snapshot's Seq and the events replayed; "snapshot <type>" per
//     snapshot saved. Failures are recorded on the span with an error
//     status.
//   - Trace context in events: every event a command persists carries the
//     command span's context in its metadata ([WithPropagator], W3C
//     traceparent by default), so projections, subscribers and other
//     services continue the trace.
//   - Metrics, by entity type (entity ids are never metric attributes):
//     eventsourced.commands and eventsourced.command.duration (s) by
//     outcome (ok, rejected, panic, conflict, persist_failed,
//     recovery_failed, canceled, abandoned, mailbox_full, closed, invalid,
//     deleted); eventsourced.append.commands, eventsourced.append.events and
//     eventsourced.append.duration (s; outcome ok, conflict, deleted,
//     failed);
//     eventsourced.activations and eventsourced.passivations;
//     eventsourced.recovery.duration (s) and eventsourced.recovery.events;
//     eventsourced.snapshots by outcome (ok, failed) and
//     eventsourced.snapshots.unusable; the gauges
//     eventsourced.entities.live and eventsourced.actors.running.
//
// The default logger is slog.Default(): a healthy System logs nothing per
// command; failures that reach no caller (a snapshot that cannot be
// encoded or saved) are logged at error with the type, id and Seq.
//
// # Concurrency
//
// [System], [Kind] and [Ref] are safe for concurrent use. Command handlers and
// Apply run one command at a time per entity, on the goroutine of the caller
// that found the entity idle or on the entity's actor; they must not block.
// The local command path uses no protoactor-go futures and, for an idle
// entity, no actor at all; protoactor-go provides the actors that drain
// queued commands, their lifecycle and supervision. An entity that has never
// had commands queue up has no actor, so an idle live entity costs a few
// hundred bytes.
//
// # Errors
//
// Sentinels: [ErrClosed], [ErrMailboxFull], [ErrInvalid], [ErrUnusableSnapshot], and [ErrPersist],
// [ErrRecovery], [ErrPanic] matched by the struct errors [*PersistError],
// [*RecoveryError] and [*PanicError]. A persist conflict also matches
// eventlog.ErrConflict; a store out of reach, eventlog.ErrUnavailable.
// [ErrOutcomeUnknown] is matched by the errors after which a command may
// have taken effect.
package entity
