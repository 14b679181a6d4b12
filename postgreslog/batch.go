package postgreslog

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/eventsourced-go/eventsourced/eventlog"
	"github.com/eventsourced-go/eventsourced/internal/rounds"
)

// maxBatchBytes bounds the data of one group-commit transaction; an append
// larger than it still commits, alone.
const maxBatchBytes = 16 << 20

// maxAttempts bounds how often a batch runs again after the server aborted
// it to break a deadlock or a serialization conflict.
const maxAttempts = 3

// worker takes queued appends in batches and commits each batch in one
// transaction. While it commits, new appends queue up and form the next
// batch: the busier the log, the larger the batches.
func (l *Log) worker() {
	defer l.wg.Done()
	batch := make([]*appendReq, 0, 256)
	w := new(scratch)
	for {
		batch = l.queue.take(batch[:0])
		if len(batch) == 0 {
			select {
			case <-l.queue.ready:
				continue
			case <-l.closing:
				l.failQueued(nil)
				return
			}
		}
		// A closed log starts no new transaction, even if appends wait.
		select {
		case <-l.closing:
			l.failQueued(batch)
			return
		default:
		}
		l.runBatch(w, batch)
		w.reset(len(batch))
		clear(batch)
	}
}

// failQueued answers the appends of batch and every append still queued
// with ErrClosed.
func (l *Log) failQueued(batch []*appendReq) {
	for {
		for _, r := range batch {
			r.answer(appendResult{err: eventlog.ErrClosed})
		}
		clear(batch)
		if batch = l.queue.take(batch[:0]); len(batch) == 0 {
			return
		}
	}
}

// scratch is the memory a worker reuses from round to round, so that a
// round allocates little beyond what it sends. Only its worker uses it.
type scratch struct {
	pending, next []*appendReq
	sorted        []*appendReq
	keys          []sortKey
	types         []string // the types a round appended to
	outs          []outcome
	plan          batchPlan
	actual        map[int]refusal
	copyBuf       bytes.Buffer
	// The parameters of commitInsert and commitCopy.
	bases, streams, seqs, revs []int64
	known                      []bool
	data, meta                 [][]byte
	check                      []int // the streams commitCopy checks
}

// maxScratch bounds the COPY buffer a worker keeps between rounds: one
// round of very large events should not pin its memory for good.
const maxScratch = 1 << 20

// reset drops the appends of the last batch, of n appends, which may be
// recycled, and an oversized COPY buffer. No slice held more than n
// appends, nor more than the events of the last round that used it.
func (w *scratch) reset(n int) {
	for _, s := range [][]*appendReq{w.pending, w.next, w.sorted} {
		clear(s[:min(n, cap(s))])
	}
	clear(w.keys[:min(n, cap(w.keys))])
	clear(w.data)
	clear(w.meta)
	if w.copyBuf.Cap() > maxScratch {
		w.copyBuf = bytes.Buffer{}
	}
}

// runBatch commits the appends of batch whose callers still wait, and
// answers every one of them.
func (l *Log) runBatch(w *scratch, batch []*appendReq) {
	pending := w.pending[:0]
	for _, r := range batch {
		if err := r.ctx.Err(); err != nil {
			// Its caller has returned already; it never started.
			r.answer(appendResult{err: err})
			continue
		}
		pending = append(pending, r)
	}
	ctx, cancel := context.WithTimeout(context.Background(), l.cfg.writeTimeout)
	defer cancel()
	metered := l.tel.metering.On()
	// Appends to a stream that do not follow its first append in the batch
	// are deferred to another round (see plan); each round settles at least
	// the first append of every stream, so the loop ends.
	for len(pending) > 0 {
		outs, err := l.commitRetrying(ctx, w, pending)
		if err != nil && uniqueViolation(err, l.n.eventsPkey) {
			// Someone keeps inserting events without taking Positions
			// (around this package). Commit the appends one by one, so
			// only the one whose row collides fails.
			outs, err = l.commitEach(ctx, w, pending), nil
		}
		if err != nil {
			// Its callers get the error, but whoever runs the service may
			// not see them: a failed transaction fails many entities.
			first := pending[0]
			l.cfg.logger.Warn("postgreslog: group commit failed; its appends fail", slog.Int("appends", len(pending)),
				slog.String("type", eventlog.FormatID(first.typ)), slog.String("id", eventlog.FormatID(first.id)),
				slog.Uint64("seq", first.expected+1), slog.Any("error", err))
			for _, r := range pending {
				l.stats.failures.Add(1)
				r.answer(appendResult{err: l.appendErr(r, err)})
			}
			return
		}
		// Count the round before answering anyone, so a caller that has its
		// answer sees it in Stats.
		types := w.types[:0]
		var committed, events uint64
		next := w.next[:0]
		for i, r := range pending {
			o := &outs[i]
			switch {
			case o.deferred:
				next = append(next, r)
			case o.err == nil:
				committed++
				events += uint64(len(r.events))
				if n := len(types); n == 0 || types[n-1] != r.typ && !slices.Contains(types, r.typ) {
					types = append(types, r.typ)
				}
			case isConflict(o.err):
				l.stats.conflicts.Add(1)
				if metered {
					l.tel.conflicts.Add(context.Background(), 1, l.tel.backend.Add...)
				}
			case errors.Is(o.err, eventlog.ErrDeleted):
				// Refused like a conflict, and as final: the caller's
				// business, not a failure of the Log.
			default:
				l.stats.failures.Add(1)
				o.err = l.appendErr(r, o.err)
			}
		}
		if committed > 0 {
			l.stats.batches.Add(1)
			l.stats.appends.Add(committed)
			l.stats.events.Add(events)
		}
		var lv rounds.Leaves
		for i, r := range pending {
			if !outs[i].deferred {
				r.answerLeaving(outs[i].appendResult, &lv)
			}
		}
		lv.Flush() // before a next round of deferred appends
		if committed > 0 {
			l.hub.wake(types)
		}
		w.types = types
		// The answered appends may be recycled: only the deferred ones go
		// on, in the other slice.
		w.pending, w.next = next, pending
		pending = next
	}
}

// appendErr wraps a failure of r's batch for r's caller.
func (l *Log) appendErr(r *appendReq, err error) error {
	if l.closed.Load() && errors.Is(err, context.Canceled) {
		err = eventlog.ErrClosed
	}
	return fmt.Errorf("postgreslog: append %s/%s at seq %d: %w", eventlog.FormatID(r.typ), eventlog.FormatID(r.id), r.expected+1, translate(err))
}

// outcome is what a round of commit decided for one append.
type outcome struct {
	appendResult
	// deferred: the append did not take part; run it in another round.
	deferred bool
}

// commitRetrying runs commit, again if the server aborted it to break a
// deadlock, or if the unique key refused a row that a writer around this
// package inserted (the next run sees that row and reports a conflict).
func (l *Log) commitRetrying(ctx context.Context, w *scratch, reqs []*appendReq) ([]outcome, error) {
	cache := l.cache
	for attempt := 1; ; attempt++ {
		outs, err := l.commit(ctx, w, reqs, cache)
		if err == nil || attempt == maxAttempts || !(retryable(err) || uniqueViolation(err, l.n.eventsPkey)) {
			return outs, err
		}
		if uniqueViolation(err, l.n.eventsPkey) {
			// The cache vouched for a Seq that is no longer the last:
			// check every stream in full.
			cache = nil
		}
		l.stats.retries.Add(1)
		if l.tel.metering.On() {
			l.tel.retries.Add(ctx, 1, l.tel.backend.Add...)
		}
		// Debug: retries are expected where other processes write the
		// same streams, and the metric counts them.
		l.cfg.logger.Debug("postgreslog: batch aborted by the server, running it again",
			slog.Int("appends", len(reqs)), slog.Int("attempt", attempt), slog.Any("error", err))
		select {
		case <-ctx.Done():
			return nil, err
		case <-time.After(time.Duration(attempt) * 10 * time.Millisecond):
		}
	}
}

// commitEach commits reqs one at a time. An append that the unique key
// still refuses fails with a ConflictError carrying the stream's last Seq.
func (l *Log) commitEach(ctx context.Context, w *scratch, reqs []*appendReq) []outcome {
	outs := make([]outcome, len(reqs))
	for i, r := range reqs {
		one, err := l.commit(ctx, w, reqs[i:i+1], nil)
		switch {
		case err == nil:
			outs[i] = one[0]
		case uniqueViolation(err, l.n.eventsPkey):
			var actual int64
			if err := l.pool.QueryRow(ctx, l.sql.lastSeq, r.typ, r.id).Scan(&actual); err != nil {
				outs[i].err = fmt.Errorf("read the last seq after a unique violation: %w", err)
				continue
			}
			outs[i].err = &eventlog.ConflictError{EntityType: r.typ, EntityID: r.id, Expected: r.expected, Actual: uint64(actual)}
		default:
			outs[i].err = err
		}
	}
	return outs
}

// streamKey names a stream.
type streamKey struct{ typ, id string }

// batchPlan is how one round of a batch goes to the database.
type batchPlan struct {
	// streams lists the batch's streams once each, in batch order; base is
	// the last Seq each must have: the expected Seq of its first append.
	// known marks the streams whose base the Log's seqCache vouches for,
	// which the database then checks without looking up the last event.
	streams []streamKey
	base    []uint64
	known   []bool
	// Per append: the index of its stream in streams, -1 if deferred, and
	// the Seq of its first event.
	stream []int
	first  []uint64
	// events is the number of events of the appends taking part.
	events int

	// end is plan's, per stream: the Seq its appends in the round end at;
	// outs is settle's. A worker's plan keeps them for the next round.
	end  []uint64
	outs []outcome
}

// plan groups the appends of a batch by stream; reqs must be grouped by
// stream already (commit sorts them). The first append to a
// stream takes part with its expected Seq as the stream's base; later ones
// take part if they continue it (they expect the Seq the appends before
// them end at), and are deferred to another round otherwise, such as a
// second creator of a new stream. So the appends to one stream in one batch
// commit or fail together, and all behave as if they ran one after another.
func plan(reqs []*appendReq, cache *seqCache) batchPlan {
	var p batchPlan
	p.plan(reqs, cache)
	return p
}

// plan is the function plan, reusing p's slices.
func (p *batchPlan) plan(reqs []*appendReq, cache *seqCache) {
	p.streams, p.base, p.known, p.end = p.streams[:0], p.base[:0], p.known[:0], p.end[:0]
	p.stream, p.first = resize(p.stream, len(reqs)), resize(p.first, len(reqs))
	p.events = 0
	for i, r := range reqs {
		n := uint64(len(r.events))
		s := len(p.streams) - 1
		switch {
		case s < 0 || p.streams[s].id != r.id || p.streams[s].typ != r.typ:
			s++
			p.streams = append(p.streams, streamKey{r.typ, r.id})
			p.base = append(p.base, r.expected)
			p.end = append(p.end, r.expected)
		case r.expected != p.end[s]:
			p.stream[i] = -1
			continue
		}
		p.stream[i] = s
		p.first[i] = p.end[s] + 1
		p.end[s] += n
		p.events += int(n)
	}
	p.known = resize(p.known, len(p.streams))
	if cache != nil {
		cache.knowsAll(p.streams, p.base, p.known)
	} else {
		clear(p.known)
	}
}

// resize returns s with length n, reusing its array if large enough. The
// elements are not cleared.
func resize[T any](s []T, n int) []T {
	if cap(s) < n {
		return make([]T, n)
	}
	return s[:n]
}

// refusal is what the database answered for a stream of a round that took
// no events: its actual last Seq, and whether it was deleted for good (then
// seq is the Seq of its tombstone).
type refusal struct {
	seq   uint64
	final bool
}

// settle decides each append's outcome once the database has answered:
// actual holds the refusals of the streams whose base was wrong or that
// were deleted for good, and lastPos the last of the Positions the round
// took.
func (p *batchPlan) settle(reqs []*appendReq, actual map[int]refusal, lastPos uint64) []outcome {
	p.outs = resize(p.outs, len(reqs))
	outs := p.outs
	clear(outs)
	pos := lastPos - uint64(p.events)
	for i, r := range reqs {
		s := p.stream[i]
		if s < 0 {
			outs[i].deferred = true
			continue
		}
		a, conflicted := actual[s]
		switch {
		case !conflicted:
			pos += uint64(len(r.events))
			outs[i].pos = pos
		case a.final:
			pos += uint64(len(r.events))
			outs[i].err = &eventlog.DeletedError{EntityType: r.typ, EntityID: r.id, Seq: a.seq}
		case r.expected == p.base[s] || r.expected != a.seq:
			// Also the Positions of refused events are skipped: they were
			// taken under the lock, so no later commit can have them.
			pos += uint64(len(r.events))
			outs[i].err = &eventlog.ConflictError{EntityType: r.typ, EntityID: r.id, Expected: r.expected, Actual: a.seq}
		default:
			// It continued an append that conflicted, and it matches the
			// actual last Seq: it may well succeed on its own.
			pos += uint64(len(r.events))
			outs[i].deferred = true
		}
	}
	return outs
}

// maxPayload keeps NOTIFY payloads well below PostgreSQL's limit of 8000
// bytes.
const maxPayload = 4000

// notifyPayload lists the entity types a batch appended to, one a line, for
// the listeners to wake only their subscriptions. An empty payload wakes all
// of them: when the list would be long, or a type name holds a newline.
func notifyPayload(streams []streamKey) string {
	// Rounds usually append to few types, and often to streams sorted by
	// type: look for a type among those found, newest first.
	var some [8]string
	types := some[:0]
	size := 0
	for _, k := range streams {
		if n := len(types); n > 0 && types[n-1] == k.typ || slices.Contains(types, k.typ) {
			continue
		}
		size += len(k.typ) + 1
		if size > maxPayload || strings.ContainsRune(k.typ, '\n') {
			return ""
		}
		types = append(types, k.typ)
	}
	slices.Sort(types)
	return strings.Join(types, "\n")
}

// rollbackConn ends the transaction open on conn, also when the context of
// its work has ended. If that fails, the pool discards the connection, as it
// does any connection released inside a transaction.
func rollbackConn(conn *pgxpool.Conn) {
	if conn.Conn().IsClosed() || conn.Conn().PgConn().TxStatus() == 'I' {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_, _ = conn.Exec(ctx, "rollback")
}

// isConflict reports whether err is a *eventlog.ConflictError. It is a
// function of its own so that the target of errors.As is allocated only for
// an append that failed, not for every append of a round.
func isConflict(err error) bool {
	var ce *eventlog.ConflictError
	return errors.As(err, &ce)
}
