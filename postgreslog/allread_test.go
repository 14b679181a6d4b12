package postgreslog_test

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/eventsourced-go/eventsourced/eventlog"
	"github.com/eventsourced-go/eventsourced/postgreslog"
)

// readAllKeys reads every type, or the types given, after 0 and returns
// the records as type/id#seq@position.
func readAllKeys(t *testing.T, ctx context.Context, l *postgreslog.Log, types ...string) []string {
	t.Helper()
	var out []string
	for r, err := range l.ReadAll(ctx, 0, types...) {
		if err != nil {
			t.Fatalf("ReadAll(0, %v): %v", types, err)
		}
		out = append(out, fmt.Sprintf("%s/%s#%d@%d", r.EntityType, r.EntityID, r.Seq, r.Position))
	}
	return out
}

// TestSetupMigratesToPositionIndex takes tables back to version 2 (no index
// on position alone, version 2 recorded) and checks that ReadAll works on
// them, unchanged, and that Setup, twice, brings them to the current
// version with a unique index on position that the reads of every type
// use.
func TestSetupMigratesToPositionIndex(t *testing.T) {
	pool := postgreslog.NewTestPool(t, nil)
	l := postgreslog.NewTestLog(t, pool)
	ctx := testCtx(t, 60*time.Second)
	opts := []postgreslog.Option{postgreslog.WithSchema(postgreslog.Schema(l))}
	for i := range 3 {
		mustAppend(t, ctx, l, "order", fmt.Sprintf("o%d", i), 0, events("e", 2)...)
		mustAppend(t, ctx, l, "invoice", fmt.Sprintf("i%d", i), 0, events("e", 1)...)
	}
	want := readAllKeys(t, ctx, l)
	wantOrders := readAllKeys(t, ctx, l, "order", "none")
	if len(want) != 9 || len(wantOrders) != 6 {
		t.Fatalf("ReadAll before the migration: %d and %d records, want 9 and 6", len(want), len(wantOrders))
	}
	index := postgreslog.PositionIndex(l)
	indexDef := func() string {
		t.Helper()
		var def string
		err := pool.QueryRow(ctx, `SELECT coalesce(max(indexdef), '') FROM pg_indexes WHERE schemaname = $1 AND indexname = $2`,
			postgreslog.Schema(l), index).Scan(&def)
		if err != nil {
			t.Fatalf("look up index %s: %v", index, err)
		}
		return def
	}
	if def := indexDef(); def == "" {
		t.Fatalf("Setup created no index %s", index)
	}
	for _, sql := range []string{
		fmt.Sprintf(`DROP INDEX %q.%q`, postgreslog.Schema(l), index),
		"UPDATE " + postgreslog.MetaTable(l) + " SET schema_version = 2",
	} {
		if _, err := pool.Exec(ctx, sql); err != nil {
			t.Fatalf("%s: %v", sql, err)
		}
	}
	// Version 2 tables serve every call, ReadAll by scanning.
	if got := readAllKeys(t, ctx, l); !slices.Equal(got, want) {
		t.Errorf("ReadAll on version 2 tables: %v, want %v", got, want)
	}
	mustAppend(t, ctx, l, "order", "o0", 2, events("late", 1)...)
	want = readAllKeys(t, ctx, l)
	for i := range 2 {
		if err := postgreslog.Setup(ctx, pool, opts...); err != nil {
			t.Fatalf("Setup %d over version 2: %v", i+1, err)
		}
	}
	if v, err := l.SchemaVersion(ctx); err != nil || v != postgreslog.SchemaVersion {
		t.Errorf("SchemaVersion: %d, %v; want %d", v, err, postgreslog.SchemaVersion)
	}
	if def, wantDef := indexDef(), fmt.Sprintf("CREATE UNIQUE INDEX %s ON %s.%s USING btree (\"position\")", index, postgreslog.Schema(l), "eventsourced_events"); def != wantDef {
		t.Errorf("index after the migration: %q, want %q", def, wantDef)
	}
	if got := readAllKeys(t, ctx, l); !slices.Equal(got, want) {
		t.Errorf("ReadAll after the migration: %v, want %v", got, want)
	}
	// The index serves the order of the reads of every type: with scans
	// of the whole table and sorts priced out, as they are for a large
	// table, the planner pages through it.
	tx, err := pool.Begin(ctx)
	if err != nil {
		t.Fatalf("begin: %v", err)
	}
	defer func() { _ = tx.Rollback(ctx) }()
	if _, err := tx.Exec(ctx, "SET LOCAL enable_seqscan = off; SET LOCAL enable_sort = off"); err != nil {
		t.Fatalf("SET LOCAL: %v", err)
	}
	var plan []string
	rows, err := tx.Query(ctx, fmt.Sprintf(`EXPLAIN SELECT * FROM %s WHERE position > 0 ORDER BY position LIMIT 1000`, postgreslog.EventsTable(l)))
	if err != nil {
		t.Fatalf("EXPLAIN: %v", err)
	}
	for rows.Next() {
		var line string
		if err := rows.Scan(&line); err != nil {
			t.Fatalf("EXPLAIN: %v", err)
		}
		plan = append(plan, line)
	}
	if rows.Err() != nil {
		t.Fatalf("EXPLAIN: %v", rows.Err())
	}
	if !slices.ContainsFunc(plan, func(s string) bool { return strings.Contains(s, "Index Scan using "+index) }) {
		t.Errorf("the read of every type does not use %s: %v", index, plan)
	}
}

// TestSubscribeAllAcrossLogs runs writers of several types on Logs of their
// own (as separate processes) against live readers of every type and of
// two types on another Log, which polls only every minute: NOTIFY must
// wake them, and they must see every event once, in Position order.
func TestSubscribeAllAcrossLogs(t *testing.T) {
	pool := postgreslog.NewTestPool(t, nil)
	const writers, appends = 4, 40
	logs := newLogs(t, pool, writers+1, postgreslog.WithPollInterval(time.Minute))
	reader := logs[writers]
	ctx := testCtx(t, 90*time.Second)
	types := []string{"t0", "t1", "t2"}

	type sub struct {
		mu   sync.Mutex // guards recs and err
		recs []eventlog.Record
		err  error
	}
	start := func(ts ...string) *sub {
		s := &sub{}
		go func() {
			for r, err := range reader.SubscribeAll(ctx, 0, ts...) {
				s.mu.Lock()
				if err != nil {
					s.err = err
				} else {
					s.recs = append(s.recs, r)
				}
				s.mu.Unlock()
				if err != nil {
					return
				}
			}
		}()
		return s
	}
	all, some := start(), start("t0", "t2")
	waitFor(t, 10*time.Second, "the listener", func() bool { return postgreslog.ListenerPID(reader) != 0 })

	var wg sync.WaitGroup
	var mu sync.Mutex // guards want
	want := make(map[string]int)
	for w := range writers {
		wg.Go(func() {
			last := make(map[string]uint64)
			for i := range appends {
				typ := types[i%3]
				id := fmt.Sprintf("w%d-%d", w, i%2)
				pos, err := logs[w].Append(ctx, typ, id, last[typ+id], events("e", 1+i%2)...)
				if err != nil {
					t.Errorf("writer %d: %v", w, err)
					return
				}
				mu.Lock()
				want[typ] = max(want[typ], int(pos))
				last[typ+id] += uint64(1 + i%2)
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	if t.Failed() {
		return
	}
	check := func(via string, s *sub, follows []string) {
		t.Helper()
		var maxPos uint64
		for _, typ := range follows {
			maxPos = max(maxPos, uint64(want[typ]))
		}
		var recs []eventlog.Record
		waitFor(t, 15*time.Second, via+" to reach the last Position (with a poll interval of a minute, NOTIFY must wake it)", func() bool {
			s.mu.Lock()
			defer s.mu.Unlock()
			if s.err != nil {
				t.Fatalf("%s: %v", via, s.err)
			}
			recs = slices.Clone(s.recs)
			return len(recs) > 0 && recs[len(recs)-1].Position >= maxPos
		})
		seen := make(map[string]bool)
		for i, r := range recs {
			if i > 0 && r.Position <= recs[i-1].Position {
				t.Errorf("%s: Position %d after %d", via, r.Position, recs[i-1].Position)
			}
			if !slices.Contains(follows, r.EntityType) {
				t.Errorf("%s: an event of type %s", via, r.EntityType)
			}
			k := fmt.Sprintf("%s/%s#%d", r.EntityType, r.EntityID, r.Seq)
			if seen[k] {
				t.Errorf("%s: %s twice", via, k)
			}
			seen[k] = true
		}
		// As many as ReadType finds of the types followed.
		total := 0
		for _, typ := range follows {
			for _, err := range reader.ReadType(ctx, typ, 0) {
				if err != nil {
					t.Fatalf("ReadType(%s): %v", typ, err)
				}
				total++
			}
		}
		if len(seen) != total {
			t.Errorf("%s: %d events, want %d", via, len(seen), total)
		}
	}
	check("SubscribeAll of every type", all, types)
	check("SubscribeAll of t0 and t2", some, []string{"t0", "t2"})
}
