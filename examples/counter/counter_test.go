package main

import (
	"testing"

	"github.com/eventsourced-go/eventsourced/entity/entitytest"
)

func TestCounter(t *testing.T) {
	f := entitytest.New(t, CounterType(), "c-1")
	entitytest.When(f, Increment{By: 3}).ThenEvents(Incremented{By: 3}).ThenReply(3)
	entitytest.When(f, Increment{By: 0}).ThenError(ErrNotPositive)
	entitytest.When(f, Decrement{By: 2}).ThenEvents(Decremented{By: 2}).ThenReply(1).ThenState(Counter{Value: 1})
	entitytest.When(f, Decrement{By: 5}).ThenError(ErrBelowZero)
	entitytest.When(f, Get{}).ThenNoEvents().ThenReply(1)
}

func TestCounterGiven(t *testing.T) {
	f := entitytest.New(t, CounterType(), "c-2").Given(Incremented{By: 10}, Decremented{By: 4})
	entitytest.When(f, Get{}).ThenReply(6)
	if f.Seq() != 2 {
		t.Errorf("Seq after two given events: %d, want 2", f.Seq())
	}
}

func TestRun(t *testing.T) {
	if err := run(2, 50); err != nil {
		t.Fatal(err)
	}
	if err := run(0, 1); err == nil {
		t.Error("run(0, 1) accepted zero counters")
	}
}
