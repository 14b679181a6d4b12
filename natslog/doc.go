// Package natslog stores events in a NATS JetStream stream and snapshots in
// a JetStream KV bucket: [Log] implements [eventlog.Log] and
// [SnapshotStore] implements [snapshotstore.Store]. [StartEmbedded] runs a
// nats-server inside the process, with JetStream keeping its files in a
// directory, so nothing needs installing.
//
//	srv, _ := natslog.StartEmbedded("./.eventsourced-data")
//	defer srv.Shutdown()
//	nc, _ := srv.Connect() // or nats.Connect(url, tls, credentials ...)
//	defer nc.Close()
//	js, _ := jetstream.New(nc)
//	_ = natslog.Setup(ctx, js)   // create or update the stream and bucket
//	log, _ := natslog.New(ctx, js)
//	snaps, _ := natslog.NewSnapshotStore(ctx, js)
//	sys, _ := entity.NewSystem(log, entity.WithSnapshotStore(snaps))
//
// The caller supplies the JetStream context, so TLS, credentials, server
// URLs, API prefix and domain come with its connection. [Setup] creates or
// updates the stream and the bucket; [New] and [NewSnapshotStore] only check
// them. Names, replicas, storage and limits are options ([WithStream],
// [WithPrefix], [WithBucket], [WithReplicas], [WithStorage],
// [WithMaxBytes], ...). natslog needs nats-server 2.12 or later, for atomic
// batch publish.
//
// [KeyStore] implements keystore.Store, the data keys of crypto-shredding,
// in a KV bucket of its own (default [DefaultKeyBucket]) that
// [KeyStore.Setup] creates: one value per key, deletes allowed and no
// direct gets, so that Forget can erase a key with the server's secure
// delete and no process reads a forgotten key afterwards. See [KeyStore].
//
// # Layout
//
// The events of entity (type, id) are messages on the subject
// <prefix>.<type>.<id> (prefix "es" by default) with the event's data as
// payload and headers Es-Seq (the per-entity Seq), Es-Event (the event
// name), Es-Rev (the schema revision, when not 0) and Es-Meta (metadata).
// A record's Position is its stream sequence. Types and ids follow the
// event log's one rule (eventlog.ValidateStream: up to 255 bytes of UTF-8
// each); those that are not plain subject tokens are escaped, not refused:
// letters, digits, '_' and '-' stand for themselves and any other byte
// becomes '=' and two hex digits, so id "user@x.io" is the token
// "user=40x=2Eio".
//
// # Appends
//
// An append is conditional on the entity's last message: the server
// refuses it if anything else was appended to the entity since, the first
// write included (JetStream's expected last subject sequence; its "wrong
// last sequence" errors become a [*eventlog.ConflictError] with the actual
// Seq). The Log remembers the last Seq of up to [WithCacheSize] entities, so
// an append to a live entity is one round trip. One event is one publish;
// several are one atomic batch, stored all or none. Appends from many
// goroutines are pipelined on the connection, so many entities appending at
// once share round trips, and a conflict fails only the append that caused
// it.
//
// [Log.AppendAsync] ([eventlog.AsyncAppender], which the entity runtime
// uses when nothing is measured) is Append whose caller does not wait. The
// common append, one event to an entity whose last stream sequence the Log
// remembers (or a first append with nothing remembered), costs no goroutine
// and no timer: its message goes to the Log's publisher goroutine, and the
// server's ack, taken on the goroutine that receives the Log's replies,
// settles it and calls done there. One sweeper per Log fails the appends in
// flight whose ctx ended, within a few tens of milliseconds, and those of a
// connection that drops at once, as Append would fail them. The rest
// (several events, a lookup first, a refusal to tell a conflict from a
// stale remembered sequence, spans or metrics on) runs Append's logic on a
// goroutine that calls done.
//
// Atomic batches cost more than single publishes: a server with file
// storage and one replica stages a batch in files it flushes to disk before
// committing, so a multi-event append waits for a disk sync (milliseconds on
// slow disks), while single-event appends are acknowledged from memory and
// synced in the background (see [WithServerSyncAlways]). At most
// [DefaultMaxInflightBatches] (see [WithMaxInflightBatches]) are in flight
// per Log; the server allows 50 per stream.
//
// # Reads
//
// Reads use direct gets: no consumer is created. A recovery after a
// snapshot reads only the entity's last events, not the stream, and the
// recoveries of many entities activated together (a restart, a burst)
// share their requests. [Log.Subscribe] uses an ordered consumer that
// resumes after the last Position it delivered, also across reconnects.
// Stream sequences are assigned when messages are stored, so a reader by
// Position never skips an event that commits later.
//
// [Log.ReadAll] and [Log.SubscribeAll] read every type in one Position
// order the same ways, on the subjects <prefix>.*.* (which the tombstone
// lists below do not match), or <prefix>.<type>.* for one type. A set of
// several types is read on <prefix>.*.* too, keeping the events of the
// types chosen: a direct get takes one filter, and merging one read per
// type could skip an event when replicas answer from different states; a
// consumer with one filter per type delivers several times slower (see
// [Log.SubscribeAll]). So such a read costs what a read of every type
// does.
//
// # Replicated streams
//
// With [WithReplicas] above 1, appends go to the stream's leader, which
// checks the expected last subject sequence against everything it has
// accepted: an acknowledged append is stored on a majority of the
// replicas, and none is stored twice. Direct gets, though, are answered
// by any replica, followers included, and a follower may be a moment
// behind the leader (longer while it catches up after a restart: the
// server lets it answer from about 90% caught up). So a read may miss
// the latest events for that moment. An entity that recovers from such a
// read (after an append of unknown outcome, say) has an older state; its
// next append is refused by the leader and fails with a conflict (nothing
// stored) whose actual Seq comes from the leader, and the entity recovers
// again. So replies of commands that
// persist are never computed from a stale state; replies of commands
// that persist nothing may be, until the next append.
//
// While a stream has no leader (an election, typically 4 to 9 seconds
// after its leader's server dies), appends fail: with [ErrUnavailable]
// when the connection to the dead server dropped with them in flight
// (outcome unknown) or when nothing took them (nothing stored), or with
// ctx's deadline when a surviving server forwarded them to a leader that
// never answered (outcome unknown). Reads go on from the followers.
// internal/natscluster's TestStreamLeaderKilledUnderLoad measures it.
//
// # Optional capabilities
//
// [Log] implements [eventlog.Deleter] (purging an entity's subject below the
// first event it keeps; deleting all events leaves a small marker message
// that keeps the last Seq), [eventlog.StreamDeleter], [eventlog.IDLister]
// and [eventlog.TypeLister] (from the stream's per-subject state),
// [eventlog.AllReader] (see Reads), [eventlog.AsyncAppender] (see Appends)
// and [eventlog.Closer].
// [SnapshotStore] implements [snapshotstore.Lister] and
// [snapshotstore.Closer].
//
// [Log.DeleteStream] publishes a tombstone on the entity's subject: a
// marker with header Es-Deleted "final" or "stream" (reuse) and Es-Seq the
// last Seq (0 for an entity without events), published with Nats-Rollup:
// sub, so the server purges the subject's earlier messages as it stores
// it, and with the expected last subject sequence, like an append, so an
// append racing with it lands before it (and is purged) or is refused.
// Appends and reads find a final tombstone in the lookup of the entity's
// last message they make anyway and fail with [*eventlog.DeletedError];
// readers by type skip it as they skip every marker. The stream must
// allow rollups, which [Setup] turns on (for a stream set up by an earlier
// release, run Setup again). Before its first tombstone an entity gets an
// empty message on <prefix>.<type>.<id>.deleted, which no reader of
// events sees and [Log.EntityIDs] uses to skip tombstoned entities
// without reading every entity's last message.
//
// # Concurrency
//
// [Log] and [SnapshotStore] are safe for concurrent use. Appends to the same
// entity from several goroutines or processes are serialized by the
// server's expected-sequence check: one wins, the others get a conflict.
// Iterators may be consumed in any goroutine, one at a time each. A Log owns
// its readers, a goroutine that follows the connection's status, and
// AppendAsync's publisher, sweeper and fallback goroutines; a
// SnapshotStore owns one that follows the status. Close stops them (and
// calls the done of every AppendAsync in flight): close a Log or
// SnapshotStore before closing its connection. AppendAsync calls done on
// the goroutine that receives the Log's replies, among others: done must
// not block.
//
// # Waiting and connection loss
//
// Every method returns by its ctx's deadline; without one, a call is bounded
// by [WithTimeout] or the JetStream context's default timeout. A request
// whose connection drops may never be answered, so the Log and the
// SnapshotStore follow the connection's status (nats.Conn.StatusChanged,
// which leaves the application's handlers alone): the calls in flight when
// it drops fail at once, and calls made while it is down fail without
// sending anything, both with [ErrUnavailable]. A read that fails with it
// may be retried; an append may or may not have landed (the entity runtime
// recovers the entity from the log before its next command). Subscriptions
// are not failed: their ordered consumers resume after the last Position
// they delivered once the client is back.
//
// A publish made in the instant the connection drops, before the Log has
// heard of it, waits in the client's reconnect buffer and is sent once the
// client reconnects: its append has failed with an unknown outcome, and it
// may land; the entity's next append then sees a conflict and recovers.
// nats.ReconnectBufSize(-1) makes such publishes fail instead.
//
// So service comes back as soon as the client reconnects, which its
// options decide. Connect with nats.MaxReconnects(-1) (never give up) and a
// short nats.ReconnectWait, such as 100 to 250 ms rather than the default
// 2 s; [EmbeddedServer.Connect] does (100 ms).
//
// # Telemetry
//
// A [Log] and a [SnapshotStore] report through OpenTelemetry to the
// providers of [WithTracerProvider] and [WithMeterProvider], by default the
// global ones. Until the program installs an SDK they start no span and
// measure nothing, not even the time. Every span and metric has the
// attribute eventsourced.backend = "nats"; entity ids are span attributes,
// never metric attributes. The spans, all of kind client:
//
//   - "natslog append": one per [Log.Append], a child of the span in its
//     ctx (the entity runtime's append span). Appends are pipelined one by
//     one, not batched, so each has its own. Attributes
//     eventsourced.entity.type, eventsourced.entity.id, eventsourced.seq
//     (of the first event), eventsourced.events, eventsourced.outcome (ok,
//     conflict, deleted, failed) and, on success, eventsourced.position; error
//     status on failure, conflicts included.
//   - "natslog lookup last": one per multi-subject direct get of the
//     readers (see Reads), a root linked to the spans of the lookups it
//     serves. Attributes eventsourced.subjects and eventsourced.lookups.
//   - "natslog snapshot save" and "natslog snapshot load": children of the
//     caller's span, with eventsourced.entity.type and
//     eventsourced.entity.id.
//
// The metrics:
//
//   - eventsourced.log.append.duration (histogram, s): from Append's call
//     to its answer, by eventsourced.outcome: ok, conflict or failed.
//   - eventsourced.log.conflicts (counter, {append}): appends refused with
//     an [*eventlog.ConflictError].
//   - eventsourced.log.append.inflight (up-down counter, {append}): appends
//     called and not yet answered.
//   - eventsourced.log.requests.lost (counter, {request}): requests of a
//     Log or SnapshotStore that failed because the connection dropped
//     while they were in flight (see below); their outcome is unknown.
//   - eventsourced.log.multi_get.lookups (histogram, {lookup}): entities
//     one multi-subject direct get looks up.
//   - eventsourced.snapshotstore.operation.duration (histogram, s): by
//     eventsourced.operation (save, load) and eventsourced.outcome (ok,
//     failed).
//
// A Log and a SnapshotStore log to [WithLogger], by default slog.Default().
// A healthy one logs nothing per call; what fails where no caller may look
// is logged, with component "natslog.Log" or "natslog.SnapshotStore": the
// connection dropping (Warn, before the calls in flight fail), coming back
// (Info) and being closed for good (Error), and the data of replaced
// snapshots that could not be purged (Warn, with type and id). A publish
// retried because nothing stored it is Debug.
//
// # Errors
//
// Conflicts are [*eventlog.ConflictError], matching [eventlog.ErrConflict].
// Bad arguments match [eventlog.ErrInvalid] or [snapshotstore.ErrInvalid];
// an event over the server's max payload, or an append of more events than
// one atomic batch holds, matches both [ErrTooLarge] and
// [eventlog.ErrInvalid] and is refused before anything is sent. A server
// without JetStream gives [ErrNoJetStream]; a missing or misconfigured
// stream or bucket gives [ErrNotSetUp]; a bad option, or one the call does
// not take, gives [ErrInvalidOption]; a server out of reach, or a stream no
// server answers for, gives [ErrUnavailable] (see above; it also matches
// [eventlog.ErrUnavailable]). Native
// errors are translated by JetStream error code, never by message. Any other
// append error (a timeout, a lost connection) leaves it unknown whether the
// events landed; the entity runtime then recovers from the log. After
// Close, methods return [eventlog.ErrClosed] or [snapshotstore.ErrClosed].
package natslog
