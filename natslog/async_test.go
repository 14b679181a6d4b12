package natslog_test

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/eventsourced-go/eventsourced/eventlog"
	"github.com/eventsourced-go/eventsourced/natslog"
)

// asyncResult is what one AppendAsync's done got, and how often.
type asyncResult struct {
	calls atomic.Int32
	pos   uint64
	err   error
	at    time.Time
	done  chan struct{} // closed by the first call
}

func newAsyncResult() *asyncResult { return &asyncResult{done: make(chan struct{})} }

// fn is the done func of the append.
func (r *asyncResult) fn(pos uint64, err error) {
	if r.calls.Add(1) == 1 {
		r.pos, r.err, r.at = pos, err, time.Now()
		close(r.done)
	}
}

// wait waits at most d for done, and fails t if it does not come.
func (r *asyncResult) wait(t *testing.T, what string, d time.Duration) {
	t.Helper()
	select {
	case <-r.done:
	case <-time.After(d):
		t.Fatalf("%s: done not called within %v", what, d)
	}
}

// checkOnce fails t for every result whose done was called other than
// once, after waiting a little for extra calls.
func checkOnce(t *testing.T, results []*asyncResult) {
	t.Helper()
	time.Sleep(50 * time.Millisecond)
	for i, r := range results {
		if n := r.calls.Load(); n != 1 {
			t.Errorf("append %d: done called %d times, want once", i, n)
		}
	}
}

// Many entities append at once through AppendAsync, each one event after
// the other as the entity runtime does (the next append issued from the
// previous one's done), and every third append is followed at once by a
// second one expecting its result, before its done: done is called exactly
// once per append, every append lands or fails with a conflict, no Seq is
// stored twice, and every acknowledged event is at the Position its done
// reported.
func TestAppendAsyncDoneOnceConcurrent(t *testing.T) {
	_, js := setup(t)
	l := newLog(t, js)
	ctx := testCtx(t)
	const (
		entities = 40
		rounds   = 15 // appends of each entity's chain that land
		typ      = "async"
	)
	type ack struct {
		name string
		pos  uint64
	}
	var mu sync.Mutex // guards results, acked and landed
	var results []*asyncResult
	acked := make(map[string]map[uint64]ack) // id -> Seq -> what landed there
	landed := make(map[string]int)           // id -> appends of the chain that landed
	var wg sync.WaitGroup                    // counts the appends and the goroutines that go on
	var stop atomic.Bool                     // set when the test gives up
	appendAsync := func(id string, expected uint64, name string, then func(err error)) {
		r := newAsyncResult()
		mu.Lock()
		results = append(results, r)
		mu.Unlock()
		wg.Add(1)
		l.AppendAsync(ctx, typ, id, expected, []eventlog.Event{ev(name)}, func(pos uint64, err error) {
			defer wg.Done()
			r.fn(pos, err)
			if err != nil && !errors.Is(err, eventlog.ErrConflict) {
				t.Errorf("%s: append expecting %d: %v, want success or a conflict", id, expected, err)
			}
			if err == nil {
				mu.Lock()
				if prev, ok := acked[id][expected+1]; ok {
					t.Errorf("%s: Seq %d acknowledged twice: %s at %d and %s at %d", id, expected+1, prev.name, prev.pos, name, pos)
				}
				acked[id][expected+1] = ack{name, pos}
				mu.Unlock()
			}
			if then != nil && !stop.Load() {
				// done must not call the log: go on from another goroutine.
				wg.Add(1)
				go func() {
					defer wg.Done()
					then(err)
				}()
			}
		})
	}
	var chain func(id string, expected uint64, n int)
	chain = func(id string, expected uint64, n int) {
		if n == rounds {
			return
		}
		appendAsync(id, expected, fmt.Sprintf("c%d", n), func(err error) {
			if err == nil {
				mu.Lock()
				landed[id]++
				mu.Unlock()
				chain(id, expected+1, n+1)
				return
			}
			// A pipelined append took the Seq: go on after it.
			last, err := l.LastSeq(ctx, typ, id)
			if err != nil {
				t.Errorf("%s: %v", id, err)
				return
			}
			chain(id, last, n)
		})
		if n%3 == 0 {
			appendAsync(id, expected+1, "pipelined", nil)
		}
	}
	for i := range entities {
		acked["e"+strconv.Itoa(i)] = make(map[uint64]ack)
	}
	for i := range entities {
		wg.Go(func() { chain("e"+strconv.Itoa(i), 0, 0) })
	}
	deadline := time.Now().Add(60 * time.Second)
	for {
		mu.Lock()
		n := 0
		for _, c := range landed {
			n += c
		}
		mu.Unlock()
		if n == entities*rounds || t.Failed() {
			stop.Store(true)
			break
		}
		if time.Now().After(deadline) {
			stop.Store(true)
			wg.Wait()
			t.Fatalf("%d of %d appends landed after 60s", n, entities*rounds)
		}
		time.Sleep(10 * time.Millisecond)
	}
	wg.Wait()
	mu.Lock()
	defer mu.Unlock()
	checkOnce(t, results)
	stored := 0
	for i := range entities {
		id := "e" + strconv.Itoa(i)
		recs := collect(t, l.ReadEntity(ctx, typ, id, 1))
		stored += len(recs)
		if got := seqsOf(recs); !equal(got, span(1, uint64(len(recs)))) {
			t.Fatalf("%s: Seqs %v, want 1..%d with none twice", id, got, len(recs))
		}
		if len(recs) != len(acked[id]) {
			t.Errorf("%s: %d events stored, %d acknowledged", id, len(recs), len(acked[id]))
		}
		for _, rec := range recs {
			if a := acked[id][rec.Seq]; a.pos != rec.Position || a.name != rec.Name {
				t.Errorf("%s: Seq %d is %s at Position %d, acknowledged as %s at %d", id, rec.Seq, rec.Name, rec.Position, a.name, a.pos)
			}
		}
	}
	t.Logf("%d appends, %d landed", len(results), stored)
}

func equal(a, b []uint64) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// Appends whose acks never come, the server not answering while the
// connection stays up, fail by their ctx's deadline (or the Log's timeout
// without one), with an error that leaves the outcome unknown: no timer
// or goroutine per append, the Log's sweeper ends them. The Log then
// forgets what it remembered, so the next append looks the entity up.
func TestAppendAsyncStalledDeadline(t *testing.T) {
	_, p, _, js := proxied(t)
	l := newLog(t, js, natslog.WithTimeout(time.Second))
	ctx := testCtx(t)
	for i := range 10 {
		mustAppend(t, l, "stall", strconv.Itoa(i), 0, ev("one"))
	}
	p.Stall()
	const deadline = 300 * time.Millisecond
	withDeadline, cancel := context.WithTimeout(ctx, deadline)
	defer cancel()
	start := time.Now()
	var results []*asyncResult
	for i := range 10 {
		r := newAsyncResult()
		results = append(results, r)
		c := withDeadline
		if i%2 == 1 {
			c = context.WithoutCancel(ctx) // the Log's timeout
		}
		l.AppendAsync(c, "stall", strconv.Itoa(i), 1, []eventlog.Event{ev("two")}, r.fn)
	}
	for i, r := range results {
		r.wait(t, fmt.Sprintf("append %d", i), 10*time.Second)
		want := deadline
		if i%2 == 1 {
			want = time.Second
		}
		if took := r.at.Sub(start); took < want || took > want+slack {
			t.Errorf("append %d: done after %v, want %v give or take the sweeper's period", i, took.Round(time.Millisecond), want)
		}
		if !errors.Is(r.err, context.DeadlineExceeded) {
			t.Errorf("append %d: %v, want context.DeadlineExceeded", i, r.err)
		}
	}
	checkOnce(t, results)
	p.Resume()
	// Whether the stalled appends landed is unknown, and they may land
	// still as the proxy forwards what it held: the Log looks each time.
	for i := range 10 {
		var err error
		for range 5 {
			var last uint64
			if last, err = l.LastSeq(ctx, "stall", strconv.Itoa(i)); err != nil {
				t.Fatal(err)
			}
			if _, err = l.Append(ctx, "stall", strconv.Itoa(i), last, ev("three")); !errors.Is(err, eventlog.ErrConflict) {
				break
			}
			time.Sleep(50 * time.Millisecond)
		}
		if err != nil {
			t.Fatalf("append after the stall: %v", err)
		}
	}
}

// Appends in flight when the server stops fail with an error matching
// ErrUnavailable (their outcome is unknown) at once, not at their
// deadline; those acknowledged before are stored.
func TestAppendAsyncServerStopped(t *testing.T) {
	srv, err := natslog.StartEmbedded(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Shutdown()
	nc, err := srv.Connect(nats.ErrorHandler(func(*nats.Conn, *nats.Subscription, error) {}))
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	ctx := testCtx(t)
	if err := natslog.Setup(ctx, js); err != nil {
		t.Fatal(err)
	}
	l := newLog(t, js)
	const n = 2000
	long, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	results := make([]*asyncResult, n)
	for i := range n {
		results[i] = newAsyncResult()
		l.AppendAsync(long, "stop", strconv.Itoa(i), 0, []eventlog.Event{ev("one")}, results[i].fn)
		if i == n/2 {
			go srv.Shutdown()
		}
	}
	stopped := time.Now()
	failed := 0
	for i, r := range results {
		r.wait(t, fmt.Sprintf("append %d", i), 10*time.Second)
		if r.err == nil {
			continue
		}
		failed++
		if !errors.Is(r.err, natslog.ErrUnavailable) || !errors.Is(r.err, eventlog.ErrUnavailable) {
			t.Errorf("append %d: %v, want ErrUnavailable", i, r.err)
		}
		if took := r.at.Sub(stopped); took > 5*time.Second {
			t.Errorf("append %d: failed %v after the server stopped, want at once", i, took.Round(time.Millisecond))
		}
	}
	checkOnce(t, results)
	if failed == 0 {
		t.Fatal("no append failed although the server stopped with appends in flight")
	}
	t.Logf("%d of %d appends failed", failed, n)
}

// Closing the Log with appends in flight calls each one's done, with
// ErrClosed, before Close returns; those issued after fail with ErrClosed
// at once.
func TestAppendAsyncClose(t *testing.T) {
	_, p, _, js := proxied(t)
	l, err := natslog.New(context.Background(), js)
	if err != nil {
		t.Fatal(err)
	}
	ctx := testCtx(t)
	mustAppend(t, l, "close", "known", 0, ev("one"))
	p.Stall()
	var results []*asyncResult
	for i := range 20 {
		r := newAsyncResult()
		results = append(results, r)
		switch i % 3 {
		case 0: // the pipeline: one event, the last sequence remembered
			l.AppendAsync(ctx, "close", strconv.Itoa(i), 0, []eventlog.Event{ev("one")}, r.fn)
		case 1: // a lookup first, on a goroutine
			l.AppendAsync(ctx, "close", "known", 5, []eventlog.Event{ev("x")}, r.fn)
		default: // an atomic batch, on a goroutine
			l.AppendAsync(ctx, "close", strconv.Itoa(i), 0, evs("b", 2), r.fn)
		}
	}
	time.Sleep(100 * time.Millisecond)
	within(t, "Close", 5*time.Second, func() error { return l.Close() })
	for i, r := range results {
		select {
		case <-r.done:
		default:
			t.Fatalf("append %d: done not called when Close returned", i)
		}
		if !errors.Is(r.err, eventlog.ErrClosed) {
			t.Errorf("append %d: %v, want ErrClosed", i, r.err)
		}
	}
	after := newAsyncResult()
	l.AppendAsync(ctx, "close", "known", 1, []eventlog.Event{ev("two")}, after.fn)
	after.wait(t, "append after Close", time.Second)
	if !errors.Is(after.err, eventlog.ErrClosed) {
		t.Errorf("append after Close: %v, want ErrClosed", after.err)
	}
	checkOnce(t, append(results, after))
	// The proxy never forwards what it holds: a server that took an
	// atomic batch as its client leaves may still write its staging files
	// when the test removes its directory.
}
