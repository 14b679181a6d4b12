package entity_test

import (
	"context"
	"errors"
	"testing"

	"github.com/eventsourced-go/eventsourced/entity"
	"github.com/eventsourced-go/eventsourced/eventlog"
	"github.com/eventsourced-go/eventsourced/internal/deletetest"
	"github.com/eventsourced-go/eventsourced/internal/telemetrytest"
	"github.com/eventsourced-go/eventsourced/snapshotstore"
	"go.opentelemetry.io/otel/attribute"
)

// TestDelete runs the entity deletion scenarios on memory.
func TestDelete(t *testing.T) {
	deletetest.Run(t, func(*testing.T) (eventlog.Log, snapshotstore.Store) {
		return eventlog.NewMemory(), snapshotstore.NewMemory()
	})
}

// plainLog hides every capability of a Log but the contract.
type plainLog struct{ eventlog.Log }

func TestDeleteRefusals(t *testing.T) {
	ctx := context.Background()
	k := register(t, newSystem(t, plainLog{eventlog.NewMemory()}))
	_, err := k.Delete(ctx, "x")
	const want = "entity: invalid argument: Delete Counter/x: the log (entity_test.plainLog) cannot delete streams (eventlog.StreamDeleter)"
	if !errors.Is(err, entity.ErrInvalid) || err.Error() != want {
		t.Fatalf("Delete on a log without StreamDeleter: %v\nwant %s", err, want)
	}
	k = register(t, newSystem(t, eventlog.NewMemory()))
	_, err = k.Delete(ctx, "x", entity.AllowReuse())
	const wantReuse = "entity: invalid argument: Delete Counter/x with AllowReuse needs a System WithSnapshotStore and a State codec"
	if !errors.Is(err, entity.ErrInvalid) || err.Error() != wantReuse {
		t.Fatalf("Delete with AllowReuse and no snapshot store: %v\nwant %s", err, wantReuse)
	}
}

// deletableLog is a flakyLog that can delete streams.
type deletableLog struct{ *flakyLog }

func (l deletableLog) DeleteStream(ctx context.Context, typ, id string, reuse bool) (uint64, error) {
	return l.Log.(eventlog.StreamDeleter).DeleteStream(ctx, typ, id, reuse)
}

// TestDeleteRunsInTurn: commands queued before a Delete run first, against
// the state before it; those after it find the entity deleted.
func TestDeleteRunsInTurn(t *testing.T) {
	ctx := context.Background()
	gate := make(chan struct{})
	log := &flakyLog{Log: eventlog.NewMemory()}
	k := register(t, newSystem(t, deletableLog{log}))
	ask(t, k.Ref("q"), Add{N: 1})
	log.set(func(l *flakyLog) { l.gate = gate })
	first := make(chan error, 1)
	go func() { _, err := entity.Ask(ctx, k.Ref("q"), Add{N: 2}); first <- err }()
	eventually(t, "first command in flight", func() bool { return log.held.Load() == 1 })
	queued := make(chan error, 1)
	go func() { _, err := entity.Ask(ctx, k.Ref("q"), Add{N: 3}); queued <- err }()
	eventually(t, "second command queued", func() bool { return entity.Queued(k, "q") == 1 })
	deleted := make(chan uint64, 1)
	go func() {
		seq, err := k.Delete(ctx, "q")
		if err != nil {
			t.Errorf("Delete: %v", err)
		}
		deleted <- seq
	}()
	eventually(t, "Delete queued", func() bool { return entity.Queued(k, "q") == 2 })
	after := make(chan error, 1)
	go func() { _, err := entity.Ask(ctx, k.Ref("q"), Add{N: 4}); after <- err }()
	eventually(t, "command after the Delete queued", func() bool { return entity.Queued(k, "q") == 3 })
	close(gate)
	for _, c := range []chan error{first, queued} {
		if err := <-c; err != nil {
			t.Fatalf("command before the Delete: %v", err)
		}
	}
	if seq := <-deleted; seq != 3 {
		t.Fatalf("Delete returned seq %d, want 3: the commands queued before it ran first", seq)
	}
	if err := <-after; !errors.Is(err, eventlog.ErrDeleted) {
		t.Fatalf("command after the Delete: %v; want ErrDeleted", err)
	}
	if last, _ := log.LastSeq(ctx, "Counter", "q"); last != 3 {
		t.Fatalf("LastSeq %d, want 3", last)
	}
}

// TestDeletedCommandsAreCounted: commands to a deleted entity are counted
// with outcome "deleted", not as recovery or persist failures.
func TestDeletedCommandsAreCounted(t *testing.T) {
	ctx := context.Background()
	o := telemetrytest.New(t)
	k := register(t, newSystem(t, eventlog.NewMemory(), entity.WithMeterProvider(o.MP)))
	ask(t, k.Ref("d"), Add{N: 1})
	if _, err := k.Delete(ctx, "d"); err != nil {
		t.Fatal(err)
	}
	for range 2 {
		if _, err := entity.Ask(ctx, k.Ref("d"), Add{N: 1}); !errors.Is(err, eventlog.ErrDeleted) {
			t.Fatalf("command after Delete: %v", err)
		}
	}
	if n := o.Count(t, "eventsourced.commands", attribute.String("eventsourced.outcome", "deleted")); n != 2 {
		t.Fatalf("eventsourced.commands{outcome=deleted} = %d, want 2", n)
	}
	if n := o.Count(t, "eventsourced.commands", attribute.String("eventsourced.outcome", "recovery_failed")); n != 0 {
		t.Fatalf("eventsourced.commands{outcome=recovery_failed} = %d, want 0", n)
	}
}
