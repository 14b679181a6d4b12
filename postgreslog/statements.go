package postgreslog

import "fmt"

// statements is the SQL of one Log or Store, built once from its table
// names. Each text stays the same for the life of the Log, so pgx prepares
// it once per connection.
type statements struct {
	// Group commit, all in one round trip: take Positions (and the lock that
	// orders commits), then check and insert in one statement.
	takePositions string
	appendEvents  string
	notify        string
	// Large rounds check first, then COPY.
	checkStreams string
	copyEvents   string

	lastSeq    string
	readEntity string
	// readFirstPages reads the first page of many streams at once.
	readFirstPages string
	readType       string
	deleteTo       string
	entityIDs      string

	saveSnapshot    string
	trimSnapshots   string
	loadSnapshot    string
	deleteSnapshots string
	listSnapshots   string
}

func newStatements(n names) statements {
	return statements{
		// The meta row's lock is held until commit by the transaction that
		// took Positions last, so Positions are handed out in commit order,
		// and while a transaction holds it no other one inserts events.
		takePositions: fmt.Sprintf(`UPDATE %s SET last_position = last_position + $1 WHERE id = 1 RETURNING last_position`, n.meta),
		// One statement checks the streams of the batch and inserts the
		// events of those whose last Seq is the expected one. It runs after
		// takePositions, so its snapshot shows every earlier commit and no
		// other writer can commit until it does: the check is exact. A
		// stream's last Seq is its highest event, or the highest deleted
		// one if DeleteTo removed all above it (the streams table is
		// looked up only if DeleteTo was ever used). Every event row carries its
		// stream and the stream's expected last Seq; the events of one
		// stream all see the same snapshot, so they pass or fail together.
		// The statement returns the streams that did not match, by their
		// ordinal in the batch, with their actual last Seq.
		//
		// $1: the number of events; $2-$11 per event: entity type, id, the
		// stream's expected last Seq, the stream's ordinal, Seq, name,
		// revision, data, metadata, and whether the expected Seq is known
		// to exist (it is 0, or the Log's seqCache vouches for it), so
		// that only a deletion record can refute it: then the lookup of
		// the stream's last event is skipped, and the unique key refuses
		// the row if the stream has moved on. Event k (1-based) gets Position
		// last_position - $1 + k. There are no joins: a generic plan
		// cannot know how many rows unnest returns, and a join planned for
		// ten rows is slow for thousands.
		appendEvents: fmt.Sprintf(`WITH v AS MATERIALIZED (
	SELECT u.*, greatest(
		CASE WHEN u.c THEN u.b
			ELSE coalesce((SELECT e.seq FROM %[1]s e WHERE e.entity_type = u.t AND e.entity_id = u.i ORDER BY e.seq DESC LIMIT 1), 0) END,
		CASE WHEN NOT EXISTS (SELECT FROM %[2]s) THEN 0
			ELSE coalesce((SELECT d.deleted_to FROM %[2]s d WHERE d.entity_type = u.t AND d.entity_id = u.i), 0) END) AS a
	FROM unnest($2::text[], $3::text[], $4::bigint[], $5::bigint[], $6::bigint[], $7::text[], $8::bigint[], $9::bytea[], $10::jsonb[], $11::bool[])
		WITH ORDINALITY AS u(t, i, b, k, s, n, r, d, m, c, o)
), ins AS (
	INSERT INTO %[1]s (entity_type, entity_id, seq, position, name, revision, data, metadata)
	SELECT v.t, v.i, v.s, m.last_position - $1 + v.o, v.n, v.r, v.d, v.m
	FROM v, %[3]s m
	WHERE m.id = 1 AND v.a = v.b
)
SELECT DISTINCT k, a FROM v WHERE a <> b`, n.events, n.streams, n.meta),
		notify: `SELECT pg_notify($1, $2)`,
		// The check of appendEvents alone, per stream: $1-$4 the streams'
		// types, ids, expected last Seqs and whether those are known to
		// exist. It returns the streams that do not match, by 1-based
		// ordinal, with their actual last Seq.
		checkStreams: fmt.Sprintf(`SELECT k, a FROM (
	SELECT u.k, u.b, greatest(
		CASE WHEN u.c THEN u.b
			ELSE coalesce((SELECT e.seq FROM %[1]s e WHERE e.entity_type = u.t AND e.entity_id = u.i ORDER BY e.seq DESC LIMIT 1), 0) END,
		CASE WHEN NOT EXISTS (SELECT FROM %[2]s) THEN 0
			ELSE coalesce((SELECT d.deleted_to FROM %[2]s d WHERE d.entity_type = u.t AND d.entity_id = u.i), 0) END) AS a
	FROM unnest($1::text[], $2::text[], $3::bigint[], $4::bool[]) WITH ORDINALITY AS u(t, i, b, c, k)
) s WHERE a <> b`, n.events, n.streams),
		copyEvents: fmt.Sprintf(`COPY %s (entity_type, entity_id, seq, position, name, revision, data, metadata) FROM STDIN (FORMAT binary)`, n.events),

		lastSeq: fmt.Sprintf(`SELECT greatest(
	coalesce((SELECT seq FROM %s WHERE entity_type = $1 AND entity_id = $2 ORDER BY seq DESC LIMIT 1), 0),
	coalesce((SELECT deleted_to FROM %s WHERE entity_type = $1 AND entity_id = $2), 0))`, n.events, n.streams),
		readEntity: fmt.Sprintf(`SELECT seq, position, name, revision, data, metadata, committed_at FROM %s
WHERE entity_type = $1 AND entity_id = $2 AND seq >= $3 ORDER BY seq LIMIT $4`, n.events),
		// One row source per stream, numbered by its place in the arrays;
		// each takes the first $4 events of its stream from its Seq on, by
		// the primary key.
		readFirstPages: fmt.Sprintf(`SELECT r.i, e.seq, e.position, e.name, e.revision, e.data, e.metadata, e.committed_at
FROM unnest($1::text[], $2::text[], $3::bigint[]) WITH ORDINALITY AS r(t, id, f, i)
CROSS JOIN LATERAL (
	SELECT seq, position, name, revision, data, metadata, committed_at FROM %s
	WHERE entity_type = r.t AND entity_id = r.id AND seq >= r.f ORDER BY seq LIMIT $4
) e
ORDER BY r.i, e.seq`, n.events),
		readType: fmt.Sprintf(`SELECT entity_id, seq, position, name, revision, data, metadata, committed_at FROM %s
WHERE entity_type = $1 AND position > $2 ORDER BY position LIMIT $3`, n.events),
		// Deleting records the highest Seq deleted, so the stream's last Seq
		// survives the deletion of its newest events.
		deleteTo: fmt.Sprintf(`WITH d AS (
	DELETE FROM %[1]s WHERE entity_type = $1 AND entity_id = $2 AND seq <= $3 RETURNING seq
)
INSERT INTO %[2]s AS s (entity_type, entity_id, deleted_to)
SELECT $1, $2, max(seq) FROM d HAVING count(*) > 0
ON CONFLICT (entity_type, entity_id) DO UPDATE SET deleted_to = greatest(s.deleted_to, excluded.deleted_to)`, n.events, n.streams),
		// The ids with events, found by skipping through the primary key
		// one id at a time (a loose index scan), merged with the ids whose
		// events were all deleted. Each source gives its first $3 ids after
		// $2, so the first $3 of the union are complete.
		entityIDs: fmt.Sprintf(`WITH RECURSIVE ids(id) AS (
	(SELECT entity_id FROM %[1]s WHERE entity_type = $1 AND entity_id > $2 ORDER BY entity_id LIMIT 1)
	UNION ALL
	SELECT (SELECT e.entity_id FROM %[1]s e WHERE e.entity_type = $1 AND e.entity_id > ids.id ORDER BY e.entity_id LIMIT 1)
	FROM ids WHERE ids.id IS NOT NULL
)
SELECT id FROM (
	(SELECT id FROM ids WHERE id IS NOT NULL LIMIT $3)
	UNION
	(SELECT entity_id FROM %[2]s WHERE entity_type = $1 AND entity_id > $2 ORDER BY entity_id LIMIT $3)
) u ORDER BY id LIMIT $3`, n.events, n.streams),

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
