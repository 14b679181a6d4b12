package natslog_test

import (
	"context"
	"testing"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/eventsourced-go/eventsourced/eventlog"
	"github.com/eventsourced-go/eventsourced/internal/deletetest"
	"github.com/eventsourced-go/eventsourced/internal/evolutiontest"
	"github.com/eventsourced-go/eventsourced/internal/natstest"
	"github.com/eventsourced-go/eventsourced/internal/shredtest"
	"github.com/eventsourced-go/eventsourced/natslog"
	"github.com/eventsourced-go/eventsourced/snapshotstore"
)

// Tests of stored data over the years: state schema evolution, entity
// deletion and crypto-shredding, each a scenario shared by every backend.

// natsStores returns a Log and a SnapshotStore on a fresh embedded server.
func natsStores(t *testing.T) (*natslog.Log, *natslog.SnapshotStore, jetstream.JetStream) {
	t.Helper()
	log, js := natstest.Log(t)
	snaps, err := natslog.NewSnapshotStore(context.Background(), js)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { snaps.Close() })
	return log, snaps, js
}

// TestStateEvolution runs the state schema evolution scenarios on NATS
// JetStream: snapshots of an older state revision upcast, skipped or
// refused, with and without the events they cover.
func TestStateEvolution(t *testing.T) {
	evolutiontest.Run(t, func(t *testing.T) (eventlog.Log, snapshotstore.Store) {
		log, snaps, _ := natsStores(t)
		return log, snaps
	})
}

// TestDeleteEntities runs the entity deletion scenarios on NATS JetStream.
func TestDeleteEntities(t *testing.T) {
	deletetest.Run(t, func(t *testing.T) (eventlog.Log, snapshotstore.Store) {
		log, snaps, _ := natsStores(t)
		return log, snaps
	})
}

// TestCryptoShredding runs the crypto-shredding scenario on NATS
// JetStream, keys in a KV bucket; the raw bytes are every message of the
// event stream and of the snapshot bucket's stream.
func TestCryptoShredding(t *testing.T) {
	shredtest.Run(t, func(t *testing.T) shredtest.Backend {
		ctx := context.Background()
		log, snaps, js := natsStores(t)
		keys, err := natslog.NewKeyStore(js)
		if err != nil {
			t.Fatal(err)
		}
		if err := keys.Setup(ctx); err != nil {
			t.Fatal(err)
		}
		return shredtest.Backend{Log: log, Snapshots: snaps, Keys: keys, Raw: func(t *testing.T) []byte {
			var raw []byte
			for _, name := range []string{natslog.DefaultStream, "KV_" + natslog.DefaultBucket} {
				raw = append(raw, streamBytes(t, js, name)...)
			}
			return raw
		}}
	})
}

// streamBytes returns the data and headers of every message of a stream.
func streamBytes(t *testing.T, js jetstream.JetStream, name string) []byte {
	t.Helper()
	ctx := context.Background()
	s, err := js.Stream(ctx, name)
	if err != nil {
		t.Fatal(err)
	}
	info, err := s.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var raw []byte
	for seq := info.State.FirstSeq; seq <= info.State.LastSeq && seq > 0; seq++ {
		m, err := s.GetMsg(ctx, seq)
		if err != nil {
			continue // deleted
		}
		raw = append(raw, m.Data...)
		for k, vs := range m.Header {
			raw = append(raw, k...)
			for _, v := range vs {
				raw = append(raw, v...)
			}
		}
	}
	return raw
}
