package natslog

import (
	"context"
	"errors"
	"log/slog"
	"sync"
	"sync/atomic"

	"github.com/nats-io/nats.go"
)

// A request sent on a connection that then drops may never be answered:
// the server may not have received it, or its reply was lost with the
// connection, and nats.go keeps waiting until the request's ctx ends. For an
// entity's append that is its store timeout, during which every command of
// the entity waits. So the Log and the SnapshotStore follow the connection's
// status (nats.Conn.StatusChanged, which leaves the application's own
// handlers alone) and fail what is in flight the moment it drops, and what
// is asked while it is down at once, with an error matching
// [ErrUnavailable].

// connWatch follows the status of a connection. Each period the connection
// is up is an epoch, whose context is canceled, with errLost as its cause,
// when the connection drops; calls made in an epoch end with
// it. While the connection is down the current epoch is down: calls fail
// without sending anything.
type connWatch struct {
	nc      *nats.Conn
	events  chan nats.Status
	current atomic.Pointer[epoch] // stored under mu
	// maxPayload is the server's max payload as of the last connection,
	// 0 before the first: nats.Conn.MaxPayload takes the connection's
	// lock, which appends should not wait for.
	maxPayload atomic.Int64
	stop       chan struct{}
	done       chan struct{}

	// owner names the Log or SnapshotStore in log lines; lost counts the
	// requests that the connection dropping failed.
	owner  string
	logger *slog.Logger
	lost   *lostCounter

	mu sync.Mutex // serializes update; guards reconnects and wasUp
	// reconnects is the connection's reconnect count when the current
	// epoch began: a count that moved means the connection dropped and came
	// back since, even if the events that said so were missed.
	reconnects uint64
	// wasUp: an epoch was up before, so a new one means the connection is
	// back (rather than the first one, which is not worth a log line).
	wasUp bool
}

// epoch is one period of the connection's status.
type epoch struct {
	ctx    context.Context // canceled when the connection drops; nil while down
	cancel context.CancelCauseFunc
	down   error // why calls fail now; nil while up
}

var (
	// errLost ends the calls in flight when the connection drops.
	errLost = unavailable("the connection to the server dropped with the call in flight", nil)
	// errDown fails calls made while the connection is down; nothing was
	// sent for them.
	errDown = unavailable("not connected to the server (reconnecting); nothing was sent", nil)
	// errConnClosed fails calls made after the connection was closed.
	errConnClosed = unavailable("the connection is closed", nats.ErrConnectionClosed)
)

// watchConn starts following nc's status for owner, logging its changes
// to logger and counting the requests they fail in lost (which may be
// nil); close ends it.
func watchConn(nc *nats.Conn, owner string, logger *slog.Logger, lost *lostCounter) *connWatch {
	w := &connWatch{
		nc:     nc,
		events: nc.StatusChanged(nats.CONNECTED, nats.DISCONNECTED, nats.RECONNECTING, nats.CLOSED),
		stop:   make(chan struct{}),
		done:   make(chan struct{}),
		owner:  owner,
		logger: logger,
		lost:   lost,
	}
	w.current.Store(&epoch{down: errDown}) // until update says otherwise
	w.update()
	go w.watch()
	return w
}

func (w *connWatch) watch() {
	defer close(w.done)
	for {
		select {
		case <-w.stop:
			return
		case _, ok := <-w.events:
			if !ok {
				return
			}
			w.update()
		}
	}
}

// update looks at the connection as it is now, whichever event woke it: an
// event may have been dropped (the channel holds 10), and the status may
// have moved on since the event.
//
// It logs before it acts, so that a caller who sees a call fail, or
// succeed again, finds the line that says why written: the connection
// dropping is Warn, coming back Info, closing for good Error. The calls
// themselves fail with ErrUnavailable, but whoever runs the service may
// not see them.
func (w *connWatch) update() {
	w.mu.Lock()
	defer w.mu.Unlock()
	status := w.nc.Status()
	reconnects := w.nc.Stats().Reconnects
	cur := w.current.Load()
	if status == nats.CONNECTED && cur.down == nil && reconnects == w.reconnects {
		return // still the same connection
	}
	if cur.down == nil {
		w.logger.Warn("natslog: the connection to the server dropped; calls in flight fail with ErrUnavailable (an append's outcome is unknown) and new calls fail at once until it is back",
			slog.String("component", w.owner), slog.String("status", status.String()), slog.Any("error", w.nc.LastError()))
		cur.cancel(errLost)
	}
	switch status {
	case nats.CONNECTED:
		if w.wasUp {
			w.logger.Info("natslog: the connection to the server is back",
				slog.String("component", w.owner), slog.String("server", w.nc.ConnectedUrlRedacted()), slog.Uint64("reconnects", reconnects))
		}
		ctx, cancel := context.WithCancelCause(context.Background())
		w.maxPayload.Store(w.nc.MaxPayload())
		w.reconnects, w.wasUp = reconnects, true
		w.current.Store(&epoch{ctx: ctx, cancel: cancel})
	case nats.CLOSED:
		if cur.down != errConnClosed {
			w.logger.Error("natslog: the connection to the server is closed; every call fails with ErrUnavailable",
				slog.String("component", w.owner), slog.Any("error", w.nc.LastError()))
		}
		w.current.Store(&epoch{down: errConnClosed})
	default:
		if cur.down == nil {
			w.current.Store(&epoch{down: errDown})
		}
	}
}

// epoch returns the current epoch, or the error of a call made now. While
// the epoch is down it looks at the connection itself: the client may have
// reconnected before the watching goroutine heard of it.
func (w *connWatch) epoch() (*epoch, error) {
	e := w.current.Load()
	if e.down != nil {
		if w.nc.Status() != nats.CONNECTED {
			return nil, e.down
		}
		w.update()
		if e = w.current.Load(); e.down != nil {
			return nil, e.down
		}
	}
	return e, nil
}

// bind returns ctx, also ended when the connection drops, for calls that go
// through nats.go's own requests (JetStream API, KV). Call release when the
// call returns, and pass its error to [connWatch.lostCause].
func (w *connWatch) bind(ctx context.Context) (context.Context, func(), error) {
	e, err := w.epoch()
	if err != nil {
		return nil, nil, err
	}
	bound, cancel := context.WithCancelCause(ctx)
	stop := context.AfterFunc(e.ctx, func() { cancel(errLost) })
	return bound, func() { stop(); cancel(context.Canceled) }, nil
}

// do runs f under ctx bound to the connection (see bind), and returns its
// error as [connWatch.lostCause] translates it.
func (w *connWatch) do(ctx context.Context, f func(ctx context.Context) error) error {
	bound, release, err := w.bind(ctx)
	if err != nil {
		return err
	}
	defer release()
	return w.lostCause(bound, f(bound))
}

// lostCause returns err, or the reason the connection gave if bound ended
// because it dropped: nats.go then reports only that the ctx ended. It
// counts the requests the drop failed.
func (w *connWatch) lostCause(bound context.Context, err error) error {
	if err == nil || errors.Is(err, ErrUnavailable) {
		return err
	}
	if cause := context.Cause(bound); errors.Is(cause, ErrUnavailable) {
		if errors.Is(cause, errLost) {
			w.lost.add()
		}
		return cause
	}
	return err
}

// close stops following the connection. Calls still in flight are the
// owner's to end.
func (w *connWatch) close() {
	close(w.stop)
	<-w.done
	w.nc.RemoveStatusListener(w.events)
}
