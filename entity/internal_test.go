package entity

import (
	"context"
	"sync"
	"testing"
	"testing/synctest"
	"time"
	"unsafe"

	"github.com/eventsourced-go/eventsourced/binarize"
	"github.com/eventsourced-go/eventsourced/eventlog"
)

type tState struct{ N int }
type tEvent struct{ By int }
type tAdd struct{}

func (tAdd) Handle(tx *Tx[tState, tEvent]) (int, error) { return tx.Persist(tEvent{By: 1}).N, nil }

func tType() Type[tState, tEvent] {
	events := binarize.NewRegistry[tEvent](binarize.JSON)
	binarize.MustRegister[tEvent](events, "Added")
	return Type[tState, tEvent]{
		Name:   "T",
		Apply:  func(s tState, e tEvent) tState { s.N += e.By; return s },
		Events: events,
	}
}

// gatedLog holds appends while gate is open.
type gatedLog struct {
	*eventlog.Memory
	mu   sync.Mutex // guards gate
	gate chan struct{}
}

func (l *gatedLog) Append(ctx context.Context, typ, id string, expected uint64, events ...eventlog.Event) (uint64, error) {
	l.mu.Lock()
	g := l.gate
	l.mu.Unlock()
	if g != nil {
		<-g
	}
	return l.Memory.Append(ctx, typ, id, expected, events...)
}

// An entity whose commands never wait for one another has no actor: it
// costs its instance and map entry only. The first time commands queue up,
// an actor is spawned to drain them; it stops with the entity.
func TestActorSpawnedOnlyWhenCommandsQueue(t *testing.T) {
	gate := make(chan struct{})
	log := &gatedLog{Memory: eventlog.NewMemory()}
	sys, err := NewSystem(log)
	if err != nil {
		t.Fatal(err)
	}
	k, err := Register(sys, tType())
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	for i := range 100 {
		if n, err := Ask(ctx, k.Ref("calm"), tAdd{}); err != nil || n != i+1 {
			t.Fatalf("Ask %d: %d, %v", i, n, err)
		}
	}
	in, _ := k.live.Load("calm")
	in.mu.Lock()
	pid := in.pid
	in.mu.Unlock()
	if pid != nil || sys.running.Load() != 0 {
		t.Fatalf("uncontended entity: pid %v, %d actors running; want none", pid, sys.running.Load())
	}

	log.mu.Lock()
	log.gate = gate
	log.mu.Unlock()
	var wg sync.WaitGroup
	for range 10 {
		wg.Go(func() {
			if _, err := Ask(ctx, k.Ref("busy"), tAdd{}); err != nil {
				t.Error(err)
			}
		})
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		b, ok := k.live.Load("busy")
		if ok {
			b.mu.Lock()
			queued := len(b.queue)
			b.mu.Unlock()
			if queued == 9 {
				break
			}
		}
		if time.Now().After(deadline) {
			t.Fatal("commands did not queue up")
		}
		time.Sleep(time.Millisecond)
	}
	log.mu.Lock()
	log.gate = nil
	log.mu.Unlock()
	close(gate)
	wg.Wait()
	if got := sys.running.Load(); got != 1 {
		t.Errorf("after contention: %d actors running, want 1", got)
	}
	if err := sys.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	if got := sys.running.Load(); got != 0 {
		t.Errorf("after Shutdown: %d actors running, want 0", got)
	}
}

func TestLiveMap(t *testing.T) {
	var m liveMap[*int]
	m.init()
	a, b := new(int), new(int)
	if v, loaded := m.LoadOrStore("x", a); loaded || v != a {
		t.Fatalf("LoadOrStore new: %v %t", v, loaded)
	}
	if v, loaded := m.LoadOrStore("x", b); !loaded || v != a {
		t.Fatalf("LoadOrStore existing: %v %t, want a true", v, loaded)
	}
	if m.CompareAndDelete("x", b) {
		t.Fatal("CompareAndDelete with another value deleted")
	}
	for i := range 1000 {
		m.LoadOrStore(string(rune('a'+i%26))+string(rune(i)), b)
	}
	n := 0
	m.Range(func(*int) bool { n++; return true })
	if n != 1001 {
		t.Errorf("Range saw %d values, want 1001", n)
	}
	if !m.CompareAndDelete("x", a) {
		t.Fatal("CompareAndDelete with the value did not delete")
	}
	if _, ok := m.Load("x"); ok {
		t.Error("Load after delete found the value")
	}
}

// An entity's actor stops after a few seconds without queued commands; the
// entity stays live with its state (no recovery) and gets an actor again
// when commands queue up again.
func TestIdleActorStops(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		log := &gatedLog{Memory: eventlog.NewMemory()}
		sys, err := NewSystem(log)
		if err != nil {
			t.Fatal(err)
		}
		defer sys.Close()
		k, err := Register(sys, tType())
		if err != nil {
			t.Fatal(err)
		}
		ctx := context.Background()
		contend := func() {
			gate := make(chan struct{})
			log.mu.Lock()
			log.gate = gate
			log.mu.Unlock()
			var wg sync.WaitGroup
			for range 5 {
				wg.Go(func() {
					if _, err := Ask(ctx, k.Ref("e"), tAdd{}); err != nil {
						t.Error(err)
					}
				})
			}
			synctest.Wait() // one command in Append, four queued
			log.mu.Lock()
			log.gate = nil
			log.mu.Unlock()
			close(gate)
			wg.Wait()
		}
		contend()
		if got := sys.running.Load(); got != 1 {
			t.Fatalf("after contention: %d actors, want 1", got)
		}
		time.Sleep(4 * actorIdleTick)
		synctest.Wait()
		if got := sys.running.Load(); got != 0 {
			t.Fatalf("after %v idle: %d actors, want 0", 4*actorIdleTick, got)
		}
		if got := k.Live(); got != 1 {
			t.Fatalf("%d live entities, want 1: stopping the actor keeps the entity", got)
		}
		contend()
		if n, err := Ask(ctx, k.Ref("e"), tAdd{}); err != nil || n != 11 {
			t.Fatalf("after a second contention: %d, %v; want 11", n, err)
		}
		if got := sys.running.Load(); got != 1 {
			t.Errorf("after the second contention: %d actors, want 1", got)
		}
	})
}

// watchingLog is a log whose Append watches its context after returning,
// as pgx does with context.AfterFunc: it calls Err and Value on the
// context from another goroutine once the call is over.
type watchingLog struct {
	*eventlog.Memory
	wg sync.WaitGroup // the watchers
}

func (l *watchingLog) Append(ctx context.Context, typ, id string, expected uint64, events ...eventlog.Event) (uint64, error) {
	stop := context.AfterFunc(ctx, func() {})
	pos, err := l.Memory.Append(ctx, typ, id, expected, events...)
	l.wg.Go(func() {
		stop()
		_, _ = ctx.Value(cmdValuesKey{}), ctx.Err()
	})
	return pos, err
}

// Requests are recycled once their caller has the answer, but never one
// whose store context a store may still watch, and never one whose caller
// gave up while it waited (the entity still holds it): under -race, a
// recycled request that something still used would be a data race, and
// answers would go to the wrong caller.
func TestRequestRecycling(t *testing.T) {
	t.Run("store context watched after the call", func(t *testing.T) {
		log := &watchingLog{Memory: eventlog.NewMemory()}
		sys, err := NewSystem(log)
		if err != nil {
			t.Fatal(err)
		}
		defer sys.Close()
		k, err := Register(sys, tType(), WithSyncAppends())
		if err != nil {
			t.Fatal(err)
		}
		var wg sync.WaitGroup
		for c := range 4 {
			wg.Go(func() {
				ref := k.Ref(string(rune('a' + c)))
				for i := range 200 {
					if n, err := Ask(context.Background(), ref, tAdd{}); err != nil || n != i+1 {
						t.Errorf("Ask %d: %d, %v; want %d", i, n, err, i+1)
						return
					}
				}
			})
		}
		wg.Wait()
		log.wg.Wait()
	})
	t.Run("caller gave up while queued", func(t *testing.T) {
		log := &gatedLog{Memory: eventlog.NewMemory()}
		sys, err := NewSystem(log)
		if err != nil {
			t.Fatal(err)
		}
		defer sys.Close()
		k, err := Register(sys, tType())
		if err != nil {
			t.Fatal(err)
		}
		ref := k.Ref("x")
		gate := make(chan struct{})
		log.mu.Lock()
		log.gate = gate
		log.mu.Unlock()
		first := make(chan error, 1)
		go func() { _, err := Ask(context.Background(), ref, tAdd{}); first <- err }()
		for !busy(k, "x") {
			time.Sleep(time.Millisecond)
		}
		// The first command holds the entity; give up on a queued one.
		ctx, cancel := context.WithCancel(context.Background())
		queued := make(chan error, 1)
		go func() { _, err := Ask(ctx, ref, tAdd{}); queued <- err }()
		for Queued(k, "x") == 0 {
			time.Sleep(time.Millisecond)
		}
		cancel()
		if err := <-queued; err != context.Canceled {
			t.Fatalf("queued Ask whose caller gave up: %v, want context.Canceled", err)
		}
		// More commands queue behind the abandoned one, in requests that
		// may come from the pool.
		var wg sync.WaitGroup
		for range 8 {
			wg.Go(func() {
				if _, err := Ask(context.Background(), ref, tAdd{}); err != nil {
					t.Error(err)
				}
			})
		}
		for Queued(k, "x") < 9 {
			time.Sleep(time.Millisecond)
		}
		log.mu.Lock()
		log.gate = nil
		log.mu.Unlock()
		close(gate)
		if err := <-first; err != nil {
			t.Fatal(err)
		}
		wg.Wait()
		// 1 + 8 commands ran; the abandoned one did not.
		if n, err := Ask(context.Background(), ref, tAdd{}); err != nil || n != 10 {
			t.Fatalf("after: %d, %v; want 10", n, err)
		}
	})
}

// busy reports whether entity id of k is live and running a command.
func busy[S, E any](k *Kind[S, E], id string) bool {
	in, ok := k.live.Load(id)
	if !ok {
		return false
	}
	in.mu.Lock()
	defer in.mu.Unlock()
	return in.busy
}

// A storeCtx may be reset and used again only if the store never asked for
// Deadline or Done: one that did may watch it after the call.
func TestStoreCtxRecyclable(t *testing.T) {
	c := newStoreCtx(context.Background(), time.Minute)
	_, _ = c.Err(), c.Value("k")
	if !c.recyclable() {
		t.Error("after Err and Value: not recyclable, want recyclable")
	}
	_ = c.Done()
	c.release()
	if c.recyclable() {
		t.Error("after Done: recyclable, want not")
	}
	c = newStoreCtx(context.Background(), time.Minute)
	_, _ = c.Deadline()
	c.release()
	if c.recyclable() {
		t.Error("after Deadline: recyclable, want not")
	}
}

type replyA struct{}
type replyB struct{}
type replyC struct{}
type replyD struct{}
type replyE struct{}
type replyF struct{}

// Each reply type has a pool of its own, found again on every call, beyond
// the first four too; the list of pools fills its size class, so that it
// shares no cache line.
func TestRequestPools(t *testing.T) {
	if got := unsafe.Sizeof(requestPoolList{}); got != 128 {
		t.Errorf("requestPoolList is %d bytes, want 128", got)
	}
	if got := unsafe.Sizeof(liveShard[*int]{}); got != 128 {
		t.Errorf("liveShard is %d bytes, want 128", got)
	}
	k := &Kind[tState, tEvent]{}
	pools := []*sync.Pool{
		requestPool[tState, tEvent, replyA](k), requestPool[tState, tEvent, replyB](k),
		requestPool[tState, tEvent, replyC](k), requestPool[tState, tEvent, replyD](k),
		requestPool[tState, tEvent, replyE](k), requestPool[tState, tEvent, replyF](k),
	}
	again := []*sync.Pool{
		requestPool[tState, tEvent, replyA](k), requestPool[tState, tEvent, replyB](k),
		requestPool[tState, tEvent, replyC](k), requestPool[tState, tEvent, replyD](k),
		requestPool[tState, tEvent, replyE](k), requestPool[tState, tEvent, replyF](k),
	}
	for i := range pools {
		if pools[i] != again[i] {
			t.Errorf("reply type %d: a second call returned another pool", i)
		}
		for j := range i {
			if pools[i] == pools[j] {
				t.Errorf("reply types %d and %d share a pool", j, i)
			}
		}
	}
	if _, ok := pools[4].Get().(*request[tState, tEvent, replyE]); !ok {
		t.Errorf("the pool of replyE gives %T", pools[4].Get())
	}
}
