// Package eventlogtest is the conformance suite and the shared benchmarks
// for implementations of [eventlog.Log].
//
// A backend's tests call [Run] with a function returning a fresh log, and
// [Bench] from a benchmark:
//
//	func TestLog(t *testing.T) {
//		eventlogtest.Run(t, func(t *testing.T) eventlog.Log {
//			l := mylog.New(...)
//			t.Cleanup(func() { l.Close() })
//			return l
//		})
//	}
//
//	func BenchmarkLog(b *testing.B) {
//		eventlogtest.Bench(b, func(b *testing.B) eventlog.Log { ... })
//	}
//
// [Run] runs each of [Cases] as a subtest named after it. The cases cover
// Akka's journal spec (replay bounds, highest Seq, deletes) and what it
// lacks: conflicts with their details, guarded first writes, atomic
// multi-event appends, many goroutines racing on one entity, many entities,
// Position order and resumption for readers by type, a live subscription
// that must not skip events while concurrent writers commit, cancellation
// and early exit from iterators. Every failure message starts with
// "rule: " and the contract rule that broke. The optional capabilities
// [eventlog.Deleter], [eventlog.StreamDeleter], [eventlog.IDLister] and
// [eventlog.TypeLister] are
// tested when the log implements them; otherwise their cases log that they
// do not apply. The StreamDeleter cases cover final and reuse tombstones,
// deleting again, streams never written, readers by type and live
// subscriptions around a delete, and appends racing with it. The
// [eventlog.AllReader] cases check ReadAll against the union of ReadType
// of each type, filters by a set of types (repeats, unknown and invalid
// types), resumption after any Position, deleted events, live
// subscriptions of every type and of a set, and a live reader of all and
// one of a set while writers of several types commit concurrently: every
// event exactly once, in Position order. A log shared by the cases may
// hold earlier cases' events, so reads of every type are checked for
// order throughout and for contents on the case's own types.
//
// Cases name entity types and ids uniquely per case and per run, using only
// lower-case letters, digits and underscores, so a backend may share one
// database or server between all cases and runs.
//
// # Concurrency
//
// [Run] runs the cases one after another; several cases start goroutines
// that use the log concurrently. Cases report from those goroutines with
// [TB].Errorf only and call [TB].Fatalf from the case's goroutine, as the
// testing package requires.
//
// # Errors
//
// Cases check errors by [errors.Is] and [errors.As] against
// [eventlog.ErrConflict], [*eventlog.ConflictError],
// [eventlog.ErrDeleted], [*eventlog.DeletedError], [eventlog.ErrInvalid]
// and [context.Canceled], never by message. A case
// fails, rather than hangs, when a backend stops answering: every case runs
// under a deadline and waits for subscriptions with timeouts.
package eventlogtest
