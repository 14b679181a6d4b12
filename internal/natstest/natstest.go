package natstest

import (
	"context"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/eventsourced-go/eventsourced/natslog"
)

// Server starts an embedded server with its data in a temporary directory
// of t and shuts it down when t ends.
func Server(t testing.TB, opts ...natslog.ServerOption) *natslog.EmbeddedServer {
	t.Helper()
	srv, err := natslog.StartEmbedded(t.TempDir(), opts...)
	if err != nil {
		t.Fatalf("embedded NATS server: %v", err)
	}
	t.Cleanup(srv.Shutdown)
	return srv
}

// Connect connects to srv and returns a JetStream context on the
// connection, which is closed when t ends.
func Connect(t testing.TB, srv *natslog.EmbeddedServer, opts ...nats.Option) jetstream.JetStream {
	t.Helper()
	nc, err := srv.Connect(opts...)
	if err != nil {
		t.Fatalf("connecting to the embedded NATS server: %v", err)
	}
	t.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatalf("JetStream: %v", err)
	}
	return js
}

// Log starts a server, sets it up for natslog with opts and returns a Log
// on it, closed when t ends, and its JetStream context.
func Log(t testing.TB, opts ...natslog.Option) (*natslog.Log, jetstream.JetStream) {
	t.Helper()
	js := Connect(t, Server(t))
	return SetUp(t, js, opts...), js
}

// SetUp sets js up for natslog and returns a Log on it, closed when t
// ends.
func SetUp(t testing.TB, js jetstream.JetStream, opts ...natslog.Option) *natslog.Log {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := natslog.Setup(ctx, js); err != nil {
		t.Fatalf("natslog.Setup: %v", err)
	}
	log, err := natslog.New(ctx, js, opts...)
	if err != nil {
		t.Fatalf("natslog.New: %v", err)
	}
	t.Cleanup(func() { log.Close() })
	return log
}

// Dial connects to the server at url, for a child process of a test that
// has no testing.T, and returns a Log on the stream its parent set up and
// the JetStream context; closing ends both.
func Dial(ctx context.Context, url string) (log *natslog.Log, js jetstream.JetStream, closing func(), err error) {
	nc, err := nats.Connect(url)
	if err != nil {
		return nil, nil, nil, err
	}
	if js, err = jetstream.New(nc); err == nil {
		log, err = natslog.New(ctx, js)
	}
	if err != nil {
		nc.Close()
		return nil, nil, nil, err
	}
	return log, js, func() { log.Close(); nc.Close() }, nil
}
