// Package errclass is the one way the backends give an error the sentinels
// it matches: a native error (a pgx error, a JetStream API error) keeps its
// place in the chain for errors.As, and the error also matches the
// backend's sentinel and the contract's (errors.Is), for example
// postgreslog.ErrUnavailable and eventlog.ErrUnavailable.
//
// It is internal: backends share it without exporting it.
//
// # Concurrency
//
// An [Error] is immutable once built and safe for concurrent use.
//
// # Errors
//
// [Error] is itself the error type; nothing here fails.
package errclass
