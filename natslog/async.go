package natslog

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/eventsourced-go/eventsourced/eventlog"
)

// Appending without waiting: the common append is a publish whose ack
// settles it on the inbox's goroutine; the others run Append's logic on a
// goroutine of their own.

// AppendAsync implements [eventlog.AsyncAppender]: [Log.Append] that calls
// done with its results instead of returning them.
//
// The common append, one event to an entity whose last stream sequence the
// Log remembers (or expecting 0 with nothing remembered), is one publish,
// which the Log's publisher goroutine sends: nothing waits for its ack,
// which calls done on the goroutine that receives the Log's replies. There
// is no goroutine and no timer per append: one sweeper per Log fails the
// appends in flight whose ctx ended (or, without a deadline, whose
// [WithTimeout] passed) within a few tens of milliseconds, with ctx's
// error, which leaves the outcome unknown, and those of a connection that
// drops the moment the Log hears of it, with an error matching
// [ErrUnavailable]; the Log then forgets what it remembered of the entity,
// as after Append's. Close calls done with [eventlog.ErrClosed] for every
// append still in flight.
//
// The others (several events, an entity the Log must look up first, a
// refusal that needs the entity's last message read to tell a conflict
// from a stale remembered sequence, or spans or metrics on) run Append's
// logic on a goroutine of their own, which calls done; Close waits for
// them. Two appends of one entity issued without waiting for the first's
// done are safe: the second finds nothing matching remembered, looks the
// entity up, and lands after the first or fails with a conflict.
//
// done gets Append's results, errors included; it is called once, from any
// goroutine, possibly before AppendAsync returns.
func (l *Log) AppendAsync(ctx context.Context, typ, id string, expected uint64, events []eventlog.Event, done func(pos uint64, err error)) {
	if err := eventlog.Validate(typ, id, events); err != nil {
		done(0, err)
		return
	}
	if l.closed.Load() {
		done(0, errClosed)
		return
	}
	if err := ctx.Err(); err != nil {
		done(0, err)
		return
	}
	subj, e, t, err := l.subjectOf(typ, id)
	if err != nil {
		done(0, err)
		return
	}
	if len(events) > 1 || l.tel.tracing.On() || l.tel.metering.On() {
		l.appendBehind(ctx, typ, id, subj, expected, events, nil, done)
		return
	}
	var sseq uint64
	if e != nil && t.seq == expected {
		sseq = t.sseq
	} else if expected != 0 || e != nil {
		l.appendBehind(ctx, typ, id, subj, expected, events, nil, done)
		return
	}
	m, err := l.eventMsg(typ, id, subj, expected, events, 0)
	if err != nil {
		done(0, err)
		return
	}
	m.expect(sseq)
	a := asyncPool.Get().(*asyncAppend)
	a.l, a.typ, a.id, a.subj, a.entry, a.expected, a.events, a.done = l, typ, id, subj, e, expected, events, done
	a.h, a.ctx = a, ctx
	if _, ok := ctx.Deadline(); !ok {
		a.deadline = time.Now().Add(l.timeout).UnixNano()
	}
	if err := l.inbox.requestAsync(&a.call, m); err != nil {
		m.release()
		l.forgetUnsettled(subj, err)
		a.finish(0, l.appendError(typ, id, expected, err))
	}
}

// asyncAppend is an append of AppendAsync in flight: one event published
// with the stream sequence the cache remembered. The inbox hands it the
// server's ack, or why there is none.
type asyncAppend struct {
	call // with the inbox; h is the asyncAppend itself

	l             *Log
	typ, id, subj string
	entry         *centry // the cache's entry of subj, if it had one
	expected      uint64
	events        []eventlog.Event
	done          func(pos uint64, err error)
}

var asyncPool = sync.Pool{New: func() any { return new(asyncAppend) }}

// handle implements replyHandler: it settles the append as Append would
// and calls done, or hands a refusal or a publish nothing stored to
// Append's logic on a goroutine.
func (a *asyncAppend) handle(reply *nats.Msg, err error) {
	l := a.l
	if err == nil {
		var pos uint64
		var retry bool
		pos, retry, err = publishAck(reply, 1)
		switch {
		case err == nil:
			if t := (tail{seq: a.expected + 1, sseq: pos}); a.entry != nil {
				l.cache.settle(a.entry, t)
			} else {
				l.cache.set(a.subj, t)
			}
			a.finish(pos, nil)
			return
		case retry:
			// Nothing was stored: Append retries it.
			l.appendBehind(a.ctx, a.typ, a.id, a.subj, a.expected, a.events, nil, a.done)
			a.free()
			return
		case isWrongLast(err):
			l.appendBehind(a.ctx, a.typ, a.id, a.subj, a.expected, a.events, err, a.done)
			a.free()
			return
		}
	}
	err = l.publishError(err)
	l.forgetUnsettled(a.subj, err)
	a.finish(0, l.appendError(a.typ, a.id, a.expected, err))
}

// finish recycles a and calls its done with pos and err.
func (a *asyncAppend) finish(pos uint64, err error) {
	done := a.done
	a.free()
	done(pos, err)
}

// free returns a to asyncPool.
func (a *asyncAppend) free() {
	*a = asyncAppend{}
	asyncPool.Put(a)
}

// appendBehind runs Append's logic for AppendAsync on a goroutine of its
// own, which calls done; refused, if not nil, is the refusal of the
// publish AppendAsync made (see appendTo). Close ends its ctx and waits
// for it.
func (l *Log) appendBehind(ctx context.Context, typ, id, subj string, expected uint64, events []eventlog.Event, refused error, done func(uint64, error)) {
	l.behindMu.Lock()
	if l.closed.Load() {
		l.behindMu.Unlock()
		done(0, errClosed)
		return
	}
	l.behind.Add(1)
	l.behindMu.Unlock()
	go func() {
		defer l.behind.Done()
		ctx, cancel := context.WithCancelCause(ctx)
		stop := context.AfterFunc(l.closeCtx, func() { cancel(errClosed) })
		var pos uint64
		var err error
		if refused != nil {
			pos, err = l.appendTo(ctx, typ, id, subj, expected, events, refused)
		} else {
			pos, err = l.Append(ctx, typ, id, expected, events...)
		}
		stop()
		cancel(nil)
		if err != nil && l.closeCtx.Err() != nil && !errors.Is(err, errClosed) {
			err = fmt.Errorf("%w: %w", errClosed, err)
		}
		done(pos, err)
	}()
}
