package projection

import (
	"context"
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
