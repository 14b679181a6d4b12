package main

import (
	"errors"
	"net"
	"sync"
	"time"
)

// delayProxy is a TCP proxy on loopback that adds a fixed latency to each
// direction of every connection, as if the server were on another host:
// each chunk read from one side is written to the other delay after it was
// read. Delay is latency, not a pause per chunk: the reader keeps reading
// while earlier chunks wait, each chunk carries its own due time, and one
// writer per direction writes them in order, so pipelined traffic is not
// slowed down by more than delay. Memory is bounded: a direction holds at
// most proxyQueue chunks of proxyChunk bytes (the reader then waits, which
// is TCP's own back pressure), and the proxy at most proxyMaxConns
// connections.
type delayProxy struct {
	upstream string
	delay    time.Duration

	wg sync.WaitGroup // every connection's goroutines

	mu     sync.Mutex // guards ln, conns and closed
	ln     net.Listener
	conns  map[net.Conn]struct{}
	closed bool
}

const (
	proxyChunk    = 32 << 10
	proxyQueue    = 64
	proxyMaxConns = 256
)

var proxyBufs = sync.Pool{New: func() any { b := make([]byte, proxyChunk); return &b }}

func newDelayProxy(upstream string, delay time.Duration) *delayProxy {
	return &delayProxy{upstream: upstream, delay: delay, conns: map[net.Conn]struct{}{}}
}

// serve accepts connections on ln until close; it returns net.ErrClosed
// after close.
func (p *delayProxy) serve(ln net.Listener) error {
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		ln.Close()
		return net.ErrClosed
	}
	p.ln = ln
	p.mu.Unlock()
	for {
		down, err := ln.Accept()
		if err != nil {
			p.mu.Lock()
			closed := p.closed
			p.mu.Unlock()
			if closed {
				return net.ErrClosed
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				continue
			}
			return err
		}
		if !p.track(down) {
			down.Close()
			continue
		}
		p.wg.Go(func() { p.handle(down) })
	}
}

// close stops accepting, closes every connection and waits for their
// goroutines.
func (p *delayProxy) close() {
	p.mu.Lock()
	p.closed = true
	if p.ln != nil {
		p.ln.Close()
	}
	for c := range p.conns {
		c.Close()
	}
	p.mu.Unlock()
	p.wg.Wait()
}

// track registers c; false if the proxy is closed or full.
func (p *delayProxy) track(c net.Conn) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed || len(p.conns) >= proxyMaxConns {
		return false
	}
	p.conns[c] = struct{}{}
	return true
}

func (p *delayProxy) untrack(c net.Conn) {
	p.mu.Lock()
	delete(p.conns, c)
	p.mu.Unlock()
	c.Close()
}

// handle connects down (the client) to the upstream server and copies both
// ways until both sides are done.
func (p *delayProxy) handle(down net.Conn) {
	defer p.untrack(down)
	up, err := net.DialTimeout("tcp", p.upstream, 10*time.Second)
	if err != nil {
		return
	}
	if !p.track(up) {
		up.Close()
		return
	}
	defer p.untrack(up)
	var once sync.Once
	abort := func() { once.Do(func() { down.Close(); up.Close() }) }
	var wg sync.WaitGroup
	wg.Go(func() { p.pipe(up, down, abort) })
	wg.Go(func() { p.pipe(down, up, abort) })
	wg.Wait()
}

// chunk is bytes read at some time, due to be written delay later.
type chunk struct {
	buf *[]byte
	n   int
	due time.Time
}

// pipe copies src to dst, each chunk delay after it was read. At EOF it
// half-closes dst, so the other direction keeps working; on a write error
// it aborts the whole connection.
func (p *delayProxy) pipe(dst, src net.Conn, abort func()) {
	q := make(chan chunk, proxyQueue)
	var wg sync.WaitGroup
	wg.Go(func() {
		failed := false
		for c := range q {
			if !failed {
				if d := time.Until(c.due); d > 0 {
					time.Sleep(d)
				}
				if _, err := dst.Write((*c.buf)[:c.n]); err != nil {
					failed = true
					abort()
				}
			}
			proxyBufs.Put(c.buf)
		}
		if !failed {
			if tc, ok := dst.(*net.TCPConn); ok {
				_ = tc.CloseWrite()
			}
		}
	})
	for {
		b := proxyBufs.Get().(*[]byte)
		n, err := src.Read(*b)
		if n > 0 {
			q <- chunk{buf: b, n: n, due: time.Now().Add(p.delay)}
		} else {
			proxyBufs.Put(b)
		}
		if err != nil {
			break
		}
	}
	close(q)
	wg.Wait()
}
