package timer_test

import (
	"context"
	"log/slog"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/eventsourced-go/eventsourced/entity"
	"github.com/eventsourced-go/eventsourced/eventlog"
	"github.com/eventsourced-go/eventsourced/projection"
	"github.com/eventsourced-go/eventsourced/timer"
)

// fireCall is one call of a recording fire function.
type fireCall struct {
	timer.Timer
	ctxKey string // the idempotency key the context carried
	time   time.Time
}

// recorder is a fire function that records its calls; fail, if set,
// decides per call whether it fails.
type recorder struct {
	mu    sync.Mutex
	calls []fireCall
	fail  func(tm timer.Timer) error
}

func (r *recorder) fire(ctx context.Context, tm timer.Timer) error {
	key, _ := entity.IdempotencyKeyFrom(ctx)
	r.mu.Lock()
	r.calls = append(r.calls, fireCall{Timer: tm, ctxKey: key, time: time.Now()})
	fail := r.fail
	r.mu.Unlock()
	if fail != nil {
		return fail(tm)
	}
	return nil
}

func (r *recorder) got() []fireCall {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.calls)
}

// keys returns the keys of the calls, in call order.
func (r *recorder) keys() []string {
	var out []string
	for _, c := range r.got() {
		out = append(out, c.Key)
	}
	return out
}

// waitFor polls cond until it holds or 15 s have passed.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

// run makes a System on log and Timers named name on it, with their
// low-water mark in offsets, and starts them; t's cleanup stops both.
func run(t *testing.T, log eventlog.Log, offsets projection.OffsetStore, name string, fire timer.FireFunc, opts ...timer.Option) (*entity.System, *timer.Timers) {
	t.Helper()
	sys, tm := build(t, log, offsets, name, fire, opts...)
	if err := tm.Start(context.Background()); err != nil {
		t.Fatalf("Start: %v", err)
	}
	return sys, tm
}

// build is run without the Start.
func build(t *testing.T, log eventlog.Log, offsets projection.OffsetStore, name string, fire timer.FireFunc, opts ...timer.Option) (*entity.System, *timer.Timers) {
	t.Helper()
	sys, err := entity.NewSystem(log, entity.WithoutTelemetry())
	if err != nil {
		t.Fatal(err)
	}
	opts = append([]timer.Option{timer.WithLogger(slog.New(slog.DiscardHandler))}, opts...)
	tm, err := timer.New(sys, name, offsets, fire, opts...)
	if err != nil {
		t.Fatalf("timer.New: %v", err)
	}
	t.Cleanup(func() { stop(t, sys, tm) })
	return sys, tm
}

// stop stops tm, then its System.
func stop(t *testing.T, sys *entity.System, tm *timer.Timers) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := tm.Stop(ctx); err != nil {
		t.Errorf("Stop: %v", err)
	}
	if err := sys.Shutdown(ctx); err != nil {
		t.Errorf("Shutdown: %v", err)
	}
}

// events returns the event names of the timer id's stream.
func events(t *testing.T, log eventlog.Log, tm *timer.Timers, id string) []string {
	t.Helper()
	var out []string
	for rec, err := range log.ReadEntity(context.Background(), tm.Type(), id, 1) {
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, rec.Name)
	}
	return out
}

// genOf returns the timer id's last generation.
func genOf(t *testing.T, tm *timer.Timers, id string) uint64 {
	t.Helper()
	info, err := tm.Get(context.Background(), id)
	if err != nil {
		t.Fatalf("Get(%s): %v", id, err)
	}
	return info.Generation
}

// fakeClock is a Clock that moves when the test says.
type fakeClock struct {
	mu      sync.Mutex
	now     time.Time
	waiters []fakeWaiter
}

type fakeWaiter struct {
	at time.Time
	c  chan time.Time
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) After(d time.Duration) <-chan time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	ch := make(chan time.Time, 1)
	if d <= 0 {
		ch <- c.now
		return ch
	}
	c.waiters = append(c.waiters, fakeWaiter{at: c.now.Add(d), c: ch})
	return ch
}

// Advance moves the clock by d and wakes the waiters due by then.
func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
	c.waiters = slices.DeleteFunc(c.waiters, func(w fakeWaiter) bool {
		if w.at.After(c.now) {
			return false
		}
		w.c <- c.now
		return true
	})
}
