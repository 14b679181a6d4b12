package postgreslog_test

import (
	"testing"

	"github.com/eventsourced-go/eventsourced/eventlog"
	"github.com/eventsourced-go/eventsourced/internal/evolutiontest"
	"github.com/eventsourced-go/eventsourced/postgreslog"
	"github.com/eventsourced-go/eventsourced/snapshotstore"
)

// TestStateEvolution runs the state schema evolution scenarios on
// PostgreSQL: snapshots of an older state revision upcast, skipped or
// refused, with and without the events they cover.
func TestStateEvolution(t *testing.T) {
	pool := postgreslog.NewTestPool(t, nil)
	evolutiontest.Run(t, func(t *testing.T) (eventlog.Log, snapshotstore.Store) {
		schema := postgreslog.FreshSchema(t, pool)
		setupSchema(t, pool, schema)
		log := postgreslog.OpenTestLog(t, pool, postgreslog.WithSchema(schema))
		snaps, err := postgreslog.NewSnapshotStore(pool, postgreslog.WithSchema(schema))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { snaps.Close() })
		return log, snaps
	})
}
