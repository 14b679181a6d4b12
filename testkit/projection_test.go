package testkit_test

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/eventsourced-go/eventsourced/eventlog"
	"github.com/eventsourced-go/eventsourced/projection"
	"github.com/eventsourced-go/eventsourced/testkit"
)

// TestProjectionUnderReadFailures runs a projection on a log whose first
// three reads of the type fail: it retries them, and its handler sees every
// event exactly once, in order.
func TestProjectionUnderReadFailures(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	mem := eventlog.NewMemory()
	var last uint64
	for i := range 5 {
		pos, err := mem.Append(ctx, "Tab", "t", uint64(i), eventlog.Event{Name: "E"})
		if err != nil {
			t.Fatal(err)
		}
		last = pos
	}
	l := testkit.NewLog(mem)
	reads, err := l.FailNext(3, testkit.OpReadType, testkit.OpSubscribe)
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var seen []uint64
	h := projection.PerEvent(func(ctx context.Context, rec eventlog.Record) error {
		mu.Lock()
		defer mu.Unlock()
		seen = append(seen, rec.Seq)
		return nil
	})
	p, err := projection.New(l, "Tab", "tabs", projection.NewMemory(), h, projection.WithRetry(time.Millisecond, 5*time.Millisecond, 3))
	if err != nil {
		t.Fatal(err)
	}
	p.Start(ctx)
	defer p.Stop(ctx)
	if err := p.WaitFor(ctx, last); err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(seen) != 5 || seen[0] != 1 || seen[4] != 5 {
		t.Errorf("the handler saw Seqs %v, want 1..5 once each", seen)
	}
	for i := 1; i < len(seen); i++ {
		if seen[i] != seen[i-1]+1 {
			t.Errorf("the handler saw Seqs %v, want 1..5 once each", seen)
			break
		}
	}
	if got := reads.Hits(); got != 3 {
		t.Errorf("%d reads failed, want 3", got)
	}
}
