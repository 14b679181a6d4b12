package testkit_test

import (
	"context"
	"errors"
	"fmt"

	"github.com/eventsourced-go/eventsourced/binarize"
	"github.com/eventsourced-go/eventsourced/entity"
	"github.com/eventsourced-go/eventsourced/eventlog"
	"github.com/eventsourced-go/eventsourced/testkit"
)

// Counter is the state of a counter entity.
type Counter struct{ N int }

// CounterEvent is implemented by the counter's events.
type CounterEvent interface{ counterEvent() }

// Incremented is persisted by Increment.
type Incremented struct{}

func (Incremented) counterEvent() {}

// Increment replies with the new count.
type Increment struct{}

func (Increment) Handle(tx *entity.Tx[Counter, CounterEvent]) (int, error) {
	return tx.Persist(Incremented{}).N, nil
}

// Get replies with the count.
type Get struct{}

func (Get) Handle(tx *entity.Tx[Counter, CounterEvent]) (int, error) {
	return tx.State().N, nil
}

// This example tests what a caller sees when the store fails an append in
// each of the three ways, and that the entity never applies an event twice
// or one that was not written: it reads its stream again after a failure
// of unknown outcome.
func Example() {
	events := binarize.NewRegistry[CounterEvent](binarize.JSON)
	binarize.MustRegister[Incremented](events, "Incremented")
	counterType := entity.Type[Counter, CounterEvent]{
		Name:   "Counter",
		Apply:  func(s Counter, _ CounterEvent) Counter { s.N++; return s },
		Events: events,
	}
	ctx := context.Background()
	log := testkit.NewLog(eventlog.NewMemory())
	sys, err := entity.NewSystem(log)
	if err != nil {
		panic(err)
	}
	defer sys.Shutdown(ctx)
	counters, err := entity.Register(sys, counterType)
	if err != nil {
		panic(err)
	}
	c := counters.Ref("c-1")

	// The store is down: nothing is written, the caller cannot know that.
	if _, err := log.FailNext(1, testkit.OpAppend); err != nil {
		panic(err)
	}
	_, err = entity.Ask(ctx, c, Increment{})
	fmt.Println("fail: outcome unknown:", errors.Is(err, entity.ErrOutcomeUnknown))

	// The store refuses the events: definitely not written.
	if _, err := log.RejectNext(1, testkit.OpAppend); err != nil {
		panic(err)
	}
	_, err = entity.Ask(ctx, c, Increment{})
	fmt.Println("reject: outcome unknown:", errors.Is(err, entity.ErrOutcomeUnknown))

	// The connection drops after the commit: written, yet an error.
	if _, err := log.AmbiguousNext(1, testkit.OpAppend); err != nil {
		panic(err)
	}
	_, err = entity.Ask(ctx, c, Increment{})
	fmt.Println("ambiguous: outcome unknown:", errors.Is(err, entity.ErrOutcomeUnknown))

	// The entity read its stream again: it counts the one event written.
	n, err := entity.Ask(ctx, c, Get{})
	fmt.Println("count:", n, err)
	n, err = entity.Ask(ctx, c, Increment{})
	fmt.Println("after one more:", n, err)
	// Output:
	// fail: outcome unknown: true
	// reject: outcome unknown: false
	// ambiguous: outcome unknown: true
	// count: 1 <nil>
	// after one more: 2 <nil>
}
