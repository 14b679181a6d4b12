package eventlog

import (
	"context"
	"fmt"
	"iter"
	"maps"
	"math"
	"slices"
	"sort"
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
//
// Nothing a stream stores for an event holds a pointer: the event data lives
// back to back in data, names in the type's table, metadata (rare) in md. So
// the garbage collector never scans the records, and an append allocates
// nothing beyond amortized slice growth.
type stream struct {
	key   streamKey
	ti    *typeIndex
	index uint32 // in ti.streams
	first uint64 // Seq of recs[0]
	last  uint64 // last Seq ever appended; deletions never lower it
	recs  []stored
	// data holds the data of recs, back to back. Bytes below len(data) are
	// never written again (a deletion builds a new slice), so readers may
	// copy them without holding the lock while an append adds more.
	data []byte
	// md holds the metadata of the events that have any, by Seq. The maps
	// are private copies, never written after the append.
	md map[uint64]map[string]string
}

// stored is an event as kept in memory.
type stored struct {
	pos  uint64
	unix int64 // commit time, nanoseconds since the Unix epoch
	off  int   // of its data in stream.data
	size uint32
	name uint32 // in typeIndex.names
	rev  uint32
}

// entryChunk is how many entries a chunk of a type index holds. The index
// grows a chunk at a time, so an append never copies the index.
const entryChunk = 4096

// typeIndex lists the events of one entity type in Position order.
type typeIndex struct {
	// chunks hold the entries; every chunk but the last is full.
	chunks [][]typeEntry
	n      int // entries in all chunks
	// dead counts entries whose events were deleted; the index is compacted
	// when they dominate.
	dead    int
	streams []*stream
	names   []string          // event names, by stored.name
	nameIdx map[string]uint32 // index of each name in names
	// notify is closed, and set to nil, by the next append to the type. It is
	// nil while no subscriber waits, so appends allocate no channel.
	notify chan struct{}
}

// typeEntry points at one event of a type. It holds no pointer, so the
// index costs the garbage collector nothing.
type typeEntry struct {
	pos    uint64
	seq    uint64
	stream uint32 // in typeIndex.streams
}

// NewMemory returns an empty in-memory log.
func NewMemory() *Memory {
	return &Memory{
		streams: make(map[streamKey]*stream),
		types:   make(map[string]*typeIndex),
	}
}

// Append implements [Log]. It copies the events' data and metadata, and
// allocates nothing else for an append to an existing stream beyond
// amortized slice growth.
func (m *Memory) Append(ctx context.Context, typ, id string, expected uint64, events ...Event) (uint64, error) {
	if err := Validate(typ, id, events); err != nil {
		return 0, err
	}
	if err := ctx.Err(); err != nil {
		return 0, err
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
		ti := m.typeIndex(typ)
		st = &stream{key: key, ti: ti, index: uint32(len(ti.streams)), first: 1}
		m.streams[key] = st
		ti.streams = append(ti.streams, st)
	}
	ti := st.ti
	st.recs = slices.Grow(st.recs, len(events))
	for i := range events {
		ev := &events[i]
		m.pos++
		st.last++
		if len(ev.Metadata) > 0 {
			if st.md == nil {
				st.md = make(map[uint64]map[string]string)
			}
			st.md[st.last] = maps.Clone(ev.Metadata)
		}
		st.recs = append(st.recs, stored{
			pos: m.pos, unix: now,
			off: len(st.data), size: uint32(len(ev.Data)),
			name: ti.name(ev.Name), rev: ev.Revision,
		})
		st.data = append(st.data, ev.Data...)
		ti.add(typeEntry{pos: m.pos, seq: st.last, stream: st.index})
	}
	if ti.notify != nil {
		close(ti.notify)
		ti.notify = nil
	}
	return m.pos, nil
}

// typeIndex returns the index of typ, creating it if needed. The caller
// holds the exclusive lock.
func (m *Memory) typeIndex(typ string) *typeIndex {
	ti := m.types[typ]
	if ti == nil {
		ti = &typeIndex{nameIdx: make(map[string]uint32)}
		m.types[typ] = ti
	}
	return ti
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
	ti := m.typeIndex(typ)
	if ti.lastPos() > after {
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
	st.dropFirst(n)
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

// record builds the Record of recs[k]. Its Data and Metadata are shared
// with the stream; see [ownCopies].
func (st *stream) record(k int) Record {
	r := &st.recs[k]
	seq := st.first + uint64(k)
	var data []byte
	if r.size > 0 {
		end := r.off + int(r.size)
		data = st.data[r.off:end:end]
	}
	var md map[string]string
	if st.md != nil {
		md = st.md[seq]
	}
	return Record{
		EntityType: st.key.typ,
		EntityID:   st.key.id,
		Seq:        seq,
		Position:   r.pos,
		Name:       st.ti.names[r.name],
		Revision:   r.rev,
		Data:       data,
		Metadata:   md,
		Time:       time.Unix(0, r.unix),
	}
}

// dropFirst deletes the stream's first n events. It builds new slices rather
// than reslicing, so the deleted events' memory is released and readers
// copying from the old ones are undisturbed.
func (st *stream) dropFirst(n int) {
	if n == len(st.recs) {
		st.recs, st.data, st.md = nil, nil, nil
		st.first = st.last + 1
		return
	}
	base := st.recs[n].off
	st.recs = slices.Clone(st.recs[n:])
	for i := range st.recs {
		st.recs[i].off -= base
	}
	st.data = slices.Clone(st.data[base:])
	for seq := range st.md {
		if seq < st.first+uint64(n) {
			delete(st.md, seq)
		}
	}
	if len(st.md) == 0 {
		st.md = nil
	}
	st.first += uint64(n)
}

// name returns the index of an event name in the type's table, adding it
// if new. Types have a handful of event names, so the table stays small.
func (ti *typeIndex) name(name string) uint32 {
	if n := len(ti.names); n > 0 && ti.names[n-1] == name {
		return uint32(n - 1) // the common case: the same event again
	}
	i, ok := ti.nameIdx[name]
	if !ok {
		i = uint32(len(ti.names))
		ti.names = append(ti.names, name)
		ti.nameIdx[name] = i
	}
	return i
}

// add appends e to the index.
func (ti *typeIndex) add(e typeEntry) {
	if n := len(ti.chunks); n == 0 || len(ti.chunks[n-1]) == entryChunk {
		ti.chunks = append(ti.chunks, make([]typeEntry, 0, entryChunk))
	}
	last := &ti.chunks[len(ti.chunks)-1]
	*last = append(*last, e)
	ti.n++
}

// lastPos returns the Position of the type's latest event, deleted or not; 0
// if it has none.
func (ti *typeIndex) lastPos() uint64 {
	if ti == nil || len(ti.chunks) == 0 {
		return 0
	}
	c := ti.chunks[len(ti.chunks)-1]
	return c[len(c)-1].pos
}

// copyAfter appends to dst up to readChunk records of the type with
// after < Position <= end, in Position order. It also returns the Position of
// the last index entry it looked at, deleted or not, so the caller can resume
// after it; 0 if it looked at none. A nil index holds nothing.
func (ti *typeIndex) copyAfter(dst []Record, after, end uint64) ([]Record, uint64) {
	if ti == nil {
		return dst, 0
	}
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
			st := ti.streams[e.stream]
			if e.seq < st.first {
				continue // deleted
			}
			dst = append(dst, st.record(int(e.seq-st.first)))
		}
	}
	return dst, scanned
}

// compact drops the entries of deleted events once they are the majority,
// keeping the index proportional to the events still stored.
func (ti *typeIndex) compact() {
	if ti.dead < 1024 || ti.dead*2 < ti.n {
		return
	}
	old := ti.chunks
	ti.chunks, ti.n, ti.dead = nil, 0, 0
	for _, ch := range old {
		for _, e := range ch {
			if e.seq >= ti.streams[e.stream].first {
				ti.add(e)
			}
		}
	}
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
