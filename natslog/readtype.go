package natslog

import (
	"context"
	"fmt"
	"iter"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/eventsourced-go/eventsourced/eventlog"
)

// startTypeRead checks what ReadType and Subscribe need before reading typ
// and returns its subject filter.
func (l *Log) startTypeRead(ctx context.Context, typ string) (string, error) {
	if err := eventlog.ValidateType(typ); err != nil {
		return "", err
	}
	switch {
	case l.closed.Load():
		return "", errClosed
	}
	if err := ctx.Err(); err != nil {
		return "", err
	}
	return l.subjects.typeFilter(typ)
}

// recordFunc builds the record of s, a message that is not a marker, for a
// read by Position; keep false skips it (a type the read does not want).
type recordFunc func(s *stored) (rec eventlog.Record, keep bool, err error)

// typeRecords returns the recordFunc of a read of type typ, whose subject
// filter is filter.
func (l *Log) typeRecords(typ, filter string) recordFunc {
	return func(s *stored) (eventlog.Record, bool, error) {
		rec, err := l.typeRecord(typ, filter, s)
		return rec, true, err
	}
}

// ReadType implements [eventlog.Log] with batched direct gets of the
// subjects <prefix>.<type>.*. It ends after as many messages as matched
// when it started.
//
// Stream sequences are assigned when the server stores a message, and a
// direct get never sees an atomic batch half stored, so no message can
// appear later below a Position already read.
func (l *Log) ReadType(ctx context.Context, typ string, after uint64) iter.Seq2[eventlog.Record, error] {
	return func(yield func(eventlog.Record, error) bool) {
		filter, err := l.startTypeRead(ctx, typ)
		if err != nil {
			yield(eventlog.Record{}, err)
			return
		}
		fail := func(err error) {
			yield(eventlog.Record{}, fmt.Errorf("natslog: read type %s after %d: %w", typ, after, err))
		}
		l.scan(ctx, filter, after, l.typeRecords(typ, filter), yield, fail)
	}
}

// scan is the loop of ReadType and ReadAll: it yields the records rec
// builds of the messages on filter with stream sequence above after, in
// stream order, skipping markers, and ends after as many messages as
// matched when it started. It reports errors other than ctx's through
// fail.
func (l *Log) scan(ctx context.Context, filter string, after uint64, rec recordFunc, yield func(eventlog.Record, error) bool, fail func(error)) {
	if after == ^uint64(0) {
		return
	}
	seq := after + 1
	var remaining uint64
	first := true
	for {
		p, err := l.fetch(ctx, seq, filter)
		if err != nil {
			fail(err)
			return
		}
		if len(p.msgs) == 0 {
			return
		}
		if first {
			remaining, first = p.total, false
		}
		for i := range p.msgs {
			s := &p.msgs[i]
			remaining--
			if !s.marker {
				r, keep, err := rec(s)
				if err != nil {
					fail(err)
					return
				}
				if err := ctx.Err(); err != nil {
					yield(eventlog.Record{}, err)
					return
				}
				if keep && !yield(r, nil) {
					return
				}
			}
			if remaining == 0 {
				return
			}
		}
		if p.pending == 0 {
			return
		}
		seq = p.msgs[len(p.msgs)-1].sseq + 1
	}
}

// typeRecord builds the record of s, a message on filter.
func (l *Log) typeRecord(typ, filter string, s *stored) (eventlog.Record, error) {
	id, err := l.subjects.id(filter, s.subject)
	if err != nil {
		return eventlog.Record{}, err
	}
	return s.record(typ, id)
}

// Subscribe implements [eventlog.Log] with an ordered consumer on the
// subjects <prefix>.<type>.*, starting after the Position given. The
// consumer recreates itself after a reconnect or a server restart, resuming
// after the last message it delivered. [Log.Close] ends it with
// [eventlog.ErrClosed].
func (l *Log) Subscribe(ctx context.Context, typ string, after uint64) iter.Seq2[eventlog.Record, error] {
	return func(yield func(eventlog.Record, error) bool) {
		filter, err := l.startTypeRead(ctx, typ)
		if err != nil {
			yield(eventlog.Record{}, err)
			return
		}
		fail := func(err error) {
			yield(eventlog.Record{}, fmt.Errorf("natslog: subscribe to type %s after %d: %w", typ, after, err))
		}
		l.follow(ctx, []string{filter}, after, l.typeRecords(typ, filter), yield, fail)
	}
}

// follow is the loop of Subscribe and SubscribeAll: it yields the records
// rec builds of the messages on filters with stream sequence above after,
// in stream order, skipping markers, from an ordered consumer, until ctx
// ends or the Log is closed. It reports errors other than those through
// fail.
func (l *Log) follow(ctx context.Context, filters []string, after uint64, rec recordFunc, yield func(eventlog.Record, error) bool, fail func(error)) {
	// Close ends the subscription as its ctx ending would.
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	stop := context.AfterFunc(l.closeCtx, func() { cancel(errClosed) })
	defer stop()

	if after == ^uint64(0) {
		// No stream sequence comes after it: nothing will ever be yielded.
		<-ctx.Done()
		yield(eventlog.Record{}, context.Cause(ctx))
		return
	}
	cfg := jetstream.OrderedConsumerConfig{FilterSubjects: filters}
	if after > 0 {
		cfg.DeliverPolicy = jetstream.DeliverByStartSequencePolicy
		cfg.OptStartSeq = after + 1
	}
	rctx, rcancel := l.reqCtx(ctx)
	cons, err := l.js.OrderedConsumer(rctx, l.cfg.stream, cfg)
	rcancel()
	if err != nil {
		if ctx.Err() != nil {
			yield(eventlog.Record{}, context.Cause(ctx))
			return
		}
		fail(err)
		return
	}
	// Stopping the iterator leaves the consumer on the server until its
	// inactivity threshold; delete it, best effort, when done.
	defer func() {
		dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Second)
		defer cancel()
		if info := cons.CachedInfo(); info != nil {
			_ = l.js.DeleteConsumer(dctx, l.cfg.stream, info.Name)
		}
	}()
	msgs, err := cons.Messages(jetstream.PullMaxMessages(readBatch))
	if err != nil {
		fail(err)
		return
	}
	defer msgs.Stop()
	for {
		m, err := msgs.Next(jetstream.NextContext(ctx))
		if err != nil {
			if ctx.Err() != nil {
				yield(eventlog.Record{}, context.Cause(ctx))
				return
			}
			fail(err)
			return
		}
		meta, err := m.Metadata()
		if err != nil {
			fail(err)
			return
		}
		s := stored{subject: m.Subject(), sseq: meta.Sequence.Stream, time: meta.Timestamp, header: m.Headers(), data: m.Data()}
		if err := s.parseSeq(); err != nil {
			fail(err)
			return
		}
		if s.marker {
			continue
		}
		r, keep, err := rec(&s)
		if err != nil {
			fail(err)
			return
		}
		if err := ctx.Err(); err != nil {
			yield(eventlog.Record{}, context.Cause(ctx))
			return
		}
		if keep && !yield(r, nil) {
			return
		}
	}
}
