package keystore

import (
	"context"
	"slices"
	"sync"
)

// Compile-time checks that Memory provides the contract and its optional
// capability.
var (
	_ Store  = (*Memory)(nil)
	_ Closer = (*Memory)(nil)
)

// Memory is a [Store] that keeps keys in process memory: the reference
// implementation of the contract, for tests and examples. It also
// implements [Closer]. Its keys die with the process, so data encrypted
// under them is lost with it: never use it where data outlives the process.
//
// Memory returns copies of its keys, so a caller that mutates a returned
// Material (to wipe it after use, say) cannot change the stored key. Forget
// and Close overwrite the material they drop with zeros before letting it
// go, so it does not linger in the heap until the garbage collector reuses
// the memory.
//
// The zero value is not usable; call [NewMemory].
type Memory struct {
	// mu guards closed and keys.
	mu     sync.RWMutex
	closed bool
	// keys holds each subject's key. A stored Material is never handed
	// out, only copies of it.
	keys map[string]Key
}

// NewMemory returns an empty in-memory store.
func NewMemory() *Memory {
	return &Memory{keys: make(map[string]Key)}
}

// Get implements [Store].
func (m *Memory) Get(ctx context.Context, subject string) (Key, bool, error) {
	if err := ValidateSubject(subject); err != nil {
		return Key{}, false, err
	}
	if err := ctx.Err(); err != nil {
		return Key{}, false, err
	}
	m.mu.RLock()
	defer m.mu.RUnlock()
	if m.closed {
		return Key{}, false, ErrClosed
	}
	k, ok := m.keys[subject]
	if !ok {
		return Key{}, false, nil
	}
	return clone(k), true, nil
}

// GetOrCreate implements [Store].
func (m *Memory) GetOrCreate(ctx context.Context, subject string) (Key, error) {
	k, found, err := m.Get(ctx, subject)
	if err != nil || found {
		return k, err
	}
	// Draw the new key outside the lock: crypto/rand may block, and most
	// calls find a key and never need one.
	fresh, err := NewKey()
	if err != nil {
		return Key{}, err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		return Key{}, ErrClosed
	}
	if k, ok := m.keys[subject]; ok {
		// Another caller created one meanwhile: everyone gets that one.
		clear(fresh.Material)
		return clone(k), nil
	}
	m.keys[subject] = fresh
	return clone(fresh), nil
}

// Forget implements [Store].
func (m *Memory) Forget(ctx context.Context, subject string) error {
	if err := ValidateSubject(subject); err != nil {
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
	if k, ok := m.keys[subject]; ok {
		clear(k.Material)
		delete(m.keys, subject)
	}
	return nil
}

// Close implements [Closer]. It wipes and drops every key; afterwards every
// method returns [ErrClosed], Close included.
func (m *Memory) Close() error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		return ErrClosed
	}
	for _, k := range m.keys {
		clear(k.Material)
	}
	m.closed, m.keys = true, nil
	return nil
}

// clone returns k with its own copy of the material.
func clone(k Key) Key {
	k.Material = slices.Clip(slices.Clone(k.Material))
	return k
}
