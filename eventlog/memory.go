package eventlog

import (
	"context"
	"fmt"
	"iter"
	"maps"
	"math"
	"slices"
	"sync"
	"time"
)

// Compile-time checks that Memory provides the contract and every optional
// capability.
var (
	_ Log      = (*Memory)(nil)
	_ Deleter  = (*Memory)(nil)
	_ IDLister = (*Memory)(nil)
	_ Closer   = (*Memory)(nil)
)

// readChunk is how many records a read copies per lock acquisition. Readers
// never hold the lock while the consumer runs, so a slow consumer cannot stall
// appenders.
const readChunk = 256

// Memory is a [Log] that keeps everything in process memory. It is the
// reference implementation of the contract and the backend for tests and
// in-memory benchmarks. It also implements [Deleter], [IDLister] and [Closer].
//
// Memory stores copies of appended data and metadata and yields copies, so a
// caller that mutates its slices or maps after Append, or mutates the records
// it reads, cannot change the stored events.
//
// Positions come from one counter for the whole log, starting at 1; every
// event of an Append gets the next Positions in order, so Positions of one
// entity type are strictly increasing in commit order and readers by type
// never see a gap fill in later.
//
// The zero value is not usable; call [NewMemory].
type Memory struct {
	// mu guards every field below it. Appends and deletes take it
	// exclusively; reads take it shared just long enough to copy a chunk.
	mu      sync.RWMutex
	closed  bool
	pos     uint64 // the last Position handed out
	streams map[streamKey]*stream
	types   map[string]*typeIndex
}

// streamKey identifies a stream; a struct key avoids building a combined
// string on every lookup.
type streamKey struct{ typ, id string }

// stream is one entity's events. The stored events are recs; recs[i] has Seq
// first+i. After deletions first may exceed last by one, when recs is empty.
type stream struct {
	key   streamKey
	ti    *typeIndex
	first uint64 // Seq of recs[0]
	last  uint64 // last Seq ever appended; deletions never lower it
	recs  []stored
}

// stored is an event as kept in memory. Its data and md are private copies
// that are never written after the append, so readers may copy them without
// holding the lock.
type stored struct {
	pos  uint64
	name string
	rev  uint32
	data []byte
	md   map[string]string
	unix int64 // commit time, nanoseconds since the Unix epoch
}

// typeIndex lists the events of one entity type in Position order.
type typeIndex struct {
	entries []typeEntry
	// dead counts entries whose events were deleted; the index is compacted
	// when they dominate.
	dead    int
	streams []*stream
	// notify is closed, and set to nil, by the next append to the type. It is
	// nil while no subscriber waits, so appends allocate no channel.
	notify chan struct{}
}

// typeEntry points at one event of a type.
type typeEntry struct {
	st  *stream
	seq uint64
	pos uint64
}

// NewMemory returns an empty in-memory log.
func NewMemory() *Memory {
	return &Memory{
		streams: make(map[streamKey]*stream),
		types:   make(map[string]*typeIndex),
	}
}

// Append implements [Log]. It copies the events' data and metadata before it
// takes the lock, and allocates nothing else for an append to an existing
// stream beyond amortized slice growth.
func (m *Memory) Append(ctx context.Context, typ, id string, expected uint64, events ...Event) (uint64, error) {
	if err := Validate(typ, id, events); err != nil {
		return 0, err
	}
	if err := ctx.Err(); err != nil {
		return 0, err
	}

	// One buffer holds the data of every event of the append.
	size := 0
	for i := range events {
		size += len(events[i].Data)
	}
	var buf []byte
	if size > 0 {
		buf = make([]byte, 0, size)
	}
	// Metadata copies go into a small array that stays on the stack for
	// the usual appends of a few events.
	var mdArr [8]map[string]string
	var mds []map[string]string
	for i := range events {
		if len(events[i].Metadata) == 0 {
			continue
		}
		if mds == nil {
			if len(events) <= len(mdArr) {
				mds = mdArr[:len(events)]
			} else {
				mds = make([]map[string]string, len(events))
			}
		}
		mds[i] = maps.Clone(events[i].Metadata)
	}
	now := time.Now().UnixNano()

	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		return 0, ErrClosed
	}
	key := streamKey{typ, id}
	st := m.streams[key]
	var last uint64
	if st != nil {
		last = st.last
	}
	if last != expected {
		return 0, &ConflictError{EntityType: typ, EntityID: id, Expected: expected, Actual: last}
	}
	if st == nil {
		ti := m.types[typ]
		if ti == nil {
			ti = &typeIndex{}
			m.types[typ] = ti
		}
		st = &stream{key: key, ti: ti, first: 1}
		m.streams[key] = st
		ti.streams = append(ti.streams, st)
	}
	ti := st.ti
	st.recs = slices.Grow(st.recs, len(events))
	ti.entries = slices.Grow(ti.entries, len(events))
	for i := range events {
		ev := &events[i]
		var data []byte
		if n := len(ev.Data); n > 0 {
			start := len(buf)
			buf = append(buf, ev.Data...)
			data = buf[start : start+n : start+n]
		}
		var md map[string]string
		if mds != nil {
			md = mds[i]
		}
		m.pos++
		st.last++
		st.recs = append(st.recs, stored{pos: m.pos, name: ev.Name, rev: ev.Revision, data: data, md: md, unix: now})
		ti.entries = append(ti.entries, typeEntry{st: st, seq: st.last, pos: m.pos})
	}
	if ti.notify != nil {
		close(ti.notify)
		ti.notify = nil
	}
	return m.pos, nil
}

// LastSeq implements [Log].
func (m *Memory) LastSeq(ctx context.Context, typ, id string) (uint64, error) {
	if err := validateStream(typ, id); err != nil {
		return 0, err
	}
	if err := ctx.Err(); err != nil {
		return 0, err
	}
	m.mu.RLock()
	defer m.mu.RUnlock()
	if m.closed {
		return 0, ErrClosed
	}
	if st := m.streams[streamKey{typ, id}]; st != nil {
		return st.last, nil
	}
	return 0, nil
}

// ReadEntity implements [Log]. It ends at the stream's last Seq as of the
// first chunk it reads, even if events are appended while it runs.
func (m *Memory) ReadEntity(ctx context.Context, typ, id string, from uint64) iter.Seq2[Record, error] {
	return func(yield func(Record, error) bool) {
		if err := validateStream(typ, id); err != nil {
			yield(Record{}, err)
			return
		}
		from = max(from, 1)
		key := streamKey{typ, id}
		var end uint64
		started := false
		var chunk []Record
		for {
			if err := ctx.Err(); err != nil {
				yield(Record{}, err)
				return
			}
			m.mu.RLock()
			if m.closed {
				m.mu.RUnlock()
				yield(Record{}, ErrClosed)
				return
			}
			st := m.streams[key]
			if st == nil {
				m.mu.RUnlock()
				return
			}
			if !started {
				end, started = st.last, true
			}
			chunk = st.copyRange(chunk[:0], from, end)
			m.mu.RUnlock()

			if len(chunk) == 0 {
				return
			}
			ownCopies(chunk)
			for i := range chunk {
				if err := ctx.Err(); err != nil {
					yield(Record{}, err)
					return
				}
				if !yield(chunk[i], nil) {
					return
				}
			}
			from = chunk[len(chunk)-1].Seq + 1
			if from > end {
				return
			}
		}
	}
}

// ReadType implements [Log]. It ends at the log's last Position as of the
// first chunk it reads, even if events are appended while it runs.
func (m *Memory) ReadType(ctx context.Context, typ string, after uint64) iter.Seq2[Record, error] {
	return m.readType(ctx, typ, after, false)
}

// Subscribe implements [Log]. A subscriber waits on a channel that the next
// append to its type closes, so waiting costs appenders nothing while no one
// subscribes. [Memory.Close] ends every subscription with [ErrClosed].
func (m *Memory) Subscribe(ctx context.Context, typ string, after uint64) iter.Seq2[Record, error] {
	return m.readType(ctx, typ, after, true)
}

func (m *Memory) readType(ctx context.Context, typ string, after uint64, live bool) iter.Seq2[Record, error] {
	return func(yield func(Record, error) bool) {
		if typ == "" {
			yield(Record{}, fmt.Errorf("%w: empty entity type", ErrInvalid))
			return
		}
		end := uint64(math.MaxUint64)
		started := live
		var chunk []Record
		for {
			if err := ctx.Err(); err != nil {
				yield(Record{}, err)
				return
			}
			m.mu.RLock()
			if m.closed {
				m.mu.RUnlock()
				yield(Record{}, ErrClosed)
				return
			}
			if !started {
				end, started = m.pos, true
			}
			var scanned uint64
			chunk, scanned = m.types[typ].copyAfter(chunk[:0], after, end)
			m.mu.RUnlock()
			after = max(after, scanned)

			if len(chunk) == 0 {
				if scanned > 0 {
					continue // skipped only deleted events
				}
				if !live {
					return
				}
				wait, err := m.waitChan(typ, after)
				if err != nil {
					yield(Record{}, err)
					return
				}
				if wait == nil {
					continue // something arrived meanwhile
				}
				select {
				case <-ctx.Done():
					yield(Record{}, ctx.Err())
					return
				case <-wait:
				}
				continue
			}
			ownCopies(chunk)
			for i := range chunk {
				if err := ctx.Err(); err != nil {
					yield(Record{}, err)
					return
				}
				if !yield(chunk[i], nil) {
					return
				}
			}
		}
	}
}

// waitChan returns a channel that is closed by the next append to typ, or
// nil if typ already has events after after. Checking and registering under
// the exclusive lock means no append can slip in between unnoticed.
func (m *Memory) waitChan(typ string, after uint64) (<-chan struct{}, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		return nil, ErrClosed
	}
	ti := m.types[typ]
	if ti == nil {
		ti = &typeIndex{}
		m.types[typ] = ti
	}
	if n := len(ti.entries); n > 0 && ti.entries[n-1].pos > after {
		return nil, nil
	}
	if ti.notify == nil {
		ti.notify = make(chan struct{})
	}
	return ti.notify, nil
}

// DeleteTo implements [Deleter]. A seq of 0 deletes nothing; a seq beyond
// the stream's last Seq deletes every event. Deleted events are gone for
// every reader, [Memory.ReadType] and [Memory.Subscribe] included.
func (m *Memory) DeleteTo(ctx context.Context, typ, id string, seq uint64) error {
	if err := validateStream(typ, id); err != nil {
		return err
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		return ErrClosed
	}
	st := m.streams[streamKey{typ, id}]
	if st == nil || seq < st.first {
		return nil
	}
	seq = min(seq, st.last)
	n := int(seq - st.first + 1)
	// Clone rather than reslice so the deleted events' memory is released.
	if n == len(st.recs) {
		st.recs = nil
	} else {
		st.recs = slices.Clone(st.recs[n:])
	}
	st.first = seq + 1
	st.ti.dead += n
	st.ti.compact()
	return nil
}

// EntityIDs implements [IDLister]. An entity stays listed after all of its
// events were deleted.
func (m *Memory) EntityIDs(ctx context.Context, typ string) iter.Seq2[string, error] {
	return func(yield func(string, error) bool) {
		if typ == "" {
			yield("", fmt.Errorf("%w: empty entity type", ErrInvalid))
			return
		}
		if err := ctx.Err(); err != nil {
			yield("", err)
			return
		}
		m.mu.RLock()
		if m.closed {
			m.mu.RUnlock()
			yield("", ErrClosed)
			return
		}
		var ids []string
		if ti := m.types[typ]; ti != nil {
			ids = make([]string, len(ti.streams))
			for i, st := range ti.streams {
				ids[i] = st.key.id
			}
		}
		m.mu.RUnlock()
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

// Close implements [Closer]. It releases the stored events and ends every
// subscription; afterwards every method returns [ErrClosed], Close included.
func (m *Memory) Close() error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		return ErrClosed
	}
	m.closed = true
	for _, ti := range m.types {
		if ti.notify != nil {
			close(ti.notify)
			ti.notify = nil
		}
	}
	m.streams, m.types = nil, nil
	return nil
}

// validateStream checks the stream arguments of a read or delete.
func validateStream(typ, id string) error {
	switch {
	case typ == "":
		return fmt.Errorf("%w: empty entity type", ErrInvalid)
	case id == "":
		return fmt.Errorf("%w: empty entity id for type %q", ErrInvalid, typ)
	}
	return nil
}

// copyRange appends to dst up to readChunk records with from <= Seq <= end.
// The records share the stored data and metadata; see [ownCopies].
func (st *stream) copyRange(dst []Record, from, end uint64) []Record {
	if from < st.first {
		from = st.first
	}
	end = min(end, st.last)
	if from > end {
		return dst
	}
	i := int(from - st.first)
	j := min(int(end-st.first)+1, i+readChunk)
	if cap(dst) == 0 {
		dst = make([]Record, 0, j-i)
	}
	for k := i; k < j; k++ {
		dst = append(dst, st.record(k))
	}
	return dst
}

// record builds the Record of recs[k].
func (st *stream) record(k int) Record {
	r := &st.recs[k]
	return Record{
		EntityType: st.key.typ,
		EntityID:   st.key.id,
		Seq:        st.first + uint64(k),
		Position:   r.pos,
		Name:       r.name,
		Revision:   r.rev,
		Data:       r.data,
		Metadata:   r.md,
		Time:       time.Unix(0, r.unix),
	}
}

// copyAfter appends to dst up to readChunk records of the type with
// after < Position <= end, in Position order. It also returns the Position of
// the last index entry it looked at, deleted or not, so the caller can resume
// after it; 0 if it looked at none. A nil index holds nothing.
func (ti *typeIndex) copyAfter(dst []Record, after, end uint64) ([]Record, uint64) {
	if ti == nil {
		return dst, 0
	}
	// The comparison never reports a match, so the search returns the first
	// entry with a Position above after.
	i, _ := slices.BinarySearchFunc(ti.entries, after, func(e typeEntry, after uint64) int {
		if e.pos <= after {
			return -1
		}
		return 1
	})
	var scanned uint64
	for ; i < len(ti.entries) && len(dst) < readChunk; i++ {
		e := ti.entries[i]
		if e.pos > end {
			break
		}
		scanned = e.pos
		if e.seq < e.st.first {
			continue // deleted
		}
		dst = append(dst, e.st.record(int(e.seq-e.st.first)))
	}
	return dst, scanned
}

// compact drops the entries of deleted events once they are the majority,
// keeping the index proportional to the events still stored.
func (ti *typeIndex) compact() {
	if ti.dead < 1024 || ti.dead*2 < len(ti.entries) {
		return
	}
	live := make([]typeEntry, 0, len(ti.entries)-ti.dead)
	for _, e := range ti.entries {
		if e.seq >= e.st.first {
			live = append(live, e)
		}
	}
	ti.entries, ti.dead = live, 0
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
