package pgprojection_test

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/eventsourced-go/eventsourced/eventlog"
	"github.com/eventsourced-go/eventsourced/internal/pgtest"
	"github.com/eventsourced-go/eventsourced/projection"
	"github.com/eventsourced-go/eventsourced/projection/pgprojection"
)

// schema returns a pool on the test server and a fresh schema, dropped
// when the test ends (see internal/pgtest).
func schema(t *testing.T) (*pgxpool.Pool, string) {
	t.Helper()
	return pgtest.Schema(t, "pgproj_")
}

// fixture is a store and a read model in one schema: counts has one row per
// entity counting the events applied to it, with no protection against
// duplicates, and a total row count check catches any double apply.
type fixture struct {
	pool   *pgxpool.Pool
	schema string
	store  *pgprojection.Store
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	pool, sch := schema(t)
	store, err := pgprojection.New(pool, pgprojection.WithTable(sch+".offsets"), pgprojection.WithControlTable(sch+".controls"))
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	for range 2 {
		if err := store.Migrate(ctx); err != nil {
			t.Fatalf("Migrate: %v", err)
		}
	}
	if _, err := pool.Exec(ctx, `CREATE TABLE `+sch+`.counts (entity_id text PRIMARY KEY, events int NOT NULL)`); err != nil {
		t.Fatal(err)
	}
	return &fixture{pool: pool, schema: sch, store: store}
}

// handler counts each event in the read model, in the commit's transaction.
func (f *fixture) handler() projection.Handler {
	return pgprojection.Handle(func(ctx context.Context, tx pgx.Tx, batch []eventlog.Record) error {
		for _, rec := range batch {
			if _, err := tx.Exec(ctx, `INSERT INTO `+f.schema+`.counts (entity_id, events) VALUES ($1, 1)
ON CONFLICT (entity_id) DO UPDATE SET events = counts.events + 1`, rec.EntityID); err != nil {
				return err
			}
		}
		return nil
	})
}

func (f *fixture) counts(t *testing.T) map[string]int {
	t.Helper()
	rows, err := f.pool.Query(context.Background(), `SELECT entity_id, events FROM `+f.schema+`.counts`)
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]int{}
	for rows.Next() {
		var id string
		var n int
		if err := rows.Scan(&id, &n); err != nil {
			t.Fatal(err)
		}
		got[id] = n
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return got
}

func (f *fixture) offset(t *testing.T, name string) uint64 {
	t.Helper()
	off, err := f.store.Load(context.Background(), name)
	if err != nil {
		t.Fatal(err)
	}
	return off
}

func appendN(t *testing.T, log eventlog.Log, id string, n int) {
	t.Helper()
	for i := range n {
		if _, err := log.Append(context.Background(), "Tab", id, uint64(i), eventlog.Event{Name: "E", Data: []byte(strconv.Itoa(i))}); err != nil {
			t.Fatal(err)
		}
	}
}

// waitFor polls cond for up to 10 seconds: the projection talks to a real
// server, so there is no fake clock to advance.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func equalCounts(got, want map[string]int) bool {
	if len(got) != len(want) {
		return false
	}
	for k, v := range want {
		if got[k] != v {
			return false
		}
	}
	return true
}

// TestConcurrentRunnersSameName runs two runners of one projection: each
// event is still counted exactly once.
func TestConcurrentRunnersSameName(t *testing.T) {
	f := newFixture(t)
	log := eventlog.NewMemory()
	for i := range 10 {
		appendN(t, log, fmt.Sprint("t", i), 5)
	}
	for range 2 {
		p, err := projection.New(log, "Tab", "counts", f.store, f.handler(), projection.WithRetry(time.Millisecond, 10*time.Millisecond, 5))
		if err != nil {
			t.Fatal(err)
		}
		if err := p.Start(t.Context()); err != nil {
			t.Fatal(err)
		}
		defer p.Stop(context.Background())
	}
	waitFor(t, "offset 50", func() bool { return f.offset(t, "counts") == 50 })
	want := map[string]int{}
	for i := range 10 {
		want[fmt.Sprint("t", i)] = 5
	}
	if got := f.counts(t); !equalCounts(got, want) {
		t.Errorf("read model %v, want exactly %v", got, want)
	}
}

func TestHandleOutsideStore(t *testing.T) {
	h := pgprojection.Handle(func(context.Context, pgx.Tx, []eventlog.Record) error { return nil })
	if err := h(t.Context(), nil); !errors.Is(err, pgprojection.ErrNoTx) {
		t.Errorf("Handle outside a Store: %v, want ErrNoTx", err)
	}
	if err := pgprojection.Clear(func(context.Context, pgx.Tx) error { return nil })(t.Context()); !errors.Is(err, pgprojection.ErrNoTx) {
		t.Errorf("Clear outside a Store: %v, want ErrNoTx", err)
	}
}

func TestOptions(t *testing.T) {
	if _, err := pgprojection.New(nil); !errors.Is(err, projection.ErrInvalid) {
		t.Errorf("New(nil): %v, want ErrInvalid", err)
	}
	pool, sch := schema(t)
	if _, err := pgprojection.New(pool, pgprojection.WithTable("")); !errors.Is(err, projection.ErrInvalid) {
		t.Errorf("WithTable(\"\"): %v, want ErrInvalid", err)
	}
	// A name that needs quoting works end to end.
	store, err := pgprojection.New(pool, pgprojection.WithTable(sch+`.odd "name"`))
	if err != nil {
		t.Fatal(err)
	}
	ctx := t.Context()
	if err := store.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	if err := store.Commit(ctx, "p", 0, 7, func(context.Context) error { return nil }); err != nil {
		t.Fatal(err)
	}
	if off, err := store.Load(ctx, "p"); err != nil || off != 7 {
		t.Errorf("Load: %d, %v; want 7", off, err)
	}
	if off, err := store.Load(ctx, "other"); err != nil || off != 0 {
		t.Errorf("Load of an unknown name: %d, %v; want 0", off, err)
	}
}

// TestCommitHoldsNoTransactionIDBeforeTheHandlerWrites checks that the
// transaction of a Commit and of a dead letter's Retry has no transaction
// id while their handler runs and has written nothing: a transaction with
// an id holds back postgreslog's readers by Position until it ends, so a
// handler that waits (a relay whose bus is down) would hold back every
// subscription of the server. A second Commit of the same name still
// waits for the first.
func TestCommitHoldsNoTransactionIDBeforeTheHandlerWrites(t *testing.T) {
	f := newFixture(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	xidOf := func(ctx context.Context) (*string, error) {
		tx, ok := pgprojection.TxFrom(ctx)
		if !ok {
			return nil, errors.New("no transaction in the handler's context")
		}
		var xid *string
		err := tx.QueryRow(ctx, `SELECT pg_current_xact_id_if_assigned()::text`).Scan(&xid)
		return xid, err
	}
	entered, release := make(chan struct{}), make(chan struct{})
	var releaseOnce sync.Once
	releaseFirst := func() { releaseOnce.Do(func() { close(release) }) }
	defer releaseFirst() // also when the test fails early
	first := make(chan error, 1)
	var xid *string
	go func() {
		first <- f.store.Commit(ctx, "p", 0, 5, func(ctx context.Context) error {
			var err error
			xid, err = xidOf(ctx)
			close(entered)
			<-release
			return err
		})
	}()
	<-entered
	second := make(chan error, 1)
	go func() {
		second <- f.store.Commit(ctx, "p", 0, 7, func(context.Context) error { return nil })
	}()
	select {
	case err := <-second:
		t.Fatalf("a second Commit of the name returned %v while the first ran", err)
	case <-time.After(200 * time.Millisecond):
	}
	releaseFirst()
	if err := <-first; err != nil {
		t.Fatalf("Commit: %v", err)
	}
	if xid != nil {
		t.Errorf("the Commit's transaction had the id %s while its handler ran, want none", *xid)
	}
	if err := <-second; !errors.Is(err, projection.ErrOffsetMoved) {
		t.Errorf("the second Commit from 0: %v, want ErrOffsetMoved", err)
	}
	if got := f.offset(t, "p"); got != 5 {
		t.Errorf("offset: %d, want 5", got)
	}

	dl := f.store.DeadLetters()
	rec := eventlog.Record{EntityType: "T", EntityID: "e", Seq: 1, Position: 3, Name: "E", Data: []byte("x"), Time: time.Now()}
	if err := dl.Put(ctx, projection.DeadLetter{Projection: "p", Record: rec, Err: "boom", Attempts: 1, Time: time.Now()}); err != nil {
		t.Fatal(err)
	}
	xid = nil
	if err := dl.Retry(ctx, "p", 3, func(ctx context.Context, _ projection.DeadLetter) error {
		var err error
		xid, err = xidOf(ctx)
		return err
	}); err != nil {
		t.Fatalf("Retry: %v", err)
	}
	if xid != nil {
		t.Errorf("the Retry's transaction had the id %s while its handler ran, want none", *xid)
	}
}
