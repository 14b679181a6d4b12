package natslog

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"

	"github.com/nats-io/nats.go"
	"go.opentelemetry.io/otel/trace"

	itel "github.com/eventsourced-go/eventsourced/internal/telemetry"
)

// Batched first reads. An entity's recovery starts by looking up the last
// message of its subject, and a service that activates many entities at once
// (a restart, a burst of traffic) would send one direct get each.
// ReadEntity hands that lookup to the Log's readers instead: a reader takes
// every lookup waiting and answers them with one multi-subject direct get
// (multi_last). While a reader waits for the server, the next batch gathers;
// a lone lookup is sent as before.

const (
	// lastReaders is how many lookups run at once.
	lastReaders = 2
	// lastBatchMax is how many subjects one multi-subject get asks for; the
	// server answers at most 1,024.
	lastBatchMax = 256
)

// lastReq is a lookup of the last message of a subject, waiting for a
// reader.
type lastReq struct {
	ctx   context.Context
	subj  string
	reply chan lastRes // buffered 1
}

type lastRes struct {
	s     stored
	found bool
	err   error
}

// lastBatched is [Log.last] through the readers.
func (l *Log) lastBatched(ctx context.Context, subj string) (stored, bool, error) {
	r := &lastReq{ctx: ctx, subj: subj, reply: make(chan lastRes, 1)}
	select {
	case l.lasts <- r:
	case <-ctx.Done():
		return stored{}, false, context.Cause(ctx)
	case <-l.closeCtx.Done():
		return stored{}, false, errClosed
	}
	select {
	case res := <-r.reply:
		return res.s, res.found, res.err
	case <-ctx.Done():
		return stored{}, false, context.Cause(ctx)
	case <-l.readersDone:
		// Closed: the readers are gone; a reply, if any, is buffered.
		select {
		case res := <-r.reply:
			return res.s, res.found, res.err
		default:
			return stored{}, false, errClosed
		}
	}
}

// lastReader answers lookups until Close.
func (l *Log) lastReader() {
	defer l.wg.Done()
	batch := make([]*lastReq, 0, lastBatchMax)
	for {
		var first *lastReq
		select {
		case first = <-l.lasts:
		case <-l.closeCtx.Done():
			for {
				select {
				case r := <-l.lasts:
					r.reply <- lastRes{err: errClosed}
				default:
					return
				}
			}
		}
		batch = append(batch[:0], first)
	gather:
		for len(batch) < lastBatchMax {
			select {
			case r := <-l.lasts:
				batch = append(batch, r)
			default:
				break gather
			}
		}
		l.lastBatch(batch)
		clear(batch)
	}
}

// lastBatch answers the lookups of batch whose callers still wait.
func (l *Log) lastBatch(batch []*lastReq) {
	bySubj := make(map[string][]*lastReq, len(batch))
	var subjects []string
	for _, r := range batch {
		if err := r.ctx.Err(); err != nil {
			r.reply <- lastRes{err: context.Cause(r.ctx)}
			continue
		}
		if bySubj[r.subj] == nil {
			subjects = append(subjects, r.subj)
		}
		bySubj[r.subj] = append(bySubj[r.subj], r)
	}
	answer := func(subj string, res lastRes) {
		for _, r := range bySubj[subj] {
			r.reply <- res
		}
	}
	// lone looks a subject up alone, under its first caller's context
	// (ended by Close too).
	lone := func(subj string) {
		ctx, cancel := context.WithCancel(bySubj[subj][0].ctx)
		stop := context.AfterFunc(l.closeCtx, cancel)
		s, found, err := l.last(ctx, subj)
		stop()
		cancel()
		answer(subj, lastRes{s: s, found: found, err: l.closedErr(err)})
	}
	switch len(subjects) {
	case 0:
		return
	case 1:
		l.lastQueries.Add(1)
		lone(subjects[0])
		return
	}
	l.lastQueries.Add(1)
	ctx, cancel := l.reqCtx(l.closeCtx)
	defer cancel()
	var span trace.Span
	if l.tel.tracing.On() {
		ctx, span = l.tel.startLookups(ctx, bySubj, len(subjects))
	}
	if l.tel.metering.On() {
		l.tel.lookups.Record(ctx, int64(len(subjects)), l.tel.backend.Record...)
	}
	found, complete, err := l.multiLast(ctx, subjects)
	itel.EndSpan(span, err)
	if err != nil {
		err = l.closedErr(err)
		for _, subj := range subjects {
			answer(subj, lastRes{err: err})
		}
		return
	}
	for _, subj := range subjects {
		s, ok := found[subj]
		switch {
		case ok:
			l.remember(subj, &s)
			answer(subj, lastRes{s: s, found: true})
		case complete:
			l.cache.forget(subj)
			answer(subj, lastRes{})
		default:
			// The server stopped early (too many bytes): ask alone.
			lone(subj)
		}
	}
}

// multiLastReq is the body of a multi-subject direct get.
type multiLastReq struct {
	MultiLast []string `json:"multi_last"`
	MaxBytes  int      `json:"max_bytes,omitempty"`
}

// multiLast returns the last message of each subject that has one.
// complete is false if the server stopped before it sent them all. A
// request nothing answered (no responders: a replicated stream's direct
// get subscriptions come up some time after the stream, and go while a
// node restarts) is sent again, as fetch and requestRetry do.
func (l *Log) multiLast(ctx context.Context, subjects []string) (map[string]stored, bool, error) {
	body, err := json.Marshal(multiLastReq{MultiLast: subjects, MaxBytes: readMaxBytes})
	if err != nil {
		return nil, false, err
	}
	wait := retryWait
	for attempt := 1; ; attempt++ {
		found, complete, err := l.multiLastOnce(ctx, body, len(subjects))
		if !errors.Is(err, errNoResponse) || attempt == maxAttempts {
			return found, complete, err
		}
		if serr := sleep(ctx, wait); serr != nil {
			return nil, false, fmt.Errorf("%w: %w", err, serr)
		}
		wait = min(2*wait, maxRetryWait)
	}
}

// multiLastOnce sends body, the multi-subject direct get of n subjects,
// once.
func (l *Log) multiLastOnce(ctx context.Context, body []byte, n int) (map[string]stored, bool, error) {
	c, err := l.inbox.open(n + 2)
	if err != nil {
		return nil, false, err
	}
	defer c.close()
	if err := l.nc.PublishMsg(&nats.Msg{Subject: l.directBatch, Reply: c.reply, Data: body}); err != nil {
		return nil, false, err
	}
	found := make(map[string]stored, n)
	for {
		m, err := c.next(ctx)
		if err != nil {
			return nil, false, err
		}
		switch code := m.Header.Get(hdrStatus); {
		case code == "" || len(m.Data) > 0:
			s, err := parseDirect(m)
			if err != nil {
				return nil, false, err
			}
			found[s.subject] = s
		case code == statusEOB:
			np, err := strconv.ParseUint(m.Header.Get(hdrNumPending), 10, 64)
			if err != nil {
				return nil, false, fmt.Errorf("natslog: direct get: end of batch without a valid %s header", hdrNumPending)
			}
			return found, np == 0, nil
		case code == statusNotFound && len(found) == 0:
			return found, true, nil
		case code == statusNoResponders && len(found) == 0:
			return nil, false, errNoResponse
		default:
			return nil, false, statusError(m)
		}
	}
}

// closedErr returns errClosed for a failure caused by Close, else err.
func (l *Log) closedErr(err error) error {
	if err != nil && l.closed.Load() {
		return errClosed
	}
	return err
}
