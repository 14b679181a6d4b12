package snapshotstoretest_test

import (
	"context"
	"sync"
	"testing"

	"github.com/eventsourced-go/eventsourced/internal/conformancetest"
	"github.com/eventsourced-go/eventsourced/snapshotstore"
	"github.com/eventsourced-go/eventsourced/snapshotstore/snapshotstoretest"
)

// memory returns a fresh reference store, closed when the test ends.
func memory(t *testing.T) *snapshotstore.Memory {
	m := snapshotstore.NewMemory()
	t.Cleanup(func() { m.Close() })
	return m
}

// TestCasesPassOnMemory checks the harness: every case passes against the
// reference store when run through the recorder.
func TestCasesPassOnMemory(t *testing.T) {
	conformancetest.CheckPass(t, snapshotstoretest.Cases(), func(t *testing.T) snapshotstore.Store { return memory(t) })
}

func TestCasesAreNamedAndStateRules(t *testing.T) {
	conformancetest.CheckCases(t, snapshotstoretest.Cases())
}

// TestSuiteDetectsBrokenStores runs cases against stores that each break
// one rule and checks that the cases fail, saying which rule broke.
func TestSuiteDetectsBrokenStores(t *testing.T) {
	wrap := func(f func(*snapshotstore.Memory) snapshotstore.Store) func(t *testing.T) snapshotstore.Store {
		return func(t *testing.T) snapshotstore.Store { return f(memory(t)) }
	}
	b := conformancetest.Break[snapshotstore.Store]
	conformancetest.CheckCaught(t, snapshotstoretest.Cases(), []conformancetest.Broken[snapshotstore.Store]{
		b("LoadsLastSaved", wrap(func(m *snapshotstore.Memory) snapshotstore.Store { return &lastSaved{Memory: m} }),
			"SaveLoadLatest"),
		b("IgnoresKeep", wrap(func(m *snapshotstore.Memory) snapshotstore.Store { return ignoreKeep{m} }),
			"KeepLastK"),
		b("TruncatesData", wrap(func(m *snapshotstore.Memory) snapshotstore.Store { return truncate{m} }),
			"LargeSnapshot"),
	})
}

// lastSaved loads the snapshot saved last rather than the highest Seq.
type lastSaved struct {
	*snapshotstore.Memory

	// mu guards last.
	mu   sync.Mutex
	last map[[2]string]snapshotstore.Snapshot
}

func (s *lastSaved) Save(ctx context.Context, snap snapshotstore.Snapshot, keep int) error {
	if err := s.Memory.Save(ctx, snap, keep); err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.last == nil {
		s.last = make(map[[2]string]snapshotstore.Snapshot)
	}
	s.last[[2]string{snap.EntityType, snap.EntityID}] = snap
	return nil
}

func (s *lastSaved) Load(ctx context.Context, typ, id string) (snapshotstore.Snapshot, bool, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	snap, ok := s.last[[2]string{typ, id}]
	return snap, ok, nil
}

// ignoreKeep keeps every snapshot.
type ignoreKeep struct{ *snapshotstore.Memory }

func (s ignoreKeep) Save(ctx context.Context, snap snapshotstore.Snapshot, _ int) error {
	return s.Memory.Save(ctx, snap, 0)
}

// truncate stores at most 1 MiB, as a backend with a value size limit
// might without saying so.
type truncate struct{ *snapshotstore.Memory }

func (s truncate) Save(ctx context.Context, snap snapshotstore.Snapshot, keep int) error {
	if len(snap.Data) > 1<<20 {
		snap.Data = snap.Data[:1<<20]
	}
	return s.Memory.Save(ctx, snap, keep)
}
