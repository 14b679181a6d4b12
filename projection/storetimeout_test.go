package projection_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/eventsourced-go/eventsourced/eventlog"
	"github.com/eventsourced-go/eventsourced/projection"
)

// stallingStore is a Memory store whose first Load, or first Commit
// (before or inside the handler), waits for its context to end, as a call
// to a stalled database does.
type stallingStore struct {
	*projection.Memory
	stallLoad, stallCommit bool
	loads, commits         atomic.Int32
}

func (s *stallingStore) Load(ctx context.Context, name string) (uint64, error) {
	if s.loads.Add(1) == 1 && s.stallLoad {
		<-ctx.Done()
		return 0, ctx.Err()
	}
	return s.Memory.Load(ctx, name)
}

func (s *stallingStore) Commit(ctx context.Context, name string, from, to uint64, handle func(ctx context.Context) error) error {
	if s.commits.Add(1) == 1 && s.stallCommit {
		<-ctx.Done()
		return ctx.Err()
	}
	return s.Memory.Commit(ctx, name, from, to, handle)
}

// Rule: with WithStoreTimeout, a store call that stalls (the Load of the
// offset, a Commit, or the handler inside a Commit) is canceled after the
// timeout, reported with an error naming the option, and retried; it never
// counts against the handler's attempts, so no event becomes poison, and
// every event is handled.
func TestStoreTimeoutRetriesStalledCalls(t *testing.T) {
	for name, tc := range map[string]struct {
		stallLoad, stallCommit, stallHandler bool
		want                                 string // the call; the batch may hold 1 to 3 events
	}{
		"load":    {stallLoad: true, want: "projection: p: load of the offset took"},
		"commit":  {stallCommit: true, want: "projection: p: commit of the batch up to position "},
		"handler": {stallHandler: true, want: "projection: p: commit of the batch up to position "},
	} {
		t.Run(name, func(t *testing.T) {
			log := eventlog.NewMemory()
			ctx := context.Background()
			var last uint64
			for i := range 3 {
				pos, err := log.Append(ctx, "Order", fmt.Sprint(i), 0, eventlog.Event{Name: "Placed"})
				if err != nil {
					t.Fatal(err)
				}
				last = pos
			}
			store := &stallingStore{Memory: projection.NewMemory(), stallLoad: tc.stallLoad, stallCommit: tc.stallCommit}
			var mu sync.Mutex
			var calls, handled int
			h := func(ctx context.Context, batch []eventlog.Record) error {
				mu.Lock()
				calls++
				// Twice: a failed batch of several events is tried again
				// event by event before an event is poison.
				stall := calls <= 2
				mu.Unlock()
				if stall && tc.stallHandler {
					<-ctx.Done()
					return ctx.Err()
				}
				mu.Lock()
				handled += len(batch)
				mu.Unlock()
				return nil
			}
			// One attempt: a handler failure would be poison at once.
			p, err := projection.New(log, "Order", "p", store, h, projection.WithBatchSize(3),
				projection.WithRetry(10*time.Millisecond, 50*time.Millisecond, 1), projection.WithStoreTimeout(100*time.Millisecond))
			if err != nil {
				t.Fatal(err)
			}
			if err := p.Start(ctx); err != nil {
				t.Fatal(err)
			}
			defer p.Stop(ctx)
			wctx, cancel := context.WithTimeout(ctx, 10*time.Second)
			defer cancel()
			if err := p.WaitFor(wctx, last); err != nil {
				t.Fatalf("WaitFor: %v (status %+v)", err, p.Status())
			}
			st := p.Status()
			const timedOut = " took longer than WithStoreTimeout(100ms): context deadline exceeded"
			if st.LastError == nil || !strings.Contains(st.LastError.Error(), tc.want) || !strings.HasSuffix(st.LastError.Error(), timedOut) {
				t.Errorf("last error %v, want one containing %q and ending %q", st.LastError, tc.want, timedOut)
			}
			if st.Poison != nil || st.SkippedTotal != 0 || !st.Running {
				t.Errorf("status: poison %v, skipped %d, running %v; want no poison, none skipped, running", st.Poison, st.SkippedTotal, st.Running)
			}
			mu.Lock()
			defer mu.Unlock()
			if handled != 3 {
				t.Errorf("handled %d events, want 3", handled)
			}
		})
	}
}

// Rule: without WithStoreTimeout a stalled store holds the projection
// until Stop, which still returns.
func TestNoStoreTimeoutWaitsForStop(t *testing.T) {
	log := eventlog.NewMemory()
	ctx := context.Background()
	if _, err := log.Append(ctx, "Order", "1", 0, eventlog.Event{Name: "Placed"}); err != nil {
		t.Fatal(err)
	}
	store := &stallingStore{Memory: projection.NewMemory(), stallCommit: true}
	p, err := projection.New(log, "Order", "p", store, func(context.Context, []eventlog.Record) error { return nil })
	if err != nil {
		t.Fatal(err)
	}
	if err := p.Start(ctx); err != nil {
		t.Fatal(err)
	}
	for store.commits.Load() == 0 {
		time.Sleep(5 * time.Millisecond)
	}
	time.Sleep(200 * time.Millisecond)
	if st := p.Status(); st.Offset != 0 || st.LastError != nil {
		t.Errorf("status during the stall: offset %d, last error %v; want 0 and none", st.Offset, st.LastError)
	}
	sctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	if err := p.Stop(sctx); err != nil {
		t.Errorf("Stop: %v", err)
	}
}

// Rule: a negative store timeout is refused, naming the option.
func TestStoreTimeoutBadInput(t *testing.T) {
	_, err := projection.New(eventlog.NewMemory(), "Order", "p", projection.NewMemory(),
		func(context.Context, []eventlog.Record) error { return nil }, projection.WithStoreTimeout(-time.Second))
	if !errors.Is(err, projection.ErrInvalid) || err == nil || !strings.Contains(err.Error(), "WithStoreTimeout(-1s)") {
		t.Errorf("New: %v, want an ErrInvalid naming WithStoreTimeout(-1s)", err)
	}
}
