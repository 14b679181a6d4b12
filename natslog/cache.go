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
	mu sync.Mutex // guards m
	m  map[string]tail
}

func newTailCache(size int) *tailCache {
	c := &tailCache{seed: maphash.MakeSeed()}
	if size > 0 {
		c.perShard = max(1, (size+cacheShards-1)/cacheShards)
	}
	return c
}

func (c *tailCache) shard(subj string) *cacheShard {
	return &c.shards[maphash.String(c.seed, subj)%cacheShards]
}

// get returns the remembered tail of subj.
func (c *tailCache) get(subj string) (tail, bool) {
	if c.perShard == 0 {
		return tail{}, false
	}
	s := c.shard(subj)
	s.mu.Lock()
	t, ok := s.m[subj]
	s.mu.Unlock()
	return t, ok
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
	s := c.shard(subj)
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.m == nil {
		s.m = make(map[string]tail)
	}
	old, ok := s.m[subj]
	switch {
	case ok && !force && old.sseq > t.sseq:
		return
	case !ok && len(s.m) >= c.perShard:
		for k := range s.m {
			delete(s.m, k)
			break
		}
	}
	s.m[subj] = t
}

// forget drops what is remembered of subj, after an append whose outcome is
// unknown.
func (c *tailCache) forget(subj string) {
	if c.perShard == 0 {
		return
	}
	s := c.shard(subj)
	s.mu.Lock()
	delete(s.m, subj)
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
