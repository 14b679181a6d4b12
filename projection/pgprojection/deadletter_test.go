package pgprojection_test

import (
	"context"
	"errors"
	"slices"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/eventsourced-go/eventsourced/eventlog"
	"github.com/eventsourced-go/eventsourced/projection"
	"github.com/eventsourced-go/eventsourced/projection/pgprojection"
	"github.com/eventsourced-go/eventsourced/projection/projectiontest"
)

// TestDeadLetterConformance runs the dead-letter suite on one table. The
// store is transactional: the suite's writes from Retry's handle go
// through the transaction that deletes the dead letter.
func TestDeadLetterConformance(t *testing.T) {
	f := newFixture(t)
	if _, err := f.pool.Exec(t.Context(), `CREATE TABLE `+f.schema+`.marks (key text NOT NULL)`); err != nil {
		t.Fatal(err)
	}
	projectiontest.RunDeadLetters(t, func(t *testing.T) projection.DeadLetters {
		return &txDeadLetters{DeadLetters: f.store.DeadLetters(), pool: f.pool, marks: f.schema + ".marks"}
	})
}

// txDeadLetters is a DeadLetters with the suite's read model.
type txDeadLetters struct {
	*pgprojection.DeadLetters
	pool  *pgxpool.Pool
	marks string
}

var _ projectiontest.Transactional = (*txDeadLetters)(nil)

// Write implements projectiontest.Transactional with the transaction that
// Retry hands its handle.
func (s *txDeadLetters) Write(ctx context.Context, key string) error {
	tx, ok := pgprojection.TxFrom(ctx)
	if !ok {
		return pgprojection.ErrNoTx
	}
	_, err := tx.Exec(ctx, `INSERT INTO `+s.marks+` (key) VALUES ($1)`, key)
	return err
}

// Count implements projectiontest.Transactional.
func (s *txDeadLetters) Count(ctx context.Context, key string) (int, error) {
	var n int
	err := s.pool.QueryRow(ctx, `SELECT count(*) FROM `+s.marks+` WHERE key = $1`, key).Scan(&n)
	return n, err
}

// TestDeadLetterCommitsWithTheOffset skips a poison event while the
// offset update fails: the dead letter rolls back with it, so there is
// never a dead letter of an event the offset has not passed, nor an
// offset past an event without its dead letter. Then it retries the dead
// letter with a handler that writes the read model in the transaction
// that deletes it.
func TestDeadLetterCommitsWithTheOffset(t *testing.T) {
	f := newFixture(t)
	ctx := t.Context()
	log := eventlog.NewMemory()
	appendN(t, log, "t1", 3)
	var broken, offsetDown atomic.Bool
	broken.Store(true)
	offsetDown.Store(true)
	// The offset update fails once the first event has committed: at the
	// skip of the second.
	var proj atomic.Pointer[projection.Projection]
	pgprojection.SetBeforeOffset(f.store, func(ctx context.Context) error {
		if offsetDown.Load() && proj.Load().Status().Offset >= 1 {
			return errors.New("offset update lost")
		}
		return nil
	})
	count := f.handler()
	h := func(ctx context.Context, batch []eventlog.Record) error {
		if batch[0].Seq == 2 && broken.Load() {
			return errors.New("boom")
		}
		return count(ctx, batch)
	}
	dls := f.store.DeadLetters()
	p, err := projection.New(log, "Tab", "counts", f.store, h, projection.WithPoison(projection.SkipPoison),
		projection.WithDeadLetters(dls), projection.WithRetry(time.Millisecond, 5*time.Millisecond, 2))
	if err != nil {
		t.Fatal(err)
	}
	proj.Store(p)
	if err := p.Start(ctx); err != nil {
		t.Fatal(err)
	}
	defer p.Stop(context.Background())
	waitFor(t, "the skip's commit to fail", func() bool {
		st := p.Status()
		return st.Offset == 1 && st.LastError != nil && st.LastError.Error() == "offset update lost" && st.Retries > 3
	})
	if got, err := dls.List(ctx, "counts", 0, 0); err != nil || len(got) != 0 {
		t.Fatalf("dead letters at %v, %v while the skip's commit fails; want none", got, err)
	}
	offsetDown.Store(false)
	waitFor(t, "offset 3", func() bool { return f.offset(t, "counts") == 3 })
	got, err := dls.List(ctx, "counts", 0, 0)
	if err != nil || len(got) != 1 || got[0].Record.Position != 2 || got[0].Err != "boom" || got[0].Attempts != 2 {
		t.Fatalf("dead letters %+v, %v; want the one at 2 with boom after 2 attempts", got, err)
	}
	if want := map[string]int{"t1": 2}; !equalCounts(f.counts(t), want) {
		t.Errorf("read model %v, want %v", f.counts(t), want)
	}

	// A retry that fails leaves the read model alone.
	if err := p.RetryDeadLetter(ctx, 2); err == nil {
		t.Fatal("RetryDeadLetter with a failing handler succeeded")
	}
	if d, err := dls.Get(ctx, "counts", 2); err != nil || d.Attempts != 3 {
		t.Errorf("after a failed retry: %+v, %v; want 3 attempts", d, err)
	}
	broken.Store(false)
	if err := p.RetryDeadLetter(ctx, 2); err != nil {
		t.Fatalf("RetryDeadLetter: %v", err)
	}
	if want := map[string]int{"t1": 3}; !equalCounts(f.counts(t), want) {
		t.Errorf("read model %v after the retry, want %v", f.counts(t), want)
	}
	if _, err := dls.Get(ctx, "counts", 2); !errors.Is(err, projection.ErrNotFound) {
		t.Errorf("Get after a successful retry: %v, want ErrNotFound", err)
	}
}

// TestDeadLettersIgnoreAnotherDatabasesTx checks that a Put under a
// context carrying the transaction of a Store on another pool does not
// write through it.
func TestDeadLettersIgnoreAnotherDatabasesTx(t *testing.T) {
	f := newFixture(t)
	other, err := pgxpool.New(t.Context(), f.pool.Config().ConnString())
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	otherStore, err := pgprojection.New(other, pgprojection.WithTable(f.schema+".offsets"))
	if err != nil {
		t.Fatal(err)
	}
	dls := f.store.DeadLetters()
	d := projection.DeadLetter{Projection: "p", Record: eventlog.Record{EntityType: "T", EntityID: "x", Seq: 1, Position: 1, Name: "E", Time: time.Now()}, Time: time.Now()}
	boom := errors.New("roll back")
	err = otherStore.Commit(t.Context(), "p", 0, 1, func(ctx context.Context) error {
		if _, ok := pgprojection.TxFrom(ctx); !ok {
			return errors.New("no transaction")
		}
		if err := dls.Put(ctx, d); err != nil {
			return err
		}
		return boom
	})
	if !errors.Is(err, boom) {
		t.Fatalf("Commit: %v", err)
	}
	if got, err := dls.List(t.Context(), "p", 0, 0); err != nil || !slices.EqualFunc(got, []projection.DeadLetter{d}, func(a, b projection.DeadLetter) bool {
		return a.Record.Position == b.Record.Position
	}) {
		t.Errorf("dead letters %v, %v; want the one put outside the other pool's rolled back transaction", got, err)
	}
}

func TestDeadLetterTableOption(t *testing.T) {
	pool, sch := schema(t)
	if _, err := pgprojection.New(pool, pgprojection.WithDeadLetterTable("")); !errors.Is(err, projection.ErrInvalid) {
		t.Errorf("WithDeadLetterTable(\"\"): %v, want ErrInvalid", err)
	}
	store, err := pgprojection.New(pool, pgprojection.WithTable(sch+".offsets"), pgprojection.WithDeadLetterTable(sch+`.dead "letters"`))
	if err != nil {
		t.Fatal(err)
	}
	for range 2 {
		if err := store.Migrate(t.Context()); err != nil {
			t.Fatalf("Migrate: %v", err)
		}
	}
	var n int
	if err := pool.QueryRow(t.Context(), `SELECT count(*) FROM `+pgx.Identifier{sch, `dead "letters"`}.Sanitize()).Scan(&n); err != nil || n != 0 {
		t.Errorf("the dead-letter table: %d rows, %v; want an empty table", n, err)
	}
}

// TestSetOffset skips a stopped projection ahead and rewinds it, through
// the offsets table.
func TestSetOffset(t *testing.T) {
	f := newFixture(t)
	ctx := t.Context()
	log := eventlog.NewMemory()
	appendN(t, log, "t1", 4)
	p, err := projection.New(log, "Tab", "counts", f.store, f.handler())
	if err != nil {
		t.Fatal(err)
	}
	if err := p.SetOffset(ctx, 2); err != nil {
		t.Fatalf("SetOffset ahead: %v", err)
	}
	if got := f.offset(t, "counts"); got != 2 {
		t.Errorf("offset %d after SetOffset(2), want 2", got)
	}
	if err := p.Start(ctx); err != nil {
		t.Fatal(err)
	}
	if err := p.WaitFor(ctx, 4); err != nil {
		t.Fatal(err)
	}
	if err := p.SetOffset(ctx, 3); !errors.Is(err, projection.ErrRunning) {
		t.Errorf("SetOffset while running: %v, want ErrRunning", err)
	}
	if err := p.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	if want := map[string]int{"t1": 2}; !equalCounts(f.counts(t), want) {
		t.Errorf("read model %v after skipping 2 events, want %v", f.counts(t), want)
	}
	if err := p.SetOffset(ctx, 3); err != nil {
		t.Fatalf("SetOffset back: %v", err)
	}
	if got := f.offset(t, "counts"); got != 3 {
		t.Errorf("offset %d after SetOffset(3), want 3", got)
	}
	if err := p.Start(ctx); err != nil {
		t.Fatal(err)
	}
	defer p.Stop(context.Background())
	waitFor(t, "the rewound event handled again", func() bool { return equalCounts(f.counts(t), map[string]int{"t1": 3}) })
}
