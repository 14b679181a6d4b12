package eventlog

import (
	"context"
	"slices"
)

// DeleteTo implements [Deleter]. A seq of 0 deletes nothing; a seq beyond
// the stream's last Seq deletes every event. Deleted events are gone for
// every reader, [Memory.ReadType] and [Memory.Subscribe] included.
func (m *Memory) DeleteTo(ctx context.Context, typ, id string, seq uint64) error {
	if err := ValidateStream(typ, id); err != nil {
		return err
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	sh := m.shard(id)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	if m.closed.Load() {
		return ErrClosed
	}
	st := sh.streams[streamKey{typ, id}]
	if st == nil || seq < st.first.Load() {
		return nil
	}
	seq = min(seq, st.last)
	n := int(seq - st.first.Load() + 1)
	st.dropFirst(n)
	return nil
}

// DeleteStream implements [StreamDeleter]. It drops every stored event of
// the stream and marks it with a tombstone: a stream that never had an
// event gets an empty one, so that a final delete holds for it too. Readers
// by type skip the dropped events as they skip those of [Memory.DeleteTo].
func (m *Memory) DeleteStream(ctx context.Context, typ, id string, reuse bool) (uint64, error) {
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
	key := streamKey{typ, id}
	st := sh.streams[key]
	if st == nil {
		st = m.newStream(sh, key)
	}
	switch {
	case st.tomb.Load() != tombFinal:
	case reuse:
		return 0, &DeletedError{EntityType: typ, EntityID: id, Seq: st.last}
	default:
		return st.last, nil
	}
	if n := len(st.recs); n > 0 {
		st.dropFirst(n)
	}
	if reuse {
		st.tomb.Store(tombReuse)
	} else {
		st.tomb.Store(tombFinal)
	}
	return st.last, nil
}

// dropFirst deletes the stream's first n events. The type index keeps the
// deleted events' entries (readers by type skip them) until compact finds
// them the majority. The caller holds the shard's lock.
func (st *stream) dropFirst(n int) {
	st.dropRecords(n)
	ti := st.ti
	ti.mu.Lock()
	ti.dead += n
	ti.compact()
	ti.mu.Unlock()
}

// dropRecords deletes the stream's first n records. It builds new slices
// rather than reslicing, so the deleted events' memory is released and
// readers copying from the old ones are undisturbed.
func (st *stream) dropRecords(n int) {
	first := st.first.Load()
	if n == len(st.recs) {
		st.recs, st.data, st.md = nil, nil, nil
		st.first.Store(st.last + 1)
		return
	}
	base := st.recs[n].off
	st.recs = slices.Clone(st.recs[n:])
	for i := range st.recs {
		st.recs[i].off -= base
	}
	st.data = slices.Clone(st.data[base:])
	for seq := range st.md {
		if seq < first+uint64(n) {
			delete(st.md, seq)
		}
	}
	if len(st.md) == 0 {
		st.md = nil
	}
	st.first.Store(first + uint64(n))
}

// compact drops the entries of deleted events once they are the majority,
// keeping the index proportional to the events still stored. The caller
// holds ti.mu. A deletion racing with it in another shard only leaves an
// entry for the next compaction.
func (ti *typeIndex) compact() {
	if ti.dead < 1024 || ti.dead*2 < ti.n {
		return
	}
	old := ti.chunks
	ti.chunks, ti.n, ti.dead = nil, 0, 0
	for _, ch := range old {
		for _, e := range ch {
			if e.seq >= ti.streams[e.stream].first.Load() {
				ti.add(e)
			}
		}
	}
}
