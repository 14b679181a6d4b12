package natslog

import (
	"context"
	"fmt"
	"strconv"
	"sync"

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
type inbox struct {
	nc     *nats.Conn
	prefix string // the reply subject prefix, ending in '.'
	sub    *nats.Subscription
	// watch fails requests whose connection drops (see connWatch).
	watch *connWatch

	// done is closed by shutdown; waiting requests then end with errClosed.
	done chan struct{}

	// mu guards calls, next and closed, and is held while a reply is put
	// into a call's channel, so that close can empty the channel for reuse
	// without a late reply slipping in.
	mu     sync.Mutex
	calls  map[uint64]*call
	next   uint64
	closed bool
}

// callPool recycles the calls of single-reply requests, one per append, with
// their channels.
var callPool = sync.Pool{New: func() any { return &call{ch: make(chan *nats.Msg, 1)} }}

func newInbox(nc *nats.Conn, watch *connWatch) (*inbox, error) {
	b := &inbox{nc: nc, prefix: nc.NewInbox() + ".", watch: watch, calls: make(map[uint64]*call), done: make(chan struct{})}
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
	if c := b.calls[id]; c != nil {
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
			return nil, err
		}
	}
	last.Reply = c.reply
	if err := b.nc.PublishMsg(last); err != nil {
		return nil, err
	}
	return c.next(ctx)
}

// shutdown unsubscribes and ends the requests still waiting with errClosed.
func (b *inbox) shutdown() {
	b.mu.Lock()
	if b.closed {
		b.mu.Unlock()
		return
	}
	b.closed = true
	b.mu.Unlock()
	close(b.done)
	_ = b.sub.Unsubscribe()
}
