package eventlog

import (
	"context"
	"iter"
	"math"
)

// Reading the whole log in Position order.
//
// Memory keeps no log-wide index: an append indexes its events in its
// type's index only, so appends of different types never share a lock and
// ReadAll costs Append nothing. A reader of several types merges their
// indexes instead, and makes up for what the per-type indexes do not tell
// it: whether an event of another type with a smaller Position is still
// being appended.
//
// An append takes its Positions from the log's counter (m.pos) while it
// holds its type's index lock, and indexes its events before it releases
// the lock. So a reader that loads the counter, high, and then takes a
// type's index lock finds every event of that type with a Position up to
// high indexed: an append that took one of them either released the lock
// before, or holds it and is waited for. And a type whose first append
// took a Position up to high has an index by then, since an append creates
// the index before it takes Positions. Every round of a reader therefore
// loads high first, then lists the types and takes each index lock once,
// and may yield every event up to high, in Position order, without
// missing one that commits later.

// ReadAll implements [AllReader]. It ends at the log's last Position as of
// the first chunk it reads, even if events are appended while it runs.
// ReadAll of one type is [Memory.ReadType].
func (m *Memory) ReadAll(ctx context.Context, after uint64, types ...string) iter.Seq2[Record, error] {
	return m.readAll(ctx, after, types, false)
}

// SubscribeAll implements [AllReader]. A subscription of one type is
// [Memory.Subscribe]; one of several types or of all of them waits, once
// it has caught up, for the next append of any type, and finds out what
// that append brought in the indexes of its types. [Memory.Close] ends
// every subscription with [ErrClosed].
func (m *Memory) SubscribeAll(ctx context.Context, after uint64, types ...string) iter.Seq2[Record, error] {
	return m.readAll(ctx, after, types, true)
}

// readAll is ReadAll and, with live set, SubscribeAll. Each round loads the
// last Position handed out, high, then copies up to readChunk entries of
// each type it follows with a Position up to high under the type's index
// lock (see the top of this file for why that misses nothing), merges them
// in Position order, copies up to readChunk of their records under the
// shards' locks, and yields them with no lock held.
func (m *Memory) readAll(ctx context.Context, after uint64, types []string, live bool) iter.Seq2[Record, error] {
	return func(yield func(Record, error) bool) {
		types, err := ValidateTypes(types)
		if err != nil {
			yield(Record{}, err)
			return
		}
		if len(types) == 1 {
			// One type needs no merge, and a subscriber of one type
			// waits for appends of that type only.
			m.readType(ctx, types[0], after, live)(yield)
			return
		}
		r := allReader{m: m, types: types, live: live, done: after, cursors: make(map[*typeIndex]*allCursor)}
		end := uint64(math.MaxUint64)
		started := live
		var chunk []Record
		for {
			if err := ctx.Err(); err != nil {
				yield(Record{}, err)
				return
			}
			if m.closed.Load() {
				yield(Record{}, ErrClosed)
				return
			}
			high := m.pos.Load()
			if !started {
				end, started = high, true
			}
			high = min(high, end)
			entries := r.round(high)
			chunk = m.allRecords(chunk[:0], entries)
			if m.closed.Load() {
				yield(Record{}, ErrClosed)
				return
			}

			if len(chunk) == 0 {
				if len(entries) > 0 {
					continue // skipped only deleted events
				}
				// Caught up with high.
				if !live {
					return
				}
				wait, err := m.waitAll(high)
				if !awaitMore(ctx, wait, err, yield) {
					return
				}
				continue
			}
			if !yieldChunk(ctx, chunk, yield) {
				return
			}
		}
	}
}

// allReader is the state of a ReadAll or SubscribeAll between rounds.
type allReader struct {
	m     *Memory
	types []string // the types followed; nil for all
	live  bool
	// done is the Position up to which every event of the types followed
	// has been merged: the reader yields nothing at or below it again.
	done uint64
	// cursors holds the types met so far, by index.
	cursors map[*typeIndex]*allCursor
	list    []*allCursor // the cursors of the current round
	merged  []allEntry
}

// allCursor is a reader's place in one type's index.
type allCursor struct {
	ti *typeIndex
	// streams is ti.streams as of the copy of buf, which its entries
	// point into.
	streams []*stream
	// buf holds entries copied from the index; buf[next:] are not merged
	// yet.
	buf  []typeEntry
	next int
	// covered is the Position up to which every entry of the type is in
	// buf[next:] or was merged.
	covered uint64
}

// allEntry is one event to read: a merged index entry.
type allEntry struct {
	st  *stream
	seq uint64
}

// round returns the next entries of the types followed, up to readChunk,
// in Position order: those up to high that no round returned before. It
// returns none only when the reader has caught up with high. high is a
// value of m.pos loaded before round is called.
func (r *allReader) round(high uint64) []allEntry {
	r.listCursors()
	limit := high
	for _, c := range r.list {
		if c.next == len(c.buf) && c.covered < high {
			c.ti.mu.Lock()
			var scanned uint64
			c.buf, scanned = c.ti.entriesAfter(c.buf[:0], c.covered, high)
			c.streams = c.ti.streams
			c.ti.mu.Unlock()
			c.next = 0
			if len(c.buf) < readChunk {
				// entriesAfter stops short of readChunk only at high.
				c.covered = high
			} else {
				c.covered = scanned
			}
		}
		limit = min(limit, c.covered)
	}
	// Every type's entries up to limit are in the buffers: merge them. A
	// linear search for the smallest head costs a step per type and
	// event, little for the handful of types a reader follows.
	r.merged = r.merged[:0]
	for len(r.merged) < readChunk {
		var best *allCursor
		for _, c := range r.list {
			if c.next < len(c.buf) && c.buf[c.next].pos <= limit && (best == nil || c.buf[c.next].pos < best.buf[best.next].pos) {
				best = c
			}
		}
		if best == nil {
			r.done = max(r.done, limit)
			break
		}
		e := best.buf[best.next]
		best.next++
		r.merged = append(r.merged, allEntry{st: best.streams[e.stream], seq: e.seq})
		r.done = max(r.done, e.pos)
	}
	return r.merged
}

// listCursors sets r.list to the cursors of the types followed that have
// an index, making cursors for those met for the first time. It runs after
// high is loaded, so every type with an event up to high is listed. A type
// met for the first time has no event at or below r.done, or an earlier
// round would have listed it: its cursor starts there.
func (r *allReader) listCursors() {
	m := r.m
	r.list = r.list[:0]
	add := func(ti *typeIndex) {
		c := r.cursors[ti]
		if c == nil {
			c = &allCursor{ti: ti, covered: r.done}
			r.cursors[ti] = c
		}
		r.list = append(r.list, c)
	}
	if r.types == nil {
		m.typesMu.RLock()
		for _, ti := range m.types {
			add(ti)
		}
		m.typesMu.RUnlock()
		return
	}
	for _, typ := range r.types {
		if ti := m.lookupType(typ); ti != nil {
			add(ti)
		}
	}
}

// allRecords appends to dst the records of entries, skipping deleted
// events. Like records, it takes each stream's shard lock to read its
// record, so it waits for an append that has indexed its events but not
// yet stored them.
func (m *Memory) allRecords(dst []Record, entries []allEntry) []Record {
	var held *memShard
	for _, e := range entries {
		if sh := m.shard(e.st.key.id); sh != held {
			if held != nil {
				held.mu.Unlock()
			}
			held = sh
			held.mu.Lock()
		}
		if first := e.st.first.Load(); e.seq >= first {
			dst = append(dst, e.st.record(int(e.seq-first)))
		}
	}
	if held != nil {
		held.mu.Unlock()
	}
	return dst
}

// waitAll returns a channel that is closed by the next append of any type
// (or by Close), or nil if a Position above high was handed out already.
//
// The channel is made only when a reader of several types waits, and an
// append checks for it with one atomic load, so waiting costs appenders
// nothing while no one waits. The reader publishes the channel before it
// loads the counter and an append advances the counter before it looks for
// the channel, so either the reader sees the new Position or the append
// sees the channel.
func (m *Memory) waitAll(high uint64) (<-chan struct{}, error) {
	p := m.allNotify.Load()
	if p == nil {
		ch := make(chan struct{})
		if !m.allNotify.CompareAndSwap(nil, &ch) {
			return nil, nil // an append or another reader got in between: read again
		}
		p = &ch
	}
	// Close sets closed before it wakes the waiters.
	if m.closed.Load() {
		return nil, ErrClosed
	}
	if m.pos.Load() > high {
		return nil, nil
	}
	return *p, nil
}

// wakeAll closes the channel of waitAll, if a reader made one.
func (m *Memory) wakeAll() {
	if p := m.allNotify.Swap(nil); p != nil {
		close(*p)
	}
}
