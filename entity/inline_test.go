package entity_test

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/eventsourced-go/eventsourced/entity"
	"github.com/eventsourced-go/eventsourced/eventlog"
)

// A command to an idle entity runs on the caller's goroutine; the caller's
// ctx bounds its append like the store timeout does. If ctx ends while the
// append is in flight, Ask returns a *PersistError that matches ctx's error,
// and the entity recovers from the log before its next command, so the
// event that did land is not lost or applied twice.
func TestAskCtxEndsDuringAppend(t *testing.T) {
	log := &flakyLog{Log: eventlog.NewMemory()}
	k := register(t, newSystem(t, log))
	ref := k.Ref("c")
	ask(t, ref, Add{N: 1})
	log.set(func(l *flakyLog) { l.hangAfterWrite = 1 })
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	start := time.Now()
	_, err := entity.Ask(ctx, ref, Add{N: 1})
	if !errors.Is(err, context.DeadlineExceeded) || !errors.Is(err, entity.ErrPersist) {
		t.Fatalf("Ask: %v, want a *PersistError matching DeadlineExceeded", err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("Ask returned after %v: the caller's ctx must bound the append", d)
	}
	if got := ask(t, ref, Get{}).Value; got != 2 {
		t.Errorf("value %d after the unknown-outcome append landed, want 2 (recovered from the log)", got)
	}
}

// Commands that queue up behind a running one are answered in order and
// batched, whichever goroutine ran the first; the entity then goes back to
// running commands on their callers' goroutines.
func TestQueuedCommandsAfterInlineCommand(t *testing.T) {
	gate := make(chan struct{})
	log := &flakyLog{Log: eventlog.NewMemory(), gate: gate}
	k := register(t, newSystem(t, log))
	ref := k.Ref("q")
	var wg sync.WaitGroup
	wg.Go(func() { ask(t, ref, Add{N: 1}) }) // holds the entity in Append
	eventually(t, "first command in flight", func() bool { return log.held.Load() == 1 })
	const n = 20
	for range n {
		wg.Go(func() { ask(t, ref, Add{N: 1}) })
	}
	eventually(t, "the others queued", func() bool { return entity.Queued(k, "q") == n })
	log.set(func(l *flakyLog) { l.gate = nil })
	close(gate)
	wg.Wait()
	if got := ask(t, ref, Get{}).Value; got != n+1 {
		t.Fatalf("value %d, want %d", got, n+1)
	}
	if a := log.appends.Load(); a > 3 {
		t.Errorf("%d appends for 1 running and %d queued commands, want at most 3", a, n)
	}
	before := log.appends.Load()
	for i := range 10 {
		if got := ask(t, ref, Add{N: 1}); got != n+2+i {
			t.Fatalf("sequential command %d: %d, want %d", i, got, n+2+i)
		}
	}
	if a := log.appends.Load() - before; a != 10 {
		t.Errorf("%d appends for 10 sequential commands, want 10", a)
	}
}
