package postgreslog

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// SchemaVersion is the version of the tables this release creates and
// expects. [Setup] records it in the meta table; a later release adds
// migration steps and raises it.
const SchemaVersion = 4

// migrations returns the SQL of each schema version, in order:
// migrations(n)[v-1] takes the tables from version v-1 to v. Steps are
// written to be harmless if their objects already exist.
func migrations(n names) [][]string {
	return [][]string{
		// Version 1.
		{
			// One row per event. The primary key serves ReadEntity and the
			// last-Seq check of appends, and is the last line of defense
			// against two writers at one Seq; the (entity_type, position)
			// index serves ReadType and Subscribe.
			fmt.Sprintf(`CREATE TABLE IF NOT EXISTS %s (
	entity_type  text        NOT NULL,
	entity_id    text        NOT NULL,
	seq          bigint      NOT NULL CHECK (seq > 0),
	position     bigint      NOT NULL CHECK (position > 0),
	name         text        NOT NULL,
	revision     bigint      NOT NULL,
	data         bytea       NOT NULL,
	metadata     jsonb,
	committed_at timestamptz NOT NULL DEFAULT now(),
	CONSTRAINT %s PRIMARY KEY (entity_type, entity_id, seq)
)`, n.events, pgx.Identifier{n.eventsPkey}.Sanitize()),
			fmt.Sprintf(`CREATE UNIQUE INDEX IF NOT EXISTS %s ON %s (entity_type, position)`,
				n.eventsTypePos, n.events),
			// One row per stream whose events were deleted: the highest
			// Seq deleted, so the stream's last Seq never goes down.
			fmt.Sprintf(`CREATE TABLE IF NOT EXISTS %s (
	entity_type text   NOT NULL,
	entity_id   text   NOT NULL,
	deleted_to  bigint NOT NULL CHECK (deleted_to > 0),
	PRIMARY KEY (entity_type, entity_id)
)`, n.streams),
			fmt.Sprintf(`CREATE TABLE IF NOT EXISTS %s (
	entity_type text        NOT NULL,
	entity_id   text        NOT NULL,
	seq         bigint      NOT NULL CHECK (seq > 0),
	revision    bigint      NOT NULL,
	data        bytea       NOT NULL,
	saved_at    timestamptz NOT NULL,
	PRIMARY KEY (entity_type, entity_id, seq)
)`, n.snapshots),
		},
		// Version 2: tombstones (Log.DeleteStream) in the streams table.
		// tombstone is the Seq where the stream was deleted as a whole,
		// NULL if it never was; final marks a stream deleted for good. A
		// stream deleted before its first event has a row with deleted_to
		// NULL, which its CHECK lets pass.
		{
			fmt.Sprintf(`ALTER TABLE %s ALTER COLUMN deleted_to DROP NOT NULL`, n.streams),
			fmt.Sprintf(`ALTER TABLE %s ADD COLUMN IF NOT EXISTS tombstone bigint CHECK (tombstone >= 0)`, n.streams),
			fmt.Sprintf(`ALTER TABLE %s ADD COLUMN IF NOT EXISTS final boolean NOT NULL DEFAULT false`, n.streams),
		},
		// Version 3: a unique index on position alone, for ReadAll and
		// SubscribeAll, which page through every type by Position. Within
		// Setup's transaction the build holds off appends (not reads)
		// until it commits; see the package documentation for building it
		// beforehand without that.
		{
			fmt.Sprintf(`CREATE UNIQUE INDEX IF NOT EXISTS %s ON %s (position)`, n.eventsPos, n.events),
		},
		// Version 4: Positions from transaction ids (see the package
		// documentation), so rounds no longer take them one after another
		// from the meta row's counter. The counter goes: a writer of an
		// older release, which would still take Positions from it, fails
		// instead. The Positions already stored must all be below the
		// first one of this transaction; they are unless transactions
		// carried 65,536 events each on average.
		{
			fmt.Sprintf(`DO $$ BEGIN
	IF (SELECT max(position) FROM %[1]s) >= %[2]s THEN
		RAISE EXCEPTION 'the Positions stored in %[3]s reach beyond those of this transaction id; Positions from transaction ids would not sort after them';
	END IF;
END $$`, n.events, txBase, strings.ReplaceAll(n.events, "'", "''")),
			fmt.Sprintf(`ALTER TABLE %s DROP COLUMN IF EXISTS last_position`, n.meta),
			fmt.Sprintf(`ALTER TABLE %s ADD COLUMN IF NOT EXISTS xid_positions boolean NOT NULL DEFAULT true CHECK (xid_positions)`, n.meta),
		},
	}
}

// migrate brings the tables named n to [SchemaVersion] in one transaction.
// An advisory lock serializes concurrent migrations of the same tables, from
// any process, so CREATE ... IF NOT EXISTS cannot race.
// Setup creates the tables of the [Log] and the [SnapshotStore] that the
// options name (and the schema, see [WithSchema]) if they do not exist, and
// brings them to [SchemaVersion]. It is idempotent and safe to run from
// several processes at once: run it at deployment or at every start, with
// the table options New and NewSnapshotStore get. It fails with
// [ErrSchemaVersion] if a newer release set the tables up. It returns by
// ctx's deadline.
func Setup(ctx context.Context, pool *pgxpool.Pool, opts ...Option) error {
	cfg, err := newConfig(forSetup, opts)
	if err != nil {
		return err
	}
	if pool == nil {
		return fmt.Errorf("%w: Setup with a nil pool", ErrInvalidOption)
	}
	return migrate(ctx, pool, resolveNames(cfg))
}

func migrate(ctx context.Context, pool *pgxpool.Pool, n names) (err error) {
	defer func() {
		if err != nil {
			err = fmt.Errorf("postgreslog: setup: %w", translate(err))
		}
	}()
	tx, err := pool.Begin(ctx)
	if err != nil {
		return err
	}
	defer func() {
		if err != nil {
			rollback(tx)
		}
	}()
	if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock($1)`, n.migrateLock); err != nil {
		return err
	}
	if n.schema != "" {
		if _, err := tx.Exec(ctx, `CREATE SCHEMA IF NOT EXISTS `+n.schema); err != nil {
			return err
		}
	}
	// The meta row holds the schema version. (Up to version 3 it also
	// held the Position counter that appends locked and advanced.) The
	// exclusive lock on positionsLock holds off appends and deletes,
	// not reads, while the migration runs.
	stmts := []string{
		fmt.Sprintf(`CREATE TABLE IF NOT EXISTS %s (
	id             int PRIMARY KEY CHECK (id = 1),
	schema_version int NOT NULL
)`, n.meta),
		fmt.Sprintf(`INSERT INTO %[1]s (id, schema_version) SELECT 1, 0 WHERE NOT EXISTS (SELECT FROM %[1]s WHERE id = 1)`, n.meta),
		fmt.Sprintf(`SELECT pg_advisory_xact_lock(%d)`, n.positionsLock),
	}
	for _, s := range stmts {
		if _, err := tx.Exec(ctx, s); err != nil {
			return err
		}
	}
	var version int
	if err := tx.QueryRow(ctx, fmt.Sprintf(`SELECT schema_version FROM %s WHERE id = 1 FOR UPDATE`, n.meta)).Scan(&version); err != nil {
		return err
	}
	if version > SchemaVersion {
		return fmt.Errorf("%w: tables %s are at version %d, this release knows up to %d", ErrSchemaVersion, n.meta, version, SchemaVersion)
	}
	steps := migrations(n)
	for v := version + 1; v <= SchemaVersion; v++ {
		for _, s := range steps[v-1] {
			if _, err := tx.Exec(ctx, s); err != nil {
				return fmt.Errorf("to version %d: %w", v, err)
			}
		}
	}
	if version < SchemaVersion {
		if _, err := tx.Exec(ctx, fmt.Sprintf(`UPDATE %s SET schema_version = $1 WHERE id = 1`, n.meta), SchemaVersion); err != nil {
			return err
		}
	}
	return tx.Commit(ctx)
}

// schemaVersion reads the version recorded in the meta table.
func schemaVersion(ctx context.Context, pool *pgxpool.Pool, n names) (int, error) {
	var v int
	err := pool.QueryRow(ctx, fmt.Sprintf(`SELECT schema_version FROM %s WHERE id = 1`, n.meta)).Scan(&v)
	if errors.Is(err, pgx.ErrNoRows) {
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("postgreslog: read schema version: %w", translate(err))
	}
	return v, nil
}

// rollback ends tx, also when the context of its work has ended. Its error
// is of no use: the transaction is abandoned either way, and a connection
// left in a transaction is not reused by the pool.
func rollback(tx pgx.Tx) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_ = tx.Rollback(ctx)
}
