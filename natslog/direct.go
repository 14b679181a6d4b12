package natslog

import (
	"context"
	"encoding/json"
	"fmt"
	"strconv"

	"github.com/nats-io/nats.go"
)

// Direct gets: the requests every read is made of. A direct get asks the
// stream's servers for messages by subject and sequence without a consumer;
// a batched one returns many messages to one request.

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
			if err != nil && s.sseq != 0 && !l.subjects.isEvent(s.subject) {
				// A tombIndex message, which a read by the stream's
				// filter gets too: skipped, as markers are.
				s.marker, err = true, nil
			}
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

// Batched direct gets: how many messages, and at most how many bytes, one
// request returns. The server stops at whichever comes first and always
// sends at least one message.
const (
	readBatch    = 256
	readMaxBytes = 4 << 20
)

// isStatus reports whether m is a status reply with code.
func isStatus(m *nats.Msg, code string) bool {
	return len(m.Data) == 0 && m.Header.Get(hdrStatus) == code
}

// last returns the last message on subj (a zero stored if there is none)
// and remembers it.
func (l *Log) last(ctx context.Context, subj string) (stored, bool, error) {
	m := &nats.Msg{Subject: l.directLast + subj}
	reply, err := l.requestRetry(ctx, m)
	if err != nil {
		return stored{}, false, err
	}
	if isStatus(reply, statusNotFound) {
		l.cache.forget(subj)
		return stored{}, false, nil
	}
	if err := statusError(reply); err != nil {
		return stored{}, false, err
	}
	s, err := parseDirect(reply)
	if err != nil {
		return stored{}, false, err
	}
	l.remember(subj, &s)
	return s, true, nil
}

// remember makes s, just read as the last message on subj, the tail the
// cache holds for it. A final tombstone is never remembered: an append
// expecting its Seq would pass the server's check of the last subject
// sequence, so appends must look it up and be refused.
func (l *Log) remember(subj string, s *stored) {
	if s.final {
		l.cache.forget(subj)
		return
	}
	l.cache.set(subj, tail{seq: s.seq, sseq: s.sseq})
}

// requestRetry sends a read request and waits for its one reply, retrying
// while nothing answers.
func (l *Log) requestRetry(ctx context.Context, m *nats.Msg) (*nats.Msg, error) {
	wait := retryWait
	for attempt := 1; ; attempt++ {
		reply, err := l.inbox.request(ctx, m)
		if err != nil {
			return nil, err
		}
		if !isStatus(reply, statusNoResponders) {
			return reply, nil
		}
		if attempt == maxAttempts {
			return nil, errNoResponse
		}
		if err := sleep(ctx, wait); err != nil {
			return nil, fmt.Errorf("%w: %w", errNoResponse, err)
		}
		wait = min(2*wait, maxRetryWait)
	}
}

// statusError returns the error a status reply carries, nil for a message.
func statusError(m *nats.Msg) error {
	code := m.Header.Get(hdrStatus)
	if code == "" || len(m.Data) > 0 {
		return nil
	}
	if code == statusNoResponders {
		return errNoResponse
	}
	return fmt.Errorf("natslog: direct get: status %s %s", code, m.Header.Get(hdrDescription))
}
