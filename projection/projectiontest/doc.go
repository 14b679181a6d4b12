// Package projectiontest is the conformance suite for implementations of
// [projection.OffsetStore].
//
// A store's tests call [Run] with a function returning a fresh store:
//
//	func TestOffsetStore(t *testing.T) {
//		projectiontest.Run(t, func(t *testing.T) projection.OffsetStore {
//			s := mystore.New(...)
//			t.Cleanup(func() { s.Close() })
//			return s
//		})
//	}
//
// [Run] runs each of [Cases] as a subtest named after it: loading a name
// never committed, commits that move the offset and run the handler once,
// commits that move it back (as Projection.SetOffset does),
// commits from a wrong offset, failing handlers, resets, names that differ
// only in characters a key-based store escapes, runners of one name racing
// from one offset, a crash between the handler and the offset write, and
// canceled contexts. Every failure message starts with "rule: " and the
// contract rule that broke.
//
// [RunDeadLetters] is the suite of [projection.DeadLetters] stores, run the
// same way with a function returning a fresh store: Put and Get of whole
// records, Put replacing the dead letter of its key, List in Position
// order with paging, Drop, Retry that succeeds, fails, finds nothing or
// dies, and canceled contexts. A store whose value implements
// [Transactional] is checked for an exactly-once Retry: the suite's writes
// from Retry's handle commit with the drop or not at all.
//
// [RunControls] is the suite of the [projection.Controls] capability of
// offset stores, the control records that projection.Pause, Resume and
// RequestRetry write: a name never saved loads as the zero Control at
// version 0, records round-trip whole at the version saved, saves are
// conditional on the version (exactly one of concurrent saves wins, and
// projection.UpdateControl loses no change), names are kept apart, a
// record is independent of the name's offset, and canceled contexts.
//
// # Delivery guarantees
//
// What a crash between the handler and the offset write leaves behind is
// the store's promise, and the suite checks the one the store makes. A
// store declares it by what the value newStore returns implements:
//
//   - Nothing more: the store is at-least-once, as [projection.Memory] and
//     natsprojection are. It runs the handler, then writes the offset; the
//     handler's writes are its own business, out of the store's reach. After
//     a crash the offset is still where the batch started, so the batch is
//     delivered again. Reset must set the offset to 0 before it runs clear.
//   - [Transactional]: the store is exactly-once, as pgprojection is. It
//     runs the handler and the offset write in one transaction, and clear
//     and the offset reset in another. The suite writes through
//     [Transactional.Write] from inside handlers and clears and checks with
//     [Transactional.Count] that what a failure or a crash interrupted left
//     no trace.
//
// The cases that check one promise (CrashAtLeastOnce, ResetAtLeastOnce,
// CrashExactlyOnce, ResetExactlyOnce) log that they do not apply to stores
// that make the other.
//
// A crash is simulated by ending the goroutine that runs Commit from inside
// the handler, after its writes (deferred functions run, as a server's
// rollback would after a lost connection). A store whose tests can also
// stop it after the handler returned and before the offset write, the
// window its own code is responsible for, implements [Crasher], usually
// with a test hook of the backend; the crash cases then run both ways.
// Stores are typically wrapped in a small test type that adds these
// methods.
//
// Cases name their projections uniquely per case and per run, so a store
// may share one database or bucket between all cases and runs.
//
// # Concurrency
//
// [Run] runs the cases one after another; ConcurrentRunners commits one
// name from several goroutines at once, and the crash cases run Commit and
// Reset in goroutines of their own. Cases report from goroutines with
// [TB].Errorf only. [Transactional] and [Crasher] methods are called from
// the case's goroutine and, for Write, from whichever goroutine runs the
// handler.
//
// # Errors
//
// Cases check errors with [errors.Is] against [projection.ErrOffsetMoved],
// [context.Canceled] and the errors their handlers and clears return,
// never by message. Every case runs under a deadline and waits for the
// goroutines it crashes with a timeout, so a store that stops answering
// fails instead of hanging.
package projectiontest
