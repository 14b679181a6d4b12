package postgreslog_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/eventsourced-go/eventsourced/eventlog"
	"github.com/eventsourced-go/eventsourced/postgreslog"
)

// beginRound starts, on a connection of its own, a transaction that does
// what a round of another Log does before it commits: it inserts an event
// of stream typ/id at Seq 1 with its first Position (its transaction id
// times 2^16, plus 1), which it returns.
func beginRound(t *testing.T, ctx context.Context, pool *pgxpool.Pool, l *postgreslog.Log, typ, id string) (pgx.Tx, uint64) {
	t.Helper()
	tx, err := pool.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = tx.Rollback(context.Background()) })
	var pos int64
	err = tx.QueryRow(ctx, "INSERT INTO "+postgreslog.EventsTable(l)+
		" (entity_type, entity_id, seq, position, name, revision, data) VALUES ($1, $2, 1, (pg_current_xact_id()::text::bigint << 16) + 1, 'Early', 0, '') RETURNING position",
		typ, id).Scan(&pos)
	if err != nil {
		t.Fatalf("insert the early event: %v", err)
	}
	return tx, uint64(pos)
}

// TestReadersWaitForEarlierTransactions has a transaction take its
// Positions and insert an event, then a Log append and commit an event
// with larger Positions before that transaction ends. Readers by Position
// must not yield the later event while the earlier transaction runs (a
// reader that did would resume after it and skip the earlier event
// forever), and must yield both, in Position order, once it commits:
// ReadType and ReadAll wait for it (by their ctx), subscriptions too. The
// transaction sends no notification, and the poll interval is a minute:
// they read again because their reads report events held back. When the
// earlier transaction rolls back instead, they yield the later event
// alone.
func TestReadersWaitForEarlierTransactions(t *testing.T) {
	for _, commit := range []bool{true, false} {
		t.Run(map[bool]string{true: "commit", false: "rollback"}[commit], func(t *testing.T) {
			pool := postgreslog.NewTestPool(t, nil)
			l := postgreslog.NewTestLog(t, pool, postgreslog.WithPollInterval(time.Minute))
			ctx := testCtx(t, 60*time.Second)
			const typ = "doc"
			tx, early := beginRound(t, ctx, pool, l, typ, "early")
			late := mustAppend(t, ctx, l, typ, "late", 0, events("late", 1)...)
			if late <= early {
				t.Fatalf("the later transaction's Position %d is not above the earlier one's %d", late, early)
			}

			subs := map[string]<-chan eventlog.Record{}
			for name, read := range map[string]func(context.Context) func(func(eventlog.Record, error) bool){
				"Subscribe": func(ctx context.Context) func(func(eventlog.Record, error) bool) { return l.Subscribe(ctx, typ, 0) },
				"SubscribeAll": func(ctx context.Context) func(func(eventlog.Record, error) bool) {
					return l.SubscribeAll(ctx, 0, typ, "other")
				},
			} {
				ch := make(chan eventlog.Record, 4)
				subs[name] = ch
				go func() {
					for r, err := range read(ctx) {
						if err != nil {
							return
						}
						ch <- r
					}
				}()
			}
			reads := map[string]func(context.Context) func(func(eventlog.Record, error) bool){
				"ReadType": func(ctx context.Context) func(func(eventlog.Record, error) bool) { return l.ReadType(ctx, typ, 0) },
				"ReadAll":  func(ctx context.Context) func(func(eventlog.Record, error) bool) { return l.ReadAll(ctx, 0) },
			}
			// A read waits for what is held back, by its ctx.
			for name, read := range reads {
				short, cancel := context.WithTimeout(ctx, 300*time.Millisecond)
				var got []string
				var end error
				for r, err := range read(short) {
					if err != nil {
						end = err
						break
					}
					got = append(got, r.EntityID)
				}
				cancel()
				if len(got) != 0 || !errors.Is(end, context.DeadlineExceeded) {
					t.Errorf("%s while the earlier transaction runs: %v, then %v; want nothing, then the deadline", name, got, end)
				}
			}
			// Reads that start now end once it has ended, with what it
			// held back.
			waiting := map[string]chan []eventlog.Record{}
			for name, read := range reads {
				ch := make(chan []eventlog.Record, 1)
				waiting[name] = ch
				go func() {
					var out []eventlog.Record
					for r, err := range read(ctx) {
						if err != nil {
							break
						}
						out = append(out, r)
					}
					ch <- out
				}()
			}
			time.Sleep(100 * time.Millisecond)
			for name, ch := range subs {
				select {
				case r := <-ch:
					t.Errorf("%s yielded %s/%s@%d while the earlier transaction runs", name, r.EntityType, r.EntityID, r.Position)
				default:
				}
			}

			want := []string{fmt.Sprintf("late@%d", late)}
			if commit {
				want = append([]string{fmt.Sprintf("early@%d", early)}, want...)
				if err := tx.Commit(ctx); err != nil {
					t.Fatal(err)
				}
			} else if err := tx.Rollback(ctx); err != nil {
				t.Fatal(err)
			}
			start := time.Now()
			for name, ch := range subs {
				var got []string
				for len(got) < len(want) {
					select {
					case r := <-ch:
						got = append(got, fmt.Sprintf("%s@%d", r.EntityID, r.Position))
					case <-time.After(5 * time.Second):
						t.Fatalf("%s: got %v after the earlier transaction ended, want %v", name, got, want)
					}
				}
				if !slices.Equal(got, want) {
					t.Errorf("%s: got %v, want %v", name, got, want)
				}
			}
			if d := time.Since(start); d > 2*time.Second {
				t.Errorf("the subscriptions took %v to yield the events held back (poll interval 1m)", d)
			}
			keys := func(recs []eventlog.Record) []string {
				var out []string
				for _, r := range recs {
					out = append(out, fmt.Sprintf("%s@%d", r.EntityID, r.Position))
				}
				return out
			}
			for name, ch := range waiting {
				if got := keys(<-ch); !slices.Equal(got, want) {
					t.Errorf("%s that waited for the earlier transaction: %v, want %v", name, got, want)
				}
			}
			if got := keys(collect(t, l.ReadType(ctx, typ, 0))); !slices.Equal(got, want) {
				t.Errorf("ReadType after the earlier transaction: %v, want %v", got, want)
			}
			if got := keys(collect(t, l.ReadAll(ctx, 0))); !slices.Equal(got, want) {
				t.Errorf("ReadAll after the earlier transaction: %v, want %v", got, want)
			}
		})
	}
}

func collect(t *testing.T, seq func(func(eventlog.Record, error) bool)) []eventlog.Record {
	t.Helper()
	var out []eventlog.Record
	for r, err := range seq {
		if err != nil {
			t.Fatalf("read: %v", err)
		}
		out = append(out, r)
	}
	return out
}

// TestRoundsDoNotWaitForEachOther blocks one round of a Log with two
// workers (its insert waits for another transaction's uncommitted row at
// the same Seq) and checks that an append to another stream commits
// meanwhile: rounds take their Positions from their own transactions, not
// one after another. The blocked round commits once the row is rolled
// back.
func TestRoundsDoNotWaitForEachOther(t *testing.T) { forEachPath(t, testRoundsDoNotWaitForEachOther) }

func testRoundsDoNotWaitForEachOther(t *testing.T, path postgreslog.Option) {
	pool := postgreslog.NewTestPool(t, nil)
	l := postgreslog.NewTestLog(t, pool, postgreslog.WithConcurrency(2), path)
	ctx := testCtx(t, 60*time.Second)
	const typ = "doc"
	tx, _ := beginRound(t, ctx, pool, l, typ, "blocked")
	blocked := make(chan error, 1)
	go func() {
		_, err := l.Append(ctx, typ, "blocked", 0, events("b", 1)...)
		blocked <- err
	}()
	waitFor(t, 10*time.Second, "the round to wait for the uncommitted row", func() bool {
		return postgreslog.LockWaiters(t, pool, postgreslog.EventsTable(l)) == 1
	})
	short, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	if _, err := l.Append(short, typ, "free", 0, events("f", 1)...); err != nil {
		t.Fatalf("append beside the blocked round: %v", err)
	}
	select {
	case err := <-blocked:
		t.Fatalf("the blocked append returned %v before the row was rolled back", err)
	default:
	}
	if err := tx.Rollback(ctx); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-blocked:
		if err != nil {
			t.Fatalf("the blocked append: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the blocked append did not return after the rollback")
	}
	if recs := readAll(t, ctx, l, typ, "blocked"); len(recs) != 1 || recs[0].Name != "b-1" {
		t.Errorf("blocked holds %v, want b-1", recs)
	}
}

// toVersion3 takes l's tables back to schema version 3: the meta row's
// Position counter at last instead of the xid_positions column.
func toVersion3(t *testing.T, ctx context.Context, pool *pgxpool.Pool, l *postgreslog.Log, last int64) {
	t.Helper()
	meta := postgreslog.MetaTable(l)
	for _, sql := range []string{
		"ALTER TABLE " + meta + " DROP COLUMN xid_positions",
		"ALTER TABLE " + meta + " ADD COLUMN last_position bigint NOT NULL DEFAULT 0",
		fmt.Sprintf("UPDATE %s SET schema_version = 3, last_position = %d", meta, last),
	} {
		if _, err := pool.Exec(ctx, sql); err != nil {
			t.Fatalf("%s: %v", sql, err)
		}
	}
}

// TestSetupMovesPositionsToTransactionIDs takes tables back to version 3
// with events at Positions 1-5 from the counter, and checks: a Log of this
// release refuses to append to them (ErrNotSetUp), rather than mix its
// Positions with those of writers of the older release; Setup, twice,
// brings them to version 4; the older release's way of taking Positions
// then fails; appends get Positions after the old ones, and readers read
// old and new in order.
func TestSetupMovesPositionsToTransactionIDs(t *testing.T) {
	pool := postgreslog.NewTestPool(t, nil)
	l := postgreslog.NewTestLog(t, pool)
	ctx := testCtx(t, 60*time.Second)
	const typ = "doc"
	toVersion3(t, ctx, pool, l, 5)
	for i := range 5 {
		if _, err := pool.Exec(ctx, "INSERT INTO "+postgreslog.EventsTable(l)+
			" (entity_type, entity_id, seq, position, name, revision, data) VALUES ($1, 'old', $2, $2, 'Old', 0, '')", typ, i+1); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := l.Append(ctx, typ, "new", 0, events("n", 1)...); !errors.Is(err, postgreslog.ErrNotSetUp) {
		t.Fatalf("append to version 3 tables: %v, want ErrNotSetUp", err)
	}
	for i := range 2 {
		if err := postgreslog.Setup(ctx, pool, postgreslog.WithSchema(postgreslog.Schema(l))); err != nil {
			t.Fatalf("Setup %d over version 3: %v", i+1, err)
		}
	}
	if v, err := l.SchemaVersion(ctx); err != nil || v != 4 {
		t.Fatalf("SchemaVersion after Setup: %d, %v; want 4", v, err)
	}
	_, err := pool.Exec(ctx, "UPDATE "+postgreslog.MetaTable(l)+" SET last_position = last_position + 1 WHERE id = 1")
	if err == nil || !strings.Contains(err.Error(), "last_position") {
		t.Fatalf("the older release's way of taking Positions: %v, want an error naming last_position", err)
	}
	pos := mustAppend(t, ctx, l, typ, "new", 0, events("n", 2)...)
	if pos < 1<<16 {
		t.Errorf("Position after the migration: %d, want one from the transaction id (>= 2^16)", pos)
	}
	var got []string
	for _, r := range collect(t, l.ReadType(ctx, typ, 0)) {
		got = append(got, fmt.Sprintf("%s/%d", r.EntityID, r.Seq))
	}
	if want := []string{"old/1", "old/2", "old/3", "old/4", "old/5", "new/1", "new/2"}; !slices.Equal(got, want) {
		t.Errorf("ReadType after the migration: %v, want %v", got, want)
	}
}

// TestSetupRefusesPositionsBeyondTransactionIDs takes tables back to
// version 3 with an event at a Position beyond any the transaction ids
// give, and checks that Setup fails, saying so, and changes nothing.
func TestSetupRefusesPositionsBeyondTransactionIDs(t *testing.T) {
	pool := postgreslog.NewTestPool(t, nil)
	l := postgreslog.NewTestLog(t, pool)
	ctx := testCtx(t, 60*time.Second)
	toVersion3(t, ctx, pool, l, 1<<60)
	if _, err := pool.Exec(ctx, "INSERT INTO "+postgreslog.EventsTable(l)+
		" (entity_type, entity_id, seq, position, name, revision, data) VALUES ('doc', 'far', 1, $1, 'Far', 0, '')", int64(1)<<60); err != nil {
		t.Fatal(err)
	}
	err := postgreslog.Setup(ctx, pool, postgreslog.WithSchema(postgreslog.Schema(l)))
	if err == nil || !strings.Contains(err.Error(), "reach beyond those of this transaction id") {
		t.Fatalf("Setup: %v, want an error saying the stored Positions reach beyond the transaction ids'", err)
	}
	if v, err := l.SchemaVersion(ctx); err != nil || v != 3 {
		t.Errorf("SchemaVersion after the refused Setup: %d, %v; want 3", v, err)
	}
}
