package postgreslog_test

import (
	"context"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/eventsourced-go/eventsourced/eventlog"
	"github.com/eventsourced-go/eventsourced/internal/deletetest"
	"github.com/eventsourced-go/eventsourced/internal/evolutiontest"
	"github.com/eventsourced-go/eventsourced/internal/shredtest"
	"github.com/eventsourced-go/eventsourced/postgreslog"
	"github.com/eventsourced-go/eventsourced/snapshotstore"
)

// Tests of stored data over the years: state schema evolution, entity
// deletion and crypto-shredding, each a scenario shared by every backend.

// pgStores returns a Log and a SnapshotStore on tables in a fresh schema,
// and the schema.
func pgStores(t *testing.T, pool *pgxpool.Pool) (*postgreslog.Log, *postgreslog.SnapshotStore, string) {
	t.Helper()
	schema := postgreslog.FreshSchema(t, pool)
	setupSchema(t, pool, schema)
	log := postgreslog.OpenTestLog(t, pool, postgreslog.WithSchema(schema))
	snaps, err := postgreslog.NewSnapshotStore(pool, postgreslog.WithSchema(schema))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { snaps.Close() })
	return log, snaps, schema
}

// TestStateEvolution runs the state schema evolution scenarios on
// PostgreSQL: snapshots of an older state revision upcast, skipped or
// refused, with and without the events they cover.
func TestStateEvolution(t *testing.T) {
	pool := postgreslog.NewTestPool(t, nil)
	evolutiontest.Run(t, func(t *testing.T) (eventlog.Log, snapshotstore.Store) {
		log, snaps, _ := pgStores(t, pool)
		return log, snaps
	})
}

// TestDeleteEntities runs the entity deletion scenarios on PostgreSQL.
func TestDeleteEntities(t *testing.T) {
	pool := postgreslog.NewTestPool(t, nil)
	deletetest.Run(t, func(t *testing.T) (eventlog.Log, snapshotstore.Store) {
		log, snaps, _ := pgStores(t, pool)
		return log, snaps
	})
}

// TestCryptoShredding runs the crypto-shredding scenario on PostgreSQL,
// keys in the keys table; the raw bytes are every row of the events and
// snapshots tables, read with SQL.
func TestCryptoShredding(t *testing.T) {
	pool := postgreslog.NewTestPool(t, nil)
	shredtest.Run(t, func(t *testing.T) shredtest.Backend {
		ctx := context.Background()
		log, snaps, schema := pgStores(t, pool)
		keys, err := postgreslog.NewKeyStore(pool, postgreslog.WithSchema(schema))
		if err != nil {
			t.Fatal(err)
		}
		if err := keys.Setup(ctx); err != nil {
			t.Fatal(err)
		}
		return shredtest.Backend{Log: log, Snapshots: snaps, Keys: keys, Raw: func(t *testing.T) []byte {
			var raw []byte
			for _, q := range []string{
				`SELECT data || convert_to(coalesce(metadata::text, ''), 'UTF8') FROM ` + pgx.Identifier{schema, postgreslog.DefaultTablePrefix + "events"}.Sanitize(),
				`SELECT data FROM ` + pgx.Identifier{schema, postgreslog.DefaultTablePrefix + "snapshots"}.Sanitize(),
			} {
				rows, err := pool.Query(ctx, q)
				if err != nil {
					t.Fatal(err)
				}
				for rows.Next() {
					var b []byte
					if err := rows.Scan(&b); err != nil {
						t.Fatal(err)
					}
					raw = append(raw, b...)
				}
				if err := rows.Err(); err != nil {
					t.Fatal(err)
				}
			}
			return raw
		}}
	})
}
