package postgreslog

import (
	"context"
	"sync"

	"github.com/eventsourced-go/eventsourced/eventlog"
	"github.com/eventsourced-go/eventsourced/internal/rounds"
)

// appendQueue holds the appends waiting for a group-commit worker, in
// segments: a segment holds at most maxEvents events and maxBytes bytes of
// data (an append larger than that, alone), and a worker takes whole
// segments, as many as fit in one transaction. The appends of AppendRound
// in a segment share round groups (package rounds) of up to rounds.Size
// appends, sealed when full or when the segment is closed: a group's
// appends are committed by one worker in one transaction, so one close
// wakes their callers, and none waits for another transaction.
type appendQueue struct {
	maxEvents, maxBytes int
	limit               int // appends queued at most: back-pressure

	mu    sync.Mutex
	items []*appendReq // oldest first
	segs  []segment    // oldest first; the last one is open while appends join it
	open  bool         // the last segment takes appends
	shut  bool         // refuse appends: the Log is closed
	// space, if not nil, is closed once room appears: appends wait on it
	// while the queue is full.
	space chan struct{}

	// ready wakes a waiting worker: appends are queued.
	ready chan struct{}
}

// segment is a run of queued appends that a worker takes as a whole.
type segment struct {
	n, events, bytes int
	// group is the round group that the segment's next AppendRound
	// append joins, nil until one does; members is how many joined it.
	group   *rounds.Group
	members int
}

func newAppendQueue(maxEvents, maxBytes, limit int) *appendQueue {
	return &appendQueue{maxEvents: maxEvents, maxBytes: maxBytes, limit: limit, ready: make(chan struct{}, 1)}
}

// push queues r, waiting for room no longer than ctx allows and not after
// closing is closed; r joins its segment's round group if round is set,
// and push returns the group's channel. It fails with ctx's error or
// ErrClosed if r was not queued.
func (q *appendQueue) push(ctx context.Context, closing <-chan struct{}, r *appendReq, round bool) (<-chan struct{}, error) {
	for {
		q.mu.Lock()
		if q.shut {
			q.mu.Unlock()
			return nil, eventlog.ErrClosed
		}
		if len(q.items) < q.limit {
			ch := q.add(r, round)
			first := len(q.items) == 1
			q.mu.Unlock()
			if first {
				q.wake()
			}
			return ch, nil
		}
		if q.space == nil {
			q.space = make(chan struct{})
		}
		space := q.space
		q.mu.Unlock()
		select {
		case <-space:
		case <-closing:
			return nil, eventlog.ErrClosed
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
}

// add appends r to the open segment, or to a new one if it does not fit;
// q.mu is held.
func (q *appendQueue) add(r *appendReq, round bool) <-chan struct{} {
	n := len(r.events)
	if s := q.last(); s == nil || s.n > 0 && (s.events+n > q.maxEvents || s.bytes+r.size > q.maxBytes) {
		q.closeLast()
		q.segs = append(q.segs, segment{})
		q.open = true
	}
	s := q.last()
	s.n++
	s.events += n
	s.bytes += r.size
	q.items = append(q.items, r)
	if !round {
		return nil
	}
	if s.members == rounds.Size {
		s.group.Seal() // its members are all in this segment
		s.group, s.members = nil, 0
	}
	if s.group == nil {
		s.group = rounds.NewGroup()
	}
	s.group.Join()
	s.members++
	r.group = s.group
	return s.group.Done()
}

// last returns the open segment, nil if there is none; q.mu is held.
func (q *appendQueue) last() *segment {
	if !q.open {
		return nil
	}
	return &q.segs[len(q.segs)-1]
}

// closeLast closes the open segment, if any, to new appends; q.mu is held.
func (q *appendQueue) closeLast() {
	if s := q.last(); s != nil && s.group != nil {
		s.group.Seal()
	}
	q.open = false
}

// take appends to batch the appends of the oldest segments, as many whole
// segments as fit in maxEvents events and maxBytes bytes (at least one),
// and returns it; an empty batch if nothing is queued. If appends are left
// queued, it wakes another worker for them.
func (q *appendQueue) take(batch []*appendReq) []*appendReq {
	q.mu.Lock()
	k, items, events, bytes := 0, 0, 0, 0
	for ; k < len(q.segs); k++ {
		s := &q.segs[k]
		if k > 0 && (events+s.events > q.maxEvents || bytes+s.bytes > q.maxBytes) {
			break
		}
		items, events, bytes = items+s.n, events+s.events, bytes+s.bytes
	}
	if k == len(q.segs) {
		q.closeLast() // taken: no append joins it any more
	}
	batch = append(batch, q.items[:items]...)
	rest := copy(q.items, q.items[items:])
	clear(q.items[rest:])
	q.items = q.items[:rest]
	nseg := copy(q.segs, q.segs[k:])
	clear(q.segs[nseg:])
	q.segs = q.segs[:nseg]
	if space := q.space; space != nil && items > 0 {
		close(space)
		q.space = nil
	}
	left := rest > 0
	q.mu.Unlock()
	if left {
		q.wake()
	}
	return batch
}

// wake tells a worker that appends are queued.
func (q *appendQueue) wake() {
	select {
	case q.ready <- struct{}{}:
	default: // one is told already
	}
}

// close refuses further appends; those queued stay for the workers to
// take and fail.
func (q *appendQueue) close() {
	q.mu.Lock()
	q.shut = true
	if q.space != nil {
		close(q.space)
		q.space = nil
	}
	q.mu.Unlock()
}

// len returns the number of appends queued.
func (q *appendQueue) len() int {
	q.mu.Lock()
	defer q.mu.Unlock()
	return len(q.items)
}
