package projection_test

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/eventsourced-go/eventsourced/eventlog"
	"github.com/eventsourced-go/eventsourced/projection"
)

// failOn returns a handler that records what it applies and fails on the
// events of Seq seq while *broken holds.
func failOn(r *recorder, seq uint64, broken *atomic.Bool, err error) projection.Handler {
	return func(ctx context.Context, batch []eventlog.Record) error {
		for _, rec := range batch {
			if rec.Seq == seq && broken.Load() {
				return err
			}
		}
		return r.handle(ctx, batch)
	}
}

func positionsOf(ds []projection.DeadLetter) []uint64 {
	var out []uint64
	for _, d := range ds {
		out = append(out, d.Record.Position)
	}
	return out
}

// TestSkippedPoisonIsDeadLettered checks that a skipped event lands in
// the store whole, with the error and the attempts, and that the offset
// moves past it.
func TestSkippedPoisonIsDeadLettered(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx := t.Context()
		log := eventlog.NewMemory()
		appendN(t, log, "Tab", "t1", 1)
		meta := map[string]string{"correlation": "c-1"}
		bad, err := log.Append(ctx, "Tab", "t1", 1, eventlog.Event{Name: "Bad", Revision: 2, Data: []byte{0xff, 0}, Metadata: meta})
		if err != nil {
			t.Fatal(err)
		}
		after := appendN(t, log, "Tab", "t1", 1)
		dls := projection.NewMemoryDeadLetters()
		var r recorder
		var broken atomic.Bool
		broken.Store(true)
		boom := errors.New("boom")
		p := mustNew(t, log, "Tab", "tabs", projection.NewMemory(), failOn(&r, 2, &broken, boom),
			projection.WithPoison(projection.SkipPoison), projection.WithDeadLetters(dls),
			projection.WithRetry(time.Millisecond, time.Millisecond, 3))
		start(t, p)
		if err := p.WaitFor(ctx, after[0]); err != nil {
			t.Fatal(err)
		}
		got, err := dls.List(ctx, "tabs", 0, 0)
		if err != nil {
			t.Fatal(err)
		}
		if len(got) != 1 {
			t.Fatalf("dead letters at %v, want one at %d", positionsOf(got), bad)
		}
		d := got[0]
		rec := d.Record
		if d.Projection != "tabs" || rec.EntityType != "Tab" || rec.EntityID != "t1" || rec.Seq != 2 || rec.Position != bad ||
			rec.Name != "Bad" || rec.Revision != 2 || !slices.Equal(rec.Data, []byte{0xff, 0}) || !maps.Equal(rec.Metadata, meta) || rec.Time.IsZero() {
			t.Errorf("dead letter %+v, want the whole record of Tab/t1 seq 2 at %d", d, bad)
		}
		if d.Err != "boom" || d.Attempts != 3 || !d.Time.Equal(time.Now()) {
			t.Errorf("dead letter: err %q, %d attempts, at %v; want boom, 3, now", d.Err, d.Attempts, d.Time)
		}
		if st := p.Status(); st.SkippedTotal != 1 || st.Offset != after[0] || st.State != projection.StateRunning {
			t.Errorf("status %+v, want 1 skipped, offset %d, running", st, after[0])
		}
		// The projection's own view of the store.
		if list, err := p.ListDeadLetters(ctx, 0, 10); err != nil || !slices.Equal(positionsOf(list), []uint64{bad}) {
			t.Errorf("ListDeadLetters: %v, %v; want [%d]", positionsOf(list), err, bad)
		}
	})
}

// flakyDeadLetters fails Put failures times.
type flakyDeadLetters struct {
	*projection.MemoryDeadLetters
	mu       sync.Mutex // guards failures
	failures int
}

func (s *flakyDeadLetters) Put(ctx context.Context, d projection.DeadLetter) error {
	s.mu.Lock()
	fail := s.failures > 0
	if fail {
		s.failures--
	}
	s.mu.Unlock()
	if fail {
		return errors.New("dead letters down")
	}
	return s.MemoryDeadLetters.Put(ctx, d)
}

// TestDeadLetterPutFailuresHoldTheOffset checks that an event is never
// skipped unrecorded: the offset stays before it until Put succeeds, and
// Put is retried however often it fails, not given up on after the
// handler's attempts.
func TestDeadLetterPutFailuresHoldTheOffset(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		log := eventlog.NewMemory()
		pos := appendN(t, log, "Tab", "t1", 3)
		dls := &flakyDeadLetters{MemoryDeadLetters: projection.NewMemoryDeadLetters(), failures: 10}
		var r recorder
		var broken atomic.Bool
		broken.Store(true)
		p := mustNew(t, log, "Tab", "tabs", projection.NewMemory(), failOn(&r, 2, &broken, errors.New("boom")),
			projection.WithPoison(projection.SkipPoison), projection.WithDeadLetters(dls),
			projection.WithRetry(time.Second, time.Second, 2))
		start(t, p)
		time.Sleep(5 * time.Second) // 1 handler retry, then 4 of Put
		synctest.Wait()
		st := p.Status()
		if st.Offset != pos[0] || st.LastError == nil || st.SkippedTotal != 0 {
			t.Fatalf("while Put fails: status %+v, want offset %d, the Put's error, nothing skipped", st, pos[0])
		}
		if got := fmt.Sprint(st.LastError); got != fmt.Sprintf("projection: tabs: put dead letter Tab/t1 seq 2 (position %d, E): dead letters down", pos[1]) {
			t.Errorf("LastError %q", got)
		}
		time.Sleep(time.Minute)
		synctest.Wait()
		if st := p.Status(); st.Offset != pos[2] || st.SkippedTotal != 1 {
			t.Errorf("after Put succeeded: status %+v, want offset %d, 1 skipped", st, pos[2])
		}
		if got, _ := dls.List(t.Context(), "tabs", 0, 0); !slices.Equal(positionsOf(got), pos[1:2]) {
			t.Errorf("dead letters at %v, want %v", positionsOf(got), pos[1:2])
		}
	})
}

// TestRetryAndDropDeadLetters retries a dead letter that fails again, then
// one that succeeds, and drops another, while the projection runs.
func TestRetryAndDropDeadLetters(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx := t.Context()
		log := eventlog.NewMemory()
		pos := appendN(t, log, "Tab", "t1", 2)
		pos = append(pos, appendN(t, log, "Tab", "t2", 2)...)
		dls := projection.NewMemoryDeadLetters()
		var r recorder
		var broken atomic.Bool
		broken.Store(true)
		p := mustNew(t, log, "Tab", "tabs", projection.NewMemory(), failOn(&r, 2, &broken, errors.New("boom")),
			projection.WithPoison(projection.SkipPoison), projection.WithDeadLetters(dls),
			projection.WithRetry(time.Millisecond, time.Millisecond, 2))
		start(t, p)
		if err := p.WaitFor(ctx, pos[3]); err != nil {
			t.Fatal(err)
		}
		if got, _ := p.ListDeadLetters(ctx, 0, 0); !slices.Equal(positionsOf(got), []uint64{pos[1], pos[3]}) {
			t.Fatalf("dead letters at %v, want %v", positionsOf(got), []uint64{pos[1], pos[3]})
		}

		// Still broken: the dead letter stays, with the new error and one
		// more attempt.
		time.Sleep(time.Second)
		broken.Store(true)
		err := p.RetryDeadLetter(ctx, pos[1])
		if err == nil || err.Error() != fmt.Sprintf("projection: tabs: retry dead letter Tab/t1 seq 2 (position %d, E): boom", pos[1]) {
			t.Errorf("RetryDeadLetter while the handler still fails: %v", err)
		}
		d, err := dls.Get(ctx, "tabs", pos[1])
		if err != nil || d.Attempts != 3 || d.Err != "boom" || !d.Time.Equal(time.Now()) {
			t.Errorf("after a failed retry: %+v, %v; want 3 attempts, boom, now", d, err)
		}

		// Fixed: the retry applies the event and drops the dead letter.
		broken.Store(false)
		if err := p.RetryDeadLetter(ctx, pos[1]); err != nil {
			t.Fatalf("RetryDeadLetter: %v", err)
		}
		want := []uint64{pos[0], pos[2], pos[1]}
		if got := r.positions(); !slices.Equal(got, want) {
			t.Errorf("handled %v, want %v", got, want)
		}
		if err := p.RetryDeadLetter(ctx, pos[1]); !errors.Is(err, projection.ErrNotFound) {
			t.Errorf("RetryDeadLetter of a retried dead letter: %v, want ErrNotFound", err)
		}
		if err := p.DropDeadLetter(ctx, pos[3]); err != nil {
			t.Fatalf("DropDeadLetter: %v", err)
		}
		if err := p.DropDeadLetter(ctx, pos[3]); !errors.Is(err, projection.ErrNotFound) {
			t.Errorf("DropDeadLetter of a dropped dead letter: %v, want ErrNotFound", err)
		}
		if got, err := p.ListDeadLetters(ctx, 0, 0); len(got) != 0 || err != nil {
			t.Errorf("dead letters at %v, %v; want none", positionsOf(got), err)
		}
		if got := r.positions(); !slices.Equal(got, want) {
			t.Errorf("handled %v after a drop, want %v", got, want)
		}
		if st := p.Status(); st.State != projection.StateRunning || st.Offset != pos[3] {
			t.Errorf("status %+v, want running at %d", st, pos[3])
		}
	})
}

// TestRetryNeverOverlapsTheRun retries dead letters while the projection
// handles a stream of events: the handler must never run concurrently
// with itself.
func TestRetryNeverOverlapsTheRun(t *testing.T) {
	log := eventlog.NewMemory()
	pos := appendN(t, log, "Tab", "t1", 200)
	dls := projection.NewMemoryDeadLetters()
	ctx := t.Context()
	const letters = 20
	for i := range letters {
		rec := eventlog.Record{EntityType: "Tab", EntityID: "old", Seq: uint64(i + 1), Position: pos[len(pos)-1] + 100 + uint64(i), Name: "E"}
		if err := dls.Put(ctx, projection.DeadLetter{Projection: "tabs", Record: rec, Err: "boom", Attempts: 1}); err != nil {
			t.Fatal(err)
		}
	}
	var active, overlaps, handled atomic.Int32
	h := func(_ context.Context, batch []eventlog.Record) error {
		if active.Add(1) > 1 {
			overlaps.Add(1)
		}
		time.Sleep(50 * time.Microsecond)
		active.Add(-1)
		handled.Add(int32(len(batch)))
		return nil
	}
	p := mustNew(t, log, "Tab", "tabs", projection.NewMemory(), h, projection.WithPoison(projection.SkipPoison), projection.WithDeadLetters(dls))
	start(t, p)
	var wg sync.WaitGroup
	for i := range letters {
		wg.Go(func() {
			if err := p.RetryDeadLetter(ctx, pos[len(pos)-1]+100+uint64(i)); err != nil {
				t.Errorf("RetryDeadLetter: %v", err)
			}
		})
	}
	wg.Wait()
	if err := p.WaitFor(ctx, pos[len(pos)-1]); err != nil {
		t.Fatal(err)
	}
	if n := overlaps.Load(); n != 0 {
		t.Errorf("the handler ran concurrently with itself %d times", n)
	}
	if n := handled.Load(); n != 200+letters {
		t.Errorf("handled %d events, want %d", n, 200+letters)
	}
}

func TestDeadLettersNeedAStore(t *testing.T) {
	p := mustNew(t, eventlog.NewMemory(), "Tab", "tabs", projection.NewMemory(), func(context.Context, []eventlog.Record) error { return nil })
	ctx := t.Context()
	if _, err := p.ListDeadLetters(ctx, 0, 0); !errors.Is(err, projection.ErrInvalid) {
		t.Errorf("ListDeadLetters without a store: %v, want ErrInvalid", err)
	}
	if err := p.RetryDeadLetter(ctx, 1); !errors.Is(err, projection.ErrInvalid) {
		t.Errorf("RetryDeadLetter without a store: %v, want ErrInvalid", err)
	}
	if err := p.DropDeadLetter(ctx, 1); !errors.Is(err, projection.ErrInvalid) {
		t.Errorf("DropDeadLetter without a store: %v, want ErrInvalid", err)
	}
	if _, err := projection.New(eventlog.NewMemory(), "Tab", "tabs", projection.NewMemory(), func(context.Context, []eventlog.Record) error { return nil },
		projection.WithDeadLetters(nil)); !errors.Is(err, projection.ErrInvalid) {
		t.Errorf("WithDeadLetters(nil): %v, want ErrInvalid", err)
	}
}

// TestStopOnPoisonStateAndSetOffset stops at a poison event (recording no
// dead letter), reports it in the status, and skips it with SetOffset.
func TestStopOnPoisonStateAndSetOffset(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx := t.Context()
		log := eventlog.NewMemory()
		pos := appendN(t, log, "Tab", "t1", 4)
		store := projection.NewMemory()
		dls := projection.NewMemoryDeadLetters()
		var r recorder
		var broken atomic.Bool
		broken.Store(true)
		p := mustNew(t, log, "Tab", "tabs", store, failOn(&r, 2, &broken, errors.New("boom")),
			projection.WithDeadLetters(dls), projection.WithRetry(time.Millisecond, time.Millisecond, 2))
		if st := p.Status(); st.State != projection.StateStopped || st.State.String() != "stopped" {
			t.Errorf("before Start: state %v, want stopped", st.State)
		}
		start(t, p)
		if err := p.Wait(ctx); !errors.Is(err, projection.ErrPoison) {
			t.Fatalf("Wait: %v, want ErrPoison", err)
		}
		st := p.Status()
		if st.State != projection.StatePoisoned || st.State.String() != "poisoned" || st.Poison == nil || st.Poison.Event.Position != pos[1] {
			t.Fatalf("status %+v, want poisoned at %d", st, pos[1])
		}
		if got, _ := dls.List(ctx, "tabs", 0, 0); len(got) != 0 {
			t.Errorf("StopOnPoison recorded dead letters at %v, want none", positionsOf(got))
		}

		// Skip the poison event and resume.
		if err := p.SetOffset(ctx, pos[1]); err != nil {
			t.Fatalf("SetOffset: %v", err)
		}
		if st := p.Status(); st.State != projection.StateStopped || st.Poison != nil || st.Offset != pos[1] {
			t.Errorf("after SetOffset past the poison event: status %+v, want stopped at %d", st, pos[1])
		}
		if off, _ := store.Load(ctx, "tabs"); off != pos[1] {
			t.Errorf("stored offset %d, want %d", off, pos[1])
		}
		start(t, p)
		if err := p.WaitFor(ctx, pos[3]); err != nil {
			t.Fatal(err)
		}
		if err := p.SetOffset(ctx, 0); !errors.Is(err, projection.ErrRunning) {
			t.Errorf("SetOffset while running: %v, want ErrRunning", err)
		}
		stop(t, p)
		if got, want := r.positions(), []uint64{pos[0], pos[2], pos[3]}; !slices.Equal(got, want) {
			t.Errorf("handled %v, want %v", got, want)
		}

		// Rewind: the events after the new offset are handled again.
		broken.Store(false)
		if err := p.SetOffset(ctx, pos[0]); err != nil {
			t.Fatalf("SetOffset back: %v", err)
		}
		if st := p.Status(); st.Offset != pos[0] || st.State != projection.StateStopped {
			t.Errorf("after rewinding: status %+v, want stopped at %d", st, pos[0])
		}
		start(t, p)
		if err := p.WaitFor(ctx, pos[3]); err != nil {
			t.Fatal(err)
		}
		synctest.Wait()
		if got, want := r.positions(), []uint64{pos[0], pos[2], pos[3], pos[1], pos[2], pos[3]}; !slices.Equal(got, want) {
			t.Errorf("after rewinding, handled %v, want %v", got, want)
		}
	})
}

// TestSetOffsetRefusesAMovedOffset checks that SetOffset does not
// overwrite an offset another runner moved since it read it.
func TestSetOffsetRefusesAMovedOffset(t *testing.T) {
	ctx := t.Context()
	store := &racingStore{Memory: projection.NewMemory()}
	p := mustNew(t, eventlog.NewMemory(), "Tab", "tabs", store, func(context.Context, []eventlog.Record) error { return nil })
	if err := p.SetOffset(ctx, 5); !errors.Is(err, projection.ErrOffsetMoved) {
		t.Errorf("SetOffset with a runner moving the offset: %v, want ErrOffsetMoved", err)
	}
	if off, _ := store.Load(ctx, "tabs"); off != 9 {
		t.Errorf("offset %d, want 9, the other runner's", off)
	}
	if st := p.Status(); st.Offset != 0 {
		t.Errorf("status offset %d after a failed SetOffset, want 0", st.Offset)
	}
	if err := p.SetOffset(ctx, 5); err != nil {
		t.Errorf("SetOffset again: %v", err)
	}
	if off, _ := store.Load(ctx, "tabs"); off != 5 {
		t.Errorf("offset %d, want 5", off)
	}
}

// racingStore moves the offset to 9 once, right after the first Load, as
// another runner would.
type racingStore struct {
	*projection.Memory
	raced atomic.Bool
}

func (s *racingStore) Load(ctx context.Context, name string) (uint64, error) {
	off, err := s.Memory.Load(ctx, name)
	if err == nil && !s.raced.Swap(true) {
		err = s.Memory.Commit(ctx, name, off, 9, func(context.Context) error { return nil })
	}
	return off, err
}
