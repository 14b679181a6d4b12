package entity_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/eventsourced-go/eventsourced/binarize"
	"github.com/eventsourced-go/eventsourced/entity"
	"github.com/eventsourced-go/eventsourced/eventlog"
	"github.com/eventsourced-go/eventsourced/snapshotstore"
)

func newSystem(t *testing.T, log eventlog.Log, opts ...entity.Option) *entity.System {
	t.Helper()
	sys, err := entity.NewSystem(log, opts...)
	if err != nil {
		t.Fatalf("NewSystem: %v", err)
	}
	t.Cleanup(func() { sys.Close() })
	return sys
}

func register(t *testing.T, sys *entity.System, opts ...entity.KindOption) *entity.Kind[Counter, CounterEvent] {
	t.Helper()
	k, err := entity.Register(sys, counterType(), opts...)
	if err != nil {
		t.Fatalf("Register: %v", err)
	}
	return k
}

func records(t *testing.T, log eventlog.Log, id string) []eventlog.Record {
	t.Helper()
	var out []eventlog.Record
	for rec, err := range log.ReadEntity(context.Background(), "Counter", id, 1) {
		if err != nil {
			t.Fatalf("ReadEntity %s: %v", id, err)
		}
		out = append(out, rec)
	}
	return out
}

func seqs(recs []eventlog.Record) []uint64 {
	out := make([]uint64, len(recs))
	for i, r := range recs {
		out[i] = r.Seq
	}
	return out
}

func ask[R any](t *testing.T, ref entity.Ref[Counter, CounterEvent], cmd entity.Command[Counter, CounterEvent, R]) R {
	t.Helper()
	r, err := entity.Ask(context.Background(), ref, cmd)
	if err != nil {
		t.Fatalf("Ask %s %T: %v", ref, cmd, err)
	}
	return r
}

func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

func TestEffects(t *testing.T) {
	log := eventlog.NewMemory()
	k := register(t, newSystem(t, log))
	ref := k.Ref("c1")
	ctx := context.Background()

	if got := ask(t, ref, Add{N: 2}); got != 2 {
		t.Errorf("Add 2: reply %d, want 2", got)
	}
	if got := ask(t, ref, AddTwice{N: 3}); got != 8 {
		t.Errorf("AddTwice 3: reply %d, want 8", got)
	}
	_, err := entity.Ask(ctx, ref, Add{N: -1})
	if !errors.Is(err, errNegative) {
		t.Errorf("Add -1: err %v, want errNegative", err)
	}
	if got := ask(t, ref, Noop{}); got != (struct{}{}) {
		t.Errorf("Noop: reply %v", got)
	}
	_, err = entity.Ask(ctx, ref, AddThenFail{N: 100})
	if err == nil || err.Error() != "changed my mind" {
		t.Errorf("AddThenFail: err %v, want the handler's error", err)
	}
	want := Counter{Value: 8, History: []int{2, 5, 8}}
	if got := ask(t, ref, Get{}); !reflect.DeepEqual(got, want) {
		t.Errorf("state after reject: got %+v, want %+v (a rejected command must change nothing)", got, want)
	}
	recs := records(t, log, "c1")
	if got, want := seqs(recs), []uint64{1, 2, 3}; !slices.Equal(got, want) {
		t.Fatalf("log seqs %v, want %v", got, want)
	}
	for i, wantData := range []string{`{"n":2}`, `{"n":3}`, `{"n":3}`} {
		if recs[i].Name != "Added" || string(recs[i].Data) != wantData || recs[i].EntityType != "Counter" || recs[i].EntityID != "c1" {
			t.Errorf("record %d = %+v, want Counter/c1 Added %s", i, recs[i], wantData)
		}
	}
}

func TestRecoveryFromLog(t *testing.T) {
	log := eventlog.NewMemory()
	sys := newSystem(t, log)
	k := register(t, sys)
	for i := 1; i <= 5; i++ {
		ask(t, k.Ref("r"), Add{N: i})
	}
	if err := sys.Shutdown(context.Background()); err != nil {
		t.Fatalf("Shutdown: %v", err)
	}
	k2 := register(t, newSystem(t, log))
	want := Counter{Value: 15, History: []int{1, 3, 6, 10, 15}}
	if got := ask(t, k2.Ref("r"), Get{}); !reflect.DeepEqual(got, want) {
		t.Errorf("recovered %+v, want %+v", got, want)
	}
	if got := ask(t, k2.Ref("r"), Add{N: 1}); got != 16 {
		t.Errorf("Add after recovery: %d, want 16", got)
	}
}

func TestSnapshotEveryAndTailRecovery(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		mem := eventlog.NewMemory()
		log := &flakyLog{Log: mem}
		store := &flakyStore{Store: snapshotstore.NewMemory()}
		sys := newSystem(t, log, entity.WithSnapshotStore(store))
		k := register(t, sys, entity.WithSnapshotEvery(10), entity.WithKeepSnapshots(1))
		for range 25 {
			ask(t, k.Ref("s"), Add{N: 1})
			synctest.Wait()
		}
		if got, want := store.savedSeqs(), []uint64{10, 20}; !slices.Equal(got, want) {
			t.Errorf("snapshots saved at %v, want %v", got, want)
		}
		if err := sys.Shutdown(context.Background()); err != nil {
			t.Fatal(err)
		}

		log2 := &flakyLog{Log: mem}
		sys2 := newSystem(t, log2, entity.WithSnapshotStore(store))
		k2 := register(t, sys2, entity.WithSnapshotEvery(10))
		if got := ask(t, k2.Ref("s"), Get{}).Value; got != 25 {
			t.Errorf("recovered value %d, want 25", got)
		}
		if got, want := log2.readsFrom(), []uint64{21}; !slices.Equal(got, want) {
			t.Errorf("recovery read events from %v, want %v: it must start after the snapshot", got, want)
		}
		sys2.Close()
	})
}

func TestSnapshotFailureNeverFailsCommands(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		store := &flakyStore{Store: snapshotstore.NewMemory(), failSaves: 2}
		logged := &recordingHandler{}
		sys := newSystem(t, eventlog.NewMemory(), entity.WithSnapshotStore(store), entity.WithLogger(slog.New(logged)))
		k := register(t, sys, entity.WithSnapshotEvery(3))
		for i := 1; i <= 9; i++ {
			if got := ask(t, k.Ref("f"), Add{N: 1}); got != i {
				t.Fatalf("Add %d: reply %d", i, got)
			}
			synctest.Wait() // the snapshot attempt, if any, has finished
		}
		// Seq 3 and 4 fail (4 is the retry after the next persist), 5
		// succeeds, then every 3 events: 8.
		if got, want := store.savedSeqs(), []uint64{5, 8}; !slices.Equal(got, want) {
			t.Errorf("saved snapshots at %v, want %v", got, want)
		}
		if n := logged.count("entity: save snapshot"); n != 2 {
			t.Errorf("logged %d snapshot failures, want 2", n)
		}
		sys.Close()
	})
}

func TestPassivation(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		log := eventlog.NewMemory()
		sys := newSystem(t, log)
		k := register(t, sys, entity.WithPassivateAfter(time.Minute))
		ask(t, k.Ref("idle"), Add{N: 1})
		ask(t, k.Ref("busy"), Add{N: 1})
		for range 4 {
			time.Sleep(20 * time.Second)
			ask(t, k.Ref("busy"), Add{N: 1})
		}
		synctest.Wait()
		if got := k.Live(); got != 1 {
			t.Fatalf("after 80 s: %d live entities, want 1 (idle passivated, busy kept)", got)
		}
		time.Sleep(2 * time.Minute)
		synctest.Wait()
		if got := k.Live(); got != 0 {
			t.Fatalf("after 200 s: %d live entities, want 0", got)
		}
		if got := ask(t, k.Ref("idle"), Add{N: 1}); got != 2 {
			t.Errorf("reactivated entity: %d, want 2 (recovered from the log)", got)
		}
		if got := k.Live(); got != 1 {
			t.Errorf("after reactivation: %d live, want 1", got)
		}
		if err := sys.Shutdown(context.Background()); err != nil {
			t.Fatal(err)
		}
	})
}

// recordingHandler is a slog.Handler that keeps the messages it gets.
type recordingHandler struct {
	mu   sync.Mutex // guards msgs
	msgs []string
}

func (h *recordingHandler) Enabled(context.Context, slog.Level) bool { return true }
func (h *recordingHandler) Handle(_ context.Context, r slog.Record) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.msgs = append(h.msgs, r.Message)
	return nil
}
func (h *recordingHandler) WithAttrs([]slog.Attr) slog.Handler { return h }
func (h *recordingHandler) WithGroup(string) slog.Handler      { return h }
func (h *recordingHandler) count(msg string) int {
	h.mu.Lock()
	defer h.mu.Unlock()
	n := 0
	for _, m := range h.msgs {
		if m == msg {
			n++
		}
	}
	return n
}

func TestDeleteEventsOnSnapshot(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		mem := eventlog.NewMemory()
		store := snapshotstore.NewMemory()
		sys := newSystem(t, mem, entity.WithSnapshotStore(store))
		k := register(t, sys, entity.WithSnapshotEvery(5), entity.WithDeleteEventsOnSnapshot())
		for range 12 {
			ask(t, k.Ref("d"), Add{N: 1})
			synctest.Wait()
		}
		if got := seqs(records(t, mem, "d")); !slices.Equal(got, []uint64{11, 12}) {
			t.Errorf("events left after snapshots at 5 and 10: %v, want [11 12]", got)
		}
		if err := sys.Shutdown(context.Background()); err != nil {
			t.Fatal(err)
		}
		sys2 := newSystem(t, mem, entity.WithSnapshotStore(store))
		k2 := register(t, sys2, entity.WithSnapshotEvery(5))
		if got := ask(t, k2.Ref("d"), Add{N: 1}); got != 13 {
			t.Errorf("after deleting covered events: reply %d, want 13", got)
		}
		sys2.Close()
	})
}

// Bag's Apply mutates its map in place, as Go code often does. A command
// that persists and then rejects must still leave no trace.
type Bag struct{ Items map[string]int }

type BagEvent interface{ bagEvent() }

type Put struct{ Key string }

func (Put) bagEvent() {}

type PutThenFail struct{ Key string }

func (c PutThenFail) Handle(tx *entity.Tx[Bag, BagEvent]) (int, error) {
	tx.Persist(Put{c.Key})
	return 0, errors.New("no")
}

type Count struct{}

func (Count) Handle(tx *entity.Tx[Bag, BagEvent]) (int, error) { return len(tx.State().Items), nil }

type PutOK struct{ Key string }

func (c PutOK) Handle(tx *entity.Tx[Bag, BagEvent]) (int, error) {
	return len(tx.Persist(Put{c.Key}).Items), nil
}

func TestRejectAfterPersistWithInPlaceApply(t *testing.T) {
	events := binarize.NewRegistry[BagEvent](binarize.JSON)
	binarize.MustRegister[Put](events, "Put")
	bags, err := entity.Register(newSystem(t, eventlog.NewMemory()), entity.Type[Bag, BagEvent]{
		Name:    "Bag",
		Initial: func() Bag { return Bag{Items: map[string]int{}} },
		Apply: func(s Bag, e BagEvent) Bag {
			s.Items[e.(Put).Key]++ // in place
			return s
		},
		Events: events,
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	ref := bags.Ref("b")
	if n, err := entity.Ask(ctx, ref, PutOK{"a"}); n != 1 || err != nil {
		t.Fatalf("PutOK: %d, %v", n, err)
	}
	if _, err := entity.Ask(ctx, ref, PutThenFail{"b"}); err == nil {
		t.Fatal("PutThenFail succeeded")
	}
	if n, err := entity.Ask(ctx, ref, Count{}); n != 1 || err != nil {
		t.Errorf("items after a rejected command: %d (%v), want 1: its in-place Apply must be undone", n, err)
	}
}

func TestPersistFailureRecoversFromLog(t *testing.T) {
	cases := []struct {
		name   string
		fault  func(l *flakyLog)
		opts   []entity.KindOption
		landed bool
		cause  error
	}{
		{"write lost reply", func(l *flakyLog) { l.failAfterWrite = 1 }, nil, true, errInjected},
		{"write refused", func(l *flakyLog) { l.failBeforeWrite = 1 }, nil, false, errInjected},
		{"timeout after write", func(l *flakyLog) { l.hangAfterWrite = 1 }, []entity.KindOption{entity.WithStoreTimeout(20 * time.Millisecond)}, true, context.DeadlineExceeded},
	}
	// Each case runs on a log with synchronous appends only, and on one
	// whose AppendAsync settles on another goroutine (asyncLog).
	logs := []struct {
		name string
		new  func() (eventlog.Log, *flakyLog)
	}{
		{"sync", func() (eventlog.Log, *flakyLog) { l := &flakyLog{Log: eventlog.NewMemory()}; return l, l }},
		{"async", func() (eventlog.Log, *flakyLog) { l := newAsyncLog(); return l, l.flakyLog }},
	}
	for _, lc := range logs {
		for _, tc := range cases {
			t.Run(lc.name+"/"+tc.name, func(t *testing.T) {
				l, log := lc.new()
				testPersistFailure(t, l, log, tc.fault, tc.opts, tc.landed, tc.cause)
			})
		}
	}
}

// testPersistFailure is one case of TestPersistFailureRecoversFromLog: l
// is the log the System uses, log the flakyLog beneath it.
func testPersistFailure(t *testing.T, l eventlog.Log, log *flakyLog, fault func(*flakyLog), opts []entity.KindOption, landed bool, cause error) {
	k := register(t, newSystem(t, l), opts...)
	ref := k.Ref("p")
	ask(t, ref, Add{N: 1})
	log.set(fault)
	_, err := entity.Ask(context.Background(), ref, Add{N: 10})
	var pe *entity.PersistError
	if !errors.As(err, &pe) || !errors.Is(err, cause) || pe.FirstSeq != 2 || pe.EntityID != "p" {
		t.Fatalf("failed append: err %v, want *PersistError at seq 2 wrapping %v", err, cause)
	}
	want := 1
	if landed {
		want = 11
	}
	if got := ask(t, ref, Get{}).Value; got != want {
		t.Errorf("state after failure: %d, want %d (the log decides)", got, want)
	}
	// The next command appends after whatever landed: no conflict, no double apply.
	if got := ask(t, ref, Add{N: 100}); got != want+100 {
		t.Errorf("next Add: %d, want %d", got, want+100)
	}
	if got, wantN := len(records(t, log, "p")), map[bool]int{true: 3, false: 2}[landed]; got != wantN {
		t.Errorf("log has %d events, want %d", got, wantN)
	}
}

func TestConflictWithAnotherWriterRecovers(t *testing.T) {
	t.Run("sync", func(t *testing.T) { testConflictRecovers(t, eventlog.NewMemory()) })
	t.Run("async", func(t *testing.T) { testConflictRecovers(t, newAsyncLog()) })
}

// testConflictRecovers is TestConflictWithAnotherWriterRecovers on mem.
func testConflictRecovers(t *testing.T, mem eventlog.Log) {
	k := register(t, newSystem(t, mem))
	ref := k.Ref("x")
	ask(t, ref, Add{N: 1})
	// Another process writes seq 2 behind the entity's back.
	_, _, raw, _ := counterEvents().Encode(Added{N: 5})
	if _, err := mem.Append(context.Background(), "Counter", "x", 1, eventlog.Event{Name: "Added", Data: raw}); err != nil {
		t.Fatal(err)
	}
	_, err := entity.Ask(context.Background(), ref, Add{N: 10})
	var ce *eventlog.ConflictError
	if !errors.Is(err, entity.ErrPersist) || !errors.As(err, &ce) || ce.Expected != 1 || ce.Actual != 2 {
		t.Fatalf("stale write: err %v, want a PersistError wrapping ConflictError{1, 2}", err)
	}
	if got := ask(t, ref, Add{N: 10}); got != 16 {
		t.Errorf("after conflict: %d, want 16 (recovered the other writer's event)", got)
	}
}

func TestBatchingPersistsWaitingCommandsTogether(t *testing.T) {
	for _, tc := range []struct {
		name     string
		maxBatch int
	}{{"batching on", 256}, {"batching off", 1}} {
		t.Run(tc.name, func(t *testing.T) {
			gate := make(chan struct{})
			log := &flakyLog{Log: eventlog.NewMemory(), gate: gate}
			k := register(t, newSystem(t, log), entity.WithMaxBatch(tc.maxBatch))
			ref := k.Ref("hot")
			const n = 50
			replies := make([]int, n)
			var wg sync.WaitGroup
			// The first command holds the actor in Append; the rest queue up.
			wg.Go(func() { replies[0] = ask(t, ref, Add{N: 1}) })
			eventually(t, "first command in flight", func() bool { return log.held.Load() == 1 })
			for i := 1; i < n; i++ {
				wg.Go(func() { replies[i] = ask(t, ref, Add{N: 1}) })
			}
			eventually(t, "the others queued", func() bool { return entity.Queued(k, "hot") == n-1 })
			close(gate)
			wg.Wait()
			slices.Sort(replies)
			for i, r := range replies {
				if r != i+1 {
					t.Fatalf("replies %v: every command must see the state after the ones before it", replies)
				}
			}
			appends := int(log.appends.Load())
			if tc.maxBatch == 1 && appends != n {
				t.Errorf("batching off: %d appends, want %d", appends, n)
			}
			if tc.maxBatch > 1 && appends > 3 {
				t.Errorf("batching on: %d appends for %d waiting commands, want at most 3", appends, n)
			}
			if got := seqs(records(t, log, "hot")); len(got) != n || got[n-1] != n {
				t.Errorf("log seqs %v, want 1..%d", got, n)
			}
		})
	}
}

func TestBatchFailureFailsEveryCommand(t *testing.T) {
	gate := make(chan struct{})
	log := &flakyLog{Log: eventlog.NewMemory(), gate: gate}
	k := register(t, newSystem(t, log))
	ref := k.Ref("b")
	var wg sync.WaitGroup
	errs := make([]error, 20)
	wg.Go(func() { _, errs[0] = entity.Ask(context.Background(), ref, Add{N: 1}) })
	eventually(t, "first command in flight", func() bool { return log.held.Load() == 1 })
	for i := 1; i < len(errs); i++ {
		wg.Go(func() {
			var cmd entity.Command[Counter, CounterEvent, int] = Add{N: 1}
			if i == 7 {
				cmd = Add{N: -1} // rejected inside the failing batch
			}
			_, errs[i] = entity.Ask(context.Background(), ref, cmd)
		})
	}
	eventually(t, "the others queued", func() bool { return entity.Queued(k, "b") == len(errs)-1 })
	log.set(func(l *flakyLog) { l.failBeforeWrite = 1; l.gate = nil })
	close(gate)
	wg.Wait()
	if errs[0] != nil {
		t.Fatalf("first command: %v", errs[0])
	}
	for i, err := range errs[1:] {
		if !errors.Is(err, errInjected) {
			t.Errorf("command %d of the failed batch: err %v, want the append's error", i+1, err)
		}
	}
	if got := ask(t, ref, Get{}).Value; got != 1 {
		t.Errorf("state after failed batch: %d, want 1", got)
	}
}

func TestMailboxFull(t *testing.T) {
	gate := make(chan struct{})
	log := &flakyLog{Log: eventlog.NewMemory(), gate: gate}
	k := register(t, newSystem(t, log), entity.WithMailboxSize(2))
	ref := k.Ref("m")
	var wg sync.WaitGroup
	wg.Go(func() { ask(t, ref, Add{N: 1}) })
	eventually(t, "first command in flight", func() bool { return log.held.Load() == 1 })
	wg.Go(func() { ask(t, ref, Add{N: 1}) })
	wg.Go(func() { ask(t, ref, Add{N: 1}) })
	eventually(t, "two commands queued", func() bool { return entity.Queued(k, "m") == 2 })
	_, err := entity.Ask(context.Background(), ref, Add{N: 1})
	if !errors.Is(err, entity.ErrMailboxFull) || !strings.Contains(err.Error(), "Counter/m has 2 commands waiting") {
		t.Errorf("third waiting command: err %v, want ErrMailboxFull naming Counter/m", err)
	}
	close(gate)
	wg.Wait()
	if got := ask(t, ref, Get{}).Value; got != 3 {
		t.Errorf("value %d, want 3", got)
	}
}

func TestPanicIsRecovered(t *testing.T) {
	log := eventlog.NewMemory()
	k := register(t, newSystem(t, log))
	ask(t, k.Ref("p"), Add{N: 1})
	ask(t, k.Ref("other"), Add{N: 1})

	_, err := entity.Ask(context.Background(), k.Ref("p"), Boom{})
	var pe *entity.PanicError
	if !errors.As(err, &pe) || pe.Value != "boom" || pe.EntityID != "p" || len(pe.Stack) == 0 {
		t.Fatalf("panicking handler: err %v, want *PanicError{boom}", err)
	}
	_, err = entity.Ask(context.Background(), k.Ref("p"), Add{N: 666}) // Apply panics
	if !errors.As(err, &pe) || pe.Value != "apply 666" {
		t.Fatalf("panicking Apply: err %v, want *PanicError{apply 666}", err)
	}
	if got := ask(t, k.Ref("p"), Add{N: 1}); got != 2 {
		t.Errorf("after panics: %d, want 2", got)
	}
	if got := ask(t, k.Ref("other"), Add{N: 1}); got != 2 {
		t.Errorf("other entity: %d, want 2", got)
	}
	if n := len(records(t, log, "p")); n != 2 {
		t.Errorf("log has %d events, want 2", n)
	}
}

func TestRecoveryErrors(t *testing.T) {
	ctx := context.Background()
	t.Run("undecodable event", func(t *testing.T) {
		mem := eventlog.NewMemory()
		_, _, raw, _ := counterEvents().Encode(Added{N: 1})
		mem.Append(ctx, "Counter", "bad", 0, eventlog.Event{Name: "Added", Data: raw}, eventlog.Event{Name: "Exploded", Data: []byte("{}")})
		k := register(t, newSystem(t, mem))
		_, err := entity.Ask(ctx, k.Ref("bad"), Add{N: 1})
		var re *entity.RecoveryError
		if !errors.As(err, &re) || re.Seq != 2 || re.EntityID != "bad" || !strings.Contains(err.Error(), "recover Counter/bad at seq 2") || !strings.Contains(err.Error(), "Exploded") {
			t.Fatalf("err %v, want RecoveryError naming Counter/bad, seq 2 and the event name", err)
		}
		if n := len(records(t, mem, "bad")); n != 2 {
			t.Errorf("log has %d events, want 2: nothing may be appended to an unrecovered entity", n)
		}
	})
	t.Run("undecodable snapshot", func(t *testing.T) {
		store := snapshotstore.NewMemory()
		store.Save(ctx, snapshotstore.Snapshot{EntityType: "Counter", EntityID: "s", Seq: 4, Data: []byte("not json")}, 1)
		k := register(t, newSystem(t, eventlog.NewMemory(), entity.WithSnapshotStore(store)), entity.WithSnapshotEvery(10))
		_, err := entity.Ask(ctx, k.Ref("s"), Get{})
		var re *entity.RecoveryError
		if !errors.As(err, &re) || re.Seq != 4 || !errors.Is(err, entity.ErrUnusableSnapshot) || !strings.Contains(err.Error(), "recover Counter/s at seq 4: entity: unusable snapshot: snapshot at seq 4, state rev 0, cannot be read") || !strings.Contains(err.Error(), "events 1 to 4, which it covers, are no longer in the log") {
			t.Fatalf("err %v, want RecoveryError at the snapshot's seq 4 saying its events are gone", err)
		}
	})
	t.Run("apply panics on replay", func(t *testing.T) {
		mem := eventlog.NewMemory()
		_, _, raw, _ := counterEvents().Encode(Added{N: 666})
		mem.Append(ctx, "Counter", "a", 0, eventlog.Event{Name: "Added", Data: raw})
		k := register(t, newSystem(t, mem))
		_, err := entity.Ask(ctx, k.Ref("a"), Get{})
		if !errors.Is(err, entity.ErrRecovery) || !errors.Is(err, entity.ErrPanic) {
			t.Fatalf("err %v, want a RecoveryError wrapping a PanicError", err)
		}
	})
	t.Run("gap", func(t *testing.T) {
		mem := eventlog.NewMemory()
		_, _, raw, _ := counterEvents().Encode(Added{N: 1})
		mem.Append(ctx, "Counter", "g", 0, eventlog.Event{Name: "Added", Data: raw}, eventlog.Event{Name: "Added", Data: raw})
		mem.DeleteTo(ctx, "Counter", "g", 1)
		k := register(t, newSystem(t, mem))
		_, err := entity.Ask(ctx, k.Ref("g"), Get{})
		if !errors.Is(err, entity.ErrRecovery) || !strings.Contains(err.Error(), "event seq 2 follows seq 0") {
			t.Fatalf("err %v, want a RecoveryError naming the gap", err)
		}
	})
}

func TestMetadataLandsOnEvents(t *testing.T) {
	log := eventlog.NewMemory()
	k := register(t, newSystem(t, log))
	ctx := entity.WithMetadata(context.Background(), map[string]string{entity.CorrelationID: "corr-1"})
	ctx = entity.WithMetadata(ctx, map[string]string{entity.CausationID: "cmd-9"})
	got, err := entity.Ask(ctx, k.Ref("md"), Meta{})
	want := map[string]string{entity.CorrelationID: "corr-1", entity.CausationID: "cmd-9"}
	if err != nil || !reflect.DeepEqual(got, want) {
		t.Fatalf("handler saw metadata %v (err %v), want %v", got, err, want)
	}
	if recs := records(t, log, "md"); len(recs) != 1 || !reflect.DeepEqual(recs[0].Metadata, want) {
		t.Errorf("event metadata %v, want %v", recs, want)
	}
}

func TestManyEntitiesConcurrently(t *testing.T) {
	log := eventlog.NewMemory()
	k := register(t, newSystem(t, log))
	const entities, callers, each = 20, 8, 25
	var wg sync.WaitGroup
	for c := 0; c < callers; c++ {
		wg.Go(func() {
			for i := 0; i < each; i++ {
				for e := 0; e < entities; e++ {
					if _, err := entity.Ask(context.Background(), k.Ref(fmt.Sprint("e", e)), Add{N: 1}); err != nil {
						t.Errorf("Ask: %v", err)
						return
					}
				}
			}
		})
	}
	wg.Wait()
	for e := 0; e < entities; e++ {
		id := fmt.Sprint("e", e)
		if got := ask(t, k.Ref(id), Get{}).Value; got != callers*each {
			t.Errorf("%s = %d, want %d", id, got, callers*each)
		}
		if got := seqs(records(t, log, id)); len(got) != callers*each || got[len(got)-1] != callers*each {
			t.Errorf("%s: log seqs not 1..%d", id, callers*each)
		}
	}
}

func TestShutdown(t *testing.T) {
	gate := make(chan struct{})
	log := &flakyLog{Log: eventlog.NewMemory(), gate: gate}
	sys := newSystem(t, log)
	k := register(t, sys)
	var wg sync.WaitGroup
	var got int
	var askErr error
	wg.Go(func() { got, askErr = entity.Ask(context.Background(), k.Ref("s"), Add{N: 7}) })
	eventually(t, "command in flight", func() bool { return k.Live() == 1 })
	done := make(chan error)
	go func() { done <- sys.Shutdown(context.Background()) }()
	select {
	case err := <-done:
		t.Fatalf("Shutdown returned %v before the accepted command was answered", err)
	case <-time.After(20 * time.Millisecond):
	}
	if _, err := entity.Ask(context.Background(), k.Ref("s"), Add{N: 1}); !errors.Is(err, entity.ErrClosed) {
		t.Errorf("Ask during Shutdown: %v, want ErrClosed", err)
	}
	close(gate)
	if err := <-done; err != nil {
		t.Fatalf("Shutdown: %v", err)
	}
	wg.Wait()
	if askErr != nil || got != 7 {
		t.Errorf("drained command: %d, %v; want 7, nil", got, askErr)
	}
	if _, err := entity.Ask(context.Background(), k.Ref("t"), Add{N: 1}); !errors.Is(err, entity.ErrClosed) {
		t.Errorf("Ask after Shutdown: %v, want ErrClosed", err)
	}
	if _, err := entity.Register(sys, counterType()); !errors.Is(err, entity.ErrClosed) {
		t.Errorf("Register after Shutdown: %v, want ErrClosed", err)
	}
}

func TestShutdownTimeoutClosesWaitingCommands(t *testing.T) {
	gate := make(chan struct{})
	log := &flakyLog{Log: eventlog.NewMemory(), gate: gate}
	sys := newSystem(t, log)
	k := register(t, sys)
	var wg sync.WaitGroup
	wg.Go(func() { entity.Ask(context.Background(), k.Ref("s"), Add{N: 1}) })
	eventually(t, "command in flight", func() bool { return log.held.Load() == 1 })
	var waitingErr error
	waited := make(chan struct{})
	wg.Go(func() {
		_, waitingErr = entity.Ask(context.Background(), k.Ref("s"), Add{N: 1})
		close(waited)
	})
	eventually(t, "a command queued", func() bool { return entity.Queued(k, "s") == 1 })
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	// Close, which Shutdown calls when ctx ends, fails the waiting command
	// and then waits for the one in flight: let that one go on then.
	go func() { <-waited; close(gate) }()
	if err := sys.Shutdown(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Shutdown: %v, want DeadlineExceeded", err)
	}
	wg.Wait()
	if !errors.Is(waitingErr, entity.ErrClosed) {
		t.Errorf("command waiting at Close: %v, want ErrClosed", waitingErr)
	}
}

func TestAskCanceledBeforeStartNeverRuns(t *testing.T) {
	gate := make(chan struct{})
	log := &flakyLog{Log: eventlog.NewMemory(), gate: gate}
	k := register(t, newSystem(t, log))
	ref := k.Ref("c")
	var wg sync.WaitGroup
	wg.Go(func() { ask(t, ref, Add{N: 1}) })
	eventually(t, "command in flight", func() bool { return log.held.Load() == 1 })
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Millisecond)
	defer cancel()
	if _, err := entity.Ask(ctx, ref, Add{N: 100}); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Ask: %v, want DeadlineExceeded", err)
	}
	close(gate)
	wg.Wait()
	if got := ask(t, ref, Get{}).Value; got != 1 {
		t.Errorf("value %d, want 1: a command abandoned before it started must not run", got)
	}
	canceled, cancelNow := context.WithCancel(context.Background())
	cancelNow()
	if _, err := entity.Ask(canceled, ref, Add{N: 1}); !errors.Is(err, context.Canceled) {
		t.Errorf("Ask with a canceled ctx: %v", err)
	}
}

func TestInvalidUse(t *testing.T) {
	mem := eventlog.NewMemory()
	sys := newSystem(t, mem)
	valid := counterType()
	noName := valid
	noName.Name = ""
	noApply := valid
	noApply.Apply = nil
	noEvents := valid
	noEvents.Events = nil
	noState := valid
	noState.State = nil
	withStore := newSystem(t, mem, entity.WithSnapshotStore(snapshotstore.NewMemory()))
	register(t, sys)
	cases := []struct {
		name string
		sys  *entity.System
		def  entity.Type[Counter, CounterEvent]
		opts []entity.KindOption
		want string
	}{
		{"no name", sys, noName, nil, "entity type has no Name"},
		{"no apply", sys, noApply, nil, `entity type "Counter" has no Apply`},
		{"no events codec", sys, noEvents, nil, `entity type "Counter" has no Events codec`},
		{"duplicate", sys, valid, nil, `entity type "Counter" is already registered`},
		{"snapshots without store", newSystem(t, mem), valid, []entity.KindOption{entity.WithSnapshotEvery(5)}, "needs a System WithSnapshotStore"},
		{"snapshots without codec", withStore, noState, []entity.KindOption{entity.WithSnapshotEvery(5)}, "needs a State codec"},
		{"negative snapshot", newSystem(t, mem), valid, []entity.KindOption{entity.WithSnapshotEvery(-1)}, "WithSnapshotEvery(-1)"},
		{"zero mailbox", newSystem(t, mem), valid, []entity.KindOption{entity.WithMailboxSize(0)}, "WithMailboxSize(0)"},
		{"zero batch", newSystem(t, mem), valid, []entity.KindOption{entity.WithMaxBatch(0)}, "WithMaxBatch(0)"},
		{"zero timeout", newSystem(t, mem), valid, []entity.KindOption{entity.WithStoreTimeout(0)}, "WithStoreTimeout(0s)"},
		{"delete without snapshots", newSystem(t, mem), valid, []entity.KindOption{entity.WithDeleteEventsOnSnapshot()}, "needs WithSnapshotEvery"},
		{"delete unsupported", newSystem(t, noDeleteLog{mem}, entity.WithSnapshotStore(snapshotstore.NewMemory())), valid, []entity.KindOption{entity.WithSnapshotEvery(5), entity.WithDeleteEventsOnSnapshot()}, "cannot delete events"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := entity.Register(tc.sys, tc.def, tc.opts...)
			if !errors.Is(err, entity.ErrInvalid) || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("Register: %v, want ErrInvalid containing %q", err, tc.want)
			}
		})
	}
	if _, err := entity.NewSystem(nil); !errors.Is(err, entity.ErrInvalid) {
		t.Errorf("NewSystem(nil): %v", err)
	}
	if _, err := entity.NewSystem(mem, entity.WithSnapshotStore(nil)); !errors.Is(err, entity.ErrInvalid) {
		t.Errorf("WithSnapshotStore(nil): %v", err)
	}
	k := register(t, newSystem(t, mem))
	if _, err := entity.Ask(context.Background(), k.Ref(""), Add{N: 1}); !errors.Is(err, entity.ErrInvalid) || !strings.Contains(err.Error(), "empty entity id") {
		t.Errorf("empty id: %v", err)
	}
	// One id rule on every backend (eventlog.ValidateStream), checked
	// before the entity activates: the message quotes a bounded prefix.
	long := strings.Repeat("x", 10<<10)
	_, err := entity.Ask(context.Background(), k.Ref(long), Add{N: 1})
	if !errors.Is(err, entity.ErrInvalid) || !errors.Is(err, eventlog.ErrInvalid) || !strings.Contains(err.Error(), "10240 bytes, over the limit of 255") || len(err.Error()) > 300 {
		t.Errorf("a 10 KB id: %.300v, want ErrInvalid naming the limit and the length in a short message", err)
	}
	if k.Live() != 0 {
		t.Errorf("%d live entities after refused ids, want 0", k.Live())
	}
	longType := valid
	longType.Name = strings.Repeat("T", 256)
	if _, err := entity.Register(newSystem(t, mem), longType); !errors.Is(err, entity.ErrInvalid) || !strings.Contains(err.Error(), "over the limit of 255") {
		t.Errorf("a 256-byte type name: %v, want ErrInvalid naming the limit", err)
	}
	if _, err := entity.Ask(context.Background(), entity.Ref[Counter, CounterEvent]{}, Add{N: 1}); !errors.Is(err, entity.ErrInvalid) {
		t.Errorf("zero Ref: %v", err)
	}
	var nilCmd entity.Command[Counter, CounterEvent, int]
	if _, err := entity.Ask(context.Background(), k.Ref("x"), nilCmd); !errors.Is(err, entity.ErrInvalid) {
		t.Errorf("nil command: %v", err)
	}
}

type noDeleteLog struct{ eventlog.Log }

func TestUnregisteredEventFailsCommandOnly(t *testing.T) {
	log := eventlog.NewMemory()
	k := register(t, newSystem(t, log))
	ask(t, k.Ref("u"), Add{N: 1})
	_, err := entity.Ask(context.Background(), k.Ref("u"), persistRaw{unregistered{}})
	if err == nil || !strings.Contains(err.Error(), "encode event entity_test.unregistered of Counter/u at seq 2") {
		t.Fatalf("err %v, want an encode error naming the event type, entity and seq", err)
	}
	if got := ask(t, k.Ref("u"), Add{N: 1}); got != 2 {
		t.Errorf("after encode failure: %d, want 2", got)
	}
}

type unregistered struct{}

func (unregistered) counterEvent() {}

type persistRaw struct{ e CounterEvent }

func (c persistRaw) Handle(tx *entity.Tx[Counter, CounterEvent]) (int, error) {
	return tx.Persist(c.e).Value, nil
}

// TestAskPositionInBatches: every command of a batched append gets a
// Position at or after its own event's, the last of its append.
func TestAskPositionInBatches(t *testing.T) {
	gate := make(chan struct{})
	log := &flakyLog{Log: eventlog.NewMemory(), gate: gate}
	k := register(t, newSystem(t, log))
	ref := k.Ref("hot")
	const n = 20
	type res struct {
		value int
		pos   uint64
	}
	results := make([]res, n)
	var wg sync.WaitGroup
	ask1 := func(i int) {
		v, pos, err := entity.AskPosition(context.Background(), ref, Add{N: 1})
		if err != nil {
			t.Errorf("AskPosition: %v", err)
		}
		results[i] = res{v, pos}
	}
	wg.Go(func() { ask1(0) })
	eventually(t, "first command in flight", func() bool { return log.held.Load() == 1 })
	for i := 1; i < n; i++ {
		wg.Go(func() { ask1(i) })
	}
	eventually(t, "the others queued", func() bool { return entity.Queued(k, "hot") == n-1 })
	close(gate)
	wg.Wait()
	bySeq := map[uint64]uint64{}
	var last uint64
	for _, rec := range records(t, log, "hot") {
		bySeq[rec.Seq] = rec.Position
		last = max(last, rec.Position)
	}
	appendEnds := map[uint64]bool{}
	for _, r := range results {
		own := bySeq[uint64(r.value)]
		if r.pos < own || r.pos > last {
			t.Fatalf("command whose event is seq %d at position %d got position %d (last %d)", r.value, own, r.pos, last)
		}
		appendEnds[r.pos] = true
	}
	if appends := int(log.appends.Load()); len(appendEnds) != appends {
		t.Fatalf("%d distinct positions for %d appends: each command gets its append's last Position", len(appendEnds), appends)
	}
}
