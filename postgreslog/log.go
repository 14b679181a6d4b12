package postgreslog

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"iter"
	"math"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/eventsourced-go/eventsourced/eventlog"
	"github.com/eventsourced-go/eventsourced/internal/errclass"
	"github.com/eventsourced-go/eventsourced/internal/rounds"
	itel "github.com/eventsourced-go/eventsourced/internal/telemetry"
)

// Compile-time checks that Log provides the contract and its optional
// capabilities.
var (
	_ eventlog.Log           = (*Log)(nil)
	_ eventlog.Deleter       = (*Log)(nil)
	_ eventlog.StreamDeleter = (*Log)(nil)
	_ eventlog.IDLister      = (*Log)(nil)
	_ eventlog.TypeLister    = (*Log)(nil)
	_ eventlog.Closer        = (*Log)(nil)
	_ eventlog.AllReader     = (*Log)(nil)
	_ eventlog.AsyncAppender = (*Log)(nil)
	_ eventlog.RoundAppender = (*Log)(nil)
)

// readPage is how many rows one read query returns. Reads copy a page and
// release the connection before the consumer sees it, so a slow consumer
// never holds a pooled connection.
const readPage = 1000

// Log is an [eventlog.Log] on PostgreSQL. It also implements
// [eventlog.Deleter], [eventlog.StreamDeleter], [eventlog.IDLister],
// [eventlog.TypeLister], [eventlog.AllReader], [eventlog.AsyncAppender],
// [eventlog.RoundAppender] and [eventlog.Closer]. Create it
// with [New], create its tables once with [Setup], and [Log.Close] it
// when done; closing the Log does not close the pool.
type Log struct {
	pool *pgxpool.Pool
	cfg  *config
	n    names
	sql  statements

	// queue carries appends to the group-commit workers.
	queue *appendQueue
	// reads carries first reads of streams to the readers (readbatch.go).
	reads chan *readReq
	// closing is closed by Close: stop taking appends and subscriptions.
	closing chan struct{}
	// done is closed when Close has waited for every goroutine of the Log.
	done chan struct{}
	// bgCtx ends when Close starts; the listener runs under it.
	bgCtx    context.Context
	bgCancel context.CancelFunc
	// wg counts the workers and the listener.
	wg sync.WaitGroup
	// closed is set, under mu, by Close; read without the lock on fast paths.
	closed atomic.Bool

	hub   *hub
	cache *seqCache
	// streamRows is set once the streams table is known to hold a row
	// (see commitCopy); such rows are never deleted.
	streamRows atomic.Bool
	tel        logTelemetry

	mu        sync.Mutex // guards listening and the closing of the Log
	listening bool       // the listener goroutine was started

	// listenerPID is the server process id of the listener's connection, 0
	// while it has none; tests use it to cut the connection.
	listenerPID atomic.Uint32

	stats struct {
		batches, appends, events, conflicts, failures, retries atomic.Uint64
		entityReads, entityReadQueries                         atomic.Uint64
	}
}

// Stats counts what a [Log] has done since [New]. An append is counted
// before its caller gets its answer, so once Append returns, Stats includes
// it and its batch.
type Stats struct {
	// Batches is the number of group-commit transactions that committed
	// appends.
	Batches uint64
	// Appends and Events count the committed appends and their events.
	Appends uint64
	Events  uint64
	// Conflicts counts appends refused with an *eventlog.ConflictError.
	// Appends refused with an *eventlog.DeletedError (the stream was
	// deleted for good) count neither here nor in Failures.
	Conflicts uint64
	// Failures counts appends that failed otherwise.
	Failures uint64
	// Retries counts group-commit transactions run again because the
	// server aborted them (deadlock, serialization failure) or the unique
	// key refused a row that a writer around this Log had inserted.
	Retries uint64
	// EntityReads counts the first pages ReadEntity read (one per read
	// that got that far), and EntityReadQueries the queries that read
	// them: first reads that wait together share one query.
	EntityReads       uint64
	EntityReadQueries uint64
}

// New returns a Log storing events in the tables the options name, through
// pool. It does not touch the database: run [Setup] (it is idempotent) with
// the same table options before the first append. New starts the
// group-commit workers and the readers that batch first reads of streams;
// [Log.Close] stops them.
func New(pool *pgxpool.Pool, opts ...Option) (*Log, error) {
	cfg, err := newConfig(forLog, opts)
	if err != nil {
		return nil, err
	}
	if pool == nil {
		return nil, fmt.Errorf("%w: New with a nil pool", ErrInvalidOption)
	}
	n := resolveNames(cfg)
	l := &Log{
		pool:    pool,
		cfg:     cfg,
		n:       n,
		sql:     newStatements(n),
		queue:   newAppendQueue(cfg.maxBatch, maxBatchBytes, 4*cfg.maxBatch),
		reads:   make(chan *readReq, 4*readBatchMax),
		closing: make(chan struct{}),
		done:    make(chan struct{}),
		hub:     newHub(),
		cache:   newSeqCache(defaultSeqCacheSize),
	}
	l.initTelemetry()
	l.bgCtx, l.bgCancel = context.WithCancel(context.Background())
	l.wg.Add(cfg.concurrency + readers)
	for range cfg.concurrency {
		go l.worker()
	}
	for range readers {
		go l.reader()
	}
	return l, nil
}

// SchemaVersion returns the schema version recorded in the database, 0 if
// [Setup] never ran.
func (l *Log) SchemaVersion(ctx context.Context) (int, error) {
	if l.closed.Load() {
		return 0, eventlog.ErrClosed
	}
	return schemaVersion(ctx, l.pool, l.n)
}

// Stats returns the Log's counters.
func (l *Log) Stats() Stats {
	return Stats{
		Batches:           l.stats.batches.Load(),
		Appends:           l.stats.appends.Load(),
		Events:            l.stats.events.Load(),
		Conflicts:         l.stats.conflicts.Load(),
		Failures:          l.stats.failures.Load(),
		Retries:           l.stats.retries.Load(),
		EntityReads:       l.stats.entityReads.Load(),
		EntityReadQueries: l.stats.entityReadQueries.Load(),
	}
}

// Append implements [eventlog.Log]. Appends from all goroutines go through
// the group-commit workers, which commit many of them in one transaction;
// see the package documentation. If ctx ends while the append's transaction
// is in flight, Append returns an error matching ctx.Err() and the append
// may or may not have committed.
func (l *Log) Append(ctx context.Context, typ, id string, expected uint64, events ...eventlog.Event) (uint64, error) {
	if l.tel.metering.On() {
		return l.appendMeasured(ctx, typ, id, expected, events)
	}
	return l.append(ctx, typ, id, expected, events)
}

// AppendAsync implements [eventlog.AsyncAppender]: Append whose caller
// does not wait. The append joins the group-commit queue (waiting for room
// in it no longer than ctx allows) and the worker that commits it calls
// done.
func (l *Log) AppendAsync(ctx context.Context, typ, id string, expected uint64, events []eventlog.Event, done func(pos uint64, err error)) {
	l.appendAsync(ctx, typ, id, expected, events, done, false)
}

// AppendRound implements [eventlog.RoundAppender]: AppendAsync that
// returns a channel shared by up to 64 appends that one worker will commit
// in one transaction (a segment of the queue: see appendQueue), closed once
// it answered every one of them. One close wakes their callers instead of
// one wake-up per append.
func (l *Log) AppendRound(ctx context.Context, typ, id string, expected uint64, events []eventlog.Event, done func(pos uint64, err error)) <-chan struct{} {
	return l.appendAsync(ctx, typ, id, expected, events, done, true)
}

// appendAsync is AppendAsync, and AppendRound if round is set; it returns
// the round's channel, nil if round is not set.
func (l *Log) appendAsync(ctx context.Context, typ, id string, expected uint64, events []eventlog.Event, done func(pos uint64, err error), round bool) <-chan struct{} {
	if l.tel.metering.On() {
		start, inner := time.Now(), done
		done = func(pos uint64, err error) {
			l.tel.appendTime.Record(ctx, time.Since(start).Seconds(), l.tel.byOutcome[itel.AppendOutcome(err)].Record...)
			inner(pos, err)
		}
	}
	req, err := l.newAppend(ctx, typ, id, expected, events)
	if err != nil {
		done(0, err)
		return rounds.Closed
	}
	req.done = done
	ch, err := l.queue.push(ctx, l.closing, req, round)
	if err != nil {
		req.release() // it never reached a worker
		done(0, err)
		return rounds.Closed
	}
	return ch
}

// newAppend checks an append and makes its request.
func (l *Log) newAppend(ctx context.Context, typ, id string, expected uint64, events []eventlog.Event) (*appendReq, error) {
	if err := eventlog.Validate(typ, id, events); err != nil {
		return nil, err
	}
	if len(events) > l.cfg.maxAppendEvents {
		return nil, errclass.New(fmt.Sprintf("postgreslog: append to %s/%s: %d events, more than the limit of %d (WithMaxAppendEvents)", eventlog.FormatID(typ), eventlog.FormatID(id), len(events), l.cfg.maxAppendEvents), nil, ErrTooLarge, eventlog.ErrInvalid)
	}
	if l.closed.Load() {
		return nil, eventlog.ErrClosed
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	return newAppendReq(ctx, typ, id, expected, events, l.cfg.maxAppendBytes)
}

func (l *Log) append(ctx context.Context, typ, id string, expected uint64, events []eventlog.Event) (uint64, error) {
	req, err := l.newAppend(ctx, typ, id, expected, events)
	if err != nil {
		return 0, err
	}
	req.reply = replies.Get().(chan appendResult)
	if _, err := l.queue.push(ctx, l.closing, req, false); err != nil {
		return 0, err
	}
	select {
	case res := <-req.reply:
		// The worker touches neither once it has replied.
		replies.Put(req.reply)
		req.release()
		return res.pos, res.err
	case <-ctx.Done():
		return 0, fmt.Errorf("postgreslog: append %s/%s: gave up waiting for the commit, outcome unknown: %w", eventlog.FormatID(typ), eventlog.FormatID(id), ctx.Err())
	case <-l.done:
		// The workers are gone; a reply, if any, is already buffered.
		select {
		case res := <-req.reply:
			return res.pos, res.err
		default:
			return 0, eventlog.ErrClosed
		}
	}
}

// LastSeq implements [eventlog.Log]: the stream's highest Seq, or the
// highest deleted one if [Log.DeleteTo] removed everything above it.
func (l *Log) LastSeq(ctx context.Context, typ, id string) (uint64, error) {
	if err := eventlog.ValidateStream(typ, id); err != nil {
		return 0, err
	}
	if l.closed.Load() {
		return 0, eventlog.ErrClosed
	}
	if err := ctx.Err(); err != nil {
		return 0, err
	}
	var last int64
	err := l.pool.QueryRow(ctx, l.sql.lastSeq, typ, id).Scan(&last)
	switch {
	case errors.Is(err, pgx.ErrNoRows):
		return 0, nil
	case err != nil:
		return 0, l.wrap(ctx, err, "last seq of %s/%s", eventlog.FormatID(typ), eventlog.FormatID(id))
	}
	return uint64(last), nil
}

// ReadEntity implements [eventlog.Log]. It reads a page of events at a time
// and ends with the first page that is not full. The query that finds a
// stream deleted for good empty also finds its tombstone, so telling it
// from a stream that never existed costs no extra round trip.
func (l *Log) ReadEntity(ctx context.Context, typ, id string, from uint64) iter.Seq2[eventlog.Record, error] {
	return func(yield func(eventlog.Record, error) bool) {
		if err := eventlog.ValidateStream(typ, id); err != nil {
			yield(eventlog.Record{}, err)
			return
		}
		from = max(from, 1)
		var lastSeen uint64 // the Seq of the last record of the previous page
		for first := true; ; first = false {
			if err := l.readErr(ctx); err != nil {
				yield(eventlog.Record{}, err)
				return
			}
			if from > math.MaxInt64 {
				return
			}
			var page []eventlog.Record
			var err error
			limit := readPage
			if first {
				// Through the readers, which read the first pages of
				// many streams at once (readbatch.go).
				page, limit, err = l.firstPage(ctx, typ, id, from)
			} else {
				page, err = l.queryRecords(ctx, typ, id, nil, l.sql.readEntity, typ, id, int64(from), readPage)
			}
			var deleted *eventlog.DeletedError
			if errors.As(err, &deleted) {
				yield(eventlog.Record{}, deleted)
				return
			}
			if err != nil {
				yield(eventlog.Record{}, l.wrap(ctx, err, "read %s/%s from seq %d", eventlog.FormatID(typ), eventlog.FormatID(id), from))
				return
			}
			for i := range page {
				if err := ctx.Err(); err != nil {
					yield(eventlog.Record{}, err)
					return
				}
				if !yield(page[i], nil) {
					return
				}
			}
			if len(page) < limit {
				// The read reached the end of the stream.
				switch {
				case len(page) > 0:
					l.cache.learn(streamKey{typ, id}, page[len(page)-1].Seq)
				case from == 1:
					l.cache.learn(streamKey{typ, id}, 0)
				case lastSeen > 0:
					l.cache.learn(streamKey{typ, id}, lastSeen)
				}
				return
			}
			from = page[len(page)-1].Seq + 1
			lastSeen = from - 1
		}
	}
}

// ReadType implements [eventlog.Log]. It reads only the events of
// transactions that ended before its query's snapshot (see the package
// documentation), so every page it reads is a gap-free continuation of the
// last. It ends with the first page that is not full, once it has read
// every event committed before that page's query: those that a
// transaction still running holds back it waits for (by its ctx).
func (l *Log) ReadType(ctx context.Context, typ string, after uint64) iter.Seq2[eventlog.Record, error] {
	return l.readType(ctx, typ, after, false)
}

// Subscribe implements [eventlog.Log]. After the current end it waits for a
// notification that its type has new events (see [WithNotify]), at most the
// poll interval (see [WithPollInterval]), and reads again. A database error
// ends the subscription with that error; [Log.Close] ends it with
// [eventlog.ErrClosed].
func (l *Log) Subscribe(ctx context.Context, typ string, after uint64) iter.Seq2[eventlog.Record, error] {
	return l.readType(ctx, typ, after, true)
}

func (l *Log) readType(ctx context.Context, typ string, after uint64, live bool) iter.Seq2[eventlog.Record, error] {
	return func(yield func(eventlog.Record, error) bool) {
		if err := eventlog.ValidateType(typ); err != nil {
			yield(eventlog.Record{}, err)
			return
		}
		l.pages(ctx, after, live, yield, func() <-chan struct{} { return l.hub.wait(typ) },
			func(after uint64) (page []eventlog.Record, held uint64, err error) {
				page, err = l.queryRecords(ctx, typ, "", &held, l.sql.readType, typ, int64(after), readPage)
				if err != nil {
					return nil, 0, l.wrap(ctx, err, "read type %s after position %d", typ, after)
				}
				return page, held, nil
			})
	}
}

// pages yields the records read pages after after, in Position order:
// every page read is a gap-free continuation of the last (see the package
// documentation).
//
// read reports, besides a page, the largest Position of the events it may
// not read yet, committed but held back by a transaction still running
// (0 if none). After a page that is not full:
//
//   - Unless live, pages ends, but leaves none of the events committed
//     before that page behind: while that page's read reported events held
//     back, it reads again until it is past the largest of them or none
//     is held back.
//   - Live, it waits for the channel wait returns (taken before each read,
//     so an append that commits after the read cannot go unnoticed) or the
//     poll interval, and reads again.
//
// While events are held back it reads again sooner, whether live or not,
// since the transaction holding them back may end without notifying
// anyone: after heldFirst once the read made progress, doubling up to
// heldMax (or the poll interval, if shorter) while it makes none. An error
// is yielded once, as the last element.
func (l *Log) pages(ctx context.Context, after uint64, live bool, yield func(eventlog.Record, error) bool,
	wait func() <-chan struct{}, read func(after uint64) ([]eventlog.Record, uint64, error)) {
	if live && l.cfg.notify {
		l.startListener()
	}
	var timer *time.Timer
	defer func() {
		if timer != nil {
			timer.Stop()
		}
	}()
	var heldWait time.Duration
	var until uint64 // unless live: the largest Position to read up to
	for {
		if err := l.readErr(ctx); err != nil {
			yield(eventlog.Record{}, err)
			return
		}
		var wake <-chan struct{}
		if live {
			wake = wait()
		}
		var page []eventlog.Record
		var held uint64
		if after <= math.MaxInt64 {
			var err error
			if page, held, err = read(after); err != nil {
				yield(eventlog.Record{}, err)
				return
			}
		}
		for i := range page {
			if err := ctx.Err(); err != nil {
				yield(eventlog.Record{}, err)
				return
			}
			if !yield(page[i], nil) {
				return
			}
			after = page[i].Position
		}
		if len(page) == readPage {
			continue
		}
		if !live {
			if until == 0 {
				until = held // the end as of the first page not full
			}
			if held == 0 || after >= until {
				return
			}
		}
		pause := l.cfg.pollInterval
		switch {
		case held == 0:
			heldWait = 0
		case len(page) > 0:
			// Progress: whatever held these events back may be gone.
			heldWait = heldFirst
			pause = min(heldWait, pause)
		default:
			heldWait = min(max(2*heldWait, heldFirst), heldMax, pause)
			pause = heldWait
		}
		if timer == nil {
			timer = time.NewTimer(pause)
		} else {
			timer.Reset(pause)
		}
		select {
		case <-ctx.Done():
			yield(eventlog.Record{}, ctx.Err())
			return
		case <-wake:
		case <-timer.C:
		}
	}
}

// DeleteTo implements [eventlog.Deleter]. In the same transaction it records
// the highest Seq it deleted in the streams table, so LastSeq and the Seq
// check of appends do not go down. The transaction first takes the lock
// that every group-commit round holds in share mode: it runs between the
// rounds in flight (waiting for them to commit) and the next, never inside
// one.
func (l *Log) DeleteTo(ctx context.Context, typ, id string, seq uint64) error {
	if err := eventlog.ValidateStream(typ, id); err != nil {
		return err
	}
	if l.closed.Load() {
		return eventlog.ErrClosed
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	if seq == 0 {
		return nil
	}
	// One round trip: the lock that keeps rounds out (see lockPositions),
	// then the delete, in one transaction.
	b := &pgx.Batch{}
	b.Queue("begin")
	b.Queue(l.sql.lockPositions)
	b.Queue(l.sql.deleteTo, typ, id, int64(min(seq, math.MaxInt64)))
	b.Queue("commit")
	if err := l.pool.SendBatch(ctx, b).Close(); err != nil {
		return l.wrap(ctx, err, "delete %s/%s to seq %d", eventlog.FormatID(typ), eventlog.FormatID(id), seq)
	}
	// It may have written the first row of the streams table; the next
	// round would find out, with an extra round trip.
	l.streamRows.Store(true)
	return nil
}

// DeleteStream implements [eventlog.StreamDeleter]. One transaction takes
// the lock that every group-commit round holds in share mode, so it runs
// between rounds, then in one statement deletes the stream's events and
// records the tombstone in the stream's row of the streams table (its Seq,
// and whether it is final). The rounds after it check that row along with
// the stream's last Seq: an append to a stream deleted for good gets a
// [*eventlog.DeletedError], found on the path that refuses conflicts, at no
// cost to other appends. The lock makes appends of the whole Log wait for
// the delete, one round trip plus the deletion of the stream's events.
func (l *Log) DeleteStream(ctx context.Context, typ, id string, reuse bool) (uint64, error) {
	if err := eventlog.ValidateStream(typ, id); err != nil {
		return 0, err
	}
	if l.closed.Load() {
		return 0, eventlog.ErrClosed
	}
	if err := ctx.Err(); err != nil {
		return 0, err
	}
	var seq int64
	var wasFinal bool
	b := &pgx.Batch{}
	b.Queue("begin")
	b.Queue(l.sql.lockPositions)
	b.Queue(l.sql.deleteStream, typ, id, !reuse).QueryRow(func(row pgx.Row) error { return row.Scan(&seq, &wasFinal) })
	b.Queue("commit")
	conn, err := l.pool.Acquire(ctx)
	if err == nil {
		err = conn.SendBatch(ctx, b).Close()
		if err != nil {
			rollbackConn(conn)
		}
		conn.Release()
	}
	if err != nil {
		return 0, l.wrap(ctx, err, "delete stream %s/%s", eventlog.FormatID(typ), eventlog.FormatID(id))
	}
	l.streamRows.Store(true) // as in DeleteTo
	if wasFinal && reuse {
		return 0, &eventlog.DeletedError{EntityType: typ, EntityID: id, Seq: uint64(seq)}
	}
	return uint64(seq), nil
}

// EntityIDs implements [eventlog.IDLister]. It lists every entity of the
// type that has events or had them deleted with [Log.DeleteTo], a page at
// a time in the database's order of ids, skipping through the primary key
// rather than reading every event. An entity deleted with
// [Log.DeleteStream] is not listed until it has a new event.
func (l *Log) EntityIDs(ctx context.Context, typ string) iter.Seq2[string, error] {
	return func(yield func(string, error) bool) {
		if err := eventlog.ValidateType(typ); err != nil {
			yield("", err)
			return
		}
		after := ""
		for {
			if err := l.readErr(ctx); err != nil {
				yield("", err)
				return
			}
			rows, err := l.pool.Query(ctx, l.sql.entityIDs, typ, after, readPage)
			var ids []string
			if err == nil {
				ids, err = pgx.CollectRows(rows, pgx.RowTo[string])
			}
			if err != nil {
				yield("", l.wrap(ctx, err, "list ids of type %s", typ))
				return
			}
			for _, id := range ids {
				if err := ctx.Err(); err != nil {
					yield("", err)
					return
				}
				if !yield(id, nil) {
					return
				}
			}
			if len(ids) < readPage {
				return
			}
			after = ids[len(ids)-1]
		}
	}
}

// EntityTypes implements [eventlog.TypeLister] with one query that skips
// from type to type through the (entity_type, position) index, one index
// probe per type. It lists the types that have events; one whose events
// were all deleted is not listed.
func (l *Log) EntityTypes(ctx context.Context) iter.Seq2[string, error] {
	return func(yield func(string, error) bool) {
		if err := l.readErr(ctx); err != nil {
			yield("", err)
			return
		}
		rows, err := l.pool.Query(ctx, l.sql.entityTypes)
		var types []string
		if err == nil {
			types, err = pgx.CollectRows(rows, pgx.RowTo[string])
		}
		if err != nil {
			yield("", l.wrap(ctx, err, "list entity types"))
			return
		}
		for _, typ := range types {
			if err := ctx.Err(); err != nil {
				yield("", err)
				return
			}
			if !yield(typ, nil) {
				return
			}
		}
	}
}

// Close implements [eventlog.Closer]. It stops taking appends (they fail with
// [eventlog.ErrClosed]), lets the transactions in flight finish, fails the
// appends still queued with ErrClosed, ends subscriptions with ErrClosed and
// stops the listener. It does not close the pool. A second Close returns
// ErrClosed.
func (l *Log) Close() error {
	l.mu.Lock()
	if l.closed.Load() {
		l.mu.Unlock()
		return eventlog.ErrClosed
	}
	l.closed.Store(true)
	l.queue.close() // the appends queued are failed by the workers
	close(l.closing)
	l.bgCancel()
	l.mu.Unlock()
	l.hub.close()
	l.wg.Wait()
	close(l.done)
	_ = l.tel.registration.Unregister()
	return nil
}

// readErr returns the error a read must end with before its next query, if
// any.
func (l *Log) readErr(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if l.closed.Load() {
		return eventlog.ErrClosed
	}
	return nil
}

// wrap adds context to a database error of an operation. If ctx ended, the
// driver's error is only a symptom and ctx.Err() is what the caller checks;
// if the Log was closed meanwhile, ErrClosed is.
func (l *Log) wrap(ctx context.Context, err error, format string, args ...any) error {
	what := fmt.Sprintf(format, args...)
	if ctxErr := ctx.Err(); ctxErr != nil {
		return fmt.Errorf("postgreslog: %s: %w", what, ctxErr)
	}
	if l.closed.Load() {
		return fmt.Errorf("postgreslog: %s: %w", what, eventlog.ErrClosed)
	}
	return fmt.Errorf("postgreslog: %s: %w", what, translate(err))
}

// queryRecords runs a read query and returns its rows as records. id is the
// stream's id for ReadEntity, whose query does not select it; "" for
// ReadType, whose does. typ is "" for ReadAll, whose query selects the
// type too. held, for reads by Position (see gatedRead), receives their
// marker row's Position: the largest of the events held back.
func (l *Log) queryRecords(ctx context.Context, typ, id string, held *uint64, sql string, args ...any) ([]eventlog.Record, error) {
	rows, err := l.pool.Query(ctx, sql, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []eventlog.Record
	var (
		seq, pos, rev int64
		md            []byte
	)
	for rows.Next() {
		r := eventlog.Record{EntityType: typ, EntityID: id}
		var err error
		switch {
		case typ == "":
			err = rows.Scan(&r.EntityType, &r.EntityID, &seq, &pos, &r.Name, &rev, &r.Data, &md, &r.Time)
		case id == "":
			err = rows.Scan(&r.EntityID, &seq, &pos, &r.Name, &rev, &r.Data, &md, &r.Time)
		default:
			err = rows.Scan(&seq, &pos, &r.Name, &rev, &r.Data, &md, &r.Time)
		}
		if err != nil {
			return nil, err
		}
		if seq == 0 && id != "" {
			// The stream's tombstone (statements.tombstoneRow): it was
			// deleted for good and has no events.
			return nil, &eventlog.DeletedError{EntityType: typ, EntityID: id, Seq: uint64(pos)}
		}
		if seq == 0 && held != nil {
			*held = uint64(pos) // gatedRead's marker
			continue
		}
		if err := setScanned(&r, seq, pos, rev, md); err != nil {
			return nil, err
		}
		out = append(out, r)
	}
	return out, rows.Err()
}

// setScanned fills in the fields of r that a query returns as other types.
func setScanned(r *eventlog.Record, seq, pos, rev int64, md []byte) error {
	r.Seq, r.Position, r.Revision = uint64(seq), uint64(pos), uint32(rev)
	if len(md) > 0 {
		if err := json.Unmarshal(md, &r.Metadata); err != nil {
			return fmt.Errorf("metadata of %s/%s seq %d: %w", eventlog.FormatID(r.EntityType), eventlog.FormatID(r.EntityID), seq, err)
		}
	}
	return nil
}

// heldFirst is how soon a read by Position reads again after a read that
// found events held back by a transaction still running (see pages);
// while they stay held back and it reads nothing, the pause doubles up to
// heldMax (or the poll interval, if shorter).
const (
	heldFirst = 2 * time.Millisecond
	heldMax   = 100 * time.Millisecond
)
