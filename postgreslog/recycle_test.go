package postgreslog_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/eventsourced-go/eventsourced/eventlog"
	"github.com/eventsourced-go/eventsourced/postgreslog"
)

// TestRecycledRequestsAnswerOnce runs chains of asynchronous appends, each
// started by the answer of the one before (as the entity runtime does), some
// expecting a stale Seq on purpose, on both commit paths. A Log recycles an
// append's request once it has answered it, so a request answered twice,
// or answered with another append's result, would call a done twice or
// give it a Position or conflict of another stream: the test checks that
// every done runs once, with its own append's outcome.
func TestRecycledRequestsAnswerOnce(t *testing.T) {
	forEachPath(t, testRecycledRequestsAnswerOnce)
}

func testRecycledRequestsAnswerOnce(t *testing.T, path postgreslog.Option) {
	pool := postgreslog.NewTestPool(t, nil)
	l := newLogs(t, pool, 1, path)[0]
	ctx := testCtx(t, 60*time.Second)
	const streams, appends = 40, 25
	type answer struct {
		calls atomic.Int32
		pos   uint64
		err   error
	}
	answers := make([][]answer, streams)
	var wg sync.WaitGroup
	for s := range streams {
		answers[s] = make([]answer, appends)
		id := fmt.Sprintf("s%d", s)
		var next func(i int, last uint64)
		next = func(i int, last uint64) {
			if i == appends {
				wg.Done()
				return
			}
			expected := last
			if i%5 == 4 {
				expected = last + 7 // refused: the stream ends at last
			}
			l.AppendAsync(ctx, "recycled", id, expected, events(fmt.Sprintf("%s-%d", id, i), 1), func(pos uint64, err error) {
				a := &answers[s][i]
				a.pos, a.err = pos, err
				if a.calls.Add(1) != 1 {
					return // reported below
				}
				if err == nil {
					last++
				}
				next(i+1, last)
			})
		}
		wg.Add(1)
		go next(0, 0)
	}
	wg.Wait()
	time.Sleep(50 * time.Millisecond) // room for a wrong second answer
	for s := range streams {
		id := fmt.Sprintf("s%d", s)
		recs := readAll(t, ctx, l, "recycled", id)
		byName := make(map[string]eventlog.Record, len(recs))
		for _, r := range recs {
			byName[r.Name] = r
		}
		var last uint64
		for i := range appends {
			a := &answers[s][i]
			if n := a.calls.Load(); n != 1 {
				t.Errorf("%s append %d: done called %d times, want once", id, i, n)
				continue
			}
			rec, stored := byName[fmt.Sprintf("%s-%d-1", id, i)]
			var ce *eventlog.ConflictError
			switch {
			case i%5 == 4:
				if !errors.As(a.err, &ce) || ce.EntityID != id || ce.Expected != last+7 || ce.Actual != last {
					t.Errorf("%s append %d: %v, want a conflict of %s with Expected %d and Actual %d", id, i, a.err, id, last+7, last)
				}
				if stored {
					t.Errorf("%s append %d: refused, but its event is stored", id, i)
				}
			case a.err != nil:
				t.Errorf("%s append %d: %v", id, i, a.err)
			case !stored || rec.Seq != last+1 || rec.Position != a.pos:
				t.Errorf("%s append %d: answered Position %d, stored %+v, want Seq %d at that Position", id, i, a.pos, rec, last+1)
			default:
				last++
			}
		}
	}
}

// TestRecycledRequestsAnswerOnceAcrossClose closes a Log while
// asynchronous appends pour in, every other one through AppendRound, and
// checks that each append is answered exactly once, by a commit or with
// ErrClosed, and that every round's channel closes, after its done.
func TestRecycledRequestsAnswerOnceAcrossClose(t *testing.T) {
	pool := postgreslog.NewTestPool(t, nil)
	l := newLogs(t, pool, 1)[0]
	ctx := testCtx(t, 60*time.Second)
	const senders, each = 8, 200
	calls := make([]atomic.Int32, senders*each)
	rounds := make([]<-chan struct{}, senders*each)
	var answered sync.WaitGroup
	answered.Add(senders * each)
	var sent sync.WaitGroup
	for g := range senders {
		sent.Go(func() {
			for i := range each {
				n := g*each + i
				done := func(_ uint64, err error) {
					if err != nil && !errors.Is(err, eventlog.ErrClosed) {
						t.Errorf("append %d: %v, want success or ErrClosed", n, err)
					}
					if calls[n].Add(1) == 1 {
						answered.Done()
					}
				}
				if n%2 == 1 {
					rounds[n] = l.AppendRound(ctx, "closing", fmt.Sprintf("s%d", n), 0, events("e", 1), done)
					continue
				}
				l.AppendAsync(ctx, "closing", fmt.Sprintf("s%d", n), 0, events("e", 1), done)
			}
		})
	}
	time.Sleep(5 * time.Millisecond)
	if err := l.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	sent.Wait()
	done := make(chan struct{})
	go func() { answered.Wait(); close(done) }()
	select {
	case <-done:
	case <-ctx.Done():
		t.Fatal("not every append was answered")
	}
	for n, ch := range rounds {
		if ch == nil {
			continue
		}
		select {
		case <-ch:
		case <-ctx.Done():
			t.Fatalf("append %d: AppendRound's channel never closed", n)
		}
	}
	time.Sleep(50 * time.Millisecond) // room for a wrong second answer
	for n := range calls {
		if c := calls[n].Load(); c != 1 {
			t.Errorf("append %d: done called %d times, want once", n, c)
		}
	}
}

// TestKnownStreamDeletedElsewhere checks that a stream deleted for good by
// another Log refuses the appends of a Log that still vouches for its last
// Seq, though that Log has never seen a row of the streams table and so
// skips checking the streams it vouches for until a round finds one.
func TestKnownStreamDeletedElsewhere(t *testing.T) {
	forEachPath(t, testKnownStreamDeletedElsewhere)
}

func testKnownStreamDeletedElsewhere(t *testing.T, path postgreslog.Option) {
	pool := postgreslog.NewTestPool(t, nil)
	logs := newLogs(t, pool, 2, path)
	a, b := logs[0], logs[1]
	ctx := testCtx(t, 30*time.Second)
	mustAppend(t, ctx, a, "kept", "s", 0, events("a", 2)...)
	if _, err := b.DeleteStream(ctx, "kept", "s", false); err != nil {
		t.Fatalf("DeleteStream: %v", err)
	}
	for range 2 { // the round that finds the streams table's row, and one after
		_, err := a.Append(ctx, "kept", "s", 2, events("a", 1)...)
		var de *eventlog.DeletedError
		if !errors.As(err, &de) || de.Seq != 2 {
			t.Fatalf("append to a stream deleted elsewhere: %v, want a DeletedError at Seq 2", err)
		}
	}
	mustAppend(t, ctx, a, "kept", "t", 0, events("a", 1)...)
}

// TestDeleteToWaitsForTheRoundInFlight checks that DeleteTo runs between
// group-commit rounds, not inside one: while a transaction holds the
// Position lock (as a round does from taking Positions to its commit), a
// DeleteTo waits, and it deletes once the lock is released. A round checks
// a stream it vouches for through the primary key alone, so a delete of the
// stream's newest events committing within the round would free their Seqs
// for a stale writer.
func TestDeleteToWaitsForTheRoundInFlight(t *testing.T) {
	pool := postgreslog.NewTestPool(t, nil)
	l := newLogs(t, pool, 1)[0]
	ctx := testCtx(t, 30*time.Second)
	mustAppend(t, ctx, l, "del", "s", 0, events("a", 3)...)
	release := postgreslog.HoldPositions(t, pool, l)
	short, cancel := context.WithTimeout(ctx, 300*time.Millisecond)
	err := l.DeleteTo(short, "del", "s", 3)
	cancel()
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("DeleteTo while the Position lock is held: %v, want it to wait until its deadline", err)
	}
	if n := countEvents(t, ctx, l, "del", "s"); n != 3 {
		t.Fatalf("%d events after the DeleteTo that timed out, want 3", n)
	}
	done := make(chan error, 1)
	go func() { done <- l.DeleteTo(ctx, "del", "s", 3) }()
	time.Sleep(100 * time.Millisecond)
	select {
	case err := <-done:
		t.Fatalf("DeleteTo returned %v while the Position lock was held", err)
	default:
	}
	release()
	if err := <-done; err != nil {
		t.Fatalf("DeleteTo after the release: %v", err)
	}
	if n := countEvents(t, ctx, l, "del", "s"); n != 0 {
		t.Errorf("%d events after DeleteTo(3), want 0", n)
	}
	if seq, err := l.LastSeq(ctx, "del", "s"); err != nil || seq != 3 {
		t.Errorf("LastSeq = %d, %v; want 3", seq, err)
	}
}

func countEvents(t *testing.T, ctx context.Context, l *postgreslog.Log, typ, id string) int {
	t.Helper()
	n := 0
	for _, err := range l.ReadEntity(ctx, typ, id, 1) {
		if err != nil {
			t.Fatal(err)
		}
		n++
	}
	return n
}
