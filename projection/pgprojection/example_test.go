package pgprojection_test

import (
	"context"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/eventsourced-go/eventsourced/eventlog"
	"github.com/eventsourced-go/eventsourced/projection"
	"github.com/eventsourced-go/eventsourced/projection/pgprojection"
)

// A read model counting the events of each tab, written in the transaction
// that moves the projection's offset: each event is counted exactly once.
func Example() {
	ctx := context.Background()
	pool, err := pgxpool.New(ctx, "postgres://localhost/cafe")
	if err != nil {
		panic(err)
	}
	var log eventlog.Log = eventlog.NewMemory() // or a postgreslog.Log on the same pool

	store, err := pgprojection.New(pool)
	if err != nil {
		panic(err)
	}
	if err := store.Migrate(ctx); err != nil {
		panic(err)
	}
	count := pgprojection.Handle(func(ctx context.Context, tx pgx.Tx, batch []eventlog.Record) error {
		for _, rec := range batch {
			if _, err := tx.Exec(ctx, `INSERT INTO tab_events (tab, n) VALUES ($1, 1)
ON CONFLICT (tab) DO UPDATE SET n = tab_events.n + 1`, rec.EntityID); err != nil {
				return err
			}
		}
		return nil
	})
	p, err := projection.New(log, "Tab", "tab-events", store, count, projection.WithBatchSize(100))
	if err != nil {
		panic(err)
	}
	if err := p.Start(ctx); err != nil {
		panic(err)
	}
	defer p.Stop(ctx)

	// Later, to rebuild the read model from the first event:
	p.Stop(ctx)
	p.Reset(ctx, pgprojection.Clear(func(ctx context.Context, tx pgx.Tx) error {
		_, err := tx.Exec(ctx, `TRUNCATE tab_events`)
		return err
	}))
	p.Start(ctx)
}
