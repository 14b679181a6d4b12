package postgreslog

import "sync"

// seqCache remembers, per stream, the highest Seq this Log has seen exist:
// appended, read to the end of the stream, or reported by a conflict; 0 for
// a stream read from the start and found empty. An append that expects
// exactly that Seq needs no lookup of the stream's last event: the Seq
// exists (or existed before a deletion), so the append makes no gap, and if
// another process has appended beyond it meanwhile, the unique key refuses
// the row (or the deletion record shows it), the round fails, and it runs
// again with full checks. Seqs only grow, so the cache can be behind the
// database but never ahead of it.
//
// It keeps two generations of at most size/2 streams each, so it stays
// bounded and keeps the streams in recent use.
type seqCache struct {
	mu       sync.Mutex // guards cur and old
	cur, old map[streamKey]uint64
	half     int
}

// defaultSeqCacheSize is how many streams a Log's seqCache holds.
const defaultSeqCacheSize = 1 << 20

func newSeqCache(size int) *seqCache {
	return &seqCache{cur: make(map[streamKey]uint64), half: max(size/2, 1)}
}

// knows reports whether seq is the highest Seq the cache has for k.
func (c *seqCache) knows(k streamKey, seq uint64) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	v, ok := c.cur[k]
	if !ok {
		v, ok = c.old[k]
	}
	return ok && v == seq
}

// learn records that seq exists in stream k; 0 that k was empty.
func (c *seqCache) learn(k streamKey, seq uint64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.learnLocked(k, seq)
}

// learnLocked is learn for a caller holding c.mu.
func (c *seqCache) learnLocked(k streamKey, seq uint64) {
	if v, ok := c.old[k]; ok && v > seq {
		seq = v
	}
	if v, ok := c.cur[k]; ok && v >= seq {
		return
	}
	if len(c.cur) >= c.half {
		c.old, c.cur = c.cur, make(map[streamKey]uint64, c.half)
	}
	c.cur[k] = seq
}

// knowsAll sets known[i] to knows(keys[i], seqs[i]) for every i, under one
// lock.
func (c *seqCache) knowsAll(keys []streamKey, seqs []uint64, known []bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for i, k := range keys {
		v, ok := c.cur[k]
		if !ok {
			v, ok = c.old[k]
		}
		known[i] = ok && v == seqs[i]
	}
}
