package timer_test

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/eventsourced-go/eventsourced/eventlog"
	"github.com/eventsourced-go/eventsourced/projection"
	"github.com/eventsourced-go/eventsourced/timer"
)

// Rule: timers paused by their control record start paused and fire
// nothing, due or not, until resumed; a pause read while running stops the
// firing; Status says so; Schedule goes on meanwhile.
func TestPauseAndResume(t *testing.T) {
	ctx := context.Background()
	offsets := projection.NewMemory()
	rec := &recorder{}
	if err := projection.Pause(ctx, offsets, "paused"); err != nil {
		t.Fatal(err)
	}
	_, tm := run(t, eventlog.NewMemory(), offsets, "paused", rec.fire, timer.WithControlInterval(20*time.Millisecond))
	if err := tm.After(ctx, "a", 0, nil); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "a to be read", func() bool { return tm.Status().Pending == 1 })
	time.Sleep(150 * time.Millisecond)
	st := tm.Status()
	if n := len(rec.got()); n != 0 || !st.Paused || st.PausedSince.IsZero() || st.Due != 1 {
		t.Fatalf("started paused: %d fired, status paused %v since %v, due %d; want 0 fired, paused, 1 due", n, st.Paused, st.PausedSince, st.Due)
	}
	if err := projection.Resume(ctx, offsets, "paused"); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "a to fire after the resume", func() bool { return len(rec.got()) == 1 })
	if st := tm.Status(); st.Paused || !st.PausedSince.IsZero() {
		t.Fatalf("after the resume: paused %v since %v; want not paused", st.Paused, st.PausedSince)
	}
	// A pause while running.
	if err := projection.Pause(ctx, offsets, "paused"); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the pause to be read", func() bool { return tm.Status().Paused })
	if err := tm.After(ctx, "b", 0, nil); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "b to be read", func() bool { return tm.Status().Due == 1 })
	time.Sleep(150 * time.Millisecond)
	if n := len(rec.got()); n != 1 {
		t.Fatalf("%d fired while paused, want only a, fired before", n)
	}
	if err := projection.Resume(ctx, offsets, "paused"); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "b to fire after the resume", func() bool { return len(rec.got()) == 2 })
	if keys := rec.keys(); len(keys) != 2 || keys[0] != "paused/a/1" || keys[1] != "paused/b/1" {
		t.Fatalf("fired %v, want paused/a/1 then paused/b/1", keys)
	}
}

// Rule: a slice's timers obey the pause of the timers' name and that of
// their own slice's name; the other slices go on.
func TestPauseSlice(t *testing.T) {
	ctx := context.Background()
	log, offsets := eventlog.NewMemory(), projection.NewMemory()
	rec := &recorder{}
	_, s0 := run(t, log, offsets, "sl", rec.fire, timer.WithSlice(0, 2), timer.WithControlInterval(20*time.Millisecond))
	_, s1 := build(t, log, offsets, "sl", rec.fire, timer.WithSlice(1, 2), timer.WithControlInterval(20*time.Millisecond))
	if err := s1.Start(ctx); err != nil {
		t.Fatal(err)
	}
	if err := projection.Pause(ctx, offsets, s0.Status().Name); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "slice 0 to read its pause", func() bool { return s0.Status().Paused })
	if s1.Status().Paused {
		t.Fatal("pausing slice 0's name paused slice 1")
	}
	if err := projection.Pause(ctx, offsets, "sl"); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "slice 1 to read the pause of the name", func() bool { return s1.Status().Paused })
	if err := projection.Resume(ctx, offsets, "sl"); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "slice 1 to resume", func() bool { return !s1.Status().Paused })
	time.Sleep(100 * time.Millisecond)
	if !s0.Status().Paused {
		t.Fatal("slice 0 resumed with its own name still paused")
	}
}

// controlsDown is an offset store whose control records cannot be read.
type controlsDown struct{ *projection.Memory }

var errControlsDown = errors.New("control records down")

func (controlsDown) LoadControl(context.Context, string) (projection.Control, uint64, error) {
	return projection.Control{}, 0, errControlsDown
}

// Rule: Start fails, naming the timers, when the control records cannot
// be read; WithControlInterval refuses a non-positive interval.
func TestPauseBadInput(t *testing.T) {
	_, tm := build(t, eventlog.NewMemory(), controlsDown{projection.NewMemory()}, "down", (&recorder{}).fire)
	err := tm.Start(context.Background())
	if !errors.Is(err, errControlsDown) || err.Error() != "timer: down: read the control record of down: control records down" {
		t.Fatalf("Start with control records down: %v", err)
	}
	sys, _ := build(t, eventlog.NewMemory(), projection.NewMemory(), "ok", (&recorder{}).fire)
	for _, d := range []time.Duration{0, -time.Second} {
		_, err := timer.New(sys, "x", projection.NewMemory(), (&recorder{}).fire, timer.WithControlInterval(d))
		want := fmt.Sprintf("timers x: timer: invalid argument: WithControlInterval(%v): must be positive", d)
		if !errors.Is(err, timer.ErrInvalid) || err.Error() != want {
			t.Fatalf("WithControlInterval(%v): %v, want %q", d, err, want)
		}
	}
}
