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
	r := New()
	a, b := r.Join(), r.Join()
	if a != b {
		t.Fatal("two joins before a seal got different groups")
	}
	a.Leave()
	if closed(a.Done()) {
		t.Fatal("closed before the seal, with one member left")
	}
	r.Seal()
	if closed(a.Done()) {
		t.Fatal("closed after the seal while one member had not left")
	}
	c := r.Join()
	if c == a {
		t.Fatal("a join after the seal got the sealed group")
	}
	b.Leave()
	if !closed(a.Done()) {
		t.Fatal("not closed once sealed and every member left")
	}
	if closed(c.Done()) {
		t.Fatal("the next group closed with its member still in it")
	}
	// Leaving before the seal: the seal closes it.
	c.Leave()
	if closed(c.Done()) {
		t.Fatal("closed before its seal")
	}
	r.Seal()
	if !closed(c.Done()) {
		t.Fatal("not closed by the seal after its member left")
	}
}

func TestSealWithoutMembersClosesAtOnce(t *testing.T) {
	r := New()
	g := r.cur.Load()
	r.Seal()
	if !closed(g.Done()) {
		t.Fatal("a seal with no member left its group open")
	}
	if j := r.Join(); j == g {
		t.Fatal("a join after the seal got the sealed group")
	}
}

func TestClosedIsClosed(t *testing.T) {
	if !closed(Closed) {
		t.Fatal("Closed is open")
	}
}

// TestConcurrentRounds runs callers that join, queue and wait, and a
// worker that takes, seals and answers, as a log does: every caller's
// channel closes, and only after its own answer.
func TestConcurrentRounds(t *testing.T) {
	r := New()
	type item struct {
		g        *Group
		answered atomic.Bool
	}
	queue := make(chan *item, 64)
	stop := make(chan struct{})
	var worker sync.WaitGroup
	worker.Go(func() {
		var batch []*item
		for {
			select {
			case it := <-queue:
				batch = append(batch[:0], it)
			case <-stop:
				return
			}
		gather:
			for len(batch) < 16 {
				select {
				case it := <-queue:
					batch = append(batch, it)
				default:
					break gather
				}
			}
			r.Seal()
			for _, it := range batch {
				it.answered.Store(true)
				it.g.Leave()
			}
		}
	})
	const callers, each = 32, 300
	var wg sync.WaitGroup
	var early atomic.Int64
	for range callers {
		wg.Go(func() {
			for range each {
				it := new(item)
				it.g = r.Join()
				queue <- it
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
