package entity

import (
	"context"
	"fmt"
	"maps"
	"sync/atomic"
)

// Metadata keys the runtime knows by convention; any other key is allowed.
const (
	// CorrelationID ties together everything caused by one outside request.
	CorrelationID = "correlation_id"
	// CausationID names the message that caused this one.
	CausationID = "causation_id"
)

type metadataKey struct{}

// WithMetadata returns a context that attaches md to the commands asked with
// it: the handler sees it in [Tx.Metadata] and every event the command
// persists carries it. It adds to metadata already in ctx.
func WithMetadata(ctx context.Context, md map[string]string) context.Context {
	if prev := MetadataFrom(ctx); len(prev) > 0 {
		merged := maps.Clone(prev)
		maps.Copy(merged, md)
		md = merged
	} else {
		md = maps.Clone(md)
	}
	return context.WithValue(ctx, metadataKey{}, md)
}

// MetadataFrom returns the metadata attached to ctx with [WithMetadata].
func MetadataFrom(ctx context.Context) map[string]string {
	md, _ := ctx.Value(metadataKey{}).(map[string]string)
	return md
}

// Ask sends cmd to the entity ref and waits for its reply. The reply comes
// after the command's events are durable. If the entity is idle, the command
// runs on the calling goroutine, and ctx bounds its append as the store
// timeout does. Errors: the handler's rejection as returned; a *PanicError
// if user code panicked; a *PersistError if the append failed (it matches
// ctx's error if ctx ended during the append; whether the events landed is
// then unknown, and the entity recovers from the log before its next
// command); a *RecoveryError if the entity could not be recovered;
// [ErrMailboxFull]; [ErrClosed]; ctx.Err() if ctx ends while the command
// waits behind others (the command may still run, unless it had not
// started, in which case it never will).
func Ask[S, E, R any](ctx context.Context, ref Ref[S, E], cmd Command[S, E, R]) (R, error) {
	var zero R
	if ref.kind == nil {
		return zero, fmt.Errorf("%w: Ask on a zero Ref", ErrInvalid)
	}
	if cmd == nil {
		return zero, fmt.Errorf("%w: Ask %s with a nil command", ErrInvalid, ref)
	}
	if err := ctx.Err(); err != nil {
		return zero, err
	}
	req := &request[S, E, R]{cmd: cmd, meta: MetadataFrom(ctx)}
	ran, err := ref.kind.submit(ctx, ref.id, req)
	if err != nil {
		return zero, err
	}
	if ran {
		return req.reply, req.err
	}
	select {
	case <-req.done:
		return req.reply, req.err
	case <-ctx.Done():
		select {
		case <-req.done:
			return req.reply, req.err
		default:
		}
		req.state.CompareAndSwap(reqWaiting, reqAbandoned)
		return zero, ctx.Err()
	}
}

// submit runs p for entity id at once if the entity is idle (ran true: p
// has been delivered), or queues it, activating the entity if needed.
func (k *Kind[S, E]) submit(ctx context.Context, id string, p pending[S, E]) (ran bool, err error) {
	if id == "" {
		return false, fmt.Errorf("%w: Ask %s with an empty entity id", ErrInvalid, k.def.Name)
	}
	sys := k.sys
	for {
		if sys.closed.Load() {
			return false, ErrClosed
		}
		in, err := k.instance(id)
		if err != nil {
			return false, err
		}
		// Counted before closed is checked again: see System.inflight.
		// The instance holds its id's counter, so the id is hashed once.
		in.flight.Add(1)
		if sys.closed.Load() {
			in.flight.Add(-1)
			return false, ErrClosed
		}
		ran, accepted, err := in.submit(ctx, p)
		if err != nil {
			in.flight.Add(-1)
			return false, err
		}
		if accepted {
			return ran, nil
		}
		in.flight.Add(-1)
		// The instance was passivated or retired after we found it; its
		// successor takes the command.
		if k.live.CompareAndDelete(id, in) {
			k.count.Add(-1)
		}
	}
}

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
	// start marks the command started; false if its caller gave up first.
	start() bool
	run(tx *Tx[S, E]) error
	metadata() map[string]string
	deliver(err error)
	// storeCtx returns room for the context of one store call made on
	// behalf of this command alone, so a command run at once by its
	// caller needs no allocation of its own for it. It is used at most
	// once.
	storeCtx() *storeCtx
}

type request[S, E, R any] struct {
	cmd   Command[S, E, R]
	meta  map[string]string
	state atomic.Int32
	reply R
	err   error
	done  chan struct{}
	sctx  storeCtx
}

func (r *request[S, E, R]) arm() { r.done = make(chan struct{}, 1) }

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

func (r *request[S, E, R]) storeCtx() *storeCtx { return &r.sctx }

func (r *request[S, E, R]) deliver(err error) {
	if err != nil {
		var zero R
		r.reply = zero
	}
	r.err = err
	if r.done != nil {
		r.done <- struct{}{}
	}
}
