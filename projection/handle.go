package projection

import (
	"context"
	"errors"
	"fmt"
	"runtime/debug"
	"time"

	"github.com/eventsourced-go/eventsourced/eventlog"
)

// handle commits batch, retrying it, and deals with a poison event. It
// advances *offset past what it committed or skipped.
func (p *Projection) handle(ctx context.Context, batch []eventlog.Record, offset *uint64) error {
	herr, err := p.attempt(ctx, batch, *offset, p.handler, false)
	if err != nil {
		return err
	}
	if herr == nil {
		*offset = batch[len(batch)-1].Position
		return nil
	}
	if len(batch) > 1 {
		// Find the poison event: retry the events one at a time.
		for i := range batch {
			if err := p.handle(ctx, batch[i:i+1], offset); err != nil {
				return err
			}
		}
		return nil
	}
	rec := batch[0]
	if p.cfg.poison == StopOnPoison {
		p.tel.poisoned(ctx, false)
		p.cfg.logger.Error("projection stopped at poison event", p.logAttrs(rec, "err", herr)...)
		return &PoisonError{Projection: p.name, Event: refOf(rec), Err: herr}
	}
	p.tel.poisoned(ctx, true)
	p.cfg.logger.Error("projection skipped poison event", p.logAttrs(rec, "err", herr)...)
	skip := func(context.Context, []eventlog.Record) error { return nil }
	if dl := p.cfg.deadLetters; dl != nil {
		// The dead letter is put by the commit that moves the offset past
		// the event: a transactional store writes both or neither, and
		// any other store has the dead letter before the offset moves.
		// Its failures are the store's, retried like any other, so the
		// event is never skipped unrecorded.
		d := DeadLetter{Projection: p.name, Record: rec, Err: herr.Error(), Attempts: p.cfg.attempts, Time: time.Now()}
		skip = func(ctx context.Context, _ []eventlog.Record) error {
			if err := dl.Put(ctx, d); err != nil {
				return fmt.Errorf("projection: %s: put dead letter %s: %w", p.name, refOf(rec), err)
			}
			return nil
		}
	}
	if _, err := p.attempt(ctx, batch, *offset, skip, true); err != nil {
		return err
	}
	*offset = rec.Position
	p.mu.Lock()
	defer p.mu.Unlock()
	p.st.Skipped = append(p.st.Skipped, Skipped{Event: refOf(rec), Err: herr, Time: time.Now()})
	if n := len(p.st.Skipped); n > maxSkipped {
		p.st.Skipped = append([]Skipped(nil), p.st.Skipped[n-maxSkipped:]...)
	}
	p.st.SkippedTotal++
	return nil
}

// attempt commits batch with h from offset from until it succeeds (nil,
// nil), h has failed the configured number of times (h's last error, nil),
// or it must give up (nil, err): ctx is done or the offset moved. Failures
// of the store are retried without limit, and so are those of a skipping
// h, which puts a dead letter: they are the dead-letter store's.
func (p *Projection) attempt(ctx context.Context, batch []eventlog.Record, from uint64, h Handler, skipping bool) (herr, err error) {
	to := batch[len(batch)-1].Position
	delay := p.cfg.initial
	failures := 0
	p.setInflight(batch)
	defer p.setInflight(nil)
	for {
		var last error
		bctx, bs := p.tel.startBatch(ctx, batch, skipping)
		if p.cfg.deadLetters != nil {
			p.hmu.Lock()
		}
		cctx, done := p.storeCtx(bctx, "commit", to)
		err := p.store.Commit(cctx, p.name, from, to, func(ctx context.Context) error {
			last = p.call(ctx, h, batch)
			return last
		})
		err = done(err)
		if _, ok := err.(*storeTimeoutError); ok {
			last = nil // the store's failure, whatever the handler returned
		}
		if p.cfg.deadLetters != nil {
			p.hmu.Unlock()
		}
		p.tel.endBatch(bctx, bs, len(batch), skipping, err)
		if err == nil {
			p.committed(batch, !skipping)
			return nil, nil
		}
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		if errors.Is(err, ErrOffsetMoved) {
			p.cfg.logger.Warn("projection offset moved; reloading it", p.logAttrs(batch[0], "from", from, "err", err)...)
			return nil, err
		}
		p.recordError(err)
		if last != nil && !skipping {
			failures++
			if failures >= p.cfg.attempts {
				return last, nil
			}
		}
		p.tel.retried(ctx)
		p.cfg.logger.Warn("projection batch failed; retrying", p.logAttrs(batch[0],
			"events", len(batch), "last_position", to, "err", err, "delay", delay)...)
		if !sleep(ctx, delay) {
			return nil, ctx.Err()
		}
		delay = min(2*delay, p.cfg.maxDelay)
	}
}

// logAttrs returns the attributes of a log record about rec, then more.
// Only failures log, so only they pay for it.
func (p *Projection) logAttrs(rec eventlog.Record, more ...any) []any {
	return append([]any{"projection", p.name, "entity_type", p.typ, "entity_id", rec.EntityID,
		"seq", rec.Seq, "position", rec.Position}, more...)
}

// call runs h, turning a panic into an error that wraps the panic value
// if it is an error.
func (p *Projection) call(ctx context.Context, h Handler, batch []eventlog.Record) (err error) {
	defer func() {
		if v := recover(); v != nil {
			p.cfg.logger.Error("projection handler panicked", p.logAttrs(batch[0], "events", len(batch), "panic", v, "stack", string(debug.Stack()))...)
			if e, ok := v.(error); ok {
				err = fmt.Errorf("projection: %s: handler panicked on %s: %w", p.name, refOf(batch[0]), e)
			} else {
				err = fmt.Errorf("projection: %s: handler panicked on %s: %v", p.name, refOf(batch[0]), v)
			}
		}
	}()
	return h(ctx, batch)
}
