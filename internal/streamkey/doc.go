// Package streamkey is the one rule for entity type names and entity ids
// that every event log and snapshot store applies before any I/O, and the
// bounded form in which error messages quote them. Packages eventlog and
// snapshotstore export it ([eventlog.ValidateStream], [eventlog.FormatID],
// [snapshotstore.ValidateKey]); backends call those.
//
// It is internal so that the two contract packages share one rule without
// importing each other.
//
// # Concurrency
//
// Everything here is a pure function, safe for concurrent use.
//
// # Errors
//
// [Check] returns a description of what is wrong, without a sentinel: the
// exported wrappers add their package's ErrInvalid.
package streamkey
