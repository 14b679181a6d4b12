package projection

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"
)

// OffsetStore keeps the offset of each projection, by name, and decides how a
// handler's work and the offset update it pays for are combined. The offset
// is the Position of the last event a projection handled; 0 means none.
//
// A store that runs the handler and the offset update in one transaction
// (pgprojection) gives exactly-once effects on the read model; a store that
// runs the handler, then saves the offset ([Memory], natsprojection) gives
// at-least-once: a crash between the two delivers the batch again, so the
// handler must be idempotent.
type OffsetStore interface {
	// Load returns the offset of the projection name, 0 if it has none.
	Load(ctx context.Context, name string) (uint64, error)

	// Commit runs handle, then moves the offset of name from from to to. If
	// handle fails, Commit returns its error (possibly wrapped) and leaves
	// the offset alone. If the stored offset is not from, Commit returns an
	// error matching [ErrOffsetMoved]; transactional stores then undo
	// handle's writes.
	Commit(ctx context.Context, name string, from, to uint64, handle func(ctx context.Context) error) error

	// Reset runs clear, if not nil, and sets the offset of name to 0, so the
	// projection rebuilds its read model from the first event.
	// Transactional stores run both in one transaction; others set the
	// offset first, so that a failure never leaves an emptied read model
	// behind an old offset.
	Reset(ctx context.Context, name string, clear func(ctx context.Context) error) error
}

// Offset is a projection's stored offset, as [OffsetLister] lists it.
type Offset struct {
	// Name is the projection's name; a slice's is [SliceName]'s.
	Name string
	// Position is the Position of the last event the projection handled.
	Position uint64
	// Updated is when the offset was last written; zero if the store does
	// not keep it.
	Updated time.Time
}

// OffsetLister is the optional capability of an [OffsetStore] to list
// every stored offset, for operators' tools that know no projection
// names. [Memory], pgprojection.Store and natsprojection.Store implement
// it.
type OffsetLister interface {
	// Offsets returns every stored offset, ordered by name.
	Offsets(ctx context.Context) ([]Offset, error)
}

// Compile-time checks that Memory is an OffsetStore and an OffsetLister.
var (
	_ OffsetStore  = (*Memory)(nil)
	_ OffsetLister = (*Memory)(nil)
)

// Memory is an [OffsetStore] in process memory, for tests and for read
// models that live in memory too and are rebuilt on every start. Commit runs
// the handler, then saves the offset: at least once. It keeps control
// records too ([Controls]), so projections that share a Memory can be
// paused and resumed with [Pause] and [Resume].
//
// The zero value is not usable; call [NewMemory].
type Memory struct {
	// mu guards offsets, controls and ctlVersion.
	mu      sync.Mutex
	offsets map[string]uint64
	// controls are the control records by name (see [Controls]), made on
	// first use; ctlVersion is the last version given to one.
	controls   map[string]memControl
	ctlVersion uint64
}

// NewMemory returns an empty in-memory offset store.
func NewMemory() *Memory {
	return &Memory{offsets: make(map[string]uint64)}
}

// Load implements [OffsetStore].
func (m *Memory) Load(ctx context.Context, name string) (uint64, error) {
	if err := ctx.Err(); err != nil {
		return 0, err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.offsets[name], nil
}

// Commit implements [OffsetStore]. It checks the offset before and after
// handle, and does not hold its lock while handle runs.
func (m *Memory) Commit(ctx context.Context, name string, from, to uint64, handle func(ctx context.Context) error) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if err := m.check(name, from); err != nil {
		return err
	}
	if err := handle(ctx); err != nil {
		return err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if cur := m.offsets[name]; cur != from {
		return fmt.Errorf("%w: %s is at %d, not %d", ErrOffsetMoved, name, cur, from)
	}
	m.offsets[name] = to
	return nil
}

func (m *Memory) check(name string, from uint64) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if cur := m.offsets[name]; cur != from {
		return fmt.Errorf("%w: %s is at %d, not %d", ErrOffsetMoved, name, cur, from)
	}
	return nil
}

// Offsets implements [OffsetLister]. A Memory keeps no update times.
func (m *Memory) Offsets(ctx context.Context) ([]Offset, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	out := make([]Offset, 0, len(m.offsets))
	for name, pos := range m.offsets {
		out = append(out, Offset{Name: name, Position: pos})
	}
	slices.SortFunc(out, func(a, b Offset) int { return strings.Compare(a.Name, b.Name) })
	return out, nil
}

// Reset implements [OffsetStore].
func (m *Memory) Reset(ctx context.Context, name string, clear func(ctx context.Context) error) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	m.mu.Lock()
	delete(m.offsets, name)
	m.mu.Unlock()
	if clear != nil {
		return clear(ctx)
	}
	return nil
}
