package testkit

import (
	"context"
	"fmt"
	"iter"

	"github.com/eventsourced-go/eventsourced/eventlog"
)

// ErrUnsupported is matched by the error of an optional operation the
// wrapped log or store does not have.
var ErrUnsupported = fmt.Errorf("testkit: %w: operation not supported by the wrapped log or store", eventlog.ErrInvalid)

// Log wraps an [eventlog.Log] and fails, rejects or delays its calls as the
// rules of its [Injector] say; calls no rule acts on go to the wrapped log
// unchanged.
//
// Log has every optional capability of package eventlog
// ([eventlog.AsyncAppender], [eventlog.RoundAppender], [eventlog.Deleter],
// [eventlog.StreamDeleter], [eventlog.AllReader], [eventlog.IDLister],
// [eventlog.TypeLister], [eventlog.Closer]). AppendAsync calls the wrapped
// log's, or its Append when it has none; AppendRound is AppendAsync with a
// channel of its own per append; the other capabilities the wrapped log
// lacks fail with [ErrUnsupported]. [eventlog.Memory] has them all.
//
// A read (ReadEntity, ReadType, Subscribe, ReadAll, SubscribeAll,
// EntityIDs, EntityTypes) is decided when its iteration starts: a failed
// one yields the error as its only element.
type Log struct {
	*Injector
	inner eventlog.Log
}

var (
	_ eventlog.Log           = (*Log)(nil)
	_ eventlog.AsyncAppender = (*Log)(nil)
	_ eventlog.RoundAppender = (*Log)(nil)
	_ eventlog.Deleter       = (*Log)(nil)
	_ eventlog.StreamDeleter = (*Log)(nil)
	_ eventlog.AllReader     = (*Log)(nil)
	_ eventlog.IDLister      = (*Log)(nil)
	_ eventlog.TypeLister    = (*Log)(nil)
	_ eventlog.Closer        = (*Log)(nil)
)

// NewLog returns a Log around inner with no rule in force.
func NewLog(inner eventlog.Log) *Log {
	return &Log{Injector: newInjector(logOps), inner: inner}
}

// Unwrap returns the wrapped log.
func (l *Log) Unwrap() eventlog.Log { return l.inner }

// Append implements eventlog.Log.
func (l *Log) Append(ctx context.Context, typ, id string, expected uint64, events ...eventlog.Event) (uint64, error) {
	c := Call{Op: OpAppend, Type: typ, ID: id, Expected: expected, Events: events}
	f := l.decide(c)
	if err := f.before(ctx, c); err != nil {
		return 0, err
	}
	pos, err := l.inner.Append(ctx, typ, id, expected, events...)
	if err = f.after(c, err); err != nil {
		return 0, err
	}
	return pos, nil
}

// AppendAsync implements eventlog.AsyncAppender. A delayed append waits on
// a goroutine of its own, so AppendAsync never blocks for the delay.
func (l *Log) AppendAsync(ctx context.Context, typ, id string, expected uint64, events []eventlog.Event, done func(pos uint64, err error)) {
	c := Call{Op: OpAppend, Type: typ, ID: id, Expected: expected, Events: events}
	f := l.decide(c)
	run := func() {
		if err := f.before(ctx, c); err != nil {
			done(0, err)
			return
		}
		finish := func(pos uint64, err error) {
			if err = f.after(c, err); err != nil {
				pos = 0
			}
			done(pos, err)
		}
		if a, ok := l.inner.(eventlog.AsyncAppender); ok {
			a.AppendAsync(ctx, typ, id, expected, events, finish)
			return
		}
		finish(l.inner.Append(ctx, typ, id, expected, events...))
	}
	if f.delay > 0 {
		go run()
		return
	}
	run()
}

// AppendRound implements eventlog.RoundAppender: AppendAsync whose
// channel, one per append, closes once done has returned. It takes no part
// in the wrapped log's rounds, so a rule acts on it as on AppendAsync.
func (l *Log) AppendRound(ctx context.Context, typ, id string, expected uint64, events []eventlog.Event, done func(pos uint64, err error)) <-chan struct{} {
	ch := make(chan struct{})
	l.AppendAsync(ctx, typ, id, expected, events, func(pos uint64, err error) {
		done(pos, err)
		close(ch)
	})
	return ch
}

// LastSeq implements eventlog.Log.
func (l *Log) LastSeq(ctx context.Context, typ, id string) (uint64, error) {
	c := Call{Op: OpLastSeq, Type: typ, ID: id}
	if err := l.decide(c).before(ctx, c); err != nil {
		return 0, err
	}
	return l.inner.LastSeq(ctx, typ, id)
}

// ReadEntity implements eventlog.Log.
func (l *Log) ReadEntity(ctx context.Context, typ, id string, from uint64) iter.Seq2[eventlog.Record, error] {
	return l.read(ctx, Call{Op: OpReadEntity, Type: typ, ID: id, Seq: from}, func() iter.Seq2[eventlog.Record, error] {
		return l.inner.ReadEntity(ctx, typ, id, from)
	})
}

// ReadType implements eventlog.Log.
func (l *Log) ReadType(ctx context.Context, typ string, after uint64) iter.Seq2[eventlog.Record, error] {
	return l.read(ctx, Call{Op: OpReadType, Type: typ, After: after}, func() iter.Seq2[eventlog.Record, error] {
		return l.inner.ReadType(ctx, typ, after)
	})
}

// Subscribe implements eventlog.Log.
func (l *Log) Subscribe(ctx context.Context, typ string, after uint64) iter.Seq2[eventlog.Record, error] {
	return l.read(ctx, Call{Op: OpSubscribe, Type: typ, After: after}, func() iter.Seq2[eventlog.Record, error] {
		return l.inner.Subscribe(ctx, typ, after)
	})
}

// ReadAll implements eventlog.AllReader.
func (l *Log) ReadAll(ctx context.Context, after uint64, types ...string) iter.Seq2[eventlog.Record, error] {
	return l.read(ctx, Call{Op: OpReadAll, Types: types, After: after}, func() iter.Seq2[eventlog.Record, error] {
		a, ok := l.inner.(eventlog.AllReader)
		if !ok {
			return fail[eventlog.Record](unsupported(l.inner, "ReadAll"))
		}
		return a.ReadAll(ctx, after, types...)
	})
}

// SubscribeAll implements eventlog.AllReader.
func (l *Log) SubscribeAll(ctx context.Context, after uint64, types ...string) iter.Seq2[eventlog.Record, error] {
	return l.read(ctx, Call{Op: OpSubscribeAll, Types: types, After: after}, func() iter.Seq2[eventlog.Record, error] {
		a, ok := l.inner.(eventlog.AllReader)
		if !ok {
			return fail[eventlog.Record](unsupported(l.inner, "SubscribeAll"))
		}
		return a.SubscribeAll(ctx, after, types...)
	})
}

// EntityIDs implements eventlog.IDLister.
func (l *Log) EntityIDs(ctx context.Context, typ string) iter.Seq2[string, error] {
	return read(ctx, l.Injector, Call{Op: OpEntityIDs, Type: typ}, func() iter.Seq2[string, error] {
		a, ok := l.inner.(eventlog.IDLister)
		if !ok {
			return fail[string](unsupported(l.inner, "EntityIDs"))
		}
		return a.EntityIDs(ctx, typ)
	})
}

// EntityTypes implements eventlog.TypeLister.
func (l *Log) EntityTypes(ctx context.Context) iter.Seq2[string, error] {
	return read(ctx, l.Injector, Call{Op: OpEntityTypes}, func() iter.Seq2[string, error] {
		a, ok := l.inner.(eventlog.TypeLister)
		if !ok {
			return fail[string](unsupported(l.inner, "EntityTypes"))
		}
		return a.EntityTypes(ctx)
	})
}

// DeleteTo implements eventlog.Deleter.
func (l *Log) DeleteTo(ctx context.Context, typ, id string, seq uint64) error {
	c := Call{Op: OpDeleteTo, Type: typ, ID: id, Seq: seq}
	f := l.decide(c)
	if err := f.before(ctx, c); err != nil {
		return err
	}
	d, ok := l.inner.(eventlog.Deleter)
	if !ok {
		return unsupported(l.inner, "DeleteTo")
	}
	return f.after(c, d.DeleteTo(ctx, typ, id, seq))
}

// DeleteStream implements eventlog.StreamDeleter.
func (l *Log) DeleteStream(ctx context.Context, typ, id string, reuse bool) (uint64, error) {
	c := Call{Op: OpDeleteStream, Type: typ, ID: id}
	f := l.decide(c)
	if err := f.before(ctx, c); err != nil {
		return 0, err
	}
	d, ok := l.inner.(eventlog.StreamDeleter)
	if !ok {
		return 0, unsupported(l.inner, "DeleteStream")
	}
	seq, err := d.DeleteStream(ctx, typ, id, reuse)
	if err = f.after(c, err); err != nil {
		return 0, err
	}
	return seq, nil
}

// Close closes the wrapped log if it is an [eventlog.Closer]; no rule acts
// on it.
func (l *Log) Close() error {
	if c, ok := l.inner.(eventlog.Closer); ok {
		return c.Close()
	}
	return nil
}

func (l *Log) read(ctx context.Context, c Call, open func() iter.Seq2[eventlog.Record, error]) iter.Seq2[eventlog.Record, error] {
	return read(ctx, l.Injector, c, open)
}

// read is a read that in's rules decide when its iteration starts.
func read[T any](ctx context.Context, in *Injector, c Call, open func() iter.Seq2[T, error]) iter.Seq2[T, error] {
	return func(yield func(T, error) bool) {
		if err := in.decide(c).before(ctx, c); err != nil {
			var zero T
			yield(zero, err)
			return
		}
		for v, err := range open() {
			if !yield(v, err) {
				return
			}
		}
	}
}

// fail is an iteration that yields err alone.
func fail[T any](err error) iter.Seq2[T, error] {
	return func(yield func(T, error) bool) {
		var zero T
		yield(zero, err)
	}
}

func unsupported(inner any, method string) error {
	return fmt.Errorf("%w: %T has no %s", ErrUnsupported, inner, method)
}
