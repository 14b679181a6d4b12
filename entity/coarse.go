package entity

import (
	"context"
	"sync"
	"sync/atomic"
	"time"
)

// coarseDeadlines hands out contexts that end a store timeout from now,
// give or take a grain: one context, with one timer, serves every call
// started within a grain of the others, instead of a context.WithDeadline
// (a timer, and a registration with the parent) per call. The deadline of
// a context it returns is between timeout and timeout+grain away.
type coarseDeadlines struct {
	parent  context.Context // ends every context handed out
	timeout time.Duration
	grain   time.Duration
	// base is when the coarseDeadlines was made: times are kept as
	// durations since base, read with time.Since, which reads only the
	// monotonic clock where time.Now reads the wall clock too.
	base time.Time

	cur atomic.Pointer[coarseCtx]
	mu  sync.Mutex // serializes making a new coarseCtx
}

type coarseCtx struct {
	ctx      context.Context
	deadline time.Duration // since base
	// cancel is kept for form: the context cancels itself at its
	// deadline, or with parent, and nobody ends it sooner.
	cancel context.CancelFunc
}

// coarseGrains is how many grains a timeout has: it bounds both how much
// later than the timeout a call may end and how many contexts are live.
const coarseGrains = 16

func newCoarseDeadlines(parent context.Context, timeout time.Duration) *coarseDeadlines {
	return &coarseDeadlines{parent: parent, timeout: timeout, grain: max(timeout/coarseGrains, time.Millisecond), base: time.Now()}
}

// ctx returns a context ending between the timeout and the timeout plus a
// grain from now, or when parent ends.
func (c *coarseDeadlines) ctx() context.Context {
	want := time.Since(c.base) + c.timeout
	if cur := c.cur.Load(); cur != nil && cur.deadline >= want {
		return cur.ctx
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if cur := c.cur.Load(); cur != nil && cur.deadline >= want {
		return cur.ctx
	}
	deadline := want + c.grain
	ctx, cancel := context.WithDeadline(c.parent, c.base.Add(deadline))
	c.cur.Store(&coarseCtx{ctx: ctx, deadline: deadline, cancel: cancel})
	return ctx
}
