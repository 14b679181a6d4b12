// Package natsprojection keeps projection offsets in a NATS JetStream
// key-value bucket: one key per projection name.
//
//	store, _ := natsprojection.New(ctx, js)
//	p, _ := projection.New(log, "Tab", "chef-todo", store, handler)
//
// The read model lives elsewhere (in memory, in another bucket, anywhere),
// so the handler's writes and the offset update cannot be one transaction.
// [Store.Commit] runs the handler first and saves the offset after it: if
// the process dies in between, the batch is delivered again on restart. This
// is at-least-once delivery, and handlers must be idempotent, for instance
// by storing with each view the last Seq applied per entity and ignoring
// events at or below it. For exactly-once effects keep the read model and
// the offset in PostgreSQL with package pgprojection.
//
// Offsets are updated with the key's revision (compare and set), so two
// runners of the same name cannot both move one: the loser gets
// projection.ErrOffsetMoved and reloads. Names that are not valid KV keys
// are base64url-encoded, not rejected.
//
// # Dead letters
//
// [NewDeadLetters] returns a projection.DeadLetters store in another
// bucket ([DefaultDeadLetterBucket]): one key per dead letter, the
// projection's key and the event's Position, with the dead letter as
// JSON. It takes [New]'s options. Like the offsets, it is at least once:
// the dead letter of a skipped event is put before the offset moves past
// it, and a retry runs the handler before it deletes the key, so a crash
// in between delivers the event again.
//
// # Control records
//
// The Store has the projection.Controls capability: a bucket of its own
// ([DefaultControlBucket] unless [WithControlBucket] says otherwise),
// created by [New], with a key per projection name (encoded as for
// offsets) holding its projection.Control as JSON. The key's revision is
// the record's version, so [Store.SaveControl] is a create or an update
// at that revision, which the server refuses if somebody else wrote the
// key: projection.ErrControlChanged. projection.Pause, Resume and
// RequestRetry write it from any process connected to the same JetStream.
// A retry request is served like Projection.RetryDeadLetter: at least once.
//
// # Concurrency
//
// A [Store] and a [DeadLetters] are safe for concurrent use.
//
// # Errors
//
// Errors are prefixed "natsprojection:" and wrap the jetstream package's.
// A stale offset or revision matches projection.ErrOffsetMoved; bad options
// match projection.ErrInvalid; a dead letter that does not exist matches
// projection.ErrNotFound.
package natsprojection
