package entity

import (
	"context"
	"sync"
	"sync/atomic"
	"time"
)

// storeCtx is the context of one call to the log or snapshot store: the
// parent's values and cancellation, bounded by the store timeout. Unlike
// context.WithTimeout it reads no clock and starts no timer until the store
// asks for Deadline or Done, which every store that can block does at the
// start of the call; the in-memory log asks only for Err, and a timer per
// append (about 1 µs with the clock reads) was a measurable share of a
// command against it. Call release when the call returns.
//
// A storeCtx is never modified after it is handed to a store: stores may
// keep watching it after the call (pgx registers context.AfterFunc, which
// for a context of a custom type starts a goroutine that later calls Err and
// Value), so reusing one per entity raced with those goroutines.
type storeCtx struct {
	parent  context.Context
	timeout time.Duration

	once     sync.Once
	deadline time.Time                       // written by once
	inner    atomic.Pointer[context.Context] // stored by once, after deadline and cancel
	cancel   context.CancelFunc              // written by once
}

var _ context.Context = (*storeCtx)(nil)

func newStoreCtx(parent context.Context, timeout time.Duration) *storeCtx {
	return &storeCtx{parent: parent, timeout: timeout}
}

// start fixes the deadline and starts the timer, once. A parent that ends
// no later than the store timeout bounds the call by itself: then there is
// no timer, and no registration with the parent.
func (c *storeCtx) start() context.Context {
	c.once.Do(func() {
		c.deadline = time.Now().Add(c.timeout)
		if d, ok := c.parent.Deadline(); ok && !d.After(c.deadline) {
			c.deadline, c.cancel = d, nopCancel
			inner := c.parent
			c.inner.Store(&inner)
			return
		}
		inner, cancel := context.WithDeadline(c.parent, c.deadline)
		c.cancel = cancel
		c.inner.Store(&inner)
	})
	return *c.inner.Load()
}

// nopCancel is the cancel function of a storeCtx without a timer.
func nopCancel() {}

// Deadline implements context.Context: the sooner of the parent's and the
// store timeout from the first call of Deadline or Done.
func (c *storeCtx) Deadline() (time.Time, bool) { return c.start().Deadline() }

// Done implements context.Context.
func (c *storeCtx) Done() <-chan struct{} { return c.start().Done() }

// Err implements context.Context. Until Deadline or Done is called there is
// no timer, so only the parent can have ended.
func (c *storeCtx) Err() error {
	if p := c.inner.Load(); p != nil {
		return (*p).Err()
	}
	return c.parent.Err()
}

// Value implements context.Context. Once the timer is started it asks the
// timer's context, which has the parent's values and also identifies itself
// to the context package as the canceler behind Done: context.AfterFunc
// (pgx registers one per query) then attaches to it instead of starting a
// goroutine to watch Done.
func (c *storeCtx) Value(key any) any {
	if p := c.inner.Load(); p != nil {
		return (*p).Value(key)
	}
	return c.parent.Value(key)
}

// recyclable reports whether c may be reset and used again for another
// call once the call it was given to has returned: only if the store never
// asked for Deadline or Done. A store that watches its context after the
// call (pgx's context.AfterFunc) asks for Done first, which starts the
// timer; one that only asked for Err and Value during the call (the
// in-memory log) is done with it when the call returns.
func (c *storeCtx) recyclable() bool { return c.inner.Load() == nil }

// release stops the timer, if one was started.
func (c *storeCtx) release() {
	// cancel is written before inner is stored, so seeing inner means
	// seeing cancel.
	if c.inner.Load() != nil {
		c.cancel()
	}
}
