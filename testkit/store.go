package testkit

import (
	"context"

	"github.com/eventsourced-go/eventsourced/snapshotstore"
)

// Store wraps a [snapshotstore.Store] and fails, rejects or delays its
// calls as the rules of its [Injector] say; calls no rule acts on go to
// the wrapped store unchanged. It has the optional [snapshotstore.Lister]
// and [snapshotstore.Closer]; List fails with [ErrUnsupported] if the
// wrapped store cannot list.
type Store struct {
	*Injector
	inner snapshotstore.Store
}

var (
	_ snapshotstore.Store  = (*Store)(nil)
	_ snapshotstore.Lister = (*Store)(nil)
	_ snapshotstore.Closer = (*Store)(nil)
)

// NewStore returns a Store around inner with no rule in force.
func NewStore(inner snapshotstore.Store) *Store {
	return &Store{Injector: newInjector(storeOps), inner: inner}
}

// Unwrap returns the wrapped store.
func (s *Store) Unwrap() snapshotstore.Store { return s.inner }

// Save implements snapshotstore.Store.
func (s *Store) Save(ctx context.Context, snap snapshotstore.Snapshot, keep int) error {
	c := Call{Op: OpSaveSnapshot, Type: snap.EntityType, ID: snap.EntityID, Seq: snap.Seq}
	f := s.decide(c)
	if err := f.before(ctx, c); err != nil {
		return err
	}
	return f.after(c, s.inner.Save(ctx, snap, keep))
}

// Load implements snapshotstore.Store.
func (s *Store) Load(ctx context.Context, typ, id string) (snapshotstore.Snapshot, bool, error) {
	c := Call{Op: OpLoadSnapshot, Type: typ, ID: id}
	if err := s.decide(c).before(ctx, c); err != nil {
		return snapshotstore.Snapshot{}, false, err
	}
	return s.inner.Load(ctx, typ, id)
}

// Delete implements snapshotstore.Store.
func (s *Store) Delete(ctx context.Context, typ, id string) error {
	c := Call{Op: OpDeleteSnapshots, Type: typ, ID: id}
	f := s.decide(c)
	if err := f.before(ctx, c); err != nil {
		return err
	}
	return f.after(c, s.inner.Delete(ctx, typ, id))
}

// List implements snapshotstore.Lister.
func (s *Store) List(ctx context.Context, typ, id string) ([]snapshotstore.Snapshot, error) {
	c := Call{Op: OpListSnapshots, Type: typ, ID: id}
	if err := s.decide(c).before(ctx, c); err != nil {
		return nil, err
	}
	l, ok := s.inner.(snapshotstore.Lister)
	if !ok {
		return nil, unsupported(s.inner, "List")
	}
	return l.List(ctx, typ, id)
}

// Close closes the wrapped store if it is a [snapshotstore.Closer]; no rule
// acts on it.
func (s *Store) Close() error {
	if c, ok := s.inner.(snapshotstore.Closer); ok {
		return c.Close()
	}
	return nil
}
