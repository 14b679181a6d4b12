package lifecycle_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/eventsourced-go/eventsourced/internal/lifecycle"
)

// Rule: without a run, Stop and Wait return nil at once.
func TestNeverRun(t *testing.T) {
	var r lifecycle.Runs
	if err := r.Stop(context.Background()); err != nil {
		t.Errorf("Stop: %v, want nil", err)
	}
	if err := r.Wait(context.Background()); err != nil {
		t.Errorf("Wait: %v, want nil", err)
	}
}

// Rule: Stop cancels the run and returns once it has ended; Wait returns
// the run's result, then and later.
func TestStopCancelsAndWaitsForTheEnd(t *testing.T) {
	var r lifecycle.Runs
	ctx, cancel := context.WithCancel(context.Background())
	end := r.Begin(cancel)
	ended := make(chan struct{})
	boom := errors.New("boom")
	go func() {
		<-ctx.Done()
		time.Sleep(20 * time.Millisecond) // the run cleans up after its cancel
		close(ended)
		end(boom)
	}()
	if err := r.Stop(context.Background()); err != nil {
		t.Fatalf("Stop: %v, want nil", err)
	}
	select {
	case <-ended:
	default:
		t.Fatal("Stop returned before the run ended")
	}
	for range 2 {
		if err := r.Wait(context.Background()); err != boom {
			t.Errorf("Wait: %v, want the run's result %v", err, boom)
		}
	}
	if err := r.Stop(context.Background()); err != nil {
		t.Errorf("Stop after the end: %v, want nil", err)
	}
}

// Rule: Stop and Wait give up when their ctx ends first, with its error.
func TestStopAndWaitHonourTheirContext(t *testing.T) {
	var r lifecycle.Runs
	end := r.Begin(func() {}) // a run that ignores its cancel
	defer end(nil)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Millisecond)
	defer cancel()
	if err := r.Stop(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Stop: %v, want context.DeadlineExceeded", err)
	}
	if err := r.Wait(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Wait: %v, want context.DeadlineExceeded", err)
	}
}
