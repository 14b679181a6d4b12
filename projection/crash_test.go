package projection_test

import (
	"context"
	"errors"
	"sync"
	"testing"
	"testing/synctest"

	"github.com/eventsourced-go/eventsourced/eventlog"
	"github.com/eventsourced-go/eventsourced/projection"
)

// killingStore kills the projection between the handler and the offset
// write of its kill-th commit: the handler's effects stay, the offset does
// not move, and the projection's context is canceled as if the process died.
type killingStore struct {
	projection.OffsetStore
	kill   func()
	mu     sync.Mutex // guards the fields below
	n, at  int
	killed bool
	// from and to are the offsets of the killed commit.
	from, to uint64
}

func (s *killingStore) Commit(ctx context.Context, name string, from, to uint64, handle func(context.Context) error) error {
	s.mu.Lock()
	s.n++
	crash := s.n == s.at
	s.mu.Unlock()
	if !crash {
		return s.OffsetStore.Commit(ctx, name, from, to, handle)
	}
	if err := handle(ctx); err != nil {
		return err
	}
	s.kill()
	s.mu.Lock()
	s.killed, s.from, s.to = true, from, to
	s.mu.Unlock()
	return errors.New("killed before the offset write")
}

// readModel is a non-idempotent counter and an idempotent per-entity view.
type readModel struct {
	mu      sync.Mutex // guards the fields below
	applied int        // events applied, duplicates included
	lastSeq map[string]uint64
	total   int // events applied once, thanks to lastSeq
}

func (m *readModel) handle(_ context.Context, batch []eventlog.Record) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, rec := range batch {
		m.applied++
		if rec.Seq <= m.lastSeq[rec.EntityID] {
			continue // seen before: at-least-once delivery
		}
		m.lastSeq[rec.EntityID] = rec.Seq
		m.total++
	}
	return nil
}

// TestKilledBetweenHandlerAndOffsetWrite documents the at-least-once
// semantics of stores that save the offset after the handler: the batch in
// flight at the crash is delivered again, which an idempotent read model
// absorbs and a plain counter double-counts.
func TestKilledBetweenHandlerAndOffsetWrite(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		log := eventlog.NewMemory()
		appendN(t, log, "Tab", "t1", 5)
		appendN(t, log, "Tab", "t2", 4)
		mem := projection.NewMemory()
		model := &readModel{lastSeq: map[string]uint64{}}

		ctx, kill := context.WithCancel(t.Context())
		store := &killingStore{OffsetStore: mem, kill: kill, at: 2}
		p := mustNew(t, log, "Tab", "tabs", store, model.handle, projection.WithBatchSize(3))
		if err := p.Start(ctx); err != nil {
			t.Fatal(err)
		}
		synctest.Wait()
		if err := p.Wait(t.Context()); err != nil || !store.killed {
			t.Fatalf("Wait after the kill: %v, killed %t; want nil, true", err, store.killed)
		}
		// All nine events are this type's, at Positions 1-9. The batches'
		// sizes depend on how far the reader got, so take them from the
		// killed commit: it ran its handler and did not move the offset.
		off, _ := mem.Load(t.Context(), "tabs")
		if off != store.from || model.applied != int(store.to) {
			t.Fatalf("after the kill: offset %d, applied %d; want %d (before the killed batch), %d (up to its end)", off, model.applied, store.from, store.to)
		}

		// Restart, as a new process would, on the same offsets and read model.
		p2 := mustNew(t, log, "Tab", "tabs", mem, model.handle, projection.WithBatchSize(3))
		start(t, p2)
		synctest.Wait()
		if model.total != 9 || model.lastSeq["t1"] != 5 || model.lastSeq["t2"] != 4 {
			t.Errorf("idempotent view: total %d, last seqs %v; want 9, t1:5 t2:4", model.total, model.lastSeq)
		}
		if dup := int(store.to - store.from); model.applied != 9+dup {
			t.Errorf("non-idempotent counter: %d, want %d = 9 events + the %d of the batch redelivered", model.applied, 9+dup, dup)
		}
		if st := p2.Status(); st.Offset != 9 {
			t.Errorf("offset after restart %d, want 9", st.Offset)
		}
	})
}
