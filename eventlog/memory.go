package eventlog

import (
	"context"
	"hash/maphash"
	"iter"
	"maps"
	"sync"
	"sync/atomic"
)

// Compile-time checks that Memory provides the contract and every optional
// capability.
var (
	_ Log           = (*Memory)(nil)
	_ Deleter       = (*Memory)(nil)
	_ StreamDeleter = (*Memory)(nil)
	_ IDLister      = (*Memory)(nil)
	_ TypeLister    = (*Memory)(nil)
	_ Closer        = (*Memory)(nil)
	_ AllReader     = (*Memory)(nil)
)

// Memory is a [Log] that keeps everything in process memory. It is the
// reference implementation of the contract and the backend for tests and
// in-memory benchmarks. It also implements [Deleter], [StreamDeleter],
// [IDLister], [TypeLister], [AllReader] and [Closer].
//
// Memory stores copies of appended data and metadata and yields copies, so a
// caller that mutates its slices or maps after Append, or mutates the records
// it reads, cannot change the stored events.
//
// Positions start at 1 and come from one counter for the whole log: the
// events of an Append get the next Positions, in order. So the Positions of
// one entity type have holes where other types' events took them, and a
// reader by type never sees a hole fill in later. Readers of several types
// ([Memory.ReadAll]) merge the types' indexes; memory_all.go says why they
// never miss an event of one type that commits after one of another type
// with a larger Position.
//
// Appends to different entities take different locks for most of their
// work, so they barely contend; appends to entities of one type share only a
// short critical section in which their events are numbered. A read never
// holds a lock while its consumer runs, so a slow reader does not stall
// appenders.
//
// The zero value is not usable; call [NewMemory].
type Memory struct {
	closed atomic.Bool
	pos    atomic.Uint64 // the last Position handed out
	seed   maphash.Seed  // hashes ids to shards
	// shards hold the streams, by the hash of their id; see memory_layout.go.
	shards [memShards]memShard

	typesMu sync.RWMutex // guards types
	types   map[string]*typeIndex

	// allNotify is closed, and set to nil, by the next append of any type
	// or by Close; it is nil while no reader of several types waits. See
	// waitAll.
	allNotify atomic.Pointer[chan struct{}]
}

// NewMemory returns an empty in-memory log.
func NewMemory() *Memory {
	m := &Memory{seed: maphash.MakeSeed(), types: make(map[string]*typeIndex)}
	for i := range m.shards {
		m.shards[i].streams = make(map[streamKey]*stream)
	}
	return m
}

// shard returns the shard of the streams with id.
func (m *Memory) shard(id string) *memShard {
	return &m.shards[maphash.String(m.seed, id)%memShards]
}

// typeIndex returns the index of typ, creating it if needed.
func (m *Memory) typeIndex(typ string) *typeIndex {
	m.typesMu.RLock()
	ti := m.types[typ]
	m.typesMu.RUnlock()
	if ti != nil {
		return ti
	}
	m.typesMu.Lock()
	defer m.typesMu.Unlock()
	if ti = m.types[typ]; ti == nil {
		ti = &typeIndex{}
		ti.names.Store(&nameTable{})
		m.types[typ] = ti
	}
	return ti
}

// lookupType returns the index of typ, nil if it has none.
func (m *Memory) lookupType(typ string) *typeIndex {
	m.typesMu.RLock()
	defer m.typesMu.RUnlock()
	return m.types[typ]
}

// LastSeq implements [Log].
func (m *Memory) LastSeq(ctx context.Context, typ, id string) (uint64, error) {
	if err := ValidateStream(typ, id); err != nil {
		return 0, err
	}
	if err := ctx.Err(); err != nil {
		return 0, err
	}
	sh := m.shard(id)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	if m.closed.Load() {
		return 0, ErrClosed
	}
	if st := sh.streams[streamKey{typ, id}]; st != nil {
		return st.last, nil
	}
	return 0, nil
}

// EntityIDs implements [IDLister]. An entity stays listed after all of its
// events were deleted with [Memory.DeleteTo]; one deleted with
// [Memory.DeleteStream] is not, until it has a new event.
func (m *Memory) EntityIDs(ctx context.Context, typ string) iter.Seq2[string, error] {
	return func(yield func(string, error) bool) {
		if err := ValidateType(typ); err != nil {
			yield("", err)
			return
		}
		if err := ctx.Err(); err != nil {
			yield("", err)
			return
		}
		if m.closed.Load() {
			yield("", ErrClosed)
			return
		}
		// A type's streams are never removed from its index, which is what
		// keeps an entity listed after its events were deleted.
		var ids []string
		if ti := m.lookupType(typ); ti != nil {
			ti.mu.Lock()
			ids = make([]string, 0, len(ti.streams))
			for _, st := range ti.streams {
				if st.tomb.Load() == tombNone {
					ids = append(ids, st.key.id)
				}
			}
			ti.mu.Unlock()
		}
		for _, id := range ids {
			if err := ctx.Err(); err != nil {
				yield("", err)
				return
			}
			if !yield(id, nil) {
				return
			}
		}
	}
}

// EntityTypes implements [TypeLister]: the types with at least one
// stream, including streams whose events were all deleted and streams
// [Memory.DeleteStream] tombstoned before their first event.
func (m *Memory) EntityTypes(ctx context.Context) iter.Seq2[string, error] {
	return func(yield func(string, error) bool) {
		if err := ctx.Err(); err != nil {
			yield("", err)
			return
		}
		if m.closed.Load() {
			yield("", ErrClosed)
			return
		}
		// A reader of a type that was never written creates its index,
		// so an index alone does not make a type.
		m.typesMu.RLock()
		idx := make(map[string]*typeIndex, len(m.types))
		maps.Copy(idx, m.types)
		m.typesMu.RUnlock()
		var types []string
		for typ, ti := range idx {
			ti.mu.Lock()
			n := len(ti.streams)
			ti.mu.Unlock()
			if n > 0 {
				types = append(types, typ)
			}
		}
		for _, typ := range types {
			if err := ctx.Err(); err != nil {
				yield("", err)
				return
			}
			if !yield(typ, nil) {
				return
			}
		}
	}
}

// Close implements [Closer]. It releases the stored events and ends every
// subscription; afterwards every method returns [ErrClosed], Close included.
func (m *Memory) Close() error {
	if !m.closed.CompareAndSwap(false, true) {
		return ErrClosed
	}
	// closed is set before the index locks are taken to wake subscribers
	// (see waitChan), and before readers of several types are woken (see
	// waitAll).
	m.wakeAll()
	m.typesMu.Lock()
	types := m.types
	m.types = make(map[string]*typeIndex)
	m.typesMu.Unlock()
	for _, ti := range types {
		ti.mu.Lock()
		if ti.notify != nil {
			close(ti.notify)
			ti.notify = nil
		}
		ti.mu.Unlock()
	}
	for i := range m.shards {
		sh := &m.shards[i]
		sh.mu.Lock()
		sh.streams = make(map[streamKey]*stream)
		sh.mu.Unlock()
	}
	return nil
}
