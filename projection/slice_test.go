package projection_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/eventsourced-go/eventsourced/eventlog"
	"github.com/eventsourced-go/eventsourced/projection"
)

// ledger counts how often each event was handled and checks per-entity
// order.
type ledger struct {
	mu      sync.Mutex
	counts  map[string]int
	lastSeq map[string]uint64
	errs    []string
}

func newLedger() *ledger { return &ledger{counts: map[string]int{}, lastSeq: map[string]uint64{}} }

func (l *ledger) handler() projection.Handler {
	return projection.PerEvent(func(_ context.Context, rec eventlog.Record) error {
		l.mu.Lock()
		defer l.mu.Unlock()
		entity := rec.EntityType + "/" + rec.EntityID
		l.counts[fmt.Sprintf("%s@%d", entity, rec.Seq)]++
		if rec.Seq <= l.lastSeq[entity] {
			l.errs = append(l.errs, fmt.Sprintf("%s seq %d after %d", entity, rec.Seq, l.lastSeq[entity]))
		}
		l.lastSeq[entity] = rec.Seq
		return nil
	})
}

// check fails t unless every event of log's type Order was handled
// exactly once, in order per entity.
func (l *ledger) check(t *testing.T, log eventlog.Log) {
	t.Helper()
	l.mu.Lock()
	defer l.mu.Unlock()
	n := 0
	for rec, err := range log.ReadType(context.Background(), "Order", 0) {
		if err != nil {
			t.Fatal(err)
		}
		n++
		key := fmt.Sprintf("Order/%s@%d", rec.EntityID, rec.Seq)
		if c := l.counts[key]; c != 1 {
			t.Errorf("%s handled %d times, want once", key, c)
		}
	}
	if len(l.counts) != n {
		t.Errorf("%d events handled, the log has %d", len(l.counts), n)
	}
	for _, e := range l.errs {
		t.Errorf("out of order: %s", e)
	}
}

func fill(t *testing.T, log eventlog.Log, entities, each int) {
	t.Helper()
	ctx := context.Background()
	for k := range each {
		for e := range entities {
			id := fmt.Sprintf("o-%d", e)
			if _, err := log.Append(ctx, "Order", id, uint64(k), eventlog.Event{Name: "E"}); err != nil {
				t.Fatal(err)
			}
		}
	}
}

// slices makes the n slices of the projection "orders".
func makeSlices(t *testing.T, log eventlog.Log, store projection.OffsetStore, h projection.Handler, n int) []*projection.Projection {
	t.Helper()
	ps := make([]*projection.Projection, n)
	for i := range n {
		p, err := projection.New(log, "Order", "orders", store, h, projection.WithSlice(i, n), projection.WithBatchSize(8))
		if err != nil {
			t.Fatal(err)
		}
		ps[i] = p
	}
	return ps
}

// drain runs the slices ps, slices first, first+1 ... of n, concurrently
// until each has handled the last event of its slice.
func drain(t *testing.T, log eventlog.Log, ps []*projection.Projection, first, n int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	last := make([]uint64, n)
	for rec, err := range log.ReadType(ctx, "Order", 0) {
		if err != nil {
			t.Fatal(err)
		}
		last[projection.SliceOf(rec.EntityType, rec.EntityID, n)] = rec.Position
	}
	var wg sync.WaitGroup
	for i, p := range ps {
		start(t, p)
		wg.Go(func() {
			if err := p.WaitFor(ctx, last[first+i]); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	for _, p := range ps {
		stop(t, p)
	}
}

func TestSlicesHandleEachEventOnce(t *testing.T) {
	log := eventlog.NewMemory()
	fill(t, log, 40, 10)
	l := newLedger()
	ps := makeSlices(t, log, projection.NewMemory(), l.handler(), 4)
	if got := ps[2].Name(); got != "orders[2/4]" {
		t.Fatalf("slice name %q, want orders[2/4]", got)
	}
	drain(t, log, ps, 0, 4)
	l.check(t, log)
	// Each slice handled only its own entities.
	for _, p := range ps {
		if p.Status().Handled == 0 {
			t.Errorf("%s handled nothing: 40 entities should spread over 4 slices", p.Name())
		}
	}
}

func TestResliceExactlyOnce(t *testing.T) {
	ctx := context.Background()
	log := eventlog.NewMemory()
	store := projection.NewMemory()
	l := newLedger()
	fill(t, log, 30, 5)
	old := makeSlices(t, log, store, l.handler(), 4)
	drain(t, log, old[:2], 0, 4) // slices 0 and 1 are done; 2 and 3 never ran
	fill2 := func() {
		for e := range 30 {
			id := fmt.Sprintf("o-%d", e)
			last, _ := log.LastSeq(ctx, "Order", id)
			log.Append(ctx, "Order", id, last, eventlog.Event{Name: "E"})
		}
	}
	fill2()
	// Slice 3 catches up on everything, so the old offsets differ.
	drain(t, log, old[3:], 3, 4)
	fill2()

	next := makeSlices(t, log, store, l.handler(), 3)
	if err := projection.Reslice(ctx, old, next); err != nil {
		t.Fatal(err)
	}
	// Running it again changes nothing.
	if err := projection.Reslice(ctx, old, next); err != nil {
		t.Fatalf("Reslice again: %v", err)
	}
	fill2()
	drain(t, log, next, 0, 3)
	l.check(t, log)
}

func TestResliceRefusals(t *testing.T) {
	ctx := context.Background()
	log := eventlog.NewMemory()
	store := projection.NewMemory()
	h := newLedger().handler()
	old, next := makeSlices(t, log, store, h, 2), makeSlices(t, log, store, h, 3)
	cases := []struct {
		name     string
		from, to []*projection.Projection
		want     string
	}{
		{"no old", nil, next, "projection: invalid argument: reslice: no from slices"},
		{"out of order", []*projection.Projection{old[1], old[0]}, next, "projection: invalid argument: reslice: from slice at index 0 is orders[1/2], want slice 0 of 2"},
		{"missing one", old, next[:2], "projection: invalid argument: reslice: to slice at index 0 is orders[0/3], want slice 0 of 2"},
	}
	for _, tc := range cases {
		if err := projection.Reslice(ctx, tc.from, tc.to); err == nil || err.Error() != tc.want {
			t.Errorf("%s: %v\nwant %s", tc.name, err, tc.want)
		}
	}
	fill(t, log, 4, 2)
	drain(t, log, next, 0, 3) // the new slices ran: resliced into later would lose events
	err := projection.Reslice(ctx, old, next)
	if !errors.Is(err, projection.ErrInvalid) {
		t.Fatalf("Reslice into slices that ran: %v", err)
	}
	if _, err := projection.New(log, "Order", "x", store, h, projection.WithSlice(3, 3)); err == nil || err.Error() != "projection: invalid argument: WithSlice(3, 3): want 0 <= i < n <= 1024" {
		t.Fatalf("WithSlice(3, 3): %v", err)
	}
}

func TestSliceOfIsStable(t *testing.T) {
	// Fixed values: a change of the hash would move entities between
	// slices of running projections.
	for _, tc := range []struct {
		typ, id string
		n, want int
	}{
		{"Order", "o-1", 8, 0},
		{"Order", "o-2", 8, 1},
		{"Tab", "t-42", 3, 0},
		{"Order", "o-1", 1024, 88},
		{"Order", "o-1", 1, 0},
	} {
		if got := projection.SliceOf(tc.typ, tc.id, tc.n); got != tc.want {
			t.Fatalf("SliceOf(%s, %s, %d) = %d, want %d", tc.typ, tc.id, tc.n, got, tc.want)
		}
	}
}

// TestSliceWaitsForOtherSlicesEvents checks that WaitFor on a slice returns
// for an event of another slice once the slice is past it (every event of
// its own before it handled), and not before: a caller that does not know
// which slice owns an entity can wait on any of them. The handler of slice
// 0 blocks on its third event until released: until then slice 0 is past
// slice 1's events before that one, and not past those after it.
func TestSliceWaitsForOtherSlicesEvents(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	log := eventlog.NewMemory()
	// Two entities, one per slice of 2, alternating: positions 1..8.
	var ids [2]string
	for e := 0; ids[0] == "" || ids[1] == ""; e++ {
		id := fmt.Sprintf("o-%d", e)
		if s := projection.SliceOf("Order", id, 2); ids[s] == "" {
			ids[s] = id
		}
	}
	pos := map[string][]uint64{}
	for k := range 4 {
		for _, id := range ids {
			p, err := log.Append(ctx, "Order", id, uint64(k), eventlog.Event{Name: "E"})
			if err != nil {
				t.Fatal(err)
			}
			pos[id] = append(pos[id], p)
		}
	}
	release := make(chan struct{})
	h := projection.PerEvent(func(ctx context.Context, rec eventlog.Record) error {
		if rec.EntityID == ids[0] && rec.Seq == 3 {
			select { // slice 0 stops at its third event until released
			case <-release:
			case <-ctx.Done():
				return ctx.Err()
			}
		}
		return nil
	})
	// One event per batch: a batch commits once all of it is handled.
	ps := make([]*projection.Projection, 2)
	for i := range ps {
		p, err := projection.New(log, "Order", "orders", projection.NewMemory(), h, projection.WithSlice(i, 2), projection.WithBatchSize(1))
		if err != nil {
			t.Fatal(err)
		}
		ps[i] = p
	}
	for _, p := range ps {
		if err := p.Start(ctx); err != nil {
			t.Fatal(err)
		}
		defer p.Stop(context.Background())
	}
	waitFor := func(p *projection.Projection, at uint64, d time.Duration) error {
		wctx, cancel := context.WithTimeout(ctx, d)
		defer cancel()
		return p.WaitFor(wctx, at)
	}
	// Slice 1 handles all of its own and is past every event of slice 0.
	for _, at := range append(pos[ids[0]], pos[ids[1]]...) {
		if err := waitFor(ps[1], at, 5*time.Second); err != nil {
			t.Errorf("slice 1 WaitFor(%d): %v", at, err)
		}
	}
	// Slice 0 is past slice 1's events before its blocked one (position 5)
	// and not past those after it.
	b := pos[ids[0]][2]
	for _, at := range pos[ids[1]] {
		err := waitFor(ps[0], at, 200*time.Millisecond)
		if at < b && err != nil {
			t.Errorf("slice 0 WaitFor(%d), before its blocked event at %d: %v", at, b, err)
		}
		if at > b && !errors.Is(err, context.DeadlineExceeded) {
			t.Errorf("slice 0 WaitFor(%d), after its blocked event at %d: %v, want it to wait", at, b, err)
		}
	}
	close(release)
	for _, at := range pos[ids[1]] {
		if err := waitFor(ps[0], at, 5*time.Second); err != nil {
			t.Errorf("slice 0 WaitFor(%d) after the release: %v", at, err)
		}
	}
}

// TestSliceKey splits the events of two types by a key other than their
// entity (a customer named in the data): every event is handled by
// exactly one slice, the slice its key belongs to, and one key's events
// reach their slice in Position order, whichever entity they come from.
func TestSliceKey(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	log := eventlog.NewMemory()
	var last uint64
	for i := range 60 {
		typ := []string{"Order", "Payment"}[i%2]
		pos, err := log.Append(ctx, typ, fmt.Sprintf("e-%d", i), 0, eventlog.Event{Name: "E", Data: []byte(fmt.Sprintf("c-%d", i%7))})
		if err != nil {
			t.Fatal(err)
		}
		last = pos
	}
	key := func(rec eventlog.Record) string { return string(rec.Data) }
	const n = 3
	var mu sync.Mutex
	seen := map[uint64]int{}      // Position -> slice
	lastOf := map[string]uint64{} // key -> last Position handled
	var errs []string
	var ps []*projection.Projection
	for i := range n {
		p, err := projection.NewOfTypes(log, []string{"Order", "Payment"}, "by-customer", projection.NewMemory(),
			projection.PerEvent(func(_ context.Context, rec eventlog.Record) error {
				mu.Lock()
				defer mu.Unlock()
				k := key(rec)
				if prev, dup := seen[rec.Position]; dup {
					errs = append(errs, fmt.Sprintf("position %d handled by slices %d and %d", rec.Position, prev, i))
				}
				seen[rec.Position] = i
				if want := projection.SliceOf("", k, n); want != i {
					errs = append(errs, fmt.Sprintf("key %s handled by slice %d, want %d", k, i, want))
				}
				if rec.Position <= lastOf[k] {
					errs = append(errs, fmt.Sprintf("key %s: position %d after %d", k, rec.Position, lastOf[k]))
				}
				lastOf[k] = rec.Position
				return nil
			}), projection.WithSlice(i, n), projection.WithSliceKey(key))
		if err != nil {
			t.Fatal(err)
		}
		if err := p.Start(ctx); err != nil {
			t.Fatal(err)
		}
		defer p.Stop(context.Background())
		ps = append(ps, p)
	}
	for _, p := range ps {
		if err := p.WaitFor(ctx, last); err != nil {
			t.Fatal(err)
		}
	}
	mu.Lock()
	defer mu.Unlock()
	for _, e := range errs {
		t.Error(e)
	}
	if len(seen) != 60 {
		t.Errorf("%d events handled, want 60", len(seen))
	}
	if _, err := projection.New(log, "Order", "x", projection.NewMemory(), projection.PerEvent(func(context.Context, eventlog.Record) error { return nil }),
		projection.WithSliceKey(nil)); !errors.Is(err, projection.ErrInvalid) || !strings.Contains(err.Error(), "WithSliceKey(nil)") {
		t.Errorf("WithSliceKey(nil): %v, want ErrInvalid naming it", err)
	}
}
