package projection

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// retry runs f until it succeeds or ctx is done, with backoff.
func (p *Projection) retry(ctx context.Context, f func() error) error {
	delay := p.cfg.initial
	for {
		err := f()
		if err == nil {
			return nil
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		p.recordError(err)
		p.tel.retried(ctx)
		p.cfg.logger.Warn("projection retrying", "projection", p.name, "entity_type", p.typ, "err", err, "delay", delay)
		if !sleep(ctx, delay) {
			return ctx.Err()
		}
		delay = min(2*delay, p.cfg.maxDelay)
	}
}

// storeCtx returns ctx bounded by the store timeout (WithStoreTimeout),
// and done, to call with the store call's error once it has returned. If
// the timeout, not ctx, ended the call, done returns a *storeTimeoutError
// naming call and, if upTo is not 0, the last Position of its batch.
func (p *Projection) storeCtx(ctx context.Context, call string, upTo uint64) (sctx context.Context, done func(err error) error) {
	if p.cfg.storeTimeout <= 0 {
		return ctx, func(err error) error { return err }
	}
	sctx, cancel := context.WithTimeout(ctx, p.cfg.storeTimeout)
	return sctx, func(err error) error {
		timedOut := err != nil && ctx.Err() == nil && errors.Is(sctx.Err(), context.DeadlineExceeded)
		cancel()
		if timedOut {
			return &storeTimeoutError{projection: p.name, call: call, upTo: upTo, d: p.cfg.storeTimeout, err: err}
		}
		return err
	}
}

// storeTimeoutError is a store call that took longer than WithStoreTimeout.
type storeTimeoutError struct {
	projection, call string
	upTo             uint64
	d                time.Duration
	err              error
}

// Error implements error, naming the projection, the call and the option.
func (e *storeTimeoutError) Error() string {
	call := e.call
	if e.upTo > 0 {
		call = fmt.Sprintf("%s of the batch up to position %d", call, e.upTo)
	}
	return fmt.Sprintf("projection: %s: %s took longer than WithStoreTimeout(%v): %v", e.projection, call, e.d, e.err)
}

// Unwrap returns the call's error.
func (e *storeTimeoutError) Unwrap() error { return e.err }

// sleep waits d; false if ctx ended first.
func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}
