package postgreslog

import (
	"context"
	"log/slog"
	"strings"
	"sync"
	"time"
)

// hub wakes the subscriptions of a Log when events of their type may have
// committed: after the Log's own batches, and on notifications from other
// processes.
type hub struct {
	mu    sync.Mutex               // guards waits, any and closed
	waits map[string]chan struct{} // per entity type; closed by the next wake of the type
	// any is closed by the next wake of whatever types, for readers of
	// several types (ReadAll); nil while none waits.
	any    chan struct{}
	closed bool
}

func newHub() *hub { return &hub{waits: make(map[string]chan struct{})} }

// closedChan is returned to waiters of a closed hub.
var closedChan = func() chan struct{} {
	c := make(chan struct{})
	close(c)
	return c
}()

// wait returns a channel that the next wake of typ closes.
func (h *hub) wait(typ string) <-chan struct{} {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.closed {
		return closedChan
	}
	c := h.waits[typ]
	if c == nil {
		c = make(chan struct{})
		h.waits[typ] = c
	}
	return c
}

// waitAny returns a channel that the next wake of any type closes.
func (h *hub) waitAny() <-chan struct{} {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.closed {
		return closedChan
	}
	if h.any == nil {
		h.any = make(chan struct{})
	}
	return h.any
}

// wake wakes the waiters of types, and those of any type; nil wakes all.
func (h *hub) wake(types []string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.any != nil {
		close(h.any)
		h.any = nil
	}
	if types == nil {
		for typ, c := range h.waits {
			close(c)
			delete(h.waits, typ)
		}
		return
	}
	for _, typ := range types {
		if c := h.waits[typ]; c != nil {
			close(c)
			delete(h.waits, typ)
		}
	}
}

// close wakes every waiter, now and later.
func (h *hub) close() {
	h.mu.Lock()
	h.closed = true
	h.mu.Unlock()
	h.wake(nil)
}

// parsePayload returns the entity types a notification names; nil (all) for
// an empty payload.
func parsePayload(p string) []string {
	if p == "" {
		return nil
	}
	return strings.Split(p, "\n")
}

// Backoff of the listener's reconnection attempts.
const (
	listenBackoffMin = 100 * time.Millisecond
	listenBackoffMax = 5 * time.Second
)

// startListener starts the listener goroutine unless it runs or the Log is
// closed. It starts with the first subscription, so a Log that nobody
// subscribes to holds no extra connection.
func (l *Log) startListener() {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.listening || l.closed.Load() {
		return
	}
	l.listening = true
	l.wg.Add(1)
	go l.listen(l.bgCtx)
}

// listen keeps a connection listening on the Log's channel until ctx ends,
// reconnecting with backoff when it fails. Subscriptions poll meanwhile.
func (l *Log) listen(ctx context.Context) {
	defer l.wg.Done()
	backoff := listenBackoffMin
	failed := false // listening has stopped before: say when it is back
	for {
		connected, err := l.listenOnce(ctx, failed)
		if ctx.Err() != nil {
			return
		}
		if connected {
			backoff = listenBackoffMin
		}
		// Warn when listening stops; the attempts that fail after it are
		// Debug, so an outage is one Warn and one Info, not a line every
		// few seconds.
		level := slog.LevelWarn
		if failed && !connected {
			level = slog.LevelDebug
		}
		failed = true
		l.cfg.logger.Log(ctx, level, "postgreslog: listener connection failed; subscriptions poll until it is back",
			slog.String("channel", l.n.channel), slog.Duration("retry_in", backoff), slog.Any("error", err))
		t := time.NewTimer(backoff)
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
		backoff = min(2*backoff, listenBackoffMax)
	}
}

// listenOnce takes a connection out of the pool, listens on it and wakes
// subscriptions on every notification until the connection fails or ctx
// ends. connected reports whether LISTEN succeeded; recovered says that
// the attempt before failed, which LISTEN succeeding ends.
func (l *Log) listenOnce(ctx context.Context, recovered bool) (connected bool, err error) {
	pc, err := l.pool.Acquire(ctx)
	if err != nil {
		return false, translate(err)
	}
	// The connection stays out of the pool for as long as it listens.
	conn := pc.Hijack()
	defer func() {
		l.listenerPID.Store(0)
		closeCtx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = conn.Close(closeCtx)
	}()
	if _, err := conn.Exec(ctx, "LISTEN "+l.n.listen); err != nil {
		return false, err
	}
	l.listenerPID.Store(conn.PgConn().PID())
	if recovered {
		l.cfg.logger.Info("postgreslog: listener connection back; subscriptions are woken by notifications again", slog.String("channel", l.n.channel))
	} else {
		l.cfg.logger.Debug("postgreslog: listening", slog.String("channel", l.n.channel))
	}
	// Notifications sent while nobody listened are lost: wake everyone to
	// read again.
	l.hub.wake(nil)
	for {
		n, err := conn.WaitForNotification(ctx)
		if err != nil {
			return true, err
		}
		l.hub.wake(parsePayload(n.Payload))
	}
}
