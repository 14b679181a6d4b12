package projection

import (
	"context"
	"fmt"
	"time"

	"github.com/eventsourced-go/eventsourced/eventlog"
)

// SetOffset moves the stopped projection's stored offset to pos, ahead to
// skip events or back to handle them again; the next Start carries on
// after pos. It changes nothing in the read model: rewinding a projection
// whose handler is not idempotent applies events twice, and rebuilding
// from scratch is [Projection.Reset]'s job. The move is one conditional
// [OffsetStore.Commit] from the stored offset, with no handler, so a
// runner of the same name elsewhere that moves the offset meanwhile makes
// it fail with [ErrOffsetMoved] instead of being overwritten.
//
// SetOffset returns [ErrRunning] while the projection runs or a Reset or
// another SetOffset is in progress, and Start returns it during a
// SetOffset. Moving the offset to or past the event a poison event stopped
// the projection at clears [Status.Poison].
func (p *Projection) SetOffset(ctx context.Context, pos uint64) error {
	p.mu.Lock()
	if p.running || p.resetting {
		p.mu.Unlock()
		return fmt.Errorf("%w: set offset of %s: stop it first", ErrRunning, p.name)
	}
	p.resetting = true
	p.mu.Unlock()

	err := p.moveOffset(ctx, pos)

	p.mu.Lock()
	defer p.mu.Unlock()
	p.resetting = false
	if err != nil {
		return fmt.Errorf("projection: set offset of %s to %d: %w", p.name, pos, err)
	}
	p.st.Offset, p.st.Head = pos, pos
	p.clearPassed()
	p.head.Store(pos)
	if p.atPoison != nil && pos >= p.atPoison.Event.Position {
		p.atPoison = nil
	}
	p.wake()
	return nil
}

// moveOffset moves the stored offset from wherever it is to pos.
func (p *Projection) moveOffset(ctx context.Context, pos uint64) error {
	cur, err := p.store.Load(ctx, p.name)
	if err != nil {
		return err
	}
	if cur == pos {
		return nil
	}
	return p.store.Commit(ctx, p.name, cur, pos, func(context.Context) error { return nil })
}

// ListDeadLetters returns the projection's dead letters with a Position
// above after, oldest first, at most limit of them (all if limit <= 0);
// see [DeadLetters.List]. Without [WithDeadLetters] it returns an error
// matching [ErrInvalid].
func (p *Projection) ListDeadLetters(ctx context.Context, after uint64, limit int) ([]DeadLetter, error) {
	dl, err := p.deadLetters("list dead letters")
	if err != nil {
		return nil, err
	}
	out, err := dl.List(ctx, p.name, after, limit)
	if err != nil {
		return nil, fmt.Errorf("projection: %s: list dead letters after %d: %w", p.name, after, err)
	}
	return out, nil
}

// DropDeadLetter deletes the projection's dead letter of the event at
// position without handling it, or returns an error matching
// [ErrNotFound] if there is none. Without [WithDeadLetters] it returns an
// error matching [ErrInvalid].
func (p *Projection) DropDeadLetter(ctx context.Context, position uint64) error {
	dl, err := p.deadLetters("drop dead letter")
	if err != nil {
		return err
	}
	if err := dl.Drop(ctx, p.name, position); err != nil {
		return fmt.Errorf("projection: %s: drop dead letter at %d: %w", p.name, position, err)
	}
	return nil
}

// RetryDeadLetter runs the projection's handler once on the event of its
// dead letter at position, and drops the dead letter if the handler
// succeeds. If the handler fails (or panics), the dead letter stays, with
// the new error and one more attempt, and RetryDeadLetter returns the
// handler's error; call it again later, or drop the dead letter. It
// returns an error matching [ErrNotFound] if there is no such dead letter,
// and one matching [ErrInvalid] without [WithDeadLetters].
//
// The store decides the guarantee as [DeadLetters.Retry] says: a
// transactional store (pgprojection) runs the handler in the transaction
// that deletes the dead letter, so the event changes the read model
// exactly once; with the others a crash between the handler and the
// delete keeps the dead letter, and a later retry delivers the event
// again, which at-least-once handlers tolerate.
//
// It may be called while the projection runs: the handler never runs
// concurrently with itself, so the retry waits for the batch in the
// handler and the next batch waits for the retry. It must not be called
// from the handler. The event is handled after events that followed it in
// the log: a read model that depends on the order of an entity's events
// must take that into account.
func (p *Projection) RetryDeadLetter(ctx context.Context, position uint64) error {
	_, err := p.retryDeadLetter(ctx, position)
	return err
}

// retryDeadLetter is RetryDeadLetter; failed reports that the handler
// failed, as opposed to the store.
func (p *Projection) retryDeadLetter(ctx context.Context, position uint64) (failed bool, _ error) {
	dl, err := p.deadLetters("retry dead letter")
	if err != nil {
		return false, err
	}
	p.hmu.Lock()
	defer p.hmu.Unlock()
	var (
		got     DeadLetter
		herr    error
		handled bool
		bctx    context.Context
		bs      batchStart
	)
	err = dl.Retry(ctx, p.name, position, func(ctx context.Context, d DeadLetter) error {
		got, handled = d, true
		batch := []eventlog.Record{d.Record}
		bctx, bs = p.tel.startBatch(ctx, batch, false)
		herr = p.call(bctx, p.handler, batch)
		return herr
	})
	if handled {
		p.tel.endBatch(bctx, bs, 1, false, err)
	}
	switch {
	case err == nil:
		return false, nil
	case herr == nil:
		return false, fmt.Errorf("projection: %s: retry dead letter at %d: %w", p.name, position, err)
	}
	// The handler failed again: keep the dead letter up to date, so the
	// next look at it shows why.
	got.Err, got.Attempts, got.Time = herr.Error(), got.Attempts+1, time.Now()
	if perr := dl.Put(ctx, got); perr != nil {
		p.cfg.logger.Warn("projection could not update a dead letter after a failed retry", p.logAttrs(got.Record, "err", perr)...)
	}
	p.cfg.logger.Warn("projection retry of a dead letter failed", p.logAttrs(got.Record, "err", herr)...)
	return true, fmt.Errorf("projection: %s: retry dead letter %s: %w", p.name, got.Ref(), herr)
}

// deadLetters returns the dead-letter store, or an error for op without
// one.
func (p *Projection) deadLetters(op string) (DeadLetters, error) {
	if p.cfg.deadLetters == nil {
		return nil, fmt.Errorf("%w: %s of %s: no dead-letter store (see WithDeadLetters)", ErrInvalid, op, p.name)
	}
	return p.cfg.deadLetters, nil
}
