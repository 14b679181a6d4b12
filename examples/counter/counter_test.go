package main

import (
	"context"
	"io"
	"slices"
	"strings"
	"testing"

	"github.com/eventsourced-go/eventsourced/internal/pgdsn"

	"fmt"
	"net/url"
	"time"

	"github.com/eventsourced-go/eventsourced/entity/entitytest"
	"github.com/eventsourced-go/eventsourced/natslog"
	"github.com/jackc/pgx/v5/pgxpool"
)

func TestCounter(t *testing.T) {
	f := entitytest.New(t, CounterType(), "c-1")
	entitytest.When(f, Increment{By: 3}).ThenEvents(Incremented{By: 3}).ThenReply(3)
	entitytest.When(f, Increment{By: 0}).ThenError(ErrNotPositive)
	entitytest.When(f, Decrement{By: 2}).ThenEvents(Decremented{By: 2}).ThenReply(1).ThenState(Counter{Value: 1})
	entitytest.When(f, Decrement{By: 5}).ThenError(ErrBelowZero)
	entitytest.When(f, Get{}).ThenNoEvents().ThenReply(1)
}

func TestCounterGiven(t *testing.T) {
	f := entitytest.New(t, CounterType(), "c-2").Given(Incremented{By: 10}, Decremented{By: 4})
	entitytest.When(f, Get{}).ThenReply(6)
	if f.Seq() != 2 {
		t.Errorf("Seq after two given events: %d, want 2", f.Seq())
	}
}

func TestRun(t *testing.T) {
	values, err := run(context.Background(), config{store: "memory", counters: 2, increments: 50}, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(values, []int{50, 50}) {
		t.Errorf("values %v, want [50 50]", values)
	}
	if _, err := run(context.Background(), config{store: "memory", counters: 0, increments: 1}, io.Discard); err == nil {
		t.Error("run with 0 counters accepted them")
	}
	if _, err := run(context.Background(), config{store: "disk", counters: 1, increments: 1}, io.Discard); err == nil {
		t.Error("run with -store disk accepted it")
	}
}

// TestRunNATS runs the example twice on the embedded NATS server with the
// same data directory: the second run continues from the first's counts.
func TestRunNATS(t *testing.T) {
	dir := t.TempDir()
	cfg := config{store: "nats", dataDir: dir, counters: 3, increments: 150}
	var out strings.Builder
	for i, want := range []int{150, 300} {
		out.Reset()
		values, err := run(context.Background(), cfg, &out)
		if err != nil {
			t.Fatalf("run %d: %v", i+1, err)
		}
		if !slices.Equal(values, []int{want, want, want}) {
			t.Errorf("run %d: values %v, want %d each", i+1, values, want)
		}
	}
	for _, line := range []string{"store: embedded NATS, data in " + dir, "counter-1 = 300", "ErrBelowZero: true"} {
		if !strings.Contains(out.String(), line) {
			t.Errorf("output of the second run lacks %q:\n%s", line, out.String())
		}
	}
}

// TestRunExternalNATS runs the example against a NATS server given by URL.
func TestRunExternalNATS(t *testing.T) {
	srv, err := natslog.StartEmbedded(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Shutdown()
	var out strings.Builder
	values, err := run(context.Background(), config{natsURL: srv.ClientURL(), counters: 1, increments: 20}, &out)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(values, []int{20}) || !strings.Contains(out.String(), "store: NATS at "+srv.ClientURL()) {
		t.Errorf("values %v, output:\n%s", values, out.String())
	}
}

// TestRunPostgres runs the example twice against PostgreSQL in a fresh
// schema: the second run continues from the first's counts.
func TestRunPostgres(t *testing.T) {
	dsn := pgdsn.Require(t)
	schema := fmt.Sprintf("counter_example_%d", time.Now().UnixNano())
	u, err := url.Parse(dsn)
	if err != nil {
		t.Fatal(err)
	}
	q := u.Query()
	q.Set("search_path", schema)
	u.RawQuery = q.Encode()
	pool, err := pgxpool.New(context.Background(), dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer pool.Close()
	if _, err := pool.Exec(context.Background(), "CREATE SCHEMA "+schema); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { pool.Exec(context.Background(), "DROP SCHEMA "+schema+" CASCADE") })

	cfg := config{postgresDSN: u.String(), counters: 2, increments: 40}
	for i, want := range []int{40, 80} {
		var out strings.Builder
		values, err := run(context.Background(), cfg, &out)
		if err != nil {
			t.Fatalf("run %d: %v", i+1, err)
		}
		if !slices.Equal(values, []int{want, want}) {
			t.Errorf("run %d: values %v, want %d each", i+1, values, want)
		}
		if !strings.Contains(out.String(), "store: PostgreSQL") {
			t.Errorf("run %d output lacks the store line:\n%s", i+1, out.String())
		}
	}
	if _, err := run(context.Background(), config{store: "postgres", counters: 1, increments: 1}, io.Discard); err == nil || !strings.Contains(err.Error(), "needs -postgres DSN") {
		t.Errorf("-store postgres without a DSN: %v", err)
	}
}
