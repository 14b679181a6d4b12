package entity_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/eventsourced-go/eventsourced/binarize"
	"github.com/eventsourced-go/eventsourced/entity"
	"github.com/eventsourced-go/eventsourced/eventlog"
	"github.com/eventsourced-go/eventsourced/snapshotstore"
	"github.com/eventsourced-go/eventsourced/testkit"
)

// keyed returns a context giving commands the idempotency key key.
func keyed(key string) context.Context {
	return entity.WithIdempotencyKey(context.Background(), key)
}

// askKeyed asks cmd with key and fails the test on an error.
func askKeyed[R any](t *testing.T, ref entity.Ref[Counter, CounterEvent], key string, cmd entity.Command[Counter, CounterEvent, R]) (R, uint64) {
	t.Helper()
	r, pos, err := entity.AskPosition(keyed(key), ref, cmd)
	if err != nil {
		t.Fatalf("Ask %s %T with key %q: %v", ref, cmd, key, err)
	}
	return r, pos
}

// lastSeq returns the log's last Seq of Counter id.
func lastSeq(t *testing.T, log eventlog.Log, id string) uint64 {
	t.Helper()
	seq, err := log.LastSeq(context.Background(), "Counter", id)
	if err != nil {
		t.Fatal(err)
	}
	return seq
}

// ns returns the N of the Added events of recs.
func ns(t *testing.T, recs []eventlog.Record) []int {
	t.Helper()
	var out []int
	for _, r := range recs {
		e, err := counterEvents().Decode(r.Name, r.Revision, r.Data)
		if err != nil {
			t.Fatal(err)
		}
		if a, ok := e.(Added); ok {
			out = append(out, a.N)
		}
	}
	return out
}

// A command sent again with a key the entity recorded is answered with its
// first reply and Position, and appends nothing.
func TestIdempotentResendAnsweredFromFirstOutcome(t *testing.T) {
	mem := eventlog.NewMemory()
	k := register(t, newSystem(t, mem), entity.WithIdempotency())
	ref := k.Ref("c")

	first, firstPos := askKeyed(t, ref, "k1", Add{N: 5})
	if first != 5 {
		t.Fatalf("first reply %d, want 5", first)
	}
	ask(t, ref, Add{N: 1}) // unkeyed: the state moves on
	again, againPos := askKeyed(t, ref, "k1", Add{N: 5})
	if again != 5 || againPos != firstPos {
		t.Errorf("re-send answered (%d, pos %d), want the first outcome (5, pos %d)", again, againPos, firstPos)
	}
	if got := ask(t, ref, Get{}).Value; got != 6 {
		t.Errorf("value %d after the re-send, want 6: the re-send must not apply", got)
	}
	recs := records(t, mem, "c")
	if got, want := ns(t, recs), []int{5, 1}; !slices.Equal(got, want) {
		t.Errorf("log holds Added %v, want %v", got, want)
	}
	if got := lastSeq(t, mem, "c"); got != 2 {
		t.Errorf("last Seq %d, want 2", got)
	}
	if md := recs[0].Metadata; md[entity.IdempotencyKeyMetadata] != "k1" || md[entity.IdempotencyReplyMetadata] != "5" {
		t.Errorf("the keyed event's metadata is %v, want key k1 and reply 5", md)
	}
	if _, ok := recs[1].Metadata[entity.IdempotencyKeyMetadata]; ok {
		t.Errorf("an unkeyed command's event records a key: %v", recs[1].Metadata)
	}

	// A command of several events records its key on the last one only.
	if got, _ := askKeyed(t, ref, "k2", AddTwice{N: 10}); got != 26 {
		t.Fatalf("AddTwice replied %d, want 26", got)
	}
	if got, _ := askKeyed(t, ref, "k2", AddTwice{N: 10}); got != 26 {
		t.Errorf("AddTwice re-sent replied %d, want 26", got)
	}
	recs = records(t, mem, "c")
	if len(recs) != 4 {
		t.Fatalf("log holds %d events, want 4", len(recs))
	}
	if _, ok := recs[2].Metadata[entity.IdempotencyKeyMetadata]; ok {
		t.Errorf("the first event of a keyed command of two records the key: %v", recs[2].Metadata)
	}
	if got := recs[3].Metadata[entity.IdempotencyKeyMetadata]; got != "k2" {
		t.Errorf("the last event of the keyed command records key %q, want k2", got)
	}

	// Different keys both apply; so does a key of another entity.
	askKeyed(t, ref, "k3", Add{N: 100})
	askKeyed(t, ref, "k4", Add{N: 100})
	askKeyed(t, k.Ref("other"), "k1", Add{N: 7})
	if got := ask(t, ref, Get{}).Value; got != 226 {
		t.Errorf("value %d after two differently keyed adds, want 226", got)
	}
	if got := ask(t, k.Ref("other"), Get{}).Value; got != 7 {
		t.Errorf("other entity's value %d, want 7: keys are per entity", got)
	}
}

// The window survives passivation and a new process: recovery rebuilds it
// from the events.
func TestIdempotencyKeysSurviveRecovery(t *testing.T) {
	mem := eventlog.NewMemory()
	k := register(t, newSystem(t, mem), entity.WithIdempotency())
	ref := k.Ref("c")
	_, pos := askKeyed(t, ref, "k1", Add{N: 5})
	ask(t, ref, Add{N: 1})
	if !k.Passivate("c") {
		t.Fatal("Passivate: busy")
	}
	if got, gotPos := askKeyed(t, ref, "k1", Add{N: 5}); got != 5 || gotPos != pos {
		t.Errorf("after passivation the re-send got (%d, pos %d), want (5, pos %d)", got, gotPos, pos)
	}

	k2 := register(t, newSystem(t, mem), entity.WithIdempotency())
	if got, gotPos := askKeyed(t, k2.Ref("c"), "k1", Add{N: 5}); got != 5 || gotPos != pos {
		t.Errorf("in a new System the re-send got (%d, pos %d), want (5, pos %d)", got, gotPos, pos)
	}
	if got := lastSeq(t, mem, "c"); got != 2 {
		t.Errorf("last Seq %d, want 2: no re-send may append", got)
	}
}

// Recovery from a snapshot reads back the window's events before it, so a
// key recorded just before the snapshot is still known; a key older than
// the window is forgotten, and a re-send that late runs again.
func TestIdempotencyWindowAcrossSnapshot(t *testing.T) {
	mem := eventlog.NewMemory()
	store := snapshotstore.NewMemory()
	opts := []entity.KindOption{entity.WithSnapshotEvery(3), entity.WithIdempotencyWindow(5)}
	sys := newSystem(t, mem, entity.WithSnapshotStore(store))
	k := register(t, sys, opts...)
	ref := k.Ref("c")
	ask(t, ref, Add{N: 1})                                      // seq 1
	if got, _ := askKeyed(t, ref, "k", Add{N: 10}); got != 11 { // seq 2
		t.Fatalf("reply %d, want 11", got)
	}
	for range 4 { // seqs 3 to 6; snapshots at 3 and 6
		ask(t, ref, Add{N: 1})
	}
	if err := sys.Shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}
	if snap, found, err := store.Load(context.Background(), "Counter", "c"); err != nil || !found || snap.Seq != 6 {
		t.Fatalf("latest snapshot: %v found %v seq %d, want one at seq 6", err, found, snap.Seq)
	}

	log := &flakyLog{Log: mem}
	k2 := register(t, newSystem(t, log, entity.WithSnapshotStore(store)), opts...)
	if got, _ := askKeyed(t, k2.Ref("c"), "k", Add{N: 10}); got != 11 {
		t.Errorf("re-send after recovery from the snapshot got %d, want the first reply 11", got)
	}
	if got := lastSeq(t, mem, "c"); got != 6 {
		t.Errorf("last Seq %d, want 6: the re-send must not append", got)
	}
	if got, want := log.readsFrom(), []uint64{2}; !slices.Equal(got, want) {
		t.Errorf("recovery read from %v, want %v: the snapshot's Seq 6 less the window 5, plus 1", got, want)
	}

	// Seq 7: the key, recorded at Seq 2, is now 5 events back, out of the
	// window of 5; a re-send runs again.
	ask(t, k2.Ref("c"), Add{N: 1})
	if got, _ := askKeyed(t, k2.Ref("c"), "k", Add{N: 10}); got != 26 {
		t.Errorf("re-send out of the window got %d, want 26: it runs again", got)
	}
	if got := lastSeq(t, mem, "c"); got != 8 {
		t.Errorf("last Seq %d, want 8", got)
	}
}

// Keys whose events WithDeleteEventsOnSnapshot deleted are forgotten by
// recovery, as documented: a re-send that late runs again.
func TestIdempotencyKeysOfDeletedEventsAreForgotten(t *testing.T) {
	mem := eventlog.NewMemory()
	store := snapshotstore.NewMemory()
	opts := []entity.KindOption{entity.WithSnapshotEvery(2), entity.WithDeleteEventsOnSnapshot(), entity.WithIdempotency()}
	sys := newSystem(t, mem, entity.WithSnapshotStore(store))
	ref := register(t, sys, opts...).Ref("c")
	askKeyed(t, ref, "k", Add{N: 1})
	ask(t, ref, Add{N: 1}) // seq 2: a snapshot, then events 1 and 2 deleted
	if got, _ := askKeyed(t, ref, "k", Add{N: 1}); got != 1 {
		t.Errorf("re-send while live replied %d, want 1: the window still holds the key", got)
	}
	if err := sys.Shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}
	if recs := records(t, mem, "c"); len(recs) != 0 {
		t.Fatalf("events %v left, want all deleted", seqs(recs))
	}
	k2 := register(t, newSystem(t, mem, entity.WithSnapshotStore(store)), opts...)
	if got, _ := askKeyed(t, k2.Ref("c"), "k", Add{N: 1}); got != 3 {
		t.Errorf("re-send after recovery replied %d, want 3: its event is gone, so it runs again", got)
	}
}

// Commands with one key that wait in one batch: the first applies, the
// others are answered from its outcome.
func TestIdempotentDuplicatesInOneBatch(t *testing.T) {
	mem := eventlog.NewMemory()
	log := &flakyLog{Log: mem}
	k := register(t, newSystem(t, log), entity.WithIdempotency())
	ref := k.Ref("c")
	gate := make(chan struct{})
	log.set(func(l *flakyLog) { l.gate = gate })

	type res struct {
		reply int
		pos   uint64
		err   error
	}
	results := make(chan res, 4)
	send := func(ctx context.Context, n int) {
		r, pos, err := entity.AskPosition(ctx, ref, Add{N: n})
		results <- res{r, pos, err}
	}
	go send(context.Background(), 1) // holds the entity at the gate
	eventually(t, "the first append at the gate", func() bool { return log.held.Load() == 1 })
	for range 3 {
		go send(keyed("dup"), 10)
	}
	eventually(t, "three keyed commands queued", func() bool { return entity.Queued(k, "c") == 3 })
	log.set(func(l *flakyLog) { l.gate = nil })
	close(gate)

	var got []res
	for range 4 {
		got = append(got, <-results)
	}
	var keyedReplies []res
	for _, r := range got {
		if r.err != nil {
			t.Fatalf("Ask: %v", r.err)
		}
		if r.reply != 1 {
			keyedReplies = append(keyedReplies, r)
		}
	}
	if len(keyedReplies) != 3 {
		t.Fatalf("replies %v, want 1 then three of 11", got)
	}
	for _, r := range keyedReplies {
		if r.reply != 11 || r.pos != keyedReplies[0].pos || r.pos == 0 {
			t.Errorf("keyed replies %v, want all (11, the same Position)", keyedReplies)
			break
		}
	}
	if got, want := ns(t, records(t, mem, "c")), []int{1, 10}; !slices.Equal(got, want) {
		t.Errorf("log holds Added %v, want %v: the key applies once", got, want)
	}
	if got := log.appends.Load(); got != 2 {
		t.Errorf("%d appends, want 2: the keyed commands ride in one", got)
	}
}

// Concurrent senders of one key, with no batching to help: exactly one
// applies, and all get its reply.
func TestIdempotentConcurrentSenders(t *testing.T) {
	for _, opt := range []struct {
		name string
		opts []entity.KindOption
	}{
		{"batched", nil},
		{"max-batch-1", []entity.KindOption{entity.WithMaxBatch(1)}},
	} {
		t.Run(opt.name, func(t *testing.T) {
			mem := eventlog.NewMemory()
			k := register(t, newSystem(t, mem), append(opt.opts, entity.WithIdempotency())...)
			ref := k.Ref("c")
			const senders = 16
			replies := make([]int, senders)
			var wg sync.WaitGroup
			for i := range senders {
				wg.Go(func() {
					r, err := entity.Ask(keyed("once"), ref, Add{N: 3})
					if err != nil {
						t.Errorf("Ask: %v", err)
					}
					replies[i] = r
				})
			}
			wg.Wait()
			for _, r := range replies {
				if r != 3 {
					t.Fatalf("replies %v, want all 3", replies)
				}
			}
			if got := lastSeq(t, mem, "c"); got != 1 {
				t.Errorf("last Seq %d, want 1: one key, one event", got)
			}
		})
	}
}

// A first attempt whose outcome is unknown (the write landed, the caller
// got an error) and a re-send: the command applies once, and the re-send
// gets the reply the first would have had.
func TestIdempotentResendAfterOutcomeUnknown(t *testing.T) {
	for _, name := range []string{"async", "sync"} {
		t.Run(name, func(t *testing.T) {
			mem := eventlog.NewMemory()
			log := testkit.NewLog(mem)
			opts := []entity.KindOption{entity.WithIdempotency()}
			if name == "sync" {
				opts = append(opts, entity.WithSyncAppends())
			}
			k := register(t, newSystem(t, log), opts...)
			ref := k.Ref("c")
			ask(t, ref, Add{N: 1})
			if _, err := log.AmbiguousNext(1, testkit.OpAppend); err != nil {
				t.Fatal(err)
			}
			_, err := entity.Ask(keyed("k"), ref, Add{N: 5})
			if !errors.Is(err, entity.ErrOutcomeUnknown) {
				t.Fatalf("first attempt: %v, want an error matching ErrOutcomeUnknown", err)
			}
			got, pos := askKeyed(t, ref, "k", Add{N: 5})
			if got != 6 {
				t.Errorf("re-send replied %d, want 6, what the first would have", got)
			}
			recs := records(t, mem, "c")
			if want := []int{1, 5}; !slices.Equal(ns(t, recs), want) {
				t.Errorf("log holds Added %v, want %v: applied once", ns(t, recs), want)
			}
			if pos != recs[1].Position {
				t.Errorf("re-send's Position %d, want the recorded event's %d", pos, recs[1].Position)
			}
		})
	}
}

// Chan is a command whose reply JSON cannot encode.
type Chan struct{}

func (Chan) Handle(tx *entity.Tx[Counter, CounterEvent]) (chan int, error) {
	tx.Persist(Added{N: 1})
	return make(chan int), nil
}

// Stringer is a command whose reply is an interface.
type Stringer struct{}

func (Stringer) Handle(tx *entity.Tx[Counter, CounterEvent]) (fmt.Stringer, error) {
	tx.Persist(Added{N: 1})
	return nil, nil
}

// AddReplyState persists like Add and replies with the whole state.
type AddReplyState struct{ N int }

func (c AddReplyState) Handle(tx *entity.Tx[Counter, CounterEvent]) (Counter, error) {
	return tx.Persist(Added{N: c.N}), nil
}

func TestIdempotencyErrorsAndLimits(t *testing.T) {
	t.Run("reply JSON cannot encode", func(t *testing.T) {
		mem := eventlog.NewMemory()
		ref := register(t, newSystem(t, mem), entity.WithIdempotency()).Ref("c")
		for _, tc := range []struct {
			name string
			ask  func() error
			text string
		}{
			{"chan", func() error { _, err := entity.Ask(keyed("k"), ref, Chan{}); return err }, "entity_test.Chan: encode reply chan int as JSON"},
			{"interface", func() error { _, err := entity.Ask(keyed("k"), ref, Stringer{}); return err }, "entity_test.Stringer: reply type fmt.Stringer is an interface"},
		} {
			err := tc.ask()
			if !errors.Is(err, entity.ErrInvalid) || errors.Is(err, entity.ErrOutcomeUnknown) {
				t.Errorf("%s: %v, want an error matching ErrInvalid and not ErrOutcomeUnknown", tc.name, err)
			}
			for _, want := range []string{"Counter/c", `idempotency key "k"`, tc.text, "WithReplyCodec"} {
				if err == nil || !strings.Contains(err.Error(), want) {
					t.Errorf("%s: error %v does not say %q", tc.name, err, want)
				}
			}
		}
		if got := lastSeq(t, mem, "c"); got != 0 {
			t.Errorf("last Seq %d, want 0: nothing of a failed command persists", got)
		}
		// Unkeyed, the same commands need no encoding and succeed.
		if _, err := entity.Ask(context.Background(), ref, Chan{}); err != nil {
			t.Errorf("unkeyed Chan: %v", err)
		}
		if got := ask(t, ref, Get{}).Value; got != 1 {
			t.Errorf("value %d, want 1", got)
		}
	})

	t.Run("key on a type without idempotency", func(t *testing.T) {
		mem := eventlog.NewMemory()
		ref := register(t, newSystem(t, mem)).Ref("c")
		_, err := entity.Ask(keyed("k"), ref, Add{N: 1})
		if !errors.Is(err, entity.ErrInvalid) || !strings.Contains(err.Error(), "WithIdempotency") || !strings.Contains(err.Error(), `"k"`) {
			t.Errorf("keyed Ask: %v, want ErrInvalid naming the key and WithIdempotency", err)
		}
		if got := lastSeq(t, mem, "c"); got != 0 {
			t.Errorf("last Seq %d, want 0: the command must not run", got)
		}
	})

	t.Run("empty key means none", func(t *testing.T) {
		mem := eventlog.NewMemory()
		ref := register(t, newSystem(t, mem), entity.WithIdempotency()).Ref("c")
		ctx := entity.WithIdempotencyKey(keyed("outer"), "")
		if k, ok := entity.IdempotencyKeyFrom(ctx); ok || k != "" {
			t.Errorf("IdempotencyKeyFrom = %q, %v; want none", k, ok)
		}
		for range 2 {
			if _, err := entity.Ask(ctx, ref, Add{N: 1}); err != nil {
				t.Fatal(err)
			}
		}
		if got := lastSeq(t, mem, "c"); got != 2 {
			t.Errorf("last Seq %d, want 2: unkeyed commands apply each time", got)
		}
		if got := records(t, mem, "c")[0].Metadata[entity.IdempotencyKeyMetadata]; got != "" {
			t.Errorf("an unkeyed event records key %q", got)
		}
	})

	t.Run("nothing persisted records nothing", func(t *testing.T) {
		mem := eventlog.NewMemory()
		ref := register(t, newSystem(t, mem), entity.WithIdempotency()).Ref("c")
		// A rejection applies nothing, so its key is free: a re-send runs.
		if _, err := entity.Ask(keyed("r"), ref, Add{N: -1}); !errors.Is(err, errNegative) {
			t.Fatalf("rejection: %v", err)
		}
		if got, _ := askKeyed(t, ref, "r", Add{N: 2}); got != 2 {
			t.Errorf("re-send after a rejection replied %d, want 2: it runs", got)
		}
		// A reply-only command runs each time and answers from the state.
		if got, _ := askKeyed(t, ref, "g", Get{}); got.Value != 2 {
			t.Errorf("keyed Get %d, want 2", got.Value)
		}
		ask(t, ref, Add{N: 1})
		if got, _ := askKeyed(t, ref, "g", Get{}); got.Value != 3 {
			t.Errorf("keyed Get re-sent %d, want 3: it ran again", got.Value)
		}
	})

	t.Run("metadata and key together", func(t *testing.T) {
		mem := eventlog.NewMemory()
		ref := register(t, newSystem(t, mem), entity.WithIdempotency()).Ref("c")
		ctx := entity.WithMetadata(entity.WithIdempotencyKey(context.Background(), "k"), map[string]string{"a": "1"})
		ctx = entity.WithMetadata(ctx, map[string]string{"b": "2"})
		if k, _ := entity.IdempotencyKeyFrom(ctx); k != "k" {
			t.Errorf("WithMetadata lost the key: %q", k)
		}
		ctx = entity.WithIdempotencyKey(ctx, "k2")
		md, err := entity.Ask(ctx, ref, Meta{})
		if err != nil {
			t.Fatal(err)
		}
		if md["a"] != "1" || md["b"] != "2" || len(md) != 2 {
			t.Errorf("handler saw metadata %v, want a=1 b=2", md)
		}
		got := records(t, mem, "c")[0].Metadata
		if got["a"] != "1" || got["b"] != "2" || got[entity.IdempotencyKeyMetadata] != "k2" {
			t.Errorf("event metadata %v, want a, b and key k2", got)
		}
	})

	t.Run("a key in a sender's metadata is not a recorded key", func(t *testing.T) {
		mem := eventlog.NewMemory()
		k := register(t, newSystem(t, mem), entity.WithIdempotency())
		ctx := entity.WithMetadata(context.Background(), map[string]string{entity.IdempotencyKeyMetadata: "x"})
		if _, err := entity.Ask(ctx, k.Ref("c"), Add{N: 1}); err != nil {
			t.Fatal(err)
		}
		k.Passivate("c") // recovery reads the event back
		if got, _ := askKeyed(t, k.Ref("c"), "x", Add{N: 2}); got != 3 {
			t.Errorf("keyed command replied %d, want 3: it runs, no reply was recorded", got)
		}
	})

	t.Run("options", func(t *testing.T) {
		sys := newSystem(t, eventlog.NewMemory())
		for _, tc := range []struct {
			opts []entity.KindOption
			text string
		}{
			{[]entity.KindOption{entity.WithIdempotencyWindow(0)}, "WithIdempotencyWindow(0)"},
			{[]entity.KindOption{entity.WithReplyCodec(binarize.Value[int](binarize.JSON))}, "WithReplyCodec needs WithIdempotency"},
			{[]entity.KindOption{entity.WithIdempotency(), entity.WithReplyCodec[int](nil)}, "WithReplyCodec[int](nil)"},
			{[]entity.KindOption{entity.WithIdempotency(), entity.WithReplyCodec(binarize.Value[int](binarize.JSON)), entity.WithReplyCodec(binarize.Value[int](binarize.Msgpack))}, "has a codec already"},
		} {
			_, err := entity.Register(sys, counterType(), tc.opts...)
			if !errors.Is(err, entity.ErrInvalid) || !strings.Contains(err.Error(), tc.text) {
				t.Errorf("Register: %v, want ErrInvalid saying %q", err, tc.text)
			}
		}
	})
}

// A reply type with a codec of its own is recorded with it, and a reply
// that cannot be read back fails the re-send with an error that does not
// deny that the command took effect.
func TestIdempotentReplyCodec(t *testing.T) {
	mem := eventlog.NewMemory()
	codec := entity.WithReplyCodec(binarize.Value[Counter](binarize.Msgpack))
	k := register(t, newSystem(t, mem), entity.WithIdempotency(), codec)
	ref := k.Ref("c")
	first, _ := askKeyed(t, ref, "k", AddReplyState{N: 4})
	ask(t, ref, Add{N: 1})
	again, _ := askKeyed(t, ref, "k", AddReplyState{N: 4})
	if again.Value != 4 || !slices.Equal(again.History, first.History) {
		t.Errorf("re-send replied %+v, want the first reply %+v", again, first)
	}
	if got := records(t, mem, "c")[0].Metadata[entity.IdempotencyReplyMetadata]; !strings.HasPrefix(got, "b64:") {
		t.Errorf("reply recorded as %q, want the codec's bytes in base64 after b64:", got)
	}

	// A release that drops the codec cannot read the reply back.
	k2 := register(t, newSystem(t, mem), entity.WithIdempotency())
	_, err := entity.Ask(keyed("k"), k2.Ref("c"), AddReplyState{N: 4})
	if !errors.Is(err, entity.ErrOutcomeUnknown) || !strings.Contains(err.Error(), "recorded at seq 1") || !strings.Contains(err.Error(), "now has none") {
		t.Errorf("re-send with an unreadable reply: %v, want ErrOutcomeUnknown naming seq 1 and the codec", err)
	}
	if got := lastSeq(t, mem, "c"); got != 2 {
		t.Errorf("last Seq %d, want 2", got)
	}
}
