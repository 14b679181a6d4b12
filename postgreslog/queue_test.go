package postgreslog

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/eventsourced-go/eventsourced/eventlog"
	"github.com/eventsourced-go/eventsourced/internal/rounds"
)

func queuedReq(events, size int) *appendReq {
	return &appendReq{events: make([]reqEvent, events), size: size}
}

func isClosed(ch <-chan struct{}) bool {
	select {
	case <-ch:
		return true
	default:
		return false
	}
}

// TestQueueTakesWholeSegments: appends queue in segments of at most
// maxEvents events and maxBytes bytes; a take returns whole segments, as
// many as fit, and the round appends of a segment share one channel that
// closes only once the segment is closed and all of them left.
func TestQueueTakesWholeSegments(t *testing.T) {
	q := newAppendQueue(10, 1000, 100)
	ctx := context.Background()
	var chans []<-chan struct{}
	var reqs []*appendReq
	// Events 4+4 fit a segment; the third (4) opens a second one; a
	// byte-heavy fourth opens a third.
	for _, ev := range []struct{ events, size int }{{4, 10}, {4, 10}, {4, 10}, {1, 995}} {
		r := queuedReq(ev.events, ev.size)
		ch, err := q.push(ctx, nil, r, true)
		if err != nil {
			t.Fatal(err)
		}
		reqs, chans = append(reqs, r), append(chans, ch)
	}
	if chans[0] != chans[1] || chans[1] == chans[2] || chans[2] == chans[3] {
		t.Fatal("segments: want appends 1-2 to share a channel and 3 and 4 to have their own")
	}
	if got := len(q.segs); got != 3 {
		t.Fatalf("%d segments, want 3", got)
	}
	// One take: segment 1 (8 events) fits, segment 2 would make 12 > 10.
	batch := q.take(nil)
	if len(batch) != 2 || batch[0] != reqs[0] || batch[1] != reqs[1] {
		t.Fatalf("first take: %d appends, want the first 2", len(batch))
	}
	if isClosed(chans[0]) {
		t.Fatal("the first segment's channel closed before its appends were answered")
	}
	for _, r := range batch {
		r.group.Leave()
	}
	if !isClosed(chans[0]) {
		t.Fatal("the first segment's channel is open once both appends left")
	}
	// The next take: segment 2 (4 events, 10 bytes) and 3 (1 event, 995
	// bytes) would be 1005 bytes > 1000: segment 2 alone.
	if batch = q.take(batch[:0]); len(batch) != 1 || batch[0] != reqs[2] {
		t.Fatalf("second take: %d appends, want the third", len(batch))
	}
	// The open segment: taken, so sealed; its channel closes once its
	// append left.
	if batch = q.take(batch[:0]); len(batch) != 1 || batch[0] != reqs[3] {
		t.Fatalf("third take: %d appends, want the fourth", len(batch))
	}
	reqs[3].group.Leave()
	if !isClosed(chans[3]) {
		t.Fatal("the last segment's channel is open though it was taken and its append left")
	}
	// An append after the take opens a new segment and group.
	ch, err := q.push(ctx, nil, queuedReq(1, 1), true)
	if err != nil || ch == chans[3] || isClosed(ch) {
		t.Fatalf("push after the take: %v, same channel %v, closed %v; want a fresh open one", err, ch == chans[3], isClosed(ch))
	}
	if batch = q.take(batch[:0]); len(batch) != 1 {
		t.Fatalf("take: %d appends, want 1", len(batch))
	}
	if batch = q.take(batch[:0]); len(batch) != 0 {
		t.Fatalf("take of an empty queue: %d appends", len(batch))
	}
}

// TestQueueOversizedAppendAlone: an append larger than a transaction's
// budget is a segment of its own and is taken alone.
func TestQueueOversizedAppendAlone(t *testing.T) {
	q := newAppendQueue(10, 1000, 100)
	ctx := context.Background()
	small, big := queuedReq(2, 10), queuedReq(20, 10)
	for _, r := range []*appendReq{small, big, queuedReq(2, 10)} {
		if _, err := q.push(ctx, nil, r, false); err != nil {
			t.Fatal(err)
		}
	}
	if batch := q.take(nil); len(batch) != 1 || batch[0] != small {
		t.Fatalf("first take: %d appends, want the small one alone", len(batch))
	}
	if batch := q.take(nil); len(batch) != 1 || batch[0] != big {
		t.Fatalf("second take: %d appends, want the oversized one alone", len(batch))
	}
	if batch := q.take(nil); len(batch) != 1 {
		t.Fatalf("third take: %d appends, want 1", len(batch))
	}
}

// TestQueueBackPressure: a push into a full queue waits for room, no
// longer than its ctx allows, and not after the queue is closed; a take
// makes room and wakes it.
func TestQueueBackPressure(t *testing.T) {
	q := newAppendQueue(10, 1000, 2)
	ctx := context.Background()
	for range 2 {
		if _, err := q.push(ctx, nil, queuedReq(1, 1), false); err != nil {
			t.Fatal(err)
		}
	}
	short, cancel := context.WithTimeout(ctx, 20*time.Millisecond)
	defer cancel()
	if _, err := q.push(short, nil, queuedReq(1, 1), false); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("push into a full queue with a 20ms deadline: %v, want DeadlineExceeded", err)
	}
	pushed := make(chan error, 1)
	go func() {
		_, err := q.push(ctx, nil, queuedReq(1, 1), false)
		pushed <- err
	}()
	select {
	case err := <-pushed:
		t.Fatalf("push into a full queue returned %v before any take", err)
	case <-time.After(20 * time.Millisecond):
	}
	if batch := q.take(nil); len(batch) != 2 {
		t.Fatalf("take: %d appends, want 2", len(batch))
	}
	if err := <-pushed; err != nil {
		t.Fatalf("push after a take made room: %v", err)
	}
	if got := q.len(); got != 1 {
		t.Fatalf("queued %d, want 1", got)
	}
	// A push waiting for room fails once the queue closes.
	if _, err := q.push(ctx, nil, queuedReq(1, 1), false); err != nil {
		t.Fatal(err)
	}
	go func() {
		_, err := q.push(ctx, nil, queuedReq(1, 1), false)
		pushed <- err
	}()
	time.Sleep(10 * time.Millisecond)
	q.close()
	if err := <-pushed; !errors.Is(err, eventlog.ErrClosed) {
		t.Fatalf("push waiting when the queue closed: %v, want ErrClosed", err)
	}
	if _, err := q.push(ctx, nil, queuedReq(1, 1), true); !errors.Is(err, eventlog.ErrClosed) {
		t.Fatalf("push after close: %v, want ErrClosed", err)
	}
	// What was queued stays for the workers to fail.
	if batch := q.take(nil); len(batch) != 2 {
		t.Fatalf("take after close: %d appends, want the 2 queued before", len(batch))
	}
}

// TestQueueWakesWorkers: the first append queued wakes a worker, and a
// take that leaves appends queued wakes another.
func TestQueueWakesWorkers(t *testing.T) {
	q := newAppendQueue(1, 1000, 100)
	ctx := context.Background()
	if _, err := q.push(ctx, nil, queuedReq(1, 1), false); err != nil {
		t.Fatal(err)
	}
	select {
	case <-q.ready:
	default:
		t.Fatal("no wake-up for the first append queued")
	}
	if _, err := q.push(ctx, nil, queuedReq(1, 1), false); err != nil {
		t.Fatal(err)
	}
	select {
	case <-q.ready:
		t.Fatal("a wake-up for an append queued behind another")
	default:
	}
	if batch := q.take(nil); len(batch) != 1 {
		t.Fatalf("take with a budget of 1 event: %d appends", len(batch))
	}
	select {
	case <-q.ready:
	default:
		t.Fatal("no wake-up after a take that left an append queued")
	}
}

// TestQueueGroupsOfASegment: the round appends of one segment share groups
// of at most rounds.Size, so the callers answered first wake while the
// worker answers the rest.
func TestQueueGroupsOfASegment(t *testing.T) {
	q := newAppendQueue(1000, 1<<20, 1000)
	ctx := context.Background()
	n := 2*rounds.Size + 2
	chans := make([]<-chan struct{}, n)
	for i := range n {
		ch, err := q.push(ctx, nil, queuedReq(1, 1), true)
		if err != nil {
			t.Fatal(err)
		}
		chans[i] = ch
	}
	if len(q.segs) != 1 {
		t.Fatalf("%d segments, want 1", len(q.segs))
	}
	for i := range n {
		if want := chans[i/rounds.Size*rounds.Size]; chans[i] != want {
			t.Fatalf("append %d has another channel than append %d, the first of its group of %d", i, i/rounds.Size*rounds.Size, rounds.Size)
		}
	}
	if chans[0] == chans[rounds.Size] || chans[rounds.Size] == chans[2*rounds.Size] {
		t.Fatal("appends of different groups share a channel")
	}
	batch := q.take(nil)
	if len(batch) != n {
		t.Fatalf("take: %d appends, want %d", len(batch), n)
	}
	var lv rounds.Leaves
	for i, r := range batch[:rounds.Size+1] {
		lv.Add(r.group)
		if i == rounds.Size {
			// Answering the first of the second group flushed the first.
			if !isClosed(chans[0]) {
				t.Fatal("the first group's channel is open once its appends were answered")
			}
		}
	}
	lv.Flush()
	if isClosed(chans[rounds.Size]) {
		t.Fatal("the second group's channel closed before all of its appends were answered")
	}
	for _, r := range batch[rounds.Size+1:] {
		lv.Add(r.group)
	}
	lv.Flush()
	if !isClosed(chans[rounds.Size]) || !isClosed(chans[2*rounds.Size]) {
		t.Fatal("a group's channel is open though every append was answered")
	}
}
