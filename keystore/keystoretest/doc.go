// Package keystoretest is the conformance suite for implementations of
// [keystore.Store].
//
// A backend's tests call [Run] with a function returning two handles on
// one fresh store's storage: two clients of the same server, as two
// processes would have, so that the cases can check what one process sees
// of another's writes. A store that lives in one process returns the same
// value twice:
//
//	func TestKeyStore(t *testing.T) {
//		keystoretest.Run(t, func(t *testing.T) (a, b keystore.Store) {
//			a, b = mystore.New(connA), mystore.New(connB)
//			t.Cleanup(func() { a.Close(); b.Close() })
//			return a, b
//		})
//	}
//
// [Run] runs each of [Cases] as a subtest named after it: looking up an
// unknown subject, creating a key and getting the same one back from both
// handles, concurrent creation from both handles, separate keys per
// subject, forgetting (seen by both handles, harmless for unknown subjects,
// followed by a new key), invalid subjects refused before any I/O, canceled
// contexts, returned keys not aliasing the stored ones, and, for stores
// that implement [keystore.Closer], ErrClosed after Close. Every failure
// message starts with "rule: " and the contract rule that broke.
//
// Cases name subjects uniquely per case and per run, so a backend may share
// one database or bucket between all cases and runs. Some subjects hold
// characters that key- and subject-based backends must escape, and one is
// [keystore.MaxSubjectLen] bytes long.
//
// # Concurrency
//
// [Run] runs the cases one after another; the concurrency case calls
// GetOrCreate from many goroutines through both handles at once. Cases
// report from those goroutines with [TB].Errorf only.
//
// # Errors
//
// Cases check errors with [errors.Is] against [keystore.ErrInvalid],
// [keystore.ErrClosed] and [context.Canceled], never by message. Every case
// runs under a deadline, so a store that stops answering fails instead of
// hanging.
package keystoretest
