package natslog

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"time"
	"unsafe"

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
// the answer to a later request: <prefix><slot>-<id>, both base 36, where
// id counts the requests and slot is the request's place in slots, which
// finds it without hashing.
//
// An asynchronous request (requestAsync) has no channel and nobody waiting:
// its handler gets the reply on the subscription's goroutine, or the error
// that ends the wait from the sweeper, which follows the requests' contexts,
// deadlines and connection epochs, or from shutdown. Whoever takes the
// request out of slots, under mu, hands it its outcome, so it gets exactly
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

	// mu guards queue, slots, free, inflight, next, buckets, lastBucket,
	// timed, nextDeadline and closed, and is held while a reply is put into
	// a call's channel, so that close can empty the channel for reuse
	// without a late reply slipping in. One lock for the queue and the
	// requests costs an asynchronous request one lock, not two.
	mu    sync.Mutex
	queue []queued
	// slots holds the requests in flight, each at the index its reply
	// subject names; free lists the indexes of the empty ones, and
	// inflight counts the others.
	slots    []slot
	free     []uint32
	inflight int
	next     uint64
	closed   bool
	// buckets counts the asynchronous requests in slots by context and
	// connection epoch, so that the sweeper looks at each of those once,
	// not at every request, and goes through slots only when one ended:
	// the entity runtime's appends share a few coarse contexts. A bucket
	// emptied stays until the sweeper's next round.
	buckets map[bucketKey]*bucket
	// lastBucket is the bucket the last asynchronous request went to, nil
	// after it was deleted: most share it, and take it without hashing.
	lastBucket *bucket
	// timed counts those with a deadline of their own (a context without
	// one); none ends before nextDeadline, the earliest when it was set.
	timed        int
	nextDeadline int64
	// pending counts the asynchronous requests in slots; busy wakes the
	// sweeper, which waits for it while there are none (buffered 1).
	pending int
	busy    chan struct{}
}

// slot is a place in inbox.slots: the request registered there and its
// id, or nothing (id 0).
type slot struct {
	c  *call
	id uint64
}

// register gives c the next id and a slot; b.mu is held.
func (b *inbox) register(c *call) {
	b.next++
	var i uint32
	if n := len(b.free); n > 0 {
		i = b.free[n-1]
		b.free = b.free[:n-1]
	} else {
		i = uint32(len(b.slots))
		b.slots = append(b.slots, slot{})
	}
	b.slots[i] = slot{c: c, id: b.next}
	c.slot, c.id = i, b.next
	b.inflight++
}

// registered returns the request registered in slot i as id, nil if it is
// not there (any more); b.mu is held.
func (b *inbox) registered(i uint32, id uint64) *call {
	if int(i) < len(b.slots) && b.slots[i].id == id {
		return b.slots[i].c
	}
	return nil
}

// unregister empties the slot of c, a registered request; b.mu is held.
func (b *inbox) unregister(c *call) {
	b.slots[c.slot] = slot{}
	b.free = append(b.free, c.slot)
	b.inflight--
}

// appendReply appends the reply subject of the request registered in slot
// i as id to dst.
func (b *inbox) appendReply(dst []byte, i uint32, id uint64) []byte {
	dst = append(dst, b.prefix...)
	dst = strconv.AppendUint(dst, uint64(i), 36)
	dst = append(dst, '-')
	return strconv.AppendUint(dst, id, 36)
}

// parseReply returns the slot and id that reply subject subj names.
func (b *inbox) parseReply(subj string) (i uint32, id uint64, ok bool) {
	if len(subj) <= len(b.prefix) {
		return 0, 0, false
	}
	tok := subj[len(b.prefix):]
	dash := strings.IndexByte(tok, '-')
	if dash < 0 {
		return 0, 0, false
	}
	n, err := strconv.ParseUint(tok[:dash], 36, 32)
	if err != nil {
		return 0, 0, false
	}
	id, err = strconv.ParseUint(tok[dash+1:], 36, 64)
	if err != nil || id == 0 {
		return 0, 0, false
	}
	return uint32(n), id, true
}

// bucketKey is what asynchronous requests that end together share.
type bucketKey struct {
	ctx  context.Context
	lost <-chan struct{}
}

// bucket counts the asynchronous requests of a bucketKey in slots.
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
	b := &inbox{nc: nc, prefix: nc.NewInbox() + ".", watch: watch,
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
	i, id, ok := b.parseReply(m.Subject)
	if !ok {
		return
	}
	b.mu.Lock()
	c := b.registered(i, id)
	if c != nil && c.h != nil {
		b.removeAsync(c)
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
	slot  uint32 // in b.slots
	id    uint64
	reply string // of a request made with open
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
	b.register(c)
	c.b, c.lost = b, e.ctx.Done()
	b.mu.Unlock()
	var buf [64]byte
	c.reply = string(b.appendReply(buf[:0], c.slot, c.id))
	return c, nil
}

// close unregisters the request; later replies are dropped.
func (c *call) close() {
	b := c.b
	b.mu.Lock()
	b.unregister(c)
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
	b.register(c)
	i, id := c.slot, c.id
	c.b, c.lost = b, e.ctx.Done()
	k := bucketKey{c.ctx, c.lost}
	bk := b.lastBucket
	if bk == nil || bk.key != k {
		if bk = b.buckets[k]; bk == nil {
			bk = &bucket{key: k}
			b.buckets[k] = bk
		}
		b.lastBucket = bk
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
	// The publisher builds the reply subject.
	b.queue = append(b.queue, queued{m: m, slot: i, id: id, c: c})
	first := len(b.queue) == 1
	b.mu.Unlock()
	// c is not ours any more: whoever takes it out of slots may have
	// recycled it already.
	if first {
		select {
		case b.kick <- struct{}{}:
		default:
		}
	}
	return nil
}

// queued is the message of an asynchronous request, registered in slot
// as id, on its way to the publisher, which releases it. c may have been
// recycled: it is only used once take says it is still that request.
type queued struct {
	m    *outMsg
	slot uint32
	id   uint64
	c    *call
}

// publisher publishes what requestAsync queues, until shutdown. A message
// it cannot send fails its request, unless someone took it already.
func (b *inbox) publisher() {
	defer close(b.published)
	var batch []queued
	// reply holds the reply subject of the message being published: nats.go
	// copies it into its buffer in PublishMsg and keeps no reference, so one
	// buffer serves every message, and no string is allocated per message.
	reply := make([]byte, 0, len(b.prefix)+2*13+1)
	for {
		select {
		case <-b.done:
			b.mu.Lock()
			batch, b.queue = b.queue, nil
			b.mu.Unlock()
			for _, q := range batch {
				q.m.release()
			}
			return
		case <-b.kick:
		}
		// Let the goroutines that are ready run first: under load, they
		// queue more requests, which then go out together, in fewer
		// writes of the connection's flusher.
		runtime.Gosched()
		for {
			// Requests taken while queued (their ctx ended, their
			// connection dropped) are not sent: their outcome is known.
			b.mu.Lock()
			batch, b.queue = b.queue, batch[:0]
			for i, q := range batch {
				if b.registered(q.slot, q.id) == nil {
					batch[i].c = nil
				}
			}
			b.mu.Unlock()
			if len(batch) == 0 {
				break
			}
			for i, q := range batch {
				if q.c != nil {
					reply = b.appendReply(reply[:0], q.slot, q.id)
					q.m.Reply = unsafe.String(unsafe.SliceData(reply), len(reply))
					err := b.nc.PublishMsg(&q.m.Msg)
					q.m.Reply = ""
					if err != nil && b.take(q.slot, q.id) {
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

// removeAsync unregisters the asynchronous request c; b.mu is held.
func (b *inbox) removeAsync(c *call) {
	b.unregister(c)
	c.bucket.n--
	b.pending--
	if c.deadline != 0 {
		b.timed--
	}
}

// take unregisters the asynchronous request registered in slot i as id,
// and reports whether it was still there: the caller then owns it and hands
// it its outcome.
func (b *inbox) take(i uint32, id uint64) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	c := b.registered(i, id)
	if c == nil {
		return false
	}
	b.removeAsync(c)
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
			b.lastBucket = nil
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

// sweep takes the asynchronous requests that are over at now out of slots
// and returns them, each with its error, appended to failed and errs.
func (b *inbox) sweep(now int64, failed []*call, errs []error) ([]*call, []error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	over := b.timed > 0 && now >= b.nextDeadline
	for k, bk := range b.buckets {
		if bk.n == 0 {
			delete(b.buckets, k)
			if bk == b.lastBucket {
				b.lastBucket = nil
			}
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
	for _, s := range b.slots {
		c := s.c
		if c == nil || c.h == nil {
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
			b.removeAsync(c)
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
	for _, s := range b.slots {
		if c := s.c; c != nil && c.h != nil {
			b.removeAsync(c)
			pending = append(pending, c)
		}
	}
	clear(b.buckets)
	b.lastBucket = nil
	b.mu.Unlock()
	close(b.done)
	_ = b.sub.Unsubscribe()
	<-b.swept
	<-b.published
	for _, c := range pending {
		c.h.handle(nil, errClosed)
	}
}
