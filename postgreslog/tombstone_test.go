package postgreslog_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/eventsourced-go/eventsourced/eventlog"
	"github.com/eventsourced-go/eventsourced/postgreslog"
)

// TestSetupMigratesStreamsToTombstones sets up tables, takes the streams
// table back to its version 1 shape (no tombstone columns, deleted_to NOT
// NULL, version 1 recorded), and checks that appends fail with ErrNotSetUp
// until Setup brings it to the current version, keeping what DeleteTo recorded, that running it again
// changes nothing, and that DeleteStream then works.
func TestSetupMigratesStreamsToTombstones(t *testing.T) {
	pool := postgreslog.NewTestPool(t, nil)
	l := postgreslog.NewTestLog(t, pool)
	ctx := testCtx(t, 60*time.Second)
	opts := []postgreslog.Option{postgreslog.WithSchema(postgreslog.Schema(l))}
	mustAppend(t, ctx, l, "order", "trimmed", 0, events("e", 3)...)
	mustAppend(t, ctx, l, "order", "kept", 0, events("e", 2)...)
	if err := l.DeleteTo(ctx, "order", "trimmed", 3); err != nil {
		t.Fatalf("DeleteTo: %v", err)
	}
	streams := postgreslog.StreamsTable(l)
	for _, sql := range []string{
		"ALTER TABLE " + streams + " DROP COLUMN tombstone",
		"ALTER TABLE " + streams + " DROP COLUMN final",
		"ALTER TABLE " + streams + " ALTER COLUMN deleted_to SET NOT NULL",
		"UPDATE " + postgreslog.MetaTable(l) + " SET schema_version = 1",
	} {
		if _, err := pool.Exec(ctx, sql); err != nil {
			t.Fatalf("%s: %v", sql, err)
		}
	}
	// A Log of this release needs the migration.
	if _, err := l.Append(ctx, "order", "kept", 2, events("e", 1)...); !errors.Is(err, postgreslog.ErrNotSetUp) {
		t.Errorf("Append to version 1 tables: %v, want ErrNotSetUp", err)
	}
	for i := range 2 {
		if err := postgreslog.Setup(ctx, pool, opts...); err != nil {
			t.Fatalf("Setup %d over version 1: %v", i+1, err)
		}
	}
	if v, err := l.SchemaVersion(ctx); err != nil || v != postgreslog.SchemaVersion {
		t.Errorf("SchemaVersion: %d, %v; want %d", v, err, postgreslog.SchemaVersion)
	}
	if got, err := l.LastSeq(ctx, "order", "trimmed"); err != nil || got != 3 {
		t.Errorf("LastSeq of the trimmed stream: %d, %v; want 3", got, err)
	}
	ids := collectIDs(t, ctx, l, "order")
	if want := []string{"kept", "trimmed"}; !slices.Equal(ids, want) {
		t.Errorf("EntityIDs: %v, want %v", ids, want)
	}
	for _, c := range []struct {
		id    string
		reuse bool
		want  uint64
	}{{"trimmed", false, 3}, {"kept", true, 2}, {"never", false, 0}} {
		if got, err := l.DeleteStream(ctx, "order", c.id, c.reuse); err != nil || got != c.want {
			t.Errorf("DeleteStream(%s, reuse %t): %d, %v; want %d", c.id, c.reuse, got, err, c.want)
		}
	}
	_, err := l.Append(ctx, "order", "trimmed", 3, events("late", 1)...)
	var de *eventlog.DeletedError
	if !errors.As(err, &de) || *de != (eventlog.DeletedError{EntityType: "order", EntityID: "trimmed", Seq: 3}) {
		t.Errorf("Append to the deleted stream: %v, want a DeletedError at Seq 3", err)
	}
	if ids := collectIDs(t, ctx, l, "order"); len(ids) != 0 {
		t.Errorf("EntityIDs after deleting every stream: %v, want none", ids)
	}
}

// TestDeletedStreamFailsAloneInItsBatch queues appends behind the Position
// lock, so they commit as one batch, one of them to a stream deleted for
// good, and checks, for both ways of committing, that only that one fails,
// with a DeletedError, while the others commit, the same stream's
// continuation included.
func TestDeletedStreamFailsAloneInItsBatch(t *testing.T) {
	pool := postgreslog.NewTestPool(t, nil)
	for _, path := range postgreslog.CommitPaths {
		t.Run(path.Name, func(t *testing.T) {
			l := postgreslog.NewTestLog(t, pool, path.Opt, postgreslog.WithConcurrency(1))
			ctx := testCtx(t, 60*time.Second)
			mustAppend(t, ctx, l, "order", "gone", 0, events("e", 2)...)
			if _, err := l.DeleteStream(ctx, "order", "gone", false); err != nil {
				t.Fatalf("DeleteStream: %v", err)
			}
			// The first append takes the only worker and waits for the
			// lock; the others queue up and form the next batch.
			release := postgreslog.HoldPositions(t, pool, l)
			firstDone := make(chan error, 1)
			go func() {
				_, err := l.Append(ctx, "order", "first", 0, events("first", 1)...)
				firstDone <- err
			}()
			waitFor(t, 10*time.Second, "the first batch to start", func() bool { return postgreslog.QueueLen(l) == 0 })
			time.Sleep(50 * time.Millisecond)
			type call struct {
				id       string
				expected uint64
			}
			calls := []call{{"gone", 2}, {"a", 0}, {"gone", 0}, {"b", 0}, {"c", 0}}
			errs := make([]error, len(calls))
			var wg sync.WaitGroup
			for i, c := range calls {
				wg.Go(func() {
					_, errs[i] = l.Append(ctx, "order", c.id, c.expected, events(c.id, 2)...)
				})
			}
			waitFor(t, 10*time.Second, "the appends to queue", func() bool { return postgreslog.QueueLen(l) == len(calls) })
			release()
			if err := <-firstDone; err != nil {
				t.Fatalf("the first append: %v", err)
			}
			wg.Wait()
			for i, c := range calls {
				var de *eventlog.DeletedError
				switch {
				case c.id != "gone":
					if errs[i] != nil {
						t.Errorf("Append(%s, expected %d): %v", c.id, c.expected, errs[i])
					}
				case !errors.As(errs[i], &de) || *de != (eventlog.DeletedError{EntityType: "order", EntityID: "gone", Seq: 2}):
					t.Errorf("Append(%s, expected %d): %v, want a DeletedError at Seq 2", c.id, c.expected, errs[i])
				}
			}
			if st := l.Stats(); st.Failures != 0 {
				t.Errorf("Stats: %d failures, want 0: a refused append to a deleted stream is not a failure of the Log", st.Failures)
			}
		})
	}
}

// TestBatchedFirstReadsSeeTombstones queues the first reads of streams
// behind a lock, so the readers answer them with one query, and checks
// that each stream deleted for good yields its DeletedError and the others
// their events.
func TestBatchedFirstReadsSeeTombstones(t *testing.T) {
	pool := postgreslog.NewTestPool(t, nil)
	l := postgreslog.NewTestLog(t, pool)
	ctx := testCtx(t, 60*time.Second)
	const streams = 12
	for i := range streams {
		id := fmt.Sprintf("s-%02d", i)
		mustAppend(t, ctx, l, "order", id, 0, events(id, 1+i%3)...)
		switch i % 3 {
		case 1:
			if _, err := l.DeleteStream(ctx, "order", id, false); err != nil {
				t.Fatalf("DeleteStream(%s): %v", id, err)
			}
		case 2:
			if _, err := l.DeleteStream(ctx, "order", id, true); err != nil {
				t.Fatalf("DeleteStream(%s, reuse): %v", id, err)
			}
		}
	}
	unlock := lockEvents(t, ctx, pool, l)
	before := l.Stats()
	got := make([][]eventlog.Record, streams)
	errs := make([]error, streams)
	var wg sync.WaitGroup
	read := func(i int) {
		wg.Go(func() {
			for r, err := range l.ReadEntity(ctx, "order", fmt.Sprintf("s-%02d", i), 1) {
				if err != nil {
					errs[i] = err
					return
				}
				got[i] = append(got[i], r)
			}
		})
	}
	// One read for each reader, which then waits for the lock, and the
	// others queue up behind them.
	for i := range 2 {
		read(i)
		waitFor(t, 10*time.Second, "a reader to take the read", func() bool { return postgreslog.ReadQueueLen(l) == 0 })
		time.Sleep(50 * time.Millisecond)
	}
	for i := 2; i < streams; i++ {
		read(i)
	}
	waitFor(t, 10*time.Second, "the reads to queue", func() bool { return postgreslog.ReadQueueLen(l) == streams-2 })
	unlock()
	wg.Wait()
	for i := range streams {
		id := fmt.Sprintf("s-%02d", i)
		var de *eventlog.DeletedError
		switch i % 3 {
		case 0:
			if errs[i] != nil || len(got[i]) != 1 {
				t.Errorf("ReadEntity(%s): %d records, %v; want 1 and no error", id, len(got[i]), errs[i])
			}
		case 1:
			if len(got[i]) != 0 || !errors.As(errs[i], &de) || *de != (eventlog.DeletedError{EntityType: "order", EntityID: id, Seq: 2}) {
				t.Errorf("ReadEntity(%s): %d records, %v; want a DeletedError at Seq 2", id, len(got[i]), errs[i])
			}
		case 2:
			if errs[i] != nil || len(got[i]) != 0 {
				t.Errorf("ReadEntity(%s) deleted for reuse: %d records, %v; want none", id, len(got[i]), errs[i])
			}
		}
	}
	if q := l.Stats().EntityReadQueries - before.EntityReadQueries; q > 4 {
		t.Errorf("%d first reads took %d queries, want at most 4: they were not batched", streams, q)
	}
}

// collectIDs returns the ids of typ, sorted.
func collectIDs(t *testing.T, ctx context.Context, l *postgreslog.Log, typ string) []string {
	t.Helper()
	var ids []string
	for id, err := range l.EntityIDs(ctx, typ) {
		if err != nil {
			t.Fatalf("EntityIDs(%s): %v", typ, err)
		}
		ids = append(ids, id)
	}
	slices.Sort(ids)
	return ids
}
