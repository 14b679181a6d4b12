package entity_test

import (
	"context"
	"slices"
	"testing"

	"github.com/eventsourced-go/eventsourced/eventlog"
)

func TestPassivateOne(t *testing.T) {
	log := eventlog.NewMemory()
	sys := newSystem(t, log)
	k := register(t, sys)
	ask(t, k.Ref("a"), Add{N: 1})
	ask(t, k.Ref("b"), Add{N: 1})
	if !k.Passivate("a") {
		t.Fatal("Passivate(a) of an idle entity = false, want true")
	}
	if got := k.Live(); got != 1 {
		t.Fatalf("after Passivate(a): %d live, want 1", got)
	}
	if !k.Passivate("never-activated") {
		t.Error("Passivate of an entity that is not live = false, want true")
	}
	// Another writer appends behind the passivated entity's back: it must
	// recover from the log on its next command, not append at a stale Seq.
	_, _, raw, _ := counterEvents().Encode(Added{N: 10})
	if _, err := log.Append(context.Background(), "Counter", "a", 1, eventlog.Event{Name: "Added", Data: raw}); err != nil {
		t.Fatal(err)
	}
	if got := ask(t, k.Ref("a"), Add{N: 1}); got != 12 {
		t.Errorf("reactivated a: %d, want 12 (recovered from the log)", got)
	}
	if got := k.Live(); got != 2 {
		t.Errorf("after reactivation: %d live, want 2", got)
	}
}

// LiveIDs yields every live entity once, and not one passivated.
func TestLiveIDs(t *testing.T) {
	k := register(t, newSystem(t, eventlog.NewMemory()))
	for _, id := range []string{"a", "b", "c"} {
		ask(t, k.Ref(id), Add{N: 1})
	}
	if !k.Passivate("b") {
		t.Fatal("Passivate(b) reported busy")
	}
	var got []string
	for id := range k.LiveIDs() {
		got = append(got, id)
	}
	slices.Sort(got)
	if !slices.Equal(got, []string{"a", "c"}) {
		t.Errorf("LiveIDs = %v, want [a c]", got)
	}
}
