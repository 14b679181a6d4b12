package postgreslog

import "fmt"

// statements is the SQL of one Log or Store, built once from its table
// names. Each text stays the same for the life of the Log, so pgx prepares
// it once per connection.
type statements struct {
	// Group commit, all in one round trip: take Positions (and the lock
	// that keeps deletes out), then check and insert in one statement.
	takePositions string
	appendEvents  string
	notify        string
	// Large rounds check first, then COPY.
	checkStreams string
	anyStreamRow string
	copyEvents   string

	lastSeq    string
	readEntity string
	// readFirstPages reads the first page of many streams at once.
	readFirstPages string
	readType       string
	readAll        string
	readAllTypes   string
	deleteTo       string
	lockPositions  string
	deleteStream   string
	entityIDs      string
	entityTypes    string

	saveSnapshot    string
	trimSnapshots   string
	loadSnapshot    string
	deleteSnapshots string
	listSnapshots   string
}

func newStatements(n names) statements {
	return statements{
		// A round's Positions are its transaction id times 2^positionBits
		// plus 1, 2, 3 ...; this returns the last of $1 of them. The
		// shared lock keeps deletes out while the round runs (see
		// lockPositions); rounds do not wait for each other. The condition
		// on the meta row's xid_positions column (schema version 4) makes
		// a round on tables an older release still writes with its
		// Position counter fail instead of mixing both kinds of Positions.
		takePositions: fmt.Sprintf(`SELECT %s + $1 FROM pg_advisory_xact_lock_shared(%d), %s m WHERE m.id = 1 AND m.xid_positions`, txBase, n.positionsLock, n.meta),
		// One statement checks the streams of the batch and inserts the
		// events of those whose last Seq is the expected one. It runs after
		// takePositions, so no delete can commit until it does. Another
		// round may commit events of the same stream meanwhile: then the
		// unique key refuses this one's rows, it waits for the other to
		// commit and fails, and the batch runs again with every stream
		// checked (see commitRetrying). A
		// stream's last Seq is its highest event, or the highest deleted
		// one if DeleteTo or DeleteStream removed all above it (the streams
		// table is looked up only if either was ever used; see
		// streamLookup). A stream deleted for good takes no event, whatever
		// Seq it expects. Every event row carries its stream and the
		// stream's expected last Seq; the events of one stream all see the
		// same snapshot, so they pass or fail together. The statement
		// returns the streams that did not match or are deleted for good
		// (f), by their ordinal in the batch, with their actual last Seq.
		//
		// $1-$10 per event: entity type, id, the stream's expected last
		// Seq, the stream's ordinal, Seq, name, revision, data, metadata,
		// and whether the expected Seq is known to exist (it is 0, or the
		// Log's seqCache vouches for it), so that only a deletion record
		// can refute it: then the lookup of the stream's last event is
		// skipped, and the unique key refuses the row if the stream has
		// moved on. Event k (1-based) gets Position txBase + k, as
		// takePositions, earlier in the same transaction, counted. There
		// are no joins: a generic plan cannot know how many rows unnest
		// returns, and a join planned for ten rows is slow for thousands.
		appendEvents: fmt.Sprintf(`WITH v AS MATERIALIZED (
	SELECT x.*, %[2]s
	FROM (SELECT u.*, %[3]s
		FROM unnest($1::text[], $2::text[], $3::bigint[], $4::bigint[], $5::bigint[], $6::text[], $7::bigint[], $8::bytea[], $9::jsonb[], $10::bool[])
			WITH ORDINALITY AS u(t, i, b, k, s, n, r, d, m, c, o)
		OFFSET 0) x
), ins AS (
	INSERT INTO %[1]s (entity_type, entity_id, seq, position, name, revision, data, metadata)
	SELECT v.t, v.i, v.s, %[4]s + v.o, v.n, v.r, v.d, v.m
	FROM v
	WHERE v.a = v.b AND NOT v.f
)
SELECT DISTINCT k, a, f FROM v WHERE a <> b OR f`, n.events, streamCheck, streamLookup(n), txBase),
		notify: `SELECT pg_notify($1, $2)`,
		// The check of appendEvents alone, per stream: $1-$4 the streams'
		// types, ids, expected last Seqs and whether those are known to
		// exist. It returns the streams that do not match, by 1-based
		// ordinal, with their actual last Seq and whether they were
		// deleted for good.
		checkStreams: fmt.Sprintf(`SELECT k, a, f FROM (
	SELECT x.k, x.b, %[1]s
	FROM (SELECT u.*, %[2]s
		FROM unnest($1::text[], $2::text[], $3::bigint[], $4::bool[]) WITH ORDINALITY AS u(t, i, b, c, k)
		OFFSET 0) x
) s WHERE a <> b OR f`, streamCheck, streamLookup(n)),
		// Whether the streams table has a row: one probe.
		anyStreamRow: fmt.Sprintf(`SELECT EXISTS (SELECT FROM %s)`, n.streams),
		copyEvents:   fmt.Sprintf(`COPY %s (entity_type, entity_id, seq, position, name, revision, data, metadata) FROM STDIN (FORMAT binary)`, n.events),

		lastSeq: fmt.Sprintf(`SELECT greatest(
	coalesce((SELECT seq FROM %s WHERE entity_type = $1 AND entity_id = $2 ORDER BY seq DESC LIMIT 1), 0),
	coalesce((SELECT deleted_to FROM %s WHERE entity_type = $1 AND entity_id = $2), 0))`, n.events, n.streams),
		// A stream deleted for good has no events: for it the read returns
		// one tombstone row instead (see tombstoneRow), found by the
		// primary key of the streams table in the same statement, so a
		// read costs no extra round trip to tell a deleted stream from
		// one that never existed.
		readEntity: fmt.Sprintf(`(SELECT seq, position, name, revision, data, metadata, committed_at FROM %s
WHERE entity_type = $1 AND entity_id = $2 AND seq >= $3 ORDER BY seq LIMIT $4)
UNION ALL
SELECT %s FROM %s d WHERE d.entity_type = $1 AND d.entity_id = $2 AND d.final`, n.events, tombstoneRow, n.streams),
		// One row source per stream, numbered by its place in the arrays;
		// each takes the first $4 events of its stream from its Seq on, by
		// the primary key.
		readFirstPages: fmt.Sprintf(`SELECT r.i, e.seq, e.position, e.name, e.revision, e.data, e.metadata, e.committed_at
FROM unnest($1::text[], $2::text[], $3::bigint[]) WITH ORDINALITY AS r(t, id, f, i)
CROSS JOIN LATERAL (
	(SELECT seq, position, name, revision, data, metadata, committed_at FROM %s
	WHERE entity_type = r.t AND entity_id = r.id AND seq >= r.f ORDER BY seq LIMIT $4)
	UNION ALL
	SELECT %s FROM %s d WHERE d.entity_type = r.t AND d.entity_id = r.id AND d.final
) e
ORDER BY r.i, e.seq`, n.events, tombstoneRow, n.streams),
		// Readers by Position read only the events of transactions that
		// ended before their snapshot (below visibleBelow), and add a
		// marker row (Seq 0, the largest such Position) if events after
		// $2 exist that they may not read yet, committed but behind a
		// transaction still running: ReadType reads until it is past
		// them, and a subscription reads again soon rather than at the
		// next notification (see pages).
		readType: gatedRead(n, "entity_id", "entity_type = $1", "$2", "$3"),
		// ReadAll pages through the index on position; with types, it
		// keeps those rows of the page whose type is one of them, or, if
		// the planner expects them to be rare, reads them by the
		// (entity_type, position) index and sorts. Both are gap-free for
		// the reason ReadType is.
		readAll:      gatedRead(n, "entity_type, entity_id", "", "$1", "$2"),
		readAllTypes: gatedRead(n, "entity_type, entity_id", "entity_type = ANY($3::text[])", "$1", "$2"),
		// Deleting records the highest Seq deleted, so the stream's last Seq
		// survives the deletion of its newest events.
		deleteTo: fmt.Sprintf(`WITH d AS (
	DELETE FROM %[1]s WHERE entity_type = $1 AND entity_id = $2 AND seq <= $3 RETURNING seq
)
INSERT INTO %[2]s AS s (entity_type, entity_id, deleted_to)
SELECT $1, $2, max(seq) FROM d HAVING count(*) > 0
ON CONFLICT (entity_type, entity_id) DO UPDATE SET deleted_to = greatest(s.deleted_to, excluded.deleted_to)`, n.events, n.streams),
		// The transactions of DeleteTo and DeleteStream take the lock that
		// every group-commit round holds in share mode (takePositions) in
		// exclusive mode first, so they run between the rounds in flight
		// and the next: every append commits wholly before a delete or is
		// checked against what it recorded. A round checks a stream's row
		// of the streams table and then inserts its events, trusting the
		// primary key to refuse a Seq taken since its seqCache heard of
		// the stream: a delete of the stream's newest events committing in
		// between would free that Seq again.
		lockPositions: fmt.Sprintf(`SELECT FROM pg_advisory_xact_lock(%d)`, n.positionsLock),
		// One statement reads the stream's last Seq and tombstone, deletes
		// its events and records the tombstone, unless it is final
		// already: then it changes nothing. It returns the tombstone's Seq
		// and whether it was final before. All its parts see one
		// snapshot, taken after the lock, so the last Seq is exact.
		// deleted_to is NULL for a stream tombstoned before its first
		// event.
		//
		// $1, $2: the stream; $3: whether the tombstone is final.
		deleteStream: fmt.Sprintf(`WITH s AS (
	SELECT deleted_to, tombstone, final FROM %[2]s WHERE entity_type = $1 AND entity_id = $2
), l AS (
	SELECT CASE WHEN (SELECT final FROM s) THEN (SELECT tombstone FROM s)
		ELSE greatest(
			coalesce((SELECT seq FROM %[1]s WHERE entity_type = $1 AND entity_id = $2 ORDER BY seq DESC LIMIT 1), 0),
			coalesce((SELECT deleted_to FROM s), 0)) END AS seq,
		coalesce((SELECT final FROM s), false) AS was_final
), del AS (
	DELETE FROM %[1]s WHERE entity_type = $1 AND entity_id = $2 AND NOT (SELECT was_final FROM l)
), up AS (
	INSERT INTO %[2]s AS d (entity_type, entity_id, deleted_to, tombstone, final)
	SELECT $1, $2, nullif(l.seq, 0), l.seq, $3 FROM l WHERE NOT l.was_final
	ON CONFLICT (entity_type, entity_id) DO UPDATE
		SET deleted_to = excluded.deleted_to, tombstone = excluded.tombstone, final = excluded.final
)
SELECT seq, was_final FROM l`, n.events, n.streams),
		// The ids with events, found by skipping through the primary key
		// one id at a time (a loose index scan), merged with the ids whose
		// events were all deleted, except those DeleteStream deleted that
		// have had no event since (DeleteTo of a later one would have
		// moved deleted_to past the tombstone). Each source gives its
		// first $3 ids after $2, so the first $3 of the union are
		// complete.
		entityIDs: fmt.Sprintf(`WITH RECURSIVE ids(id) AS (
	(SELECT entity_id FROM %[1]s WHERE entity_type = $1 AND entity_id > $2 ORDER BY entity_id LIMIT 1)
	UNION ALL
	SELECT (SELECT e.entity_id FROM %[1]s e WHERE e.entity_type = $1 AND e.entity_id > ids.id ORDER BY e.entity_id LIMIT 1)
	FROM ids WHERE ids.id IS NOT NULL
)
SELECT id FROM (
	(SELECT id FROM ids WHERE id IS NOT NULL LIMIT $3)
	UNION
	(SELECT entity_id FROM %[2]s WHERE entity_type = $1 AND entity_id > $2
		AND (tombstone IS NULL OR deleted_to > tombstone) ORDER BY entity_id LIMIT $3)
) u ORDER BY id LIMIT $3`, n.events, n.streams),
		// The types, one at a time from the (entity_type, position) index
		// (a loose index scan): one index probe per type, however many
		// events each has, where SELECT DISTINCT reads every entry.
		entityTypes: fmt.Sprintf(`WITH RECURSIVE types(typ) AS (
	(SELECT entity_type FROM %[1]s ORDER BY entity_type LIMIT 1)
	UNION ALL
	SELECT (SELECT e.entity_type FROM %[1]s e WHERE e.entity_type > types.typ ORDER BY e.entity_type LIMIT 1)
	FROM types WHERE types.typ IS NOT NULL
)
SELECT typ FROM types WHERE typ IS NOT NULL`, n.events),

		saveSnapshot: fmt.Sprintf(`INSERT INTO %s (entity_type, entity_id, seq, revision, data, saved_at)
VALUES ($1, $2, $3, $4, $5, now())
ON CONFLICT (entity_type, entity_id, seq) DO UPDATE SET revision = excluded.revision, data = excluded.data, saved_at = excluded.saved_at`, n.snapshots),
		trimSnapshots: fmt.Sprintf(`DELETE FROM %[1]s WHERE entity_type = $1 AND entity_id = $2 AND seq < (
	SELECT seq FROM %[1]s WHERE entity_type = $1 AND entity_id = $2 ORDER BY seq DESC OFFSET $3 LIMIT 1)`, n.snapshots),
		loadSnapshot: fmt.Sprintf(`SELECT seq, revision, data, saved_at FROM %s
WHERE entity_type = $1 AND entity_id = $2 ORDER BY seq DESC LIMIT 1`, n.snapshots),
		deleteSnapshots: fmt.Sprintf(`DELETE FROM %s WHERE entity_type = $1 AND entity_id = $2`, n.snapshots),
		listSnapshots: fmt.Sprintf(`SELECT seq, revision, data, saved_at FROM %s
WHERE entity_type = $1 AND entity_id = $2 ORDER BY seq`, n.snapshots),
	}
}

// streamLookup is the part of appendEvents and checkStreams that looks up
// a stream u (a row of unnest): le, its highest event, or u.b if the Log's
// seqCache vouches for it (u.c); sr, its row of the streams table (whole,
// as one value of the table's row type), NULL if it has none. The names
// are none of unnest's columns, which the subqueries could otherwise
// mean. The streams table is looked up only if it has rows: deletes
// are rare, and an empty table costs one probe per round, not per stream.
// The callers select it in a subquery with OFFSET 0, which the planner
// does not flatten, so each lookup runs once however often streamCheck
// reads its result.
func streamLookup(n names) string {
	return fmt.Sprintf(`CASE WHEN u.c THEN u.b
			ELSE coalesce((SELECT e.seq FROM %[1]s e WHERE e.entity_type = u.t AND e.entity_id = u.i ORDER BY e.seq DESC LIMIT 1), 0) END AS le,
		CASE WHEN NOT EXISTS (SELECT FROM %[2]s) THEN NULL
			ELSE (SELECT ds FROM %[2]s ds WHERE ds.entity_type = u.t AND ds.entity_id = u.i) END AS sr`, n.events, n.streams)
}

// streamCheck computes, from the columns of streamLookup, a stream's actual
// last Seq a (its highest event or highest deleted Seq; for a stream
// deleted for good, its tombstone's) and f, whether it was deleted for
// good.
const streamCheck = `CASE WHEN (x.sr).final THEN (x.sr).tombstone
		ELSE greatest(x.le, coalesce((x.sr).deleted_to, 0)) END AS a,
	coalesce((x.sr).final, false) AS f`

// tombstoneRow is the row a read of a stream deleted for good returns in
// place of events, with the columns of an event row: Seq 0, which no event
// has, and the tombstone's Seq where the Position goes.
const tombstoneRow = `0::bigint, d.tombstone, ''::text, 0::bigint, ''::bytea, NULL::jsonb, now()`

// positionBits is how many low bits of a Position count the events of one
// transaction: a transaction's Positions are its transaction id times
// 2^positionBits plus 1, 2, 3 ... (see the package documentation).
const positionBits = 16

// txBase is the Position before the first of the transaction that
// evaluates it, which it assigns a transaction id if it has none.
var txBase = fmt.Sprintf(`(pg_current_xact_id()::text::bigint << %d)`, positionBits)

// visibleBelow bounds the Positions a statement may read: those of
// transactions whose ids are below the oldest transaction still running
// when the statement took its snapshot. Every such transaction has ended,
// so the rows below it are final: a later reader finds no more of them.
var visibleBelow = fmt.Sprintf(`(pg_snapshot_xmin(pg_current_snapshot())::text::bigint << %d)`, positionBits)

// gatedRead is a read by Position of the events after the Position in
// parameter after, up to limit of them, of those that where (if not "")
// selects, with the columns cols before Seq. Both parts compute
// visibleBelow from the statement's one snapshot. The marker row has Seq 0
// and the largest Position held back, and sorts last.
func gatedRead(n names, cols, where, after, limit string) string {
	if where != "" {
		where = " AND " + where
	}
	marker := "''"
	if cols == "entity_type, entity_id" {
		marker = "'', ''"
	}
	return fmt.Sprintf(`SELECT * FROM (
	(SELECT %[2]s, seq, position, name, revision, data, metadata, committed_at FROM %[1]s
	WHERE position > %[4]s AND position < %[6]s%[3]s ORDER BY position LIMIT %[5]s)
	UNION ALL
	SELECT %[7]s, 0::bigint, h.m, ''::text, 0::bigint, ''::bytea, NULL::jsonb, now()
	FROM (SELECT max(position) AS m FROM %[1]s WHERE position > %[4]s AND position >= %[6]s%[3]s) h
	WHERE h.m IS NOT NULL
) p ORDER BY position`, n.events, cols, where, after, limit, visibleBelow, marker)
}
