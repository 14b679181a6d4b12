package timer_test

import (
	"context"
	"crypto/rand"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/eventsourced-go/eventsourced/eventlog"
	"github.com/eventsourced-go/eventsourced/internal/natstest"
	"github.com/eventsourced-go/eventsourced/postgreslog"
	"github.com/eventsourced-go/eventsourced/projection"
	"github.com/eventsourced-go/eventsourced/projection/natsprojection"
	"github.com/eventsourced-go/eventsourced/projection/pgprojection"
	"github.com/eventsourced-go/eventsourced/timer"
)

// dsnVar names the environment variable with the test database, as in
// package postgreslog's tests.
const dsnVar = "EVENTSOURCED_POSTGRES_DSN"

// postgres returns a postgreslog.Log and a pgprojection.Store in a fresh
// schema, dropped when t ends. Without a database the test is skipped,
// unless CI=true, where it fails: CI must not pass by skipping.
func postgres(t *testing.T) (*postgreslog.Log, *pgprojection.Store) {
	t.Helper()
	dsn := os.Getenv(dsnVar)
	if dsn == "" {
		if os.Getenv("CI") == "true" {
			t.Fatalf("%s is not set and CI=true: PostgreSQL tests must run in CI (make test provisions a server)", dsnVar)
		}
		t.Skipf("%s is not set: skipping PostgreSQL tests (make test provisions a server)", dsnVar)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	pool, err := pgxpool.New(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Close)
	schema := "timer_test_" + strings.ToLower(rand.Text()[:10])
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if _, err := pool.Exec(ctx, "DROP SCHEMA IF EXISTS "+pgx.Identifier{schema}.Sanitize()+" CASCADE"); err != nil {
			t.Errorf("drop schema %s: %v", schema, err)
		}
	})
	if err := postgreslog.Setup(ctx, pool, postgreslog.WithSchema(schema)); err != nil {
		t.Fatalf("postgreslog.Setup: %v", err)
	}
	l, err := postgreslog.New(pool, postgreslog.WithSchema(schema))
	if err != nil {
		t.Fatalf("postgreslog.New: %v", err)
	}
	t.Cleanup(func() { l.Close() })
	store, err := pgprojection.New(pool, pgprojection.WithTable(schema+".timer_marks"))
	if err != nil {
		t.Fatal(err)
	}
	if err := store.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	return l, store
}

// Rule: on PostgreSQL (postgreslog, the mark in pgprojection), pending
// timers fire after a restart and recorded ones do not fire again.
func TestPostgresRestart(t *testing.T) {
	log, store := postgres(t)
	testRestart(t, log, store)
}

// Rule: on PostgreSQL, 1,000 timers across a restart: each not cancelled
// fires, none of the 100 cancelled fires, p99 lateness under 1 s.
func TestPostgresManyAcrossRestart(t *testing.T) {
	log, store := postgres(t)
	testManyAcrossRestart(t, log, store, 1000, 100)
}

// natsBackend returns a natslog.Log on an embedded JetStream server and a
// natsprojection.Store on the same server.
func natsBackend(t *testing.T) (eventlog.Log, projection.OffsetStore) {
	t.Helper()
	log, js := natstest.Log(t)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	store, err := natsprojection.New(ctx, js)
	if err != nil {
		t.Fatal(err)
	}
	return log, store
}

// Rule: on embedded NATS JetStream (natslog, the mark in natsprojection),
// pending timers fire after a restart and recorded ones do not fire
// again.
func TestNATSRestart(t *testing.T) {
	log, store := natsBackend(t)
	testRestart(t, log, store)
}

// Rule: on NATS, 1,000 timers across a restart: each not cancelled fires,
// none of the 100 cancelled fires, p99 lateness under 1 s.
func TestNATSManyAcrossRestart(t *testing.T) {
	log, store := natsBackend(t)
	testManyAcrossRestart(t, log, store, 1000, 100)
}

// Rule: sliced timers (two runners, as two processes on one log) fire
// every timer once, each in the slice its id belongs to, and keep one
// low-water mark per slice.
func TestSlices(t *testing.T) {
	ctx := context.Background()
	log, offsets := eventlog.NewMemory(), projection.NewMemory()
	recs := []*recorder{{}, {}}
	var tms []*timer.Timers
	for i := range 2 {
		_, tm := run(t, log, offsets, "sliced", recs[i].fire, timer.WithSlice(i, 2), timer.WithMarkInterval(10*time.Millisecond))
		tms = append(tms, tm)
	}
	const n = 40
	for i := range n {
		// Through the process that runs the timer's slice, as the package
		// documentation says.
		id := fmt.Sprint("s-", i)
		if err := tms[projection.SliceOf(tms[0].Type(), id, 2)].After(ctx, id, 0, nil); err != nil {
			t.Fatal(err)
		}
	}
	waitFor(t, "every timer to be recorded", func() bool {
		return tms[0].Status().Recorded+tms[1].Status().Recorded == n && tms[0].Status().Pending+tms[1].Status().Pending == 0
	})
	for i, r := range recs {
		for _, c := range r.got() {
			if s := projection.SliceOf(tms[i].Type(), c.ID, 2); s != i {
				t.Errorf("slice %d fired %s, which is slice %d's", i, c.ID, s)
			}
		}
	}
	if a, b := len(recs[0].got()), len(recs[1].got()); a+b != n || a == 0 || b == 0 {
		t.Errorf("slices fired %d and %d timers; want %d in all, some in each", a, b, n)
	}
	for i, tm := range tms {
		name := projection.SliceName("sliced", i, 2)
		waitFor(t, "the mark of "+name, func() bool {
			m, _ := offsets.Load(ctx, name)
			return m > 0 && m == tm.Status().Next
		})
		if st := tm.Status(); st.Name != name {
			t.Errorf("status name %q, want %q", st.Name, name)
		}
	}
}
