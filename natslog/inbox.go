package natslog

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
)

// inbox multiplexes the replies to many concurrent requests over one
// wildcard subscription, as nats.go's request path does, but lets a request
// take several replies (a batched direct get answers with many messages)
// and lets publishes without a reply go out in order with one that has one
// (an atomic batch).
//
// Every request gets a buffered channel sized for every reply it can get,
// and the subscription's handler never blocks: a reply for a request that
// gave up, or one more than announced, is dropped. Each request has a reply
// subject of its own, never reused, so a late reply cannot be mistaken for
// the answer to a later request.
//
// An asynchronous request (requestAsync) has no channel and nobody waiting:
// its handler gets the reply on the subscription's goroutine, or the error
// that ends the wait from the sweeper, which follows the requests' contexts,
// deadlines and connection epochs, or from shutdown. Whoever takes the
// request out of calls, under mu, hands it its outcome, so it gets exactly
// one.
type inbox struct {
	nc     *nats.Conn
	prefix string // the reply subject prefix, ending in '.'
	sub    *nats.Subscription
	// watch fails requests whose connection drops (see connWatch).
	watch *connWatch

	// done is closed by shutdown; waiting requests then end with errClosed,
	// and the sweeper stops. swept is closed when it has.
	done  chan struct{}
	swept chan struct{}
	// sweepEvery is the sweeper's period: how late, at most, an
	// asynchronous request whose context ended gets its error.
	sweepEvery time.Duration

	// The publisher sends the messages of asynchronous requests, in the
	// order they were queued, so that the goroutines that make them never
	// wait for the connection's lock, which its flusher holds while it
	// writes to the socket. kick wakes it; published is closed when it has
	// stopped.
	kick      chan struct{}
	published chan struct{}
	qmu       sync.Mutex // guards queue
	queue     []queued

	// mu guards calls, next, buckets, timed, nextDeadline and closed, and
	// is held while a reply is put into a call's channel, so that close can
	// empty the channel for reuse without a late reply slipping in.
	mu     sync.Mutex
	calls  map[uint64]*call
	next   uint64
	closed bool
	// buckets counts the asynchronous requests in calls by context and
	// connection epoch, so that the sweeper looks at each of those once,
	// not at every request, and goes through calls only when one ended:
	// the entity runtime's appends share a few coarse contexts. A bucket
	// emptied stays until the sweeper's next round.
	buckets map[bucketKey]*bucket
	// timed counts those with a deadline of their own (a context without
	// one); none ends before nextDeadline, the earliest when it was set.
	timed        int
	nextDeadline int64
	// pending counts the asynchronous requests in calls; busy wakes the
	// sweeper, which waits for it while there are none (buffered 1).
	pending int
	busy    chan struct{}
}

// bucketKey is what asynchronous requests that end together share.
type bucketKey struct {
	ctx  context.Context
	lost <-chan struct{}
}

// bucket counts the asynchronous requests of a bucketKey in calls.
type bucket struct {
	key bucketKey
	n   int
}

// replyHandler takes the outcome of an asynchronous request: its reply, or
// the error that ended the wait for it (errLost, errClosed, the context's
// error). It must not block, nor call the inbox.
type replyHandler interface {
	handle(reply *nats.Msg, err error)
}

// callPool recycles the calls of single-reply requests, one per append, with
// their channels.
var callPool = sync.Pool{New: func() any { return &call{ch: make(chan *nats.Msg, 1)} }}

// newInbox subscribes to the replies on nc and starts the sweeper, which
// fails asynchronous requests about every sweepEvery; shutdown stops it.
func newInbox(nc *nats.Conn, watch *connWatch, sweepEvery time.Duration) (*inbox, error) {
	b := &inbox{nc: nc, prefix: nc.NewInbox() + ".", watch: watch, calls: make(map[uint64]*call),
		buckets: make(map[bucketKey]*bucket), done: make(chan struct{}), swept: make(chan struct{}), sweepEvery: sweepEvery,
		busy: make(chan struct{}, 1),
		kick: make(chan struct{}, 1), published: make(chan struct{})}
	sub, err := nc.Subscribe(b.prefix+"*", b.dispatch)
	if err != nil {
		return nil, fmt.Errorf("natslog: subscribe to replies: %w", err)
	}
	// The handler only hands messages on, so it keeps up; never drop replies
	// as a slow consumer.
	if err := sub.SetPendingLimits(-1, -1); err != nil {
		_ = sub.Unsubscribe()
		return nil, fmt.Errorf("natslog: subscribe to replies: %w", err)
	}
	b.sub = sub
	go b.sweeper()
	go b.publisher()
	return b, nil
}

// dispatch is the subscription's handler.
func (b *inbox) dispatch(m *nats.Msg) {
	if len(m.Subject) <= len(b.prefix) {
		return
	}
	id, err := strconv.ParseUint(m.Subject[len(b.prefix):], 36, 64)
	if err != nil {
		return
	}
	b.mu.Lock()
	c := b.calls[id]
	if c != nil && c.h != nil {
		b.removeAsync(id, c)
		b.mu.Unlock()
		c.h.handle(m, nil)
		return
	}
	if c != nil {
		select {
		case c.ch <- m:
		default:
		}
	}
	b.mu.Unlock()
}

// call is one request in flight.
type call struct {
	b     *inbox
	id    uint64
	reply string
	ch    chan *nats.Msg
	lost  <-chan struct{} // closed if the connection drops

	// h takes the outcome of an asynchronous request, which ends when ctx
	// does, or at deadline (Unix nanoseconds) if not 0; nil for others.
	h        replyHandler
	ctx      context.Context
	deadline int64
	bucket   *bucket
}

// open registers a request that may get up to replies replies. It fails at
// once, with an error matching ErrUnavailable, while the connection is down.
func (b *inbox) open(replies int) (*call, error) {
	e, err := b.watch.epoch()
	if err != nil {
		return nil, err
	}
	var c *call
	if replies == 1 {
		c = callPool.Get().(*call)
	} else {
		c = &call{ch: make(chan *nats.Msg, replies)}
	}
	b.mu.Lock()
	if b.closed {
		b.mu.Unlock()
		return nil, errClosed
	}
	b.next++
	c.b, c.id, c.lost = b, b.next, e.ctx.Done()
	b.calls[c.id] = c
	b.mu.Unlock()
	c.reply = b.prefix + strconv.FormatUint(c.id, 36)
	return c, nil
}

// close unregisters the request; later replies are dropped.
func (c *call) close() {
	b := c.b
	b.mu.Lock()
	delete(b.calls, c.id)
	for len(c.ch) > 0 {
		<-c.ch
	}
	b.mu.Unlock()
	if cap(c.ch) == 1 {
		c.b, c.reply, c.lost = nil, "", nil
		callPool.Put(c)
	}
}

// next waits for the request's next reply. If the connection dropped, a
// reply that arrived before is still taken; otherwise next fails with
// errLost.
func (c *call) next(ctx context.Context) (*nats.Msg, error) {
	select {
	case m := <-c.ch:
		return m, nil
	case <-ctx.Done():
		return nil, context.Cause(ctx)
	case <-c.b.done:
		return nil, errClosed
	case <-c.lost:
		select {
		case m := <-c.ch:
			return m, nil
		default:
			c.b.watch.lost.add()
			return nil, errLost
		}
	}
}

// request publishes msgs, the last with a fresh reply subject and the
// others without one (the parts of an atomic batch), and waits for one
// reply. All of them go out on one connection: if it drops before the
// reply, request fails with errLost.
func (b *inbox) request(ctx context.Context, msgs ...*nats.Msg) (*nats.Msg, error) {
	c, err := b.open(1)
	if err != nil {
		return nil, err
	}
	defer c.close()
	last := msgs[len(msgs)-1]
	for _, m := range msgs[:len(msgs)-1] {
		m.Reply = ""
		if err := b.nc.PublishMsg(m); err != nil {
			return nil, sendError(err)
		}
	}
	last.Reply = c.reply
	if err := b.nc.PublishMsg(last); err != nil {
		return nil, sendError(err)
	}
	return c.next(ctx)
}

// requestAsync publishes m with a fresh reply subject and hands its reply,
// or the error that ends the wait for it, to c.h, exactly once: on the
// subscription's goroutine (the reply), the sweeper's (c.ctx ended, the
// deadline passed, the connection dropped) or shutdown's. If it returns an
// error, nothing was sent and c.h is not called.
func (b *inbox) requestAsync(c *call, m *outMsg) error {
	e, err := b.watch.epoch()
	if err != nil {
		return err
	}
	b.mu.Lock()
	if b.closed {
		b.mu.Unlock()
		return errClosed
	}
	b.next++
	id := b.next
	c.b, c.id, c.lost = b, id, e.ctx.Done()
	b.calls[id] = c
	k := bucketKey{c.ctx, c.lost}
	bk := b.buckets[k]
	if bk == nil {
		bk = &bucket{key: k}
		b.buckets[k] = bk
	}
	bk.n++
	c.bucket = bk
	if b.pending++; b.pending == 1 {
		select {
		case b.busy <- struct{}{}:
		default:
		}
	}
	if c.deadline != 0 {
		if b.timed == 0 || c.deadline < b.nextDeadline {
			b.nextDeadline = c.deadline
		}
		b.timed++
	}
	b.mu.Unlock()
	// c is not ours any more: whoever takes it out of calls may have
	// recycled it already.
	var buf [64]byte // one allocation for the reply subject, not two
	m.Reply = string(strconv.AppendUint(append(buf[:0], b.prefix...), id, 36))
	b.qmu.Lock()
	b.queue = append(b.queue, queued{m: m, id: id, c: c})
	first := len(b.queue) == 1
	b.qmu.Unlock()
	if first {
		select {
		case b.kick <- struct{}{}:
		default:
		}
	}
	return nil
}

// queued is the message of an asynchronous request, registered as id, on
// its way to the publisher, which releases it. c is only compared: it may
// have been recycled.
type queued struct {
	m  *outMsg
	id uint64
	c  *call
}

// publisher publishes what requestAsync queues, until shutdown. A message
// it cannot send fails its request, unless someone took it already.
func (b *inbox) publisher() {
	defer close(b.published)
	var batch []queued
	for {
		select {
		case <-b.done:
			b.qmu.Lock()
			batch, b.queue = b.queue, nil
			b.qmu.Unlock()
			for _, q := range batch {
				q.m.release()
			}
			return
		case <-b.kick:
		}
		for {
			b.qmu.Lock()
			batch, b.queue = b.queue, batch[:0]
			b.qmu.Unlock()
			if len(batch) == 0 {
				break
			}
			// Requests taken while queued (their ctx ended, their
			// connection dropped) are not sent: their outcome is known.
			b.mu.Lock()
			for i, q := range batch {
				if b.calls[q.id] != q.c {
					batch[i].c = nil
				}
			}
			b.mu.Unlock()
			for i, q := range batch {
				if q.c != nil {
					if err := b.nc.PublishMsg(&q.m.Msg); err != nil && b.take(q.id, q.c) {
						q.c.h.handle(nil, sendError(err))
					}
				}
				q.m.release()
				batch[i] = queued{}
			}
		}
	}
}

// sendError classifies err, the failure of sending a request's message: a
// message over the server's max payload stays as it is; anything else is
// the connection failing (a write that failed, a connection closed or
// draining), which may or may not have sent it.
func sendError(err error) error {
	if errors.Is(err, nats.ErrMaxPayload) {
		return err
	}
	return unavailable("sending failed", err)
}

// removeAsync removes the asynchronous request c, registered as id, from
// calls; b.mu is held.
func (b *inbox) removeAsync(id uint64, c *call) {
	delete(b.calls, id)
	c.bucket.n--
	b.pending--
	if c.deadline != 0 {
		b.timed--
	}
}

// take removes the asynchronous request c, registered as id, and reports
// whether it was still there: the caller then owns it and hands it its
// outcome.
func (b *inbox) take(id uint64, c *call) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.calls[id] != c {
		return false
	}
	b.removeAsync(id, c)
	return true
}

// sweeper fails the asynchronous requests whose context ended or deadline
// passed, every sweepEvery, and those of a connection epoch the moment it
// ends, until shutdown. A drop it misses while the connection is down (no
// epoch to follow) it finds at its next round. While no asynchronous
// request is pending it sleeps until one is.
func (b *inbox) sweeper() {
	defer close(b.swept)
	t := time.NewTicker(b.sweepEvery)
	defer t.Stop()
	var failed []*call
	var errs []error
	var ended <-chan struct{} // of the last epoch seen to end
	for {
		b.mu.Lock()
		idle := b.pending == 0
		if idle {
			clear(b.buckets) // all empty
		}
		b.mu.Unlock()
		if idle {
			t.Stop()
			select {
			case <-b.done:
				return
			case <-b.busy:
			}
			t.Reset(b.sweepEvery)
		}
		var lost <-chan struct{}
		if e := b.watch.current.Load(); e.ctx != nil && e.ctx.Done() != ended {
			lost = e.ctx.Done()
		}
		select {
		case <-b.done:
			return
		case <-t.C:
		case <-lost:
			ended = lost
		}
		failed, errs = b.sweep(time.Now().UnixNano(), failed[:0], errs[:0])
		for i, c := range failed {
			if errs[i] == errLost {
				b.watch.lost.add()
			}
			c.h.handle(nil, errs[i])
		}
		clear(failed)
		clear(errs)
	}
}

// sweep takes the asynchronous requests that are over at now out of calls
// and returns them, each with its error, appended to failed and errs.
func (b *inbox) sweep(now int64, failed []*call, errs []error) ([]*call, []error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	over := b.timed > 0 && now >= b.nextDeadline
	for k, bk := range b.buckets {
		if bk.n == 0 {
			delete(b.buckets, k)
			continue
		}
		if !over {
			over = bucketOver(k) != nil
		}
	}
	if !over {
		return failed, errs
	}
	b.nextDeadline = 0
	for id, c := range b.calls {
		if c.h == nil {
			continue
		}
		err := bucketOver(c.bucket.key)
		if err == nil && c.deadline != 0 {
			if now >= c.deadline {
				err = context.DeadlineExceeded
			} else if b.nextDeadline == 0 || c.deadline < b.nextDeadline {
				b.nextDeadline = c.deadline
			}
		}
		if err != nil {
			b.removeAsync(id, c)
			failed = append(failed, c)
			errs = append(errs, err)
		}
	}
	return failed, errs
}

// bucketOver returns the error that ends the asynchronous requests of k,
// nil while they go on.
func bucketOver(k bucketKey) error {
	select {
	case <-k.lost:
		return errLost
	case <-k.ctx.Done():
		return context.Cause(k.ctx)
	default:
		return nil
	}
}

// shutdown unsubscribes, stops the sweeper and the publisher, and ends
// the requests still waiting with errClosed: those that wait in next
// return it, and the handlers of asynchronous ones get it before shutdown
// returns.
func (b *inbox) shutdown() {
	b.mu.Lock()
	if b.closed {
		b.mu.Unlock()
		return
	}
	b.closed = true
	var pending []*call
	for id, c := range b.calls {
		if c.h != nil {
			b.removeAsync(id, c)
			pending = append(pending, c)
		}
	}
	clear(b.buckets)
	b.mu.Unlock()
	close(b.done)
	_ = b.sub.Unsubscribe()
	<-b.swept
	<-b.published
	for _, c := range pending {
		c.h.handle(nil, errClosed)
	}
}
