package projection

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/eventsourced-go/eventsourced/eventlog"
)

// item is what the reader hands the handler loop: a record or the error
// that ended the subscription.
type item struct {
	rec eventlog.Record
	err error
}

// run is the projection's goroutine: load the offset, follow the log, and
// start over after log failures and offset moves, until ctx is done or a
// poison event stops it.
func (p *Projection) run(ctx context.Context) error {
	var offset uint64
	load := func() error {
		return p.retry(ctx, func() error {
			lctx, done := p.storeCtx(ctx, "load of the offset", 0)
			off, err := p.store.Load(lctx, p.name)
			if err = done(err); err != nil {
				return fmt.Errorf("projection: load offset of %s: %w", p.name, err)
			}
			offset = off
			return nil
		})
	}
	if load() != nil {
		return nil // ctx is done
	}
	p.setOffset(offset)
	// The control records are read before anything is handled, so that a
	// paused projection starts paused: until they are read, nothing is.
	ctl := p.newController()
	if ctl != nil && p.retry(ctx, func() error { return ctl.poll(ctx) }) != nil {
		return nil // ctx is done
	}
	delay := p.cfg.initial
	for {
		before := offset
		err := p.follow(ctx, ctl, &offset)
		if offset != before {
			delay = p.cfg.initial // it made progress: not the same outage
		}
		switch {
		case ctx.Err() != nil:
			return nil
		case errors.Is(err, ErrPoison):
			return err // handle logged it
		case errors.Is(err, ErrOffsetMoved):
			// attempt logged it.
			if load() != nil {
				return nil
			}
			p.setOffset(offset)
			continue
		}
		// The subscription failed: follow again from the offset.
		p.recordError(err)
		p.tel.retried(ctx)
		p.cfg.logger.Warn("projection subscription failed; retrying", "projection", p.name, "entity_type", p.typ, "after", offset, "err", err, "delay", delay)
		if !sleep(ctx, delay) {
			return nil
		}
		delay = min(2*delay, p.cfg.maxDelay)
	}
}

// follow subscribes after *offset and handles what arrives until the
// subscription fails, the offset moves, a poison event stops the
// projection or ctx is done. It advances *offset as batches commit. With
// a controller (nil without control records) it obeys them.
func (p *Projection) follow(ctx context.Context, ctl *controller, offset *uint64) error {
	rctx, cancel := context.WithCancel(ctx)
	buf := make(chan item, p.cfg.buffer)
	var wg sync.WaitGroup
	wg.Go(func() { p.read(rctx, *offset, buf) })
	p.mu.Lock()
	p.buf = buf
	p.mu.Unlock()
	defer func() {
		cancel()
		wg.Wait()
		p.mu.Lock()
		p.buf = nil
		p.mu.Unlock()
	}()

	// The control records are read every control interval, between
	// batches, so that nothing they ask overlaps a commit of the run.
	// While paused the loop does not take from buf: the reader fills it
	// and waits.
	var tick <-chan time.Time
	if ctl != nil {
		t := time.NewTicker(p.cfg.controlInterval)
		defer t.Stop()
		tick = t.C
	}
	batch := make([]eventlog.Record, 0, p.cfg.batch)
	for {
		var it item
		in := buf
		if ctl != nil && ctl.paused {
			in = nil
		}
		select {
		case it = <-in:
		case <-tick:
			ctl.tick(ctx)
			continue
		case <-ctx.Done():
			return ctx.Err()
		}
		if it.err != nil {
			return it.err
		}
		batch = append(batch[:0], it.rec)
		var pending error
	fill:
		for len(batch) < p.cfg.batch {
			select {
			case it = <-buf:
				if it.err != nil {
					pending = it.err
					break fill
				}
				batch = append(batch, it.rec)
			default:
				break fill
			}
		}
		if err := p.handle(ctx, batch, offset); err != nil {
			return err
		}
		if pending != nil {
			return pending
		}
	}
}

// read is the reader goroutine of follow: it copies the subscription into
// buf until rctx ends or the subscription fails.
func (p *Projection) read(rctx context.Context, after uint64, buf chan<- item) {
	send := func(it item) bool {
		select {
		case buf <- it:
			return true
		case <-rctx.Done():
			return false
		}
	}
	var sub func(yield func(eventlog.Record, error) bool)
	if p.types != nil {
		sub = p.all.SubscribeAll(rctx, after, p.types...)
	} else {
		sub = p.log.Subscribe(rctx, p.typ, after)
	}
	sent := after // the Position of the last event of this slice sent on
	for rec, err := range sub {
		if err != nil {
			if rctx.Err() == nil {
				send(item{err: fmt.Errorf("projection: subscribe to %s after %d: %w", p.typ, after, err)})
			}
			return
		}
		if rec.Position <= after {
			continue // a log must not do this; never apply twice
		}
		after = rec.Position
		if after > p.head.Load() {
			p.head.Store(after)
		}
		if !p.mine(&rec) {
			p.pass(sent, rec.Position) // another slice's
			continue
		}
		if !send(item{rec: rec}) {
			return
		}
		sent = rec.Position
	}
	if rctx.Err() == nil {
		send(item{err: fmt.Errorf("projection: subscription to %s ended", p.typ)})
	}
}
