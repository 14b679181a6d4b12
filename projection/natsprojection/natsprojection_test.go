package natsprojection_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/eventsourced-go/eventsourced/projection"
	"github.com/eventsourced-go/eventsourced/projection/natsprojection"
)

// jetStream starts an embedded JetStream server with file storage in a
// temporary directory and returns a client; both end with the test.
func jetStream(t *testing.T) jetstream.JetStream {
	t.Helper()
	srv, err := server.NewServer(&server.Options{
		Host: "127.0.0.1", Port: -1, JetStream: true, StoreDir: t.TempDir(), NoLog: true, NoSigs: true,
	})
	if err != nil {
		t.Fatal(err)
	}
	srv.Start()
	t.Cleanup(func() {
		srv.Shutdown()
		srv.WaitForShutdown()
	})
	if !srv.ReadyForConnections(10 * time.Second) {
		t.Fatal("embedded nats-server not ready after 10s")
	}
	nc, err := nats.Connect(srv.ClientURL())
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

func newStore(t *testing.T, js jetstream.JetStream, opts ...natsprojection.Option) *natsprojection.Store {
	t.Helper()
	s, err := natsprojection.New(t.Context(), js, opts...)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// TestStoresShareOffsets checks what a Store's cache of the offsets it last
// read or wrote must not change: another Store moving or resetting an
// offset is seen, by the revision check or by a fresh read.
func TestStoresShareOffsets(t *testing.T) {
	js := jetStream(t)
	a := newStore(t, js, natsprojection.WithBucket("offsets"), natsprojection.WithMemoryStorage())
	b := newStore(t, js, natsprojection.WithBucket("offsets"))
	ctx := t.Context()
	nop := func(context.Context) error { return nil }
	if err := a.Commit(ctx, "p", 0, 4, nop); err != nil {
		t.Fatal(err)
	}
	// Another runner moves the offset while a's handler runs.
	err := a.Commit(ctx, "p", 4, 6, func(ctx context.Context) error {
		return b.Commit(ctx, "p", 4, 5, nop)
	})
	if !errors.Is(err, projection.ErrOffsetMoved) {
		t.Errorf("Commit after a concurrent move: %v, want ErrOffsetMoved", err)
	}
	if off, err := a.Load(ctx, "p"); err != nil || off != 5 {
		t.Fatalf("offset %d, %v; want 5 (the other runner's)", off, err)
	}
	if err := a.Commit(ctx, "p", 5, 7, nop); err != nil {
		t.Fatalf("Commit from the reloaded offset: %v", err)
	}
	// Another Store resets the offset and fails to clear: a, whose cache
	// still says 7, and a fresh Store both see 0.
	failing := errors.New("clear failed")
	if err := b.Reset(ctx, "p", func(context.Context) error { return failing }); !errors.Is(err, failing) {
		t.Fatalf("Reset with failing clear: %v, want %v", err, failing)
	}
	if err := a.Commit(ctx, "p", 7, 8, nop); !errors.Is(err, projection.ErrOffsetMoved) {
		t.Errorf("Commit from the cached offset after another Store's Reset: %v, want ErrOffsetMoved", err)
	}
	for _, s := range []*natsprojection.Store{a, newStore(t, js, natsprojection.WithBucket("offsets"))} {
		if off, err := s.Load(ctx, "p"); err != nil || off != 0 {
			t.Errorf("offset after another Store's Reset: %d, %v; want 0", off, err)
		}
	}
}

func TestKeys(t *testing.T) {
	tests := []struct{ name, want string }{
		{"open-tabs", "open-tabs"},
		{"chef.todo", "chef.todo"},
		{"with space", "b64_d2l0aCBzcGFjZQ"},
		{"b64_x", "b64_YjY0X3g"},
		{"a..b", "b64_YS4uYg"},
	}
	for _, tt := range tests {
		if got := natsprojection.Key(tt.name); got != tt.want {
			t.Errorf("key(%q) = %q, want %q", tt.name, got, tt.want)
		}
	}
}

func TestOptions(t *testing.T) {
	if _, err := natsprojection.New(t.Context(), nil); !errors.Is(err, projection.ErrInvalid) {
		t.Errorf("New(nil): %v, want ErrInvalid", err)
	}
	js := jetStream(t)
	for _, o := range []natsprojection.Option{natsprojection.WithBucket(""), natsprojection.WithBucket("a.b"), natsprojection.WithReplicas(0)} {
		if _, err := natsprojection.New(t.Context(), js, o); !errors.Is(err, projection.ErrInvalid) {
			t.Errorf("New with a bad option: %v, want ErrInvalid", err)
		}
	}
	// The bucket is created once and found afterwards.
	newStore(t, js)
	newStore(t, js)
}
