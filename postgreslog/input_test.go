package postgreslog_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"go.opentelemetry.io/otel/metric/noop"
	tracenoop "go.opentelemetry.io/otel/trace/noop"

	"github.com/eventsourced-go/eventsourced/eventlog"
	"github.com/eventsourced-go/eventsourced/postgreslog"
	"github.com/eventsourced-go/eventsourced/snapshotstore"
)

// TestInvalidOptions needs no database: bad names and values are refused
// by Setup, New and NewSnapshotStore with ErrInvalidOption and a message
// saying what is wrong, and so are options a call does not take.
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
		{"max batch 65536", postgreslog.WithMaxBatch(65536), "WithMaxBatch(65536): must be between 1 and 65535"},
		{"max append events 65536", postgreslog.WithMaxAppendEvents(65536), "WithMaxAppendEvents(65536): must be between 1 and 65535"},
		{"max append bytes 0", postgreslog.WithMaxAppendBytes(0), "WithMaxAppendBytes(0)"},
		{"max append bytes 1 GiB", postgreslog.WithMaxAppendBytes(1 << 30), "512 MiB"},
		{"poll interval 0", postgreslog.WithPollInterval(0), "WithPollInterval(0s)"},
		{"write timeout -1s", postgreslog.WithWriteTimeout(-time.Second), "WithWriteTimeout(-1s)"},
		{"concurrency 0", postgreslog.WithConcurrency(0), "WithConcurrency(0)"},
		{"nil logger", postgreslog.WithLogger(nil), "WithLogger(nil)"},
		{"nil tracer provider", postgreslog.WithTracerProvider(nil), "WithTracerProvider(nil)"},
		{"nil meter provider", postgreslog.WithMeterProvider(nil), "WithMeterProvider(nil)"},
		{"zero option", postgreslog.Option{}, "a zero Option"},
	} {
		t.Run(c.name, func(t *testing.T) {
			_, err := postgreslog.New(pool, c.opt)
			if !errors.Is(err, postgreslog.ErrInvalidOption) || !strings.HasPrefix(err.Error(), "postgreslog: ") || !strings.Contains(err.Error(), c.want) {
				t.Errorf("New: got %v, want ErrInvalidOption saying %q", err, c.want)
			}
			if _, err := postgreslog.NewSnapshotStore(pool, c.opt); !errors.Is(err, postgreslog.ErrInvalidOption) {
				t.Errorf("NewSnapshotStore: got %v, want ErrInvalidOption", err)
			}
			if err := postgreslog.Setup(context.Background(), pool, c.opt); !errors.Is(err, postgreslog.ErrInvalidOption) {
				t.Errorf("Setup: got %v, want ErrInvalidOption", err)
			}
		})
	}
	if _, err := postgreslog.New(nil); !errors.Is(err, postgreslog.ErrInvalidOption) {
		t.Errorf("New(nil): got %v, want ErrInvalidOption", err)
	}
	if _, err := postgreslog.NewSnapshotStore(nil); !errors.Is(err, postgreslog.ErrInvalidOption) {
		t.Errorf("NewSnapshotStore(nil): got %v, want ErrInvalidOption", err)
	}
	if err := postgreslog.Setup(context.Background(), nil); !errors.Is(err, postgreslog.ErrInvalidOption) {
		t.Errorf("Setup(nil): got %v, want ErrInvalidOption", err)
	}
	// An option a call does not take is refused, naming it, never ignored.
	_, err := postgreslog.NewSnapshotStore(pool, postgreslog.WithMaxBatch(10))
	if !errors.Is(err, postgreslog.ErrInvalidOption) || !strings.Contains(err.Error(), "WithMaxBatch(10) is an option of New, not of NewSnapshotStore") {
		t.Errorf("NewSnapshotStore with WithMaxBatch: %v", err)
	}
	err = postgreslog.Setup(context.Background(), pool, postgreslog.WithNotify(false))
	if !errors.Is(err, postgreslog.ErrInvalidOption) || !strings.Contains(err.Error(), "WithNotify(false) is an option of New, not of Setup") {
		t.Errorf("Setup with WithNotify: %v", err)
	}
	err = postgreslog.Setup(context.Background(), pool, postgreslog.WithMeterProvider(noop.NewMeterProvider()))
	if !errors.Is(err, postgreslog.ErrInvalidOption) || !strings.Contains(err.Error(), "WithMeterProvider is an option of New and NewSnapshotStore, not of Setup") {
		t.Errorf("Setup with WithMeterProvider: %v", err)
	}
	err = postgreslog.Setup(context.Background(), pool, postgreslog.WithTracerProvider(tracenoop.NewTracerProvider()))
	if !errors.Is(err, postgreslog.ErrInvalidOption) || !strings.Contains(err.Error(), "WithTracerProvider is an option of New and NewSnapshotStore, not of Setup") {
		t.Errorf("Setup with WithTracerProvider: %v", err)
	}
}

// TestAppendLimits checks that empty, oversized and unnamed appends fail
// with eventlog.ErrInvalid (oversized ones with ErrTooLarge too) before
// reaching the database, and store nothing.
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
		if tooLarge := strings.Contains(err.Error(), "more than the limit"); errors.Is(err, postgreslog.ErrTooLarge) != tooLarge {
			t.Errorf("%s: got %v, matching ErrTooLarge: %v, want %v", c.name, err, !tooLarge, tooLarge)
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
	s, err := postgreslog.NewSnapshotStore(pool, sameSchema(t, l))
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
	_, err = l.DeleteStream(ctx, "pool", "a", false)
	check("DeleteStream", err)
	for _, err := range l.EntityIDs(ctx, "pool") {
		check("EntityIDs", err)
	}
	check("Setup", postgreslog.Setup(ctx, pool, sameSchema(t, l)))
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

// sameSchema returns the option that puts a SnapshotStore, or Setup, on
// l's tables.
func sameSchema(t *testing.T, l *postgreslog.Log) postgreslog.Option {
	t.Helper()
	return postgreslog.WithSchema(postgreslog.Schema(l))
}

// TestNotSetUp checks that using tables that do not exist fails with
// ErrNotSetUp.
func TestNotSetUp(t *testing.T) {
	pool := postgreslog.NewTestPool(t, nil)
	l := postgreslog.OpenTestLog(t, pool, postgreslog.WithSchema(postgreslog.FreshSchema(t, pool)))
	ctx := testCtx(t, 30*time.Second)
	_, err := l.Append(ctx, "x", "y", 0, events("e", 1)...)
	if !errors.Is(err, postgreslog.ErrNotSetUp) {
		t.Errorf("Append: got %v, want ErrNotSetUp", err)
	}
	_, err = l.LastSeq(ctx, "x", "y")
	if !errors.Is(err, postgreslog.ErrNotSetUp) {
		t.Errorf("LastSeq: got %v, want ErrNotSetUp", err)
	}
	if v, err := l.SchemaVersion(ctx); !errors.Is(err, postgreslog.ErrNotSetUp) || v != 0 {
		t.Errorf("SchemaVersion: got %d, %v; want ErrNotSetUp", v, err)
	}
}

// TestSetup checks that Setup is idempotent and safe to run concurrently,
// records the schema version, quotes mixed-case names, and refuses tables of
// a newer version.
func TestSetup(t *testing.T) {
	pool := postgreslog.NewTestPool(t, nil)
	schema := postgreslog.FreshSchema(t, pool)
	opts := []postgreslog.Option{postgreslog.WithSchema(schema), postgreslog.WithTablePrefix("Mixed_Case_")}
	ctx := testCtx(t, 60*time.Second)
	var wg sync.WaitGroup
	errs := make([]error, 4)
	for i := range errs {
		wg.Go(func() { errs[i] = postgreslog.Setup(ctx, pool, opts...) })
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Errorf("concurrent Setup %d: %v", i, err)
		}
	}
	l := postgreslog.OpenTestLog(t, pool, opts...)
	if err := postgreslog.Setup(ctx, pool, opts...); err != nil {
		t.Fatalf("Setup again: %v", err)
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
	if err := postgreslog.Setup(ctx, pool, opts...); !errors.Is(err, postgreslog.ErrSchemaVersion) {
		t.Errorf("Setup over version 99: got %v, want ErrSchemaVersion", err)
	}
}

// TestStoreClosed checks the SnapshotStore's lifecycle.
func TestStoreClosed(t *testing.T) {
	pool := postgreslog.NewTestPool(t, nil)
	l := postgreslog.NewTestLog(t, pool)
	s, err := postgreslog.NewSnapshotStore(pool, sameSchema(t, l))
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
