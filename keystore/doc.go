// Package keystore keeps the per-subject data keys of crypto-shredding: the
// personal data of a subject (a customer, a user) is stored encrypted under
// the subject's own key, and forgetting the subject deletes the key, which
// makes that data unreadable everywhere it was copied (event logs, snapshots,
// backups) without rewriting any of them.
//
// [Store] is the contract; [Memory] keeps keys in the process, for tests
// and examples. postgreslog.KeyStore and natslog.KeyStore keep them in
// PostgreSQL and NATS JetStream KV. binarize/shred encrypts with them.
//
// A key store holds the only copy of each key: back it up as carefully as
// the log, and delete a subject's key from backups too when it is forgotten.
package keystore
