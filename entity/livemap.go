package entity

import (
	"hash/maphash"
	"sync"
)

// liveShards is the number of shards of a liveMap: enough that the two
// cores of a small machine, or the dozens of a big one, rarely meet on one
// lock.
const liveShards = 64

// liveMap maps entity ids to live instances. It is a sharded map with a
// read-write lock per shard rather than a sync.Map: a lookup hashes the
// string directly instead of through an interface, and an entry costs a
// map slot instead of a trie node, which matters with a million live
// entities.
type liveMap[V comparable] struct {
	seed   maphash.Seed
	_      [56]byte // keeps the first shard's lock off the line of seed and of what precedes the map
	shards [liveShards]liveShard[V]
}

// liveShard is 128 bytes, so that the locks of two shards, which every
// lookup writes (RLock), are never on one cache line however the array is
// aligned.
type liveShard[V comparable] struct {
	mu sync.RWMutex // guards m
	m  map[string]V
	_  [96]byte
}

func (lm *liveMap[V]) shard(id string) *liveShard[V] {
	return &lm.shards[maphash.String(lm.seed, id)%liveShards]
}

func (lm *liveMap[V]) init() {
	lm.seed = maphash.MakeSeed()
	for i := range lm.shards {
		lm.shards[i].m = make(map[string]V)
	}
}

// Load returns the value of id.
func (lm *liveMap[V]) Load(id string) (V, bool) {
	s := lm.shard(id)
	s.mu.RLock()
	v, ok := s.m[id]
	s.mu.RUnlock()
	return v, ok
}

// LoadOrStore returns the value of id if there is one (loaded true), else
// stores v and returns it.
func (lm *liveMap[V]) LoadOrStore(id string, v V) (V, bool) {
	s := lm.shard(id)
	s.mu.Lock()
	defer s.mu.Unlock()
	if old, ok := s.m[id]; ok {
		return old, true
	}
	s.m[id] = v
	return v, false
}

// CompareAndDelete deletes id if its value is v.
func (lm *liveMap[V]) CompareAndDelete(id string, v V) bool {
	s := lm.shard(id)
	s.mu.Lock()
	defer s.mu.Unlock()
	if old, ok := s.m[id]; !ok || old != v {
		return false
	}
	delete(s.m, id)
	return true
}

// Range calls f for the values of one shard at a time, copied first, so f
// may use the map; it stops when f returns false. Like sync.Map.Range it
// sees no consistent snapshot of the whole map.
func (lm *liveMap[V]) Range(f func(v V) bool) {
	var buf []V
	for i := range lm.shards {
		s := &lm.shards[i]
		s.mu.RLock()
		buf = buf[:0]
		for _, v := range s.m {
			buf = append(buf, v)
		}
		s.mu.RUnlock()
		for _, v := range buf {
			if !f(v) {
				return
			}
		}
	}
}
