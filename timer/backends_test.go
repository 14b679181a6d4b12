package timer_test

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/eventsourced-go/eventsourced/eventlog"
	"github.com/eventsourced-go/eventsourced/internal/natstest"
	"github.com/eventsourced-go/eventsourced/internal/pgtest"
	"github.com/eventsourced-go/eventsourced/postgreslog"
	"github.com/eventsourced-go/eventsourced/projection"
	"github.com/eventsourced-go/eventsourced/projection/natsprojection"
	"github.com/eventsourced-go/eventsourced/projection/pgprojection"
	"github.com/eventsourced-go/eventsourced/timer"
)

// postgres returns a postgreslog.Log and a pgprojection.Store in a fresh
// schema, dropped when t ends (see internal/pgtest).
func postgres(t *testing.T) (*postgreslog.Log, *pgprojection.Store) {
	t.Helper()
	l, pool, schema := pgtest.Log(t, "timer_test_")
	store, err := pgprojection.New(pool, pgprojection.WithTable(schema+".timer_marks"))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
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

// Rule: after Reslice from unsliced to 3 slices, every pending timer fires
// once, in its slice; bad arguments are refused.
func TestReslice(t *testing.T) {
	ctx := context.Background()
	log, offsets := eventlog.NewMemory(), projection.NewMemory()
	rec := &recorder{}
	sys, tm := run(t, log, offsets, "re", rec.fire)
	for i := range 20 {
		tm.After(ctx, fmt.Sprint("done-", i), 0, nil)
	}
	waitFor(t, "the first timers", func() bool { return tm.Status().Recorded == 20 && tm.Status().Pending == 0 })
	due := time.Now().Add(300 * time.Millisecond)
	for i := range 30 {
		tm.Schedule(ctx, fmt.Sprint("later-", i), due, nil)
	}
	waitFor(t, "the later timers to be read", func() bool { return tm.Status().Pending == 30 })
	stop(t, sys, tm)
	mark, _ := offsets.Load(ctx, "re")
	if mark != 40 {
		t.Fatalf("mark %d, want 40 (20 Scheduled and 20 Fired before the later ones)", mark)
	}
	if err := timer.Reslice(ctx, offsets, "re", 1, 3); err != nil {
		t.Fatal(err)
	}
	recs := make([]*recorder, 3)
	tms := make([]*timer.Timers, 3)
	for i := range 3 {
		if m, _ := offsets.Load(ctx, projection.SliceName("re", i, 3)); m != mark {
			t.Errorf("slice %d's mark %d, want %d", i, m, mark)
		}
		recs[i] = &recorder{}
		_, tms[i] = run(t, log, offsets, "re", recs[i].fire, timer.WithSlice(i, 3))
	}
	waitFor(t, "the later timers to fire", func() bool {
		n := 0
		for _, tm := range tms {
			n += int(tm.Status().Recorded)
		}
		return n == 30
	})
	seen := map[string]int{}
	for i, r := range recs {
		for _, c := range r.got() {
			seen[c.ID]++
			if s := projection.SliceOf(tms[i].Type(), c.ID, 3); s != i {
				t.Errorf("slice %d fired %s, which is slice %d's", i, c.ID, s)
			}
		}
	}
	for i := range 30 {
		if n := seen[fmt.Sprint("later-", i)]; n != 1 {
			t.Errorf("later-%d fired %d times, want once", i, n)
		}
	}
	if len(seen) != 30 {
		t.Errorf("the slices fired %d timers, want the 30 later ones only", len(seen))
	}
	for _, bad := range []struct {
		name     string
		from, to int
		offsets  projection.OffsetStore
	}{{"", 1, 2, offsets}, {"re", -1, 2, offsets}, {"re", 1, projection.MaxSlices + 1, offsets}, {"re", 1, 2, nil}} {
		if err := timer.Reslice(ctx, bad.offsets, bad.name, bad.from, bad.to); !errors.Is(err, timer.ErrInvalid) {
			t.Errorf("Reslice(%q, %d, %d): %v, want ErrInvalid", bad.name, bad.from, bad.to, err)
		}
	}
}
