package pgprojection_test

import (
	"context"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/eventsourced-go/eventsourced/projection"
	"github.com/eventsourced-go/eventsourced/projection/pgprojection"
	"github.com/eventsourced-go/eventsourced/projection/projectiontest"
)

// TestConformance runs the offset store suite. Every case gets a Store of
// its own on one offsets table; the suite names its projections uniquely.
// The store is exactly-once, so the test store writes the suite's read
// model in the commit's transaction.
func TestConformance(t *testing.T) {
	f := newFixture(t)
	if _, err := f.pool.Exec(t.Context(), `CREATE TABLE `+f.schema+`.marks (key text NOT NULL)`); err != nil {
		t.Fatal(err)
	}
	projectiontest.Run(t, func(t *testing.T) projection.OffsetStore {
		store, err := pgprojection.New(f.pool, pgprojection.WithTable(f.schema+".offsets"))
		if err != nil {
			t.Fatal(err)
		}
		return &testStore{Store: store, pool: f.pool, marks: f.schema + ".marks"}
	})
}

// testStore is a Store with the suite's read model, a row per write in
// the marks table, and its test hook between the handler and the offset
// update.
type testStore struct {
	*pgprojection.Store
	pool  *pgxpool.Pool
	marks string
}

var (
	_ projectiontest.Transactional = (*testStore)(nil)
	_ projectiontest.Crasher       = (*testStore)(nil)
)

// Write implements projectiontest.Transactional with the transaction that
// pgprojection hands handlers and clears.
func (s *testStore) Write(ctx context.Context, key string) error {
	return pgprojection.Clear(func(ctx context.Context, tx pgx.Tx) error {
		_, err := tx.Exec(ctx, `INSERT INTO `+s.marks+` (key) VALUES ($1)`, key)
		return err
	})(ctx)
}

// Count implements projectiontest.Transactional.
func (s *testStore) Count(ctx context.Context, key string) (int, error) {
	var n int
	err := s.pool.QueryRow(ctx, `SELECT count(*) FROM `+s.marks+` WHERE key = $1`, key).Scan(&n)
	return n, err
}

// SetBeforeOffset implements projectiontest.Crasher.
func (s *testStore) SetBeforeOffset(f func(ctx context.Context) error) {
	pgprojection.SetBeforeOffset(s.Store, f)
}
