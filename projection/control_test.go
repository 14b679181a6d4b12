package projection_test

import (
	"context"
	"errors"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/eventsourced-go/eventsourced/eventlog"
	"github.com/eventsourced-go/eventsourced/projection"
)

// interval is the control interval of these tests.
const interval = 10 * time.Millisecond

func mustControl(t *testing.T, c projection.Controls, name string) projection.Control {
	t.Helper()
	ctl, _, err := c.LoadControl(context.Background(), name)
	if err != nil {
		t.Fatal(err)
	}
	return ctl
}

// TestPauseAndResume checks that a paused projection handles nothing from
// the next control interval on, that the events appended meanwhile are
// handled once after Resume, and what Status says.
func TestPauseAndResume(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx := t.Context()
		log := eventlog.NewMemory()
		store := projection.NewMemory()
		var r recorder
		p := mustNew(t, log, "Tab", "tabs", store, r.handle, projection.WithControlInterval(interval))
		want := appendN(t, log, "Tab", "t1", 3)
		start(t, p)
		synctest.Wait()

		pausedAt := time.Now()
		if err := projection.Pause(ctx, store, "tabs"); err != nil {
			t.Fatal(err)
		}
		time.Sleep(interval)
		synctest.Wait()
		st := p.Status()
		if st.State != projection.StatePaused || !st.Running || !st.PausedSince.Equal(pausedAt) || st.Offset != want[2] {
			t.Fatalf("after Pause and one interval: state %v, running %v, paused since %v, offset %d; want paused, running, since %v, offset %d",
				st.State, st.Running, st.PausedSince, st.Offset, pausedAt, want[2])
		}
		later := appendN(t, log, "Tab", "t1", 4)
		time.Sleep(10 * interval)
		synctest.Wait()
		if got := r.positions(); !slices.Equal(got, want) {
			t.Fatalf("handled %v while paused, want only %v", got, want)
		}
		if st := p.Status(); st.Lag != 4 || st.Offset != want[2] {
			t.Errorf("while paused with 4 events appended: lag %d, offset %d; want 4, %d", st.Lag, st.Offset, want[2])
		}
		// Pausing again keeps the first time.
		time.Sleep(time.Minute)
		if err := projection.Pause(ctx, store, "tabs"); err != nil {
			t.Fatal(err)
		}
		if ctl := mustControl(t, store, "tabs"); !ctl.Paused || !ctl.PausedAt.Equal(pausedAt) {
			t.Errorf("control after a second Pause: %+v, want paused at %v", ctl, pausedAt)
		}

		if err := projection.Resume(ctx, store, "tabs"); err != nil {
			t.Fatal(err)
		}
		time.Sleep(interval)
		synctest.Wait()
		want = append(want, later...)
		if got := r.positions(); !slices.Equal(got, want) {
			t.Errorf("handled %v after Resume, want %v", got, want)
		}
		if st := p.Status(); st.State != projection.StateRunning || !st.PausedSince.IsZero() || st.Offset != later[3] || st.Handled != 7 {
			t.Errorf("after Resume: state %v, paused since %v, offset %d, handled %d; want running, zero, %d, 7", st.State, st.PausedSince, st.Offset, st.Handled, later[3])
		}
		if ctl := mustControl(t, store, "tabs"); ctl.Paused || !ctl.PausedAt.IsZero() {
			t.Errorf("control after Resume: %+v, want not paused", ctl)
		}
		stop(t, p)
	})
}

// TestStartWhilePaused checks that a projection paused before it starts
// handles nothing, that Stop and Start keep it paused, and that Resume
// lets it handle everything once.
func TestStartWhilePaused(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx := t.Context()
		log := eventlog.NewMemory()
		store := projection.NewMemory()
		want := appendN(t, log, "Tab", "t1", 3)
		if err := projection.Pause(ctx, store, "tabs"); err != nil {
			t.Fatal(err)
		}
		var r recorder
		p := mustNew(t, log, "Tab", "tabs", store, r.handle, projection.WithControlInterval(interval))
		for range 2 {
			start(t, p)
			time.Sleep(5 * interval)
			synctest.Wait()
			if st := p.Status(); st.State != projection.StatePaused || len(r.positions()) != 0 {
				t.Fatalf("started while paused: state %v, handled %v; want paused, nothing", st.State, r.positions())
			}
			stop(t, p)
			if st := p.Status(); st.State != projection.StateStopped || !st.PausedSince.IsZero() {
				t.Errorf("stopped while paused: state %v, paused since %v; want stopped, zero", st.State, st.PausedSince)
			}
		}
		start(t, p)
		if err := projection.Resume(ctx, store, "tabs"); err != nil {
			t.Fatal(err)
		}
		if err := p.WaitFor(ctx, want[2]); err != nil {
			t.Fatal(err)
		}
		synctest.Wait()
		if got := r.positions(); !slices.Equal(got, want) {
			t.Errorf("handled %v after Resume, want %v", got, want)
		}
	})
}

// TestPauseSlices checks that pausing a projection's name pauses every
// slice, and pausing a slice's name that slice alone.
func TestPauseSlices(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx := t.Context()
		log := eventlog.NewMemory()
		store := projection.NewMemory()
		var rs [2]recorder
		var ps [2]*projection.Projection
		for i := range ps {
			ps[i] = mustNew(t, log, "Tab", "tabs", store, rs[i].handle, projection.WithSlice(i, 2), projection.WithControlInterval(interval))
			start(t, ps[i])
		}
		states := func() [2]projection.State {
			return [2]projection.State{ps[0].Status().State, ps[1].Status().State}
		}
		handled := func() int { return len(rs[0].positions()) + len(rs[1].positions()) }
		ids := []string{"a", "b", "c", "d", "e", "f", "g", "h"}
		bySlice := [2]int{}
		for _, id := range ids {
			bySlice[projection.SliceOf("Tab", id, 2)]++
		}
		if bySlice[0] == 0 || bySlice[1] == 0 {
			t.Fatalf("ids %v all in one slice: %v", ids, bySlice)
		}

		if err := projection.Pause(ctx, store, "tabs"); err != nil {
			t.Fatal(err)
		}
		time.Sleep(interval)
		synctest.Wait()
		if got := states(); got != [2]projection.State{projection.StatePaused, projection.StatePaused} {
			t.Fatalf("after Pause(tabs): states %v, want both paused", got)
		}
		for _, id := range ids {
			appendN(t, log, "Tab", id, 1)
		}
		time.Sleep(5 * interval)
		synctest.Wait()
		if n := handled(); n != 0 {
			t.Fatalf("slices handled %d events while the projection was paused, want 0", n)
		}

		// Pause slice 0 by its own name, resume the projection: slice 1
		// carries on alone.
		if err := projection.Pause(ctx, store, projection.SliceName("tabs", 0, 2)); err != nil {
			t.Fatal(err)
		}
		if err := projection.Resume(ctx, store, "tabs"); err != nil {
			t.Fatal(err)
		}
		time.Sleep(interval)
		synctest.Wait()
		if got := states(); got != [2]projection.State{projection.StatePaused, projection.StateRunning} {
			t.Fatalf("after Pause(tabs[0/2]) and Resume(tabs): states %v, want [paused running]", got)
		}
		if n0, n1 := len(rs[0].positions()), len(rs[1].positions()); n0 != 0 || n1 != bySlice[1] {
			t.Fatalf("handled %d and %d events, want 0 and %d", n0, n1, bySlice[1])
		}
		if err := projection.Resume(ctx, store, projection.SliceName("tabs", 0, 2)); err != nil {
			t.Fatal(err)
		}
		time.Sleep(interval)
		synctest.Wait()
		if n0, n1 := len(rs[0].positions()), len(rs[1].positions()); n0 != bySlice[0] || n1 != bySlice[1] {
			t.Errorf("after resuming both: handled %d and %d events, want %d and %d", n0, n1, bySlice[0], bySlice[1])
		}
	})
}

// TestRetryRequest checks that the runner serves a retry request: a
// failing retry records the new failure and removes the request, a
// successful one handles the event and drops the dead letter, and a
// request for a dead letter that does not exist is removed.
func TestRetryRequest(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx := t.Context()
		log := eventlog.NewMemory()
		store := projection.NewMemory()
		dls := projection.NewMemoryDeadLetters()
		first := appendN(t, log, "Tab", "t1", 3)
		bad := first[1]
		var r recorder
		var broken atomic.Bool
		broken.Store(true)
		p := mustNew(t, log, "Tab", "tabs", store, failOn(&r, 2, &broken, errors.New("boom")),
			projection.WithPoison(projection.SkipPoison), projection.WithDeadLetters(dls),
			projection.WithRetry(time.Millisecond, time.Millisecond, 3), projection.WithControlInterval(interval))
		start(t, p)
		if err := p.WaitFor(ctx, first[2]); err != nil {
			t.Fatal(err)
		}

		// Still broken: the retry fails and the request is served.
		if err := projection.RequestRetry(ctx, store, "tabs", bad); err != nil {
			t.Fatal(err)
		}
		if err := projection.RequestRetry(ctx, store, "tabs", bad); err != nil {
			t.Fatal(err)
		}
		if ctl := mustControl(t, store, "tabs"); !slices.Equal(ctl.Retries, []uint64{bad}) {
			t.Fatalf("retries %v after two requests, want [%d]", ctl.Retries, bad)
		}
		time.Sleep(interval)
		synctest.Wait()
		d, err := dls.Get(ctx, "tabs", bad)
		if err != nil {
			t.Fatalf("dead letter after a failed retry: %v", err)
		}
		if d.Attempts != 4 || d.Err != "boom" {
			t.Errorf("dead letter after a failed retry: %d attempts, err %q; want 4, boom", d.Attempts, d.Err)
		}
		if ctl := mustControl(t, store, "tabs"); len(ctl.Retries) != 0 {
			t.Errorf("retries %v after a failed retry, want none", ctl.Retries)
		}

		// Fixed: the retry handles it once and drops the dead letter; a
		// request for nothing is removed too.
		broken.Store(false)
		if err := projection.RequestRetry(ctx, store, "tabs", bad); err != nil {
			t.Fatal(err)
		}
		if err := projection.RequestRetry(ctx, store, "tabs", 999); err != nil {
			t.Fatal(err)
		}
		time.Sleep(interval)
		synctest.Wait()
		if _, err := dls.Get(ctx, "tabs", bad); !errors.Is(err, projection.ErrNotFound) {
			t.Errorf("dead letter after a successful retry: %v, want ErrNotFound", err)
		}
		if got, want := r.positions(), []uint64{first[0], first[2], bad}; !slices.Equal(got, want) {
			t.Errorf("handled %v, want %v", got, want)
		}
		if ctl := mustControl(t, store, "tabs"); len(ctl.Retries) != 0 {
			t.Errorf("retries %v after serving them, want none", ctl.Retries)
		}
	})
}

// TestRetryRequestWaitsForResume checks that a paused projection serves
// no retry request: it handles nothing until resumed.
func TestRetryRequestWaitsForResume(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx := t.Context()
		log := eventlog.NewMemory()
		store := projection.NewMemory()
		dls := projection.NewMemoryDeadLetters()
		first := appendN(t, log, "Tab", "t1", 2)
		var r recorder
		var broken atomic.Bool
		broken.Store(true)
		p := mustNew(t, log, "Tab", "tabs", store, failOn(&r, 1, &broken, errors.New("boom")),
			projection.WithPoison(projection.SkipPoison), projection.WithDeadLetters(dls),
			projection.WithRetry(time.Millisecond, time.Millisecond, 1), projection.WithControlInterval(interval))
		start(t, p)
		if err := p.WaitFor(ctx, first[1]); err != nil {
			t.Fatal(err)
		}
		broken.Store(false)
		if err := projection.Pause(ctx, store, "tabs"); err != nil {
			t.Fatal(err)
		}
		if err := projection.RequestRetry(ctx, store, "tabs", first[0]); err != nil {
			t.Fatal(err)
		}
		time.Sleep(5 * interval)
		synctest.Wait()
		if got := r.positions(); !slices.Equal(got, first[1:]) {
			t.Fatalf("handled %v while paused with a retry request, want %v", got, first[1:])
		}
		if err := projection.Resume(ctx, store, "tabs"); err != nil {
			t.Fatal(err)
		}
		time.Sleep(interval)
		synctest.Wait()
		if got, want := r.positions(), []uint64{first[1], first[0]}; !slices.Equal(got, want) {
			t.Errorf("handled %v after Resume, want %v", got, want)
		}
	})
}

// flakyControls fails LoadControl while down is set.
type flakyControls struct {
	*projection.Memory
	down atomic.Bool
}

func (s *flakyControls) LoadControl(ctx context.Context, name string) (projection.Control, uint64, error) {
	if s.down.Load() {
		return projection.Control{}, 0, errors.New("controls down")
	}
	return s.Memory.LoadControl(ctx, name)
}

// TestControlFailureKeepsState checks that a control record that cannot
// be read neither pauses nor resumes the projection, is reported in the
// Status, and that a start waits until it can be read.
func TestControlFailureKeepsState(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx := t.Context()
		log := eventlog.NewMemory()
		store := &flakyControls{Memory: projection.NewMemory()}
		var r recorder
		p := mustNew(t, log, "Tab", "tabs", store, r.handle, projection.WithControlInterval(interval),
			projection.WithRetry(interval, interval, 1))
		if err := projection.Pause(ctx, store, "tabs"); err != nil {
			t.Fatal(err)
		}
		appendN(t, log, "Tab", "t1", 2)
		store.down.Store(true)
		start(t, p)
		time.Sleep(5 * interval)
		synctest.Wait()
		if st := p.Status(); len(r.positions()) != 0 || st.LastError == nil {
			t.Fatalf("started while the control record cannot be read: handled %v, last error %v; want nothing handled, an error", r.positions(), st.LastError)
		}
		store.down.Store(false)
		time.Sleep(interval)
		synctest.Wait()
		if st := p.Status(); st.State != projection.StatePaused {
			t.Fatalf("state %v once the control record is read, want paused", st.State)
		}
		store.down.Store(true)
		if err := projection.Resume(ctx, store.Memory, "tabs"); err != nil {
			t.Fatal(err)
		}
		time.Sleep(5 * interval)
		synctest.Wait()
		if st := p.Status(); st.State != projection.StatePaused || len(r.positions()) != 0 {
			t.Errorf("resumed while the control record cannot be read: state %v, handled %v; want paused, nothing", st.State, r.positions())
		}
		store.down.Store(false)
		time.Sleep(interval)
		synctest.Wait()
		if st := p.Status(); st.State != projection.StateRunning || len(r.positions()) != 2 {
			t.Errorf("once read again: state %v, handled %v; want running, 2 events", st.State, r.positions())
		}
	})
}

// TestUpdateControlConcurrent checks that concurrent requests all land:
// UpdateControl starts over when another writer got in first.
func TestUpdateControlConcurrent(t *testing.T) {
	ctx := t.Context()
	store := projection.NewMemory()
	var wg sync.WaitGroup
	for i := range 20 {
		wg.Go(func() {
			if err := projection.RequestRetry(ctx, store, "tabs", uint64(20-i)); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Go(func() {
		if err := projection.Pause(ctx, store, "tabs"); err != nil {
			t.Error(err)
		}
	})
	wg.Wait()
	ctl := mustControl(t, store, "tabs")
	want := make([]uint64, 20)
	for i := range want {
		want[i] = uint64(i + 1)
	}
	if !ctl.Paused || !slices.Equal(ctl.Retries, want) {
		t.Errorf("control %+v, want paused with retries %v", ctl, want)
	}
}

func TestControlArguments(t *testing.T) {
	ctx := t.Context()
	if err := projection.Pause(ctx, nil, "tabs"); !errors.Is(err, projection.ErrInvalid) {
		t.Errorf("Pause(nil store): %v, want ErrInvalid", err)
	}
	if err := projection.Resume(ctx, projection.NewMemory(), ""); !errors.Is(err, projection.ErrInvalid) {
		t.Errorf("Resume(\"\"): %v, want ErrInvalid", err)
	}
	for _, d := range []time.Duration{0, -time.Second} {
		_, err := projection.New(eventlog.NewMemory(), "Tab", "tabs", projection.NewMemory(), (&recorder{}).handle, projection.WithControlInterval(d))
		if !errors.Is(err, projection.ErrInvalid) {
			t.Errorf("WithControlInterval(%v): %v, want ErrInvalid", d, err)
		}
	}
	if got := projection.StatePaused.String(); got != "paused" {
		t.Errorf("StatePaused.String() = %q", got)
	}
}
