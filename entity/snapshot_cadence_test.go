package entity_test

import (
	"context"
	"slices"
	"sync"
	"testing"

	"github.com/eventsourced-go/eventsourced/entity"
	"github.com/eventsourced-go/eventsourced/eventlog"
	"github.com/eventsourced-go/eventsourced/snapshotstore"
)

// slowStore holds every Save until release is closed.
type slowStore struct {
	snapshotstore.Store
	release chan struct{}
	mu      sync.Mutex // guards saved
	saved   []uint64
}

func (s *slowStore) Save(ctx context.Context, snap snapshotstore.Snapshot, keep int) error {
	<-s.release
	s.mu.Lock()
	s.saved = append(s.saved, snap.Seq)
	s.mu.Unlock()
	return s.Store.Save(ctx, snap, keep)
}

// A snapshot that comes due while an earlier one is still being saved is not
// skipped: the latest one is saved next, so recovery replays at most
// WithSnapshotEvery events after it.
func TestSnapshotNotSkippedWhileSaving(t *testing.T) {
	store := &slowStore{Store: snapshotstore.NewMemory(), release: make(chan struct{})}
	mem := eventlog.NewMemory()
	sys := newSystem(t, mem, entity.WithSnapshotStore(store))
	k := register(t, sys, entity.WithSnapshotEvery(10))
	for range 55 {
		ask(t, k.Ref("s"), Add{N: 1})
	}
	close(store.release)
	if err := sys.Shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}
	store.mu.Lock()
	saved := slices.Clone(store.saved)
	store.mu.Unlock()
	// The saver takes the latest snapshot waiting, so which of 10..40 it
	// saved depends on scheduling; 50 must be the last.
	if len(saved) == 0 || saved[len(saved)-1] != 50 {
		t.Fatalf("snapshots saved at %v, want the last at 50", saved)
	}
	log := &flakyLog{Log: mem}
	k2 := register(t, newSystem(t, log, entity.WithSnapshotStore(store)), entity.WithSnapshotEvery(10))
	if got := ask(t, k2.Ref("s"), Get{}).Value; got != 55 {
		t.Errorf("recovered value %d, want 55", got)
	}
	if got := log.readsFrom(); !slices.Equal(got, []uint64{51}) {
		t.Errorf("recovery read from %v, want [51]", got)
	}
}

// A snapshot records the type's StateRevision, so that a later release can
// tell it apart.
func TestSnapshotRecordsStateRevision(t *testing.T) {
	store := snapshotstore.NewMemory()
	sys := newSystem(t, eventlog.NewMemory(), entity.WithSnapshotStore(store))
	def := counterType()
	def.StateRevision = 3
	k, err := entity.Register(sys, def, entity.WithSnapshotEvery(2))
	if err != nil {
		t.Fatal(err)
	}
	for range 2 {
		ask(t, k.Ref("r"), Add{N: 1})
	}
	if err := sys.Shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}
	snap, found, err := store.Load(context.Background(), "Counter", "r")
	if err != nil || !found || snap.Seq != 2 || snap.Revision != 3 {
		t.Fatalf("snapshot %+v, found %v, %v; want one at seq 2 with revision 3", snap, found, err)
	}
}
