// Package faulttest is the shared kit of the fault tests that run the
// entity runtime against a real store while the store fails: a ledger entity
// whose every command stores its unique id, a load of many callers with
// deadlines that records every outcome and how long it took, and the checks
// that follow (every acknowledged command stored exactly once, Seqs without
// gaps, no Ask later than its deadline plus a slack, failures of the kinds
// expected).
//
// It is internal: only this module's tests use it.
//
// # Concurrency
//
// A [Run] is safe for concurrent use; its callers are its own goroutines,
// which [Run.Stop] waits for.
//
// # Errors
//
// The checks report through testing.TB; nothing here returns an error.
package faulttest
