package eventlog

import (
	"context"
	"iter"
	"maps"
	"math"
	"sort"
)

// readChunk is how many records a read copies, under locks, before it
// yields them without any. Readers never hold a lock while the consumer
// runs, so a slow consumer cannot stall appenders.
const readChunk = 256

// ReadEntity implements [Log]. It ends at the stream's last Seq as of the
// first chunk it reads, even if events are appended while it runs. A read
// of a stream deleted with a final tombstone yields a [*DeletedError].
func (m *Memory) ReadEntity(ctx context.Context, typ, id string, from uint64) iter.Seq2[Record, error] {
	return func(yield func(Record, error) bool) {
		if err := ValidateStream(typ, id); err != nil {
			yield(Record{}, err)
			return
		}
		from = max(from, 1)
		key := streamKey{typ, id}
		sh := m.shard(id)
		var end uint64
		started := false
		var chunk []Record
		for {
			if err := ctx.Err(); err != nil {
				yield(Record{}, err)
				return
			}
			sh.mu.Lock()
			if m.closed.Load() {
				sh.mu.Unlock()
				yield(Record{}, ErrClosed)
				return
			}
			st := sh.streams[key]
			if st == nil {
				sh.mu.Unlock()
				return
			}
			if !started {
				end, started = st.last, true
			}
			chunk = st.copyRange(chunk[:0], from, end)
			// A finally deleted stream has no events, so the check costs
			// reads that find some nothing.
			var deleted *DeletedError
			if len(chunk) == 0 && st.tomb.Load() == tombFinal {
				deleted = &DeletedError{EntityType: typ, EntityID: id, Seq: st.last}
			}
			sh.mu.Unlock()

			if deleted != nil {
				yield(Record{}, deleted)
				return
			}
			if len(chunk) == 0 {
				return
			}
			if !yieldChunk(ctx, chunk, yield) {
				return
			}
			from = chunk[len(chunk)-1].Seq + 1
			if from > end {
				return
			}
		}
	}
}

// ReadType implements [Log]. It ends at the type's last Position as of the
// first chunk it reads, even if events are appended while it runs.
func (m *Memory) ReadType(ctx context.Context, typ string, after uint64) iter.Seq2[Record, error] {
	return m.readType(ctx, typ, after, false)
}

// readType is ReadType and, with live set, Subscribe. Each round copies up
// to readChunk index entries under the index's lock, then their records
// under the shards' locks, and yields them with no lock held. A live reader
// that has caught up waits for the next append (see waitChan) instead of
// ending.
func (m *Memory) readType(ctx context.Context, typ string, after uint64, live bool) iter.Seq2[Record, error] {
	return func(yield func(Record, error) bool) {
		if err := ValidateType(typ); err != nil {
			yield(Record{}, err)
			return
		}
		end := uint64(math.MaxUint64)
		started := live
		var entries []typeEntry
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
			ti := m.lookupType(typ)
			if ti == nil && live {
				ti = m.typeIndex(typ)
			}
			var scanned uint64
			if ti != nil {
				ti.mu.Lock()
				if !started {
					end, started = ti.lastPos(), true
				}
				entries, scanned = ti.entriesAfter(entries[:0], after, end)
				ti.mu.Unlock()
			}
			chunk = m.records(chunk[:0], ti, entries)
			if m.closed.Load() {
				yield(Record{}, ErrClosed)
				return
			}
			after = max(after, scanned)

			if len(chunk) == 0 {
				if scanned > 0 {
					continue // skipped only deleted events
				}
				if !live {
					return
				}
				wait, err := m.waitChan(ti, after)
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

// entriesAfter appends to dst up to readChunk entries of the type with
// after < Position <= end, in Position order, deleted events included. It
// also returns the Position of the last entry it appended, so the caller can
// resume after it; 0 if none. The caller holds ti.mu.
func (ti *typeIndex) entriesAfter(dst []typeEntry, after, end uint64) ([]typeEntry, uint64) {
	// The first chunk whose last entry is above after, then the first entry
	// in it above after. Every chunk is non-empty.
	c := sort.Search(len(ti.chunks), func(i int) bool {
		ch := ti.chunks[i]
		return ch[len(ch)-1].pos > after
	})
	if c == len(ti.chunks) {
		return dst, 0
	}
	i := sort.Search(len(ti.chunks[c]), func(i int) bool { return ti.chunks[c][i].pos > after })
	var scanned uint64
	for ; c < len(ti.chunks) && len(dst) < readChunk; c, i = c+1, 0 {
		for ch := ti.chunks[c]; i < len(ch) && len(dst) < readChunk; i++ {
			e := ch[i]
			if e.pos > end {
				return dst, scanned
			}
			scanned = e.pos
			dst = append(dst, e)
		}
	}
	return dst, scanned
}

// records appends to dst the records of entries, skipping deleted events.
// It takes each stream's shard lock to read its record, so it waits for an
// append that has indexed its events but not yet stored them.
func (m *Memory) records(dst []Record, ti *typeIndex, entries []typeEntry) []Record {
	if len(entries) == 0 {
		return dst
	}
	ti.mu.Lock()
	streams := ti.streams
	ti.mu.Unlock()
	var held *memShard
	for _, e := range entries {
		st := streams[e.stream]
		if sh := m.shard(st.key.id); sh != held {
			if held != nil {
				held.mu.Unlock()
			}
			held = sh
			held.mu.Lock()
		}
		if first := st.first.Load(); e.seq >= first {
			dst = append(dst, st.record(int(e.seq-first)))
		}
	}
	held.mu.Unlock()
	return dst
}

// copyRange appends to dst up to readChunk records with from <= Seq <= end.
// The records share the stored data and metadata; see [ownCopies]. The
// caller holds the shard's lock.
func (st *stream) copyRange(dst []Record, from, end uint64) []Record {
	first := st.first.Load()
	from = max(from, first)
	end = min(end, st.last)
	if from > end {
		return dst
	}
	i := int(from - first)
	j := min(int(end-first)+1, i+readChunk)
	if cap(dst) == 0 {
		dst = make([]Record, 0, j-i)
	}
	for k := i; k < j; k++ {
		dst = append(dst, st.record(k))
	}
	return dst
}

// ownCopies replaces the stored data and metadata the records share with
// fresh copies, one buffer for all the data of the chunk. It runs without the
// lock: stored data and metadata are never written after the append.
func ownCopies(recs []Record) {
	size := 0
	for i := range recs {
		size += len(recs[i].Data)
	}
	var buf []byte
	if size > 0 {
		buf = make([]byte, 0, size)
	}
	for i := range recs {
		r := &recs[i]
		if n := len(r.Data); n > 0 {
			start := len(buf)
			buf = append(buf, r.Data...)
			r.Data = buf[start : start+n : start+n]
		}
		if r.Metadata != nil {
			r.Metadata = maps.Clone(r.Metadata)
		}
	}
}

// awaitMore waits for wait (nil: something arrived meanwhile, read again)
// after a read that caught up; false if the read must end: err, which it
// yields, or ctx done.
func awaitMore(ctx context.Context, wait <-chan struct{}, err error, yield func(Record, error) bool) bool {
	if err != nil {
		yield(Record{}, err)
		return false
	}
	if wait == nil {
		return true
	}
	select {
	case <-ctx.Done():
		yield(Record{}, ctx.Err())
		return false
	case <-wait:
		return true
	}
}

// yieldChunk yields the records of chunk, made the caller's own, until ctx
// is done or the consumer stops; false if the read must end.
func yieldChunk(ctx context.Context, chunk []Record, yield func(Record, error) bool) bool {
	ownCopies(chunk)
	for i := range chunk {
		if err := ctx.Err(); err != nil {
			yield(Record{}, err)
			return false
		}
		if !yield(chunk[i], nil) {
			return false
		}
	}
	return true
}
