package natslog

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strconv"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/nats-io/nuid"

	"github.com/eventsourced-go/eventsourced/eventlog"
)

// Appending: one publish per event, an atomic batch for several, guarded by
// the expected last subject sequence.

// Append implements [eventlog.Log].
//
// The events become messages on the stream's subject carrying their Seq,
// and the first carries the Nats-Expected-Last-Subject-Sequence header, so
// the server refuses the append if anything was written to the stream since
// the expected Seq. The stream sequence that header needs comes from what
// the Log remembers of the entity's last append or read; when it remembers
// nothing matching, Append looks up the entity's last message first. A
// single event is one publish; several are one atomic batch. Appends from
// many goroutines are pipelined on the connection: none waits for another's
// round trip.
//
// A refusal becomes a [*eventlog.ConflictError] whose Actual is read from the
// entity's last message (asking the stream's leader when the replica that
// answered the read still shows the expected Seq: on a replicated stream
// it may be behind), or a [*eventlog.DeletedError] if that message is
// the tombstone of a final [Log.DeleteStream]. Errors matching [eventlog.ErrInvalid] (including
// [ErrTooLarge]) or [ErrNotSetUp] mean nothing was stored; any other error
// (a timeout, a lost connection) leaves it unknown whether the events
// landed, and the Log forgets what it remembered of the entity.
func (l *Log) Append(ctx context.Context, typ, id string, expected uint64, events ...eventlog.Event) (uint64, error) {
	traced, metered := l.tel.tracing.On(), l.tel.metering.On()
	if traced || metered {
		return l.appendMeasured(ctx, traced, metered, typ, id, expected, events)
	}
	return l.append(ctx, typ, id, expected, events)
}

func (l *Log) append(ctx context.Context, typ, id string, expected uint64, events []eventlog.Event) (uint64, error) {
	if err := eventlog.Validate(typ, id, events); err != nil {
		return 0, err
	}
	if l.closed.Load() {
		return 0, errClosed
	}
	if err := ctx.Err(); err != nil {
		return 0, err
	}
	subj, _, _, err := l.subjectOf(typ, id)
	if err != nil {
		return 0, err
	}
	return l.appendTo(ctx, typ, id, subj, expected, events, nil)
}

// appendTo is append to subj, the subject of (typ, id), past the checks.
// refused, if not nil, is the server's refusal of a publish of these events
// that AppendAsync made with the stream sequence the cache remembered:
// appendTo then goes on as after a refusal of its own, reading the entity's
// last message first.
func (l *Log) appendTo(ctx context.Context, typ, id, subj string, expected uint64, events []eventlog.Event, refused error) (uint64, error) {
	out, err := l.eventMsgs(typ, id, subj, expected, events)
	if err != nil {
		return 0, err
	}
	defer func() {
		for _, m := range out {
			m.release()
		}
	}()
	var one [1]*nats.Msg
	msgs := one[:0]
	if len(out) > 1 {
		msgs = make([]*nats.Msg, 0, len(out))
	}
	for _, m := range out {
		msgs = append(msgs, &m.Msg)
	}
	ctx, cancel := l.reqCtx(ctx)
	defer cancel()

	fail := func(err error) (uint64, error) {
		return 0, l.appendError(typ, id, expected, err)
	}
	conflict := func(actual uint64) (uint64, error) {
		return 0, &eventlog.ConflictError{EntityType: typ, EntityID: id, Expected: expected, Actual: actual}
	}
	deleted := func(seq uint64) (uint64, error) {
		return 0, &eventlog.DeletedError{EntityType: typ, EntityID: id, Seq: seq}
	}

	// The stream sequence of the entity's last message, which the server
	// must find for the append to go through.
	var sseq uint64
	switch t, ok := l.cache.get(subj); {
	case refused != nil:
		// Nothing to look up: the refusal below reads the last message.
	case ok && t.seq == expected:
		sseq = t.sseq
	case expected != 0 || ok:
		last, found, err := l.last(ctx, subj)
		if err != nil {
			return fail(err)
		}
		if last.final {
			return deleted(last.seq)
		}
		if last.seq != expected {
			return conflict(last.seq)
		}
		if found {
			sseq = last.sseq
		}
	}
	// An expected of 0 with nothing remembered needs no lookup: sseq 0
	// means the subject must have no message, which guards the first write.

	for attempt := 0; ; attempt++ {
		err := refused
		refused = nil
		if err == nil {
			out[0].expect(sseq)
			var pos uint64
			pos, err = l.publish(ctx, msgs)
			if err == nil {
				l.cache.set(subj, tail{seq: expected + uint64(len(events)), sseq: pos})
				return pos, nil
			}
			if !isWrongLast(err) {
				l.forgetUnsettled(subj, err)
				return fail(err)
			}
		}
		// Refused: read what is there. A stale remembered sequence with the
		// right Seq (the entity's last message was replaced by a deletion
		// marker or a reuse tombstone, or another Log appended and this one
		// saw it through a read) is retried; a final tombstone refuses the
		// append for good, whatever it expects; anything else is a
		// conflict. A final tombstone is the subject's only message, and
		// never in the cache, so an append to it always comes this way or
		// the lookup's.
		last, found, lerr := l.last(ctx, subj)
		if lerr != nil {
			return fail(fmt.Errorf("refused (%w), and reading the actual seq failed: %w", err, lerr))
		}
		if !last.final && last.seq == expected {
			// The read, a direct get, agrees with what the server refused.
			// Either the last message was replaced as above, or the read
			// came from a replica of a replicated stream that is behind
			// the leader, which refused: direct gets are answered by
			// followers too. Only the leader can tell, so ask it. Without
			// this, a lagging follower would turn a conflict into
			// maxStaleRetries refusals and an error of unknown outcome.
			if last, found, lerr = l.leaderLast(ctx, subj); lerr != nil {
				return fail(fmt.Errorf("refused (%w), and reading the actual seq from the stream's leader failed: %w", err, lerr))
			}
		}
		if last.final {
			return deleted(last.seq)
		}
		if last.seq != expected {
			return conflict(last.seq)
		}
		if attempt == maxStaleRetries {
			return fail(fmt.Errorf("refused %d times while the stream's last seq matched: %w", attempt+1, err))
		}
		sseq = 0
		if found {
			sseq = last.sseq
		}
	}
}

// appendError wraps err, the failure of an append, with what it was.
func (l *Log) appendError(typ, id string, expected uint64, err error) error {
	return fmt.Errorf("natslog: append %s/%s at seq %d: %w", eventlog.FormatID(typ), eventlog.FormatID(id), expected+1, err)
}

// forgetUnsettled forgets what the cache remembers of subj after an append
// that failed with err, unless err says nothing was stored: the events may
// or may not have landed.
func (l *Log) forgetUnsettled(subj string, err error) {
	if !errors.Is(err, ErrTooLarge) && !errors.Is(err, ErrNotSetUp) {
		l.cache.forget(subj)
	}
}

// eventMsgs builds the messages of an append and checks their size.
func (l *Log) eventMsgs(typ, id, subj string, expected uint64, events []eventlog.Event) ([]*outMsg, error) {
	msgs := make([]*outMsg, len(events))
	for i := range events {
		m, err := l.eventMsg(typ, id, subj, expected, events, i)
		if err != nil {
			for _, m := range msgs[:i] {
				m.release()
			}
			return nil, err
		}
		msgs[i] = m
	}
	return msgs, nil
}

// eventMsg builds the message of events[i], appended after expected, and
// checks its size.
func (l *Log) eventMsg(typ, id, subj string, expected uint64, events []eventlog.Event, i int) (*outMsg, error) {
	m, size := eventMsg(subj, expected+uint64(i)+1, &events[i], i == 0)
	if maxPayload := int(l.watch.maxPayload.Load()); maxPayload > 0 && size > maxPayload {
		m.release()
		return nil, tooLarge(fmt.Sprintf("natslog: append %s/%s: event %d (%q) is %d bytes with its headers, over the server's max payload of %d bytes",
			eventlog.FormatID(typ), eventlog.FormatID(id), i, events[i].Name, size, maxPayload))
	}
	return m, nil
}

// pubAck is the server's reply to a publish.
type pubAck struct {
	Error  *jetstream.APIError `json:"error,omitempty"`
	Stream string              `json:"stream"`
	Seq    uint64              `json:"seq"`
	Batch  string              `json:"batch,omitempty"`
	Count  int                 `json:"count,omitempty"`
}

// publish publishes msgs, one message or one atomic batch, and returns the
// stream sequence of the last. It retries only when the server said nothing
// was stored: no responders, or a batch it could not take.
func (l *Log) publish(ctx context.Context, msgs []*nats.Msg) (uint64, error) {
	if len(msgs) > 1 {
		select {
		case l.batches <- struct{}{}:
		case <-ctx.Done():
			return 0, context.Cause(ctx)
		}
		defer func() { <-l.batches }()
	}
	wait := retryWait
	for attempt := 1; ; attempt++ {
		pos, retry, err := l.publishOnce(ctx, msgs)
		if !retry || attempt == maxAttempts {
			return pos, err
		}
		l.logger.Debug("natslog: retrying a publish nothing stored", slog.String("subject", msgs[0].Subject), slog.Int("attempt", attempt), slog.Any("error", err))
		if serr := sleep(ctx, wait); serr != nil {
			return 0, fmt.Errorf("%w; before that: %w", serr, err)
		}
		wait = min(2*wait, maxRetryWait)
	}
}

// publishOnce makes one attempt; retry reports that nothing was stored and
// the attempt may be repeated.
func (l *Log) publishOnce(ctx context.Context, msgs []*nats.Msg) (pos uint64, retry bool, err error) {
	last := msgs[len(msgs)-1]
	if len(msgs) > 1 {
		// An atomic batch: every message names the batch and its place in
		// it; only the last, the commit, asks for a reply. The server stores
		// all or none, and checks the expected sequence of the first.
		id := nuid.Next()
		for i, m := range msgs {
			m.Header[hdrBatchID] = []string{id}
			m.Header[hdrBatchSeq] = []string{strconv.Itoa(i + 1)}
		}
		last.Header[hdrBatchCommit] = []string{"1"}
	}
	reply, err := l.inbox.request(ctx, msgs...)
	if err != nil {
		return 0, false, l.publishError(err)
	}
	return publishAck(reply, len(msgs))
}

// publishAck reads the server's reply to a publish of n messages: the
// stream sequence of the last, or why it was not stored. retry reports that
// nothing was stored and the publish may be repeated.
func publishAck(reply *nats.Msg, n int) (pos uint64, retry bool, err error) {
	if isStatus(reply, statusNoResponders) {
		return 0, true, errNoResponse
	}
	if seq, ok := ackSeq(reply.Data); ok {
		return seq, false, nil
	}
	var ack pubAck
	if err := json.Unmarshal(reply.Data, &ack); err != nil {
		return 0, false, fmt.Errorf("natslog: bad publish ack %q: %w", reply.Data, err)
	}
	if ack.Error != nil {
		switch ack.Error.ErrorCode {
		case codeAtomicIncomplete, codeAtomicTooManyInflight:
			return 0, true, ack.Error
		case codeMessageExceedsMaximum:
			return 0, false, tooLarge(fmt.Sprintf("an event is over the stream's max message size: %v", ack.Error))
		case codeAtomicTooLarge:
			return 0, false, tooLarge(fmt.Sprintf("%d events are more than the server takes in one atomic batch: %v", n, ack.Error))
		case codeAtomicDisabled:
			return 0, false, fmt.Errorf("%w: the stream does not allow atomic batch publish: %w", ErrNotSetUp, ack.Error)
		}
		return 0, false, ack.Error
	}
	if ack.Seq == 0 {
		return 0, false, fmt.Errorf("natslog: bad publish ack %q", reply.Data)
	}
	return ack.Seq, false, nil
}

// ackSeq reads the stream sequence of a successful publish ack,
// {"stream":"name","seq":42,...}, without a JSON decoder: this is on every
// append's path. ok is false for anything else, errors included, which the
// caller then decodes in full.
func ackSeq(b []byte) (seq uint64, ok bool) {
	if len(b) < 2 || b[0] != '{' || bytes.Contains(b, []byte(`"error"`)) {
		return 0, false
	}
	i := bytes.Index(b, []byte(`"seq":`))
	if i < 0 {
		return 0, false
	}
	digits := b[i+len(`"seq":`):]
	n := 0
	for n < len(digits) && digits[n] >= '0' && digits[n] <= '9' {
		n++
	}
	if n == 0 || n > 19 || n == len(digits) || (digits[n] != ',' && digits[n] != '}') {
		return 0, false
	}
	for _, d := range digits[:n] {
		seq = seq*10 + uint64(d-'0')
	}
	return seq, seq > 0
}

// publishError translates an error of sending a message.
func (l *Log) publishError(err error) error {
	if errors.Is(err, nats.ErrMaxPayload) {
		return tooLarge(fmt.Sprintf("an event is over the server's max payload of %d bytes: %v", l.nc.MaxPayload(), err))
	}
	return err
}
