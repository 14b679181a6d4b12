// Package pgprojection keeps projection offsets in PostgreSQL, in the same
// transaction as the read model the projection writes: each event changes
// the read model exactly once, whatever crashes.
//
//	store, _ := pgprojection.New(pool)
//	store.Migrate(ctx)
//	p, _ := projection.New(log, "Tab", "open-tabs", store,
//		pgprojection.Handle(func(ctx context.Context, tx pgx.Tx, batch []eventlog.Record) error {
//			for _, rec := range batch {
//				if _, err := tx.Exec(ctx, "...", ...); err != nil {
//					return err
//				}
//			}
//			return nil
//		}))
//
// [Store.Commit] begins a transaction, locks the projection's name (an
// advisory lock, see Concurrency), checks that the stored offset is the
// one the batch starts from, runs the handler with the
// transaction (handlers made with [Handle] get it as an argument; others find
// it with [TxFrom]), moves the offset and commits. A handler error, a moved
// offset, a canceled context or a crash before the commit rolls everything
// back: the read model and the offset move together or not at all.
// [Store.Reset] likewise empties the read model ([Clear]) and sets the
// offset to 0 in one transaction.
//
// The offsets table is created by [Store.Migrate], which is idempotent; its
// name is [DefaultTable] unless [WithTable] says otherwise. The Store takes
// a *pgxpool.Pool the caller built, with its TLS and authentication.
//
// # Dead letters
//
// [Store.DeadLetters] is the Store's projection.DeadLetters store: a table
// ([DefaultDeadLetterTable] unless [WithDeadLetterTable] says otherwise),
// also created by Migrate, keyed by (projection, position). Given to
// projection.WithDeadLetters with SkipPoison, it writes the dead letter of
// a skipped event in the transaction that moves the offset past it: both
// or neither. [DeadLetters.Retry] runs the handler in a transaction that
// also deletes the dead letter, so the retried event changes the read
// model exactly once, like any other:
//
//	p, _ := projection.New(log, "Tab", "open-tabs", store, handler,
//		projection.WithPoison(projection.SkipPoison),
//		projection.WithDeadLetters(store.DeadLetters()))
//	...
//	p.RetryDeadLetter(ctx, position) // once the handler is fixed
//
// A dead-letter store joins only the transactions of its own pool's
// Stores; with another projection.DeadLetters store the dead letter and
// the offset are not atomic, and Retry's handler finds no transaction
// ([ErrNoTx]).
//
// # Control records
//
// The Store has the projection.Controls capability: a table
// ([DefaultControlTable] unless [WithControlTable] says otherwise), also
// created by Migrate, with a row per projection name holding its
// projection.Control as JSON and a version. [Store.SaveControl] is one
// conditional statement (an insert for a new record, an update at the
// version read otherwise), so concurrent writers serialize on the row and
// the losers get projection.ErrControlChanged. projection.Pause, Resume
// and RequestRetry write it from any process with a Store on the same
// database, for instance an operator CLI:
//
//	projection.Pause(ctx, store, "open-tabs")   // every runner, every slice
//	projection.RequestRetry(ctx, store, "open-tabs", 1734)
//	projection.Resume(ctx, store, "open-tabs")
//
// Runners read it every projection.WithControlInterval. A paused runner
// commits nothing; on resume it carries on from the offset in the table,
// so the events appended meanwhile change the read model exactly once. A
// retry request is served by the runner with [DeadLetters.Retry], in the
// transaction that deletes the dead letter: exactly once, even if the
// runner dies before it removes the request (the next one finds no dead
// letter and only removes it).
//
// # Concurrency
//
// A [Store] is safe for concurrent use. Two runners of the same projection
// name serialize on a transaction-level advisory lock of the name (also
// before the name's first commit); the second sees
// projection.ErrOffsetMoved and reloads the offset. The lock is not the
// offset row's: locking a row gives a transaction an id, and while a
// transaction with an id runs, postgreslog's readers by Position read
// nothing after it (see postgreslog, "Positions"). So a Commit's
// transaction takes an id only once its handler writes, and a handler that
// waits without writing (a relay whose bus is down) holds back no reader.
// A handler that writes and then waits does: keep those short.
//
// # Errors
//
// Errors are prefixed "pgprojection:" and wrap pgx's. A stale offset matches
// projection.ErrOffsetMoved. [ErrNoTx] reports a [Handle] or [Clear]
// function run outside of a Store's transaction. A dead letter that does
// not exist matches projection.ErrNotFound.
package pgprojection
