package entity

import "context"

// IdempotencyKeyMetadata is the metadata key under which the last event a
// command persists records the command's idempotency key (see
// [WithIdempotencyKey]).
const IdempotencyKeyMetadata = "idempotency_key"

type idempotencyCtxKey struct{}

// WithIdempotencyKey returns a context that gives the commands asked with
// it the idempotency key key. A command sent again with a key the entity
// has already recorded is answered from the first outcome instead of
// running again (see the package documentation, "Idempotent commands").
// Process managers and durable timers send their commands with keys
// derived from what triggered them, so a command re-sent after a crash
// acts once. An empty key means none.
func WithIdempotencyKey(ctx context.Context, key string) context.Context {
	return context.WithValue(ctx, idempotencyCtxKey{}, key)
}

// IdempotencyKeyFrom returns the key attached to ctx with
// [WithIdempotencyKey], and whether there is one.
func IdempotencyKeyFrom(ctx context.Context) (string, bool) {
	k, _ := ctx.Value(idempotencyCtxKey{}).(string)
	return k, k != ""
}
