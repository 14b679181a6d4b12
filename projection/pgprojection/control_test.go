package pgprojection_test

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/eventsourced-go/eventsourced/eventlog"
	"github.com/eventsourced-go/eventsourced/projection"
	"github.com/eventsourced-go/eventsourced/projection/pgprojection"
	"github.com/eventsourced-go/eventsourced/projection/projectiontest"
)

// TestControlConformance runs the control-record suite on one table.
func TestControlConformance(t *testing.T) {
	f := newFixture(t)
	projectiontest.RunControls(t, func(t *testing.T) projection.Controls { return f.store })
}

// controlInterval is the control interval of these tests.
const controlInterval = 20 * time.Millisecond

// TestPauseResumeExactlyOnce pauses a running projection, appends while it
// is paused, restarts it paused, and resumes it: nothing is handled while
// paused, and every event is counted exactly once in the end.
func TestPauseResumeExactlyOnce(t *testing.T) {
	f := newFixture(t)
	ctx := t.Context()
	log := eventlog.NewMemory()
	appendN(t, log, "t1", 5)
	p, err := projection.New(log, "Tab", "counts", f.store, f.handler(), projection.WithBatchSize(3), projection.WithControlInterval(controlInterval))
	if err != nil {
		t.Fatal(err)
	}
	defer p.Stop(context.Background())
	if err := p.Start(ctx); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "offset 5", func() bool { return f.offset(t, "counts") == 5 })

	if err := projection.Pause(ctx, f.store, "counts"); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "paused", func() bool { return p.Status().State == projection.StatePaused })
	ctl, _, err := f.store.LoadControl(ctx, "counts")
	if err != nil {
		t.Fatal(err)
	}
	if st := p.Status(); !st.PausedSince.Equal(ctl.PausedAt) {
		t.Errorf("paused since %v, want the record's %v", st.PausedSince, ctl.PausedAt)
	}
	appendN(t, log, "t2", 4)
	time.Sleep(10 * controlInterval)
	if got, want := f.counts(t), map[string]int{"t1": 5}; !equalCounts(got, want) || f.offset(t, "counts") != 5 {
		t.Fatalf("while paused: read model %v at offset %d, want %v at 5", got, f.offset(t, "counts"), want)
	}

	// Stop and Start: still paused.
	if err := p.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	if err := p.Start(ctx); err != nil {
		t.Fatal(err)
	}
	time.Sleep(10 * controlInterval)
	if st := p.Status(); st.State != projection.StatePaused || f.offset(t, "counts") != 5 {
		t.Fatalf("restarted while paused: state %v, offset %d; want paused, 5", st.State, f.offset(t, "counts"))
	}

	if err := projection.Resume(ctx, f.store, "counts"); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "offset 9", func() bool { return f.offset(t, "counts") == 9 })
	if got, want := f.counts(t), map[string]int{"t1": 5, "t2": 4}; !equalCounts(got, want) {
		t.Errorf("after Resume: read model %v, want exactly %v", got, want)
	}
	if st := p.Status(); st.State != projection.StateRunning {
		t.Errorf("after Resume: state %v, want running", st.State)
	}
}

// TestPauseSlicesByName runs two slices of a projection and pauses them
// by the projection's name.
func TestPauseSlicesByName(t *testing.T) {
	f := newFixture(t)
	ctx := t.Context()
	log := eventlog.NewMemory()
	if err := projection.Pause(ctx, f.store, "counts"); err != nil {
		t.Fatal(err)
	}
	for i := range 2 {
		p, err := projection.New(log, "Tab", "counts", f.store, f.handler(), projection.WithSlice(i, 2), projection.WithControlInterval(controlInterval))
		if err != nil {
			t.Fatal(err)
		}
		defer p.Stop(context.Background())
		if err := p.Start(ctx); err != nil {
			t.Fatal(err)
		}
	}
	want := map[string]int{}
	for i := range 6 {
		id := fmt.Sprint("t", i)
		appendN(t, log, id, 2)
		want[id] = 2
	}
	time.Sleep(10 * controlInterval)
	if got := f.counts(t); len(got) != 0 {
		t.Fatalf("slices handled %v while the projection was paused, want nothing", got)
	}
	if err := projection.Resume(ctx, f.store, "counts"); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "every event counted", func() bool { return equalCounts(f.counts(t), want) })
	time.Sleep(5 * controlInterval)
	if got := f.counts(t); !equalCounts(got, want) {
		t.Errorf("read model %v, want exactly %v", got, want)
	}
}

// TestRetryRequestExactlyOnce skips a poison event into the dead-letter
// table, then asks the running projection to retry it through the control
// record: it is counted exactly once, in the transaction that deletes the
// dead letter, and the request is removed.
func TestRetryRequestExactlyOnce(t *testing.T) {
	f := newFixture(t)
	ctx := t.Context()
	log := eventlog.NewMemory()
	appendN(t, log, "t1", 3)
	var broken atomic.Bool
	broken.Store(true)
	count := f.handler()
	h := pgprojection.Handle(func(ctx context.Context, tx pgx.Tx, batch []eventlog.Record) error {
		for _, rec := range batch {
			if rec.Seq == 2 && broken.Load() {
				return errors.New("boom")
			}
		}
		return count(ctx, batch)
	})
	dls := f.store.DeadLetters()
	p, err := projection.New(log, "Tab", "retried", f.store, h,
		projection.WithPoison(projection.SkipPoison), projection.WithDeadLetters(dls),
		projection.WithRetry(time.Millisecond, time.Millisecond, 2), projection.WithControlInterval(controlInterval))
	if err != nil {
		t.Fatal(err)
	}
	defer p.Stop(context.Background())
	if err := p.Start(ctx); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "offset 3", func() bool { return f.offset(t, "retried") == 3 })
	if got := f.counts(t); got["t1"] != 2 {
		t.Fatalf("read model %v after skipping one of 3 events, want t1: 2", got)
	}
	broken.Store(false)
	if err := projection.RequestRetry(ctx, f.store, "retried", 2); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the request served", func() bool {
		ctl, _, err := f.store.LoadControl(ctx, "retried")
		return err == nil && len(ctl.Retries) == 0
	})
	if _, err := dls.Get(ctx, "retried", 2); !errors.Is(err, projection.ErrNotFound) {
		t.Errorf("dead letter after a served retry request: %v, want ErrNotFound", err)
	}
	if got := f.counts(t); got["t1"] != 3 {
		t.Errorf("read model %v after the retry, want t1: 3 exactly", got)
	}
	// A request served again (as after a crash before its removal) finds
	// no dead letter and changes nothing.
	if err := projection.RequestRetry(ctx, f.store, "retried", 2); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the repeated request served", func() bool {
		ctl, _, err := f.store.LoadControl(ctx, "retried")
		return err == nil && len(ctl.Retries) == 0
	})
	if got := f.counts(t); got["t1"] != 3 {
		t.Errorf("read model %v after a repeated request, want t1: 3 exactly", got)
	}
}

func TestControlTableOption(t *testing.T) {
	pool, sch := schema(t)
	if _, err := pgprojection.New(pool, pgprojection.WithControlTable("")); !errors.Is(err, projection.ErrInvalid) {
		t.Errorf("WithControlTable(\"\"): %v, want ErrInvalid", err)
	}
	store, err := pgprojection.New(pool, pgprojection.WithTable(sch+".offsets"), pgprojection.WithControlTable(sch+`.odd "controls"`))
	if err != nil {
		t.Fatal(err)
	}
	ctx := t.Context()
	if err := store.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	if err := projection.Pause(ctx, store, "p"); err != nil {
		t.Fatal(err)
	}
	if c, v, err := store.LoadControl(ctx, "p"); err != nil || !c.Paused || v != 1 {
		t.Errorf("LoadControl after Pause: %+v at %d, %v; want paused at version 1", c, v, err)
	}
}
