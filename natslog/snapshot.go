package natslog

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"slices"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/nats-io/nuid"

	"github.com/eventsourced-go/eventsourced/eventlog"
	itel "github.com/eventsourced-go/eventsourced/internal/telemetry"
	"github.com/eventsourced-go/eventsourced/snapshotstore"
)

// Compile-time checks that SnapshotStore provides the contract and its
// optional capabilities.
var (
	_ snapshotstore.Store  = (*SnapshotStore)(nil)
	_ snapshotstore.Lister = (*SnapshotStore)(nil)
	_ snapshotstore.Closer = (*SnapshotStore)(nil)
)

// chunkReserve is what a snapshot chunk leaves of the server's max payload
// for the subject and headers of its message.
const chunkReserve = 4 << 10

// Snapshots small enough are kept in the index itself, so saving one is a
// read and a compare-and-set of the index, and loading one is one read. It
// takes a keep between 1 and maxInlineKeep and data of at most a sixteenth
// of a chunk, which bounds the index to half the max payload.
const maxInlineKeep = 8

// maxIndexRetries bounds Saves that lost a race to update the index. The
// entity runtime saves one snapshot of an entity at a time, so races are
// rare; the bound only guards against a livelock.
const maxIndexRetries = 64

// SnapshotStore is a [snapshotstore.Store] on a JetStream KV bucket. It also
// implements [snapshotstore.Lister] and [snapshotstore.Closer].
//
// Each entity has an index under the key <type>.<id>, type and id escaped
// as for event subjects: a JSON list of its kept snapshots (Seq, revision,
// time, size). A small snapshot saved with a small keep (up to 64 KiB with
// the default 1 MiB max payload, keep 1 to 8) is kept in the index itself:
// saving it is a read and a compare-and-set of the index, loading it one
// read. Larger ones live under <type>.<id>.<save id>.<n>, cut into chunks
// that fit the server's max payload, so snapshots of any size work. Save
// writes those chunks first, then swaps the index by compare-and-set on its
// revision, then purges the chunks of snapshots it replaced or trimmed: a
// reader that has the index always finds the data, and a crash between the
// steps leaves at worst unreferenced chunks, never a broken snapshot.
//
// Create it with [NewSnapshotStore] on a bucket that [Setup] made.
type SnapshotStore struct {
	kv      jetstream.KeyValue
	stream  jetstream.Stream // the bucket's stream, for purges
	subject string           // the bucket's subject prefix, "$KV.<bucket>."
	chunk   int
	timeout time.Duration
	logger  *slog.Logger
	watch   *connWatch
	tel     *itel.SnapshotOps
	closed  atomic.Bool
}

// NewSnapshotStore returns a store on the KV bucket the options name
// (default [DefaultBucket]), which must exist: [Setup] creates it. It starts
// a goroutine that follows the connection's status, so that calls fail at
// once when the connection drops (see "Waiting and connection loss" in the
// package documentation); Close stops it.
func NewSnapshotStore(ctx context.Context, js jetstream.JetStream, opts ...Option) (*SnapshotStore, error) {
	if js == nil {
		return nil, fmt.Errorf("%w: nil JetStream context", ErrInvalidOption)
	}
	cfg, err := newConfig(forStore, opts)
	if err != nil {
		return nil, err
	}
	timeout := cfg.timeout
	if timeout == 0 {
		timeout = defaultSetupTimeout(js)
	}
	sctx, cancel := withDefaultTimeout(ctx, timeout)
	defer cancel()
	kv, err := js.KeyValue(sctx, cfg.bucket)
	if err != nil {
		switch {
		case errNotFound(err):
			return nil, fmt.Errorf("%w: bucket %q does not exist; natslog.Setup creates it", ErrNotSetUp, cfg.bucket)
		case isNoJetStream(err):
			return nil, fmt.Errorf("%w: looking up bucket %q: %w", ErrNoJetStream, cfg.bucket, err)
		}
		return nil, fmt.Errorf("natslog: look up bucket %q: %w", cfg.bucket, err)
	}
	stream, err := js.Stream(sctx, "KV_"+cfg.bucket)
	if err != nil {
		return nil, fmt.Errorf("natslog: look up the stream of bucket %q: %w", cfg.bucket, err)
	}
	tel, lost, telErr := newStoreTelemetry(cfg)
	if telErr != nil {
		cfg.logger.Warn("natslog: some metrics are not reported", slog.Any("error", telErr))
	}
	chunk := int(js.Conn().MaxPayload()) - chunkReserve
	if chunk < chunkReserve {
		chunk = max(int(js.Conn().MaxPayload())/2, 1)
	}
	return &SnapshotStore{
		kv:      kv,
		stream:  stream,
		subject: "$KV." + cfg.bucket + ".",
		chunk:   chunk,
		timeout: timeout,
		logger:  cfg.logger,
		watch:   watchConn(js.Conn(), "natslog.SnapshotStore", cfg.logger, lost),
		tel:     tel,
	}, nil
}

// snapIndex is the value of an entity's index key.
type snapIndex struct {
	Snaps []snapEntry `json:"snaps"`
}

// snapEntry describes one kept snapshot.
type snapEntry struct {
	Seq  uint64 `json:"seq"`
	Rev  uint32 `json:"rev,omitempty"`
	Time int64  `json:"time"` // Unix nanoseconds
	Size int    `json:"size"`
	// Chunks is how many chunk keys hold the data; 0 when Data holds it.
	Chunks int    `json:"chunks,omitempty"`
	ID     string `json:"id,omitempty"` // the save id in the chunk keys
	Data   []byte `json:"data,omitempty"`
}

// key returns the index key of (typ, id).
func snapKey(typ, id string) string { return encodeToken(typ) + "." + encodeToken(id) }

// chunkKey returns the key of chunk n of the snapshot e of the entity whose
// index key is key.
func chunkKey(key string, e snapEntry, n int) string {
	return key + "." + e.ID + "." + strconv.Itoa(n)
}

func (s *SnapshotStore) reqCtx(ctx context.Context) (context.Context, context.CancelFunc) {
	return withDefaultTimeout(ctx, s.timeout)
}

// index returns the entity's index and its revision, 0 if it has none.
func (s *SnapshotStore) index(ctx context.Context, key string) (snapIndex, uint64, error) {
	e, err := s.kv.Get(ctx, key)
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return snapIndex{}, 0, nil
	}
	if err != nil {
		return snapIndex{}, 0, err
	}
	var idx snapIndex
	if err := json.Unmarshal(e.Value(), &idx); err != nil {
		return snapIndex{}, 0, fmt.Errorf("bad index: %w", err)
	}
	return idx, e.Revision(), nil
}

// Save implements [snapshotstore.Store]. It sets the snapshot's Time.
func (s *SnapshotStore) Save(ctx context.Context, snap snapshotstore.Snapshot, keep int) error {
	if err := snapshotstore.Validate(snap); err != nil {
		return err
	}
	if s.closed.Load() {
		return snapshotstore.ErrClosed
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	ctx, cancel := s.reqCtx(ctx)
	defer cancel()
	ctx, op := s.tel.Start(ctx, itel.SnapshotSave, snap.EntityType, snap.EntityID)
	err := s.watch.do(ctx, func(ctx context.Context) error { return s.save(ctx, snap, keep) })
	s.tel.End(ctx, op, err)
	if err != nil {
		return fmt.Errorf("natslog: save snapshot of %s/%s at seq %d: %w", eventlog.FormatID(snap.EntityType), eventlog.FormatID(snap.EntityID), snap.Seq, unanswered(err))
	}
	return nil
}

// save is Save under a bound ctx.
func (s *SnapshotStore) save(ctx context.Context, snap snapshotstore.Snapshot, keep int) error {
	key := snapKey(snap.EntityType, snap.EntityID)
	entry := snapEntry{
		Seq:  snap.Seq,
		Rev:  snap.Revision,
		Time: time.Now().UnixNano(),
		Size: len(snap.Data),
	}
	if keep >= 1 && keep <= maxInlineKeep && len(snap.Data) <= s.chunk/16 {
		entry.Data = snap.Data
	} else {
		entry.Chunks = (len(snap.Data) + s.chunk - 1) / s.chunk
		entry.ID = nuid.Next()
	}
	for n := range entry.Chunks {
		part := snap.Data[n*s.chunk : min((n+1)*s.chunk, len(snap.Data))]
		if _, err := s.kv.Put(ctx, chunkKey(key, entry, n), part); err != nil {
			return err
		}
	}
	var dropped []snapEntry
	for attempt := 0; ; attempt++ {
		idx, rev, err := s.index(ctx, key)
		if err != nil {
			return err
		}
		dropped = dropped[:0]
		list := idx.Snaps
		i, found := slices.BinarySearchFunc(list, entry.Seq, func(e snapEntry, seq uint64) int {
			switch {
			case e.Seq < seq:
				return -1
			case e.Seq > seq:
				return 1
			}
			return 0
		})
		if found {
			dropped = append(dropped, list[i])
			list[i] = entry
		} else {
			list = slices.Insert(list, i, entry)
		}
		if keep > 0 && len(list) > keep {
			dropped = append(dropped, list[:len(list)-keep]...)
			list = list[len(list)-keep:]
		}
		value, err := json.Marshal(snapIndex{Snaps: list})
		if err != nil {
			return err
		}
		if rev == 0 {
			_, err = s.kv.Create(ctx, key, value)
		} else {
			_, err = s.kv.Update(ctx, key, value, rev)
		}
		if err == nil {
			break
		}
		if !(errors.Is(err, jetstream.ErrKeyExists) || isWrongLast(err)) || attempt == maxIndexRetries {
			_ = s.purgeData(ctx, key, []snapEntry{entry})
			return err
		}
		// Another Save of the entity won: back off a random while, so
		// racing savers spread out, and merge into its index.
		if err := sleep(ctx, time.Duration(rand.Int64N(int64(min(attempt+1, 20))*int64(time.Millisecond)))); err != nil {
			_ = s.purgeData(context.WithoutCancel(ctx), key, []snapEntry{entry})
			return err
		}
	}
	// The index no longer names the dropped snapshots; their data can go.
	// Failing that leaves unreferenced data, not a wrong snapshot.
	if err := s.purgeData(ctx, key, dropped); err != nil {
		s.logger.Warn("natslog: purge the data of replaced snapshots", slog.String("type", snap.EntityType), slog.String("id", snap.EntityID), slog.Any("error", err))
	}
	return nil
}

// purgeData purges the data of the snapshots es of the entity with index
// key key.
func (s *SnapshotStore) purgeData(ctx context.Context, key string, es []snapEntry) error {
	var errs []error
	for _, e := range es {
		if e.Chunks == 0 {
			continue
		}
		if err := s.stream.Purge(ctx, jetstream.WithPurgeSubject(s.subject+key+"."+e.ID+".>")); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// Load implements [snapshotstore.Store]: one get of the index, plus one per
// chunk of the latest snapshot when it is not kept in the index.
func (s *SnapshotStore) Load(ctx context.Context, typ, id string) (snapshotstore.Snapshot, bool, error) {
	if err := snapshotstore.ValidateKey(typ, id); err != nil {
		return snapshotstore.Snapshot{}, false, err
	}
	if s.closed.Load() {
		return snapshotstore.Snapshot{}, false, snapshotstore.ErrClosed
	}
	if err := ctx.Err(); err != nil {
		return snapshotstore.Snapshot{}, false, err
	}
	ctx, cancel := s.reqCtx(ctx)
	defer cancel()
	var snap snapshotstore.Snapshot
	var found bool
	ctx, op := s.tel.Start(ctx, itel.SnapshotLoad, typ, id)
	err := s.watch.do(ctx, func(ctx context.Context) error {
		var err error
		snap, found, err = s.loadLatest(ctx, typ, id)
		return err
	})
	s.tel.End(ctx, op, err)
	if err != nil {
		return snapshotstore.Snapshot{}, false, fmt.Errorf("natslog: load snapshot of %s/%s: %w", eventlog.FormatID(typ), eventlog.FormatID(id), unanswered(err))
	}
	return snap, found, nil
}

// loadLatest is Load under a bound ctx.
func (s *SnapshotStore) loadLatest(ctx context.Context, typ, id string) (snapshotstore.Snapshot, bool, error) {
	key := snapKey(typ, id)
	for attempt := 0; ; attempt++ {
		idx, _, err := s.index(ctx, key)
		if err != nil {
			return snapshotstore.Snapshot{}, false, err
		}
		if len(idx.Snaps) == 0 {
			return snapshotstore.Snapshot{}, false, nil
		}
		snap, err := s.load(ctx, typ, id, key, idx.Snaps[len(idx.Snaps)-1])
		if errors.Is(err, jetstream.ErrKeyNotFound) && attempt < maxIndexRetries {
			continue // replaced by a concurrent Save: read the index again
		}
		if err != nil {
			return snapshotstore.Snapshot{}, false, err
		}
		return snap, true, nil
	}
}

// load reads the data of snapshot e.
func (s *SnapshotStore) load(ctx context.Context, typ, id, key string, e snapEntry) (snapshotstore.Snapshot, error) {
	snap := snapshotstore.Snapshot{EntityType: typ, EntityID: id, Seq: e.Seq, Revision: e.Rev, Time: time.Unix(0, e.Time)}
	if e.Chunks == 0 {
		snap.Data = e.Data
	} else {
		snap.Data = make([]byte, 0, e.Size)
	}
	for n := range e.Chunks {
		v, err := s.kv.Get(ctx, chunkKey(key, e, n))
		if err != nil {
			return snapshotstore.Snapshot{}, fmt.Errorf("seq %d chunk %d: %w", e.Seq, n, err)
		}
		snap.Data = append(snap.Data, v.Value()...)
	}
	if len(snap.Data) != e.Size {
		return snapshotstore.Snapshot{}, fmt.Errorf("seq %d: read %d bytes, the index says %d", e.Seq, len(snap.Data), e.Size)
	}
	return snap, nil
}

// List implements [snapshotstore.Lister].
func (s *SnapshotStore) List(ctx context.Context, typ, id string) ([]snapshotstore.Snapshot, error) {
	if err := snapshotstore.ValidateKey(typ, id); err != nil {
		return nil, err
	}
	if s.closed.Load() {
		return nil, snapshotstore.ErrClosed
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	ctx, cancel := s.reqCtx(ctx)
	defer cancel()
	var out []snapshotstore.Snapshot
	err := s.watch.do(ctx, func(ctx context.Context) error {
		var err error
		out, err = s.list(ctx, typ, id)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("natslog: list snapshots of %s/%s: %w", eventlog.FormatID(typ), eventlog.FormatID(id), unanswered(err))
	}
	return out, nil
}

// list is List under a bound ctx.
func (s *SnapshotStore) list(ctx context.Context, typ, id string) ([]snapshotstore.Snapshot, error) {
	key := snapKey(typ, id)
	for attempt := 0; ; attempt++ {
		idx, _, err := s.index(ctx, key)
		if err != nil {
			return nil, err
		}
		var out []snapshotstore.Snapshot
		for _, e := range idx.Snaps {
			var snap snapshotstore.Snapshot
			if snap, err = s.load(ctx, typ, id, key, e); err != nil {
				break
			}
			out = append(out, snap)
		}
		if errors.Is(err, jetstream.ErrKeyNotFound) && attempt < maxIndexRetries {
			continue
		}
		if err != nil {
			return nil, err
		}
		return out, nil
	}
}

// Delete implements [snapshotstore.Store]: it purges the entity's index,
// then its data, leaving no delete markers behind.
func (s *SnapshotStore) Delete(ctx context.Context, typ, id string) error {
	if err := snapshotstore.ValidateKey(typ, id); err != nil {
		return err
	}
	if s.closed.Load() {
		return snapshotstore.ErrClosed
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	ctx, cancel := s.reqCtx(ctx)
	defer cancel()
	key := snapKey(typ, id)
	err := s.watch.do(ctx, func(ctx context.Context) error {
		for _, subj := range []string{s.subject + key, s.subject + key + ".>"} {
			if err := s.stream.Purge(ctx, jetstream.WithPurgeSubject(subj)); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("natslog: delete snapshots of %s/%s: %w", eventlog.FormatID(typ), eventlog.FormatID(id), unanswered(err))
	}
	return nil
}

// Close implements [snapshotstore.Closer]. It does not close the
// connection. Afterwards every method returns [snapshotstore.ErrClosed],
// Close included.
func (s *SnapshotStore) Close() error {
	if !s.closed.CompareAndSwap(false, true) {
		return snapshotstore.ErrClosed
	}
	s.watch.close()
	return nil
}
