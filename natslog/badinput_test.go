package natslog_test

import (
	"bytes"
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/eventsourced-go/eventsourced/eventlog"
	"github.com/eventsourced-go/eventsourced/internal/natstest"
	"github.com/eventsourced-go/eventsourced/natslog"
	"github.com/eventsourced-go/eventsourced/snapshotstore"
)

// TestOversizedEvents checks that an event over the server's max payload,
// alone or inside a batch, is refused with ErrTooLarge (and ErrInvalid)
// before anything is sent, and that an event under it is stored.
func TestOversizedEvents(t *testing.T) {
	srv := natstest.Server(t, natslog.WithServerMaxPayload(64<<10))
	js := natstest.Connect(t, srv)
	ctx := testCtx(t)
	if err := natslog.Setup(ctx, js); err != nil {
		t.Fatal(err)
	}
	l := newLog(t, js)
	big := eventlog.Event{Name: "Big", Data: bytes.Repeat([]byte{'x'}, 64<<10)}
	small := eventlog.Event{Name: "Small", Data: bytes.Repeat([]byte{'y'}, 60<<10)}
	for _, c := range []struct {
		name   string
		events []eventlog.Event
	}{
		{"alone", []eventlog.Event{big}},
		{"last of a batch", []eventlog.Event{small, big}},
		{"first of a batch", []eventlog.Event{big, small}},
	} {
		before := js.Conn().Stats().OutMsgs
		_, err := l.Append(ctx, "Blob", "b", 0, c.events...)
		if !errors.Is(err, natslog.ErrTooLarge) || !errors.Is(err, eventlog.ErrInvalid) {
			t.Errorf("%s: got %v, want ErrTooLarge and ErrInvalid", c.name, err)
		} else if !strings.Contains(err.Error(), "max payload of 65536 bytes") {
			t.Errorf("%s: the error does not name the limit: %v", c.name, err)
		}
		if sent := js.Conn().Stats().OutMsgs - before; sent != 0 {
			t.Errorf("%s: sent %d messages before refusing", c.name, sent)
		}
	}
	if n, err := l.LastSeq(ctx, "Blob", "b"); err != nil || n != 0 {
		t.Errorf("after refused appends LastSeq = %d, %v, want 0", n, err)
	}
	mustAppend(t, l, "Blob", "b", 0, small, small)
	recs := collect(t, l.ReadEntity(ctx, "Blob", "b", 0))
	if len(recs) != 2 || !bytes.Equal(recs[1].Data, small.Data) {
		t.Errorf("read back %d records", len(recs))
	}
}

// TestStreamLimits checks the errors of the stream's own limits: a max
// event size below the server's payload, and the server's atomic batch
// size limit of 1,000 messages.
func TestStreamLimits(t *testing.T) {
	_, js := setup(t, natslog.WithStream("limited"), natslog.WithPrefix("lim"), natslog.WithMaxEventSize(1024))
	l := newLog(t, js, natslog.WithStream("limited"), natslog.WithPrefix("lim"))
	ctx := testCtx(t)
	_, err := l.Append(ctx, "T", "x", 0, eventlog.Event{Name: "E", Data: make([]byte, 2000)})
	if !errors.Is(err, natslog.ErrTooLarge) {
		t.Errorf("an event over the stream's max message size: got %v, want ErrTooLarge", err)
	}
	_, err = l.Append(ctx, "T", "y", 0, evs("e", 1001)...)
	if !errors.Is(err, natslog.ErrTooLarge) || !errors.Is(err, eventlog.ErrInvalid) {
		t.Errorf("1,001 events in one append: got %v, want ErrTooLarge", err)
	}
	for _, id := range []string{"x", "y"} {
		if n, err := l.LastSeq(ctx, "T", id); err != nil || n != 0 {
			t.Errorf("%s: LastSeq = %d, %v, want 0", id, n, err)
		}
	}
	mustAppend(t, l, "T", "y", 0, evs("e", 1000)...)
}

func TestInvalidArguments(t *testing.T) {
	_, js := setup(t)
	l := newLog(t, js)
	ctx := testCtx(t)
	long := strings.Repeat("é", 400) // 2,400 bytes once escaped
	if _, err := l.Append(ctx, "T", long, 0, ev("e")); !errors.Is(err, eventlog.ErrInvalid) {
		t.Errorf("an id too long for a subject: got %v, want ErrInvalid", err)
	}
	if _, err := l.LastSeq(ctx, "T", long); !errors.Is(err, eventlog.ErrInvalid) {
		t.Errorf("LastSeq of an id too long for a subject: got %v, want ErrInvalid", err)
	}
	for _, err := range l.ReadType(ctx, "", 0) {
		if !errors.Is(err, eventlog.ErrInvalid) {
			t.Errorf("ReadType of an empty type: got %v", err)
		}
	}
	if err := l.DeleteTo(ctx, "T", "", 1); !errors.Is(err, eventlog.ErrInvalid) {
		t.Errorf("DeleteTo of an empty id: got %v", err)
	}
}

func TestInvalidOptions(t *testing.T) {
	for name, opt := range map[string]natslog.Option{
		"stream with a dot":       natslog.WithStream("a.b"),
		"empty stream":            natslog.WithStream(""),
		"stream with a space":     natslog.WithStream("a b"),
		"prefix with a wildcard":  natslog.WithPrefix("es.*"),
		"prefix >":                natslog.WithPrefix(">"),
		"empty prefix":            natslog.WithPrefix(""),
		"prefix with empty token": natslog.WithPrefix("es..x"),
		"prefix with $":           natslog.WithPrefix("$JS"),
		"prefix with a space":     natslog.WithPrefix("e s"),
		"bucket with a dot":       natslog.WithBucket("a.b"),
		"empty bucket":            natslog.WithBucket(""),
		"zero replicas":           natslog.WithReplicas(0),
		"six replicas":            natslog.WithReplicas(6),
		"storage 7":               natslog.WithStorage(jetstream.StorageType(7)),
		"negative cache":          natslog.WithCacheSize(-1),
		"no batches":              natslog.WithMaxInflightBatches(0),
		"zero timeout":            natslog.WithTimeout(0),
		"nil logger":              natslog.WithLogger(nil),
		"zero option":             {},
	} {
		if _, err := natslog.StreamConfig(opt); !errors.Is(err, natslog.ErrInvalidOption) {
			t.Errorf("%s: got %v, want ErrInvalidOption", name, err)
		}
	}
	for name, opt := range map[string]natslog.ServerOption{
		"port -1":          natslog.WithServerPort(-1),
		"port 70000":       natslog.WithServerPort(70000),
		"tiny payload":     natslog.WithServerMaxPayload(10),
		"huge payload":     natslog.WithServerMaxPayload(1 << 30),
		"nil logger":       natslog.WithServerLogger(nil),
		"no ready timeout": natslog.WithServerReadyTimeout(0),
	} {
		if _, err := natslog.StartEmbedded(t.TempDir(), opt); !errors.Is(err, natslog.ErrInvalidOption) {
			t.Errorf("%s: got %v, want ErrInvalidOption", name, err)
		}
	}
	if _, err := natslog.StartEmbedded(""); !errors.Is(err, natslog.ErrInvalidOption) {
		t.Errorf("StartEmbedded(\"\"): got %v, want ErrInvalidOption", err)
	}
	if _, err := natslog.New(context.Background(), nil); !errors.Is(err, natslog.ErrInvalidOption) {
		t.Errorf("New(nil): got %v", err)
	}
	if err := natslog.Setup(context.Background(), nil); !errors.Is(err, natslog.ErrInvalidOption) {
		t.Errorf("Setup(nil): got %v", err)
	}
	// An option that does not apply is refused, naming it, never ignored.
	_, js := setup(t)
	ctx := testCtx(t)
	_, err := natslog.New(ctx, js, natslog.WithReplicas(3))
	if !errors.Is(err, natslog.ErrInvalidOption) || !strings.Contains(err.Error(), "WithReplicas(3) is an option of Setup and NewKeyStore, not of New") {
		t.Errorf("New with WithReplicas: %v", err)
	}
	_, err = natslog.NewSnapshotStore(ctx, js, natslog.WithCacheSize(10))
	if !errors.Is(err, natslog.ErrInvalidOption) || !strings.Contains(err.Error(), "WithCacheSize(10) is an option of New, not of NewSnapshotStore") {
		t.Errorf("NewSnapshotStore with WithCacheSize: %v", err)
	}
	err = natslog.Setup(ctx, js, natslog.WithTimeout(time.Second))
	if !errors.Is(err, natslog.ErrInvalidOption) || !strings.Contains(err.Error(), "WithTimeout(1s) is an option of New, NewSnapshotStore and NewKeyStore, not of Setup") {
		t.Errorf("Setup with WithTimeout: %v", err)
	}
	_, err = natslog.New(ctx, js, natslog.WithBucket("b"))
	if !errors.Is(err, natslog.ErrInvalidOption) || !strings.Contains(err.Error(), `WithBucket("b") is an option of Setup and NewSnapshotStore, not of New`) {
		t.Errorf("New with WithBucket: %v", err)
	}
	cfg, err := natslog.StreamConfig(natslog.WithStream("s"), natslog.WithPrefix("a.b"), natslog.WithMaxBytes(1<<20))
	if err != nil || cfg.Name != "s" || cfg.Subjects[0] != "a.b.>" || cfg.MaxBytes != 1<<20 || cfg.Discard != jetstream.DiscardNew || !cfg.AllowAtomicPublish || !cfg.AllowDirect {
		t.Errorf("StreamConfig = %+v, %v", cfg, err)
	}
}

// TestNotSetUp checks that New and NewSnapshotStore name what is missing
// when Setup did not run, or the stream lacks what natslog needs.
func TestNotSetUp(t *testing.T) {
	srv := natstest.Server(t)
	js := natstest.Connect(t, srv)
	ctx := testCtx(t)
	if _, err := natslog.New(ctx, js); !errors.Is(err, natslog.ErrNotSetUp) {
		t.Errorf("New before Setup: got %v, want ErrNotSetUp", err)
	}
	if _, err := natslog.NewSnapshotStore(ctx, js); !errors.Is(err, natslog.ErrNotSetUp) {
		t.Errorf("NewSnapshotStore before Setup: got %v, want ErrNotSetUp", err)
	}
	if _, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: "plain", Subjects: []string{"p.>"}}); err != nil {
		t.Fatal(err)
	}
	_, err := natslog.New(ctx, js, natslog.WithStream("plain"), natslog.WithPrefix("p"))
	if !errors.Is(err, natslog.ErrNotSetUp) || !strings.Contains(err.Error(), "direct") {
		t.Errorf("New on a stream without direct gets: got %v, want ErrNotSetUp naming it", err)
	}
	_, err = natslog.New(ctx, js, natslog.WithStream("plain"), natslog.WithPrefix("other"))
	if !errors.Is(err, natslog.ErrNotSetUp) || !strings.Contains(err.Error(), "other.>") {
		t.Errorf("New with a prefix the stream does not take: got %v, want ErrNotSetUp naming it", err)
	}
	if err := natslog.Setup(ctx, js, natslog.WithStream("plain"), natslog.WithPrefix("p")); err != nil {
		t.Fatalf("Setup updating an existing stream: %v", err)
	}
	if l, err := natslog.New(ctx, js, natslog.WithStream("plain"), natslog.WithPrefix("p")); err != nil {
		t.Errorf("New after Setup fixed the stream: %v", err)
	} else {
		_ = l.Close()
	}
	// Setup is idempotent.
	for range 2 {
		if err := natslog.Setup(ctx, js); err != nil {
			t.Fatal(err)
		}
	}
}

// TestNoJetStream checks the errors against a server without JetStream.
func TestNoJetStream(t *testing.T) {
	srv, err := server.NewServer(&server.Options{Host: "127.0.0.1", Port: server.RANDOM_PORT, NoLog: true, NoSigs: true})
	if err != nil {
		t.Fatal(err)
	}
	srv.Start()
	t.Cleanup(func() { srv.Shutdown(); srv.WaitForShutdown() })
	if !srv.ReadyForConnections(10 * time.Second) {
		t.Fatal("server not ready")
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
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := natslog.Setup(ctx, js); !errors.Is(err, natslog.ErrNoJetStream) {
		t.Errorf("Setup: got %v, want ErrNoJetStream", err)
	}
	if _, err := natslog.New(ctx, js); !errors.Is(err, natslog.ErrNoJetStream) {
		t.Errorf("New: got %v, want ErrNoJetStream", err)
	}
	if _, err := natslog.NewSnapshotStore(ctx, js); !errors.Is(err, natslog.ErrNoJetStream) {
		t.Errorf("NewSnapshotStore: got %v, want ErrNoJetStream", err)
	}
}

// TestSnapshotStoreClosed checks the store after Close.
func TestSnapshotStoreClosed(t *testing.T) {
	_, js := setup(t)
	ctx := testCtx(t)
	s, err := natslog.NewSnapshotStore(ctx, js)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	snap := snapshotstore.Snapshot{EntityType: "T", EntityID: "x", Seq: 1}
	if err := s.Save(ctx, snap, 1); !errors.Is(err, snapshotstore.ErrClosed) {
		t.Errorf("Save after Close: %v", err)
	}
	if _, _, err := s.Load(ctx, "T", "x"); !errors.Is(err, snapshotstore.ErrClosed) {
		t.Errorf("Load after Close: %v", err)
	}
	if err := s.Close(); !errors.Is(err, snapshotstore.ErrClosed) {
		t.Errorf("second Close: %v", err)
	}
}
