package postgreslog_test

import (
	"context"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/eventsourced-go/eventsourced/eventlog"
	"github.com/eventsourced-go/eventsourced/eventlog/eventlogtest"
	"github.com/eventsourced-go/eventsourced/postgreslog"
	"github.com/eventsourced-go/eventsourced/snapshotstore"
	"github.com/eventsourced-go/eventsourced/snapshotstore/snapshotstoretest"
)

// TestLogConformance runs the eventlog conformance suite, once for each
// way of committing a round (one INSERT statement, or COPY). Every case gets
// a fresh Log (its own workers and listener) on tables shared by the run;
// the suite names its streams uniquely.
func TestLogConformance(t *testing.T) {
	pool := postgreslog.NewTestPool(t, nil)
	schema := postgreslog.FreshSchema(t, pool)
	setupSchema(t, pool, schema)
	for _, path := range postgreslog.CommitPaths {
		t.Run(path.Name, func(t *testing.T) {
			eventlogtest.Run(t, func(t *testing.T) eventlog.Log {
				return postgreslog.OpenTestLog(t, pool, postgreslog.WithSchema(schema), postgreslog.WithPollInterval(200*time.Millisecond), path.Opt)
			})
		})
	}
}

// TestStoreConformance runs the snapshotstore conformance suite.
func TestStoreConformance(t *testing.T) {
	pool := postgreslog.NewTestPool(t, nil)
	schema := postgreslog.FreshSchema(t, pool)
	setupSchema(t, pool, schema)
	snapshotstoretest.Run(t, func(t *testing.T) snapshotstore.Store {
		s, err := postgreslog.NewSnapshotStore(pool, postgreslog.WithSchema(schema))
		if err != nil {
			t.Fatalf("NewSnapshotStore: %v", err)
		}
		t.Cleanup(func() { _ = s.Close() })
		return s
	})
}

// setupSchema creates the tables in schema.
func setupSchema(t *testing.T, pool *pgxpool.Pool, schema string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := postgreslog.Setup(ctx, pool, postgreslog.WithSchema(schema)); err != nil {
		t.Fatalf("Setup: %v", err)
	}
}
