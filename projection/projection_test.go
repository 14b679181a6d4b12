package projection_test

import (
	"context"
	"errors"
	"fmt"
	"iter"
	"slices"
	"strconv"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/eventsourced-go/eventsourced/eventlog"
	"github.com/eventsourced-go/eventsourced/projection"
)

// appendN appends n events named "E" to entity typ/id, one append each, and
// returns their Positions.
func appendN(t *testing.T, log eventlog.Log, typ, id string, n int) []uint64 {
	t.Helper()
	ctx := context.Background()
	seq, err := log.LastSeq(ctx, typ, id)
	if err != nil {
		t.Fatal(err)
	}
	var pos []uint64
	for i := range n {
		p, err := log.Append(ctx, typ, id, seq+uint64(i), eventlog.Event{Name: "E", Data: []byte(strconv.Itoa(int(seq) + i + 1))})
		if err != nil {
			t.Fatal(err)
		}
		pos = append(pos, p)
	}
	return pos
}

// recorder is a handler that records the events it applied.
type recorder struct {
	mu      sync.Mutex // guards got and batches
	got     []projection.EventRef
	batches []int
}

func (r *recorder) handle(_ context.Context, batch []eventlog.Record) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, rec := range batch {
		r.got = append(r.got, projection.EventRef{EntityType: rec.EntityType, EntityID: rec.EntityID, Seq: rec.Seq, Position: rec.Position, Name: rec.Name})
	}
	r.batches = append(r.batches, len(batch))
	return nil
}

func (r *recorder) positions() []uint64 {
	r.mu.Lock()
	defer r.mu.Unlock()
	var ps []uint64
	for _, e := range r.got {
		ps = append(ps, e.Position)
	}
	return ps
}

func mustNew(t *testing.T, log eventlog.Log, typ, name string, store projection.OffsetStore, h projection.Handler, opts ...projection.Option) *projection.Projection {
	t.Helper()
	p, err := projection.New(log, typ, name, store, h, opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Stop(context.Background()) })
	return p
}

func start(t *testing.T, p *projection.Projection) {
	t.Helper()
	if err := p.Start(t.Context()); err != nil {
		t.Fatal(err)
	}
}

func stop(t *testing.T, p *projection.Projection) {
	t.Helper()
	if err := p.Stop(context.Background()); err != nil {
		t.Fatal(err)
	}
	if err := p.Wait(context.Background()); err != nil {
		t.Fatalf("Wait after Stop: %v, want nil", err)
	}
}

func TestHandlesTypeInOrder(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		log := eventlog.NewMemory()
		var want []uint64
		for i := range 3 {
			want = append(want, appendN(t, log, "Tab", fmt.Sprint("t", i), 2)...)
			appendN(t, log, "Other", fmt.Sprint("o", i), 1)
		}
		var r recorder
		p := mustNew(t, log, "Tab", "tabs", projection.NewMemory(), r.handle)
		start(t, p)
		synctest.Wait()
		want = append(want, appendN(t, log, "Tab", "t0", 2)...) // live
		synctest.Wait()
		if got := r.positions(); !slices.Equal(got, want) {
			t.Errorf("handled positions %v, want %v", got, want)
		}
		st := p.Status()
		if st.Offset != want[len(want)-1] || st.Head != st.Offset || st.Lag != 0 || st.ReadAheadFull || st.Handled != 8 || !st.Running || st.LastError != nil {
			t.Errorf("status %+v, want offset=head=%d, lag 0, handled 8, running, no error", st, want[len(want)-1])
		}
		stop(t, p)
		if p.Status().Running {
			t.Error("Running after Stop")
		}
	})
}

func TestBatches(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		log := eventlog.NewMemory()
		want := appendN(t, log, "Tab", "t1", 25)
		var r recorder
		p := mustNew(t, log, "Tab", "tabs", projection.NewMemory(), r.handle, projection.WithBatchSize(10))
		start(t, p)
		synctest.Wait()
		if got := r.positions(); !slices.Equal(got, want) {
			t.Errorf("handled positions %v, want %v", got, want)
		}
		sum := 0
		for _, n := range r.batches {
			if n < 1 || n > 10 {
				t.Errorf("batch of %d events, want 1..10", n)
			}
			sum += n
		}
		if sum != 25 || len(r.batches) < 3 {
			t.Errorf("batches %v, want at least 3 summing to 25", r.batches)
		}
	})
}

func TestResumesFromOffsetAndNamesAreIndependent(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		log := eventlog.NewMemory()
		store := projection.NewMemory()
		first := appendN(t, log, "Tab", "t1", 3)
		var a1, b recorder
		pa := mustNew(t, log, "Tab", "a", store, a1.handle)
		pb := mustNew(t, log, "Tab", "b", store, b.handle)
		start(t, pa)
		synctest.Wait()
		stop(t, pa)
		more := appendN(t, log, "Tab", "t2", 2)

		var a2 recorder
		pa2 := mustNew(t, log, "Tab", "a", store, a2.handle)
		start(t, pa2)
		start(t, pb)
		synctest.Wait()
		if got := a2.positions(); !slices.Equal(got, more) {
			t.Errorf("restarted a handled %v, want only the new events %v", got, more)
		}
		if got, want := b.positions(), append(slices.Clone(first), more...); !slices.Equal(got, want) {
			t.Errorf("b handled %v, want all %v", got, want)
		}
		for _, name := range []string{"a", "b"} {
			if off, _ := store.Load(t.Context(), name); off != more[1] {
				t.Errorf("offset of %s = %d, want %d", name, off, more[1])
			}
		}
	})
}

func TestReset(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		log := eventlog.NewMemory()
		store := projection.NewMemory()
		want := appendN(t, log, "Tab", "t1", 4)
		var r recorder
		p := mustNew(t, log, "Tab", "tabs", store, r.handle)
		start(t, p)
		synctest.Wait()
		if err := p.Reset(t.Context(), nil); !errors.Is(err, projection.ErrRunning) {
			t.Errorf("Reset while running: %v, want ErrRunning", err)
		}
		if err := p.Start(t.Context()); !errors.Is(err, projection.ErrRunning) {
			t.Errorf("second Start: %v, want ErrRunning", err)
		}
		stop(t, p)
		cleared := false
		if err := p.Reset(t.Context(), func(ctx context.Context) error {
			if err := p.Start(ctx); !errors.Is(err, projection.ErrRunning) {
				t.Errorf("Start during Reset: %v, want ErrRunning", err)
			}
			if err := p.Reset(ctx, nil); !errors.Is(err, projection.ErrRunning) {
				t.Errorf("Reset during Reset: %v, want ErrRunning", err)
			}
			r.mu.Lock()
			defer r.mu.Unlock()
			r.got, cleared = nil, true
			return nil
		}); err != nil {
			t.Fatal(err)
		}
		if !cleared || p.Status().Offset != 0 {
			t.Fatalf("after Reset: cleared %t, offset %d; want true, 0", cleared, p.Status().Offset)
		}
		if off, _ := store.Load(t.Context(), "tabs"); off != 0 {
			t.Fatalf("stored offset after Reset %d, want 0", off)
		}
		start(t, p)
		synctest.Wait()
		if got := r.positions(); !slices.Equal(got, want) {
			t.Errorf("rebuilt from %v, want %v", got, want)
		}
		failing := errors.New("clear failed")
		stop(t, p)
		if err := p.Reset(t.Context(), func(context.Context) error { return failing }); !errors.Is(err, failing) {
			t.Errorf("Reset with failing clear: %v, want %v", err, failing)
		}
		// The offset is set to 0 before clear runs: a failed clear leaves
		// a rebuild from the first event, never an emptied read model
		// behind the old offset.
		if off, _ := store.Load(t.Context(), "tabs"); off != 0 {
			t.Errorf("offset after Reset with failing clear %d, want 0", off)
		}
	})
}

func TestRetryBackoff(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		log := eventlog.NewMemory()
		pos := appendN(t, log, "Tab", "t1", 1)
		boom := errors.New("boom")
		var calls []time.Duration
		t0 := time.Now()
		h := func(context.Context, []eventlog.Record) error {
			calls = append(calls, time.Since(t0))
			if len(calls) <= 3 {
				return boom
			}
			return nil
		}
		p := mustNew(t, log, "Tab", "tabs", projection.NewMemory(), h,
			projection.WithRetry(100*time.Millisecond, 250*time.Millisecond, 5))
		start(t, p)
		synctest.Wait()
		st := p.Status()
		if st.Retries != 1 || !errors.Is(st.LastError, boom) || st.Offset != 0 || st.Lag != 1 {
			t.Errorf("after first failure: %+v; want 1 retry, LastError boom, offset 0, lag 1", st)
		}
		time.Sleep(time.Second)
		synctest.Wait()
		want := []time.Duration{0, 100 * time.Millisecond, 300 * time.Millisecond, 550 * time.Millisecond}
		if !slices.Equal(calls, want) {
			t.Errorf("attempts at %v, want %v (backoff 100ms, 200ms, capped at 250ms)", calls, want)
		}
		st = p.Status()
		if st.Offset != pos[0] || st.Retries != 0 || st.Handled != 1 || !errors.Is(st.LastError, boom) {
			t.Errorf("after success: %+v; want offset %d, 0 retries, 1 handled, LastError kept", st, pos[0])
		}
	})
}

func TestPoisonStops(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		log := eventlog.NewMemory()
		store := projection.NewMemory()
		pos := appendN(t, log, "Tab", "t1", 3)
		boom := errors.New("boom")
		var r recorder
		h := func(ctx context.Context, batch []eventlog.Record) error {
			if batch[0].Seq == 2 {
				return boom
			}
			return r.handle(ctx, batch)
		}
		p := mustNew(t, log, "Tab", "tabs", store, h, projection.WithRetry(time.Millisecond, time.Millisecond, 3))
		start(t, p)
		err := p.Wait(t.Context())
		var pe *projection.PoisonError
		if !errors.As(err, &pe) || !errors.Is(err, projection.ErrPoison) || !errors.Is(err, boom) {
			t.Fatalf("Wait: %v, want a *PoisonError wrapping boom", err)
		}
		want := projection.EventRef{EntityType: "Tab", EntityID: "t1", Seq: 2, Position: pos[1], Name: "E"}
		if pe.Projection != "tabs" || pe.Event != want {
			t.Errorf("poison %+v, want projection tabs, event %+v", pe, want)
		}
		if off, _ := store.Load(t.Context(), "tabs"); off != pos[0] {
			t.Errorf("offset %d, want %d: before the poison event", off, pos[0])
		}
		if st := p.Status(); st.Running || st.Retries != 3 {
			t.Errorf("status %+v, want stopped after 3 retries", st)
		}
		// A restart meets the same event again.
		start(t, p)
		if err := p.Wait(t.Context()); !errors.Is(err, projection.ErrPoison) {
			t.Errorf("Wait after restart: %v, want ErrPoison", err)
		}
		if got := r.positions(); !slices.Equal(got, pos[:1]) {
			t.Errorf("handled %v, want %v", got, pos[:1])
		}
	})
}

func TestPoisonSkippedInBatch(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		log := eventlog.NewMemory()
		pos := appendN(t, log, "Tab", "t1", 5)
		boom := errors.New("boom")
		var r recorder
		// The handler is all or nothing: a batch with the poison event
		// applies none of its events.
		h := func(ctx context.Context, batch []eventlog.Record) error {
			for _, rec := range batch {
				if rec.Seq == 3 {
					panic(boom)
				}
			}
			return r.handle(ctx, batch)
		}
		p := mustNew(t, log, "Tab", "tabs", projection.NewMemory(), h,
			projection.WithBatchSize(5), projection.WithPoison(projection.SkipPoison),
			projection.WithRetry(time.Millisecond, time.Millisecond, 2))
		start(t, p)
		time.Sleep(time.Second)
		synctest.Wait()
		want := []uint64{pos[0], pos[1], pos[3], pos[4]}
		if got := r.positions(); !slices.Equal(got, want) {
			t.Errorf("handled %v, want %v", got, want)
		}
		st := p.Status()
		if st.Offset != pos[4] || st.SkippedTotal != 1 || len(st.Skipped) != 1 || st.Handled != 4 || !st.Running {
			t.Fatalf("status %+v, want offset %d, 1 skipped, 4 handled, running", st, pos[4])
		}
		sk := st.Skipped[0]
		if sk.Event.Seq != 3 || sk.Event.Position != pos[2] || !errors.Is(sk.Err, boom) {
			t.Errorf("skipped %+v, want seq 3 at %d with the panic's error", sk, pos[2])
		}
	})
}

// flakyStore fails Commit before running the handler, failures times.
type flakyStore struct {
	projection.OffsetStore
	mu       sync.Mutex // guards failures
	failures int
}

func (s *flakyStore) Commit(ctx context.Context, name string, from, to uint64, handle func(context.Context) error) error {
	s.mu.Lock()
	fail := s.failures > 0
	if fail {
		s.failures--
	}
	s.mu.Unlock()
	if fail {
		return errors.New("store down")
	}
	return s.OffsetStore.Commit(ctx, name, from, to, handle)
}

func TestStoreFailuresAreNotPoison(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		log := eventlog.NewMemory()
		pos := appendN(t, log, "Tab", "t1", 2)
		store := &flakyStore{OffsetStore: projection.NewMemory(), failures: 5}
		var r recorder
		p := mustNew(t, log, "Tab", "tabs", store, r.handle, projection.WithRetry(time.Millisecond, time.Millisecond, 1))
		start(t, p)
		time.Sleep(time.Second)
		synctest.Wait()
		if got := r.positions(); !slices.Equal(got, pos) {
			t.Errorf("handled %v, want %v", got, pos)
		}
		if st := p.Status(); !st.Running || st.Offset != pos[1] || st.LastError == nil {
			t.Errorf("status %+v: want running at %d with the store error as LastError", st, pos[1])
		}
	})
}

// movingStore reports ErrOffsetMoved once, after moving the offset back to 0.
type movingStore struct {
	*projection.Memory
	mu    sync.Mutex // guards moved
	moved bool
}

func (s *movingStore) Commit(ctx context.Context, name string, from, to uint64, handle func(context.Context) error) error {
	s.mu.Lock()
	move := !s.moved && from > 0
	s.moved = s.moved || move
	s.mu.Unlock()
	if move {
		if err := s.Memory.Reset(ctx, name, nil); err != nil {
			return err
		}
	}
	return s.Memory.Commit(ctx, name, from, to, handle)
}

func TestOffsetMovedReloads(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		log := eventlog.NewMemory()
		pos := appendN(t, log, "Tab", "t1", 3)
		var r recorder
		p := mustNew(t, log, "Tab", "tabs", &movingStore{Memory: projection.NewMemory()}, r.handle)
		start(t, p)
		synctest.Wait()
		// Event 1 commits, the offset is moved back to 0 before event 2,
		// so the projection starts over: 1, then 1, 2, 3.
		want := []uint64{pos[0], pos[0], pos[1], pos[2]}
		if got := r.positions(); !slices.Equal(got, want) {
			t.Errorf("handled %v, want %v", got, want)
		}
		if st := p.Status(); st.Offset != pos[2] || !st.Running {
			t.Errorf("status %+v, want running at %d", st, pos[2])
		}
	})
}

func TestLagAndReadAhead(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		log := eventlog.NewMemory()
		release := make(chan struct{})
		h := func(ctx context.Context, _ []eventlog.Record) error {
			select {
			case <-release:
				return nil
			case <-ctx.Done():
				return ctx.Err()
			}
		}
		pos := appendN(t, log, "Tab", "t1", 10)
		p := mustNew(t, log, "Tab", "tabs", projection.NewMemory(), h, projection.WithBufferSize(4))
		start(t, p)
		synctest.Wait()
		// One event in the handler, four in the buffer, one held by the
		// reader waiting for room.
		st := p.Status()
		if st.Lag != 5 || !st.ReadAheadFull || st.Offset != 0 || st.Head != pos[5] {
			t.Errorf("blocked: lag %d, full %t, offset %d, head %d; want 5, true, 0, %d", st.Lag, st.ReadAheadFull, st.Offset, st.Head, pos[5])
		}
		close(release)
		synctest.Wait()
		st = p.Status()
		if st.Lag != 0 || st.ReadAheadFull || st.Offset != pos[9] || st.Head != pos[9] || st.Handled != 10 {
			t.Errorf("released: %+v; want lag 0, offset=head=%d, 10 handled", st, pos[9])
		}
	})
}

// failingLog fails the first Subscribe.
type failingLog struct {
	eventlog.Log
	mu     sync.Mutex // guards failed
	failed bool
}

func (l *failingLog) Subscribe(ctx context.Context, typ string, after uint64) iter.Seq2[eventlog.Record, error] {
	l.mu.Lock()
	fail := !l.failed
	l.failed = true
	l.mu.Unlock()
	if fail {
		return func(yield func(eventlog.Record, error) bool) { yield(eventlog.Record{}, errors.New("connection lost")) }
	}
	return l.Log.Subscribe(ctx, typ, after)
}

func TestSubscriptionFailureRetried(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		mem := eventlog.NewMemory()
		pos := appendN(t, mem, "Tab", "t1", 2)
		var r recorder
		p := mustNew(t, &failingLog{Log: mem}, "Tab", "tabs", projection.NewMemory(), r.handle)
		start(t, p)
		synctest.Wait()
		if st := p.Status(); st.LastError == nil || st.Offset != 0 {
			t.Fatalf("status %+v: want the subscription error, offset 0", st)
		}
		time.Sleep(100 * time.Millisecond)
		synctest.Wait()
		if got := r.positions(); !slices.Equal(got, pos) {
			t.Errorf("handled %v, want %v", got, pos)
		}
	})
}

func TestStopWhenContextEnds(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		log := eventlog.NewMemory()
		var r recorder
		p := mustNew(t, log, "Tab", "tabs", projection.NewMemory(), r.handle)
		ctx, cancel := context.WithCancel(t.Context())
		done := make(chan error, 1)
		go func() { done <- p.Run(ctx) }()
		synctest.Wait()
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run after cancel: %v, want nil", err)
		}
		if p.Status().Running {
			t.Error("Running after Run returned")
		}
	})
}

func TestOptionsAndArguments(t *testing.T) {
	log := eventlog.NewMemory()
	store := projection.NewMemory()
	var r recorder
	tests := []struct {
		name  string
		log   eventlog.Log
		typ   string
		pname string
		store projection.OffsetStore
		h     projection.Handler
		opts  []projection.Option
	}{
		{"nil log", nil, "T", "p", store, r.handle, nil},
		{"empty type", log, "", "p", store, r.handle, nil},
		{"empty name", log, "T", "", store, r.handle, nil},
		{"nil store", log, "T", "p", nil, r.handle, nil},
		{"nil handler", log, "T", "p", store, nil, nil},
		{"batch 0", log, "T", "p", store, r.handle, []projection.Option{projection.WithBatchSize(0)}},
		{"buffer 0", log, "T", "p", store, r.handle, []projection.Option{projection.WithBufferSize(0)}},
		{"retry initial 0", log, "T", "p", store, r.handle, []projection.Option{projection.WithRetry(0, time.Second, 1)}},
		{"retry max < initial", log, "T", "p", store, r.handle, []projection.Option{projection.WithRetry(time.Second, time.Millisecond, 1)}},
		{"retry attempts 0", log, "T", "p", store, r.handle, []projection.Option{projection.WithRetry(time.Millisecond, time.Second, 0)}},
		{"unknown poison policy", log, "T", "p", store, r.handle, []projection.Option{projection.WithPoison(7)}},
		{"nil logger", log, "T", "p", store, r.handle, []projection.Option{projection.WithLogger(nil)}},
		{"nil tracer provider", log, "T", "p", store, r.handle, []projection.Option{projection.WithTracerProvider(nil)}},
		{"nil meter provider", log, "T", "p", store, r.handle, []projection.Option{projection.WithMeterProvider(nil)}},
		{"nil propagator", log, "T", "p", store, r.handle, []projection.Option{projection.WithPropagator(nil)}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := projection.New(tt.log, tt.typ, tt.pname, tt.store, tt.h, tt.opts...); !errors.Is(err, projection.ErrInvalid) {
				t.Errorf("New: %v, want ErrInvalid", err)
			}
		})
	}
	if _, err := projection.New(log, "T", "p", store, r.handle); err != nil {
		t.Errorf("New with no options: %v", err)
	}
}
