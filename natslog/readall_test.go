package natslog_test

import (
	"context"
	"errors"
	"fmt"
	"iter"
	"math"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/eventsourced-go/eventsourced/eventlog"
	"github.com/eventsourced-go/eventsourced/natslog"
)

// key names a record in test output and comparisons.
func key(r eventlog.Record) string {
	return fmt.Sprintf("%s/%s#%d@%d", r.EntityType, r.EntityID, r.Seq, r.Position)
}

func keys(recs []eventlog.Record) []string {
	out := make([]string, len(recs))
	for i, r := range recs {
		out[i] = key(r)
	}
	return out
}

// ofTypes returns the records of recs whose type is one of types.
func ofTypes(recs []eventlog.Record, types ...string) []eventlog.Record {
	var out []eventlog.Record
	for _, r := range recs {
		if slices.Contains(types, r.EntityType) {
			out = append(out, r)
		}
	}
	return out
}

// checkOrder fails t unless recs are in strictly increasing Position order
// and every entity's Seqs run 1, 2, 3 ... from the first one seen.
func checkOrder(t *testing.T, what string, recs []eventlog.Record) {
	t.Helper()
	last := make(map[string]uint64)
	for i, r := range recs {
		if i > 0 && r.Position <= recs[i-1].Position {
			t.Fatalf("%s: Position %d (%s) follows %d", what, r.Position, key(r), recs[i-1].Position)
		}
		k := r.EntityType + "/" + r.EntityID
		if prev, seen := last[k]; seen && r.Seq != prev+1 {
			t.Fatalf("%s: %s Seq %d follows %d", what, k, r.Seq, prev)
		}
		last[k] = r.Seq
	}
}

// appendConcurrently appends perWriter events, one or three at a time, to
// each of the entities named by the writers, each from its own goroutine,
// and returns the events appended.
func appendConcurrently(t *testing.T, l eventlog.Log, writers [][2]string, perWriter int) int {
	t.Helper()
	ctx := testCtx(t)
	var wg sync.WaitGroup
	errs := make(chan error, len(writers))
	for _, w := range writers {
		wg.Go(func() {
			var seq uint64
			for seq < uint64(perWriter) {
				n := 1 + 2*int(seq%2) // 1, 3, 1, 3 ...: single publishes and atomic batches
				n = min(n, perWriter-int(seq))
				events := make([]eventlog.Event, n)
				for i := range events {
					events[i] = eventlog.Event{Name: "E", Data: fmt.Appendf(nil, "%s/%s#%d", w[0], w[1], seq+uint64(i)+1)}
				}
				if _, err := l.Append(ctx, w[0], w[1], seq, events...); err != nil {
					errs <- err
					return
				}
				seq += uint64(n)
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	return len(writers) * perWriter
}

var threeTypes = [][2]string{
	{"Order", "o1"}, {"Order", "o2"}, {"Payment", "p1"}, {"Payment", "p.2"}, {"Ship ment", "s1"}, {"Ship ment", "s2"},
}

// TestReadAll checks ReadAll over events of three types written by
// concurrent writers: every event once, in Position order, the same
// records as ReadType gives; a set of types yields exactly the records of
// those types, a type named twice counting once.
func TestReadAll(t *testing.T) {
	_, js := setup(t)
	l := newLog(t, js)
	ctx := testCtx(t)
	total := appendConcurrently(t, l, threeTypes, 40)

	all := collect(t, l.ReadAll(ctx, 0))
	if len(all) != total {
		t.Fatalf("ReadAll yielded %d records, want %d", len(all), total)
	}
	checkOrder(t, "ReadAll", all)
	for _, r := range all {
		if want := fmt.Sprintf("%s/%s#%d", r.EntityType, r.EntityID, r.Seq); string(r.Data) != want || r.Name != "E" || r.Time.IsZero() {
			t.Fatalf("record %s: data %q, name %q, time %v; want data %q, name E and a time", key(r), r.Data, r.Name, r.Time, want)
		}
	}
	for _, typ := range []string{"Order", "Payment", "Ship ment"} {
		byType := collect(t, l.ReadType(ctx, typ, 0))
		if got, want := keys(ofTypes(all, typ)), keys(byType); !slices.Equal(got, want) {
			t.Errorf("ReadAll's records of %s differ from ReadType's:\n got %q\nwant %q", typ, got, want)
		}
		if got, want := keys(collect(t, l.ReadAll(ctx, 0, typ))), keys(byType); !slices.Equal(got, want) {
			t.Errorf("ReadAll(%s) differs from ReadType:\n got %q\nwant %q", typ, got, want)
		}
	}
	for _, types := range [][]string{
		{"Order", "Ship ment"},
		{"Ship ment", "Order", "Ship ment"},
		{"Payment", "Order", "Ship ment"},
		{"Payment", "None"},
		{"None", "Nothing"},
	} {
		got := keys(collect(t, l.ReadAll(ctx, 0, types...)))
		if want := keys(ofTypes(all, types...)); !slices.Equal(got, want) {
			t.Errorf("ReadAll(%q):\n got %q\nwant %q", types, got, want)
		}
	}
	// Resuming after any Position yields the rest, whatever types came
	// before it.
	for _, i := range []int{0, 1, total / 3, total - 2, total - 1} {
		after := all[i].Position
		if got, want := keys(collect(t, l.ReadAll(ctx, after))), keys(all[i+1:]); !slices.Equal(got, want) {
			t.Errorf("ReadAll after %d:\n got %q\nwant %q", after, got, want)
		}
		if got, want := keys(collect(t, l.ReadAll(ctx, after, "Order", "Payment"))), keys(ofTypes(all[i+1:], "Order", "Payment")); !slices.Equal(got, want) {
			t.Errorf("ReadAll(Order, Payment) after %d:\n got %q\nwant %q", after, got, want)
		}
	}
	if got := collect(t, l.ReadAll(ctx, math.MaxUint64)); len(got) != 0 {
		t.Errorf("ReadAll after MaxUint64 yielded %q", keys(got))
	}
	// Breaking out of the loop stops the read.
	n := 0
	for _, err := range l.ReadAll(ctx, 0) {
		if err != nil {
			t.Fatal(err)
		}
		if n++; n == 3 {
			break
		}
	}
}

// TestReadAllLongRead reads more events than one direct get returns, so
// the read takes several pages, with a set of types whose events are
// sparse among the others.
func TestReadAllLongRead(t *testing.T) {
	_, js := setup(t)
	l := newLog(t, js)
	ctx := testCtx(t)
	var want []string
	for i := range 700 {
		typ := "Bulk"
		if i%100 == 0 {
			typ = "Rare"
		}
		id := fmt.Sprintf("e%d", i%7)
		seq, err := l.LastSeq(ctx, typ, id)
		if err != nil {
			t.Fatal(err)
		}
		pos := mustAppend(t, l, typ, id, seq, ev("x"))
		if typ == "Rare" {
			want = append(want, fmt.Sprintf("%s/%s#%d@%d", typ, id, seq+1, pos))
		}
	}
	all := collect(t, l.ReadAll(ctx, 0))
	if len(all) != 700 {
		t.Errorf("ReadAll yielded %d records, want 700", len(all))
	}
	checkOrder(t, "ReadAll", all)
	if got := keys(collect(t, l.ReadAll(ctx, 0, "Rare", "Missing"))); !slices.Equal(got, want) {
		t.Errorf("ReadAll(Rare, Missing):\n got %q\nwant %q", got, want)
	}
}

// TestReadAllSkipsDeleted checks that ReadAll and SubscribeAll skip events
// deleted with DeleteTo and DeleteStream, their markers and tombstones, and
// the subjects that list tombstoned entities.
func TestReadAllSkipsDeleted(t *testing.T) {
	_, js := setup(t)
	l := newLog(t, js)
	ctx := testCtx(t)
	mustAppend(t, l, "A", "x", 0, evs("x", 3)...)
	mustAppend(t, l, "B", "y", 0, evs("y", 2)...)
	mustAppend(t, l, "A", "z", 0, evs("z", 2)...)
	mustAppend(t, l, "B", "w", 0, evs("w", 1)...)
	if err := l.DeleteTo(ctx, "A", "x", 2); err != nil {
		t.Fatal(err)
	}
	if err := l.DeleteTo(ctx, "B", "w", 1); err != nil { // leaves a marker only
		t.Fatal(err)
	}
	if _, err := l.DeleteStream(ctx, "B", "y", false); err != nil {
		t.Fatal(err)
	}
	if _, err := l.DeleteStream(ctx, "A", "z", true); err != nil {
		t.Fatal(err)
	}
	if _, err := l.DeleteStream(ctx, "A", "never", false); err != nil { // a tombstone at Seq 0
		t.Fatal(err)
	}
	mustAppend(t, l, "A", "z", 2, ev("z-3"))
	want := []string{"A/x#3", "A/z#3"}
	names := func(recs []eventlog.Record) []string {
		out := make([]string, len(recs))
		for i, r := range recs {
			out[i] = fmt.Sprintf("%s/%s#%d", r.EntityType, r.EntityID, r.Seq)
		}
		return out
	}
	for _, types := range [][]string{nil, {"A"}, {"A", "B"}} {
		if got := names(collect(t, l.ReadAll(ctx, 0, types...))); !slices.Equal(got, want) {
			t.Errorf("ReadAll(%q) = %q, want %q", types, got, want)
		}
		sctx, cancel := context.WithCancel(ctx)
		var got []eventlog.Record
		for r, err := range l.SubscribeAll(sctx, 0, types...) {
			if errors.Is(err, context.Canceled) {
				break
			}
			if err != nil {
				t.Fatal(err)
			}
			if got = append(got, r); len(got) == len(want) {
				cancel()
			}
		}
		cancel()
		if !slices.Equal(names(got), want) {
			t.Errorf("SubscribeAll(%q) = %q, want %q", types, names(got), want)
		}
	}
	if got := collect(t, l.ReadAll(ctx, 0, "B")); len(got) != 0 {
		t.Errorf("ReadAll(B) = %q, want nothing", keys(got))
	}
}

// TestReadAllInvalidTypes checks that a bad type anywhere in the set fails
// ReadAll and SubscribeAll with ErrInvalid before any I/O: here, on a Log
// whose server is gone, which would fail anything sent.
func TestReadAllInvalidTypes(t *testing.T) {
	srv, js := setup(t)
	l := newLog(t, js)
	ctx := testCtx(t)
	srv.Shutdown()
	for _, types := range [][]string{
		{""},
		{"A", ""},
		{"A", strings.Repeat("t", eventlog.MaxTypeLen+1)},
		{"A", "bad\x00type"},
		{"A", string([]byte{0xff})},
	} {
		for what, read := range map[string]func(context.Context, uint64, ...string) iter.Seq2[eventlog.Record, error]{
			"ReadAll":      l.ReadAll,
			"SubscribeAll": l.SubscribeAll,
		} {
			var errs []error
			start := time.Now()
			for _, err := range read(ctx, 0, types...) {
				errs = append(errs, err)
			}
			if len(errs) != 1 || !errors.Is(errs[0], eventlog.ErrInvalid) {
				t.Errorf("%s(%q) yielded %v, want one ErrInvalid", what, types, errs)
			}
			if took := time.Since(start); took > 100*time.Millisecond {
				t.Errorf("%s(%q) took %v", what, types, took)
			}
		}
	}
}

// TestSubscribeAllLive follows three types while concurrent writers append
// to them: the subscription over every type, one over two types and
// readers that poll ReadAll, each resuming after the last Position it
// saw, all end with every event of their types once, in Position order:
// none skips an event that commits after one with a larger Position.
func TestSubscribeAllLive(t *testing.T) {
	_, js := setup(t)
	l := newLog(t, js)
	ctx := testCtx(t)
	mustAppend(t, l, "Order", "before", 0, ev("b"))
	subCtx, stop := context.WithCancel(ctx)
	defer stop()
	type result struct {
		recs []eventlog.Record
		err  error
	}
	var yielded atomic.Int64 // by the subscriptions
	follow := func(seq func(func(eventlog.Record, error) bool)) chan result {
		out := make(chan result, 1)
		go func() {
			var res result
			for r, err := range seq {
				if err != nil {
					if !errors.Is(err, context.Canceled) {
						res.err = err
					}
					break
				}
				res.recs = append(res.recs, r)
				yielded.Add(1)
			}
			out <- res
		}()
		return out
	}
	poll := func(types ...string) chan result {
		out := make(chan result, 1)
		go func() {
			var res result
			var after uint64
			for {
				done := subCtx.Err() != nil // one more read after the end
				for r, err := range l.ReadAll(ctx, after, types...) {
					if err != nil {
						res.err = err
						out <- res
						return
					}
					res.recs = append(res.recs, r)
					after = r.Position
				}
				if done {
					out <- res
					return
				}
			}
		}()
		return out
	}
	everyType := follow(l.SubscribeAll(subCtx, 0))
	twoTypes := follow(l.SubscribeAll(subCtx, 0, "Payment", "Order"))
	pollAll := poll()
	pollTwo := poll("Order", "Payment")
	time.Sleep(100 * time.Millisecond) // the subscriptions are waiting
	appendConcurrently(t, l, threeTypes, 60)

	all := collect(t, l.ReadAll(ctx, 0))
	checkOrder(t, "ReadAll", all)
	wantAll, wantTwo := keys(all), keys(ofTypes(all, "Order", "Payment"))
	// Wait for the subscriptions to see the last events, and a little
	// longer for any they should not yield, then stop them.
	for deadline := time.Now().Add(20 * time.Second); yielded.Load() < int64(len(wantAll)+len(wantTwo)) && time.Now().Before(deadline); {
		time.Sleep(10 * time.Millisecond)
	}
	time.Sleep(200 * time.Millisecond)
	stop()
	for _, c := range []struct {
		what string
		res  chan result
		want []string
	}{
		{"SubscribeAll()", everyType, wantAll},
		{"SubscribeAll(Payment, Order)", twoTypes, wantTwo},
		{"ReadAll() polled", pollAll, wantAll},
		{"ReadAll(Order, Payment) polled", pollTwo, wantTwo},
	} {
		res := <-c.res
		if res.err != nil {
			t.Errorf("%s: %v", c.what, res.err)
			continue
		}
		if got := keys(res.recs); !slices.Equal(got, c.want) {
			t.Errorf("%s yielded %d records, want %d:\n got %q\nwant %q", c.what, len(got), len(c.want), got, c.want)
		}
	}
}

// TestSubscribeAllResume checks that SubscribeAll starts after the
// Position given, yields what comes later as it commits, ends with
// ctx's error or with ErrClosed when the Log closes, and leaves no
// consumer behind.
func TestSubscribeAllResume(t *testing.T) {
	_, js := setup(t)
	l, err := natslog.New(context.Background(), js)
	if err != nil {
		t.Fatal(err)
	}
	ctx := testCtx(t)
	mustAppend(t, l, "A", "1", 0, evs("a", 2)...)
	pos := mustAppend(t, l, "B", "1", 0, ev("b"))
	mustAppend(t, l, "A", "1", 2, ev("a-3"))

	recs := make(chan eventlog.Record, 10)
	ended := make(chan error, 1)
	go func() {
		for r, err := range l.SubscribeAll(ctx, pos, "A", "C") {
			if err != nil {
				ended <- err
				return
			}
			recs <- r
		}
		ended <- nil
	}()
	next := func(want string) {
		t.Helper()
		select {
		case r := <-recs:
			if got := fmt.Sprintf("%s/%s#%d", r.EntityType, r.EntityID, r.Seq); got != want {
				t.Fatalf("SubscribeAll yielded %s, want %s", got, want)
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("SubscribeAll did not yield %s", want)
		}
	}
	next("A/1#3")
	mustAppend(t, l, "B", "1", 1, ev("b-2"))
	mustAppend(t, l, "C", "9", 0, ev("c"))
	next("C/9#1")
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-ended:
		if !errors.Is(err, eventlog.ErrClosed) {
			t.Errorf("SubscribeAll ended with %v, want ErrClosed", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("SubscribeAll did not end after Close")
	}
	if len(recs) != 0 {
		t.Errorf("SubscribeAll yielded %s too", key(<-recs))
	}

	// After the last possible Position nothing comes: the subscription
	// waits for its ctx.
	l = newLog(t, js)
	wctx, cancel := context.WithTimeout(ctx, 200*time.Millisecond)
	defer cancel()
	for r, err := range l.SubscribeAll(wctx, math.MaxUint64) {
		if !errors.Is(err, context.DeadlineExceeded) {
			t.Errorf("SubscribeAll after MaxUint64 yielded %s, %v; want DeadlineExceeded", key(r), err)
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

// TestSubscribeAllAcrossRestart restarts the server under a SubscribeAll
// of two types: it yields every event once, in Position order, those
// appended before, during and after the restart.
func TestSubscribeAllAcrossRestart(t *testing.T) {
	rs := startRestartable(t)
	l := newLog(t, rs.js, natslog.WithTimeout(2*time.Second))
	ctx := testCtx(t)
	appendTo := func(typ, id string, n int) {
		t.Helper()
		for range n {
			for {
				seq, err := l.LastSeq(ctx, typ, id)
				if err == nil {
					_, err = l.Append(ctx, typ, id, seq, ev(fmt.Sprintf("%s-%d", id, seq+1)))
				}
				if err == nil {
					break
				}
				if !errors.Is(err, eventlog.ErrUnavailable) {
					t.Fatal(err)
				}
				time.Sleep(50 * time.Millisecond)
			}
		}
	}
	appendTo("A", "1", 5)
	appendTo("B", "1", 5)

	subCtx, stop := context.WithCancel(ctx)
	defer stop()
	got := make(chan []eventlog.Record, 1)
	subErr := make(chan error, 1)
	seen := make(chan struct{}, 100)
	go func() {
		var recs []eventlog.Record
		defer func() { got <- recs }()
		for r, err := range l.SubscribeAll(subCtx, 0, "A", "B") {
			if err != nil {
				if !errors.Is(err, context.Canceled) {
					subErr <- err
				}
				return
			}
			recs = append(recs, r)
			seen <- struct{}{}
		}
	}()
	for range 10 {
		select {
		case <-seen:
		case <-time.After(10 * time.Second):
			t.Fatal("SubscribeAll did not yield the events appended before the restart")
		}
	}
	rs.stop()
	time.Sleep(300 * time.Millisecond)
	rs.start(t)
	waitConnected(t, rs.nc)
	appendTo("B", "1", 5)
	appendTo("A", "2", 5)
	appendTo("C", "1", 5)

	want := keys(ofTypes(collect(t, l.ReadAll(ctx, 0)), "A", "B"))
	if len(want) != 20 {
		t.Fatalf("ReadAll(A, B) after the restart: %d records, want 20", len(want))
	}
	deadline := time.After(20 * time.Second)
	for range 10 {
		select {
		case <-seen:
		case err := <-subErr:
			t.Fatalf("SubscribeAll failed across the restart: %v", err)
		case <-deadline:
			t.Fatal("SubscribeAll did not yield the events appended after the restart")
		}
	}
	time.Sleep(200 * time.Millisecond) // anything more would be a duplicate
	stop()
	if recs := keys(<-got); !slices.Equal(recs, want) {
		t.Errorf("SubscribeAll across the restart:\n got %q\nwant %q", recs, want)
	}
}
