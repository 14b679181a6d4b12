package natslog_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/eventsourced-go/eventsourced/eventlog"
	"github.com/eventsourced-go/eventsourced/natslog"
)

// TestLastLookupsBatched checks that one multi-subject direct get answers the
// lookups of many entities exactly as separate lookups do: entities with
// events, without, with every event deleted, with an encoded id, and the
// same entity twice.
func TestLastLookupsBatched(t *testing.T) {
	_, js := setup(t)
	l := newLog(t, js)
	ctx := context.Background()
	const typ = "account"
	lengths := map[string]int{"a": 3, "b": 1, "c": 0, "d": 2, "with space": 4}
	for id, n := range lengths {
		for seq := range n {
			if _, err := l.Append(ctx, typ, id, uint64(seq), eventlog.Event{Name: "E", Data: []byte(fmt.Sprint(seq))}); err != nil {
				t.Fatal(err)
			}
		}
	}
	if err := l.DeleteTo(ctx, typ, "d", 2); err != nil {
		t.Fatal(err)
	}
	ids := []string{"a", "b", "c", "d", "with space", "a", "never"}
	want, _, err := natslog.LookupLasts(l, typ, ids, false)
	if err != nil {
		t.Fatal(err)
	}
	got, queries, err := natslog.LookupLasts(l, typ, ids, true)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(got, want) {
		t.Errorf("batched lookups:\n got %+v\nwant %+v (one by one)", got, want)
	}
	if queries != 1 {
		t.Errorf("%d lookups took %d requests, want 1", len(ids), queries)
	}
	if !want[0].Found || want[0].Seq != 3 || want[2].Found || !want[3].Marker || want[6].Found {
		t.Errorf("one-by-one lookups look wrong: %+v", want)
	}
}

// TestConcurrentReadsOfManyEntities reads 300 entities of 0 to 5 events at
// once, so their first lookups share requests, and checks every read.
func TestConcurrentReadsOfManyEntities(t *testing.T) {
	_, js := setup(t)
	l := newLog(t, js)
	ctx := context.Background()
	const typ, n = "account", 300
	for i := range n {
		for seq := range i % 6 {
			if _, err := l.Append(ctx, typ, fmt.Sprint("e", i), uint64(seq), eventlog.Event{Name: "E", Data: []byte(fmt.Sprint(i, "/", seq+1))}); err != nil {
				t.Fatal(err)
			}
		}
	}
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for i := range n {
		wg.Go(func() {
			from := uint64(1 + i%2)
			want := from
			for r, err := range l.ReadEntity(ctx, typ, fmt.Sprint("e", i), from) {
				if err != nil {
					errs <- err
					return
				}
				if r.Seq != want || string(r.Data) != fmt.Sprint(i, "/", want) {
					errs <- fmt.Errorf("e%d from %d: record seq %d data %q, want seq %d", i, from, r.Seq, r.Data, want)
					return
				}
				want++
			}
			if last := uint64(i % 6); want != max(last+1, from) {
				errs <- fmt.Errorf("e%d from %d: read up to seq %d, want %d", i, from, want-1, last)
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

// TestCloseEndsReads starts many reads and closes the Log under them: every
// read ends at once, with its events or with an error matching
// eventlog.ErrClosed, and Close returns.
func TestCloseEndsReads(t *testing.T) {
	_, js := setup(t)
	l, err := natslog.New(context.Background(), js, natslog.WithTimeout(time.Minute))
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	for i := range 50 {
		if _, err := l.Append(ctx, "account", fmt.Sprint("e", i), 0, eventlog.Event{Name: "E"}); err != nil {
			t.Fatal(err)
		}
	}
	var wg sync.WaitGroup
	errs := make(chan error, 400)
	for i := range 400 {
		wg.Go(func() {
			for _, err := range l.ReadEntity(ctx, "account", fmt.Sprint("e", i%60), 1) {
				if err != nil && !errors.Is(err, eventlog.ErrClosed) {
					errs <- err
				}
			}
		})
	}
	start := time.Now()
	if err := l.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	wg.Wait()
	if d := time.Since(start); d > 10*time.Second {
		t.Errorf("reads took %v to end after Close", d)
	}
	close(errs)
	for err := range errs {
		t.Errorf("read during Close: %v, want its events or ErrClosed", err)
	}
}

// TestBatchedLookupWaitsForResponders checks that a batched lookup nothing
// answers (no responders: here the stream is gone; on a replicated stream
// just created, its direct get subscriptions are not up yet) is sent again
// until the stream answers, instead of failing at once.
func TestBatchedLookupWaitsForResponders(t *testing.T) {
	_, js := setup(t)
	l := newLog(t, js)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := js.DeleteStream(ctx, natslog.DefaultStream); err != nil {
		t.Fatal(err)
	}
	type result struct {
		got []natslog.LastResult
		err error
	}
	done := make(chan result, 1)
	began := time.Now()
	go func() {
		got, _, err := natslog.LookupLasts(l, "account", []string{"a", "b", "c"}, true)
		done <- result{got, err}
	}()
	const gone = 400 * time.Millisecond
	time.Sleep(gone)
	select {
	case r := <-done:
		t.Fatalf("the lookup ended while the stream was gone: %+v %v", r.got, r.err)
	default:
	}
	if err := natslog.Setup(ctx, js); err != nil {
		t.Fatal(err)
	}
	r := <-done
	if r.err != nil {
		t.Fatal(r.err)
	}
	for i, res := range r.got {
		if res != (natslog.LastResult{}) {
			t.Errorf("lookup %d: %+v, want not found and no error", i, res)
		}
	}
	if took := time.Since(began); took < gone {
		t.Errorf("answered after %v, before the stream was back (%v)", took, gone)
	}
}
