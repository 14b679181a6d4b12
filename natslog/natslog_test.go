package natslog_test

import (
	"context"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/eventsourced-go/eventsourced/eventlog"
	"github.com/eventsourced-go/eventsourced/eventlog/eventlogtest"
	"github.com/eventsourced-go/eventsourced/natslog"
	"github.com/eventsourced-go/eventsourced/snapshotstore"
	"github.com/eventsourced-go/eventsourced/snapshotstore/snapshotstoretest"
)

// startServer starts an embedded server with its data in a temporary
// directory and stops it when the test ends.
func startServer(t testing.TB, opts ...natslog.ServerOption) *natslog.EmbeddedServer {
	t.Helper()
	srv, err := natslog.StartEmbedded(t.TempDir(), opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv.Shutdown)
	return srv
}

// connect connects to srv, closing the connection when the test ends.
func connect(t testing.TB, srv *natslog.EmbeddedServer, opts ...nats.Option) jetstream.JetStream {
	t.Helper()
	nc, err := srv.Connect(opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	return js
}

// setup starts a server, sets up the stream and bucket and returns a
// JetStream context on it.
func setup(t testing.TB, opts ...natslog.Option) (*natslog.EmbeddedServer, jetstream.JetStream) {
	t.Helper()
	srv := startServer(t)
	js := connect(t, srv)
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
