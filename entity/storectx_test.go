package entity

import (
	"context"
	"errors"
	"sync"
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

		// A sooner parent deadline wins.
		short, cancelShort := context.WithTimeout(parent, time.Millisecond)
		defer cancelShort()
		c = newStoreCtx(short, time.Hour)
		if d, _ := c.Deadline(); !d.Equal(time.Now().Add(time.Millisecond)) {
			t.Errorf("Deadline %v, want the parent's", d)
		}
		c.release()
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
