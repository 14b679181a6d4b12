package postgreslog_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/eventsourced-go/eventsourced/eventlog"
	"github.com/eventsourced-go/eventsourced/postgreslog"
)

type streamSeq struct {
	id  string
	seq uint64
}

// TestGapSafeWithConcurrentWriters runs 8 writers, each on its own Log (its
// own group-commit transactions, as separate processes), against one live
// subscriber and one reader that pages with ReadType as fast as it can. Both
// must see every event exactly once in increasing Position order: a Position
// that committed after a larger one would show up as a skip. The
// subscriber's Log appends nothing and polls only every minute, so it can
// only keep up if NOTIFY wakes it.
func TestGapSafeWithConcurrentWriters(t *testing.T) { forEachPath(t, testGapSafeWithConcurrentWriters) }

func testGapSafeWithConcurrentWriters(t *testing.T, path postgreslog.Option) {
	pool := postgreslog.NewTestPool(t, nil)
	const writers, entitiesPerWriter, appendsPerWriter = 8, 4, 60
	logs := newLogs(t, pool, writers+1, postgreslog.WithPollInterval(time.Minute), path)
	reader := logs[writers]
	ctx := testCtx(t, 90*time.Second)
	const typ = "gap"

	subCtx, stopSub := context.WithCancel(ctx)
	defer stopSub()
	type item struct {
		rec eventlog.Record
		err error
	}
	subItems := make(chan item, 8192)
	subDone := make(chan struct{})
	go func() {
		defer close(subDone)
		for r, err := range reader.Subscribe(subCtx, typ, 0) {
			subItems <- item{r, err}
			if err != nil {
				return
			}
		}
	}()

	// The polling reader: ReadType from the last Position it saw, again and
	// again, until the writers are done and it has read everything.
	writersDone := make(chan struct{})
	var polled []eventlog.Record
	pollErr := make(chan error, 1)
	go func() {
		var after uint64
		finalPass := false
		for {
			select {
			case <-writersDone:
				finalPass = true
			default:
			}
			for r, err := range reader.ReadType(ctx, typ, after) {
				if err != nil {
					pollErr <- err
					return
				}
				polled = append(polled, r)
				after = r.Position
			}
			if finalPass {
				pollErr <- nil
				return
			}
		}
	}()

	var mu sync.Mutex // guards want and maxPos
	want := make(map[streamSeq]bool)
	var maxPos uint64
	var wg sync.WaitGroup
	start := make(chan struct{})
	for w := range writers {
		wg.Go(func() {
			<-start
			l := logs[w]
			last := make([]uint64, entitiesPerWriter)
			for i := range appendsPerWriter {
				e := i % entitiesPerWriter
				id := fmt.Sprintf("w%d-e%d", w, e)
				size := 1 + i%3
				pos, err := l.Append(ctx, typ, id, last[e], events("e", size)...)
				if err != nil {
					t.Errorf("writer %d: Append(%s, %d): %v", w, id, last[e], err)
					return
				}
				mu.Lock()
				for range size {
					last[e]++
					want[streamSeq{id, last[e]}] = true
				}
				maxPos = max(maxPos, pos)
				mu.Unlock()
			}
		})
	}
	close(start)
	wg.Wait()
	close(writersDone)
	if t.Failed() {
		return
	}
	if err := <-pollErr; err != nil {
		t.Fatalf("ReadType: %v", err)
	}

	check := func(via string, recs []eventlog.Record) {
		t.Helper()
		seen := make(map[streamSeq]int)
		for i, r := range recs {
			if i > 0 && r.Position <= recs[i-1].Position {
				t.Errorf("%s: Position %d after %d", via, r.Position, recs[i-1].Position)
			}
			k := streamSeq{r.EntityID, r.Seq}
			seen[k]++
			if !want[k] {
				t.Errorf("%s: %v was never appended", via, k)
			}
		}
		for k := range want {
			if seen[k] != 1 {
				t.Errorf("%s: saw %v %d times, want once", via, k, seen[k])
			}
		}
	}
	check("ReadType poller", polled)

	var subbed []eventlog.Record
	deadline := time.After(15 * time.Second)
	for len(subbed) == 0 || subbed[len(subbed)-1].Position < maxPos {
		select {
		case it := <-subItems:
			if it.err != nil {
				t.Fatalf("Subscribe: %v after %d events", it.err, len(subbed))
			}
			subbed = append(subbed, it.rec)
		case <-deadline:
			t.Fatalf("the subscriber got %d of %d events in 15s; with a poll interval of a minute, NOTIFY should have woken it", len(subbed), len(want))
		}
	}
	check("Subscribe", subbed)
	stopSub()
	<-subDone
}

// TestSubscribePollsWithoutNotify turns LISTEN/NOTIFY off: a subscription
// still sees events appended by another Log, by polling.
func TestSubscribePollsWithoutNotify(t *testing.T) {
	pool := postgreslog.NewTestPool(t, nil)
	logs := newLogs(t, pool, 2, postgreslog.WithNotify(false), postgreslog.WithPollInterval(50*time.Millisecond))
	ctx := testCtx(t, 30*time.Second)
	got := make(chan eventlog.Record, 10)
	subCtx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() {
		for r, err := range logs[0].Subscribe(subCtx, "poll", 0) {
			if err != nil {
				done <- err
				return
			}
			got <- r
		}
	}()
	for i := range 3 {
		mustAppend(t, ctx, logs[1], "poll", "p", uint64(i), events("e", 1)...)
		select {
		case r := <-got:
			if r.Seq != uint64(i+1) {
				t.Errorf("got Seq %d, want %d", r.Seq, i+1)
			}
		case <-time.After(5 * time.Second):
			t.Fatalf("event %d not seen by polling within 5s", i+1)
		}
	}
	if pid := postgreslog.ListenerPID(logs[0]); pid != 0 {
		t.Errorf("WithNotify(false) still started a listener (pid %d)", pid)
	}
	cancel()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Errorf("subscription ended with %v, want context.Canceled", err)
	}
}

// TestListenerReconnects kills the listener's connection on the server: the
// Log reconnects, and notifications wake its subscription again. The poll
// interval is a minute, so only a notification can deliver the event in
// time.
func TestListenerReconnects(t *testing.T) {
	pool := postgreslog.NewTestPool(t, nil)
	logs := newLogs(t, pool, 2, postgreslog.WithPollInterval(time.Minute))
	sub, writer := logs[0], logs[1]
	ctx := testCtx(t, 30*time.Second)
	got := make(chan eventlog.Record, 10)
	go func() {
		for r, err := range sub.Subscribe(ctx, "ping", 0) {
			if err != nil {
				return
			}
			got <- r
		}
	}()
	expect := func(seq uint64) {
		t.Helper()
		select {
		case r := <-got:
			if r.Seq != seq {
				t.Fatalf("got Seq %d, want %d", r.Seq, seq)
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("Seq %d not delivered within 10s", seq)
		}
	}
	waitFor(t, 10*time.Second, "the listener", func() bool { return postgreslog.ListenerPID(sub) != 0 })
	mustAppend(t, ctx, writer, "ping", "x", 0, events("e", 1)...)
	expect(1)

	old := postgreslog.ListenerPID(sub)
	var killed bool
	if err := pool.QueryRow(ctx, "SELECT pg_terminate_backend($1)", int32(old)).Scan(&killed); err != nil || !killed {
		t.Fatalf("pg_terminate_backend(%d): %v, %v", old, killed, err)
	}
	waitFor(t, 10*time.Second, "a new listener connection", func() bool {
		pid := postgreslog.ListenerPID(sub)
		return pid != 0 && pid != old
	})
	mustAppend(t, ctx, writer, "ping", "x", 1, events("e", 1)...)
	expect(2)
}
