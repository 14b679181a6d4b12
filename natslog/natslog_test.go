package natslog_test

import (
	"context"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/eventsourced-go/eventsourced/eventlog"
	"github.com/eventsourced-go/eventsourced/eventlog/eventlogtest"
	"github.com/eventsourced-go/eventsourced/internal/natstest"
	"github.com/eventsourced-go/eventsourced/natslog"
	"github.com/eventsourced-go/eventsourced/snapshotstore"
	"github.com/eventsourced-go/eventsourced/snapshotstore/snapshotstoretest"
)

// setup starts a server, sets up the stream and bucket and returns a
// JetStream context on it.
func setup(t testing.TB, opts ...natslog.Option) (*natslog.EmbeddedServer, jetstream.JetStream) {
	t.Helper()
	srv := natstest.Server(t)
	js := natstest.Connect(t, srv)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := natslog.Setup(ctx, js, opts...); err != nil {
		t.Fatal(err)
	}
	return srv, js
}

// newLog returns a Log on js, closed when the test ends.
func newLog(t testing.TB, js jetstream.JetStream, opts ...natslog.Option) *natslog.Log {
	t.Helper()
	l, err := natslog.New(context.Background(), js, opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	return l
}

func TestLogConformance(t *testing.T) {
	_, js := setup(t)
	eventlogtest.Run(t, func(t *testing.T) eventlog.Log { return newLog(t, js) })
}

// TestLogConformanceNoCache runs the suite with the cache off, so every
// append with an expected Seq looks up the entity's last message first.
func TestLogConformanceNoCache(t *testing.T) {
	_, js := setup(t, natslog.WithStream("nocache"), natslog.WithPrefix("nc"))
	eventlogtest.Run(t, func(t *testing.T) eventlog.Log {
		return newLog(t, js, natslog.WithStream("nocache"), natslog.WithPrefix("nc"), natslog.WithCacheSize(0))
	})
}

func TestSnapshotStoreConformance(t *testing.T) {
	_, js := setup(t)
	snapshotstoretest.Run(t, func(t *testing.T) snapshotstore.Store {
		s, err := natslog.NewSnapshotStore(context.Background(), js)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Close() })
		return s
	})
}
