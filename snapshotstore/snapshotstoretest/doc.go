// Package snapshotstoretest is the conformance suite for implementations of
// [snapshotstore.Store].
//
// A backend's tests call [Run] with a function returning a fresh store:
//
//	func TestStore(t *testing.T) {
//		snapshotstoretest.Run(t, func(t *testing.T) snapshotstore.Store {
//			s := mystore.New(...)
//			t.Cleanup(func() { s.Close() })
//			return s
//		})
//	}
//
// [Run] runs each of [Cases] as a subtest named after it: loading none,
// loading the latest whatever the save order, overwriting at the same Seq,
// keeping the last K, an 8 MiB snapshot, keys per type and per id, delete,
// invalid arguments, the save time, and concurrent saves to many entities.
// Every failure message starts with "rule: " and the contract rule that
// broke. Keeping the last K is checked through [snapshotstore.Lister] when
// the store implements it, and through Load alone otherwise.
//
// Cases name entity types and ids uniquely per case and per run, using only
// lower-case letters, digits and underscores, so a backend may share one
// database or bucket between all cases and runs.
//
// # Concurrency
//
// [Run] runs the cases one after another; the concurrency case saves from
// many goroutines at once. Cases report from goroutines with [TB].Errorf
// only.
//
// # Errors
//
// Cases check errors with [errors.Is] against [snapshotstore.ErrInvalid],
// never by message. Every case runs under a deadline, so a store that stops
// answering fails instead of hanging.
package snapshotstoretest
