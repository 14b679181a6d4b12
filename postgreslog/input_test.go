package postgreslog_test

import (
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/eventsourced-go/eventsourced/eventlog"
	"github.com/eventsourced-go/eventsourced/postgreslog"
	"github.com/eventsourced-go/eventsourced/snapshotstore"
)

// TestInvalidOptions needs no database: bad names and values are refused
// by New and NewStore with ErrInvalidOption and a message saying what is
// wrong.
func TestInvalidOptions(t *testing.T) {
	pool := &pgxpool.Pool{} // never used: construction fails first
	long := strings.Repeat("x", 49)
	for _, c := range []struct {
		name string
		opt  postgreslog.Option
		want string // in the message
	}{
		{"empty schema", postgreslog.WithSchema(""), "empty name"},
		{"schema with a dash", postgreslog.WithSchema("my-app"), `character '-'`},
		{"schema too long", postgreslog.WithSchema(strings.Repeat("s", 64)), "more than 63"},
		{"prefix starting with a digit", postgreslog.WithTablePrefix("1app_"), `character '1'`},
		{"prefix with a quote", postgreslog.WithTablePrefix(`a"b`), `character '"'`},
		{"prefix with a semicolon", postgreslog.WithTablePrefix("x; DROP TABLE y; --"), `character ';'`},
		{"prefix with a space", postgreslog.WithTablePrefix("my app"), `character ' '`},
		{"prefix with a dot", postgreslog.WithTablePrefix("public.es_"), `character '.'`},
		{"non-ASCII prefix", postgreslog.WithTablePrefix("événements_"), `character 'é'`},
		{"prefix too long for the names", postgreslog.WithTablePrefix(strings.Repeat("p", 40)), "more than 48"},
		{"table too long", postgreslog.WithTables(postgreslog.Tables{Events: long}), "more than 48"},
		{"table with a dash", postgreslog.WithTables(postgreslog.Tables{Snapshots: "snap-shots"}), `character '-'`},
		{"two tables with one name", postgreslog.WithTables(postgreslog.Tables{Events: "t", Streams: "t"}), `both named "t"`},
		{"max batch 0", postgreslog.WithMaxBatch(0), "WithMaxBatch(0)"},
		{"max append events 0", postgreslog.WithMaxAppendEvents(0), "WithMaxAppendEvents(0)"},
		{"max append bytes 0", postgreslog.WithMaxAppendBytes(0), "WithMaxAppendBytes(0)"},
		{"max append bytes 1 GiB", postgreslog.WithMaxAppendBytes(1 << 30), "512 MiB"},
		{"poll interval 0", postgreslog.WithPollInterval(0), "WithPollInterval(0s)"},
		{"write timeout -1s", postgreslog.WithWriteTimeout(-time.Second), "WithWriteTimeout(-1s)"},
		{"concurrency 0", postgreslog.WithConcurrency(0), "WithConcurrency(0)"},
		{"nil logger", postgreslog.WithLogger(nil), "WithLogger(nil)"},
		{"nil option", nil, "nil Option"},
	} {
		t.Run(c.name, func(t *testing.T) {
			_, err := postgreslog.New(pool, c.opt)
			if !errors.Is(err, postgreslog.ErrInvalidOption) || !strings.HasPrefix(err.Error(), "postgreslog: ") || !strings.Contains(err.Error(), c.want) {
				t.Errorf("New: got %v, want ErrInvalidOption saying %q", err, c.want)
			}
			if _, err := postgreslog.NewStore(pool, c.opt); !errors.Is(err, postgreslog.ErrInvalidOption) {
				t.Errorf("NewStore: got %v, want ErrInvalidOption", err)
			}
		})
	}
	if _, err := postgreslog.New(nil); !errors.Is(err, postgreslog.ErrInvalidOption) {
		t.Errorf("New(nil): got %v, want ErrInvalidOption", err)
	}
	if _, err := postgreslog.NewStore(nil); !errors.Is(err, postgreslog.ErrInvalidOption) {
		t.Errorf("NewStore(nil): got %v, want ErrInvalidOption", err)
	}
}

// TestAppendLimits checks that empty, oversized and unnamed appends fail
// with eventlog.ErrInvalid before reaching the database, and store nothing.
func TestAppendLimits(t *testing.T) {
	pool := postgreslog.NewTestPool(t, nil)
	l := postgreslog.NewTestLog(t, pool, postgreslog.WithMaxAppendEvents(10), postgreslog.WithMaxAppendBytes(1000))
	ctx := testCtx(t, 30*time.Second)
	for _, c := range []struct {
		name   string
		events []eventlog.Event
		want   string
	}{
		{"no events", nil, "no events"},
		{"11 events", events("e", 11), "11 events, more than the limit of 10"},
		{"1001 bytes", []eventlog.Event{{Name: "big", Data: make([]byte, 1001)}}, "1001 bytes of event data, more than the limit of 1000"},
		{"metadata over the limit", []eventlog.Event{{Name: "big", Data: make([]byte, 990), Metadata: map[string]string{"k": "0123456789"}}}, "bytes of event data and metadata"},
		{"unnamed", []eventlog.Event{{Data: []byte("x")}}, "has no name"},
	} {
		_, err := l.Append(ctx, "limits", "a", 0, c.events...)
		if !errors.Is(err, eventlog.ErrInvalid) || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: got %v, want ErrInvalid saying %q", c.name, err, c.want)
		}
	}
	if seq, err := l.LastSeq(ctx, "limits", "a"); err != nil || seq != 0 {
		t.Errorf("after refused appends: LastSeq %d, %v; want 0", seq, err)
	}
	// The limits allow exactly their values.
	mustAppend(t, ctx, l, "limits", "a", 0, events("e", 10)...)
	mustAppend(t, ctx, l, "limits", "b", 0, eventlog.Event{Name: "big", Data: make([]byte, 1000)})
}

// TestClosedPool checks that every operation on a closed pool fails fast
// with ErrPoolClosed instead of hanging.
func TestClosedPool(t *testing.T) {
	pool := postgreslog.NewTestPool(t, nil)
	l := postgreslog.NewTestLog(t, pool)
	s, err := postgreslog.NewStore(pool, sameSchema(t, l))
	if err != nil {
		t.Fatal(err)
	}
	ctx := testCtx(t, 30*time.Second)
	mustAppend(t, ctx, l, "pool", "a", 0, events("e", 1)...)
	pool.Close()

	check := func(what string, err error) {
		t.Helper()
		if !errors.Is(err, postgreslog.ErrPoolClosed) {
			t.Errorf("%s: got %v, want ErrPoolClosed", what, err)
		}
	}
	_, err = l.Append(ctx, "pool", "a", 1, events("e", 1)...)
	check("Append", err)
	_, err = l.LastSeq(ctx, "pool", "a")
	check("LastSeq", err)
	check("ReadEntity", firstErr(l.ReadEntity(ctx, "pool", "a", 1)))
	check("ReadType", firstErr(l.ReadType(ctx, "pool", 0)))
	check("Subscribe", firstErr(l.Subscribe(ctx, "pool", 0)))
	check("DeleteTo", l.DeleteTo(ctx, "pool", "a", 1))
	for _, err := range l.EntityIDs(ctx, "pool") {
		check("EntityIDs", err)
	}
	check("Migrate", l.Migrate(ctx))
	check("Store.Save", s.Save(ctx, snapshotstore.Snapshot{EntityType: "pool", EntityID: "a", Seq: 1}, 0))
	_, _, err = s.Load(ctx, "pool", "a")
	check("Store.Load", err)
	if err := l.Close(); err != nil {
		t.Errorf("Close after the pool closed: %v", err)
	}
}

// firstErr returns the first error an iterator yields.
func firstErr[T any](seq func(func(T, error) bool)) error {
	for _, err := range seq {
		if err != nil {
			return err
		}
	}
	return nil
}

// sameSchema returns the option that puts a Store on l's tables.
func sameSchema(t *testing.T, l *postgreslog.Log) postgreslog.Option {
	t.Helper()
	return postgreslog.WithSchema(postgreslog.Schema(l))
}

// TestNotMigrated checks that using tables that do not exist fails with
// ErrNotMigrated.
func TestNotMigrated(t *testing.T) {
	pool := postgreslog.NewTestPool(t, nil)
	l := postgreslog.OpenTestLog(t, pool, postgreslog.WithSchema(postgreslog.FreshSchema(t, pool)))
	ctx := testCtx(t, 30*time.Second)
	_, err := l.Append(ctx, "x", "y", 0, events("e", 1)...)
	if !errors.Is(err, postgreslog.ErrNotMigrated) {
		t.Errorf("Append: got %v, want ErrNotMigrated", err)
	}
	_, err = l.LastSeq(ctx, "x", "y")
	if !errors.Is(err, postgreslog.ErrNotMigrated) {
		t.Errorf("LastSeq: got %v, want ErrNotMigrated", err)
	}
	if v, err := l.SchemaVersion(ctx); !errors.Is(err, postgreslog.ErrNotMigrated) || v != 0 {
		t.Errorf("SchemaVersion: got %d, %v; want ErrNotMigrated", v, err)
	}
}

// TestMigrate checks that Migrate is idempotent and safe to run
// concurrently, records the schema version, quotes mixed-case names, and
// refuses tables of a newer version.
func TestMigrate(t *testing.T) {
	pool := postgreslog.NewTestPool(t, nil)
	schema := postgreslog.FreshSchema(t, pool)
	opts := []postgreslog.Option{postgreslog.WithSchema(schema), postgreslog.WithTablePrefix("Mixed_Case_")}
	ctx := testCtx(t, 60*time.Second)
	var wg sync.WaitGroup
	errs := make([]error, 4)
	for i := range errs {
		wg.Go(func() {
			l := postgreslog.OpenTestLog(t, pool, opts...)
			errs[i] = l.Migrate(ctx)
		})
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Errorf("concurrent Migrate %d: %v", i, err)
		}
	}
	l := postgreslog.OpenTestLog(t, pool, opts...)
	if err := l.Migrate(ctx); err != nil {
		t.Fatalf("Migrate again: %v", err)
	}
	if v, err := l.SchemaVersion(ctx); err != nil || v != postgreslog.SchemaVersion {
		t.Errorf("SchemaVersion: %d, %v; want %d", v, err, postgreslog.SchemaVersion)
	}
	for _, table := range []string{"Mixed_Case_events", "Mixed_Case_streams", "Mixed_Case_snapshots", "Mixed_Case_meta"} {
		var exists bool
		if err := pool.QueryRow(ctx, `SELECT to_regclass(format('%I.%I', $1::text, $2::text)) IS NOT NULL`, schema, table).Scan(&exists); err != nil || !exists {
			t.Errorf("table %s.%s: exists %v, %v", schema, table, exists, err)
		}
	}
	mustAppend(t, ctx, l, "mixed", "a", 0, events("e", 2)...)
	if recs := readAll(t, ctx, l, "mixed", "a"); len(recs) != 2 {
		t.Errorf("read back %d events, want 2", len(recs))
	}

	if _, err := pool.Exec(ctx, "UPDATE "+postgreslog.MetaTable(l)+" SET schema_version = 99"); err != nil {
		t.Fatal(err)
	}
	if err := l.Migrate(ctx); !errors.Is(err, postgreslog.ErrSchemaVersion) {
		t.Errorf("Migrate over version 99: got %v, want ErrSchemaVersion", err)
	}
}

// TestStoreClosed checks the Store's lifecycle.
func TestStoreClosed(t *testing.T) {
	pool := postgreslog.NewTestPool(t, nil)
	l := postgreslog.NewTestLog(t, pool)
	s, err := postgreslog.NewStore(pool, sameSchema(t, l))
	if err != nil {
		t.Fatal(err)
	}
	ctx := testCtx(t, 30*time.Second)
	snap := snapshotstore.Snapshot{EntityType: "c", EntityID: "1", Seq: 3, Data: []byte("state")}
	if err := s.Save(ctx, snap, 1); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if err := s.Save(ctx, snap, 1); !errors.Is(err, snapshotstore.ErrClosed) {
		t.Errorf("Save after Close: %v", err)
	}
	if _, _, err := s.Load(ctx, "c", "1"); !errors.Is(err, snapshotstore.ErrClosed) {
		t.Errorf("Load after Close: %v", err)
	}
	if err := s.Close(); !errors.Is(err, snapshotstore.ErrClosed) {
		t.Errorf("second Close: %v", err)
	}
}

// TestEntityIDsPagesAndKeepsDeleted lists more ids than one page holds, and
// an entity whose events were all deleted.
func TestEntityIDsPagesAndKeepsDeleted(t *testing.T) {
	pool := postgreslog.NewTestPool(t, nil)
	l := postgreslog.NewTestLog(t, pool)
	ctx := testCtx(t, 60*time.Second)
	const n = 2500 // more than two pages
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			if _, err := l.Append(ctx, "many", fmt.Sprintf("id-%05d", i), 0, events("e", 1+i%2)...); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	if err := l.DeleteTo(ctx, "many", "id-00007", 10); err != nil {
		t.Fatal(err)
	}
	if recs := readAll(t, ctx, l, "many", "id-00007"); len(recs) != 0 {
		t.Fatalf("id-00007 still holds %d events", len(recs))
	}
	seen := make(map[string]int)
	for id, err := range l.EntityIDs(ctx, "many") {
		if err != nil {
			t.Fatal(err)
		}
		seen[id]++
	}
	if len(seen) != n {
		t.Errorf("EntityIDs listed %d ids, want %d", len(seen), n)
	}
	for id, k := range seen {
		if k != 1 {
			t.Errorf("%s listed %d times", id, k)
		}
	}
	if seen["id-00007"] != 1 {
		t.Errorf("the entity whose events were all deleted is not listed")
	}
	if seq, err := l.LastSeq(ctx, "many", "id-00007"); err != nil || seq != 2 {
		t.Errorf("LastSeq of the emptied stream: %d, %v; want 2", seq, err)
	}
}
