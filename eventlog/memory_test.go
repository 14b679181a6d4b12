package eventlog_test

import (
	"context"
	"errors"
	"fmt"
	"iter"
	"maps"
	"math"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/eventsourced-go/eventsourced/eventlog"
	"github.com/eventsourced-go/eventsourced/eventlog/eventlogtest"
)

func newMemory(t testing.TB) *eventlog.Memory {
	m := eventlog.NewMemory()
	t.Cleanup(func() { _ = m.Close() })
	return m
}

func TestMemory(t *testing.T) {
	eventlogtest.Run(t, func(t *testing.T) eventlog.Log { return newMemory(t) })
}

func BenchmarkMemory(b *testing.B) {
	eventlogtest.Bench(b, func(b *testing.B) eventlog.Log { return newMemory(b) })
}

func TestMemoryStoresCopies(t *testing.T) {
	ctx := context.Background()
	m := newMemory(t)
	data := []byte("original")
	md := map[string]string{"correlation-id": "c1"}
	if _, err := m.Append(ctx, "account", "a", 0, eventlog.Event{Name: "Opened", Data: data, Metadata: md}); err != nil {
		t.Fatal(err)
	}
	// The caller reuses its buffers after Append.
	copy(data, "XXXXXXXX")
	md["correlation-id"] = "changed"
	md["added"] = "x"

	read := func() eventlog.Record {
		t.Helper()
		for r, err := range m.ReadEntity(ctx, "account", "a", 1) {
			if err != nil {
				t.Fatal(err)
			}
			return r
		}
		t.Fatal("no record")
		return eventlog.Record{}
	}
	r := read()
	if got, want := string(r.Data), "original"; got != want {
		t.Errorf("data after the caller mutated its slice: got %q, want %q", got, want)
	}
	if want := map[string]string{"correlation-id": "c1"}; !maps.Equal(r.Metadata, want) {
		t.Errorf("metadata after the caller mutated its map: got %v, want %v", r.Metadata, want)
	}

	// The reader mutates what it read, through every read method.
	copy(r.Data, "YYYYYYYY")
	r.Metadata["correlation-id"] = "mutated"
	for r, err := range m.ReadType(ctx, "account", 0) {
		if err != nil {
			t.Fatal(err)
		}
		copy(r.Data, "ZZZZZZZZ")
		r.Metadata["x"] = "y"
	}
	r = read()
	if got, want := string(r.Data), "original"; got != want {
		t.Errorf("data after readers mutated theirs: got %q, want %q", got, want)
	}
	if want := map[string]string{"correlation-id": "c1"}; !maps.Equal(r.Metadata, want) {
		t.Errorf("metadata after readers mutated theirs: got %v, want %v", r.Metadata, want)
	}
	// Appending to a record's Data must not write into another's.
	var recs []eventlog.Record
	if _, err := m.Append(ctx, "account", "a", 1, eventlog.Event{Name: "A", Data: []byte("aa")}, eventlog.Event{Name: "B", Data: []byte("bb")}); err != nil {
		t.Fatal(err)
	}
	for r, err := range m.ReadEntity(ctx, "account", "a", 2) {
		if err != nil {
			t.Fatal(err)
		}
		recs = append(recs, r)
	}
	_ = append(recs[0].Data, '!')
	if got := string(recs[1].Data); got != "bb" {
		t.Errorf("appending to one record's data changed the next: got %q, want %q", got, "bb")
	}
}

func TestMemoryClose(t *testing.T) {
	ctx := context.Background()
	m := eventlog.NewMemory()
	if _, err := m.Append(ctx, "t", "a", 0, eventlog.Event{Name: "E"}); err != nil {
		t.Fatal(err)
	}
	// A waiting subscriber is woken by Close and ends with ErrClosed.
	subErr := make(chan error, 1)
	go func() {
		for _, err := range m.Subscribe(ctx, "t", 1) {
			if err != nil {
				subErr <- err
				return
			}
		}
		subErr <- nil
	}()
	time.Sleep(10 * time.Millisecond) // let it wait; the check holds either way

	if err := m.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	select {
	case err := <-subErr:
		if !errors.Is(err, eventlog.ErrClosed) {
			t.Errorf("Subscribe ended with %v, want ErrClosed", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Close did not end a waiting Subscribe")
	}

	firstErr := func(seq func(func(eventlog.Record, error) bool)) error {
		for _, err := range seq {
			return err
		}
		return nil
	}
	_, appendErr := m.Append(ctx, "t", "a", 1, eventlog.Event{Name: "E"})
	_, lastErr := m.LastSeq(ctx, "t", "a")
	_, deleteStreamErr := m.DeleteStream(ctx, "t", "a", false)
	var idsErr error
	for _, err := range m.EntityIDs(ctx, "t") {
		idsErr = err
	}
	for name, err := range map[string]error{
		"Append":       appendErr,
		"LastSeq":      lastErr,
		"ReadEntity":   firstErr(m.ReadEntity(ctx, "t", "a", 1)),
		"ReadType":     firstErr(m.ReadType(ctx, "t", 0)),
		"Subscribe":    firstErr(m.Subscribe(ctx, "t", 0)),
		"DeleteTo":     m.DeleteTo(ctx, "t", "a", 1),
		"DeleteStream": deleteStreamErr,
		"EntityIDs":    idsErr,
		"Close":        m.Close(),
	} {
		if !errors.Is(err, eventlog.ErrClosed) {
			t.Errorf("%s after Close: got %v, want ErrClosed", name, err)
		}
	}
}

func TestMemoryInvalidReads(t *testing.T) {
	ctx := context.Background()
	m := newMemory(t)
	_, lastErr := m.LastSeq(ctx, "", "a")
	firstErr := func(seq func(func(eventlog.Record, error) bool)) error {
		for _, err := range seq {
			return err
		}
		return nil
	}
	for name, err := range map[string]error{
		"LastSeq":    lastErr,
		"ReadEntity": firstErr(m.ReadEntity(ctx, "t", "", 1)),
		"ReadType":   firstErr(m.ReadType(ctx, "", 0)),
		"Subscribe":  firstErr(m.Subscribe(ctx, "", 0)),
		"DeleteTo":   m.DeleteTo(ctx, "", "a", 1),
	} {
		if !errors.Is(err, eventlog.ErrInvalid) {
			t.Errorf("%s with an empty name: got %v, want ErrInvalid", name, err)
		}
	}
}

// TestMemoryDeleteCompaction deletes enough events to compact the type index
// and checks that reads by type, including one in progress, stay exact.
func TestMemoryDeleteCompaction(t *testing.T) {
	ctx := context.Background()
	m := newMemory(t)
	const ids, per = 50, 100
	batch := make([]eventlog.Event, per)
	for i := range batch {
		batch[i] = eventlog.Event{Name: "E"}
	}
	for i := range ids {
		if _, err := m.Append(ctx, "t", fmt.Sprint(i), 0, batch...); err != nil {
			t.Fatal(err)
		}
	}
	// Start a read, then delete most events in the middle of it.
	next, stop := iter.Pull2(m.ReadType(ctx, "t", 0))
	defer stop()
	first, err, ok := next()
	if !ok || err != nil {
		t.Fatalf("first record: %v %v", ok, err)
	}
	for i := range ids {
		if err := m.DeleteTo(ctx, "t", fmt.Sprint(i), per-2); err != nil {
			t.Fatal(err)
		}
	}
	got := []eventlog.Record{first}
	for {
		r, err, ok := next()
		if !ok {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, r)
	}
	// Up to one chunk was copied before the deletion; after it only the
	// last two events of every entity remain.
	for i := 1; i < len(got); i++ {
		if got[i].Position <= got[i-1].Position {
			t.Fatalf("Position %d after %d", got[i].Position, got[i-1].Position)
		}
	}
	tail := 0
	for _, r := range got {
		if r.Seq > per-2 {
			tail++
		}
	}
	if tail != 2*ids {
		t.Errorf("read across the deletion yielded %d surviving events, want %d", tail, 2*ids)
	}

	var after []eventlog.Record
	for r, err := range m.ReadType(ctx, "t", 0) {
		if err != nil {
			t.Fatal(err)
		}
		after = append(after, r)
	}
	if len(after) != 2*ids {
		t.Fatalf("after deletion ReadType yielded %d events, want %d", len(after), 2*ids)
	}
	for _, r := range after {
		if r.Seq <= per-2 {
			t.Fatalf("ReadType yielded deleted %s#%d", r.EntityID, r.Seq)
		}
	}
}

func TestMemoryAppendAllocs(t *testing.T) {
	if raceEnabled {
		t.Skip("allocation counts differ under the race detector")
	}
	ctx := context.Background()
	m := newMemory(t)
	if _, err := m.Append(ctx, "t", "a", 0, eventlog.Event{Name: "E"}); err != nil {
		t.Fatal(err)
	}
	data := make([]byte, 64)
	seq := uint64(1)
	allocs := testing.AllocsPerRun(1000, func() {
		if _, err := m.Append(ctx, "t", "a", seq, eventlog.Event{Name: "E", Data: data}); err != nil {
			t.Fatal(err)
		}
		seq++
	})
	// The data is copied into the stream's buffer: only slice growth
	// allocates, a fraction of the appends.
	if allocs > 0.5 {
		t.Errorf("Append of one event to an existing stream: %.2f allocations, want at most 0.5", allocs)
	}
}

func TestMemoryReadBoundsAtMax(t *testing.T) {
	ctx := context.Background()
	m := newMemory(t)
	if _, err := m.Append(ctx, "t", "a", 0, eventlog.Event{Name: "E"}); err != nil {
		t.Fatal(err)
	}
	for r := range m.ReadType(ctx, "t", math.MaxUint64) {
		t.Errorf("ReadType after MaxUint64 yielded %+v", r)
	}
	for r := range m.ReadEntity(ctx, "t", "a", math.MaxUint64) {
		t.Errorf("ReadEntity from MaxUint64 yielded %+v", r)
	}
}

// TestMemoryConcurrentShards appends to many entities (spread over the
// shards) with many event names from several goroutines while another
// deletes their oldest events and a subscriber and repeated readers by type
// watch: every record read carries its own event's name and data, Positions
// only go up, and at the end exactly the events not deleted remain.
func TestMemoryConcurrentShards(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	m := newMemory(t)
	const writers, perWriter, rounds, names = 6, 20, 60, 12
	name := func(id string, seq uint64) string { return fmt.Sprintf("E%d", (len(id)+int(seq))%names) }
	data := func(id string, seq uint64) string { return fmt.Sprintf("%s#%d", id, seq) }
	// check verifies that a record is the event its stream and Seq say.
	check := func(r eventlog.Record) error {
		if r.Name != name(r.EntityID, r.Seq) || string(r.Data) != data(r.EntityID, r.Seq) {
			return fmt.Errorf("record %s#%d: name %q data %q", r.EntityID, r.Seq, r.Name, r.Data)
		}
		return nil
	}
	var total atomic.Int64
	errs := make(chan error, 16)
	var wg sync.WaitGroup
	for w := range writers {
		wg.Go(func() {
			for round := range rounds {
				for e := range perWriter {
					id := fmt.Sprintf("w%d-%d", w, e)
					seq := uint64(round * 2)
					batch := []eventlog.Event{
						{Name: name(id, seq+1), Data: []byte(data(id, seq+1))},
						{Name: name(id, seq+2), Data: []byte(data(id, seq+2))},
					}
					if _, err := m.Append(ctx, "t", id, seq, batch...); err != nil {
						errs <- err
						return
					}
					total.Add(2)
				}
			}
		})
	}
	deleted := make(map[string]uint64)
	stopDeleting := make(chan struct{})
	var dwg sync.WaitGroup
	dwg.Go(func() {
		for i := 0; ; i++ {
			select {
			case <-stopDeleting:
				return
			default:
			}
			id := fmt.Sprintf("w%d-%d", i%writers, (i/writers)%perWriter)
			last, err := m.LastSeq(ctx, "t", id)
			if err != nil {
				errs <- err
				return
			}
			if last > 3 {
				if err := m.DeleteTo(ctx, "t", id, last-3); err != nil {
					errs <- err
					return
				}
				deleted[id] = last - 3
			}
		}
	})
	readers := func() error {
		var prev uint64
		for r, err := range m.ReadType(ctx, "t", 0) {
			if err != nil {
				return err
			}
			if r.Position <= prev {
				return fmt.Errorf("ReadType: Position %d after %d", r.Position, prev)
			}
			prev = r.Position
			if err := check(r); err != nil {
				return err
			}
		}
		return nil
	}
	const all = writers * perWriter * rounds * 2
	sub := make(chan error, 1)
	go func() {
		var prev uint64
		for r, err := range m.Subscribe(ctx, "t", 0) {
			if err != nil {
				sub <- err
				return
			}
			if r.Position <= prev {
				sub <- fmt.Errorf("Subscribe: Position %d after %d", r.Position, prev)
				return
			}
			prev = r.Position
			if err := check(r); err != nil {
				sub <- err
				return
			}
			if r.Position == all {
				sub <- nil
				return
			}
		}
	}()
	for range 5 {
		if err := readers(); err != nil {
			t.Fatal(err)
		}
	}
	wg.Wait()
	close(stopDeleting)
	dwg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	if err := <-sub; err != nil {
		t.Fatal(err)
	}
	if err := readers(); err != nil {
		t.Fatal(err)
	}
	// Exactly the events after each entity's deletion point remain.
	for w := range writers {
		for e := range perWriter {
			id := fmt.Sprintf("w%d-%d", w, e)
			want := deleted[id] + 1
			for r, err := range m.ReadEntity(ctx, "t", id, 0) {
				if err != nil {
					t.Fatal(err)
				}
				if r.Seq != want {
					t.Fatalf("%s: Seq %d, want %d", id, r.Seq, want)
				}
				if err := check(r); err != nil {
					t.Fatal(err)
				}
				want++
			}
			if want != rounds*2+1 {
				t.Fatalf("%s: read up to Seq %d, want %d", id, want-1, rounds*2)
			}
		}
	}
	if got := total.Load(); got != all {
		t.Fatalf("appended %d events, want %d", got, all)
	}
}
