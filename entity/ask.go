package entity

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"sync"
	"sync/atomic"

	"go.opentelemetry.io/otel/trace"

	"github.com/eventsourced-go/eventsourced/eventlog"
	itel "github.com/eventsourced-go/eventsourced/internal/telemetry"
)

// Metadata keys the runtime knows by convention; any other key is allowed.
const (
	// CorrelationID ties together everything caused by one outside request.
	CorrelationID = "correlation_id"
	// CausationID names the message that caused this one.
	CausationID = "causation_id"
)

// WithMetadata returns a context that attaches md to the commands asked with
// it: the handler sees it in [Tx.Metadata] and every event the command
// persists carries it. It adds to metadata already in ctx.
func WithMetadata(ctx context.Context, md map[string]string) context.Context {
	cv := new(cmdValues)
	if prev := valuesFrom(ctx); prev != nil {
		*cv = *prev
	}
	if len(cv.meta) > 0 {
		merged := maps.Clone(cv.meta)
		maps.Copy(merged, md)
		cv.meta = merged
	} else {
		cv.meta = maps.Clone(md)
	}
	return context.WithValue(ctx, cmdValuesKey{}, cv)
}

// MetadataFrom returns the metadata attached to ctx with [WithMetadata].
func MetadataFrom(ctx context.Context) map[string]string {
	if cv := valuesFrom(ctx); cv != nil {
		return cv.meta
	}
	return nil
}

// Ref is a cheap, copyable reference to one entity. The zero Ref is invalid.
type Ref[S, E any] struct {
	kind *Kind[S, E]
	id   string
}

// ID returns the entity id.
func (r Ref[S, E]) ID() string { return r.id }

// Type returns the entity type name.
func (r Ref[S, E]) Type() string {
	if r.kind == nil {
		return ""
	}
	return r.kind.def.Name
}

// String returns "type/id", the id as error messages quote it (see
// eventlog.FormatID): a long one is cut.
func (r Ref[S, E]) String() string { return r.Type() + "/" + eventlog.FormatID(r.id) }

// Ask sends cmd to the entity ref and waits for its reply. The reply comes
// after the command's events are durable.
//
// Ask returns by ctx's deadline, whatever the entity is doing: a command to
// an idle, live entity runs on the calling goroutine, and its append is
// bounded by the sooner of ctx and the store timeout ([WithStoreTimeout]),
// or, on a log that appends asynchronously ([eventlog.AsyncAppender]; see
// [WithSyncAppends]), by the store timeout while Ask waits for the answer
// only as long as ctx lets it; a command that waits behind others, or for
// the entity to recover from the log, waits only as long as ctx lets it. A
// recovery goes on after its first caller gave up, bounded by the store
// timeout, for the commands that follow; so does an asynchronous append,
// whose outcome the entity then knows without reading the log.
//
// What a caller may assume when Ask fails:
//   - If the error matches [ErrOutcomeUnknown], the command may or may not
//     have taken effect: its append failed with an unknown outcome (a
//     [*PersistError], matching ctx's error if ctx ended during the
//     append), or ctx ended after the command had started (the error then
//     matches ctx's error too). The entity recovers from the log before its
//     next command; a later command sees what happened.
//   - Any other error means that nothing of the command was persisted and
//     that it will not run later: ctx's error itself if ctx ended before the
//     command started (while it waited behind others or for a recovery),
//     the handler's rejection, a [*PersistError] for a conflict, a
//     [*PanicError] if user code panicked, a [*RecoveryError] if the entity
//     could not be recovered (it matches [eventlog.ErrUnavailable] if the
//     store was out of reach), [ErrMailboxFull] or [ErrClosed], or
//     [ErrInvalid] (for instance a command with an idempotency key to a
//     type that keeps none, or whose reply cannot be recorded).
//
// A command asked with an idempotency key ([WithIdempotencyKey]) that
// the entity has recorded does not run: Ask returns the recorded reply
// (see the package documentation, "Idempotent commands").
func Ask[S, E, R any](ctx context.Context, ref Ref[S, E], cmd Command[S, E, R]) (R, error) {
	r, _, err := AskPosition(ctx, ref, cmd)
	return r, err
}

// AskPosition is [Ask] that also returns where the command's events are in
// the log: the Position of the last event of the append that carried them
// (the entity may have appended the events of several commands at once),
// which is at or after the Position of the command's own last event. It
// is 0 if the command persisted nothing or failed. A command answered from
// the record of its idempotency key (see [WithIdempotencyKey]) returns the
// Position its first outcome returned or, once the entity has recovered
// from the log since, that of the event recording the key: either is at
// or after the Position of the command's own last event.
//
// A read model that follows the entity's type has seen the command's
// events once it has handled that Position: projection's
// Projection.WaitFor waits for it, so a caller can read its own writes.
func AskPosition[S, E, R any](ctx context.Context, ref Ref[S, E], cmd Command[S, E, R]) (R, uint64, error) {
	var zero R
	k := ref.kind
	if k == nil {
		return zero, 0, fmt.Errorf("%w: Ask on a zero Ref", ErrInvalid)
	}
	if cmd == nil {
		return zero, 0, fmt.Errorf("%w: Ask %s with a nil command", ErrInvalid, ref)
	}
	if err := ctx.Err(); err != nil {
		return zero, 0, err
	}
	// The command's metadata and idempotency key, found with one walk up
	// ctx.
	cv := valuesFrom(ctx)
	if cv != nil && cv.key != "" && k.cfg.idem == nil {
		return zero, 0, fmt.Errorf("%w: Ask %s with idempotency key %q: %w", ErrInvalid, ref, cv.key, errKeysOff)
	}
	if k.tel.now.Load() == 0 {
		// Nothing records: the usual case without an OpenTelemetry SDK.
		return ask(ctx, ref, cmd, nil, cv)
	}
	ctx, cs := k.tel.startCommand(ctx, ref.id, cmd)
	r, pos, err := ask(ctx, ref, cmd, cs.span, cv)
	k.tel.endCommand(ctx, cs, err)
	return r, pos, err
}

// ask is AskPosition once the command's span, if any, is started; cv is
// the command's metadata and key, nil for none.
func ask[S, E, R any](ctx context.Context, ref Ref[S, E], cmd Command[S, E, R], span trace.Span, cv *cmdValues) (R, uint64, error) {
	var zero R
	pool := requestPool[S, E, R](ref.kind)
	req := pool.Get().(*request[S, E, R])
	req.cmd = cmd
	if cv != nil {
		req.meta, req.key = cv.meta, cv.key
	}
	if span != nil {
		// The command's events carry its trace context, so whoever reads
		// them continues the trace; an append of many commands links
		// their spans.
		req.meta = itel.Inject(ctx, ref.kind.tel.sys.prop, req.meta)
		req.span = span
	}
	ran, err := ref.kind.submit(ctx, ref.id, req)
	if err != nil {
		return zero, 0, err // req may be queued nowhere, but it is rare: not recycled
	}
	if ran {
		return req.answer(pool)
	}
	select {
	case <-req.wait:
		return req.answer(pool)
	case <-ctx.Done():
		select {
		case <-req.wait:
			return req.answer(pool)
		default:
		}
		// req stays with the entity, which may yet start or skip it: it is
		// never recycled.
		if req.state.CompareAndSwap(reqWaiting, reqAbandoned) {
			// It had not started, and now never will.
			return zero, 0, ctx.Err()
		}
		return zero, 0, &abandonedError{ref: ref.String(), err: ctx.Err()}
	}
}

// abandonedError is Ask's error when ctx ended after the command started.
type abandonedError struct {
	ref string
	err error // ctx's error
}

func (e *abandonedError) Error() string {
	return fmt.Sprintf("entity: %s: the command had started when its caller gave up, its outcome is unknown: %v", e.ref, e.err)
}

func (e *abandonedError) Is(target error) bool { return target == ErrOutcomeUnknown }

func (e *abandonedError) Unwrap() error { return e.err }

const (
	reqWaiting int32 = iota
	reqStarted
	reqAbandoned
)

// pending is a queued command with its reply type erased.
type pending[S, E any] interface {
	// arm prepares the command to wait in a queue: its caller will wait
	// for deliver. A command run at once by its caller is never armed.
	arm()
	// waitOn makes the command's caller, who ran it, wait for ch instead
	// of deliver: the channel of an append's round, closed once deliver
	// has run (see eventlog.RoundAppender). Only the caller calls it.
	waitOn(ch <-chan struct{})
	// start marks the command started; false if its caller gave up first.
	start() bool
	run(tx *Tx[S, E]) error
	metadata() map[string]string
	txRoom() *Tx[S, E]
	// traceSpan is the command's span, nil if it has none: an append of
	// several commands links to their spans.
	traceSpan() trace.Span
	deliver(err error)
	// setPosition records the Position of the append that carried the
	// command's events, before deliver.
	setPosition(pos uint64)
	// storeCtx returns room for the context of one store call made on
	// behalf of this command alone, so a command run at once by its
	// caller needs no allocation of its own for it. It is used at most
	// once.
	storeCtx() *storeCtx
	// idemKey, encodeReply and decodeReply are as for command.
	idemKey() string
	encodeReply(codecs []replyCodecEntry) (string, error)
	decodeReply(codecs []replyCodecEntry, s string) error
}

// request is an asked command, from Ask to its answer. Requests are
// recycled through a pool per Kind and reply type (requestPool): one whose
// answer its caller has taken is no longer referenced by the entity (the
// answer is the last the entity does with it), so the next Ask may reuse
// it. One whose caller gave up stays with the entity and is never
// recycled. Its done channel is never reused: a channel made in one
// testing/synctest bubble must not be used in another.
type request[S, E, R any] struct {
	cmd   Command[S, E, R]
	meta  map[string]string
	key   string     // idempotency key, "" for none
	span  trace.Span // nil unless traced
	state atomic.Int32
	reply R
	pos   uint64 // see AskPosition
	err   error
	// done is the command's own channel, which deliver signals, if it was
	// armed; wait is the channel its caller waits on: done, or the
	// channel of its append's round (waitOn).
	done chan struct{}
	wait <-chan struct{}
	sctx storeCtx
	tx   Tx[S, E] // given to the handler, so that it needs no allocation
}

// answer returns r's answer and recycles r into pool, which r came from.
// Its caller has the answer: the entity no longer uses r.
func (r *request[S, E, R]) answer(pool *sync.Pool) (R, uint64, error) {
	reply, pos, err := r.reply, r.pos, r.err
	if !r.sctx.recyclable() {
		// A store has started the context's timer, and may still watch
		// it (see storeCtx): let it be.
		return reply, pos, err
	}
	var zero R
	r.cmd, r.meta, r.key, r.span, r.reply, r.pos, r.err, r.done, r.wait = nil, nil, "", nil, zero, 0, nil, nil, nil
	r.state.Store(reqWaiting)
	// Only persist sets these in a storeCtx that stays recyclable: the
	// rest is set when a store starts it.
	r.sctx.parent, r.sctx.timeout = nil, 0
	pool.Put(r)
	return reply, pos, err
}

// requestPools holds a Kind's pools of requests, one per reply type R:
// a *sync.Pool of *request[S, E, R] under the key (*R)(nil), whose
// dynamic type is unique to R. A Kind sees few reply types, so a scan of a short
// immutable list is cheaper than a map.
type requestPools struct {
	cur atomic.Pointer[requestPoolList]
	mu  sync.Mutex // serializes adding a pool
}

// requestPoolList is an immutable list of pools. It is 128 bytes, a size
// class whose objects have their cache lines to themselves: read on every
// Ask, it must not share one with memory that is written.
type requestPoolList struct {
	entries [4]requestPoolEntry
	more    []requestPoolEntry // after the first 4
	n       int                // entries used
}

type requestPoolEntry struct {
	key  any
	pool *sync.Pool
}

// findPool returns the pool of reply type R in l, nil if there is none. It
// matches keys with a type assertion, a comparison of type words, where
// comparing interfaces would call the runtime.
func findPool[R any](l *requestPoolList) *sync.Pool {
	for i := range min(l.n, len(l.entries)) {
		if _, ok := l.entries[i].key.(*R); ok {
			return l.entries[i].pool
		}
	}
	for _, e := range l.more {
		if _, ok := e.key.(*R); ok {
			return e.pool
		}
	}
	return nil
}

// requestPool returns k's pool of requests with reply type R.
func requestPool[S, E, R any](k *Kind[S, E]) *sync.Pool {
	if cur := k.requests.cur.Load(); cur != nil {
		if p := findPool[R](cur); p != nil {
			return p
		}
	}
	rp := &k.requests
	rp.mu.Lock()
	defer rp.mu.Unlock()
	next := new(requestPoolList)
	if cur := rp.cur.Load(); cur != nil {
		if p := findPool[R](cur); p != nil {
			return p
		}
		*next = *cur
		next.more = slices.Clone(cur.more)
	}
	pool := &sync.Pool{New: func() any { return new(request[S, E, R]) }}
	e := requestPoolEntry{key: (*R)(nil), pool: pool}
	if next.n < len(next.entries) {
		next.entries[next.n] = e
	} else {
		next.more = append(next.more, e)
	}
	next.n++
	rp.cur.Store(next)
	return pool
}

func (r *request[S, E, R]) arm() {
	r.done = make(chan struct{}, 1)
	r.wait = r.done
}

func (r *request[S, E, R]) waitOn(ch <-chan struct{}) { r.wait = ch }

func (r *request[S, E, R]) start() bool {
	return r.state.CompareAndSwap(reqWaiting, reqStarted)
}

func (r *request[S, E, R]) run(tx *Tx[S, E]) error {
	reply, err := r.cmd.Handle(tx)
	if err == nil {
		r.reply = reply
	}
	return err
}

func (r *request[S, E, R]) metadata() map[string]string { return r.meta }

func (r *request[S, E, R]) idemKey() string { return r.key }

func (r *request[S, E, R]) encodeReply(codecs []replyCodecEntry) (string, error) {
	return encodeReply(codecs, r.cmd, r.reply)
}

func (r *request[S, E, R]) decodeReply(codecs []replyCodecEntry, s string) error {
	reply, err := decodeReply[R](codecs, r.cmd, s)
	if err == nil {
		r.reply = reply
	}
	return err
}

func (r *request[S, E, R]) txRoom() *Tx[S, E] { return &r.tx }

func (r *request[S, E, R]) traceSpan() trace.Span { return r.span }

func (r *request[S, E, R]) storeCtx() *storeCtx { return &r.sctx }

func (r *request[S, E, R]) setPosition(pos uint64) { r.pos = pos }

func (r *request[S, E, R]) deliver(err error) {
	if err != nil {
		var zero R
		r.reply, r.pos = zero, 0
	}
	r.err = err
	if r.done != nil {
		r.done <- struct{}{}
	}
}
