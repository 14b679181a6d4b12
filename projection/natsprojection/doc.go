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
// # Concurrency
//
// A [Store] is safe for concurrent use.
//
// # Errors
//
// Errors are prefixed "natsprojection:" and wrap the jetstream package's.
// A stale offset or revision matches projection.ErrOffsetMoved; bad options
// match projection.ErrInvalid.
package natsprojection
