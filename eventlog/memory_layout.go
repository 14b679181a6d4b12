package eventlog

import (
	"maps"
	"slices"
	"sync"
	"sync/atomic"
	"time"
)

// How a Memory lays out its events.
//
// Streams are split by a hash of their id over memShards shards, each with
// its own lock and map of streams. An entity type has a typeIndex with a lock
// of its own: it lists the type's events in Position order (for ReadType and
// Subscribe), the type's streams (for EntityIDs and for resolving index
// entries) and the type's event names. An append holds its shard's lock
// throughout and its type's index lock only briefly: to take Positions and
// index its events (and, rarely, to add a stream or an event name). So
// appends to entities of different shards meet only in that section.
//
// Nothing stored per event holds a pointer: a stream keeps its events as
// fixed-size stored values, their data back to back in one byte slice and
// their names as numbers into the type's name table; the index keeps
// fixed-size typeEntry values. So the garbage collector never scans the
// events, however many there are, and a typical append to an existing
// stream (no metadata, event names seen before) allocates nothing beyond
// amortized slice growth.
//
// Lock order: a shard's lock before an index's lock. Readers by type take an
// index's lock, release it, and then take shard locks.

// memShards is how many shards a Memory splits its streams into. Appends to
// streams of different shards take different locks.
const memShards = 64

// memShard holds the streams whose id hashes to it.
type memShard struct {
	mu      sync.Mutex // guards streams and the streams' contents
	streams map[streamKey]*stream
	// The padding spaces the shards' locks apart to cut false sharing
	// between appenders of neighbouring shards. A shard is 56 bytes with it,
	// less than a 64-byte cache line, so some neighbours still share a line.
	_ [40]byte
}

// streamKey identifies a stream; a struct key avoids building a combined
// string on every lookup.
type streamKey struct{ typ, id string }

// stream is one entity's events. The stored events are recs; recs[i] has Seq
// first+i. After deletions first may exceed last by one, when recs is empty.
//
// Nothing a stream stores for an event holds a pointer: the event data lives
// back to back in data, names in the type's table, metadata (rare) in md. So
// the garbage collector never scans the records.
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
	// tomb is the stream's tombstone, if DeleteStream left one: tombFinal
	// for good, tombReuse until the next append clears it. It is written
	// under the shard's lock and read without it by EntityIDs.
	tomb atomic.Uint32
}

// The states of stream.tomb.
const (
	tombNone  = iota // no tombstone, or a reuse one the stream has appended past
	tombReuse        // deleted with reuse, no event since
	tombFinal        // deleted for good
)

// stored is an event as kept in memory.
type stored struct {
	pos  uint64
	unix int64 // commit time, nanoseconds since the Unix epoch
	off  int   // of its data in stream.data
	size uint32
	name uint32 // in typeIndex.names
	rev  uint32
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

// entryChunk is how many entries a chunk of a type index holds. The index
// grows a chunk at a time, so an append never copies the entries already
// indexed.
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
	// notify is closed, and set to nil, by the next append to the type or
	// by Close. It is nil while no subscriber waits, so appends allocate no
	// channel.
	notify chan struct{}
}

// typeEntry points at one event of a type. It holds no pointer, so the
// index costs the garbage collector nothing.
type typeEntry struct {
	pos    uint64
	seq    uint64
	stream uint32 // in typeIndex.streams
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
