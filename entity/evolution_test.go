package entity_test

import (
	"context"
	"errors"
	"log/slog"
	"testing"

	"go.opentelemetry.io/otel/attribute"

	"github.com/eventsourced-go/eventsourced/binarize"
	"github.com/eventsourced-go/eventsourced/entity"
	"github.com/eventsourced-go/eventsourced/eventlog"
	"github.com/eventsourced-go/eventsourced/internal/evolutiontest"
	"github.com/eventsourced-go/eventsourced/internal/telemetrytest"
	"github.com/eventsourced-go/eventsourced/snapshotstore"
)

// TestStateEvolution runs the state schema evolution scenarios on the
// in-memory log and snapshot store.
func TestStateEvolution(t *testing.T) {
	evolutiontest.Run(t, func(*testing.T) (eventlog.Log, snapshotstore.Store) {
		return eventlog.NewMemory(), snapshotstore.NewMemory()
	})
}

// TestUnusableSnapshotIsCounted checks the eventsourced.snapshots.unusable
// metric: one per snapshot skipped, by entity type, and none for a usable
// one.
func TestUnusableSnapshotIsCounted(t *testing.T) {
	ctx := context.Background()
	log, snaps := eventlog.NewMemory(), snapshotstore.NewMemory()
	_, _, raw, _ := counterEvents().Encode(Added{N: 2})
	for _, id := range []string{"a", "b"} {
		if _, err := log.Append(ctx, "Counter", id, 0, eventlog.Event{Name: "Added", Data: raw}); err != nil {
			t.Fatal(err)
		}
	}
	// a's snapshot is of an older revision, b's is fine.
	snaps.Save(ctx, snapshotstore.Snapshot{EntityType: "Counter", EntityID: "a", Seq: 1, Revision: 7, Data: []byte(`{"Value":2}`)}, 1)
	snaps.Save(ctx, snapshotstore.Snapshot{EntityType: "Counter", EntityID: "b", Seq: 1, Data: []byte(`{"Value":2}`)}, 1)
	o := telemetrytest.New(t)
	sys, err := entity.NewSystem(log, entity.WithSnapshotStore(snaps), entity.WithMeterProvider(o.MP),
		entity.WithLogger(slog.New(slog.DiscardHandler)))
	if err != nil {
		t.Fatal(err)
	}
	defer sys.Close()
	k := register(t, sys, entity.WithSnapshotEvery(10))
	for _, id := range []string{"a", "b"} {
		if got := ask(t, k.Ref(id), Get{}); got.Value != 2 {
			t.Fatalf("%s: state %+v, want Value 2", id, got)
		}
	}
	if n := o.Count(t, "eventsourced.snapshots.unusable", attribute.String("eventsourced.entity.type", "Counter")); n != 1 {
		t.Fatalf("eventsourced.snapshots.unusable = %d, want 1", n)
	}
}

func TestStateRevisionOptionsRefused(t *testing.T) {
	def := counterType()
	def.State = binarize.NewVersioned[Counter](binarize.JSON, 3)
	def.StateRevision = 2
	_, err := entity.Register(newSystem(t, eventlog.NewMemory()), def)
	const want = `entity: invalid argument: entity type "Counter": StateRevision 2 differs from the revision of its State codec, 3; leave StateRevision 0`
	if !errors.Is(err, entity.ErrInvalid) || err.Error() != want {
		t.Fatalf("Register: %v\nwant %s", err, want)
	}
	def.StateRevision = 3 // the same: accepted
	if _, err := entity.Register(newSystem(t, eventlog.NewMemory()), def); err != nil {
		t.Fatalf("Register with StateRevision equal to the codec's: %v", err)
	}

	_, err = entity.Register(newSystem(t, eventlog.NewMemory()), counterType(), entity.WithSnapshotPolicy(9))
	const wantPolicy = `entity type "Counter": entity: invalid argument: WithSnapshotPolicy(SnapshotPolicy(9)): not a policy`
	if !errors.Is(err, entity.ErrInvalid) || err.Error() != wantPolicy {
		t.Fatalf("Register with policy 9: %v\nwant %s", err, wantPolicy)
	}
}
