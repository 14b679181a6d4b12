package natslog_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/eventsourced-go/eventsourced/eventlog"
	"github.com/eventsourced-go/eventsourced/natslog"
	"github.com/eventsourced-go/eventsourced/snapshotstore"
)

// TestSnapshotRacingSaves has many goroutines save snapshots of one entity
// at once, small ones (kept in the index) and large ones (kept in chunks):
// the index's compare-and-set keeps every save, so the entity ends with the
// snapshots of the highest Seqs, each with its own data, and the chunks of
// every trimmed snapshot are purged.
func TestSnapshotRacingSaves(t *testing.T) {
	_, js := setup(t)
	ctx := testCtx(t)
	s, err := natslog.NewSnapshotStore(ctx, js)
	if err != nil {
		t.Fatal(err)
	}
	bucket, err := js.Stream(ctx, "KV_"+natslog.DefaultBucket)
	if err != nil {
		t.Fatal(err)
	}
	const writers, each, keep = 8, 10, 5
	for _, c := range []struct {
		name string
		size int // bytes of data per snapshot
		msgs uint64
	}{
		{"small, in the index", 100, 1},
		{"large, in chunks", 200 << 10, 1 + keep},
	} {
		t.Run(c.name, func(t *testing.T) {
			id := fmt.Sprintf("hot-%d", c.size)
			data := func(seq uint64) []byte {
				return append(fmt.Appendf(nil, "state@%d:", seq), bytes.Repeat([]byte{byte(seq)}, c.size)...)
			}
			var wg sync.WaitGroup
			for w := range writers {
				wg.Go(func() {
					for i := range each {
						seq := uint64(i*writers + w + 1)
						if err := s.Save(ctx, snapshotstore.Snapshot{EntityType: "T", EntityID: id, Seq: seq, Data: data(seq)}, keep); err != nil {
							t.Errorf("Save %d: %v", seq, err)
						}
					}
				})
			}
			wg.Wait()
			list, err := s.List(ctx, "T", id)
			if err != nil {
				t.Fatal(err)
			}
			var seqs []uint64
			for _, snap := range list {
				seqs = append(seqs, snap.Seq)
				if !bytes.Equal(snap.Data, data(snap.Seq)) {
					t.Errorf("Seq %d holds %d bytes, not its own", snap.Seq, len(snap.Data))
				}
			}
			const top = writers * each
			if want := []uint64{top - 4, top - 3, top - 2, top - 1, top}; !slices.Equal(seqs, want) {
				t.Errorf("kept Seqs %v, want %v", seqs, want)
			}
			info, err := bucket.Info(ctx, jetstream.WithSubjectFilter("$KV."+natslog.DefaultBucket+".T."+id+".>"))
			if err != nil {
				t.Fatal(err)
			}
			var chunks uint64
			for _, n := range info.State.Subjects {
				chunks += n
			}
			if got := chunks + 1; got != c.msgs {
				t.Errorf("the bucket holds %d messages of the entity, want %d", got, c.msgs)
			}
			if err := s.Delete(ctx, "T", id); err != nil {
				t.Fatal(err)
			}
			if list, err := s.List(ctx, "T", id); err != nil || len(list) != 0 {
				t.Errorf("after Delete: %d snapshots, %v", len(list), err)
			}
		})
	}
	info, err := bucket.Info(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if info.State.Msgs != 0 {
		t.Errorf("after deleting both entities the bucket holds %d messages", info.State.Msgs)
	}
}

// TestSnapshotStoreNoResponders checks that the calls of a SnapshotStore
// whose bucket no server answers for (here its stream is gone; in a
// cluster, while the bucket's replicas elect a leader) fail with errors
// matching ErrUnavailable and eventlog.ErrUnavailable that name the
// entity, so that a recovery failing on them says the store is out of
// reach.
func TestSnapshotStoreNoResponders(t *testing.T) {
	_, js := setup(t)
	ctx := testCtx(t)
	s, err := natslog.NewSnapshotStore(ctx, js)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if err := s.Save(ctx, snapshotstore.Snapshot{EntityType: "T", EntityID: "x", Seq: 1, Data: []byte("a")}, 1); err != nil {
		t.Fatal(err)
	}
	if err := js.DeleteStream(ctx, "KV_"+natslog.DefaultBucket); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		call string
		err  error
	}{
		{"Save", s.Save(ctx, snapshotstore.Snapshot{EntityType: "T", EntityID: "x", Seq: 2, Data: []byte("b")}, 1)},
		{"Load", func() error { _, _, err := s.Load(ctx, "T", "x"); return err }()},
		{"List", func() error { _, err := s.List(ctx, "T", "x"); return err }()},
	} {
		if !errors.Is(tc.err, natslog.ErrUnavailable) || !errors.Is(tc.err, eventlog.ErrUnavailable) || !strings.Contains(fmt.Sprint(tc.err), "T/x") {
			t.Errorf("%s: err = %v, want one matching natslog.ErrUnavailable and eventlog.ErrUnavailable naming T/x", tc.call, tc.err)
		}
	}
}
