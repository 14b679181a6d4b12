package natslog

import (
	"context"
	"encoding/json"
	"fmt"
	"iter"
	"strconv"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/eventsourced-go/eventsourced/eventlog"
)

// Batched direct gets: how many messages, and at most how many bytes, one
// request returns. The server stops at whichever comes first and always
// sends at least one message.
const (
	readBatch    = 256
	readMaxBytes = 4 << 20
)

// directReq is the body of a direct get request (JSApiMsgGetRequest).
type directReq struct {
	Seq      uint64 `json:"seq,omitempty"`
	NextFor  string `json:"next_by_subj,omitempty"`
	Batch    int    `json:"batch,omitempty"`
	MaxBytes int    `json:"max_bytes,omitempty"`
}

// page is what one batched direct get returned.
type page struct {
	msgs []stored
	// pending is how many more messages matched after the last one, as of
	// the request.
	pending uint64
	// total is how many messages matched from the requested sequence on, as
	// of the request: len(msgs) + pending, read from the first message.
	total uint64
}

// fetch returns up to readBatch messages on filter with stream sequence
// seq or more, in stream order.
func (l *Log) fetch(ctx context.Context, seq uint64, filter string) (page, error) {
	body, err := json.Marshal(directReq{Seq: seq, NextFor: filter, Batch: readBatch, MaxBytes: readMaxBytes})
	if err != nil {
		return page{}, err
	}
	wait := retryWait
	for attempt := 1; ; attempt++ {
		p, retry, err := l.fetchOnce(ctx, body)
		if !retry || attempt == maxAttempts {
			return p, err
		}
		if serr := sleep(ctx, wait); serr != nil {
			return page{}, fmt.Errorf("%w: %w", err, serr)
		}
		wait = min(2*wait, maxRetryWait)
	}
}

func (l *Log) fetchOnce(ctx context.Context, body []byte) (p page, retry bool, err error) {
	rctx, cancel := l.reqCtx(ctx)
	defer cancel()
	c, err := l.inbox.open(readBatch + 2)
	if err != nil {
		return page{}, false, err
	}
	defer c.close()
	if err := l.nc.PublishMsg(&nats.Msg{Subject: l.directBatch, Reply: c.reply, Data: body}); err != nil {
		return page{}, false, err
	}
	for {
		m, err := c.next(rctx)
		if err != nil {
			return page{}, false, err
		}
		switch code := m.Header.Get(hdrStatus); {
		case code == "" || len(m.Data) > 0:
			s, err := parseDirect(m)
			if err != nil {
				return page{}, false, err
			}
			if len(p.msgs) == 0 {
				np, _ := strconv.ParseUint(m.Header.Get(hdrNumPending), 10, 64)
				p.total = np + 1
			}
			p.msgs = append(p.msgs, s)
		case code == statusEOB:
			p.pending, err = strconv.ParseUint(m.Header.Get(hdrNumPending), 10, 64)
			if err != nil {
				return page{}, false, fmt.Errorf("natslog: direct get: end of batch without a valid %s header", hdrNumPending)
			}
			return p, false, nil
		case code == statusNotFound && len(p.msgs) == 0:
			return page{}, false, nil
		case code == statusNoResponders && len(p.msgs) == 0:
			return page{}, true, errNoResponse
		default:
			return page{}, false, statusError(m)
		}
	}
}

// next returns the first message on subj with stream sequence seq or more.
func (l *Log) next(ctx context.Context, subj string, seq uint64) (stored, bool, error) {
	body, err := json.Marshal(directReq{Seq: seq, NextFor: subj})
	if err != nil {
		return stored{}, false, err
	}
	reply, err := l.requestRetry(ctx, &nats.Msg{Subject: l.directBatch, Data: body})
	if err != nil {
		return stored{}, false, err
	}
	if isStatus(reply, statusNotFound) {
		return stored{}, false, nil
	}
	if err := statusError(reply); err != nil {
		return stored{}, false, err
	}
	s, err := parseDirect(reply)
	return s, err == nil, err
}

// seek returns a stream sequence x in [lo, hi] such that every message on
// subj before x has a Seq below from, and the first message on subj at or
// after x has a Seq of from or more. The message at hi must have a Seq of
// from or more. It takes about log2(hi-lo) direct gets, so a replay after a
// snapshot does not read the events the snapshot covers.
func (l *Log) seek(ctx context.Context, subj string, lo, hi, from uint64) (uint64, error) {
	for lo < hi {
		mid := lo + (hi-lo)/2
		rctx, cancel := l.reqCtx(ctx)
		s, found, err := l.next(rctx, subj, mid)
		cancel()
		if err != nil {
			return 0, err
		}
		switch {
		case !found:
			// Purged meanwhile; scanning from lo is still correct.
			return lo, nil
		case s.seq >= from:
			hi = mid
		default:
			// No message on subj between mid and s.sseq, and s is before
			// from: neither is any message before s.
			lo = s.sseq + 1
		}
	}
	return lo, nil
}

// maxWalkBack bounds how many messages [Log.ReadEntity] follows back from
// an entity's last message before it scans the subject instead.
const maxWalkBack = 64

// walkBack returns the messages on subj from last back to the first whose
// Seq is below from (or the subject's first), newest first, with one direct
// get by stream sequence per message. It follows the chain the stored
// headers make: a message of an atomic batch after the batch's first comes
// right after the one before it in the stream, and any other message
// carries in Nats-Expected-Last-Subject-Sequence the stream sequence of
// the subject's previous message, which the server checked when it stored
// it. ok is false when the chain cannot be followed within [maxWalkBack]
// messages (a purged or unexpected message, or a message without those
// headers); the caller then scans.
//
// A direct get by stream sequence costs the server one lookup, while a get
// of the next message on a subject scans every message of other subjects
// in between: with many entities interleaved in the stream, scanning an
// entity's subject from the start costs about as much as reading the whole
// stream, and a server restart makes every entity recover at once.
func (l *Log) walkBack(ctx context.Context, subj string, last stored, from uint64) (msgs []stored, ok bool, err error) {
	msgs = append(msgs, last)
	cur := last
	for {
		if !cur.marker && cur.seq <= from {
			// The previous message has a Seq below from.
			return msgs, true, nil
		}
		prev, want, known := prevSseq(&cur)
		switch {
		case !known:
			return nil, false, nil
		case prev == 0 || len(msgs) == maxWalkBack:
			// The subject starts after from (events before it were
			// purged), or the chain is long (deletion markers): scan.
			return nil, false, nil
		}
		rctx, cancel := l.reqCtx(ctx)
		body := strconv.AppendUint([]byte(`{"seq":`), prev, 10)
		reply, err := l.requestRetry(rctx, &nats.Msg{Subject: l.directBatch, Data: append(body, '}')})
		cancel()
		if err != nil {
			return nil, false, err
		}
		if isStatus(reply, statusNotFound) {
			return nil, false, nil // purged meanwhile
		}
		if err := statusError(reply); err != nil {
			return nil, false, err
		}
		p, err := parseDirect(reply)
		if err != nil || p.subject != subj || p.sseq != prev || !want(&p) {
			return nil, false, nil
		}
		msgs = append(msgs, p)
		if p.seq < from {
			return msgs, true, nil
		}
		cur = p
	}
}

// prevSseq returns the stream sequence of the message before m on its
// subject (0: none) and a check that a message found there is that one:
// the previous message of an event with Seq n has Seq n-1 (an event or a
// deletion marker), and a marker follows the event whose Seq it keeps.
// known is false when m's headers do not say.
func prevSseq(m *stored) (prev uint64, want func(*stored) bool, known bool) {
	wantSeq := m.seq - 1
	if m.marker {
		wantSeq = m.seq
	}
	if bs, _ := strconv.Atoi(m.header.Get(hdrBatchSeq)); bs > 1 {
		id := m.header.Get(hdrBatchID)
		return m.sseq - 1, func(p *stored) bool {
			return p.seq == wantSeq && !p.marker && p.header.Get(hdrBatchID) == id && p.header.Get(hdrBatchSeq) == strconv.Itoa(bs-1)
		}, id != ""
	}
	v := m.header.Get(hdrExpectedLastSubjSeq)
	if v == "" {
		return 0, nil, false
	}
	prev, err := strconv.ParseUint(v, 10, 64)
	if err != nil || prev >= m.sseq {
		return 0, nil, false
	}
	return prev, func(p *stored) bool { return p.seq == wantSeq }, true
}

// ReadEntity implements [eventlog.Log]. It first looks up the entity's last
// message. When fewer than maxWalkBack events are wanted, as in a recovery
// after a snapshot or of a short-lived entity, it follows them back from
// there with one direct get by stream sequence each;
// otherwise it uses batched direct gets of the entity's subject, skipping
// the events before from by binary search rather than reading them. It ends
// at the entity's last message as of its start.
func (l *Log) ReadEntity(ctx context.Context, typ, id string, from uint64) iter.Seq2[eventlog.Record, error] {
	return func(yield func(eventlog.Record, error) bool) {
		fail := func(err error) {
			yield(eventlog.Record{}, fmt.Errorf("natslog: read %s/%s from seq %d: %w", eventlog.FormatID(typ), eventlog.FormatID(id), from, err))
		}
		// emit yields s as a record; false means stop (an error was
		// yielded or the consumer broke off).
		emit := func(s *stored) bool {
			rec, err := s.record(typ, id)
			if err != nil {
				fail(err)
				return false
			}
			if err := ctx.Err(); err != nil {
				yield(eventlog.Record{}, err)
				return false
			}
			return yield(rec, nil)
		}
		if err := eventlog.ValidateStream(typ, id); err != nil {
			yield(eventlog.Record{}, err)
			return
		}
		if l.closed.Load() {
			yield(eventlog.Record{}, errClosed)
			return
		}
		if err := ctx.Err(); err != nil {
			yield(eventlog.Record{}, err)
			return
		}
		subj, err := l.subjects.entity(typ, id)
		if err != nil {
			yield(eventlog.Record{}, err)
			return
		}
		from = max(from, 1)
		// end is the stream sequence of the entity's last message.
		var end uint64
		{
			rctx, cancel := l.reqCtx(ctx)
			last, found, err := l.lastBatched(rctx, subj)
			cancel()
			switch {
			case err != nil:
				fail(err)
				return
			case !found || last.seq < from || last.marker:
				// No events at or after from; a marker as the last message
				// means every event was deleted.
				return
			case last.seq == from:
				rec, err := last.record(typ, id)
				if err != nil {
					fail(err)
					return
				}
				yield(rec, nil)
				return
			}
			end = last.sseq
			// Recovery after a snapshot wants the few events at the end:
			// follow them back from the last message rather than scan the
			// subject from the start of the stream.
			var tail []stored
			ok := false
			if last.seq-from < maxWalkBack {
				if tail, ok, err = l.walkBack(ctx, subj, last, from); err != nil {
					fail(err)
					return
				}
			}
			if ok {
				for i := len(tail) - 1; i >= 0; i-- {
					s := &tail[i]
					if s.marker || s.seq < from {
						continue
					}
					if !emit(s) {
						return
					}
				}
				return
			}
		}
		seq := uint64(1)
		for {
			p, err := l.fetch(ctx, seq, subj)
			if err != nil {
				fail(err)
				return
			}
			if len(p.msgs) == 0 {
				return
			}
			for i := range p.msgs {
				s := &p.msgs[i]
				if s.sseq > end {
					return
				}
				if !s.marker && s.seq >= from && !emit(s) {
					return
				}
				if s.sseq == end {
					if i == len(p.msgs)-1 && p.pending == 0 {
						l.cache.observe(subj, tail{seq: s.seq, sseq: s.sseq})
					}
					return
				}
			}
			lastMsg := p.msgs[len(p.msgs)-1]
			if p.pending == 0 {
				l.cache.observe(subj, tail{seq: lastMsg.seq, sseq: lastMsg.sseq})
				return
			}
			seq = lastMsg.sseq + 1
			if lastMsg.seq < from && from-lastMsg.seq > readBatch {
				// Far before from: skip the gap by binary search.
				if seq, err = l.seek(ctx, subj, seq, end, from); err != nil {
					fail(err)
					return
				}
			}
		}
	}
}

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
					rec, err := l.typeRecord(typ, filter, s)
					if err != nil {
						fail(err)
						return
					}
					if err := ctx.Err(); err != nil {
						yield(eventlog.Record{}, err)
						return
					}
					if !yield(rec, nil) {
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
		// Close ends the subscription as its ctx ending would.
		ctx, cancel := context.WithCancelCause(ctx)
		defer cancel(nil)
		stop := context.AfterFunc(l.closeCtx, func() { cancel(errClosed) })
		defer stop()

		cfg := jetstream.OrderedConsumerConfig{FilterSubjects: []string{filter}}
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
			rec, err := l.typeRecord(typ, filter, &s)
			if err != nil {
				fail(err)
				return
			}
			if err := ctx.Err(); err != nil {
				yield(eventlog.Record{}, context.Cause(ctx))
				return
			}
			if !yield(rec, nil) {
				return
			}
		}
	}
}

// EntityIDs implements [eventlog.IDLister] from the stream's per-subject
// state: one stream info request (paged by the client for many subjects).
// An entity whose events were all deleted stays listed.
func (l *Log) EntityIDs(ctx context.Context, typ string) iter.Seq2[string, error] {
	return func(yield func(string, error) bool) {
		if err := eventlog.ValidateType(typ); err != nil {
			yield("", err)
			return
		}
		if l.closed.Load() {
			yield("", errClosed)
			return
		}
		if err := ctx.Err(); err != nil {
			yield("", err)
			return
		}
		filter, err := l.subjects.typeFilter(typ)
		if err != nil {
			yield("", err)
			return
		}
		rctx, cancel := l.reqCtx(ctx)
		var info *jetstream.StreamInfo
		err = l.watch.do(rctx, func(ctx context.Context) error {
			var err error
			info, err = l.stream.Info(ctx, jetstream.WithSubjectFilter(filter))
			return err
		})
		cancel()
		if err != nil {
			yield("", fmt.Errorf("natslog: entity ids of type %s: %w", typ, err))
			return
		}
		for subj := range info.State.Subjects {
			id, err := l.subjects.id(filter, subj)
			if err != nil {
				yield("", err)
				return
			}
			if err := ctx.Err(); err != nil {
				yield("", err)
				return
			}
			if !yield(id, nil) {
				return
			}
		}
	}
}

// DeleteTo implements [eventlog.Deleter] by purging the entity's subject
// below the first event it keeps. Deleting every event first appends a
// deletion marker carrying the last Seq (guarded by the expected last
// subject sequence, like an append), so the last Seq survives, then purges
// everything before the marker. Readers skip markers.
func (l *Log) DeleteTo(ctx context.Context, typ, id string, seq uint64) error {
	if err := eventlog.ValidateStream(typ, id); err != nil {
		return err
	}
	if l.closed.Load() {
		return errClosed
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	if seq == 0 {
		return nil
	}
	subj, err := l.subjects.entity(typ, id)
	if err != nil {
		return err
	}
	ctx, cancel := l.reqCtx(ctx)
	defer cancel()
	fail := func(err error) error {
		return fmt.Errorf("natslog: delete %s/%s to seq %d: %w", eventlog.FormatID(typ), eventlog.FormatID(id), seq, err)
	}
	for attempt := 0; ; attempt++ {
		last, found, err := l.last(ctx, subj)
		if err != nil {
			return fail(err)
		}
		if !found {
			return nil
		}
		var below uint64 // purge the subject's messages below this sequence
		switch {
		case seq < last.seq:
			if below, err = l.seek(ctx, subj, 1, last.sseq, seq+1); err != nil {
				return fail(err)
			}
		case last.marker:
			below = last.sseq
		default:
			// Delete everything: a marker keeps the last Seq.
			m := &nats.Msg{Subject: subj, Header: nats.Header{
				hdrSeq:                 []string{strconv.FormatUint(last.seq, 10)},
				hdrMarker:              []string{"1"},
				hdrExpectedLastSubjSeq: []string{strconv.FormatUint(last.sseq, 10)},
			}}
			pos, err := l.publish(ctx, []*nats.Msg{m})
			if isWrongLast(err) && attempt < maxStaleRetries {
				continue // appended to meanwhile: look again
			}
			if err != nil {
				l.cache.forget(subj)
				return fail(err)
			}
			l.cache.set(subj, tail{seq: last.seq, sseq: pos})
			below = pos
		}
		if below <= 1 {
			return nil
		}
		err = l.watch.do(ctx, func(ctx context.Context) error {
			return l.stream.Purge(ctx, jetstream.WithPurgeSubject(subj), jetstream.WithPurgeSequence(below))
		})
		if err != nil {
			return fail(err)
		}
		return nil
	}
}
