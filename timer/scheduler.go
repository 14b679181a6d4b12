package timer

import (
	"container/heap"
	"context"
	"errors"
	"fmt"
	"math"
	"runtime/debug"
	"sync"
	"time"

	"github.com/eventsourced-go/eventsourced/entity"
	"github.com/eventsourced-go/eventsourced/eventlog"
	"github.com/eventsourced-go/eventsourced/projection"
)

// The scheduler is the read side of the timers: the projection's handler
// keeps the pending timers it reads (byID) in a min-heap by due time, a
// dispatcher hands the due ones to a pool of workers, and each worker
// checks the timer, fires it and records the firing. A timer leaves the
// scheduler's state only when the projection reads its end (Fired,
// Cancelled, or a newer Scheduled): so what the state holds never depends
// on the workers, and the low-water mark derived from it is safe.

// entry is one pending generation of a timer. id, gen, at and payload
// never change; the rest is guarded by sched.mu.
type entry struct {
	id      string
	gen     uint64
	at      time.Time
	payload []byte
	pos     uint64 // the Position of its Scheduled event; guarded by sched.mu
	// seen is the count of events the run had handled when it read the
	// Scheduled at pos: how far behind the timer is, for renewal.
	seen uint64

	next     int64 // when to try it (Unix ns): at, or later after a failure
	index    int   // in the heap; -1 when not in it
	inflight bool  // a worker has it
	gone     bool  // the projection has read its end
	fired    bool  // the fire function succeeded; the record is left
	attempts int
}

// sched is the state of one run of the scheduler.
type sched struct {
	wake chan struct{} // wakes the dispatcher; capacity 1

	// mu guards everything below it.
	mu   sync.Mutex
	byID map[string]*entry // the pending timers, by id
	h    entryHeap         // the pending timers no worker has, by next
	// fifo holds the pending timers in the order of their Positions, and
	// timers gone or renewed since (cleaned lazily): its first live item
	// is the oldest event still needed, which sets the low-water mark.
	fifo     []fifoItem
	handled  uint64 // the Position of the last event handled
	seen     uint64 // the events handled in this run
	inflight int
	saved    uint64 // the low-water mark last stored

	fired, recorded, failures, storeErrors uint64
	lastErr                                error
	lastErrTime                            time.Time
}

func newSched(mark uint64) *sched {
	return &sched{wake: make(chan struct{}, 1), byID: make(map[string]*entry), handled: mark, saved: mark}
}

// fifoItem is a Scheduled event in the fifo: it is needed while its
// timer is pending and has not been renewed since (a later Scheduled of
// the same generation).
type fifoItem struct {
	e   *entry
	pos uint64
}

func (f fifoItem) dead() bool { return f.e.gone || f.e.pos != f.pos }

// signal wakes the dispatcher.
func (s *sched) signal() {
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

// markLocked returns the low-water mark: the Position before the oldest
// Scheduled event of a pending timer, or, with none pending, the last
// Position handled. Every pending timer's Scheduled is after it, and
// events not yet handled are after the last handled, so a run that starts
// reading after the mark finds every timer that is still pending. It
// never goes back: new timers come after the last handled Position, and
// timers only leave.
func (s *sched) markLocked() uint64 {
	k := 0
	for k < len(s.fifo) && s.fifo[k].dead() {
		k++
	}
	if k > 0 {
		s.fifo = append(s.fifo[:0], s.fifo[k:]...)
	}
	if len(s.fifo) > 2*len(s.byID)+64 {
		// Timers that went out of order (a later one cancelled before an
		// earlier one) pile up behind the first live one.
		s.fifo = deleteDead(s.fifo)
	}
	if len(s.fifo) == 0 {
		return s.handled
	}
	return s.fifo[0].pos - 1
}

// maxRenew bounds the timers renewed per mark interval.
const maxRenew = 1000

// renewAhead is how far ahead a timer must be due to be renewed: one due
// sooner frees the mark by firing.
const renewAhead = time.Minute

// stale returns the oldest pending timers read more than max(renewAfter,
// 2 x pending) events ago and not due within renewAhead of now, at most
// maxRenew: those holding the low-water mark back for long. The bound
// keeps the renewals below one for every two events read, however many
// timers wait far ahead.
func (s *sched) stale(renewAfter int, now time.Time) []*entry {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.markLocked() // drops the dead items at the front
	limit := max(uint64(renewAfter), 2*uint64(len(s.byID)))
	soon := unixNano(now.Add(renewAhead))
	var out []*entry
	for _, f := range s.fifo {
		if f.dead() {
			continue
		}
		if len(out) == maxRenew || s.seen-f.e.seen <= limit {
			break
		}
		if f.e.next > soon {
			out = append(out, f.e)
		}
	}
	return out
}

func deleteDead(items []fifoItem) []fifoItem {
	out := items[:0]
	for _, f := range items {
		if !f.dead() {
			out = append(out, f)
		}
	}
	clear(items[len(out):])
	return out
}

// handle is the projection's handler: it applies a batch of timer events
// to the scheduler's state. It decodes the whole batch first, so a batch
// that fails changes nothing and its retry applies it once.
func (t *Timers) handle(ctx context.Context, batch []eventlog.Record) error {
	evs := make([]Event, len(batch))
	for i, rec := range batch {
		e, err := t.codec.Decode(rec.Name, rec.Revision, rec.Data)
		if err != nil {
			return fmt.Errorf("timer: %s: decode %s/%s seq %d (position %d, %s): %w", t.name,
				eventlog.FormatID(rec.EntityType), eventlog.FormatID(rec.EntityID), rec.Seq, rec.Position, rec.Name, err)
		}
		evs[i] = e
	}
	s := t.cur.Load()
	s.mu.Lock()
	for i := range batch {
		rec := &batch[i]
		s.seen++
		old := s.byID[rec.EntityID]
		switch e := evs[i].(type) {
		case Scheduled:
			if old != nil {
				if old.gen == e.Generation {
					// Renewed: the same timer, needed from here on.
					old.pos, old.seen = rec.Position, s.seen
					s.fifo = append(s.fifo, fifoItem{old, old.pos})
					continue
				}
				if old.gen > e.Generation {
					continue // never happens in Position order
				}
				s.drop(old)
			}
			n := &entry{id: rec.EntityID, gen: e.Generation, at: e.At, payload: e.Payload, pos: rec.Position, seen: s.seen, next: unixNano(e.At), index: -1}
			s.byID[n.id] = n
			heap.Push(&s.h, n)
			s.fifo = append(s.fifo, fifoItem{n, n.pos})
		case Cancelled:
			if old != nil && old.gen == e.Generation {
				s.drop(old)
			}
		case Fired:
			if old != nil && old.gen == e.Generation {
				s.drop(old)
			}
		}
	}
	s.handled = batch[len(batch)-1].Position
	s.mu.Unlock()
	s.signal()
	return nil
}

// drop removes e from the pending timers; a worker that has it lets it
// go. The caller holds mu.
func (s *sched) drop(e *entry) {
	e.gone = true
	delete(s.byID, e.id)
	if e.index >= 0 {
		heap.Remove(&s.h, e.index)
	}
}

// dispatch hands the due timers to the workers, as many as are idle, and
// sleeps until the next one is due or something changes. It wakes at
// least every second, so a wall clock that jumps is noticed.
func (t *Timers) dispatch(ctx context.Context, s *sched, work chan<- *entry) {
	const maxWait = time.Second
	var tm *time.Timer // the system clock's, reused
	if _, ok := t.cfg.clock.(systemClock); ok {
		tm = time.NewTimer(maxWait)
		defer tm.Stop()
	}
	for {
		wait := maxWait
		s.mu.Lock()
		now := unixNano(t.cfg.clock.Now())
		for s.inflight < t.cfg.concurrency && len(s.h) > 0 && t.pausedSince.Load() == 0 {
			e := s.h[0]
			if e.next > now {
				d := time.Duration(e.next - now)
				if d < 0 {
					d = maxWait // overflowed: next is far ahead
				}
				wait = min(d, maxWait)
				break
			}
			heap.Pop(&s.h)
			e.inflight = true
			s.inflight++
			work <- e // never blocks: it holds fewer than concurrency
		}
		s.mu.Unlock()
		var after <-chan time.Time
		if tm != nil {
			tm.Reset(wait)
			after = tm.C
		} else {
			after = t.cfg.clock.After(wait)
		}
		select {
		case <-s.wake:
		case <-after:
		case <-ctx.Done():
			return
		}
	}
}

// worker fires the timers dispatch hands it until ctx ends.
func (t *Timers) worker(ctx context.Context, s *sched, work <-chan *entry) {
	for {
		select {
		case e := <-work:
			t.process(ctx, s, e)
		case <-ctx.Done():
			return
		}
	}
}

// process checks that e is still the timer's pending generation, fires
// it and records the firing. A failure puts it back in the heap with
// backoff.
func (t *Timers) process(ctx context.Context, s *sched, e *entry) {
	ref := t.kind.Ref(e.id)
	s.mu.Lock()
	fired := e.fired
	e.attempts++
	attempt := e.attempts
	s.mu.Unlock()
	if !fired {
		// The scheduler may be behind the log: ask the timer itself, so
		// that a timer cancelled or rescheduled there is not fired.
		// No deadline of its own: the entity's store timeout bounds the
		// command's store calls (a context per command costs a timer).
		v, err := entity.Ask(ctx, ref, checkCmd{gen: e.gen})
		if err == nil && v.gen < e.gen {
			err = t.behind(e, v.gen)
		}
		if err != nil {
			t.retry(ctx, s, e, attempt, true, fmt.Errorf("timer: %s: check %s generation %d: %w", t.name, eventlog.FormatID(e.id), e.gen, err))
			return
		}
		if !v.ok {
			t.settle(s, e) // the projection will read what replaced it
			return
		}
		tm := Timer{Name: t.name, ID: e.id, Generation: e.gen, At: e.at, Payload: e.payload, Key: Key(t.name, e.id, e.gen), Attempt: attempt}
		if err := t.call(entity.WithIdempotencyKey(ctx, tm.Key), tm); err != nil {
			if ctx.Err() != nil {
				t.settle(s, e) // stopping: the next run fires it again
				return
			}
			t.tel.fired(false, e.at, t.cfg.clock.Now())
			t.retry(ctx, s, e, attempt, false, fmt.Errorf("timer: %s: fire %s generation %d: %w", t.name, eventlog.FormatID(e.id), e.gen, err))
			return
		}
		t.tel.fired(true, e.at, t.cfg.clock.Now())
		s.mu.Lock()
		e.fired = true
		s.fired++
		s.mu.Unlock()
	}
	v, err := entity.Ask(ctx, ref, markFiredCmd{gen: e.gen})
	if err == nil && v.gen < e.gen {
		err = t.behind(e, v.gen)
	}
	if err != nil {
		t.retry(ctx, s, e, attempt, true, fmt.Errorf("timer: %s: record the firing of %s generation %d: %w", t.name, eventlog.FormatID(e.id), e.gen, err))
		return
	}
	if v.ok {
		s.mu.Lock()
		s.recorded++
		s.mu.Unlock()
	}
	t.settle(s, e)
}

// behind handles a timer entity whose last generation, gen, is older than
// e's, which the scheduler has read in the log: another process (another
// System on the log) wrote the timer while this one kept it live. It
// passivates the entity, so the retry recovers it from the log, and
// returns the error to retry with.
func (t *Timers) behind(e *entry, gen uint64) error {
	t.kind.Passivate(e.id)
	return fmt.Errorf("the timer entity is at generation %d, behind the log: recovering it", gen)
}

// call runs the fire function, turning a panic into an error.
func (t *Timers) call(ctx context.Context, tm Timer) (err error) {
	defer func() {
		if v := recover(); v != nil {
			t.cfg.logger.Error("timer fire function panicked", "timers", t.name, "timer", tm.ID, "generation", tm.Generation, "panic", v, "stack", string(debug.Stack()))
			err = fmt.Errorf("fire function panicked: %v", v)
		}
	}()
	return t.fire(ctx, tm)
}

// settle lets e go from its worker: it stays pending until the projection
// reads its end, and no worker will take it again in this run.
func (t *Timers) settle(s *sched, e *entry) {
	s.mu.Lock()
	e.inflight = false
	s.inflight--
	s.mu.Unlock()
	s.signal()
}

// retry puts e back in the heap after a failure, due again after the
// backoff of its attempt, unless the projection has read its end or the
// run is stopping.
func (t *Timers) retry(ctx context.Context, s *sched, e *entry, attempt int, store bool, err error) {
	if ctx.Err() != nil {
		t.settle(s, e)
		return
	}
	delay := t.cfg.initial
	for i := 1; i < attempt && delay < t.cfg.maxDelay; i++ {
		delay *= 2
	}
	delay = min(delay, t.cfg.maxDelay)
	now := t.cfg.clock.Now()
	s.mu.Lock()
	if store {
		s.storeErrors++
		t.tel.storeError()
	} else {
		s.failures++
	}
	s.lastErr, s.lastErrTime = err, now
	e.inflight = false
	s.inflight--
	if !e.gone {
		e.next = unixNano(now.Add(delay))
		heap.Push(&s.h, e)
	}
	s.mu.Unlock()
	s.signal()
	t.cfg.logger.Warn("timer failed; retrying", "timers", t.name, "timer", e.id, "generation", e.gen, "attempt", attempt, "err", err, "delay", delay)
}

// saveMarks stores the low-water mark every mark interval until ctx
// ends, after renewing the timers that hold it back.
func (t *Timers) saveMarks(ctx context.Context, s *sched) {
	tk := time.NewTicker(t.cfg.markEvery)
	defer tk.Stop()
	for {
		select {
		case <-tk.C:
			t.renew(ctx, s)
			if err := t.saveMark(ctx, s); err != nil && ctx.Err() == nil {
				t.cfg.logger.Warn("timers could not save their low-water mark; trying again later", "timers", t.markKey, "err", err)
			}
		case <-ctx.Done():
			return
		}
	}
}

// renew records again the Scheduled of the pending timers that hold the
// low-water mark back, so that the mark can move past their old
// Scheduled. The timer and its generation do not change; the projection
// moves the timer's Position when it reads the renewal.
func (t *Timers) renew(ctx context.Context, s *sched) {
	if t.cfg.renewAfter == 0 {
		return
	}
	for _, e := range s.stale(t.cfg.renewAfter, t.cfg.clock.Now()) {
		_, err := entity.Ask(ctx, t.kind.Ref(e.id), renewCmd{gen: e.gen})
		if err != nil {
			if ctx.Err() == nil {
				t.cfg.logger.Warn("timers could not renew a timer that holds the low-water mark back; trying again later", "timers", t.markKey, "timer", e.id, "generation", e.gen, "err", err)
			}
			return
		}
	}
}

// saveMark stores the low-water mark if it moved. The commit is
// conditional on the mark last stored; if somebody else moved it (another
// runner of the same name, which should not be), it takes theirs and
// tries again next time.
func (t *Timers) saveMark(ctx context.Context, s *sched) error {
	s.mu.Lock()
	mark, saved := s.markLocked(), s.saved
	s.mu.Unlock()
	if mark <= saved {
		return nil
	}
	err := t.offsets.Commit(ctx, t.markKey, saved, mark, func(context.Context) error { return nil })
	if errors.Is(err, projection.ErrOffsetMoved) {
		if cur, lerr := t.offsets.Load(ctx, t.markKey); lerr == nil {
			s.mu.Lock()
			s.saved = cur
			s.mu.Unlock()
		}
	}
	if err != nil {
		return fmt.Errorf("timer: %s: save low-water mark %d: %w", t.markKey, mark, err)
	}
	s.mu.Lock()
	s.saved = mark
	s.mu.Unlock()
	return nil
}

// unixNano returns t in Unix nanoseconds, clamped to what an int64
// holds (the years 1678 to 2262): a timer due later waits forever, one
// due earlier is due.
func unixNano(t time.Time) int64 {
	switch {
	case t.Before(minTime):
		return math.MinInt64
	case t.After(maxTime):
		return math.MaxInt64
	}
	return t.UnixNano()
}

var (
	minTime = time.Unix(0, math.MinInt64)
	maxTime = time.Unix(0, math.MaxInt64)
)

// countDue counts the entries due by now. It visits only those and their
// children: a child is never due before its parent.
func (h entryHeap) countDue(now int64) int {
	n := 0
	stack := []int{0}
	for len(stack) > 0 {
		i := stack[len(stack)-1]
		stack = stack[:len(stack)-1]
		if i >= len(h) || h[i].next > now {
			continue
		}
		n++
		stack = append(stack, 2*i+1, 2*i+2)
	}
	return n
}

// entryHeap orders entries by next, then by Position.
type entryHeap []*entry

func (h entryHeap) Len() int { return len(h) }
func (h entryHeap) Less(i, j int) bool {
	if h[i].next != h[j].next {
		return h[i].next < h[j].next
	}
	return h[i].pos < h[j].pos
}
func (h entryHeap) Swap(i, j int) {
	h[i], h[j] = h[j], h[i]
	h[i].index, h[j].index = i, j
}
func (h *entryHeap) Push(x any) {
	e := x.(*entry)
	e.index = len(*h)
	*h = append(*h, e)
}
func (h *entryHeap) Pop() any {
	old := *h
	e := old[len(old)-1]
	old[len(old)-1] = nil
	e.index = -1
	*h = old[:len(old)-1]
	return e
}

// pollControl reads the control records of the timers' name and, for a
// slice, of the slice's name: either one paused pauses the firing.
func (t *Timers) pollControl(ctx context.Context, ctl projection.Controls) error {
	paused := false
	for _, name := range t.controlNames() {
		c, _, err := ctl.LoadControl(ctx, name)
		if err != nil {
			return fmt.Errorf("timer: %s: read the control record of %s: %w", t.markKey, name, err)
		}
		paused = paused || c.Paused
	}
	switch since := t.pausedSince.Load(); {
	case paused && since == 0:
		t.pausedSince.Store(unixNano(t.cfg.clock.Now()))
		t.cfg.logger.Info("timers paused by their control record", "timers", t.markKey)
	case !paused && since != 0:
		t.pausedSince.Store(0)
		t.cfg.logger.Info("timers resumed by their control record", "timers", t.markKey)
	}
	return nil
}

// controlNames are the names whose control records steer the timers.
func (t *Timers) controlNames() []string {
	if t.markKey == t.name {
		return []string{t.name}
	}
	return []string{t.name, t.markKey}
}

// followControl reads the control records every control interval until
// ctx ends, and wakes the dispatcher on a resume. A failed read keeps the
// state the last one read, and is logged.
func (t *Timers) followControl(ctx context.Context, ctl projection.Controls, s *sched) {
	tick := time.NewTicker(t.cfg.control)
	defer tick.Stop()
	for {
		select {
		case <-tick.C:
		case <-ctx.Done():
			return
		}
		was := t.pausedSince.Load()
		if err := t.pollControl(ctx, ctl); err != nil {
			if ctx.Err() == nil {
				t.cfg.logger.Warn("timers could not read their control record", "timers", t.markKey, "err", err)
			}
			continue
		}
		if was != 0 && t.pausedSince.Load() == 0 {
			select {
			case s.wake <- struct{}{}:
			default:
			}
		}
	}
}
