package eventlog

import (
	"context"
	"fmt"
	"maps"
	"math"
	"slices"
	"time"
)

// Append implements [Log]. It stores copies of the events' data and
// metadata.
func (m *Memory) Append(ctx context.Context, typ, id string, expected uint64, events ...Event) (uint64, error) {
	if err := Validate(typ, id, events); err != nil {
		return 0, err
	}
	if err := ctx.Err(); err != nil {
		return 0, err
	}
	// stored.size is 32 bits: refuse rather than truncate.
	for i := range events {
		if len(events[i].Data) > math.MaxUint32 {
			return 0, fmt.Errorf("%w: append to %s/%s: event %d has %d bytes, more than Memory keeps per event (4 GiB)", ErrInvalid, FormatID(typ), FormatID(id), i, len(events[i].Data))
		}
	}
	now := time.Now().UnixNano()

	// The shard's lock is held to the end, so the check of expected and the
	// write are one step, and readers by type that find this append's index
	// entries wait for its records.
	sh := m.shard(id)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	if m.closed.Load() {
		return 0, ErrClosed
	}
	key := streamKey{typ, id}
	st := sh.streams[key]
	var last uint64
	var tomb uint32
	if st != nil {
		last, tomb = st.last, st.tomb.Load()
		if tomb == tombFinal {
			return 0, &DeletedError{EntityType: typ, EntityID: id, Seq: last}
		}
	}
	if last != expected {
		return 0, &ConflictError{EntityType: typ, EntityID: id, Expected: expected, Actual: last}
	}
	if st == nil {
		st = m.newStream(sh, key)
	}
	if tomb != tombNone {
		// The stream's first event since a reuse delete lists it again.
		st.tomb.Store(tombNone)
	}
	st.recs = slices.Grow(st.recs, len(events))
	ti := st.ti
	// Names are interned before the index lock is taken, since adding a new
	// one takes that lock too. Up to 8 fit on the stack.
	var nameArr [8]uint32
	names := nameArr[:0]
	for i := range events {
		names = append(names, ti.nameOf(events[i].Name))
	}

	// Number and index the events, holding the index lock as briefly as
	// possible. Readers by type that find an entry take this shard's lock
	// to read its event, so they wait for the records written below.
	ti.mu.Lock()
	pos := m.pos.Add(uint64(len(events))) - uint64(len(events))
	for i := range events {
		ti.add(typeEntry{pos: pos + uint64(i) + 1, seq: st.last + uint64(i) + 1, stream: st.index})
	}
	if ti.notify != nil {
		close(ti.notify)
		ti.notify = nil
	}
	ti.mu.Unlock()
	// Readers of several types wait on one channel for appends of any
	// type; the check is one atomic load while none waits.
	if m.allNotify.Load() != nil {
		m.wakeAll()
	}

	for i := range events {
		ev := &events[i]
		st.last++
		st.recs = append(st.recs, stored{
			pos: pos + uint64(i) + 1, unix: now,
			off: len(st.data), size: uint32(len(ev.Data)),
			name: names[i], rev: ev.Revision,
		})
		st.data = append(st.data, ev.Data...)
		if len(ev.Metadata) > 0 {
			if st.md == nil {
				st.md = make(map[uint64]map[string]string)
			}
			st.md[st.last] = maps.Clone(ev.Metadata)
		}
	}
	return pos + uint64(len(events)), nil
}

// newStream adds an empty stream to its shard and its type's index. The
// caller holds the shard's lock.
func (m *Memory) newStream(sh *memShard, key streamKey) *stream {
	ti := m.typeIndex(key.typ)
	st := &stream{key: key, ti: ti}
	st.first.Store(1)
	ti.mu.Lock()
	st.index = uint32(len(ti.streams))
	ti.streams = append(ti.streams, st)
	ti.mu.Unlock()
	sh.streams[key] = st
	return st
}
