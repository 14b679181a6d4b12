package lifecycle

import (
	"context"
	"sync"
)

// Runs tracks a component's runs. The zero value has never run. It is
// safe for concurrent use.
type Runs struct {
	mu     sync.Mutex
	cancel context.CancelFunc // the current or last run's
	cur    *run               // nil before the first run
}

// run is one run: done is closed once result is set.
type run struct {
	done   chan struct{}
	result error
}

// Begin records a new run that cancel stops, and returns the function
// that ends it with its result: Wait then returns the result, and Stop
// returns. end must be called exactly once. The owner must not begin a
// run while another one is running.
func (r *Runs) Begin(cancel context.CancelFunc) (end func(result error)) {
	cur := &run{done: make(chan struct{})}
	r.mu.Lock()
	r.cancel, r.cur = cancel, cur
	r.mu.Unlock()
	return func(result error) {
		cur.result = result
		close(cur.done)
	}
}

// Stop cancels the current run and waits until it has ended or ctx is
// done, and returns ctx.Err() in the latter case. It returns nil at once
// if there was never a run, and when the last one has ended.
func (r *Runs) Stop(ctx context.Context) error {
	r.mu.Lock()
	cancel, cur := r.cancel, r.cur
	r.mu.Unlock()
	if cur == nil {
		return nil
	}
	cancel()
	select {
	case <-cur.done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Wait waits for the current or last run to end and returns its result.
// It returns ctx.Err() if ctx ends first, and nil if there was never a
// run.
func (r *Runs) Wait(ctx context.Context) error {
	r.mu.Lock()
	cur := r.cur
	r.mu.Unlock()
	if cur == nil {
		return nil
	}
	select {
	case <-cur.done:
		return cur.result
	case <-ctx.Done():
		return ctx.Err()
	}
}
