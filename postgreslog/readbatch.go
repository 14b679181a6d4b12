package postgreslog

import (
	"context"
	"fmt"

	"go.opentelemetry.io/otel/trace"

	"github.com/eventsourced-go/eventsourced/eventlog"
	itel "github.com/eventsourced-go/eventsourced/internal/telemetry"
)

// Batched first reads. An entity's recovery starts with the first page of its
// stream, and a service that activates many entities at once (a restart, a
// burst of traffic) would send one query each. ReadEntity hands its first
// page to the Log's readers instead: a reader takes every first read waiting
// in the queue and answers them with one query, readBatchRows rows at most
// per stream; a stream with more continues with queries of its own. While a
// reader queries, the next batch gathers; a lone read is sent at once, as
// before, under its caller's context.

const (
	// readers is how many first-read queries run at once.
	readers = 2
	// readBatchMax is how many streams one first-read query reads.
	readBatchMax = 256
	// readBatchRows is how many rows a first-read query returns per stream
	// when it reads several; recoveries after a snapshot mostly fit.
	readBatchRows = 100
)

// readReq is a first read waiting for a reader.
type readReq struct {
	ctx   context.Context
	typ   string
	id    string
	from  uint64
	reply chan readRes // buffered 1
}

// readRes is a first page: rows at most limit records.
type readRes struct {
	page  []eventlog.Record
	limit int
	err   error
}

// firstPage reads the first page of typ/id from Seq from through the
// readers. limit is the page size the reader used: a page shorter than it
// is the end of the stream.
func (l *Log) firstPage(ctx context.Context, typ, id string, from uint64) ([]eventlog.Record, int, error) {
	r := &readReq{ctx: ctx, typ: typ, id: id, from: from, reply: make(chan readRes, 1)}
	select {
	case l.reads <- r:
	case <-ctx.Done():
		return nil, 0, ctx.Err()
	case <-l.closing:
		return nil, 0, eventlog.ErrClosed
	}
	select {
	case res := <-r.reply:
		return res.page, res.limit, res.err
	case <-ctx.Done():
		return nil, 0, ctx.Err()
	case <-l.done:
		select {
		case res := <-r.reply:
			return res.page, res.limit, res.err
		default:
			return nil, 0, eventlog.ErrClosed
		}
	}
}

// reader answers first reads until Close.
func (l *Log) reader() {
	defer l.wg.Done()
	batch := make([]*readReq, 0, readBatchMax)
	for {
		var first *readReq
		select {
		case first = <-l.reads:
		case <-l.closing:
			l.failReads()
			return
		}
		batch = append(batch[:0], first)
	gather:
		for len(batch) < readBatchMax {
			select {
			case r := <-l.reads:
				batch = append(batch, r)
			default:
				break gather
			}
		}
		l.readBatch(batch)
		clear(batch)
	}
}

// failReads answers every first read still queued with ErrClosed.
func (l *Log) failReads() {
	for {
		select {
		case r := <-l.reads:
			r.reply <- readRes{err: eventlog.ErrClosed}
		default:
			return
		}
	}
}

// readBatch answers the first reads of batch whose callers still wait.
func (l *Log) readBatch(batch []*readReq) {
	live := batch[:0:0]
	for _, r := range batch {
		if err := r.ctx.Err(); err != nil {
			r.reply <- readRes{err: err}
			continue
		}
		live = append(live, r)
	}
	switch len(live) {
	case 0:
		return
	case 1:
		// Alone: the plain query, under its caller's context, and ended
		// by Close like every query of the Log's goroutines.
		r := live[0]
		l.stats.entityReadQueries.Add(1)
		l.stats.entityReads.Add(1)
		ctx, cancel := context.WithCancel(r.ctx)
		stop := context.AfterFunc(l.bgCtx, cancel)
		var span trace.Span
		if l.tel.tracing.On() {
			ctx, span = l.tel.startReads(ctx, live)
		}
		page, err := l.queryRecords(ctx, r.typ, r.id, nil, l.sql.readEntity, r.typ, r.id, int64(r.from), readPage)
		itel.EndSpan(span, err)
		stop()
		cancel()
		r.reply <- readRes{page: page, limit: readPage, err: err}
		return
	}
	ctx, cancel := context.WithTimeout(l.bgCtx, l.cfg.writeTimeout)
	defer cancel()
	types := textArray(len(live), func(i int) string { return live[i].typ })
	ids := textArray(len(live), func(i int) string { return live[i].id })
	froms := make([]int64, len(live))
	for i, r := range live {
		froms[i] = int64(r.from)
	}
	l.stats.entityReadQueries.Add(1)
	l.stats.entityReads.Add(uint64(len(live)))
	var span trace.Span
	if l.tel.tracing.On() {
		ctx, span = l.tel.startReads(ctx, live)
	}
	pages, deleted, err := l.queryFirstPages(ctx, live, types, ids, froms)
	itel.EndSpan(span, err)
	for i, r := range live {
		switch {
		case err != nil:
			r.reply <- readRes{err: err}
		case deleted[i] != nil:
			r.reply <- readRes{err: deleted[i]}
		default:
			r.reply <- readRes{page: pages[i], limit: readBatchRows}
		}
	}
}

// queryFirstPages reads up to readBatchRows records of each stream of reqs
// (types and ids are text[] literals, see textArray) in one query, and returns them by request, with a *DeletedError for each
// stream deleted for good.
func (l *Log) queryFirstPages(ctx context.Context, reqs []*readReq, types, ids string, froms []int64) ([][]eventlog.Record, []*eventlog.DeletedError, error) {
	rows, err := l.pool.Query(ctx, l.sql.readFirstPages, types, ids, froms, readBatchRows)
	if err != nil {
		return nil, nil, err
	}
	defer rows.Close()
	pages := make([][]eventlog.Record, len(reqs))
	deleted := make([]*eventlog.DeletedError, len(reqs))
	var (
		i, seq, pos, rev int64
		md               []byte
	)
	for rows.Next() {
		var r eventlog.Record
		if err := rows.Scan(&i, &seq, &pos, &r.Name, &rev, &r.Data, &md, &r.Time); err != nil {
			return nil, nil, err
		}
		if i < 1 || i > int64(len(reqs)) {
			return nil, nil, fmt.Errorf("first-page query returned stream %d of %d", i, len(reqs))
		}
		req := reqs[i-1]
		if seq == 0 {
			// The stream's tombstone (statements.tombstoneRow).
			deleted[i-1] = &eventlog.DeletedError{EntityType: req.typ, EntityID: req.id, Seq: uint64(pos)}
			continue
		}
		r.EntityType, r.EntityID = req.typ, req.id
		if err := setScanned(&r, seq, pos, rev, md); err != nil {
			return nil, nil, err
		}
		pages[i-1] = append(pages[i-1], r)
	}
	return pages, deleted, rows.Err()
}
