package entity_test

import (
	"context"
	"errors"
	"fmt"
	"iter"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/eventsourced-go/eventsourced/entity"
	"github.com/eventsourced-go/eventsourced/eventlog"
	"github.com/eventsourced-go/eventsourced/snapshotstore"
)

// deadlineSlack is how late after its ctx's deadline an Ask may return in
// these tests: the time to notice the deadline and hand the error back, on a
// loaded 2-core machine under the race detector.
const deadlineSlack = 500 * time.Millisecond

// stalledLog is a memory log whose entity reads can be stalled: while stall
// is set, ReadEntity waits until it is closed or the read's ctx ends, as a
// read against a locked table or a silent server does.
type stalledLog struct {
	*eventlog.Memory
	reads atomic.Int64 // ReadEntity calls

	mu    sync.Mutex // guards stall
	stall chan struct{}
}

func (l *stalledLog) setStall(c chan struct{}) {
	l.mu.Lock()
	l.stall = c
	l.mu.Unlock()
}

func (l *stalledLog) ReadEntity(ctx context.Context, typ, id string, from uint64) iter.Seq2[eventlog.Record, error] {
	return func(yield func(eventlog.Record, error) bool) {
		l.reads.Add(1)
		l.mu.Lock()
		stall := l.stall
		l.mu.Unlock()
		if stall != nil {
			select {
			case <-stall:
			case <-ctx.Done():
				yield(eventlog.Record{}, ctx.Err())
				return
			}
		}
		for rec, err := range l.Memory.ReadEntity(ctx, typ, id, from) {
			if !yield(rec, err) {
				return
			}
		}
	}
}

// stalledStore is a snapshot store whose loads can be stalled like
// stalledLog's reads.
type stalledStore struct {
	snapshotstore.Store
	mu    sync.Mutex // guards stall
	stall chan struct{}
}

func (s *stalledStore) Load(ctx context.Context, typ, id string) (snapshotstore.Snapshot, bool, error) {
	s.mu.Lock()
	stall := s.stall
	s.mu.Unlock()
	if stall != nil {
		select {
		case <-stall:
		case <-ctx.Done():
			return snapshotstore.Snapshot{}, false, ctx.Err()
		}
	}
	return s.Store.Load(ctx, typ, id)
}

// askResult is the outcome of one Ask and how long it took.
type askResult struct {
	value int
	err   error
	took  time.Duration
}

func askAsync(ctx context.Context, ref entity.Ref[Counter, CounterEvent], cmd entity.Command[Counter, CounterEvent, int]) <-chan askResult {
	out := make(chan askResult, 1)
	go func() {
		start := time.Now()
		v, err := entity.Ask(ctx, ref, cmd)
		out <- askResult{v, err, time.Since(start)}
	}()
	return out
}

// An Ask whose entity must recover against a store that does not answer
// returns at its deadline, not at the store timeout, and its command never
// runs. The recovery goes on for the commands that wait behind it, and the
// entity serves them once the store answers: the abandoned command is not in
// their state.
func TestAskDeadlineWhileRecovering(t *testing.T) {
	for _, where := range []string{"events", "snapshot"} {
		t.Run(where, func(t *testing.T) {
			mem := eventlog.NewMemory()
			store := &stalledStore{Store: snapshotstore.NewMemory()}
			// History: 5 commands of +1, and a snapshot of them.
			{
				k := register(t, newSystem(t, mem, entity.WithSnapshotStore(store)), entity.WithSnapshotEvery(5))
				for range 5 {
					ask(t, k.Ref("r"), Add{N: 1})
				}
				eventually(t, "the snapshot", func() bool {
					_, found, _ := store.Store.Load(context.Background(), "Counter", "r")
					return found
				})
			}
			log := &stalledLog{Memory: mem}
			k := register(t, newSystem(t, log, entity.WithSnapshotStore(store)),
				entity.WithSnapshotEvery(5), entity.WithStoreTimeout(time.Minute))
			ref := k.Ref("r")
			stall := make(chan struct{})
			if where == "events" {
				log.setStall(stall)
			} else {
				store.mu.Lock()
				store.stall = stall
				store.mu.Unlock()
			}

			const deadline = 200 * time.Millisecond
			ctx, cancel := context.WithTimeout(context.Background(), deadline)
			defer cancel()
			first := askAsync(ctx, ref, Add{N: 100})
			// A patient caller queues behind the recovery.
			patient, cancelPatient := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancelPatient()
			eventually(t, "the first command's recovery", func() bool { return k.Live() == 1 })
			second := askAsync(patient, ref, Add{N: 10})
			eventually(t, "the second command queued", func() bool { return entity.Queued(k, "r") == 1 })

			r := <-first
			if !errors.Is(r.err, context.DeadlineExceeded) || errors.Is(r.err, entity.ErrOutcomeUnknown) {
				t.Fatalf("Ask during a stalled recovery: %v, want DeadlineExceeded, not ErrOutcomeUnknown (the command never started)", r.err)
			}
			if r.took > deadline+deadlineSlack {
				t.Errorf("Ask returned after %v, more than its deadline %v plus %v", r.took, deadline, deadlineSlack)
			}
			select {
			case r := <-second:
				t.Fatalf("the queued command was answered before the store answered: %d, %v", r.value, r.err)
			default:
			}
			close(stall)
			r = <-second
			if r.err != nil || r.value != 15 {
				t.Fatalf("queued command after the recovery: %d, %v; want 15 (the abandoned +100 never ran)", r.value, r.err)
			}
			if got := ask(t, ref, Get{}).Value; got != 15 {
				t.Errorf("value %d, want 15", got)
			}
			if n := len(records(t, log, "r")); n != 6 {
				t.Errorf("%d events in the log, want 6", n)
			}
		})
	}
}

// A caller that gives up on a recovering entity does not hold the next
// caller, and with nobody queued the recovery still goes on in the
// background: a store that answers slowly (here, after the first caller's
// deadline) is not asked again from scratch by every caller, so callers
// whose deadlines are shorter than a recovery still get served.
func TestRecoveryOutlivesItsFirstCaller(t *testing.T) {
	mem := eventlog.NewMemory()
	log := &stalledLog{Memory: mem}
	k := register(t, newSystem(t, log), entity.WithStoreTimeout(time.Minute))
	ref := k.Ref("slow")
	stall := make(chan struct{})
	log.setStall(stall)
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	if _, err := entity.Ask(ctx, ref, Add{N: 1}); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Ask: %v, want DeadlineExceeded", err)
	}
	// The caller's own attempt, then the one that goes on without it.
	eventually(t, "the recovery in the background", func() bool { return log.reads.Load() == 2 })
	close(stall)
	if got := ask(t, ref, Add{N: 2}); got != 2 {
		t.Errorf("after the recovery: %d, want 2 (the abandoned +1 never ran)", got)
	}
	if n := log.reads.Load(); n != 2 {
		t.Errorf("%d reads of the entity, want 2: the next caller found it recovered", n)
	}
}

// gatedAppendLog holds every append until the test lets it through, one
// token per append, and counts the appends that started.
type gatedAppendLog struct {
	*eventlog.Memory
	started atomic.Int64
	tokens  chan struct{}
}

func (l *gatedAppendLog) Append(ctx context.Context, typ, id string, expected uint64, events ...eventlog.Event) (uint64, error) {
	l.started.Add(1)
	<-l.tokens
	return l.Memory.Append(ctx, typ, id, expected, events...)
}

// A caller that gives up after its command started gets an error matching
// both ErrOutcomeUnknown and its ctx's error: the command's append is in
// flight and may land, as it does here.
func TestAskAbandonedAfterStart(t *testing.T) {
	log := &gatedAppendLog{Memory: eventlog.NewMemory(), tokens: make(chan struct{})}
	k := register(t, newSystem(t, log))
	ref := k.Ref("a")
	first := askAsync(context.Background(), ref, Add{N: 1})
	eventually(t, "the first append", func() bool { return log.started.Load() == 1 })
	ctx, cancel := context.WithCancel(context.Background())
	second := askAsync(ctx, ref, Add{N: 10})
	eventually(t, "the second command to queue", func() bool { return entity.Queued(k, "a") == 1 })
	log.tokens <- struct{}{}
	if r := <-first; r.err != nil || r.value != 1 {
		t.Fatalf("first: %d, %v", r.value, r.err)
	}
	eventually(t, "the second append", func() bool { return log.started.Load() == 2 })
	cancel()
	r := <-second
	if !errors.Is(r.err, entity.ErrOutcomeUnknown) || !errors.Is(r.err, context.Canceled) {
		t.Fatalf("second: %v, want an error matching ErrOutcomeUnknown and context.Canceled", r.err)
	}
	log.tokens <- struct{}{}
	close(log.tokens) // every later append goes through
	if got := ask(t, ref, Get{}).Value; got != 11 {
		t.Errorf("value %d, want 11: the abandoned command's append landed", got)
	}
}

// PersistError matches ErrOutcomeUnknown unless the log said that nothing
// was written.
func TestPersistErrorOutcome(t *testing.T) {
	for _, tc := range []struct {
		cause   error
		unknown bool
	}{
		{errInjected, true},
		{context.DeadlineExceeded, true},
		{fmt.Errorf("mylog: append: %w", eventlog.ErrUnavailable), true},
		{&eventlog.ConflictError{EntityType: "Counter", EntityID: "x", Expected: 1, Actual: 2}, false},
		{fmt.Errorf("mylog: %w: event too large", eventlog.ErrInvalid), false},
	} {
		err := error(&entity.PersistError{EntityType: "Counter", EntityID: "x", FirstSeq: 2, Err: tc.cause})
		if got := errors.Is(err, entity.ErrOutcomeUnknown); got != tc.unknown {
			t.Errorf("PersistError{%v} matches ErrOutcomeUnknown: %v, want %v", tc.cause, got, tc.unknown)
		}
		if !errors.Is(err, entity.ErrPersist) || !errors.Is(err, tc.cause) {
			t.Errorf("PersistError{%v} must match ErrPersist and its cause", tc.cause)
		}
	}
}

// hangingLog holds its first append until gate is closed, and makes its
// second wait for its ctx to end, telling entered when it starts.
type hangingLog struct {
	*eventlog.Memory
	calls   atomic.Int64
	gate    chan struct{}
	entered chan struct{}
}

func (l *hangingLog) Append(ctx context.Context, typ, id string, expected uint64, events ...eventlog.Event) (uint64, error) {
	switch l.calls.Add(1) {
	case 1:
		<-l.gate
	case 2:
		close(l.entered)
		<-ctx.Done()
		return 0, ctx.Err()
	}
	return l.Memory.Append(ctx, typ, id, expected, events...)
}

// Close cuts short the store calls the entities' actors make, whatever the
// store timeout: it returns at once, and the command whose append it
// canceled gets a *PersistError whose outcome is unknown.
func TestCloseCancelsBackgroundStoreCalls(t *testing.T) {
	log := &hangingLog{Memory: eventlog.NewMemory(), gate: make(chan struct{}), entered: make(chan struct{})}
	sys, err := entity.NewSystem(log)
	if err != nil {
		t.Fatal(err)
	}
	k := register(t, sys, entity.WithStoreTimeout(time.Minute))
	ref := k.Ref("c")
	first := askAsync(context.Background(), ref, Add{N: 1})
	eventually(t, "the first append", func() bool { return log.calls.Load() == 1 })
	second := askAsync(context.Background(), ref, Add{N: 2}) // queues: the actor runs it
	eventually(t, "the second command queued", func() bool { return entity.Queued(k, "c") == 1 })
	close(log.gate)
	if r := <-first; r.err != nil {
		t.Fatalf("first: %v", r.err)
	}
	<-log.entered
	start := time.Now()
	if err := sys.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if took := time.Since(start); took > 5*time.Second {
		t.Errorf("Close took %v with an append of the actor's in flight", took.Round(time.Millisecond))
	}
	r := <-second
	if !errors.Is(r.err, entity.ErrPersist) || !errors.Is(r.err, context.Canceled) || !errors.Is(r.err, entity.ErrOutcomeUnknown) {
		t.Errorf("the command whose append Close canceled: %v, want a *PersistError matching context.Canceled and ErrOutcomeUnknown", r.err)
	}
}
