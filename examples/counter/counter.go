package main

import (
	"errors"
	"fmt"

	"github.com/eventsourced-go/eventsourced/binarize"
	"github.com/eventsourced-go/eventsourced/entity"
)

// Counter is the state of a counter entity.
type Counter struct {
	Value int `msgpack:"value"`
}

// Event is implemented by every counter event.
type Event interface{ isCounterEvent() }

// Incremented is persisted when the counter goes up.
type Incremented struct {
	By int `msgpack:"by"`
}

// Decremented is persisted when the counter goes down.
type Decremented struct {
	By int `msgpack:"by"`
}

func (Incremented) isCounterEvent() {}
func (Decremented) isCounterEvent() {}

// ErrNotPositive rejects increments and decrements that are not positive.
var ErrNotPositive = errors.New("amount must be positive")

// ErrBelowZero rejects a decrement that would take the counter below zero.
var ErrBelowZero = errors.New("counter cannot go below zero")

// Increment adds By and replies with the new value.
type Increment struct{ By int }

// Handle implements entity.Command.
func (c Increment) Handle(tx *entity.Tx[Counter, Event]) (int, error) {
	if c.By <= 0 {
		return 0, fmt.Errorf("increment %s by %d: %w", tx.ID(), c.By, ErrNotPositive)
	}
	return tx.Persist(Incremented{By: c.By}).Value, nil
}

// Decrement subtracts By and replies with the new value.
type Decrement struct{ By int }

// Handle implements entity.Command.
func (c Decrement) Handle(tx *entity.Tx[Counter, Event]) (int, error) {
	switch {
	case c.By <= 0:
		return 0, fmt.Errorf("decrement %s by %d: %w", tx.ID(), c.By, ErrNotPositive)
	case tx.State().Value-c.By < 0:
		return 0, fmt.Errorf("decrement %s (%d) by %d: %w", tx.ID(), tx.State().Value, c.By, ErrBelowZero)
	}
	return tx.Persist(Decremented{By: c.By}).Value, nil
}

// Get replies with the current value without persisting.
type Get struct{}

// Handle implements entity.Command.
func (Get) Handle(tx *entity.Tx[Counter, Event]) (int, error) { return tx.State().Value, nil }

// CounterType is the counter entity type: msgpack events and state.
func CounterType() entity.Type[Counter, Event] {
	events := binarize.NewRegistry[Event](binarize.Msgpack)
	binarize.MustRegister[Incremented](events, "Incremented")
	binarize.MustRegister[Decremented](events, "Decremented")
	return entity.Type[Counter, Event]{
		Name: "Counter",
		Apply: func(s Counter, e Event) Counter {
			switch e := e.(type) {
			case Incremented:
				s.Value += e.By
			case Decremented:
				s.Value -= e.By
			}
			return s
		},
		Events: events,
		State:  binarize.Value[Counter](binarize.Msgpack),
	}
}
