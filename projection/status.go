package projection

import (
	"context"
	"fmt"
	"slices"
	"time"

	"github.com/eventsourced-go/eventsourced/eventlog"
)

// Status is a snapshot of a projection's progress, as [Projection.Status]
// returns it.
type Status struct {
	// Name and EntityType are the projection's. For a projection of
	// several types (NewOfTypes), EntityType is their names joined with
	// commas, or "*" for every type.
	Name       string
	EntityType string
	// EntityTypes are the types the projection follows; empty for every
	// type.
	EntityTypes []string
	// Running reports whether the projection's goroutine runs, paused or
	// not.
	Running bool
	// State is Running's detail: running, paused, stopped, or stopped at a
	// poison event, which Poison then names.
	State State
	// PausedSince is, while State is [StatePaused], when the pause began:
	// the [Control.PausedAt] of the control record that pauses it (the
	// earlier one if both the projection and its slice are paused).
	PausedSince time.Time
	// Poison is the poison event the last run stopped at ([StopOnPoison]),
	// while the offset is still before it; nil otherwise. Start (which
	// handles the event again), Reset and SetOffset clear it.
	Poison *PoisonError
	// Offset is the Position of the last event handled or skipped, as
	// stored; 0 before the first, and 0 right after Start until the
	// stored offset is loaded.
	Offset uint64
	// Head is the highest Position the projection has read from the log;
	// it may be ahead of Offset by the events read ahead.
	Head uint64
	// Lag is the number of events the projection has read from the log and
	// not yet handled: those waiting in its read-ahead buffer plus the batch
	// in the handler. The projection reads ahead at most [WithBufferSize]
	// events, so when ReadAheadFull is true more may be waiting in the log:
	// Lag is then a lower bound. When ReadAheadFull is false and Lag is 0,
	// the projection has handled every event the log has given it.
	Lag int
	// ReadAheadFull reports that the read-ahead buffer is full.
	ReadAheadFull bool
	// Handled counts the events handled since Start.
	Handled uint64
	// LastEventTime is when the log committed the last event handled or
	// skipped since Start (its Record.Time); zero before the first.
	LastEventTime time.Time
	// Retries counts the failed attempts (of the handler, the offset store
	// or the log) since Start or the last successful commit; a commit, or
	// the skip of a poison event, sets it back to 0.
	Retries int
	// LastError is the last error of the handler, the offset store or the
	// log, nil if there was none since Start; LastErrorTime is when.
	LastError     error
	LastErrorTime time.Time
	// Skipped lists the most recent events skipped by [SkipPoison], oldest
	// first, at most 100; SkippedTotal counts all of them since Start.
	Skipped      []Skipped
	SkippedTotal uint64
}

// Status returns the projection's current progress.
func (p *Projection) Status() Status {
	p.mu.Lock()
	defer p.mu.Unlock()
	st := p.st
	st.Skipped = append([]Skipped(nil), p.st.Skipped...)
	st.EntityTypes = slices.Clone(p.st.EntityTypes)
	st.Head = max(p.head.Load(), st.Offset)
	st.Lag = p.inflight
	switch {
	case p.running && p.ctl.paused:
		st.State, st.PausedSince = StatePaused, p.ctl.since
	case p.running:
		st.State = StateRunning
	case p.atPoison != nil:
		st.State, st.Poison = StatePoisoned, p.atPoison
	default:
		st.State = StateStopped
	}
	if p.buf != nil {
		n := len(p.buf)
		st.Lag += n
		st.ReadAheadFull = n == cap(p.buf)
	}
	return st
}

// State is what a projection is doing, as [Status.State] reports it.
type State int

const (
	// StateStopped: never started, stopped by [Projection.Stop] or the end
	// of its context, or stopped at a poison event that Reset or SetOffset
	// has since moved the offset away from. Start resumes it.
	StateStopped State = iota
	// StateRunning: its goroutines run; they may be retrying failures
	// ([Status.Retries], [Status.LastError]).
	StateRunning
	// StatePoisoned: a poison event stopped it ([StopOnPoison]) and the
	// offset is still before the event, which [Status.Poison] names. Start
	// handles the event again; SetOffset skips it.
	StatePoisoned
	// StatePaused: its goroutines run, but its control record says
	// [Pause], so it calls no handler; [Status.PausedSince] says since
	// when. [Resume] resumes it; Stop and Start work as usual, and a
	// Start of a paused projection starts paused.
	StatePaused
)

// String returns "stopped", "running", "poisoned" or "paused".
func (s State) String() string {
	switch s {
	case StateStopped:
		return "stopped"
	case StateRunning:
		return "running"
	case StatePoisoned:
		return "poisoned"
	case StatePaused:
		return "paused"
	}
	return fmt.Sprintf("State(%d)", int(s))
}

// EventRef identifies an event without its data.
type EventRef struct {
	EntityType string
	EntityID   string
	Seq        uint64
	Position   uint64
	// Name is the event type name.
	Name string
}

// String returns a description such as "Tab/t-1 seq 3 (position 17, DrinksOrdered)".
func (r EventRef) String() string {
	return fmt.Sprintf("%s/%s seq %d (position %d, %s)", eventlog.FormatID(r.EntityType), eventlog.FormatID(r.EntityID), r.Seq, r.Position, r.Name)
}

func refOf(rec eventlog.Record) EventRef {
	return EventRef{EntityType: rec.EntityType, EntityID: rec.EntityID, Seq: rec.Seq, Position: rec.Position, Name: rec.Name}
}

// Skipped is a poison event that [SkipPoison] skipped.
type Skipped struct {
	Event EventRef
	// Err is the handler's last error on the event.
	Err error
	// Time is when it was skipped.
	Time time.Time
}

// maxSkipped is how many skipped events [Status] keeps.
const maxSkipped = 100

// setOffset records the offset loaded from the store.
func (p *Projection) setOffset(off uint64) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.st.Offset = off
	p.clearPassed()
	p.wake()
}

// passMark is an event of another slice at Position to, read after the
// slice's own events up to Position from were sent to its handler.
type passMark struct{ from, to uint64 }

// pass records that the reader of a slice skipped pos, another slice's
// event, after sending the slice's own events up to Position sent: once
// those are committed the slice is past pos.
func (p *Projection) pass(sent, pos uint64) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.st.Offset >= sent {
		if pos > p.passed {
			p.passed = pos
			p.wake()
		}
		return
	}
	if n := len(p.passing); n > 0 && p.passing[n-1].from == sent {
		p.passing[n-1].to = pos
		return
	}
	p.passing = append(p.passing, passMark{from: sent, to: pos})
}

// passedCommitted moves passed over the marks the offset has reached. The
// caller holds mu.
func (p *Projection) passedCommitted() {
	k := 0
	for k < len(p.passing) && p.passing[k].from <= p.st.Offset {
		p.passed = max(p.passed, p.passing[k].to)
		k++
	}
	if k > 0 {
		p.passing = append(p.passing[:0], p.passing[k:]...)
	}
}

// clearPassed forgets what the slice was past. The caller holds mu.
func (p *Projection) clearPassed() {
	p.passed, p.passing = 0, p.passing[:0]
}

// wake wakes the callers of WaitFor. The caller holds mu.
func (p *Projection) wake() {
	if p.moved != nil {
		close(p.moved)
		p.moved = nil
	}
}

// WaitFor waits until the projection has handled the event at Position
// pos, or moved past it, so that its read model reflects that event: a
// caller that got pos from entity.AskPosition reads its own write. The
// event must be of the type the projection follows; a Position of another
// type may never be reached. A slice ([WithSlice]) is past another slice's
// event once it has read it and handled its own events before it, so
// WaitFor on any slice returns for any event of the type. WaitFor returns nil at once if the offset is
// there already, ctx's error if ctx ends first, and the projection's
// [*PoisonError] if a poison event stopped it on the way. It waits while
// the projection is stopped or not started yet, as long as ctx lets it.
func (p *Projection) WaitFor(ctx context.Context, pos uint64) error {
	for {
		p.mu.Lock()
		if p.st.Offset >= pos || p.passed >= pos {
			p.mu.Unlock()
			return nil
		}
		if !p.running && p.atPoison != nil {
			err := p.atPoison
			p.mu.Unlock()
			return fmt.Errorf("projection: wait for position %d: %w", pos, err)
		}
		if p.moved == nil {
			p.moved = make(chan struct{})
		}
		moved := p.moved
		p.mu.Unlock()
		select {
		case <-moved:
		case <-ctx.Done():
			return fmt.Errorf("projection: %s: wait for position %d: %w", p.name, pos, ctx.Err())
		}
	}
}

// setInflight records the batch in the handler, nil if none, for
// [Status.Lag] and the lag gauges.
func (p *Projection) setInflight(batch []eventlog.Record) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.inflight = len(batch)
	p.inflightT = time.Time{}
	if len(batch) > 0 {
		p.inflightT = batch[0].Time
	}
}

// committed records a successful commit of batch. handled is false when
// the commit skipped a poison event, which does not count as handled.
func (p *Projection) committed(batch []eventlog.Record, handled bool) {
	last := &batch[len(batch)-1]
	p.mu.Lock()
	defer p.mu.Unlock()
	p.st.Offset = last.Position
	p.passedCommitted()
	p.st.LastEventTime = last.Time
	p.st.Retries = 0
	if handled {
		p.st.Handled += uint64(len(batch))
	}
	p.wake()
}

// lag returns the events read and not yet handled, as [Status.Lag], and
// the commit time the lag in seconds counts from: that of the last event
// handled, or, before the first since Start, that of the first event in
// the handler (a lower bound: the events before it are older).
func (p *Projection) lag() (int, time.Time) {
	p.mu.Lock()
	defer p.mu.Unlock()
	n := p.inflight
	if p.buf != nil {
		n += len(p.buf)
	}
	since := p.st.LastEventTime
	if since.IsZero() {
		since = p.inflightT
	}
	return n, since
}

// recordError records a failed attempt of the handler, the offset store or
// the log.
func (p *Projection) recordError(err error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.st.LastError, p.st.LastErrorTime = err, time.Now()
	p.st.Retries++
}
