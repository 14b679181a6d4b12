package postgreslog

import (
	"bytes"
	"cmp"
	"context"
	"encoding/binary"
	"fmt"
	"math"
	"slices"
	"strings"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"go.opentelemetry.io/otel/trace"

	itel "github.com/eventsourced-go/eventsourced/internal/telemetry"
)

// defaultCopyThreshold is the size of a round, in events, from which commit
// sends the events with COPY rather than in the one statement that also
// checks them. COPY costs the server less per event but takes more round
// trips, which only large rounds repay.
const defaultCopyThreshold = 256

// commit runs one group-commit round for reqs in one transaction: BEGIN;
// take Positions from the transaction id (and the lock that keeps deletes
// out); check every stream's last Seq and insert the events of the
// streams that match; NOTIFY; COMMIT. Small rounds do all of it in one
// round trip and one statement; large ones check in the first round trip,
// and COPY the events that pass, notify and commit in a second. It returns an error if
// the transaction failed as a whole; nothing of it committed then, unless
// COMMIT itself was lost with the connection, when the outcome is unknown.
func (l *Log) commit(ctx context.Context, w *scratch, reqs []*appendReq, cache *seqCache) (outs []outcome, err error) {
	var span trace.Span
	if l.tel.tracing.On() {
		ctx, span = l.tel.startCommit(ctx, reqs)
		defer func() { itel.EndSpan(span, err) }()
	}
	// The round works on the appends sorted by stream (stably, so the
	// appends to one stream keep their order): the rows then go into the
	// primary key in its order, which costs the server less than random
	// order. It sorts small keys, which sit side by side in memory, rather
	// than the requests, which do not; each key's slot maps the sorted
	// appends back.
	keys := resize(w.keys, len(reqs))
	w.keys = keys
	sortRound(reqs, keys)
	sorted := resize(w.sorted, len(reqs))
	w.sorted = sorted
	for i, k := range keys {
		r := reqs[k.slot]
		r.slot = k.slot
		sorted[i] = r
	}
	p := &w.plan
	p.plan(sorted, cache)

	conn, err := l.pool.Acquire(ctx)
	if err != nil {
		return nil, err
	}
	defer conn.Release()
	var lastPos int64
	if w.actual == nil {
		w.actual = make(map[int]refusal)
	}
	actual := w.actual
	clear(actual)
	if p.events >= l.cfg.copyThreshold {
		err = l.commitCopy(ctx, conn, w, sorted, p, &lastPos, actual)
	} else {
		err = l.commitInsert(ctx, conn, w, sorted, p, &lastPos, actual)
	}
	if err != nil {
		rollbackConn(conn)
		return nil, err
	}
	settled := p.settle(sorted, actual, uint64(lastPos))
	if span != nil || l.tel.metering.On() {
		l.measureCommit(ctx, span, sorted, settled)
	}
	outs = resize(w.outs, len(reqs))
	w.outs = outs
	for i, r := range sorted {
		outs[r.slot] = settled[i]
	}
	// What the round learned about the streams' last Seqs.
	l.cache.mu.Lock()
	defer l.cache.mu.Unlock()
	for s, k := range p.streams {
		if a, refused := actual[s]; refused && !a.final {
			l.cache.learnLocked(k, a.seq)
		}
	}
	for i, r := range sorted {
		if s := p.stream[i]; s >= 0 && settled[i].err == nil && !settled[i].deferred {
			l.cache.learnLocked(p.streams[s], p.first[i]+uint64(len(r.events))-1)
		}
	}
	return outs, nil
}

// measureCommit records what a committed transaction carried: on its
// span, if not nil, and in the metrics, if on.
func (l *Log) measureCommit(ctx context.Context, span trace.Span, reqs []*appendReq, settled []outcome) {
	var appends, conflicts, events int
	for i, r := range reqs {
		switch o := &settled[i]; {
		case o.deferred:
			continue
		case o.err != nil:
			conflicts++
		default:
			events += len(r.events)
		}
		appends++
	}
	if span != nil {
		span.SetAttributes(attrAppends.Int(appends), itel.Events.Int(events), attrConflicts.Int(conflicts))
	}
	if l.tel.metering.On() {
		l.tel.txAppends.Record(ctx, int64(appends), l.tel.backend.Record...)
		l.tel.txEvents.Record(ctx, int64(events), l.tel.backend.Record...)
	}
}

// sortKey is what commit sorts a round's appends by: pfx, then (on a
// tie) stream, then slot, the place of the append in the round. It is
// small, so that the sort moves little memory.
type sortKey struct {
	// pfx holds the 8 bytes of the append's id that follow the prefix all
	// ids of the round share, big-endian, padded with zeros (see
	// sortRound).
	pfx  uint64
	slot int
}

// sortRound fills keys (as long as reqs) with the order of reqs by type,
// id and place in reqs. Ties are broken by place, the arrival, which makes
// the order stable: cheaper than a stable sort on a large round. The ids
// of a round often share a prefix ("order-"), and comparing them byte by
// byte would be most of a sort's work: pfx holds the bytes that follow
// that prefix, so that most comparisons compare two integers. Ids hold no
// NUL byte (eventlog.Validate), so the zeros that pad a short one order it
// before the ids it is a prefix of, as comparing the strings does. A round
// usually appends to one type; if not, the types are compared first.
func sortRound(reqs []*appendReq, keys []sortKey) {
	if len(reqs) == 0 {
		return
	}
	common, typ, oneType := reqs[0].id, reqs[0].typ, true
	for _, r := range reqs[1:] {
		n := min(len(common), len(r.id))
		i := 0
		for i < n && common[i] == r.id[i] {
			i++
		}
		common = common[:i]
		oneType = oneType && r.typ == typ
	}
	for i, r := range reqs {
		rest := r.id[len(common):]
		var v uint64
		for j := range 8 {
			v <<= 8
			if j < len(rest) {
				v |= uint64(rest[j])
			}
		}
		keys[i] = sortKey{pfx: v, slot: i}
	}
	tie := func(a, b sortKey) int {
		if c := strings.Compare(reqs[a.slot].id, reqs[b.slot].id); c != 0 {
			return c
		}
		return cmp.Compare(a.slot, b.slot)
	}
	if oneType {
		slices.SortFunc(keys, func(a, b sortKey) int {
			if a.pfx != b.pfx {
				return cmp.Compare(a.pfx, b.pfx)
			}
			return tie(a, b)
		})
		return
	}
	slices.SortFunc(keys, func(a, b sortKey) int {
		if c := strings.Compare(reqs[a.slot].typ, reqs[b.slot].typ); c != 0 {
			return c
		}
		if a.pfx != b.pfx {
			return cmp.Compare(a.pfx, b.pfx)
		}
		return tie(a, b)
	})
}

// baseOf returns the expected last Seq of stream s as a bigint; one beyond
// the largest bigint cannot match any stream, and becomes -1.
func (p *batchPlan) baseOf(s int) int64 {
	if p.base[s] > math.MaxInt64 {
		return -1
	}
	return int64(p.base[s])
}

// commitInsert is the one-round-trip commit: the statement appendEvents
// checks and inserts, and reports the streams that did not match.
func (l *Log) commitInsert(ctx context.Context, conn *pgxpool.Conn, w *scratch, reqs []*appendReq, p *batchPlan, lastPos *int64, actual map[int]refusal) error {
	n := p.events
	clear(w.data) // what an earlier round of the batch left
	clear(w.meta)
	var (
		types, ids, names = textArrayOf(n), textArrayOf(n), textArrayOf(n)
		bases, streams    = w.bases[:0], w.streams[:0]
		known             = w.known[:0]
		seqs, revs        = w.seqs[:0], w.revs[:0]
		data, meta        = w.data[:0], w.meta[:0]
	)
	for i, r := range reqs {
		s := p.stream[i]
		if s < 0 {
			continue
		}
		base := p.baseOf(s)
		for j := range r.events {
			e := &r.events[j]
			types.add(r.typ)
			ids.add(r.id)
			names.add(e.name)
			bases, streams = append(bases, base), append(streams, int64(s))
			known = append(known, p.known[s])
			seqs, revs = append(seqs, int64(p.first[i]+uint64(j))), append(revs, e.rev)
			data, meta = append(data, e.data), append(meta, e.meta)
		}
	}
	w.bases, w.streams, w.known, w.seqs, w.revs, w.data, w.meta = bases, streams, known, seqs, revs, data, meta
	b := &pgx.Batch{}
	b.Queue("begin")
	b.Queue(l.sql.takePositions, n).QueryRow(func(row pgx.Row) error { return row.Scan(lastPos) })
	b.Queue(l.sql.appendEvents, types.String(), ids.String(), bases, streams, seqs, names.String(), revs, data, meta, known).Query(func(rows pgx.Rows) error {
		return scanActual(rows, actual, func(k int) int { return k })
	})
	if l.cfg.notify {
		b.Queue(l.sql.notify, l.n.channel, notifyPayload(p.streams))
	}
	b.Queue("commit")
	if err := conn.SendBatch(ctx, b).Close(); err != nil {
		if unavailable(err) {
			return fmt.Errorf("commit: connection lost, outcome unknown: %w", err)
		}
		return err
	}
	return nil
}

// commitCopy is the commit of large rounds: the first round trip begins,
// takes Positions and checks the streams (checkStreams); the second COPYs
// the events of the streams that passed, notifies and commits. The shared
// lock of takePositions keeps deletes out from the first round trip to
// the commit; another round that commits events of a checked stream in
// between makes the unique key refuse the COPY, and the batch runs again.
//
// While the streams table is empty, the check of a stream whose base the
// seqCache vouches for cannot fail (see streamLookup): the unique key
// refuses its rows if the stream has moved on. So, until a round finds
// the table holding a row, the first round trip checks only the other
// streams, and asks whether the table is empty; the round that finds it
// is not checks the vouched-for streams in a second round trip. That
// spares most rounds most of the check's parameters, which cost the
// client more than the COPY of the events does.
func (l *Log) commitCopy(ctx context.Context, conn *pgxpool.Conn, w *scratch, reqs []*appendReq, p *batchPlan, lastPos *int64, actual map[int]refusal) error {
	full := l.streamRows.Load()
	check := w.check[:0]
	for s := range p.streams {
		if full || !p.known[s] {
			check = append(check, s)
		}
	}
	w.check = check
	b := &pgx.Batch{}
	b.Queue("begin")
	// Between the round trips the transaction idles while holding the
	// lock deletes wait for, and while it runs, readers by Position read
	// nothing after its Positions: should this process stall (or its
	// connection hang), the server ends the transaction rather than let
	// everyone wait.
	b.Queue(fmt.Sprintf("SET LOCAL idle_in_transaction_session_timeout = %d", l.cfg.writeTimeout.Milliseconds()))
	b.Queue(l.sql.takePositions, p.events).QueryRow(func(row pgx.Row) error { return row.Scan(lastPos) })
	l.queueCheck(b, w, p, check, actual)
	var streamRows bool
	if !full {
		// After the check, so it sees at least what the check saw: rows
		// of the streams table are never deleted.
		b.Queue(l.sql.anyStreamRow).QueryRow(func(row pgx.Row) error { return row.Scan(&streamRows) })
	}
	if err := conn.SendBatch(ctx, b).Close(); err != nil {
		return fmt.Errorf("check streams: %w", err)
	}
	if streamRows {
		l.streamRows.Store(true)
		check = w.check[:0]
		for s := range p.streams {
			if p.known[s] {
				check = append(check, s)
			}
		}
		w.check = check
		b = &pgx.Batch{}
		l.queueCheck(b, w, p, check, actual)
		if err := conn.SendBatch(ctx, b).Close(); err != nil {
			return fmt.Errorf("check streams: %w", err)
		}
	}

	// The events of the streams that passed, with the Positions the plan
	// gives them; those of refused streams leave their Positions unused.
	buf := &w.copyBuf
	buf.Reset()
	cw := copyWriter{buf: buf}
	cw.header()
	pos := *lastPos - int64(p.events)
	rows := 0
	for i, r := range reqs {
		s := p.stream[i]
		if s < 0 {
			continue
		}
		if _, refused := actual[s]; refused {
			pos += int64(len(r.events))
			continue
		}
		for j := range r.events {
			pos++
			e := &r.events[j]
			cw.row(r.typ, r.id, int64(p.first[i]+uint64(j)), pos, e)
			rows++
		}
	}
	cw.trailer()
	if rows > 0 {
		// COPY, NOTIFY and COMMIT go in one round trip, as one simple query
		// of three statements: the server reads the rows of the COPY, then
		// runs the others, unless one failed. That spares the round a
		// round trip, and readers by Position, which wait for it to end,
		// the wait.
		sql := l.sql.copyEvents + ";\n"
		if l.cfg.notify {
			sql += "SELECT pg_notify(" + quoteLiteral(l.n.channel) + ", " + quoteLiteral(notifyPayload(p.streams)) + ");\n"
		}
		sql += "COMMIT"
		if _, err := conn.Conn().PgConn().CopyFrom(ctx, buf, sql); err != nil {
			if unavailable(err) {
				return fmt.Errorf("copy events and commit: connection lost, outcome unknown: %w", err)
			}
			return fmt.Errorf("copy events and commit: %w", err)
		}
		return nil
	}
	// Every stream was refused: nothing to insert or notify.
	if _, err := conn.Exec(ctx, "commit"); err != nil {
		if unavailable(err) {
			return fmt.Errorf("commit: connection lost, outcome unknown: %w", err)
		}
		return fmt.Errorf("commit: %w", err)
	}
	return nil
}

// quoteLiteral returns s as an SQL string constant, escaped so that it
// means s whatever standard_conforming_strings says. s has no NUL byte.
func quoteLiteral(s string) string {
	if !strings.ContainsAny(s, `'\`) {
		return "E'" + s + "'"
	}
	var b strings.Builder
	b.WriteString("E'")
	for i := 0; i < len(s); i++ {
		if c := s[i]; c == '\'' || c == '\\' {
			b.WriteByte('\\')
		}
		b.WriteByte(s[i])
	}
	b.WriteByte('\'')
	return b.String()
}

// queueCheck queues checkStreams for the streams of p listed in check,
// which reads the refusals into actual. It queues nothing if check is
// empty.
func (l *Log) queueCheck(b *pgx.Batch, w *scratch, p *batchPlan, check []int, actual map[int]refusal) {
	if len(check) == 0 {
		return
	}
	bases, known := resize(w.bases, len(check)), resize(w.known, len(check))
	w.bases, w.known = bases, known
	for i, s := range check {
		bases[i], known[i] = p.baseOf(s), p.known[s]
	}
	types := textArray(len(check), func(i int) string { return p.streams[check[i]].typ })
	ids := textArray(len(check), func(i int) string { return p.streams[check[i]].id })
	b.Queue(l.sql.checkStreams, types, ids, bases, known).Query(func(rows pgx.Rows) error {
		return scanActual(rows, actual, func(k int) int { return check[k-1] })
	})
}

// scanActual reads (stream ordinal, actual last Seq, deleted for good) rows
// into actual, at the index of each ordinal that stream gives.
func scanActual(rows pgx.Rows, actual map[int]refusal, stream func(k int) int) error {
	var k, a int64
	var f bool
	_, err := pgx.ForEachRow(rows, []any{&k, &a, &f}, func() error {
		actual[stream(int(k))] = refusal{seq: uint64(a), final: f}
		return nil
	})
	return err
}

// copyWriter writes events in PostgreSQL's binary COPY format, the columns
// of copyEvents: entity_type, entity_id, seq, position, name, revision,
// data, metadata. Writing it by hand avoids the reflection and the extra
// round trip (to learn the column types) of pgx.Conn.CopyFrom.
type copyWriter struct{ buf *bytes.Buffer }

func (w copyWriter) header() {
	w.buf.WriteString("PGCOPY\n\xff\r\n\x00")
	w.int32(0) // flags
	w.int32(0) // header extension length
}

func (w copyWriter) trailer() { w.int16(-1) }

func (w copyWriter) row(typ, id string, seq, pos int64, e *reqEvent) {
	w.int16(8)
	w.text(typ)
	w.text(id)
	w.int64(seq)
	w.int64(pos)
	w.text(e.name)
	w.int64(e.rev)
	w.int32(int32(len(e.data)))
	w.buf.Write(e.data)
	if e.meta == nil {
		w.int32(-1) // NULL
	} else {
		// jsonb's binary format: a version byte, then the JSON text.
		w.int32(int32(len(e.meta) + 1))
		w.buf.WriteByte(1)
		w.buf.Write(e.meta)
	}
}

func (w copyWriter) text(s string) {
	w.int32(int32(len(s)))
	w.buf.WriteString(s)
}

func (w copyWriter) int64(v int64) {
	var b [12]byte
	binary.BigEndian.PutUint32(b[:4], 8)
	binary.BigEndian.PutUint64(b[4:], uint64(v))
	w.buf.Write(b[:])
}

func (w copyWriter) int32(v int32) {
	var b [4]byte
	binary.BigEndian.PutUint32(b[:], uint32(v))
	w.buf.Write(b[:])
}

func (w copyWriter) int16(v int16) {
	var b [2]byte
	binary.BigEndian.PutUint16(b[:], uint16(v))
	w.buf.Write(b[:])
}

// textArrayBuilder builds the text form of a PostgreSQL text[] literal,
// which pgx sends as is for a text[] parameter: one string per array
// instead of a boxed value per element, as a []string parameter costs.
// Every element is quoted, so none reads as NULL, and '"' and '\' are
// escaped; types, ids and names have no NUL byte (eventlog.Validate).
type textArrayBuilder struct{ b strings.Builder }

// textArrayOf returns a builder with room for about n short elements.
func textArrayOf(n int) *textArrayBuilder {
	a := new(textArrayBuilder)
	a.b.Grow(2 + n*24)
	a.b.WriteByte('{')
	return a
}

// add appends the element s.
func (a *textArrayBuilder) add(s string) {
	if a.b.Len() > 1 {
		a.b.WriteByte(',')
	}
	a.b.WriteByte('"')
	if !strings.ContainsAny(s, `"\`) {
		a.b.WriteString(s)
	} else {
		for i := 0; i < len(s); i++ {
			if c := s[i]; c == '"' || c == '\\' {
				a.b.WriteByte('\\')
			}
			a.b.WriteByte(s[i])
		}
	}
	a.b.WriteByte('"')
}

// String returns the literal, closed.
func (a *textArrayBuilder) String() string {
	a.b.WriteByte('}')
	return a.b.String()
}

// textArray returns the text[] literal of the n elements at(0) ... at(n-1).
func textArray(n int, at func(i int) string) string {
	a := textArrayOf(n)
	for i := range n {
		a.add(at(i))
	}
	return a.String()
}
