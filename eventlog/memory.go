package eventlog

import (
	"context"
	"fmt"
	"hash/maphash"
	"iter"
	"maps"
	"math"
	"slices"
	"sort"
	"sync"
	"sync/atomic"
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
// never hold a lock while the consumer runs, so a slow consumer cannot stall
// appenders.
const readChunk = 256

// memShards is how many shards a Memory splits its streams into. Appends to
// streams of different shards take different locks.
const memShards = 64

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
// Streams are sharded by id, each shard with its own lock; the Positions and
// index of an entity type have a lock of their own, held only to number and
// index the events of an append. So appends to different entities barely
// contend, even on many cores.
//
// The zero value is not usable; call [NewMemory].
type Memory struct {
	closed atomic.Bool
	pos    atomic.Uint64 // the last Position handed out
	seed   maphash.Seed
	shards [memShards]memShard

	typesMu sync.RWMutex // guards types
	types   map[string]*typeIndex
}

// memShard holds the streams whose id hashes to it.
type memShard struct {
	mu      sync.Mutex // guards streams and the streams' contents
	streams map[streamKey]*stream
	_       [40]byte // keeps shards on separate cache lines
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
//
// A stream's fields are guarded by its shard's lock, except key, ti and
// index, which never change, and first, which may also be read without it.
type stream struct {
	key   streamKey
	ti    *typeIndex
	index uint32 // in ti.streams
	// first is the Seq of recs[0]. It is written under the shard's lock and
	// read without it by the type index's compaction.
	first atomic.Uint64
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
	// mu guards the fields below. An append holds it, inside its shard's
	// lock, while it takes Positions and indexes its events, so index
	// order is Position order.
	mu sync.Mutex
	// chunks hold the entries; every chunk but the last is full.
	chunks [][]typeEntry
	n      int // entries in all chunks
	// dead counts entries whose events were deleted; the index is compacted
	// when they dominate.
	dead    int
	streams []*stream
	// names holds the event names by stored.name. It is replaced, never
	// modified, when a name is added, so appenders and readers use it
	// without the lock.
	names atomic.Pointer[nameTable]
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
	m := &Memory{seed: maphash.MakeSeed(), types: make(map[string]*typeIndex)}
	for i := range m.shards {
		m.shards[i].streams = make(map[streamKey]*stream)
	}
	return m
}

// shard returns the shard of the streams with id.
func (m *Memory) shard(id string) *memShard {
	return &m.shards[maphash.String(m.seed, id)%memShards]
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
	for i := range events {
		if len(events[i].Data) > math.MaxUint32 {
			return 0, fmt.Errorf("%w: append to %s/%s: event %d has %d bytes, more than Memory keeps per event (4 GiB)", ErrInvalid, FormatID(typ), FormatID(id), i, len(events[i].Data))
		}
	}
	now := time.Now().UnixNano()

	sh := m.shard(id)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	if m.closed.Load() {
		return 0, ErrClosed
	}
	key := streamKey{typ, id}
	st := sh.streams[key]
	var last uint64
	if st != nil {
		last = st.last
	}
	if last != expected {
		return 0, &ConflictError{EntityType: typ, EntityID: id, Expected: expected, Actual: last}
	}
	if st == nil {
		ti := m.typeIndex(typ)
		st = &stream{key: key, ti: ti}
		st.first.Store(1)
		ti.mu.Lock()
		st.index = uint32(len(ti.streams))
		ti.streams = append(ti.streams, st)
		ti.mu.Unlock()
		sh.streams[key] = st
	}
	st.recs = slices.Grow(st.recs, len(events))
	ti := st.ti
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

// typeIndex returns the index of typ, creating it if needed.
func (m *Memory) typeIndex(typ string) *typeIndex {
	m.typesMu.RLock()
	ti := m.types[typ]
	m.typesMu.RUnlock()
	if ti != nil {
		return ti
	}
	m.typesMu.Lock()
	defer m.typesMu.Unlock()
	if ti = m.types[typ]; ti == nil {
		ti = &typeIndex{}
		ti.names.Store(&nameTable{})
		m.types[typ] = ti
	}
	return ti
}

// lookupType returns the index of typ, nil if it has none.
func (m *Memory) lookupType(typ string) *typeIndex {
	m.typesMu.RLock()
	defer m.typesMu.RUnlock()
	return m.types[typ]
}

// LastSeq implements [Log].
func (m *Memory) LastSeq(ctx context.Context, typ, id string) (uint64, error) {
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
	if st := sh.streams[streamKey{typ, id}]; st != nil {
		return st.last, nil
	}
	return 0, nil
}

// ReadEntity implements [Log]. It ends at the stream's last Seq as of the
// first chunk it reads, even if events are appended while it runs.
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
			sh.mu.Unlock()

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

// ReadType implements [Log]. It ends at the type's last Position as of the
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

// waitChan returns a channel that is closed by the next append to ti's
// type, or nil if the type already has events after after. Checking and
// registering under the index's lock means no append can slip in between
// unnoticed.
func (m *Memory) waitChan(ti *typeIndex, after uint64) (<-chan struct{}, error) {
	ti.mu.Lock()
	defer ti.mu.Unlock()
	// Close sets closed before it takes the index locks to wake waiters.
	if m.closed.Load() {
		return nil, ErrClosed
	}
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
	ti := st.ti
	ti.mu.Lock()
	ti.dead += n
	ti.compact()
	ti.mu.Unlock()
	return nil
}

// EntityIDs implements [IDLister]. An entity stays listed after all of its
// events were deleted.
func (m *Memory) EntityIDs(ctx context.Context, typ string) iter.Seq2[string, error] {
	return func(yield func(string, error) bool) {
		if err := ValidateType(typ); err != nil {
			yield("", err)
			return
		}
		if err := ctx.Err(); err != nil {
			yield("", err)
			return
		}
		if m.closed.Load() {
			yield("", ErrClosed)
			return
		}
		var ids []string
		if ti := m.lookupType(typ); ti != nil {
			ti.mu.Lock()
			ids = make([]string, len(ti.streams))
			for i, st := range ti.streams {
				ids[i] = st.key.id
			}
			ti.mu.Unlock()
		}
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
	if !m.closed.CompareAndSwap(false, true) {
		return ErrClosed
	}
	m.typesMu.Lock()
	types := m.types
	m.types = make(map[string]*typeIndex)
	m.typesMu.Unlock()
	for _, ti := range types {
		ti.mu.Lock()
		if ti.notify != nil {
			close(ti.notify)
			ti.notify = nil
		}
		ti.mu.Unlock()
	}
	for i := range m.shards {
		sh := &m.shards[i]
		sh.mu.Lock()
		sh.streams = make(map[streamKey]*stream)
		sh.mu.Unlock()
	}
	return nil
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

// record builds the Record of recs[k]. Its Data and Metadata are shared
// with the stream; see [ownCopies]. The caller holds the shard's lock.
func (st *stream) record(k int) Record {
	r := &st.recs[k]
	seq := st.first.Load() + uint64(k)
	var data []byte
	if r.size > 0 {
		end := r.off + int(r.size)
		data = st.data[r.off:end:end]
	}
	var md map[string]string
	if st.md != nil {
		md = st.md[seq]
	}
	name := st.ti.names.Load().list[r.name]
	return Record{
		EntityType: st.key.typ,
		EntityID:   st.key.id,
		Seq:        seq,
		Position:   r.pos,
		Name:       name,
		Revision:   r.rev,
		Data:       data,
		Metadata:   md,
		Time:       time.Unix(0, r.unix),
	}
}

// dropFirst deletes the stream's first n events. It builds new slices rather
// than reslicing, so the deleted events' memory is released and readers
// copying from the old ones are undisturbed. The caller holds the shard's
// lock.
func (st *stream) dropFirst(n int) {
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

// nameTable is the event names of a type, by index, and the index of each.
type nameTable struct {
	list []string
	idx  map[string]uint32
}

// smallNames is how many names a table scans for rather than hashes.
const smallNames = 8

// nameOf returns the index of an event name in the type's table, adding it
// if new. Types have a handful of event names, so adding is rare and
// looking up takes no lock.
func (ti *typeIndex) nameOf(name string) uint32 {
	if i, ok := ti.names.Load().lookup(name); ok {
		return i
	}
	ti.mu.Lock()
	defer ti.mu.Unlock()
	t := ti.names.Load()
	if i, ok := t.lookup(name); ok {
		return i
	}
	i := uint32(len(t.list))
	grown := &nameTable{list: append(slices.Clip(t.list), name), idx: maps.Clone(t.idx)}
	if grown.idx == nil {
		grown.idx = make(map[string]uint32)
	}
	grown.idx[name] = i
	ti.names.Store(grown)
	return i
}

// lookup returns the index of name.
func (t *nameTable) lookup(name string) (uint32, bool) {
	if len(t.list) <= smallNames {
		for i, n := range t.list {
			if n == name {
				return uint32(i), true
			}
		}
		return 0, false
	}
	i, ok := t.idx[name]
	return i, ok
}

// add appends e to the index. The caller holds ti.mu.
func (ti *typeIndex) add(e typeEntry) {
	if n := len(ti.chunks); n == 0 || len(ti.chunks[n-1]) == entryChunk {
		ti.chunks = append(ti.chunks, make([]typeEntry, 0, entryChunk))
	}
	last := &ti.chunks[len(ti.chunks)-1]
	*last = append(*last, e)
	ti.n++
}

// lastPos returns the Position of the type's latest event, deleted or not; 0
// if it has none. The caller holds ti.mu.
func (ti *typeIndex) lastPos() uint64 {
	if len(ti.chunks) == 0 {
		return 0
	}
	c := ti.chunks[len(ti.chunks)-1]
	return c[len(c)-1].pos
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
