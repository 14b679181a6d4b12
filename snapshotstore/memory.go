package snapshotstore

import (
	"context"
	"slices"
	"sync"
	"time"
)

// Compile-time checks that Memory provides the contract and its optional
// capabilities.
var (
	_ Store  = (*Memory)(nil)
	_ Lister = (*Memory)(nil)
	_ Closer = (*Memory)(nil)
)

// Memory is a [Store] that keeps snapshots in process memory: the reference
// implementation of the contract, for tests and in-memory runs. It also
// implements [Lister] and [Closer].
//
// Memory stores a copy of each snapshot's data and returns copies, so
// neither the saver nor a loader can change a stored snapshot by mutating
// its slice.
//
// The zero value is not usable; call [NewMemory].
type Memory struct {
	// mu guards closed and snaps.
	mu     sync.RWMutex
	closed bool
	// snaps holds each entity's snapshots in ascending Seq order. Stored
	// Data is never written after Save, so it may be copied without mu.
	snaps map[key][]Snapshot
}

// key identifies an entity.
type key struct{ typ, id string }

// NewMemory returns an empty in-memory store.
func NewMemory() *Memory {
	return &Memory{snaps: make(map[key][]Snapshot)}
}

// Save implements [Store]. It sets s.Time to the current time.
func (m *Memory) Save(ctx context.Context, s Snapshot, keep int) error {
	if err := Validate(s); err != nil {
		return err
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	s.Data = slices.Clone(s.Data)
	s.Time = time.Now()

	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		return ErrClosed
	}
	k := key{s.EntityType, s.EntityID}
	list := m.snaps[k]
	i, found := slices.BinarySearchFunc(list, s.Seq, func(e Snapshot, seq uint64) int {
		switch {
		case e.Seq < seq:
			return -1
		case e.Seq > seq:
			return 1
		}
		return 0
	})
	if found {
		list[i] = s
	} else {
		list = slices.Insert(list, i, s)
	}
	if keep > 0 && len(list) > keep {
		// Drop the oldest in place; clear the tail so the dropped data can be
		// collected.
		n := copy(list, list[len(list)-keep:])
		clear(list[n:])
		list = list[:n]
	}
	m.snaps[k] = list
	return nil
}

// Load implements [Store].
func (m *Memory) Load(ctx context.Context, typ, id string) (Snapshot, bool, error) {
	if err := ValidateKey(typ, id); err != nil {
		return Snapshot{}, false, err
	}
	if err := ctx.Err(); err != nil {
		return Snapshot{}, false, err
	}
	m.mu.RLock()
	if m.closed {
		m.mu.RUnlock()
		return Snapshot{}, false, ErrClosed
	}
	list := m.snaps[key{typ, id}]
	if len(list) == 0 {
		m.mu.RUnlock()
		return Snapshot{}, false, nil
	}
	s := list[len(list)-1]
	m.mu.RUnlock()
	s.Data = slices.Clone(s.Data)
	return s, true, nil
}

// Delete implements [Store].
func (m *Memory) Delete(ctx context.Context, typ, id string) error {
	if err := ValidateKey(typ, id); err != nil {
		return err
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		return ErrClosed
	}
	delete(m.snaps, key{typ, id})
	return nil
}

// List implements [Lister].
func (m *Memory) List(ctx context.Context, typ, id string) ([]Snapshot, error) {
	if err := ValidateKey(typ, id); err != nil {
		return nil, err
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	m.mu.RLock()
	if m.closed {
		m.mu.RUnlock()
		return nil, ErrClosed
	}
	list := slices.Clone(m.snaps[key{typ, id}])
	m.mu.RUnlock()
	for i := range list {
		list[i].Data = slices.Clone(list[i].Data)
	}
	return list, nil
}

// Close implements [Closer]. It releases the stored snapshots; afterwards
// every method returns [ErrClosed], Close included.
func (m *Memory) Close() error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		return ErrClosed
	}
	m.closed, m.snaps = true, nil
	return nil
}
