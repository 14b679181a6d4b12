package timer_test

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/eventsourced-go/eventsourced/binarize"
	"github.com/eventsourced-go/eventsourced/entity"
	"github.com/eventsourced-go/eventsourced/eventlog"
	"github.com/eventsourced-go/eventsourced/projection"
	"github.com/eventsourced-go/eventsourced/testkit"
	"github.com/eventsourced-go/eventsourced/timer"
)

// Rule: timers fire in the order they are due, not scheduled, each once,
// no earlier than due, with their payload, and the fire function's
// context carries the key "<name>/<id>/<generation>".
func TestFireOrderPayloadAndKey(t *testing.T) {
	ctx := context.Background()
	rec := &recorder{}
	_, tm := run(t, eventlog.NewMemory(), projection.NewMemory(), "reminders", rec.fire)
	now := time.Now()
	due := map[string]time.Time{"c": now.Add(240 * time.Millisecond), "a": now.Add(80 * time.Millisecond), "b": now.Add(160 * time.Millisecond)}
	for _, id := range []string{"c", "a", "b"} {
		if err := tm.Schedule(ctx, id, due[id], []byte("payload-"+id)); err != nil {
			t.Fatalf("Schedule %s: %v", id, err)
		}
	}
	waitFor(t, "3 fires", func() bool { st := tm.Status(); return len(rec.got()) == 3 && st.Pending == 0 && st.InFlight == 0 })
	for i, c := range rec.got() {
		id := []string{"a", "b", "c"}[i]
		wantKey := "reminders/" + id + "/1"
		if c.ID != id || string(c.Payload) != "payload-"+id || c.Generation != 1 || !c.At.Equal(due[id]) || c.Attempt != 1 || c.Name != "reminders" {
			t.Errorf("fire %d: %+v; want timer %s generation 1 attempt 1 with payload-%s, due %v", i, c.Timer, id, id, due[id])
		}
		if c.Key != wantKey || c.ctxKey != wantKey || timer.Key("reminders", id, 1) != wantKey {
			t.Errorf("fire %d: Timer.Key %q, context key %q; want %q for both", i, c.Key, c.ctxKey, wantKey)
		}
		if c.time.Before(due[id]) {
			t.Errorf("timer %s fired at %v, before it was due (%v)", id, c.time, due[id])
		}
	}
	st := tm.Status()
	if st.Fired != 3 || st.Recorded != 3 || st.Failures != 0 || st.Pending != 0 || st.InFlight != 0 {
		t.Errorf("status %+v; want 3 fired and recorded, none failed, pending or in flight", st)
	}
	info, err := tm.Get(ctx, "a")
	if err != nil || info.State != timer.StateFired || info.Generation != 1 {
		t.Errorf("Get(a): %+v, %v; want fired generation 1", info, err)
	}
}

// Rule: a timer cancelled before it is due never fires; Cancel of one
// that is unknown, cancelled already or fired returns nil and records
// nothing.
func TestCancel(t *testing.T) {
	ctx := context.Background()
	rec := &recorder{}
	log := eventlog.NewMemory()
	_, tm := run(t, log, projection.NewMemory(), "c", rec.fire)
	now := time.Now()
	tm.Schedule(ctx, "x", now.Add(100*time.Millisecond), nil)
	tm.Schedule(ctx, "y", now.Add(200*time.Millisecond), nil)
	if err := tm.Cancel(ctx, "x"); err != nil {
		t.Fatalf("Cancel(x) of a pending timer: %v", err)
	}
	waitFor(t, "y to fire", func() bool { return len(rec.got()) == 1 && tm.Status().Pending == 0 })
	time.Sleep(100 * time.Millisecond)
	if keys := rec.keys(); !slices.Equal(keys, []string{"c/y/1"}) {
		t.Errorf("fired %v; want only c/y/1: the cancelled x must not fire", keys)
	}
	for _, id := range []string{"x", "y", "unknown"} {
		if err := tm.Cancel(ctx, id); err != nil {
			t.Errorf("Cancel(%s): %v, want nil", id, err)
		}
	}
	want := map[string][]string{"x": {"Scheduled", "Cancelled"}, "y": {"Scheduled", "Fired"}, "unknown": nil}
	for id, w := range want {
		if got := events(t, log, tm, id); !slices.Equal(got, w) {
			t.Errorf("events of %s: %v, want %v", id, got, w)
		}
	}
	for id, w := range map[string]timer.State{"x": timer.StateCancelled, "y": timer.StateFired, "unknown": timer.StateNone} {
		if info, err := tm.Get(ctx, id); err != nil || info.State != w {
			t.Errorf("Get(%s): %+v, %v; want state %v", id, info, err, w)
		}
	}
}

// Rule: the scheduler asks the timer before it fires, so a timer
// cancelled in the log while the scheduler is stopped never fires, even
// when it is long due and the scheduler reads its Scheduled first.
func TestCancelWhileStoppedNeverFires(t *testing.T) {
	ctx := context.Background()
	rec := &recorder{}
	log := eventlog.NewMemory()
	sys, tm := build(t, log, projection.NewMemory(), "c", rec.fire)
	tm.Schedule(ctx, "x", time.Now().Add(-time.Hour), nil)
	tm.Schedule(ctx, "y", time.Now().Add(-time.Hour), nil)
	tm.Cancel(ctx, "x")
	_ = sys
	if err := tm.Start(ctx); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "y to be recorded", func() bool { return tm.Status().Recorded == 1 && tm.Status().Pending == 0 })
	if keys := rec.keys(); !slices.Equal(keys, []string{"c/y/1"}) {
		t.Errorf("fired %v; want only c/y/1", keys)
	}
}

// Rule: rescheduling a pending timer replaces it: it fires once, at the
// new time, with the next generation; scheduling it again at the same
// time with the same payload changes nothing; a fired timer can be
// scheduled again.
func TestReschedule(t *testing.T) {
	ctx := context.Background()
	rec := &recorder{}
	log := eventlog.NewMemory()
	_, tm := run(t, log, projection.NewMemory(), "r", rec.fire)
	start := time.Now()
	tm.Schedule(ctx, "r1", start.Add(100*time.Millisecond), []byte("old"))
	if gen := genOf(t, tm, "r1"); gen != 1 {
		t.Fatalf("first Schedule: generation %d, want 1", gen)
	}
	later := start.Add(400 * time.Millisecond)
	tm.Schedule(ctx, "r1", later, []byte("new"))
	if gen := genOf(t, tm, "r1"); gen != 2 {
		t.Fatalf("reschedule: generation %d, want 2", gen)
	}
	tm.Schedule(ctx, "r1", later, []byte("new"))
	if gen := genOf(t, tm, "r1"); gen != 2 {
		t.Fatalf("the same schedule again: generation %d, want 2 (unchanged)", gen)
	}
	if got := events(t, log, tm, "r1"); !slices.Equal(got, []string{"Scheduled", "Scheduled"}) {
		t.Errorf("events after the same schedule twice: %v, want two Scheduled", got)
	}
	waitFor(t, "r1 to fire", func() bool { return len(rec.got()) == 1 && tm.Status().Pending == 0 })
	time.Sleep(100 * time.Millisecond)
	calls := rec.got()
	if len(calls) != 1 || calls[0].Key != "r/r1/2" || string(calls[0].Payload) != "new" || calls[0].time.Before(later) {
		t.Fatalf("fires %+v; want one, r/r1/2 with the new payload, no earlier than %v", calls, later)
	}
	// A fired timer is scheduled again as the next generation.
	if err := tm.After(ctx, "r1", 0, []byte("again")); err != nil || genOf(t, tm, "r1") != 3 {
		t.Fatalf("Schedule after the fire: %v, generation %d; want generation 3", err, genOf(t, tm, "r1"))
	}
	waitFor(t, "r1 to fire again", func() bool { return len(rec.got()) == 2 })
	if keys := rec.keys(); !slices.Equal(keys, []string{"r/r1/2", "r/r1/3"}) {
		t.Errorf("fired %v, want r/r1/2 then r/r1/3", keys)
	}
}

// Rule: a timer in the past fires at once, with its At as given; on a
// clock the test moves, a timer in the future waits for it.
func TestPastTimerFiresAtOnce(t *testing.T) {
	ctx := context.Background()
	rec := &recorder{}
	clk := &fakeClock{now: time.Date(2030, 1, 1, 12, 0, 0, 0, time.UTC)}
	_, tm := run(t, eventlog.NewMemory(), projection.NewMemory(), "p", rec.fire, timer.WithClock(clk))
	past := clk.Now().Add(-time.Hour)
	tm.Schedule(ctx, "past", past, nil)
	if err := tm.After(ctx, "future", time.Hour, nil); err != nil {
		t.Fatal(err)
	}
	if err := tm.After(ctx, "negative", -time.Minute, nil); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the past timers to fire", func() bool { return len(rec.got()) == 2 })
	time.Sleep(50 * time.Millisecond)
	calls := rec.got()
	slices.SortFunc(calls, func(a, b fireCall) int { return strings.Compare(a.ID, b.ID) })
	if len(calls) != 2 || calls[0].ID != "negative" || calls[1].ID != "past" || !calls[1].At.Equal(past) {
		t.Fatalf("fires %+v; want negative and past (At %v), and not future", calls, past)
	}
	clk.Advance(59 * time.Minute)
	time.Sleep(50 * time.Millisecond)
	if n := len(rec.got()); n != 2 {
		t.Fatalf("%d fires a minute before future is due, want 2", n)
	}
	clk.Advance(time.Minute)
	waitFor(t, "future to fire once its time comes", func() bool { return len(rec.got()) == 3 })
}

// Rule: a fire that fails is retried with backoff, with the same key and
// the next attempt, until it succeeds; meanwhile it holds no worker, so
// other timers fire.
func TestFailedFireIsRetried(t *testing.T) {
	ctx := context.Background()
	var failures atomic.Int32
	rec := &recorder{fail: func(tm timer.Timer) error {
		if tm.ID == "flaky" && failures.Add(1) <= 3 {
			return errors.New("downstream unavailable")
		}
		return nil
	}}
	_, tm := run(t, eventlog.NewMemory(), projection.NewMemory(), "f", rec.fire,
		timer.WithConcurrency(1), timer.WithRetry(60*time.Millisecond, 200*time.Millisecond))
	now := time.Now()
	tm.Schedule(ctx, "flaky", now, nil)
	tm.Schedule(ctx, "steady", now.Add(30*time.Millisecond), nil)
	waitFor(t, "both to be recorded", func() bool { return tm.Status().Recorded == 2 && tm.Status().Pending == 0 })
	var attempts []int
	var keys []string
	for _, c := range rec.got() {
		if c.ID == "flaky" {
			attempts = append(attempts, c.Attempt)
			keys = append(keys, c.ctxKey)
		}
	}
	if !slices.Equal(attempts, []int{1, 2, 3, 4}) || !slices.Equal(keys, []string{"f/flaky/1", "f/flaky/1", "f/flaky/1", "f/flaky/1"}) {
		t.Errorf("flaky fired with attempts %v and keys %v; want attempts 1-4, all with key f/flaky/1", attempts, keys)
	}
	if keys := rec.keys(); len(keys) < 2 || keys[1] != "f/steady/1" {
		t.Errorf("fires %v; want steady right after flaky's first failure, not behind its retries", keys)
	}
	if st := tm.Status(); st.Failures != 3 || st.Fired != 2 || st.LastError == nil || !strings.Contains(st.LastError.Error(), "downstream unavailable") {
		t.Errorf("status %+v; want 3 failures, 2 fired, the last error kept", st)
	}
}

// Rule: a panicking fire function is a failed fire, retried.
func TestPanickingFireIsRetried(t *testing.T) {
	var calls atomic.Int32
	rec := &recorder{fail: func(tm timer.Timer) error {
		if calls.Add(1) == 1 {
			panic("boom")
		}
		return nil
	}}
	_, tm := run(t, eventlog.NewMemory(), projection.NewMemory(), "panic", rec.fire, timer.WithRetry(10*time.Millisecond, 10*time.Millisecond))
	tm.After(context.Background(), "p", 0, nil)
	waitFor(t, "the retry to succeed", func() bool { return tm.Status().Recorded == 1 })
	if n, st := len(rec.got()), tm.Status(); n != 2 || st.Failures != 1 || !strings.Contains(st.LastError.Error(), "panicked: boom") {
		t.Errorf("%d calls, status %+v; want 2 calls and 1 failure naming the panic", n, st)
	}
}

// Rule: a fire of a generation that was rescheduled while it ran records
// nothing (MarkFired of an old generation is a no-op); the new generation
// fires and is recorded.
func TestLateFireOfOldGenerationRecordsNothing(t *testing.T) {
	ctx := context.Background()
	release := make(chan struct{})
	entered := make(chan struct{}, 1)
	rec := &recorder{fail: func(tm timer.Timer) error {
		if tm.Generation == 1 {
			entered <- struct{}{}
			<-release
		}
		return nil
	}}
	log := eventlog.NewMemory()
	_, tm := run(t, log, projection.NewMemory(), "late", rec.fire)
	tm.After(ctx, "a", 0, nil)
	<-entered
	tm.After(ctx, "a", 100*time.Millisecond, nil)
	if gen := genOf(t, tm, "a"); gen != 2 {
		t.Fatalf("reschedule: generation %d, want 2", gen)
	}
	close(release)
	waitFor(t, "generation 2 to be recorded", func() bool { return tm.Status().Pending == 0 && len(rec.got()) == 2 })
	if got := events(t, log, tm, "a"); !slices.Equal(got, []string{"Scheduled", "Scheduled", "Fired"}) {
		t.Errorf("events of a: %v; want Scheduled, Scheduled, Fired (of generation 2 only)", got)
	}
	if keys := rec.keys(); !slices.Equal(keys, []string{"late/a/1", "late/a/2"}) {
		t.Errorf("fired %v, want late/a/1 (in flight when rescheduled) and late/a/2", keys)
	}
	if st := tm.Status(); st.Fired != 2 || st.Recorded != 1 {
		t.Errorf("status %+v; want 2 fired, 1 recorded", st)
	}
}

// Rule: across a restart on the same log and offset store, pending timers
// fire, and timers that fired (and were recorded) before do not fire
// again.
func TestRestart(t *testing.T) {
	testRestart(t, eventlog.NewMemory(), projection.NewMemory())
}

func testRestart(t *testing.T, log eventlog.Log, offsets projection.OffsetStore) {
	ctx := context.Background()
	rec1 := &recorder{}
	sys1, tm1 := run(t, log, offsets, "restart", rec1.fire)
	now := time.Now()
	for i := range 4 {
		tm1.Schedule(ctx, fmt.Sprint("early-", i), now.Add(time.Duration(i)*20*time.Millisecond), []byte("e"))
	}
	for i := range 3 {
		tm1.Schedule(ctx, fmt.Sprint("late-", i), now.Add(time.Hour), []byte("l")) // rescheduled below
	}
	tm1.Schedule(ctx, "cancelled", now.Add(500*time.Millisecond), nil)
	tm1.Cancel(ctx, "cancelled")
	waitFor(t, "the early timers to be recorded", func() bool { return tm1.Status().Recorded == 4 && tm1.Status().Pending == 3 })
	stop(t, sys1, tm1)

	// Meanwhile, with no scheduler: two late timers come due.
	sys2, err := entity.NewSystem(log, entity.WithoutTelemetry())
	if err != nil {
		t.Fatal(err)
	}
	rec2 := &recorder{}
	tm2, err := timer.New(sys2, "restart", offsets, rec2.fire)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { stop(t, sys2, tm2) })
	for i := range 2 {
		tm2.Schedule(ctx, fmt.Sprint("late-", i), time.Now(), []byte("l"))
		if gen := genOf(t, tm2, fmt.Sprint("late-", i)); gen != 2 {
			t.Fatalf("reschedule late-%d: generation %d, want 2", i, gen)
		}
	}
	if err := tm2.Start(ctx); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the due late timers to be recorded", func() bool { return tm2.Status().Recorded == 2 && tm2.Status().Pending == 1 })
	time.Sleep(100 * time.Millisecond)
	got := rec2.keys()
	slices.Sort(got)
	if !slices.Equal(got, []string{"restart/late-0/2", "restart/late-1/2"}) {
		t.Errorf("second run fired %v; want exactly restart/late-0/2 and restart/late-1/2", got)
	}
	if info, _ := tm2.Get(ctx, "late-2"); info.State != timer.StatePending {
		t.Errorf("late-2 is %v, want still pending", info.State)
	}
}

// Rule: a crash between a fire and its record fires the timer again after
// the restart, with the same key; timers recorded before do not fire
// again.
func TestCrashBetweenFireAndRecord(t *testing.T) {
	ctx := context.Background()
	log, offsets := eventlog.NewMemory(), projection.NewMemory()
	entered := make(chan struct{}, 1)
	rec1 := &recorder{}
	blocking := func(ctx context.Context, tm timer.Timer) error {
		rec1.fire(ctx, tm)
		if tm.ID == "stuck" {
			entered <- struct{}{}
			<-ctx.Done() // the process dies with the fire in hand
			return ctx.Err()
		}
		return nil
	}
	sys1, tm1 := run(t, log, offsets, "crash", blocking)
	tm1.After(ctx, "done", 0, nil)
	waitFor(t, "done to be recorded", func() bool { return tm1.Status().Recorded == 1 })
	tm1.After(ctx, "stuck", 0, []byte("s"))
	<-entered
	stop(t, sys1, tm1)

	rec2 := &recorder{}
	run(t, log, offsets, "crash", rec2.fire)
	waitFor(t, "stuck to fire again", func() bool { return len(rec2.got()) >= 1 })
	time.Sleep(100 * time.Millisecond)
	calls := rec2.got()
	if len(calls) != 1 || calls[0].ctxKey != "crash/stuck/1" || string(calls[0].Payload) != "s" {
		t.Errorf("second run fired %+v; want stuck alone, with key crash/stuck/1", calls)
	}
	if keys := rec1.keys(); !slices.Equal(keys, []string{"crash/done/1", "crash/stuck/1"}) {
		t.Errorf("first run fired %v", keys)
	}
}

// Rule: the stored low-water mark is the Position before the oldest
// pending timer's Scheduled; a restart reads only the events after it,
// and still knows every pending timer.
func TestLowWaterMark(t *testing.T) {
	ctx := context.Background()
	log, offsets := eventlog.NewMemory(), projection.NewMemory()
	rec := &recorder{}
	sys1, tm1 := run(t, log, offsets, "lwm", rec.fire, timer.WithMarkInterval(10*time.Millisecond))
	for i := range 100 {
		tm1.After(ctx, fmt.Sprint("before-", i), 0, nil)
	}
	waitFor(t, "100 timers to complete", func() bool { return tm1.Status().Recorded == 100 && tm1.Status().Pending == 0 })
	// With nothing pending the mark follows the last event read: 100
	// Scheduled and 100 Fired.
	waitFor(t, "the mark to reach 200", func() bool { return tm1.Status().Mark == 200 })
	// A far timer pins the mark before its Scheduled.
	tm1.Schedule(ctx, "far", time.Now().Add(time.Hour), nil) // Position 201
	for i := range 50 {
		tm1.After(ctx, fmt.Sprint("after-", i), 0, nil)
	}
	waitFor(t, "50 more timers to complete", func() bool { return tm1.Status().Recorded == 150 && tm1.Status().Pending == 1 })
	waitFor(t, "the mark to stop before far", func() bool { return tm1.Status().Mark == 200 })
	stop(t, sys1, tm1)
	if m, _ := offsets.Load(ctx, "lwm"); m != 200 {
		t.Fatalf("stored mark %d, want 200: the Position before far's Scheduled (201)", m)
	}

	rec2 := &recorder{}
	_, tm2 := run(t, log, offsets, "lwm", rec2.fire)
	if err := tm2.Projection().WaitFor(ctx, 301); err != nil {
		t.Fatal(err)
	}
	st := tm2.Status()
	if st.Projection.Handled != 101 || st.Pending != 1 {
		t.Errorf("the restart read %d events and knows %d pending timers; want 101 (far's Scheduled and 50 x Scheduled, Fired) and 1 (far)", st.Projection.Handled, st.Pending)
	}
	if calls := rec2.got(); len(calls) != 0 {
		t.Errorf("the restart fired %d timers, want none", len(calls))
	}
	if err := tm2.Cancel(ctx, "far"); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "far's cancellation to free the mark", func() bool { return tm2.Status().Next == 302 })
}

// Rule: bad arguments are refused with errors matching ErrInvalid that
// name what was wrong, before any I/O.
func TestBadInput(t *testing.T) {
	ctx := context.Background()
	sys, err := entity.NewSystem(eventlog.NewMemory(), entity.WithoutTelemetry())
	if err != nil {
		t.Fatal(err)
	}
	defer sys.Shutdown(ctx)
	fire := func(context.Context, timer.Timer) error { return nil }
	offsets := projection.NewMemory()
	for _, tc := range []struct {
		name    string
		sys     *entity.System
		tname   string
		offsets projection.OffsetStore
		fire    timer.FireFunc
		opts    []timer.Option
		want    string
	}{
		{"nil system", nil, "t", offsets, fire, nil, "nil entity.System"},
		{"empty name", sys, "", offsets, fire, nil, "empty timers name"},
		{"slash in name", sys, "a/b", offsets, fire, nil, `timers name "a/b": want 1 to 200 bytes of UTF-8 without NUL or "/"`},
		{"long name", sys, strings.Repeat("n", 201), offsets, fire, nil, "want 1 to 200 bytes"},
		{"nil offsets", sys, "t", nil, fire, nil, "nil offset store"},
		{"nil fire", sys, "t", offsets, nil, nil, "nil fire function"},
		{"nil option", sys, "t", offsets, fire, []timer.Option{nil}, "option 1 is nil"},
		{"concurrency", sys, "t", offsets, fire, []timer.Option{timer.WithConcurrency(0)}, "WithConcurrency(0)"},
		{"retry", sys, "t", offsets, fire, []timer.Option{timer.WithRetry(time.Second, time.Millisecond)}, "max delay 1ms is below"},
		{"clock", sys, "t", offsets, fire, []timer.Option{timer.WithClock(nil)}, "WithClock(nil)"},
		{"slice", sys, "t", offsets, fire, []timer.Option{timer.WithSlice(2, 2)}, "WithSlice(2, 2)"},
		{"entity type", sys, "t", offsets, fire, []timer.Option{timer.WithEntityType("")}, "WithEntityType"},
		{"mark interval", sys, "t", offsets, fire, []timer.Option{timer.WithMarkInterval(0)}, "WithMarkInterval(0s)"},
		{"logger", sys, "t", offsets, fire, []timer.Option{timer.WithLogger(nil)}, "WithLogger(nil)"},
		{"renew after", sys, "t", offsets, fire, []timer.Option{timer.WithRenewAfter(-1)}, "WithRenewAfter(-1)"},
		{"kind option", sys, "t", offsets, fire, []timer.Option{timer.WithKindOptions(nil)}, "WithKindOptions: option 1 is nil"},
		{"projection option", sys, "t", offsets, fire, []timer.Option{timer.WithProjectionOptions(projection.WithBufferSize(0))}, "WithBufferSize(0)"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := timer.New(tc.sys, tc.tname, tc.offsets, tc.fire, tc.opts...)
			if !errors.Is(err, timer.ErrInvalid) || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("New: %v; want an error matching timer.ErrInvalid naming %q", err, tc.want)
			}
		})
	}

	tm, err := timer.New(sys, "t", offsets, fire)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := timer.New(sys, "t", offsets, fire); err == nil || !strings.Contains(err.Error(), "already registered") {
		t.Errorf("a second New of the same name on one System: %v, want the entity type's duplicate error", err)
	}
	now := time.Now()
	for _, tc := range []struct {
		name string
		call func() error
		want string
	}{
		{"empty id", func() error { return tm.Schedule(ctx, "", now, nil) }, "Schedule: empty timer id"},
		{"zero time", func() error { return tm.Schedule(ctx, "x", time.Time{}, nil) }, "Schedule x: zero time"},
		{"big payload", func() error { return tm.Schedule(ctx, "x", now, make([]byte, timer.MaxPayload+1)) }, "payload of 262145 bytes is over MaxPayload"},
		{"bad id", func() error { return tm.After(ctx, "a\x00b", time.Second, nil) }, "timer id"},
		{"cancel empty id", func() error { return tm.Cancel(ctx, "") }, "Cancel: empty timer id"},
		{"get empty id", func() error { _, err := tm.Get(ctx, ""); return err }, "Get: empty timer id"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.call()
			if !errors.Is(err, timer.ErrInvalid) || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("%v; want an error matching timer.ErrInvalid naming %q", err, tc.want)
			}
		})
	}
	if err := tm.Schedule(ctx, "x", now, make([]byte, timer.MaxPayload)); err != nil {
		t.Errorf("a payload of MaxPayload bytes: %v, want it accepted", err)
	}
}

// Rule: Start twice returns ErrRunning; Stop on timers that never ran
// returns nil, and Wait nil.
func TestLifecycle(t *testing.T) {
	ctx := context.Background()
	_, tm := build(t, eventlog.NewMemory(), projection.NewMemory(), "life", func(context.Context, timer.Timer) error { return nil })
	if err := tm.Stop(ctx); err != nil {
		t.Errorf("Stop before Start: %v", err)
	}
	if err := tm.Wait(ctx); err != nil {
		t.Errorf("Wait before Start: %v", err)
	}
	if err := tm.Start(ctx); err != nil {
		t.Fatal(err)
	}
	if err := tm.Start(ctx); !errors.Is(err, timer.ErrRunning) {
		t.Errorf("second Start: %v, want ErrRunning", err)
	}
	if err := tm.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	if err := tm.Wait(ctx); err != nil {
		t.Errorf("Wait after Stop: %v", err)
	}
	// Every goroutine of the run has ended: Stop waited for them.
	buf := make([]byte, 1<<20)
	if stacks := string(buf[:runtime.Stack(buf, true)]); strings.Contains(stacks, "timer.(*Timers)") {
		t.Errorf("goroutines of the scheduler still run after Stop:\n%s", stacks)
	}
	if st := tm.Status(); st.Running {
		t.Errorf("status after Stop: %+v, want not running", st)
	}
	if err := tm.Start(ctx); err != nil {
		t.Errorf("Start after Stop: %v", err)
	}
}

// Rule: a timer pending for long is renewed (its Scheduled recorded
// again, same generation), so the low-water mark moves past it and a
// restart reads only the events after its renewal; it still fires once,
// as the same generation.
func TestRenewalFreesTheMark(t *testing.T) {
	ctx := context.Background()
	log, offsets := eventlog.NewMemory(), projection.NewMemory()
	rec := &recorder{}
	sys1, tm1 := run(t, log, offsets, "renew", rec.fire, timer.WithMarkInterval(10*time.Millisecond),
		timer.WithRenewAfter(59)) // once every event of the 30 quick timers is read: exactly one renewal
	farAt := time.Now().Add(time.Hour)
	tm1.Schedule(ctx, "far", farAt, []byte("f")) // Position 1
	for i := range 30 {
		tm1.After(ctx, fmt.Sprint("quick-", i), 0, nil) // Positions 2 to 61, and the renewal among them
	}
	waitFor(t, "far to be renewed and the mark to pass its first Scheduled", func() bool {
		st := tm1.Status()
		return st.Recorded == 30 && st.Pending == 1 && st.Mark > 1
	})
	if got := events(t, log, tm1, "far"); !slices.Equal(got, []string{"Scheduled", "Scheduled"}) {
		t.Fatalf("events of far: %v, want Scheduled and its renewal", got)
	}
	if info, _ := tm1.Get(ctx, "far"); info.Generation != 1 || info.State != timer.StatePending || !info.At.Equal(farAt) || string(info.Payload) != "f" {
		t.Errorf("far after its renewal: %+v; want generation 1, pending, at %v with payload f", info, farAt)
	}
	stop(t, sys1, tm1)
	mark, _ := offsets.Load(ctx, "renew")
	var renewal uint64
	for r, err := range log.ReadEntity(ctx, tm1.Type(), "far", 2) {
		if err != nil {
			t.Fatal(err)
		}
		renewal = r.Position
	}
	if mark != renewal-1 {
		t.Errorf("stored mark %d, want %d: just before far's renewal", mark, renewal-1)
	}

	// After the restart far is still known, read from its renewal, and
	// fires once as generation 1.
	clk := &fakeClock{now: time.Now()}
	rec2 := &recorder{}
	_, tm2 := run(t, log, offsets, "renew", rec2.fire, timer.WithClock(clk))
	waitFor(t, "the restart to know far", func() bool { return tm2.Status().Pending == 1 })
	clk.Advance(2 * time.Hour)
	waitFor(t, "far to fire", func() bool { return tm2.Status().Recorded == 1 })
	if keys := rec2.keys(); !slices.Equal(keys, []string{"renew/far/1"}) {
		t.Errorf("fired %v, want renew/far/1", keys)
	}
	if keys := rec.keys(); len(keys) != 30 || slices.Contains(keys, "renew/far/1") {
		t.Errorf("the first run fired %d timers (far among them: %v), want the 30 quick ones", len(keys), slices.Contains(keys, "renew/far/1"))
	}
}

// Rule: when recording a firing fails in the store (the append fails, or
// lands but reports a failure), the record is retried and the fire
// function is not called again.
func TestRecordFailureDoesNotFireAgain(t *testing.T) {
	for _, tc := range []struct {
		name         string
		inject       func(l *testkit.Log) error
		wantRecorded uint64
	}{
		{"append fails", func(l *testkit.Log) error { _, err := l.FailNext(1, testkit.OpAppend); return err }, 1},
		// The Fired lands; the retry finds it recorded and records nothing.
		{"append lands but fails", func(l *testkit.Log) error { _, err := l.AmbiguousNext(1, testkit.OpAppend); return err }, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx := context.Background()
			log := testkit.NewLog(eventlog.NewMemory())
			rec := &recorder{fail: func(timer.Timer) error { return tc.inject(log) }}
			_, tm := run(t, log, projection.NewMemory(), "rec", rec.fire, timer.WithRetry(10*time.Millisecond, 10*time.Millisecond))
			tm.After(ctx, "a", 0, nil)
			waitFor(t, "a to complete", func() bool { return tm.Status().StoreErrors == 1 && tm.Status().Pending == 0 })
			if got := events(t, log, tm, "a"); !slices.Equal(got, []string{"Scheduled", "Fired"}) {
				t.Errorf("events of a: %v, want Scheduled, Fired", got)
			}
			if st, n := tm.Status(), len(rec.got()); n != 1 || st.Fired != 1 || st.Recorded != tc.wantRecorded || st.Failures != 0 {
				t.Errorf("%d fire calls, status %+v; want 1 call, 1 fired, %d recorded, 0 fire failures", n, st, tc.wantRecorded)
			}
		})
	}
}

// Rule: a fire function may reschedule its own timer (a recurring
// timer): the new generation replaces the one firing, whose firing is not
// recorded, and fires in turn.
func TestRecurringTimer(t *testing.T) {
	ctx := context.Background()
	log := eventlog.NewMemory()
	var tm *timer.Timers
	rec := &recorder{fail: func(t timer.Timer) error {
		if t.Generation < 3 {
			return tm.After(ctx, t.ID, 10*time.Millisecond, t.Payload)
		}
		return nil
	}}
	_, tm = run(t, log, projection.NewMemory(), "every", rec.fire)
	tm.After(ctx, "tick", 0, []byte("p"))
	waitFor(t, "three ticks", func() bool { return tm.Status().Recorded == 1 && tm.Status().Pending == 0 })
	if keys := rec.keys(); !slices.Equal(keys, []string{"every/tick/1", "every/tick/2", "every/tick/3"}) {
		t.Errorf("fired %v, want generations 1, 2, 3", keys)
	}
	if got := events(t, log, tm, "tick"); !slices.Equal(got, []string{"Scheduled", "Scheduled", "Scheduled", "Fired"}) {
		t.Errorf("events %v, want three Scheduled and the last one's Fired", got)
	}
}

// Rule: times beyond what Unix nanoseconds hold are accepted: one in
// the year 1 fires at once, one in the year 9999 waits.
func TestExtremeTimes(t *testing.T) {
	ctx := context.Background()
	rec := &recorder{}
	_, tm := run(t, eventlog.NewMemory(), projection.NewMemory(), "extreme", rec.fire)
	early := time.Date(1, 1, 1, 0, 0, 0, 0, time.UTC).Add(time.Second)
	if err := tm.Schedule(ctx, "late", time.Date(9999, 1, 1, 0, 0, 0, 0, time.UTC), nil); err != nil {
		t.Fatal(err)
	}
	if err := tm.Schedule(ctx, "early", early, nil); err != nil {
		t.Fatal(err)
	}
	// Pending counts what the scheduler's projection has read: early
	// leaves it once its Fired event is read back, late stays.
	waitFor(t, "early to fire and its Fired event to be read, late pending", func() bool {
		st := tm.Status()
		return st.Recorded == 1 && st.Pending == 1
	})
	if calls := rec.got(); len(calls) != 1 || calls[0].ID != "early" || !calls[0].At.Equal(early) {
		t.Errorf("fires %+v; want early alone, due %v", calls, early)
	}
	if st := tm.Status(); st.Pending != 1 || st.Due != 0 {
		t.Errorf("status %+v; want late pending, not due", st)
	}
}

// Rule: when another process (another System on the log) reschedules a
// timer that this process keeps live at an older generation, the
// scheduler does not trust the stale entity: it has it recover from the
// log, then fires the new generation and records it.
func TestTimerWrittenByAnotherProcess(t *testing.T) {
	ctx := context.Background()
	log, offsets := eventlog.NewMemory(), projection.NewMemory()
	rec := &recorder{}
	_, runner := run(t, log, offsets, "two", rec.fire, timer.WithRetry(10*time.Millisecond, 10*time.Millisecond))
	runner.Schedule(ctx, "x", time.Now().Add(time.Hour), nil)
	if gen := genOf(t, runner, "x"); gen != 1 {
		t.Fatalf("first Schedule: generation %d, want 1", gen)
	}
	// The runner's System now has x live at generation 1. Another
	// process reschedules it, due at once.
	_, other := build(t, log, projection.NewMemory(), "two", rec.fire)
	if err := other.After(ctx, "x", 0, []byte("now")); err != nil {
		t.Fatalf("Schedule in the other process: %v", err)
	}
	waitFor(t, "x to fire and be recorded", func() bool { return runner.Status().Pending == 0 && len(rec.got()) == 1 })
	if keys := rec.keys(); !slices.Equal(keys, []string{"two/x/2"}) {
		t.Errorf("fired %v, want two/x/2", keys)
	}
	if got := events(t, log, runner, "x"); !slices.Equal(got, []string{"Scheduled", "Scheduled", "Fired"}) {
		t.Errorf("events of x: %v, want Scheduled, Scheduled, Fired", got)
	}
	if st := runner.Status(); st.StoreErrors != 1 || !strings.Contains(st.LastError.Error(), "behind the log") {
		t.Errorf("status %+v; want the stale entity noticed once", st)
	}
}

// Rule: a timer event that cannot be decoded stops the scheduler (the
// projection's poison policy): Wait returns a *projection.PoisonError
// naming it.
func TestUndecodableEventStops(t *testing.T) {
	ctx := context.Background()
	log := eventlog.NewMemory()
	_, tm := run(t, log, projection.NewMemory(), "bad", func(context.Context, timer.Timer) error { return nil },
		timer.WithProjectionOptions(projection.WithRetry(time.Millisecond, time.Millisecond, 2)))
	if _, err := log.Append(ctx, tm.Type(), "x", 0, eventlog.Event{Name: "Bogus", Data: []byte{1}}); err != nil {
		t.Fatal(err)
	}
	wctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	err := tm.Wait(wctx)
	var pe *projection.PoisonError
	if !errors.As(err, &pe) || pe.Event.EntityID != "x" || pe.Event.Name != "Bogus" {
		t.Fatalf("Wait: %v, want a *projection.PoisonError at bad-timers/x (Bogus)", err)
	}
	if st := tm.Status(); st.Running {
		t.Errorf("status %+v after the poison event, want stopped", st)
	}
}

// Rule: Fired recognises the Fired events of the timers' type, and
// nothing else: not their Scheduled or Cancelled, not a Fired of
// another type.
func TestFiredRecognisesFirings(t *testing.T) {
	ctx := context.Background()
	log := eventlog.NewMemory()
	_, tm := run(t, log, projection.NewMemory(), "pm", func(context.Context, timer.Timer) error { return nil })
	tm.After(ctx, "fires", 0, nil)
	tm.After(ctx, "cancelled", time.Hour, nil)
	tm.Cancel(ctx, "cancelled")
	waitFor(t, "the firing", func() bool { return tm.Status().Recorded == 1 && tm.Status().Pending == 0 })
	log.Append(ctx, "Other", "fires", 0, eventlog.Event{Name: timer.EventFired})
	var got []string
	for _, typ := range []string{tm.Type(), "Other"} {
		for rec, err := range log.ReadType(ctx, typ, 0) {
			if err != nil {
				t.Fatal(err)
			}
			if id, ok := tm.Fired(rec); ok {
				got = append(got, id)
			}
		}
	}
	if !slices.Equal(got, []string{"fires"}) {
		t.Errorf("Fired recognised %v, want [fires]: the one Fired event of type %s", got, tm.Type())
	}
}

// tally is an entity whose Add is not idempotent by itself: each Add
// persists an event and replies with the count.
type tallyEvent struct{}

type add struct{}

func (add) Handle(tx *entity.Tx[int, tallyEvent]) (int, error) { return tx.Persist(tallyEvent{}), nil }

func registerTally(t *testing.T, sys *entity.System) *entity.Kind[int, tallyEvent] {
	t.Helper()
	events := binarize.NewRegistry[tallyEvent](binarize.JSON)
	binarize.MustRegister[tallyEvent](events, "Added")
	k, err := entity.Register(sys, entity.Type[int, tallyEvent]{
		Name: "Tally", Events: events, Apply: func(n int, _ tallyEvent) int { return n + 1 },
	}, entity.WithIdempotency())
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// Rule: effectively once. A fire whose command landed but whose firing
// was not recorded (the scheduler stopped in between) fires again after
// the restart with the same key, and the entity answers the command from
// its first outcome: its event is in the log once.
func TestEffectivelyOnceAcrossRestart(t *testing.T) {
	ctx := context.Background()
	log, offsets := eventlog.NewMemory(), projection.NewMemory()
	var tally1 *entity.Kind[int, tallyEvent]
	landed := make(chan struct{})
	sys1, tm1 := build(t, log, offsets, "once", func(ctx context.Context, tm timer.Timer) error {
		if _, err := entity.Ask(ctx, tally1.Ref(string(tm.Payload)), add{}); err != nil {
			return err
		}
		close(landed)
		<-ctx.Done() // the process dies before the firing is recorded
		return ctx.Err()
	})
	tally1 = registerTally(t, sys1)
	if err := tm1.Start(ctx); err != nil {
		t.Fatal(err)
	}
	tm1.After(ctx, "t", 0, []byte("tally-1"))
	<-landed
	stop(t, sys1, tm1)

	var tally2 *entity.Kind[int, tallyEvent]
	type reply struct {
		key   string
		count int
	}
	replies := make(chan reply, 4)
	sys2, tm2 := build(t, log, offsets, "once", func(ctx context.Context, tm timer.Timer) error {
		n, err := entity.Ask(ctx, tally2.Ref(string(tm.Payload)), add{})
		key, _ := entity.IdempotencyKeyFrom(ctx)
		replies <- reply{key, n}
		return err
	})
	tally2 = registerTally(t, sys2)
	if err := tm2.Start(ctx); err != nil {
		t.Fatal(err)
	}
	if r := <-replies; r.key != "once/t/1" || r.count != 1 {
		t.Errorf("the fire after the restart: key %q, count %d; want key once/t/1 answered from the first outcome, count 1", r.key, r.count)
	}
	waitFor(t, "the firing to be recorded", func() bool { return tm2.Status().Recorded == 1 })
	var n int
	for _, err := range log.ReadEntity(ctx, "Tally", "tally-1", 1) {
		if err != nil {
			t.Fatal(err)
		}
		n++
	}
	if n != 1 {
		t.Errorf("the tally has %d events, want 1: the fire acted once", n)
	}
}

func tallyAsk(ctx context.Context, ref entity.Ref[int, tallyEvent]) (int, error) {
	return entity.Ask(ctx, ref, add{})
}
