// Package keystore keeps the per-subject data keys of crypto-shredding: the
// personal data of a subject (a customer, a user) is stored encrypted under
// the subject's own key, and forgetting the subject deletes the key, which
// makes that data unreadable everywhere it was copied (event logs, snapshots,
// backups) without rewriting any of them.
//
// [Store] is the contract: [Store.Get] looks a subject's key up,
// [Store.GetOrCreate] gives a subject its key, the same one to every caller
// that races for it, and [Store.Forget] deletes it. The implementations:
//
//   - [Memory] keeps keys in the process, for tests and examples.
//   - postgreslog.KeyStore keeps them in a PostgreSQL table.
//   - natslog.KeyStore keeps them in a JetStream KV bucket.
//
// Each passes the conformance suite in keystore/keystoretest, which a new
// backend runs in its tests. binarize/shred encrypts with them.
//
// A key store holds the only copy of each key: back it up as carefully as
// the log, and delete a subject's key from backups too when it is forgotten.
//
// # Optional capabilities
//
// [Closer] releases a store's resources; [Memory] and both backends
// implement it.
//
// # Concurrency
//
// Every Store is safe for concurrent use. Backends that share a server are
// also safe for use from several processes at once: concurrent GetOrCreate
// calls for one subject, from anywhere, agree on one key, and once Forget
// returns no process finds the forgotten key.
//
// # Errors
//
// A subject that [ValidateSubject] refuses fails with an error matching
// [ErrInvalid] before any I/O; the message names the rule that broke and
// quotes a bounded prefix of the subject. A closed store returns
// [ErrClosed]. A call whose ctx ends returns an error matching ctx.Err().
// A subject without a key is not an error: Get reports found false. Backends
// wrap their own errors with the call and the subject, and translate what
// they can, such as an unreachable server, into their own sentinels.
package keystore
