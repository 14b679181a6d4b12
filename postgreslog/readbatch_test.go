package postgreslog_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/eventsourced-go/eventsourced/eventlog"
	"github.com/eventsourced-go/eventsourced/postgreslog"
)

// TestFirstReadsAreBatched holds both readers on a locked events table, queues
// the first reads of 138 more streams behind them, and checks that the queued
// reads share a query or two and that every read yields exactly its
// stream's events, also for streams longer than a batched first page.
func TestFirstReadsAreBatched(t *testing.T) {
	pool := postgreslog.NewTestPool(t, nil)
	l := postgreslog.NewTestLog(t, pool)
	ctx := testCtx(t, 60*time.Second)
	const typ = "account"
	type stream struct {
		id   string
		n    int
		from uint64
	}
	lengths := []int{0, 1, 2, 99, 100, 101, 250}
	streams := make([]stream, 140)
	for i := range streams {
		s := stream{id: fmt.Sprintf("s-%03d", i), n: lengths[i%len(lengths)], from: uint64(1 + i%3)}
		if s.n > 0 {
			mustAppend(t, ctx, l, typ, s.id, 0, events(s.id, s.n)...)
		}
		streams[i] = s
	}

	unlock := lockEvents(t, ctx, pool, l)
	before := l.Stats()
	got := make([][]eventlog.Record, len(streams))
	errs := make([]error, len(streams))
	var wg sync.WaitGroup
	read := func(i int) {
		wg.Go(func() {
			s := streams[i]
			for r, err := range l.ReadEntity(ctx, typ, s.id, s.from) {
				if err != nil {
					errs[i] = err
					return
				}
				got[i] = append(got[i], r)
			}
		})
	}
	// One read for each reader, each then waiting for the lock...
	for i := range 2 {
		read(i)
		waitFor(t, 10*time.Second, "a reader to take the read", func() bool { return postgreslog.ReadQueueLen(l) == 0 })
		time.Sleep(50 * time.Millisecond)
	}
	// ... and the others queue up.
	for i := 2; i < len(streams); i++ {
		read(i)
	}
	waitFor(t, 10*time.Second, "the reads to queue", func() bool { return postgreslog.ReadQueueLen(l) == len(streams)-2 })
	unlock()
	wg.Wait()

	for i, s := range streams {
		if errs[i] != nil {
			t.Fatalf("ReadEntity(%s from %d): %v", s.id, s.from, errs[i])
		}
		want := 0
		if s.n >= int(s.from) {
			want = s.n - int(s.from) + 1
		}
		if len(got[i]) != want {
			t.Fatalf("ReadEntity(%s from %d) of %d events: %d records, want %d", s.id, s.from, s.n, len(got[i]), want)
		}
		evs := events(s.id, s.n)
		for k, r := range got[i] {
			seq := s.from + uint64(k)
			if r.Seq != seq || r.EntityType != typ || r.EntityID != s.id || r.Name != evs[seq-1].Name || string(r.Data) != s.id {
				t.Fatalf("ReadEntity(%s from %d) record %d: %s/%s seq %d %q %q, want seq %d %q", s.id, s.from, k, r.EntityType, r.EntityID, r.Seq, r.Name, r.Data, seq, evs[seq-1].Name)
			}
		}
	}
	st := l.Stats()
	if reads := st.EntityReads - before.EntityReads; reads != uint64(len(streams)) {
		t.Errorf("EntityReads grew by %d, want %d", reads, len(streams))
	}
	// Two lone queries behind the lock, then the 138 queued reads in one or
	// two queries (the readers may split them).
	if queries := st.EntityReadQueries - before.EntityReadQueries; queries > 4 {
		t.Errorf("%d first reads took %d queries, want at most 4", len(streams), queries)
	}
}

// TestCloseEndsBlockedFirstRead checks that Close does not wait for a first
// read stuck in the database under a context that never ends: the read ends
// with ErrClosed and Close returns.
func TestCloseEndsBlockedFirstRead(t *testing.T) {
	pool := postgreslog.NewTestPool(t, nil)
	l := postgreslog.NewTestLog(t, pool)
	ctx := testCtx(t, 60*time.Second)
	mustAppend(t, ctx, l, "account", "a", 0, events("a", 3)...)
	lockEvents(t, ctx, pool, l) // released when the test ends
	res := make(chan error, 1)
	go func() {
		var last error
		for _, err := range l.ReadEntity(context.Background(), "account", "a", 1) {
			last = err
		}
		res <- last
	}()
	waitFor(t, 10*time.Second, "a reader to take the read", func() bool { return postgreslog.ReadQueueLen(l) == 0 })
	time.Sleep(100 * time.Millisecond) // the reader's query now waits for the lock
	closed := make(chan error, 1)
	go func() { closed <- l.Close() }()
	select {
	case err := <-closed:
		if err != nil {
			t.Fatalf("Close: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Close did not return while a first read waited in the database")
	}
	select {
	case err := <-res:
		if !errors.Is(err, eventlog.ErrClosed) {
			t.Errorf("the blocked read ended with %v, want ErrClosed", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the blocked read did not end after Close")
	}
}

// lockEvents locks l's events table in a transaction of its own, so that
// every read waits; unlock (also run when t ends) releases it.
func lockEvents(t *testing.T, ctx context.Context, pool *pgxpool.Pool, l *postgreslog.Log) (unlock func()) {
	t.Helper()
	tx, err := pool.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	unlock = func() { _ = tx.Rollback(context.Background()) }
	t.Cleanup(unlock)
	if _, err := tx.Exec(ctx, "LOCK TABLE "+postgreslog.EventsTable(l)+" IN ACCESS EXCLUSIVE MODE"); err != nil {
		t.Fatal(err)
	}
	return unlock
}
