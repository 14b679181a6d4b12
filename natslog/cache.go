package natslog

import (
	"hash/maphash"
	"sync"
)

// tail is what a [Log] remembers of an entity: the Seq and the stream
// sequence of the last message on its subject. The stream sequence is what
// the Nats-Expected-Last-Subject-Sequence header of the next append must
// carry.
type tail struct {
	seq  uint64 // per-entity Seq of the last event (or deletion marker)
	sseq uint64 // stream sequence of that message
}

// cacheShards spreads the cache over independently locked maps so that many
// entities appending at once do not contend on one mutex.
const cacheShards = 64

// tailCache is a size-capped map from subject to [tail]. It is only a hint:
// a wrong entry costs a conflict from the server and one lookup, never a
// wrong write, because the server checks the expected sequence.
//
// When a shard is full, adding evicts an arbitrary entry of that shard (Go's
// map iteration starts at a random place), which approximates random
// eviction at O(1) cost and without per-entry bookkeeping.
type tailCache struct {
	seed     maphash.Seed
	perShard int // 0: the cache is off
	shards   [cacheShards]cacheShard
}

type cacheShard struct {
	mu sync.Mutex // guards m and its entries' t and gone
	m  map[string]*centry
}

// centry is what the cache remembers of a subject. The subject is kept
// too, so that an append to a remembered entity finds its subject without
// building a string (see [Log.subjectOf]), and an append's ack updates
// the entry it started from without hashing the subject again (see
// [tailCache.settle]).
type centry struct {
	subj  string
	shard uint8 // index of its shard
	t     tail
	// gone reports that the entry left its shard's map (forgotten or
	// evicted): settling it must add a new one.
	gone bool
}

func newTailCache(size int) *tailCache {
	c := &tailCache{seed: maphash.MakeSeed()}
	if size > 0 {
		c.perShard = max(1, (size+cacheShards-1)/cacheShards)
	}
	return c
}

func (c *tailCache) shardIndex(subj string) uint8 {
	return uint8(maphash.String(c.seed, subj) % cacheShards)
}

func (c *tailCache) shard(subj string) *cacheShard {
	return &c.shards[c.shardIndex(subj)]
}

// get returns the remembered tail of subj.
func (c *tailCache) get(subj string) (tail, bool) {
	if c.perShard == 0 {
		return tail{}, false
	}
	s := c.shard(subj)
	s.mu.Lock()
	var t tail
	e, ok := s.m[subj]
	if ok {
		t = e.t
	}
	s.mu.Unlock()
	return t, ok
}

// lookup returns the entry of the subject spelled by key, and its tail,
// if the cache remembers it; e is nil if not. It allocates nothing.
func (c *tailCache) lookup(key []byte) (e *centry, t tail) {
	if c.perShard == 0 {
		return nil, tail{}
	}
	s := &c.shards[maphash.Bytes(c.seed, key)%cacheShards]
	s.mu.Lock()
	e = s.m[string(key)]
	if e != nil {
		t = e.t
	}
	s.mu.Unlock()
	return e, t
}

// settle remembers t as the tail of e's subject, as set does, after an
// append that started from e, an entry lookup returned.
func (c *tailCache) settle(e *centry, t tail) {
	s := &c.shards[e.shard]
	s.mu.Lock()
	if !e.gone {
		e.t = t
		s.mu.Unlock()
		return
	}
	s.mu.Unlock()
	c.set(e.subj, t)
}

// set remembers t as the tail of subj, replacing whatever was there. Callers
// use it with what the server just said: an append's ack or a lookup.
func (c *tailCache) set(subj string, t tail) {
	c.put(subj, t, true)
}

// observe remembers t unless a later tail (by stream sequence) is already
// known, so a slow read cannot replace what a newer append stored.
func (c *tailCache) observe(subj string, t tail) {
	c.put(subj, t, false)
}

func (c *tailCache) put(subj string, t tail, force bool) {
	if c.perShard == 0 {
		return
	}
	i := c.shardIndex(subj)
	s := &c.shards[i]
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.m == nil {
		s.m = make(map[string]*centry)
	}
	old := s.m[subj]
	switch {
	case old != nil && !force && old.t.sseq > t.sseq:
		return
	case old != nil:
		old.t = t
		return
	case len(s.m) >= c.perShard:
		for k, e := range s.m {
			delete(s.m, k)
			e.gone = true
			break
		}
	}
	s.m[subj] = &centry{subj: subj, shard: i, t: t}
}

// forget drops what is remembered of subj, after an append whose outcome is
// unknown.
func (c *tailCache) forget(subj string) {
	if c.perShard == 0 {
		return
	}
	s := c.shard(subj)
	s.mu.Lock()
	if e := s.m[subj]; e != nil {
		e.gone = true
		delete(s.m, subj)
	}
	s.mu.Unlock()
}

// len returns how many subjects are remembered.
func (c *tailCache) len() int {
	n := 0
	for i := range c.shards {
		s := &c.shards[i]
		s.mu.Lock()
		n += len(s.m)
		s.mu.Unlock()
	}
	return n
}
