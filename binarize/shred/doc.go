// Package shred is crypto-shredding for event-sourced data: erasure of a
// person's data from an append-only log without rewriting it. The personal
// fields of the events (and snapshots) of a subject, such as a customer,
// are stored encrypted with AES-256-GCM under the subject's own data key,
// kept in a keystore.Store. Forgetting the subject deletes the key: from
// then on its personal fields decode as [Redacted] (strings) or zero
// values, everywhere the bytes were copied (logs, snapshots, backups,
// projections rebuilt from the log), while the rest of each event stays
// readable, so recovery, snapshots and projections keep working.
//
//	keys, _ := shred.NewKeys(postgreslog.NewKeyStore(pool)) // or keystore.NewMemory(), natslog.NewKeyStore(...)
//	events, _ := shred.NewEvents[Event](registry, keys)
//	shred.MustProtect(events, func(e Registered) string { return e.CustomerID }, "Name", "Email")
//	def := entity.Type[Customer, Event]{..., Events: events}
//	...
//	err := keys.Forget(ctx, "customer-42") // the right to be forgotten
//
// [Events] wraps an event codec (a *binarize.Registry); [Protect] marks an
// event type personal, naming its personal fields (all exported fields if
// none) and how to find its subject. [State] does the same for an entity's
// state in snapshots. [Keys] reads the keys and caches them.
//
// # Stored form
//
// A protected value is stored as a small envelope: a 4-byte magic (0x00
// 0xC5 'S' 1), the subject and key ID in the clear, a random nonce, the
// ciphertext of the personal fields (each field's msgpack bytes, by field
// name), and then the inner codec's bytes of the value with its personal
// fields zeroed. The ciphertext's additional data is the event name and
// revision, the subject, the key ID and the inner bytes, so none of them
// can be altered or swapped without decoding failing. Bytes without the
// magic are decoded by the inner codec as they are: events written before
// a type was protected stay readable, and a type can be protected later.
// The subject is stored in the clear: make it an identifier, not personal
// data itself.
//
// # Evolution
//
// Personal fields are restored by field name after the inner codec has
// decoded (and upcast) the rest, so a field may move between revisions
// as long as it keeps its name; a field a later release removed is
// skipped. Upcasters see personal fields empty.
//
// # Forgetting
//
// [Keys.Forget] deletes the key in the key store and in this process's
// cache at once. Other processes holding the key in their cache go on
// decrypting for at most [WithCacheTTL] (30 s by default); what they
// encrypt meanwhile is under the deleted key, so it is unreadable as well.
// The IDs of deleted keys are remembered, so reading a forgotten
// subject's events asks the key store once. A subject that writes again
// after being forgotten gets a new key; its old data stays redacted.
// Entities of the subject that are live keep their decrypted state in
// memory: passivate or restart them, or delete them (entity.Kind.Delete).
//
// # Concurrency
//
// [Keys], [Events] and [State] are safe for concurrent use. Protect is
// meant for start-up; Encode and Decode take no lock except the cache's,
// briefly.
//
// # Errors
//
// A key store that fails makes Encode fail (nothing is written in the
// clear: the entity's command fails and persists nothing) and Decode fail
// (a key store outage is not a forgotten subject), with the key store's
// error, which is not a *binarize.DecodeError: the bytes are fine. A key that is gone is
// not an error: the fields are redacted. Bytes whose ciphertext fails
// authentication under the subject's current key (altered, or a malformed
// envelope) give a *binarize.DecodeError. A value of a protected type
// without a subject gives [ErrNoSubject]; bad registrations and options,
// [ErrInvalid].
package shred
