package pgprojection_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/eventsourced-go/eventsourced/eventlog"
	"github.com/eventsourced-go/eventsourced/projection"
)

// TestResliceExactlyOnce changes a sliced projection from 4 slices to 3 on
// PostgreSQL, with slices stopped at different offsets and a Reslice that
// fails halfway and is run again: every event is counted exactly once.
func TestResliceExactlyOnce(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t)
	log := eventlog.NewMemory()
	const entities = 24
	add := func(k int) {
		for e := range entities {
			id := fmt.Sprintf("e-%d", e)
			last, _ := log.LastSeq(ctx, "T", id)
			for range k {
				if _, err := log.Append(ctx, "T", id, last, eventlog.Event{Name: "E"}); err != nil {
					t.Fatal(err)
				}
				last++
			}
		}
	}
	var failing atomic.Bool
	var calls atomic.Int64
	inner := f.handler()
	h := func(ctx context.Context, batch []eventlog.Record) error {
		if failing.Load() && calls.Add(1) > 3 {
			return errors.New("crash")
		}
		return inner(ctx, batch)
	}
	open := func(n int) []*projection.Projection {
		ps := make([]*projection.Projection, n)
		for i := range n {
			p, err := projection.New(log, "T", "counts", f.store, h, projection.WithSlice(i, n),
				projection.WithBatchSize(4), projection.WithRetry(time.Millisecond, time.Millisecond, 1))
			if err != nil {
				t.Fatal(err)
			}
			ps[i] = p
		}
		return ps
	}
	// runTo runs ps until each has handled its slice's events up to the
	// log's end.
	runTo := func(ps []*projection.Projection, n int, first int) {
		last := make([]uint64, n)
		for rec, err := range log.ReadType(ctx, "T", 0) {
			if err != nil {
				t.Fatal(err)
			}
			last[projection.SliceOf("T", rec.EntityID, n)] = rec.Position
		}
		var wg sync.WaitGroup
		for i, p := range ps {
			if err := p.Start(ctx); err != nil {
				t.Fatal(err)
			}
			wg.Go(func() {
				wctx, cancel := context.WithTimeout(ctx, 30*time.Second)
				defer cancel()
				if err := p.WaitFor(wctx, last[first+i]); err != nil {
					t.Error(err)
				}
			})
		}
		wg.Wait()
		for _, p := range ps {
			p.Stop(ctx)
		}
	}

	add(3)
	old := open(4)
	runTo(old[:1], 4, 0) // slice 0 done with 3 events per entity
	add(2)
	runTo(old[2:], 4, 2) // slices 2 and 3 done with 5; slice 1 never ran
	add(1)

	next := open(3)
	failing.Store(true)
	if err := projection.Reslice(ctx, old, next); err == nil {
		t.Fatal("Reslice with a failing handler succeeded")
	}
	failing.Store(false)
	if err := projection.Reslice(ctx, old, next); err != nil {
		t.Fatalf("Reslice run again: %v", err)
	}
	add(2)
	runTo(next, 3, 0)

	got := f.counts(t)
	if len(got) != entities {
		t.Fatalf("%d entities counted, want %d", len(got), entities)
	}
	for id, n := range got {
		if n != 8 {
			t.Errorf("%s counted %d events, want 8: each exactly once", id, n)
		}
	}
}
