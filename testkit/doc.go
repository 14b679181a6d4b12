// Package testkit injects failures into any event log and snapshot store,
// so that tests can show how entities, projections and process code behave
// when the store fails, without a server: in the spirit of Akka's
// PersistenceTestKit.
//
// [NewLog] wraps an [eventlog.Log] and [NewStore] a [snapshotstore.Store].
// Each carries an [Injector]: rules put in force with [Injector.Inject], or
// with the shorthands [Injector.FailNext], [Injector.RejectNext],
// [Injector.AmbiguousNext] and [Injector.DelayNext], act on the calls they
// match (by operation, [Op], and by an optional predicate over the [Call]),
// for a number of calls or until removed. What a rule does ([Failure]):
//
//   - Fail: the call does not run; the caller gets an error matching
//     [eventlog.ErrUnavailable], as when the store is down. An append that
//     fails so has an unknown outcome for the entity runtime, which reads
//     the stream again before its next command.
//   - Reject: the call does not run; the error matches
//     [eventlog.ErrInvalid]: the store refused it and nothing was written.
//   - Ambiguous: the call runs (the write lands) and the caller still gets
//     an error matching eventlog.ErrUnavailable: the case of a connection
//     lost after the commit. Only for the operations that write.
//   - a Delay before any of these, or before a call that then runs
//     normally; a context that ends during it fails the call with the
//     context's error and nothing runs.
//
// Every injected error matches [ErrInjected] and is an [*InjectedError]
// naming the call ("append Order/o-1 expecting seq 2"). Calls no rule acts
// on reach the wrapped log or store unchanged: a Log without rules passes
// the eventlog conformance suite (eventlogtest) whenever the wrapped log
// does, and a Store the snapshotstore one.
//
// # Capabilities
//
// A [Log] has every optional capability of package eventlog, so the
// runtime takes the same paths as with [eventlog.Memory], which has them
// all; with a wrapped log that lacks one, that capability's calls fail
// with [ErrUnsupported]. AppendAsync uses the wrapped log's, or its Append.
//
// # Concurrency
//
// A Log, a Store and their Injector are safe for concurrent use. A rule
// acts on calls in the order the wrapper sees them; Times counts calls
// across goroutines. A rule's Match runs under the injector's lock.
//
// # Errors
//
// [Injector.Inject] refuses a rule that cannot act (an operation the
// wrapper does not have, a negative Times or Delay, an ambiguous failure of
// a read) with an error matching [ErrInvalidRule] that names what was
// wrong.
package testkit
