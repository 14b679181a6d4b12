package rounds

import (
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

func closed(ch <-chan struct{}) bool {
	select {
	case <-ch:
		return true
	default:
		return false
	}
}

func TestGroupClosesOnceSealedAndLeft(t *testing.T) {
	// Sealed first, then left.
	g := NewGroup()
	g.Join()
	g.Join()
	g.Leave()
	if closed(g.Done()) {
		t.Fatal("closed before the seal, with one member left")
	}
	g.Seal()
	if closed(g.Done()) {
		t.Fatal("closed after the seal while one member had not left")
	}
	g.Leave()
	if !closed(g.Done()) {
		t.Fatal("not closed once sealed and every member left")
	}
	// Left first, then sealed.
	h := NewGroup()
	h.Join()
	h.Leave()
	if closed(h.Done()) {
		t.Fatal("closed before its seal")
	}
	h.Seal()
	if !closed(h.Done()) {
		t.Fatal("not closed by the seal after its member left")
	}
	// No member: the seal closes it.
	e := NewGroup()
	e.Seal()
	if !closed(e.Done()) {
		t.Fatal("a sealed group with no member is open")
	}
}

func TestClosedIsClosed(t *testing.T) {
	if !closed(Closed) {
		t.Fatal("Closed is open")
	}
}

func TestLeavesBatchesByGroup(t *testing.T) {
	a, b := NewGroup(), NewGroup()
	a.Join()
	a.Join()
	b.Join()
	a.Seal()
	b.Seal()
	var lv Leaves
	lv.Add(a)
	lv.Add(nil) // an append of no group between two of a
	lv.Add(a)
	if closed(a.Done()) || lv.n != 2 {
		t.Fatalf("after two members of a around an append of no group: closed %v, %d members recorded; want open, 2", closed(a.Done()), lv.n)
	}
	lv.Add(b) // another group: a's members leave
	if !closed(a.Done()) {
		t.Fatal("a not closed once the answers moved on to another group")
	}
	if closed(b.Done()) {
		t.Fatal("b closed before Flush")
	}
	lv.Flush()
	if !closed(b.Done()) {
		t.Fatal("b not closed by Flush")
	}
	lv.Flush() // nothing recorded: no effect
}

// TestConcurrentRounds runs callers that join and queue under a lock, and
// a worker that takes everything queued, seals its group under the same
// lock and answers, as a log does: every caller's channel closes, and only
// after its own answer.
func TestConcurrentRounds(t *testing.T) {
	type item struct {
		g        *Group
		answered atomic.Bool
	}
	var (
		mu    sync.Mutex
		cur   = NewGroup()
		queue []*item
		ready = make(chan struct{}, 1)
		stop  = make(chan struct{})
	)
	var worker sync.WaitGroup
	worker.Go(func() {
		for {
			select {
			case <-ready:
			case <-stop:
				return
			}
			mu.Lock()
			batch, g := queue, cur
			queue, cur = nil, NewGroup()
			g.Seal()
			mu.Unlock()
			var lv Leaves
			for _, it := range batch {
				it.answered.Store(true)
				lv.Add(it.g)
			}
			lv.Flush()
		}
	})
	const callers, each = 32, 300
	var wg sync.WaitGroup
	var early atomic.Int64
	for range callers {
		wg.Go(func() {
			for range each {
				it := new(item)
				mu.Lock()
				it.g = cur
				cur.Join()
				queue = append(queue, it)
				mu.Unlock()
				select {
				case ready <- struct{}{}:
				default:
				}
				select {
				case <-it.g.Done():
				case <-time.After(10 * time.Second):
					t.Error("a group never closed")
					return
				}
				if !it.answered.Load() {
					early.Add(1)
				}
			}
		})
	}
	wg.Wait()
	close(stop)
	worker.Wait()
	if n := early.Load(); n != 0 {
		t.Fatalf("%d channels closed before their append was answered", n)
	}
}
