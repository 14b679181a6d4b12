package faultproxy

import (
	"net"
	"sync"
)

// Proxy forwards connections accepted on a loopback port to a target
// address.
type Proxy struct {
	ln     net.Listener
	target string
	wg     sync.WaitGroup // the accept loop and the copiers

	mu      sync.Mutex // guards the fields below
	conns   map[*pair]struct{}
	flowing chan struct{} // closed while bytes flow; open while stalled
	closed  bool
}

// New starts a proxy on 127.0.0.1 (a free port) to target.
func New(target string) (*Proxy, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	flowing := make(chan struct{})
	close(flowing)
	p := &Proxy{ln: ln, target: target, conns: make(map[*pair]struct{}), flowing: flowing}
	p.wg.Add(1)
	go p.accept()
	return p, nil
}

// Addr returns the proxy's host:port.
func (p *Proxy) Addr() string { return p.ln.Addr().String() }

// Port returns the proxy's port.
func (p *Proxy) Port() int { return p.ln.Addr().(*net.TCPAddr).Port }

// Stall stops forwarding in both directions: connections stay open,
// new ones are accepted, and whatever is sent waits in the proxy, as with a
// server that has stopped answering. Resume lets it through.
func (p *Proxy) Stall() {
	p.mu.Lock()
	defer p.mu.Unlock()
	select {
	case <-p.flowing:
		p.flowing = make(chan struct{})
	default: // stalled already
	}
}

// Resume forwards again, starting with what waited.
func (p *Proxy) Resume() {
	p.mu.Lock()
	defer p.mu.Unlock()
	select {
	case <-p.flowing:
	default:
		close(p.flowing)
	}
}

// Drop closes every connection open now, on both sides; new connections
// are accepted and forwarded as before.
func (p *Proxy) Drop() {
	p.mu.Lock()
	pairs := make([]*pair, 0, len(p.conns))
	for c := range p.conns {
		pairs = append(pairs, c)
	}
	p.mu.Unlock()
	for _, c := range pairs {
		c.drop()
	}
}

// Close stops accepting, closes every connection and waits for the
// proxy's goroutines.
func (p *Proxy) Close() error {
	p.mu.Lock()
	p.closed = true
	p.mu.Unlock()
	err := p.ln.Close()
	p.Drop()
	p.wg.Wait()
	return err
}

func (p *Proxy) accept() {
	defer p.wg.Done()
	for {
		client, err := p.ln.Accept()
		if err != nil {
			return
		}
		server, err := net.Dial("tcp", p.target)
		if err != nil {
			_ = client.Close()
			continue
		}
		c := &pair{client: client, server: server, dropped: make(chan struct{})}
		if !p.track(c) {
			c.drop()
			return
		}
		p.wg.Add(2)
		go p.pipe(c, server, client)
		go p.pipe(c, client, server)
	}
}

// pair is one proxied connection: the client's and the server's sides.
type pair struct {
	client, server net.Conn
	once           sync.Once
	dropped        chan struct{} // closed by drop
}

// drop closes both sides; the copiers see it and end.
func (c *pair) drop() {
	c.once.Do(func() {
		close(c.dropped)
		_ = c.client.Close()
		_ = c.server.Close()
	})
}

// track registers a pair; false if the proxy is closing.
func (p *Proxy) track(c *pair) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return false
	}
	p.conns[c] = struct{}{}
	return true
}

// pipe copies from src to dst, waiting while the proxy is stalled, until
// either side fails or the pair is dropped; then it drops the pair.
func (p *Proxy) pipe(c *pair, dst, src net.Conn) {
	defer p.wg.Done()
	defer func() {
		c.drop()
		p.mu.Lock()
		delete(p.conns, c)
		p.mu.Unlock()
	}()
	buf := make([]byte, 32<<10)
	for {
		n, err := src.Read(buf)
		if n > 0 {
			p.mu.Lock()
			flowing := p.flowing
			p.mu.Unlock()
			select {
			case <-flowing:
			case <-c.dropped:
				return
			}
			if _, err := dst.Write(buf[:n]); err != nil {
				return
			}
		}
		if err != nil {
			return
		}
	}
}
