// Package postgreslog is an [eventlog.Log] and a [snapshotstore.Store] on
// PostgreSQL, through a *pgxpool.Pool the caller builds (TLS, authentication
// and pool size come from its config). Appends from many entities go out
// together, in one transaction per batch, and readers by Position never skip
// an event that commits late.
//
//	pool, _ := pgxpool.New(ctx, "postgres://app@db/app?connect_timeout=5")
//	if err := postgreslog.Setup(ctx, pool); err != nil { ... } // idempotent
//	log, _ := postgreslog.New(pool)
//	defer log.Close()
//	snaps, _ := postgreslog.NewSnapshotStore(pool)
//	sys, _ := entity.NewSystem(log, entity.WithSnapshotStore(snaps))
//
// # Tables
//
// [Setup] creates four tables, named <prefix>events, <prefix>streams, <prefix>snapshots and
// <prefix>meta with the prefix "eventsourced_" unless [WithTablePrefix],
// [WithTables] or [WithSchema] say otherwise. Names are validated and always
// quoted. The meta table records the schema version ([SchemaVersion]), so a
// later release can migrate them; Setup refuses tables of a newer version
// with [ErrSchemaVersion]. It takes an advisory lock, so several processes
// may run Setup at once. Version 2 added the tombstone columns of the
// streams table; Setup migrates tables of version 1 in place, without
// rewriting them; until it has run, a Log of this release fails its
// appends and entity reads with [ErrNotSetUp]. Version 3 added the unique
// index on position that [Log.ReadAll] pages through. Until Setup has
// built it every call works, but ReadAll scans and sorts the table. Setup
// builds it in its transaction, which holds off appends (not reads) for
// as long as the build takes on a large table; to avoid that, build it
// beforehand with CREATE UNIQUE INDEX CONCURRENTLY <events>_position ON
// <events> (position), and Setup finds it there. Version 4 takes
// Positions from transaction ids instead of the meta row's counter (see
// "Positions" below) and drops the counter: writers of an older release
// fail from then on rather than take Positions the old way, and a Log of
// this release fails its appends with [ErrNotSetUp] until Setup has run,
// so stop the writers of the older release, run Setup, start this one.
//
//   - events: one row per event, primary key (entity_type, entity_id, seq),
//     unique indexes (entity_type, position) and (position); data is bytea
//     and metadata jsonb.
//     A stream's last Seq is its highest event.
//   - streams: one row per stream that [Log.DeleteTo] deleted events of,
//     with the highest Seq deleted (deleted_to), so a stream's last Seq
//     never goes down, and per stream that [Log.DeleteStream] deleted, the
//     Seq of its tombstone (tombstone) and whether it is final (final).
//   - snapshots: primary key (entity_type, entity_id, seq).
//   - meta: one row: schema_version (and, from version 4, xid_positions,
//     always true, which the appends of this release check).
//
// # Group commit
//
// [Log.Append] hands its events to the Log's group-commit workers (see
// [WithConcurrency]). Appends wait in a queue of segments, each of at most
// [WithMaxBatch] events and 16 MiB of data (an append larger than that,
// alone); a worker takes every segment waiting that fits in those limits
// and commits the appends in one transaction:
//
//  1. BEGIN, then take Positions: the transaction's id times 2^16, plus
//     1, 2, 3 ... (see "Positions" below), and an advisory lock in share
//     mode, which deletes take in exclusive mode. Rounds do not wait for
//     each other: the WithConcurrency rounds of a Log, and those of other
//     processes, run side by side.
//  2. Check every stream of the batch (its last Seq must be the expected
//     one) and insert the events of the streams that pass, in one INSERT
//     ... SELECT FROM unnest($arrays) statement that also returns the
//     streams that failed, with their actual last Seq. Large batches check
//     with one statement and send the events with COPY instead, which costs
//     the server less per event. While no stream was ever deleted (the
//     streams table is empty), they check only the streams whose last Seq
//     the Log does not know (see below): the unique key refuses the others'
//     rows if they have moved on.
//  3. pg_notify, COMMIT.
//
// [Log.AppendRound] ([eventlog.RoundAppender], which the entity runtime
// uses) gives each run of up to 64 appends of one segment one channel,
// closed once the worker answered all of them: one close wakes their
// callers, instead of a channel and a wake-up per append, and the callers
// answered first start their next command while the worker answers the
// others. A segment is never split between two transactions, so no caller
// waits for a transaction its append is not in.
//
// A small batch takes one round trip, a large one two (the second sends
// the COPY, pg_notify and COMMIT as one query). An append that fails the check gets
// an [*eventlog.ConflictError] with Actual filled in; the others of its
// batch are not affected. An append's events pass or fail together, so a
// multi-event append stays atomic. Appends to one stream in one batch run as
// if one after another; one that does not continue the previous one (a
// second creator of a new stream) runs in a second round.
//
// The check sees every commit before it, and no delete can commit between
// it and the insert. Another round may commit events of a checked stream
// in between: then the primary key of the events table refuses the row
// (SQLSTATE 23505; the insert waits for the other round to commit first),
// the batch runs again with every stream checked, and only the stale
// append fails with a ConflictError. So the check and the key together
// are exact, also across processes, and the first write to a stream is
// exactly-once. No row of the events or streams table is locked or
// updated, and rounds insert in the order of the primary key, so batches
// do not deadlock. To save the server a lookup, a Log remembers the last
// Seq it appended or read for recently used streams and skips looking up
// the last event of a stream whose append expects exactly that Seq. If
// another process has appended meanwhile, the key refuses the row in the
// same way. The same happens if a row was written around this package
// while the batch ran.
//
// The busier the log, the larger the batches: while a worker's transaction
// commits, the next batch gathers in the queue.
//
// # Positions, ReadType and Subscribe
//
// A round's events get the Positions xid * 2^16 + 1, + 2, ... where xid is
// its transaction's id (pg_current_xact_id, which never wraps around), so
// a transaction carries at most [MaxTransactionEvents] events. Positions
// grow with transaction ids, not with commit order: a round with a smaller
// id may commit after one with a larger id. Readers by Position therefore
// read only the events of transactions that ended before their query's
// snapshot: those whose id is below the snapshot's xmin, the oldest
// transaction still running (pg_snapshot_xmin(pg_current_snapshot())).
// Every transaction below it has ended, so a later reader never finds
// another event below it, and [Log.ReadType] and [Log.Subscribe], which
// page by "position > after", never skip an event that commits late (the
// sequence-gap bug of logs that take Positions from a sequence). The
// scheme is that of Emmett's PostgreSQL store. Before version 4 rounds
// took Positions one after another from a counter in the meta row, which
// each held locked until it committed, so only one ran at a time.
//
// The price: readers see nothing after a transaction that still runs,
// until it ends. A round takes milliseconds. But any transaction of the
// server that has written (its id is assigned), in any database, from any
// application, holds readers by Position back while it runs: keep write
// transactions short on a server whose events feed subscriptions, or give
// the events a server of their own. A read that finds committed events
// held back this way reads again soon (2 ms, doubling up to 100 ms while
// it reads nothing), since the transaction holding them back may end without a
// notification: ReadType and ReadAll end only once they have read every
// event committed before they reached the end (waiting by their ctx, so
// a reader that has itself written in a transaction still open waits for
// its ctx to end), so a read after an Append returned finds the append's
// events; a subscription waits for them. Positions of refused appends stay
// unused; nothing fills them later. A Position tells nothing about how
// many events came before.
//
// The gate is the database's, not a type's, so [Log.ReadAll] and
// [Log.SubscribeAll] ([eventlog.AllReader]) page through every type, or a
// set of types (entity_type = ANY($types)), by "position > after" on the
// index on position alone, with the same guarantee. Of one type they are
// ReadType and Subscribe.
//
// Subscriptions wait between reads. Append transactions send a NOTIFY on a
// channel named after the events table, listing the entity types they
// appended to; each Log keeps one connection (taken out of the pool when the
// first subscription starts) that LISTENs and wakes the subscriptions of the
// types named, and those of SubscribeAll of several types on any
// notification, and reconnects with backoff when it fails. Appends of the
// same Log wake its subscriptions directly. Subscriptions also poll every
// [WithPollInterval], which covers a lost listener and [WithNotify](false).
//
// # ReadEntity and recoveries
//
// [Log.ReadEntity] reads pages of up to 1,000 events by the primary key.
// Its first page goes through the Log's readers: a reader takes every first
// read waiting and answers them with one query (up to 100 events per
// stream; a longer stream continues with queries of its own). So the
// recoveries of many entities activated at once, after a restart or in a
// burst, share a few queries instead of taking one each; a lone read is
// sent at once, under its caller's context. [Stats] counts the first reads
// and the queries that served them.
//
// # Key store
//
// [KeyStore] is a keystore.Store for crypto-shredding: one row per subject
// in a table of its own, <prefix>keys, that [KeyStore.Setup] creates (not
// [Setup]: a deployment that shreds nothing has no such table). Get is one
// SELECT, GetOrCreate one INSERT ... ON CONFLICT DO NOTHING statement that
// also returns an existing key, Forget one DELETE. A deleted key's bytes
// stay in the table's pages until VACUUM, and in the write-ahead log and
// backups until they expire; see [KeyStore].
//
// # Telemetry
//
// A [Log] and a [SnapshotStore] report through OpenTelemetry to the
// providers of [WithTracerProvider] and [WithMeterProvider], by default the
// global ones. Until the program installs an SDK they start no span and
// measure nothing, not even the time. Every span and metric has the
// attribute eventsourced.backend = "postgres"; entity ids are span
// attributes, never metric attributes. The spans, all of kind client:
//
//   - "postgreslog commit": one per group-commit transaction (one per run
//     of a transaction run again). Many entities' appends share it, so it
//     is a root span linked to the span of each append it carries (the
//     span in the append's ctx: the entity runtime's append span), not the
//     child of any one. Attributes eventsourced.appends (taking part),
//     eventsourced.events (inserted) and eventsourced.conflicts; error
//     status if the transaction failed.
//   - "postgreslog read first pages": one per first-read query of the
//     readers (see ReadEntity above), a root linked to the reads it serves,
//     or the child of its caller's span for a read queried alone.
//     Attribute eventsourced.reads.
//   - "postgreslog snapshot save" and "postgreslog snapshot load": children
//     of the caller's span, with eventsourced.entity.type and
//     eventsourced.entity.id.
//
// The metrics:
//
//   - eventsourced.log.append.duration (histogram, s): from Append's call
//     to its answer, queueing included, by eventsourced.outcome: ok,
//     conflict or failed.
//   - eventsourced.log.conflicts (counter, {append}): appends refused with
//     an [*eventlog.ConflictError].
//   - eventsourced.log.transaction.appends (histogram, {append}): appends
//     per committed transaction, conflicting ones included.
//   - eventsourced.log.transaction.events (histogram, {event}): events
//     inserted per committed transaction.
//   - eventsourced.log.transaction.retries (counter, {transaction}):
//     transactions run again (see [Stats]).
//   - eventsourced.log.append.queued (gauge, {append}): appends waiting for
//     a group-commit worker, with eventsourced.log.table naming the Log's
//     events table ([WithSchema]-qualified), one point per Log.
//   - eventsourced.snapshotstore.operation.duration (histogram, s): by
//     eventsourced.operation (save, load) and eventsourced.outcome (ok,
//     failed).
//
// [Log.Stats] counts as it always did, whether or not metrics are on.
//
// A Log logs to [WithLogger], by default slog.Default(). A healthy Log logs
// nothing per append; what fails where its caller may not look is logged:
// a group-commit transaction that failed (Warn, with the number of its
// appends and the type, id and Seq of the first), the listener connection
// lost (Warn, once per outage) and back (Info). A transaction run again is
// Debug: the retries metric counts it.
//
// # Optional capabilities
//
// [Log] implements [eventlog.Deleter], [eventlog.StreamDeleter],
// [eventlog.IDLister], [eventlog.TypeLister], [eventlog.AllReader] and
// [eventlog.Closer]; [SnapshotStore] implements
// [snapshotstore.Lister] and [snapshotstore.Closer]. Closing them does not
// close the pool.
//
// [Log.DeleteStream] runs one transaction: it takes the advisory lock that
// group-commit rounds hold in share mode, in exclusive mode, deletes the
// stream's events and records the tombstone in the stream's row of the
// streams table. Holding the lock, it runs between the rounds in flight
// and the next, so every append commits before it or is checked against
// the tombstone; appends of the whole Log wait for it meanwhile.
// [Log.DeleteTo] does the same.
// The rounds find a final tombstone in the lookup of the streams table
// that their check of the last Seq already makes, and refuse the stream's
// appends with a [*eventlog.DeletedError] there. ReadEntity finds it in
// the statement that reads the events: a stream deleted for good has none,
// and the statement returns its tombstone instead.
//
// # Concurrency
//
// [Log] and [SnapshotStore] are safe for concurrent use, also by many processes on
// the same tables. A Log owns [WithConcurrency] worker goroutines and, once
// subscribed to, a listener goroutine; [Log.Close] stops them and waits for
// them. Reads copy a page of rows and release their connection before the
// consumer sees them, so a slow consumer holds no pooled connection.
//
// # Errors
//
// Appends report conflicts as [*eventlog.ConflictError] (matching
// [eventlog.ErrConflict]) with Expected and Actual, and appends to and
// reads of a stream deleted for good as [*eventlog.DeletedError]
// (matching [eventlog.ErrDeleted]); bad arguments as
// [eventlog.ErrInvalid] and [snapshotstore.ErrInvalid], and appends over
// [WithMaxAppendEvents] or [WithMaxAppendBytes] as [ErrTooLarge], which
// matches eventlog.ErrInvalid too; use after Close as
// [eventlog.ErrClosed] and [snapshotstore.ErrClosed]. Native errors are
// translated by type and SQLSTATE, never by message, and keep the pgx error
// in the chain for errors.As: [ErrUnavailable] (the server is down,
// restarting or unreachable; it also matches [eventlog.ErrUnavailable]),
// [ErrPoolClosed] (the caller closed the pool),
// [ErrNotSetUp] (the tables do not exist), [ErrSchemaVersion], and
// [ErrInvalidOption] for bad options and options a call does not take. Every error message starts with
// "postgreslog: " and names the operation and the stream.
//
// If an append's ctx ends while its transaction is in flight, Append returns
// an error matching ctx.Err() and the append may or may not commit; so may
// one whose COMMIT failed with ErrUnavailable. The entity runtime handles
// both by recovering the entity from the log before its next command.
//
// # Waiting
//
// Every call returns by its ctx's deadline, [Setup] included: pgx gives up a connect, a query or a
// transaction when its ctx ends. Give them a ctx with a deadline, and give
// the pool a connect timeout (connect_timeout in the DSN, or
// ConnConfig.ConnectTimeout) so that connections the pool opens in the
// background give up too. A broken connection fails the statements on it at
// once with [ErrUnavailable]; after a restart, the pool opens new
// connections, so service is back as soon as the server accepts them.
package postgreslog
