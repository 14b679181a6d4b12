package natslog_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/eventsourced-go/eventsourced/eventlog"
	"github.com/eventsourced-go/eventsourced/natslog"
	"github.com/eventsourced-go/eventsourced/snapshotstore"
)

func testCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func ev(name string) eventlog.Event { return eventlog.Event{Name: name, Data: []byte(name)} }

func evs(name string, n int) []eventlog.Event {
	out := make([]eventlog.Event, n)
	for i := range out {
		out[i] = ev(name + "-" + strconv.Itoa(i+1))
	}
	return out
}

func mustAppend(t *testing.T, l eventlog.Log, typ, id string, expected uint64, events ...eventlog.Event) uint64 {
	t.Helper()
	pos, err := l.Append(testCtx(t), typ, id, expected, events...)
	if err != nil {
		t.Fatalf("Append(%s/%s, %d): %v", typ, id, expected, err)
	}
	return pos
}

func collect[T any](t *testing.T, seq func(func(T, error) bool)) []T {
	t.Helper()
	var out []T
	for v, err := range seq {
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, v)
	}
	return out
}

func seqsOf(recs []eventlog.Record) []uint64 {
	out := make([]uint64, len(recs))
	for i, r := range recs {
		out[i] = r.Seq
	}
	return out
}

func span(from, to uint64) []uint64 {
	var out []uint64
	for s := from; s <= to; s++ {
		out = append(out, s)
	}
	return out
}

// TestAppendRoundTrips counts the messages the client sends per append: one
// for an append to an entity the Log knows (steady state), two when it must
// look up the entity's last message first.
func TestAppendRoundTrips(t *testing.T) {
	_, js := setup(t)
	nc := js.Conn()
	l1, l2, l3 := newLog(t, js), newLog(t, js), newLog(t, js)
	const typ, id = "Account", "a-1"
	sent := func(what string, want uint64, f func()) {
		t.Helper()
		before := nc.Stats().OutMsgs
		f()
		if got := nc.Stats().OutMsgs - before; got != want {
			t.Errorf("%s: sent %d messages, want %d", what, got, want)
		}
	}
	sent("first append, expected 0", 1, func() { mustAppend(t, l1, typ, id, 0, ev("opened")) })
	sent("steady-state append", 1, func() { mustAppend(t, l1, typ, id, 1, ev("deposited")) })
	sent("three-event atomic batch", 3, func() { mustAppend(t, l1, typ, id, 2, evs("moved", 3)...) })
	sent("append by a Log that never saw the entity", 2, func() { mustAppend(t, l2, typ, id, 5, ev("x")) })
	sent("its next append", 1, func() { mustAppend(t, l2, typ, id, 6, ev("y")) })
	sent("append by a Log whose memory is stale", 2, func() { mustAppend(t, l1, typ, id, 7, ev("z")) })
	// A read of a short entity looks up its last message and follows the
	// chain back, one direct get by stream sequence per earlier message:
	// more round trips than one batched get of the subject, but each costs
	// the server one lookup instead of a walk over every other entity's
	// messages in between (see TestReadEntityTail).
	sent("a full read", 8, func() {
		if recs := collect(t, l3.ReadEntity(testCtx(t), typ, id, 1)); len(recs) != 8 {
			t.Fatalf("read %d records, want 8", len(recs))
		}
	})
	sent("append after a read", 1, func() { mustAppend(t, l3, typ, id, 8, ev("after-read")) })
	sent("stale append: one lookup, nothing published", 1, func() {
		_, err := l3.Append(testCtx(t), typ, id, 3, ev("stale"))
		var ce *eventlog.ConflictError
		if !errors.As(err, &ce) || ce.Expected != 3 || ce.Actual != 9 {
			t.Errorf("got %v, want a conflict expected 3 actual 9", err)
		}
	})
	sent("LastSeq", 1, func() {
		if n, err := l3.LastSeq(testCtx(t), typ, id); err != nil || n != 9 {
			t.Errorf("LastSeq = %d, %v, want 9", n, err)
		}
	})
}

// TestAppendConflictAfterOtherWriter checks that a Log whose remembered
// sequence went stale because another Log appended reports the conflict with
// the right Actual, and that one whose expectation still holds succeeds.
func TestAppendConflictAfterOtherWriter(t *testing.T) {
	_, js := setup(t)
	a, b := newLog(t, js), newLog(t, js)
	mustAppend(t, a, "T", "x", 0, ev("1"))
	mustAppend(t, b, "T", "x", 1, evs("b", 2)...)
	_, err := a.Append(testCtx(t), "T", "x", 1, ev("late"))
	var ce *eventlog.ConflictError
	if !errors.As(err, &ce) || ce.Actual != 3 || ce.Expected != 1 || ce.EntityType != "T" || ce.EntityID != "x" {
		t.Fatalf("got %v, want a conflict on T/x expected 1 actual 3", err)
	}
	mustAppend(t, a, "T", "x", 3, ev("4"))
}

// TestEncodedNames checks that types and ids that are not subject tokens are
// encoded, not refused, and come back as given from every read, the id
// listing, deletes and the snapshot store.
func TestEncodedNames(t *testing.T) {
	_, js := setup(t)
	l := newLog(t, js)
	ctx := testCtx(t)
	const typ = "Order.Line *>"
	ids := []string{"a.b", "a_b", "a=2Eb", "*", ">", "with space", "tab\tnl\n", "ctl\x01", "ünï", "=", "a/b", "x.>.*", "é.é"}
	for i, id := range ids {
		mustAppend(t, l, typ, id, 0, ev("e"+strconv.Itoa(i)), ev("f"+strconv.Itoa(i)))
	}
	for i, id := range ids {
		recs := collect(t, l.ReadEntity(ctx, typ, id, 0))
		if len(recs) != 2 || recs[0].EntityID != id || recs[0].EntityType != typ || recs[1].Name != "f"+strconv.Itoa(i) {
			t.Errorf("ReadEntity(%q) = %+v", id, recs)
		}
		if n, err := l.LastSeq(ctx, typ, id); err != nil || n != 2 {
			t.Errorf("LastSeq(%q) = %d, %v", id, n, err)
		}
	}
	var gotIDs []string
	for _, r := range collect(t, l.ReadType(ctx, typ, 0)) {
		if r.Seq == 1 {
			gotIDs = append(gotIDs, r.EntityID)
		}
	}
	if !slices.Equal(gotIDs, ids) {
		t.Errorf("ReadType ids %q, want %q", gotIDs, ids)
	}
	listed := collect(t, l.EntityIDs(ctx, typ))
	slices.Sort(listed)
	want := slices.Sorted(slices.Values(ids))
	if !slices.Equal(listed, want) {
		t.Errorf("EntityIDs %q, want %q", listed, want)
	}
	if err := l.DeleteTo(ctx, typ, "a.b", 1); err != nil {
		t.Fatal(err)
	}
	if recs := collect(t, l.ReadEntity(ctx, typ, "a.b", 0)); len(recs) != 1 || recs[0].Seq != 2 {
		t.Errorf("after DeleteTo 1: %+v", recs)
	}
	if recs := collect(t, l.ReadEntity(ctx, typ, "a_b", 0)); len(recs) != 2 {
		t.Errorf("DeleteTo of a.b touched a_b: %d records", len(recs))
	}

	s, err := natslog.NewSnapshotStore(ctx, js)
	if err != nil {
		t.Fatal(err)
	}
	for i, id := range ids {
		if err := s.Save(ctx, snapshotstore.Snapshot{EntityType: typ, EntityID: id, Seq: uint64(i + 1), Data: []byte(id)}, 1); err != nil {
			t.Fatalf("Save(%q): %v", id, err)
		}
	}
	for i, id := range ids {
		snap, found, err := s.Load(ctx, typ, id)
		if err != nil || !found || snap.EntityID != id || snap.Seq != uint64(i+1) || string(snap.Data) != id {
			t.Errorf("Load(%q) = %+v, %v, %v", id, snap, found, err)
		}
	}
}

// TestGroupCommitConflictsStayLocal runs many appends at once, some stale,
// some multi-event: each stale one, and only it, gets a conflict naming its
// own entity, and stores nothing.
func TestGroupCommitConflictsStayLocal(t *testing.T) {
	_, js := setup(t)
	l := newLog(t, js)
	ctx := testCtx(t)
	const entities = 600
	const typ = "Cart"
	id := func(i int) string { return "c" + strconv.Itoa(i) }
	var wg sync.WaitGroup
	for i := range entities {
		wg.Go(func() {
			if _, err := l.Append(ctx, typ, id(i), 0, ev("created")); err != nil {
				t.Errorf("create %s: %v", id(i), err)
			}
		})
	}
	wg.Wait()
	if t.Failed() {
		return
	}
	size := func(i int) int { return 1 + i%3 }
	stale := func(i int) bool { return i%5 == 0 }
	errs := make([]error, entities)
	positions := make([]uint64, entities)
	start := make(chan struct{})
	for i := range entities {
		wg.Go(func() {
			<-start
			expected := uint64(1)
			if stale(i) {
				expected = 0
			}
			positions[i], errs[i] = l.Append(ctx, typ, id(i), expected, evs("added", size(i))...)
		})
	}
	close(start)
	wg.Wait()
	seen := make(map[uint64]string)
	for i := range entities {
		if stale(i) {
			var ce *eventlog.ConflictError
			if !errors.As(errs[i], &ce) || ce.EntityID != id(i) || ce.Expected != 0 || ce.Actual != 1 {
				t.Errorf("%s: got %v, want its own conflict expected 0 actual 1", id(i), errs[i])
			}
			continue
		}
		if errs[i] != nil {
			t.Errorf("%s: %v", id(i), errs[i])
			continue
		}
		if other, dup := seen[positions[i]]; dup {
			t.Errorf("%s and %s got the same Position %d", id(i), other, positions[i])
		}
		seen[positions[i]] = id(i)
	}
	for i := range entities {
		want := uint64(1 + size(i))
		if stale(i) {
			want = 1
		}
		recs := collect(t, l.ReadEntity(ctx, typ, id(i), 1))
		if got := seqsOf(recs); !slices.Equal(got, span(1, want)) {
			t.Errorf("%s: Seqs %v, want 1..%d", id(i), got, want)
		}
	}
}

// TestLongStreams covers reads and deletes on an entity with more events
// than one direct get returns, where ReadEntity from a high Seq skips the
// earlier events by binary search instead of reading them.
func TestLongStreams(t *testing.T) {
	_, js := setup(t)
	l := newLog(t, js)
	ctx := testCtx(t)
	const typ, id, n = "Ledger", "big", 3000
	var pos uint64
	for seq := uint64(0); seq < n; seq += 100 {
		pos = mustAppend(t, l, typ, id, seq, evs("e", 100)...)
		// Another entity in between spreads the stream sequences.
		mustAppend(t, l, typ, "other-"+strconv.FormatUint(seq, 10), 0, ev("o"))
	}
	if recs := collect(t, l.ReadEntity(ctx, typ, id, 0)); !slices.Equal(seqsOf(recs), span(1, n)) {
		t.Fatalf("full read: %d records", len(recs))
	} else if recs[n-1].Position != pos {
		t.Errorf("last Position %d, want %d", recs[n-1].Position, pos)
	}

	nc := js.Conn()
	for _, from := range []uint64{2, 257, 1000, 2900, 2999, 3000, 3001} {
		before := nc.Stats().InMsgs
		recs := collect(t, l.ReadEntity(ctx, typ, id, from))
		received := nc.Stats().InMsgs - before
		if want := span(from, n); !slices.Equal(seqsOf(recs), want) {
			t.Errorf("from %d: got %d records (%v...), want %d", from, len(recs), seqsOf(recs)[:min(3, len(recs))], len(want))
		}
		// A scan from the start would receive every message before from
		// too; the search receives a few hundred at most.
		if limit := uint64(len(recs)) + 600; received > limit {
			t.Errorf("from %d: received %d messages for %d records, want at most %d", from, received, len(recs), limit)
		}
	}

	if err := l.DeleteTo(ctx, typ, id, 2500); err != nil {
		t.Fatal(err)
	}
	if recs := collect(t, l.ReadEntity(ctx, typ, id, 0)); !slices.Equal(seqsOf(recs), span(2501, n)) {
		t.Errorf("after DeleteTo 2500: got %d records from %v", len(recs), seqsOf(recs)[:min(1, len(recs))])
	}
	if err := l.DeleteTo(ctx, typ, id, 10_000); err != nil {
		t.Fatal(err)
	}
	if recs := collect(t, l.ReadEntity(ctx, typ, id, 0)); len(recs) != 0 {
		t.Errorf("after deleting all: %d records", len(recs))
	}
	if last, err := l.LastSeq(ctx, typ, id); err != nil || last != n {
		t.Errorf("LastSeq after deleting all = %d, %v, want %d", last, err, n)
	}
	// A second delete of everything and a Log that never saw the entity.
	if err := l.DeleteTo(ctx, typ, id, n); err != nil {
		t.Fatal(err)
	}
	fresh := newLog(t, js)
	if _, err := fresh.Append(ctx, typ, id, 0, ev("again")); !errors.Is(err, eventlog.ErrConflict) {
		t.Errorf("append at 0 after deleting all: %v, want a conflict", err)
	}
	mustAppend(t, fresh, typ, id, n, ev("next"))
	if recs := collect(t, l.ReadEntity(ctx, typ, id, 0)); !slices.Equal(seqsOf(recs), []uint64{n + 1}) {
		t.Errorf("after appending at %d: %v", n, seqsOf(recs))
	}
	// Only the marker and the new event are left on the subject.
	stream, err := js.Stream(ctx, natslog.DefaultStream)
	if err != nil {
		t.Fatal(err)
	}
	si, err := stream.Info(ctx, jetstream.WithSubjectFilter("es.Ledger.big"))
	if err != nil {
		t.Fatal(err)
	}
	if got := si.State.Subjects["es.Ledger.big"]; got != 2 {
		t.Errorf("the subject holds %d messages, want 2 (the deletion marker and the new event)", got)
	}
}

// TestSubscribeEndsOnClose checks that closing the Log ends a live
// subscription with ErrClosed, and that a closed Log refuses everything.
func TestSubscribeEndsOnClose(t *testing.T) {
	_, js := setup(t)
	l, err := natslog.New(context.Background(), js)
	if err != nil {
		t.Fatal(err)
	}
	ctx := testCtx(t)
	mustAppend(t, l, "T", "x", 0, ev("1"))
	got := make(chan error, 1)
	go func() {
		for _, err := range l.Subscribe(ctx, "T", 0) {
			if err != nil {
				got <- err
				return
			}
		}
		got <- nil
	}()
	time.Sleep(100 * time.Millisecond)
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-got:
		if !errors.Is(err, eventlog.ErrClosed) {
			t.Errorf("Subscribe ended with %v, want ErrClosed", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Subscribe did not end after Close")
	}
	if err := l.Close(); !errors.Is(err, eventlog.ErrClosed) {
		t.Errorf("second Close: %v", err)
	}
	if _, err := l.Append(ctx, "T", "x", 1, ev("2")); !errors.Is(err, eventlog.ErrClosed) {
		t.Errorf("Append after Close: %v", err)
	}
	if _, err := l.LastSeq(ctx, "T", "x"); !errors.Is(err, eventlog.ErrClosed) {
		t.Errorf("LastSeq after Close: %v", err)
	}
	for _, err := range l.ReadEntity(ctx, "T", "x", 0) {
		if !errors.Is(err, eventlog.ErrClosed) {
			t.Errorf("ReadEntity after Close: %v", err)
		}
	}
	if err := l.DeleteTo(ctx, "T", "x", 1); !errors.Is(err, eventlog.ErrClosed) {
		t.Errorf("DeleteTo after Close: %v", err)
	}
}

// TestSubscribeDeletesItsConsumer checks that a subscription that ends
// leaves no consumer behind on the server.
func TestSubscribeDeletesItsConsumer(t *testing.T) {
	_, js := setup(t)
	l := newLog(t, js)
	ctx := testCtx(t)
	mustAppend(t, l, "T", "x", 0, evs("e", 3)...)
	for _, after := range []uint64{0, 1} {
		for rec, err := range l.Subscribe(ctx, "T", after) {
			if err != nil {
				t.Fatal(err)
			}
			if rec.Seq != after+1 {
				t.Errorf("after %d: first record has Seq %d", after, rec.Seq)
			}
			break
		}
	}
	stream, err := js.Stream(ctx, natslog.DefaultStream)
	if err != nil {
		t.Fatal(err)
	}
	info, err := stream.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if info.State.Consumers != 0 {
		t.Errorf("%d consumers left after the subscriptions ended", info.State.Consumers)
	}
}

// TestEmbeddedServerKeepsData restarts the embedded server on its directory
// and finds the events and snapshots again.
func TestEmbeddedServerKeepsData(t *testing.T) {
	dir := t.TempDir()
	ctx := testCtx(t)
	run := func(f func(js jetstream.JetStream), opts ...natslog.ServerOption) {
		srv, err := natslog.StartEmbedded(dir, opts...)
		if err != nil {
			t.Fatal(err)
		}
		defer srv.Shutdown()
		nc, err := srv.Connect()
		if err != nil {
			t.Fatal(err)
		}
		defer nc.Close()
		js, err := jetstream.New(nc)
		if err != nil {
			t.Fatal(err)
		}
		if err := natslog.Setup(ctx, js); err != nil {
			t.Fatal(err)
		}
		f(js)
	}
	run(func(js jetstream.JetStream) {
		l := newLog(t, js)
		mustAppend(t, l, "Counter", "c", 0, evs("inc", 3)...)
		s, err := natslog.NewSnapshotStore(ctx, js)
		if err != nil {
			t.Fatal(err)
		}
		if err := s.Save(ctx, snapshotstore.Snapshot{EntityType: "Counter", EntityID: "c", Seq: 2, Data: []byte("two")}, 1); err != nil {
			t.Fatal(err)
		}
	})
	run(func(js jetstream.JetStream) {
		l := newLog(t, js)
		if recs := collect(t, l.ReadEntity(ctx, "Counter", "c", 0)); !slices.Equal(seqsOf(recs), span(1, 3)) {
			t.Errorf("after a restart: Seqs %v, want 1..3", seqsOf(recs))
		}
		s, err := natslog.NewSnapshotStore(ctx, js)
		if err != nil {
			t.Fatal(err)
		}
		snap, found, err := s.Load(ctx, "Counter", "c")
		if err != nil || !found || snap.Seq != 2 || string(snap.Data) != "two" {
			t.Errorf("snapshot after a restart: %+v, %v, %v", snap, found, err)
		}
		mustAppend(t, l, "Counter", "c", 3, ev("inc-4"))
	}, natslog.WithServerSyncAlways())
}

func ExampleStartEmbedded() {
	dir, err := os.MkdirTemp("", "natslog-example")
	if err != nil {
		panic(err)
	}
	defer os.RemoveAll(dir)

	srv, err := natslog.StartEmbedded(dir)
	if err != nil {
		panic(err)
	}
	defer srv.Shutdown()
	nc, err := srv.Connect()
	if err != nil {
		panic(err)
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		panic(err)
	}
	ctx := context.Background()
	if err := natslog.Setup(ctx, js); err != nil {
		panic(err)
	}
	log, err := natslog.New(ctx, js)
	if err != nil {
		panic(err)
	}
	defer log.Close()

	if _, err := log.Append(ctx, "Account", "alice@example.com", 0,
		eventlog.Event{Name: "Opened"}, eventlog.Event{Name: "Deposited", Data: []byte("10")}); err != nil {
		panic(err)
	}
	_, err = log.Append(ctx, "Account", "alice@example.com", 0, eventlog.Event{Name: "Opened"})
	fmt.Println(err)
	for rec, err := range log.ReadEntity(ctx, "Account", "alice@example.com", 1) {
		if err != nil {
			panic(err)
		}
		fmt.Printf("%s %d %s %q\n", rec.EntityID, rec.Seq, rec.Name, rec.Data)
	}
	// Output:
	// eventlog: conflict on Account/alice@example.com: expected seq 0, actual 2
	// alice@example.com 1 Opened ""
	// alice@example.com 2 Deposited "10"
}

// TestReadEntityTail covers reading the last few events of entities whose
// events are interleaved with many others', as recovery after a snapshot
// does, and all the events of short entities: the records are exact for every from, across single appends,
// atomic batches and deletion markers, and only the records' own messages
// are received (plus the entity's last), not every event since the
// entity's first. A scan from the start of the stream made every
// recovery cost about a read of the whole stream on the server, so that
// after a restart, with every entity recovering at once, recoveries
// outlasted their timeouts and never caught up.
func TestReadEntityTail(t *testing.T) {
	_, js := setup(t)
	l := newLog(t, js)
	ctx := testCtx(t)
	const typ, entities, rounds = "Tail", 50, 6
	id := func(i int) string { return "t-" + strconv.Itoa(i) }
	last := make([]uint64, entities)
	var deleted uint64 // entity 0's last Seq when its events were deleted
	for r := range rounds {
		for i := range entities {
			n := 1 + (i+r)%3 // one event or an atomic batch of two or three
			mustAppend(t, l, typ, id(i), last[i], evs("e", n)...)
			last[i] += uint64(n)
		}
		if r == rounds/2 {
			// A deletion marker in the middle of entity 0's chain.
			if err := l.DeleteTo(ctx, typ, id(0), last[0]); err != nil {
				t.Fatal(err)
			}
			deleted = last[0]
		}
	}
	nc := js.Conn()
	for i := range entities {
		for _, from := range append([]uint64{1}, span(last[i]-8, last[i]+1)...) {
			before := nc.Stats().InMsgs
			recs := collect(t, l.ReadEntity(ctx, typ, id(i), from))
			received := nc.Stats().InMsgs - before
			want := span(from, last[i])
			if i == 0 {
				// Entity 0 kept only the events after its deletion.
				want = span(max(from, deleted+1), last[i])
			}
			if got := seqsOf(recs); !slices.Equal(got, want) {
				t.Errorf("%s from %d: Seqs %v, want %v", id(i), from, got, want)
			}
			if i != 0 && received > uint64(len(recs))+1 {
				t.Errorf("%s from %d: received %d messages for %d records, want at most %d", id(i), from, received, len(recs), len(recs)+1)
			}
		}
	}
}
