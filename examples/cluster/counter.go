package main

import (
	"errors"

	"github.com/eventsourced-go/eventsourced/binarize"
	"github.com/eventsourced-go/eventsourced/cluster"
	"github.com/eventsourced-go/eventsourced/entity"
)

// The counter entity served by the cluster.

// Counter is the state of one counter.
type Counter struct{ Value int }

// Event is a counter event.
type Event interface{ counterEvent() }

// Incremented is the event of Increment.
type Incremented struct{ By int }

func (Incremented) counterEvent() {}

// ErrNotPositive rejects an Increment by less than 1. It is registered with
// cluster.RegisterError, so errors.Is works on the caller's member too.
var ErrNotPositive = errors.New("counter: increment must be positive")

// Increment adds By and replies with the new value.
type Increment struct{ By int }

// Handle implements entity.Command.
func (c Increment) Handle(tx *entity.Tx[Counter, Event]) (int, error) {
	if c.By < 1 {
		return 0, ErrNotPositive
	}
	return tx.Persist(Incremented(c)).Value, nil
}

// Get replies with the value.
type Get struct{}

// Handle implements entity.Command.
func (Get) Handle(tx *entity.Tx[Counter, Event]) (int, error) { return tx.State().Value, nil }

func counterType() entity.Type[Counter, Event] {
	events := binarize.NewRegistry[Event](binarize.Msgpack)
	binarize.MustRegister[Incremented](events, "Incremented")
	return entity.Type[Counter, Event]{
		Name: "Counter",
		Apply: func(s Counter, e Event) Counter {
			if e, ok := e.(Incremented); ok {
				s.Value += e.By
			}
			return s
		},
		Events: events,
	}
}

// register registers the counter type and its commands on m: every member
// does the same, under the same names.
func register(m *cluster.Member) (*cluster.Kind[Counter, Event], error) {
	if err := cluster.RegisterError("counter.not_positive", ErrNotPositive); err != nil {
		return nil, err
	}
	k, err := cluster.Register(m, counterType())
	if err != nil {
		return nil, err
	}
	reply := binarize.Value[int](binarize.Msgpack)
	if err := cluster.RegisterCommand(k, "increment", binarize.Value[Increment](binarize.Msgpack), reply); err != nil {
		return nil, err
	}
	if err := cluster.RegisterCommand(k, "get", binarize.Value[Get](binarize.Msgpack), reply); err != nil {
		return nil, err
	}
	return k, nil
}
