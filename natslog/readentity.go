package natslog

import (
	"context"
	"fmt"
	"iter"
	"strconv"

	"github.com/nats-io/nats.go"

	"github.com/eventsourced-go/eventsourced/eventlog"
)

// Reading one entity. A recovery after a snapshot reads an entity's last few
// events. Reading forward from a Seq would need "the next message on this
// subject", for which the server steps over every other entity's messages
// in between: with many interleaved entities, about a read of the stream
// per recovery. So ReadEntity starts from the entity's last message (looked
// up through the Log's readers, which answer every lookup waiting with one
// multi-subject direct get: lastbatch.go) and follows back the chain each
// stored message keeps of the one before it (Nats-Expected-Last-Subject-
// Sequence, checked by the server when it stored the message). Longer reads
// use batched direct gets forward.

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
		if !cur.marker && cur.seq <= from || cur.tomb {
			// The previous message has a Seq below from, or there is none:
			// a tombstone's publish purged the messages before it.
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
// at the entity's last message as of its start. If that message is the
// tombstone of a final [Log.DeleteStream], it yields a
// [*eventlog.DeletedError].
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
			case last.final:
				// The lookup every read makes finds the tombstone, the
				// subject's only message.
				yield(eventlog.Record{}, &eventlog.DeletedError{EntityType: typ, EntityID: id, Seq: last.seq})
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

// LastSeq implements [eventlog.Log]: one direct get of the entity's last
// message.
func (l *Log) LastSeq(ctx context.Context, typ, id string) (uint64, error) {
	if err := eventlog.ValidateStream(typ, id); err != nil {
		return 0, err
	}
	if l.closed.Load() {
		return 0, errClosed
	}
	subj, err := l.subjects.entity(typ, id)
	if err != nil {
		return 0, err
	}
	ctx, cancel := l.reqCtx(ctx)
	defer cancel()
	last, _, err := l.last(ctx, subj)
	if err != nil {
		return 0, fmt.Errorf("natslog: last seq of %s/%s: %w", eventlog.FormatID(typ), eventlog.FormatID(id), err)
	}
	return last.seq, nil
}
