package entity_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/eventsourced-go/eventsourced/entity"
	"github.com/eventsourced-go/eventsourced/eventlog"
	"github.com/eventsourced-go/eventsourced/internal/rounds"
	"github.com/eventsourced-go/eventsourced/snapshotstore"
)

// asyncLog gives a flakyLog an AppendAsync that appends on a goroutine of
// its own and calls done from there, as a backend's worker would.
type asyncLog struct {
	*flakyLog
	asyncCalls atomic.Int64
}

func newAsyncLog() *asyncLog { return &asyncLog{flakyLog: &flakyLog{Log: eventlog.NewMemory()}} }

func (l *asyncLog) AppendAsync(ctx context.Context, typ, id string, expected uint64, events []eventlog.Event, done func(uint64, error)) {
	l.asyncCalls.Add(1)
	go func() { done(l.flakyLog.Append(ctx, typ, id, expected, events...)) }()
}

var _ eventlog.AsyncAppender = (*asyncLog)(nil)

// roundAsyncLog is an asyncLog that is an eventlog.RoundAppender too: each
// append is a round of its own, settled on a goroutine that calls done and
// then leaves its group, as a backend's worker would.
type roundAsyncLog struct {
	*asyncLog
	roundCalls atomic.Int64
}

func (l *roundAsyncLog) AppendRound(ctx context.Context, typ, id string, expected uint64, events []eventlog.Event, done func(uint64, error)) <-chan struct{} {
	l.roundCalls.Add(1)
	l.asyncCalls.Add(1)
	g := rounds.NewGroup()
	g.Join()
	g.Seal()
	go func() {
		done(l.flakyLog.Append(ctx, typ, id, expected, events...))
		g.Leave()
	}()
	return g.Done()
}

var _ eventlog.RoundAppender = (*roundAsyncLog)(nil)

// eachAsyncLog runs test with a log that has AppendAsync ("async") and with
// one that has AppendRound too ("round"): newLog returns the asyncLog to
// inspect and the log to give the System.
func eachAsyncLog(t *testing.T, test func(t *testing.T, newLog func() (*asyncLog, eventlog.Log))) {
	t.Run("async", func(t *testing.T) {
		test(t, func() (*asyncLog, eventlog.Log) {
			l := newAsyncLog()
			return l, l
		})
	})
	t.Run("round", func(t *testing.T) {
		test(t, func() (*asyncLog, eventlog.Log) {
			l := newAsyncLog()
			return l, &roundAsyncLog{asyncLog: l}
		})
	})
}

// TestAsyncAppends: with a log that has AppendAsync, a command with events
// that finds its entity idle appends through it, and its caller gets the
// reply and the Position as with Append; a command without events does not
// append; WithSyncAppends turns it off.
func TestAsyncAppends(t *testing.T) {
	eachAsyncLog(t, testAsyncAppends)
}

func testAsyncAppends(t *testing.T, newLog func() (*asyncLog, eventlog.Log)) {
	log, sysLog := newLog()
	k := register(t, newSystem(t, sysLog))
	ref := k.Ref("a")
	for i := 1; i <= 5; i++ {
		got, pos, err := entity.AskPosition(context.Background(), ref, Add{N: i})
		if err != nil || got != i*(i+1)/2 {
			t.Fatalf("Add %d: %d, %v; want %d", i, got, err, i*(i+1)/2)
		}
		if recs := records(t, log, "a"); pos != recs[len(recs)-1].Position {
			t.Fatalf("Add %d: Position %d, the log has it at %d", i, pos, recs[len(recs)-1].Position)
		}
	}
	if got := ask(t, ref, Get{}).Value; got != 15 {
		t.Fatalf("Get: %d, want 15", got)
	}
	if got := log.asyncCalls.Load(); got != 5 {
		t.Fatalf("AppendAsync or AppendRound called %d times, want 5 (one per Add, none for Get)", got)
	}
	if r, ok := sysLog.(*roundAsyncLog); ok && r.roundCalls.Load() != 5 {
		t.Fatalf("AppendRound called %d times, want 5: a log that has it appends through it", r.roundCalls.Load())
	}

	slog, sysSlog := newLog()
	ks := register(t, newSystem(t, sysSlog), entity.WithSyncAppends())
	if got := ask(t, ks.Ref("s"), Add{N: 2}); got != 2 {
		t.Fatalf("Add with WithSyncAppends: %d, want 2", got)
	}
	if got := slog.asyncCalls.Load(); got != 0 {
		t.Fatalf("WithSyncAppends: AppendAsync called %d times, want 0", got)
	}
}

// TestAsyncCallerGivesUp: a caller whose ctx ends while its append is in
// flight returns by its deadline with an unknown outcome; the append goes
// on, a command queued behind it runs after it against the state it left,
// and nothing is recovered from the log, since the entity knows.
func TestAsyncCallerGivesUp(t *testing.T) {
	eachAsyncLog(t, testAsyncCallerGivesUp)
}

func testAsyncCallerGivesUp(t *testing.T, newLog func() (*asyncLog, eventlog.Log)) {
	log, sysLog := newLog()
	k := register(t, newSystem(t, sysLog))
	ref := k.Ref("g")
	ask(t, ref, Add{N: 1})
	gate := make(chan struct{})
	log.set(func(l *flakyLog) { l.gate = gate })

	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	start := time.Now()
	_, err := entity.Ask(ctx, ref, Add{N: 10})
	if !errors.Is(err, entity.ErrOutcomeUnknown) || !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Ask whose ctx ended during the append: %v, want ErrOutcomeUnknown and DeadlineExceeded", err)
	}
	if took := time.Since(start); took > time.Second {
		t.Fatalf("Ask returned %v after its 50ms deadline", took)
	}
	behind := make(chan int, 1)
	go func() {
		v, err := entity.Ask(context.Background(), ref, Add{N: 100})
		if err != nil {
			t.Errorf("Add queued behind the append: %v", err)
		}
		behind <- v
	}()
	eventually(t, "the queued command to wait", func() bool { return k.Live() == 1 && log.held.Load() == 1 })
	log.set(func(l *flakyLog) { l.gate = nil })
	close(gate)
	if got := <-behind; got != 111 {
		t.Fatalf("Add after the abandoned one: %d, want 111 (it landed)", got)
	}
	if reads := log.readsFrom(); len(reads) != 1 {
		t.Fatalf("ReadEntity calls from %v, want only the first recovery", reads)
	}
	if got := seqs(records(t, log, "g")); !slices.Equal(got, []uint64{1, 2, 3}) {
		t.Fatalf("log Seqs %v, want 1 2 3", got)
	}
}

// TestAsyncManyCallers: many callers of many entities at once, commands
// queueing behind asynchronous appends and handed to the entities' actors:
// every reply is a distinct running sum and every stream is contiguous.
func TestAsyncManyCallers(t *testing.T) {
	eachAsyncLog(t, testAsyncManyCallers)
}

func testAsyncManyCallers(t *testing.T, newLog func() (*asyncLog, eventlog.Log)) {
	log, sysLog := newLog()
	k := register(t, newSystem(t, sysLog))
	const entities, callers, each = 16, 8, 40
	replies := make([][]int, entities)
	var mu sync.Mutex
	var wg sync.WaitGroup
	for e := range entities {
		for range callers {
			wg.Go(func() {
				ref := k.Ref(fmt.Sprintf("m-%d", e))
				for range each {
					v, err := entity.Ask(context.Background(), ref, Add{N: 1})
					if err != nil {
						t.Errorf("Add on m-%d: %v", e, err)
						return
					}
					mu.Lock()
					replies[e] = append(replies[e], v)
					mu.Unlock()
				}
			})
		}
	}
	wg.Wait()
	want := make([]int, callers*each)
	for i := range want {
		want[i] = i + 1
	}
	for e := range entities {
		slices.Sort(replies[e])
		if !slices.Equal(replies[e], want) {
			t.Fatalf("m-%d replies are not 1..%d once each: %v", e, callers*each, replies[e])
		}
		if recs := records(t, log, fmt.Sprintf("m-%d", e)); len(recs) != callers*each || recs[len(recs)-1].Seq != uint64(callers*each) {
			t.Fatalf("m-%d: %d events, want %d", e, len(recs), callers*each)
		}
	}
	if log.asyncCalls.Load() == 0 {
		t.Fatal("no append went through AppendAsync")
	}
}

// TestAsyncSnapshotsAndClose: snapshots are taken after asynchronous
// appends, and Close waits for an append in flight and answers its command.
func TestAsyncSnapshotsAndClose(t *testing.T) {
	eachAsyncLog(t, testAsyncSnapshotsAndClose)
}

func testAsyncSnapshotsAndClose(t *testing.T, newLog func() (*asyncLog, eventlog.Log)) {
	log, sysLog := newLog()
	snaps := snapshotstore.NewMemory()
	sys, err := entity.NewSystem(sysLog, entity.WithSnapshotStore(snaps))
	if err != nil {
		t.Fatal(err)
	}
	k := register(t, sys, entity.WithSnapshotEvery(2))
	ref := k.Ref("s")
	for i := 1; i <= 4; i++ {
		ask(t, ref, Add{N: 1})
	}
	eventually(t, "a snapshot at seq 4", func() bool {
		s, ok, err := snaps.Load(context.Background(), "Counter", "s")
		return err == nil && ok && s.Seq == 4
	})
	gate := make(chan struct{})
	log.set(func(l *flakyLog) { l.gate = gate })
	answered := make(chan error, 1)
	go func() {
		_, err := entity.Ask(context.Background(), ref, Add{N: 1})
		answered <- err
	}()
	eventually(t, "the append to reach the log", func() bool { return log.held.Load() == 1 })
	closed := make(chan struct{})
	go func() {
		sys.Close()
		close(closed)
	}()
	select {
	case <-closed:
		t.Fatal("Close returned while an append was in flight")
	case <-time.After(50 * time.Millisecond):
	}
	close(gate)
	<-closed
	if err := <-answered; err != nil {
		t.Fatalf("the command whose append was in flight at Close: %v", err)
	}
	if got := len(records(t, log, "s")); got != 5 {
		t.Fatalf("log has %d events, want 5", got)
	}
}

// keepingLog is a log that keeps the Data of every append it is given, with
// a copy, to check that the runtime, which writes event Data into a buffer
// it reuses, never modifies Data the log may still use: that of an
// asynchronous append before done is called, and that of a failed Append
// ever. failEvery fails every n-th Append (without storing).
type keepingLog struct {
	*eventlog.Memory
	failEvery int

	mu     sync.Mutex // guards the fields below
	calls  int
	failed []keptData // Data of failed Appends, which must never change
	first  []*byte    // address of the first Data byte of each successful append
}

type keptData struct{ data, copy []byte }

func (l *keepingLog) keep(events []eventlog.Event) []keptData {
	var kept []keptData
	for _, ev := range events {
		kept = append(kept, keptData{ev.Data, slices.Clone(ev.Data)})
	}
	return kept
}

func (l *keepingLog) Append(ctx context.Context, typ, id string, expected uint64, events ...eventlog.Event) (uint64, error) {
	l.mu.Lock()
	l.calls++
	if l.failEvery > 0 && l.calls%l.failEvery == 0 {
		l.failed = append(l.failed, l.keep(events)...)
		l.mu.Unlock()
		return 0, errInjected
	}
	l.first = append(l.first, &events[0].Data[0])
	l.mu.Unlock()
	return l.Memory.Append(ctx, typ, id, expected, events...)
}

// asyncKeepingLog adds an AppendAsync that checks, just before it calls
// done from a goroutine of its own, that the events' Data is as it was
// given.
type asyncKeepingLog struct {
	*keepingLog
	changed atomic.Int64
}

func (l *asyncKeepingLog) AppendAsync(ctx context.Context, typ, id string, expected uint64, events []eventlog.Event, done func(uint64, error)) {
	kept := l.keep(events)
	go func() {
		time.Sleep(100 * time.Microsecond) // let other commands queue up
		for _, k := range kept {
			if !slices.Equal(k.data, k.copy) {
				l.changed.Add(1)
			}
		}
		done(l.keepingLog.Append(ctx, typ, id, expected, events...))
	}()
}

// TestEventDataBuffer: the runtime encodes event Data into a buffer of the
// entity that it reuses for the next append (so a command allocates
// nothing for it), but only once the log is done with it: after Append
// returned success, or AppendAsync called done; never after a failed
// Append, which the log may still be sending.
func TestEventDataBuffer(t *testing.T) {
	t.Run("sync", func(t *testing.T) {
		log := &keepingLog{Memory: eventlog.NewMemory(), failEvery: 3}
		k := register(t, newSystem(t, log), entity.WithSyncAppends())
		ref := k.Ref("a")
		want := 0
		for i := range 30 {
			_, err := entity.Ask(context.Background(), ref, Add{N: i + 1}) // different bytes each time
			if (i+1)%3 == 0 {
				if !errors.Is(err, entity.ErrPersist) {
					t.Fatalf("Add %d: %v, want a persist error", i, err)
				}
				continue
			}
			if err != nil {
				t.Fatalf("Add %d: %v", i, err)
			}
			want += i + 1
		}
		if got := ask(t, ref, Get{}).Value; got != want {
			t.Fatalf("Get: %d, want %d", got, want)
		}
		log.mu.Lock()
		defer log.mu.Unlock()
		for i, kd := range log.failed {
			if !slices.Equal(kd.data, kd.copy) {
				t.Errorf("the Data of failed append %d changed after it returned: %q, was %q", i, kd.data, kd.copy)
			}
		}
		// The two successful appends between failures reuse one buffer.
		if len(log.first) < 2 || log.first[0] != log.first[1] {
			t.Errorf("two appends in a row did not write their Data to the same buffer")
		}
	})
	t.Run("async", func(t *testing.T) {
		log := &asyncKeepingLog{keepingLog: &keepingLog{Memory: eventlog.NewMemory()}}
		k := register(t, newSystem(t, log))
		var wg sync.WaitGroup
		for range 8 {
			wg.Go(func() {
				for range 50 {
					if _, err := entity.Ask(context.Background(), k.Ref("a"), Add{N: 1}); err != nil {
						t.Error(err)
						return
					}
				}
			})
		}
		wg.Wait()
		if got := ask(t, k.Ref("a"), Get{}).Value; got != 400 {
			t.Fatalf("Get: %d, want 400", got)
		}
		if n := log.changed.Load(); n != 0 {
			t.Fatalf("%d events' Data changed before AppendAsync called done", n)
		}
	})
}
