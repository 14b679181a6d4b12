package entity

import (
	"context"
	"errors"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"
)

type ctxKey struct{}

func TestStoreCtx(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		parent := context.WithValue(context.Background(), ctxKey{}, "v")

		c := newStoreCtx(parent, time.Second)
		if err := c.Err(); err != nil {
			t.Fatalf("fresh: Err %v", err)
		}
		if got := c.Value(ctxKey{}); got != "v" {
			t.Errorf("Value %v, want the parent's", got)
		}
		d, ok := c.Deadline()
		if want := time.Now().Add(time.Second); !ok || !d.Equal(want) {
			t.Errorf("Deadline %v %t, want %v true", d, ok, want)
		}
		select {
		case <-c.Done():
			t.Fatal("Done closed before the timeout")
		default:
		}
		time.Sleep(time.Second)
		<-c.Done()
		if !errors.Is(c.Err(), context.DeadlineExceeded) {
			t.Errorf("after the timeout: Err %v, want DeadlineExceeded", c.Err())
		}
		c.release()

		// The parent's cancellation shows through, with or without a timer.
		pctx, cancel := context.WithCancel(parent)
		lazy := newStoreCtx(pctx, time.Hour)
		timed := newStoreCtx(pctx, time.Hour)
		_ = timed.Done()
		cancel()
		if !errors.Is(lazy.Err(), context.Canceled) {
			t.Errorf("lazy after parent cancel: Err %v", lazy.Err())
		}
		<-timed.Done()
		if !errors.Is(timed.Err(), context.Canceled) {
			t.Errorf("timed after parent cancel: Err %v", timed.Err())
		}
		lazy.release()
		timed.release()

		// A sooner parent deadline wins, and then the parent bounds the
		// call by itself: its own Done channel, no timer of ours.
		short, cancelShort := context.WithTimeout(parent, time.Millisecond)
		defer cancelShort()
		c = newStoreCtx(short, time.Hour)
		if d, _ := c.Deadline(); !d.Equal(time.Now().Add(time.Millisecond)) {
			t.Errorf("Deadline %v, want the parent's", d)
		}
		if c.Done() != short.Done() {
			t.Error("with a sooner parent deadline, Done is not the parent's channel")
		}
		time.Sleep(time.Millisecond)
		<-c.Done()
		if !errors.Is(c.Err(), context.DeadlineExceeded) {
			t.Errorf("after the parent's deadline: Err %v, want DeadlineExceeded", c.Err())
		}
		c.release()
		if got := c.Value(ctxKey{}); got != "v" {
			t.Errorf("Value after start %v, want the parent's", got)
		}
	})
}

// TestStoreCtxWatchedAfterRelease does what pgx does: it registers
// context.AfterFunc on the store's context, whose watcher goroutine reads the
// context after the call returned. With -race this caught a storeCtx reused
// per entity: release and reset wrote fields the watcher reads.
func TestStoreCtxWatchedAfterRelease(t *testing.T) {
	var wg sync.WaitGroup
	for range 200 {
		parent, cancel := context.WithCancel(context.Background())
		c := newStoreCtx(parent, time.Minute)
		context.AfterFunc(c, func() { _ = c.Value("k"); _ = c.Err() })
		c.release()
		wg.Go(cancel)
	}
	wg.Wait()
}

// TestStoreCtxAfterFuncNoGoroutine checks that context.AfterFunc, which pgx
// registers on every query's context, attaches to a started storeCtx like to
// a context of the context package, instead of starting a goroutine per
// call to watch Done.
func TestStoreCtxAfterFuncNoGoroutine(t *testing.T) {
	parent, cancel := context.WithCancel(context.Background())
	defer cancel()
	const n = 100
	ctxs := make([]*storeCtx, n)
	for i := range ctxs {
		ctxs[i] = newStoreCtx(parent, time.Minute)
		_ = ctxs[i].Done()
	}
	before := runtime.NumGoroutine()
	var ran atomic.Int32
	stops := make([]func() bool, n)
	for i, c := range ctxs {
		stops[i] = context.AfterFunc(c, func() { ran.Add(1) })
	}
	if after := runtime.NumGoroutine(); after > before+n/10 {
		t.Errorf("%d goroutines after %d AfterFunc registrations, %d before: they watch Done in goroutines", after, n, before)
	}
	// The registrations work: canceling the parent runs them all.
	cancel()
	deadline := time.Now().Add(10 * time.Second)
	for ran.Load() != n && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	if got := ran.Load(); got != n {
		t.Fatalf("%d of %d AfterFunc functions ran after the parent was canceled", got, n)
	}
	for i, c := range ctxs {
		stops[i]()
		c.release()
	}
}
