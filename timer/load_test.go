package timer_test

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/eventsourced-go/eventsourced/entity"
	"github.com/eventsourced-go/eventsourced/eventlog"
	"github.com/eventsourced-go/eventsourced/projection"
	"github.com/eventsourced-go/eventsourced/timer"
)

// fireLog records every fire by timer id, with its time and key. Timers
// slow says are slow take 50 ms to fire, unless ctx ends first (then the
// fire fails).
type fireLog struct {
	mu    sync.Mutex
	fires map[string][]time.Time
	keys  map[string][]string
	slow  func(id string) bool
}

func newFireLog() *fireLog {
	return &fireLog{fires: make(map[string][]time.Time), keys: make(map[string][]string)}
}

func (f *fireLog) fire(ctx context.Context, tm timer.Timer) error {
	now := time.Now()
	key, _ := entity.IdempotencyKeyFrom(ctx)
	f.mu.Lock()
	f.fires[tm.ID] = append(f.fires[tm.ID], now)
	f.keys[tm.ID] = append(f.keys[tm.ID], key)
	f.mu.Unlock()
	if f.slow != nil && f.slow(tm.ID) {
		select {
		case <-time.After(50 * time.Millisecond):
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	return nil
}

func (f *fireLog) ids() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.fires)
}

// Rule: 10,000 timers due over 5 seconds, across a stop of the
// scheduler and a restart of a new one (new System, same log and offset
// store) in the middle of them: every timer not cancelled fires at least
// once, none of the 1,000 cancelled fires, the timers recorded before the
// stop do not fire again, and the p99 lateness (fire time minus the later
// of the due time and the restart) is under 1 s.
func TestTenThousandTimersAcrossRestart(t *testing.T) {
	testManyAcrossRestart(t, eventlog.NewMemory(), projection.NewMemory(), 10000, 1000)
}

// testManyAcrossRestart schedules n timers due over 5 s from 3 s after it
// starts scheduling, cancels cancelled of them, stops the scheduler 2 s
// into the spread, restarts it a second later (so a fifth of the timers
// come due while no scheduler runs) and checks the guarantees and the
// lateness.
func testManyAcrossRestart(t *testing.T, log eventlog.Log, offsets projection.OffsetStore, n, cancelled int) {
	ctx := context.Background()
	const concurrency = timer.DefaultConcurrency
	fl := newFireLog()
	// One timer in 50 takes a while to fire, so that some are in flight
	// when the first scheduler stops.
	fl.slow = func(id string) bool { return strings.HasSuffix(id, "1") && id[len(id)-2]%5 == 0 }
	sys1, tm1 := run(t, log, offsets, "load", fl.fire)

	base := time.Now().Add(3 * time.Second)
	spread := 5 * time.Second
	due := make([]time.Time, n)
	scheduled := make([]time.Time, n) // when Schedule returned
	id := func(i int) string { return fmt.Sprintf("t-%05d", i) }
	isCancelled := func(i int) bool { return i%(n/cancelled) == 0 }
	scheduleStart := time.Now()
	var wg sync.WaitGroup
	const schedulers = 16
	errs := make(chan error, schedulers)
	for w := range schedulers {
		wg.Go(func() {
			for i := w; i < n; i += schedulers {
				due[i] = base.Add(time.Duration(i) * spread / time.Duration(n))
				if err := tm1.Schedule(ctx, id(i), due[i], []byte(id(i))); err != nil {
					errs <- err
					return
				}
				scheduled[i] = time.Now()
				if isCancelled(i) {
					if err := tm1.Cancel(ctx, id(i)); err != nil {
						errs <- fmt.Errorf("cancel %s: %v", id(i), err)
						return
					}
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	t.Logf("scheduled %d timers and cancelled %d in %v", n, cancelled, time.Since(scheduleStart))
	if time.Now().After(base) {
		// On a loaded machine: the timers scheduled after they were due
		// count from when they were scheduled.
		t.Logf("scheduling took %v, past the first due time", time.Since(scheduleStart))
	}

	time.Sleep(time.Until(base.Add(2 * time.Second)))
	stopped := time.Now()
	stop(t, sys1, tm1)
	firedBefore := fl.ids()
	// Which of the timers fired had their firing recorded before the
	// stop: those must not fire again, the others (in flight) must.
	recorded := map[string]bool{}
	fl.mu.Lock()
	firedIDs := slices.Collect(maps.Keys(fl.fires))
	fl.mu.Unlock()
	for _, id := range firedIDs {
		for rec, err := range log.ReadEntity(ctx, tm1.Type(), id, 1) {
			if err != nil {
				t.Fatal(err)
			}
			if rec.Name == timer.EventFired {
				recorded[id] = true
			}
		}
	}
	t.Logf("stopped the first scheduler %v into the spread, after %d timers fired, %d of them recorded", stopped.Sub(base), firedBefore, len(recorded))

	time.Sleep(time.Second) // down: the timers due meanwhile wait
	restart := time.Now()
	_, tm2 := run(t, log, offsets, "load", fl.fire)
	want := n - cancelled
	waitFor(t, fmt.Sprintf("%d timers to fire", want), func() bool { return fl.ids() >= want })
	// Pending drops when the projection reads a Fired event, which can be
	// before the worker that appended it counts it as recorded: wait for
	// the workers too.
	waitFor(t, "the second scheduler to record them", func() bool { st := tm2.Status(); return st.Pending == 0 && st.InFlight == 0 })
	if st := tm2.Status(); st.Fired < uint64(want-firedBefore) || st.Recorded != st.Fired || st.Failures != 0 {
		t.Errorf("second scheduler's status %+v; want at least the %d timers left fired, all recorded, no failures", st, want-firedBefore)
	}

	fl.mu.Lock()
	defer fl.mu.Unlock()
	var lateness, afterRestart []time.Duration
	again := 0
	for i := range n {
		fires := fl.fires[id(i)]
		if isCancelled(i) {
			if len(fires) > 0 {
				t.Errorf("cancelled timer %s fired %d times", id(i), len(fires))
			}
			continue
		}
		if len(fires) == 0 {
			t.Errorf("timer %s never fired", id(i))
			continue
		}
		for _, k := range fl.keys[id(i)] {
			if k != "load/"+id(i)+"/1" {
				t.Errorf("timer %s fired with key %q, want load/%s/1", id(i), k, id(i))
			}
		}
		switch {
		case recorded[id(i)] && len(fires) != 1:
			t.Errorf("timer %s, recorded before the stop, fired %d times, want once", id(i), len(fires))
		case len(fires) > 1:
			again++
			if len(fires) != 2 {
				t.Errorf("timer %s, in flight at the stop, fired %d times, want twice", id(i), len(fires))
			}
		}
		// Lateness counts from the later of the due time, the end of the
		// Schedule call and, for timers first fired by the second
		// scheduler, its start.
		first := fires[0]
		from := due[i]
		if scheduled[i].After(from) {
			from = scheduled[i]
		}
		if first.After(restart) && from.Before(restart) {
			from = restart
		}
		lateness = append(lateness, first.Sub(from))
		if first.After(restart) {
			afterRestart = append(afterRestart, first.Sub(from))
		}
	}
	slices.Sort(lateness)
	slices.Sort(afterRestart)
	if len(afterRestart) > 0 {
		t.Logf("fired first after the restart: %d timers, p50 %v, p99 %v", len(afterRestart),
			afterRestart[len(afterRestart)/2], afterRestart[int(0.99*float64(len(afterRestart)-1))])
	}
	p := func(q float64) time.Duration { return lateness[int(q*float64(len(lateness)-1))] }
	t.Logf("lateness of %d timers: p50 %v, p99 %v, max %v; %d fired again after the restart (in flight at the stop, at most %d)",
		len(lateness), p(0.5), p(0.99), lateness[len(lateness)-1], again, concurrency)
	if p(0.99) >= time.Second {
		t.Errorf("p99 lateness %v, want under 1 s", p(0.99))
	}
	if want := firedBefore - len(recorded); again != want || again > concurrency {
		t.Errorf("%d timers fired again after the restart; want exactly those fired and not recorded before the stop, %d (at most %d)", again, want, concurrency)
	}
	if firedBefore == 0 || firedBefore >= want {
		t.Errorf("%d timers fired before the stop; the test wants the stop in the middle of them", firedBefore)
	}
}
