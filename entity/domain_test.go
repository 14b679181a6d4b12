package entity_test

import (
	"context"
	"errors"
	"fmt"
	"iter"
	"sync"
	"sync/atomic"

	"github.com/eventsourced-go/eventsourced/binarize"
	"github.com/eventsourced-go/eventsourced/entity"
	"github.com/eventsourced-go/eventsourced/eventlog"
	"github.com/eventsourced-go/eventsourced/snapshotstore"
)

// The test domain: a counter whose events are Added and Reset.

type Counter struct {
	Value   int   `json:"value"`
	History []int `json:"history"`
}

type CounterEvent interface{ counterEvent() }

type Added struct {
	N int `json:"n"`
}

type Reset struct{}

func (Added) counterEvent() {}
func (Reset) counterEvent() {}

var errNegative = errors.New("counter: negative amount")

// Add persists Added and replies with the new value; it rejects n < 0.
type Add struct{ N int }

func (c Add) Handle(tx *entity.Tx[Counter, CounterEvent]) (int, error) {
	if c.N < 0 {
		return 0, fmt.Errorf("add %d: %w", c.N, errNegative)
	}
	return tx.Persist(Added{N: c.N}).Value, nil
}

// AddTwice persists two events in one command.
type AddTwice struct{ N int }

func (c AddTwice) Handle(tx *entity.Tx[Counter, CounterEvent]) (int, error) {
	return tx.Persist(Added{N: c.N}, Added{N: c.N}).Value, nil
}

// Get replies with the state without persisting.
type Get struct{}

func (Get) Handle(tx *entity.Tx[Counter, CounterEvent]) (Counter, error) { return tx.State(), nil }

// Noop persists nothing and replies nothing.
type Noop struct{}

func (Noop) Handle(*entity.Tx[Counter, CounterEvent]) (struct{}, error) { return struct{}{}, nil }

// AddThenFail persists and then rejects: nothing may be persisted.
type AddThenFail struct{ N int }

func (c AddThenFail) Handle(tx *entity.Tx[Counter, CounterEvent]) (int, error) {
	tx.Persist(Added{N: c.N})
	return 0, errors.New("changed my mind")
}

// Boom panics in the handler.
type Boom struct{}

func (Boom) Handle(*entity.Tx[Counter, CounterEvent]) (int, error) { panic("boom") }

// Meta replies with the command's metadata and persists an event.
type Meta struct{}

func (Meta) Handle(tx *entity.Tx[Counter, CounterEvent]) (map[string]string, error) {
	tx.Persist(Added{N: 1})
	return tx.Metadata(), nil
}

func counterEvents() *binarize.Registry[CounterEvent] {
	r := binarize.NewRegistry[CounterEvent](binarize.JSON)
	binarize.MustRegister[Added](r, "Added")
	binarize.MustRegister[Reset](r, "Reset")
	return r
}

// applyCounter panics on Added{N: 666} so tests can make Apply fail.
func applyCounter(s Counter, e CounterEvent) Counter {
	switch e := e.(type) {
	case Added:
		if e.N == 666 {
			panic("apply 666")
		}
		s.Value += e.N
		s.History = append(s.History[:len(s.History):len(s.History)], s.Value)
	case Reset:
		s.Value = 0
	}
	return s
}

func counterType() entity.Type[Counter, CounterEvent] {
	return entity.Type[Counter, CounterEvent]{
		Name:   "Counter",
		Apply:  applyCounter,
		Events: counterEvents(),
		State:  binarize.Value[Counter](binarize.JSON),
	}
}

// flakyLog wraps a Log and injects faults into Append.
type flakyLog struct {
	eventlog.Log
	appends atomic.Int64
	events  atomic.Int64
	// held counts the appends that reached the gate: tests wait for it
	// instead of sleeping.
	held atomic.Int64

	mu sync.Mutex // guards the fields below
	// failAfterWrite makes the next n appends store the events and then
	// report an error, as a lost reply would.
	failAfterWrite int
	// failBeforeWrite makes the next n appends fail without storing.
	failBeforeWrite int
	// hangAfterWrite makes the next n appends store and then wait for ctx.
	hangAfterWrite int
	// gate, when set, holds appends until it is closed.
	gate chan struct{}
	// reads records the from Seq of every ReadEntity.
	reads []uint64
}

var errInjected = errors.New("injected fault")

func (l *flakyLog) Append(ctx context.Context, typ, id string, expected uint64, events ...eventlog.Event) (uint64, error) {
	l.mu.Lock()
	gate := l.gate
	var before, after, hang bool
	switch {
	case l.failBeforeWrite > 0:
		l.failBeforeWrite--
		before = true
	case l.failAfterWrite > 0:
		l.failAfterWrite--
		after = true
	case l.hangAfterWrite > 0:
		l.hangAfterWrite--
		hang = true
	}
	l.mu.Unlock()
	if gate != nil {
		l.held.Add(1)
		<-gate
	}
	l.appends.Add(1)
	if before {
		return 0, errInjected
	}
	pos, err := l.Log.Append(ctx, typ, id, expected, events...)
	if err == nil {
		l.events.Add(int64(len(events)))
	}
	if after {
		return 0, errInjected
	}
	if hang {
		<-ctx.Done()
		return 0, ctx.Err()
	}
	return pos, err
}

func (l *flakyLog) ReadEntity(ctx context.Context, typ, id string, from uint64) iter.Seq2[eventlog.Record, error] {
	l.mu.Lock()
	l.reads = append(l.reads, from)
	l.mu.Unlock()
	return l.Log.ReadEntity(ctx, typ, id, from)
}

func (l *flakyLog) DeleteTo(ctx context.Context, typ, id string, seq uint64) error {
	return l.Log.(eventlog.Deleter).DeleteTo(ctx, typ, id, seq)
}

func (l *flakyLog) set(f func(l *flakyLog)) {
	l.mu.Lock()
	defer l.mu.Unlock()
	f(l)
}

func (l *flakyLog) readsFrom() []uint64 {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]uint64(nil), l.reads...)
}

// flakyStore wraps a snapshot Store and fails the first n saves.
type flakyStore struct {
	snapshotstore.Store
	mu        sync.Mutex // guards failSaves and saved
	failSaves int
	saved     []uint64
}

func (s *flakyStore) Save(ctx context.Context, snap snapshotstore.Snapshot, keep int) error {
	s.mu.Lock()
	if s.failSaves > 0 {
		s.failSaves--
		s.mu.Unlock()
		return errInjected
	}
	s.saved = append(s.saved, snap.Seq)
	s.mu.Unlock()
	return s.Store.Save(ctx, snap, keep)
}

func (s *flakyStore) savedSeqs() []uint64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]uint64(nil), s.saved...)
}
