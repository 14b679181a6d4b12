package main

import (
	"context"
	"fmt"
	"time"

	"github.com/eventsourced-go/eventsourced/binarize"
	"github.com/eventsourced-go/eventsourced/entity"
	"github.com/eventsourced-go/eventsourced/eventlog"
	"github.com/eventsourced-go/eventsourced/snapshotstore"
)

// The counter is the entity every scenario uses: one command, Increment,
// that persists one Incremented event and replies with the new value. The
// same domain is written for each peer in its own idiom.

// Counter is the counter's state.
type Counter struct {
	Value int64 `msgpack:"value"`
}

// CounterEvent is implemented by the counter's events.
type CounterEvent interface{ isCounterEvent() }

// Incremented is the one event: the counter went up by By.
type Incremented struct {
	By int64 `msgpack:"by"`
}

func (Incremented) isCounterEvent() {}

// Increment adds By and replies with the new value.
type Increment struct{ By int64 }

// Handle implements entity.Command.
func (c Increment) Handle(tx *entity.Tx[Counter, CounterEvent]) (int64, error) {
	return tx.Persist(Incremented{By: c.By}).Value, nil
}

// counterType is the counter with msgpack events and state.
func counterType() entity.Type[Counter, CounterEvent] {
	events := binarize.NewRegistry[CounterEvent](binarize.Msgpack)
	binarize.MustRegister[Incremented](events, "Incremented")
	return entity.Type[Counter, CounterEvent]{
		Name: "Counter",
		Apply: func(s Counter, e CounterEvent) Counter {
			if e, ok := e.(Incremented); ok {
				s.Value += e.By
			}
			return s
		},
		Events: events,
		State:  binarize.Value[Counter](binarize.Msgpack),
	}
}

// counterSystem is an entity.System on an in-memory log and snapshot store
// with the counter registered.
type counterSystem struct {
	log  *eventlog.Memory
	sys  *entity.System
	kind *entity.Kind[Counter, CounterEvent]
}

func newCounterSystem(log *eventlog.Memory, opts ...entity.KindOption) (*counterSystem, error) {
	return newCounterSystemWith(log, nil, opts...)
}

// newCounterSystemWith is newCounterSystem with more System options.
func newCounterSystemWith(log *eventlog.Memory, sysOpts []entity.Option, opts ...entity.KindOption) (*counterSystem, error) {
	if log == nil {
		log = eventlog.NewMemory()
	}
	sys, err := entity.NewSystem(log, append([]entity.Option{entity.WithSnapshotStore(snapshotstore.NewMemory())}, sysOpts...)...)
	if err != nil {
		return nil, err
	}
	kind, err := entity.Register(sys, counterType(), opts...)
	if err != nil {
		sys.Close()
		return nil, err
	}
	return &counterSystem{log: log, sys: sys, kind: kind}, nil
}

func (c *counterSystem) shutdown() error {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	return c.sys.Shutdown(ctx)
}

// entityID names entity i of a scenario.
func entityID(i int) string { return fmt.Sprintf("counter-%07d", i) }

// Get replies with the value without persisting: it activates an entity
// (recovering it) without writing.
type Get struct{}

// Handle implements entity.Command.
func (Get) Handle(tx *entity.Tx[Counter, CounterEvent]) (int64, error) { return tx.State().Value, nil }
