package natslog

import (
	"context"
	"encoding/json"
	"fmt"
	"iter"
	"time"

	"github.com/nats-io/nats.go"
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
// filter is filter: it skips the messages of other subjects, which a read
// by the stream's filter (see scan) gets too.
func (l *Log) typeRecords(typ, filter string) recordFunc {
	return func(s *stored) (eventlog.Record, bool, error) {
		idTok, ok := l.subjects.inType(filter, s.subject)
		if !ok {
			return eventlog.Record{}, false, nil
		}
		id, err := decodeToken(idTok)
		if err != nil {
			return eventlog.Record{}, false, err
		}
		rec, err := s.record(typ, id)
		return rec, true, err
	}
}

// ReadType implements [eventlog.Log] with batched direct gets of the
// stream's messages, or of the subjects <prefix>.<type>.* once most of
// them are of other types (see scan). It ends at the stream's last message
// as of its start. Subscribe chooses its filter alike, from one page of the
// messages it starts after.
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
// stream order, skipping markers and what rec does not keep, and ends at
// the stream's last message as of its start. It reports errors other than
// ctx's through fail.
//
// It reads by the stream's own filter (every message) as long as most
// messages it gets are kept, and by filter once a page was mostly others:
// with many subjects the server reads a wildcard filter such as
// <prefix>.<type>.* message by message against the subjects of each block,
// several times slower than it reads every message, so reading a type that
// makes up most of the stream is faster unfiltered and filtered here. A
// sequence is assigned when the server stores a message, so switching
// filters between pages skips nothing.
func (l *Log) scan(ctx context.Context, filter string, after uint64, rec recordFunc, yield func(eventlog.Record, error) bool, fail func(error)) {
	if after == ^uint64(0) {
		return
	}
	end, err := l.streamLastSeq(ctx)
	if err != nil {
		if ctx.Err() != nil {
			yield(eventlog.Record{}, ctx.Err())
			return
		}
		fail(err)
		return
	}
	if end <= after {
		return
	}
	current := l.subjects.streamFilter()
	seq := after + 1
	for {
		p, err := l.fetch(ctx, seq, current)
		if err != nil {
			fail(err)
			return
		}
		if len(p.msgs) == 0 {
			return
		}
		kept := 0
		for i := range p.msgs {
			s := &p.msgs[i]
			if s.sseq > end {
				return
			}
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
				if keep {
					kept++
					if !yield(r, nil) {
						return
					}
				}
			}
			if s.sseq == end {
				return
			}
		}
		if p.pending == 0 {
			return
		}
		if current != filter && kept*broadShare < len(p.msgs) {
			current = filter
		}
		seq = p.msgs[len(p.msgs)-1].sseq + 1
	}
}

// broadShare: scan reads by the stream's filter while at least one message
// of a page in broadShare is kept.
const broadShare = 4

// followFilter returns the subject filter a subscription to filter reads
// by, after after: the stream's own filter if most of the stream's
// messages there are ones rec keeps, else filter (see scan for why). It
// looks at one page of messages: those after after, or the stream's last
// ones if fewer follow after; with no message at all, or if it cannot
// tell, filter.
func (l *Log) followFilter(ctx context.Context, filter string, after uint64, rec recordFunc) string {
	end, err := l.streamLastSeq(ctx)
	if err != nil || end == 0 || after == ^uint64(0) {
		return filter
	}
	from := after + 1
	if end-min(end, after) < readBatch {
		from = max(1, end-min(end, readBatch)+1)
	}
	p, err := l.fetch(ctx, from, l.subjects.streamFilter())
	if err != nil {
		return filter
	}
	kept, events := 0, 0
	for i := range p.msgs {
		s := &p.msgs[i]
		if s.marker {
			continue
		}
		events++
		if _, keep, err := rec(s); err == nil && keep {
			kept++
		}
	}
	if events == 0 || kept*broadShare < events {
		return filter
	}
	return l.subjects.streamFilter()
}

// streamInfoResp is the part of a stream info answer (JSApiStreamInfoResponse)
// streamLastSeq reads.
type streamInfoResp struct {
	Error *jetstream.APIError `json:"error,omitempty"`
	State struct {
		LastSeq uint64 `json:"last_seq"`
	} `json:"state"`
}

// streamLastSeq returns the stream sequence of the stream's last message,
// 0 if it has none. It asks through the Log's inbox, so it fails at once
// when the connection drops, as direct gets do.
func (l *Log) streamLastSeq(ctx context.Context) (uint64, error) {
	rctx, cancel := l.reqCtx(ctx)
	defer cancel()
	reply, err := l.requestRetry(rctx, &nats.Msg{Subject: l.streamInfo})
	if err != nil {
		return 0, err
	}
	if err := statusError(reply); err != nil {
		return 0, err
	}
	var resp streamInfoResp
	if err := json.Unmarshal(reply.Data, &resp); err != nil {
		return 0, fmt.Errorf("natslog: bad stream info reply %q: %w", reply.Data, err)
	}
	if resp.Error != nil {
		if resp.Error.ErrorCode == codeClusterNotAvail {
			return 0, unavailable("the stream has no leader", resp.Error)
		}
		return 0, fmt.Errorf("natslog: stream info: %w", resp.Error)
	}
	return resp.State.LastSeq, nil
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
		rec := l.typeRecords(typ, filter)
		l.follow(ctx, []string{l.followFilter(ctx, filter, after, rec)}, after, rec, yield, fail)
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
			if l.subjects.isEvent(s.subject) {
				fail(err)
				return
			}
			continue // a tombIndex message, which the stream's filter gets
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
