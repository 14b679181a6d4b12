package natsprojection_test

import (
	"context"
	"errors"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/eventsourced-go/eventsourced/eventlog"
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

func appendN(t *testing.T, log eventlog.Log, id string, n int) {
	t.Helper()
	for i := range n {
		if _, err := log.Append(context.Background(), "Tab", id, uint64(i), eventlog.Event{Name: "E", Data: []byte(strconv.Itoa(i))}); err != nil {
			t.Fatal(err)
		}
	}
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// readModel is a non-idempotent counter and an idempotent per-entity view.
type readModel struct {
	mu      sync.Mutex // guards the fields below
	applied int        // events applied, duplicates included
	lastSeq map[string]uint64
	total   int // events applied once, thanks to lastSeq
}

func (m *readModel) handle(_ context.Context, batch []eventlog.Record) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, rec := range batch {
		m.applied++
		if rec.Seq <= m.lastSeq[rec.EntityID] {
			continue
		}
		m.lastSeq[rec.EntityID] = rec.Seq
		m.total++
	}
	return nil
}

func (m *readModel) get() (applied, total int) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.applied, m.total
}

// TestKilledBetweenHandlerAndOffsetWrite documents at-least-once delivery:
// the batch in flight at the kill is delivered again after a restart; the
// idempotent view ends correct and the plain counter shows the duplicate.
func TestKilledBetweenHandlerAndOffsetWrite(t *testing.T) {
	js := jetStream(t)
	store := newStore(t, js)
	log := eventlog.NewMemory()
	appendN(t, log, "t1", 5)
	appendN(t, log, "t2", 4)
	model := &readModel{lastSeq: map[string]uint64{}}

	ctx, kill := context.WithCancel(t.Context())
	// The projection commits from one goroutine; the test reads these
	// after Wait. Batch sizes depend on how far the reader got, so the
	// model's count at the kill tells how many events the killed batch
	// applied without moving the offset.
	commits, appliedAtKill := 0, 0
	natsprojection.SetBeforeOffset(store, func(context.Context) error {
		commits++
		if commits == 2 {
			appliedAtKill, _ = model.get()
			kill()
			return errors.New("killed before the offset write")
		}
		return nil
	})
	p, err := projection.New(log, "Tab", "tabs", store, model.handle, projection.WithBatchSize(3))
	if err != nil {
		t.Fatal(err)
	}
	if err := p.Start(ctx); err != nil {
		t.Fatal(err)
	}
	if err := p.Wait(t.Context()); err != nil {
		t.Fatalf("Wait after the kill: %v", err)
	}
	off, err := store.Load(t.Context(), "tabs")
	if err != nil || off == 0 || int(off) >= appliedAtKill || commits != 2 {
		t.Fatalf("after the kill: offset %d, %v, %d applied, %d commits; want the first batch committed, the second applied", off, err, appliedAtKill, commits)
	}
	dup := appliedAtKill - int(off) // applied, but not covered by the offset

	natsprojection.SetBeforeOffset(store, nil)
	p2, err := projection.New(log, "Tab", "tabs", store, model.handle, projection.WithBatchSize(3))
	if err != nil {
		t.Fatal(err)
	}
	if err := p2.Start(t.Context()); err != nil {
		t.Fatal(err)
	}
	defer p2.Stop(context.Background())
	waitFor(t, "offset 9", func() bool { off, _ := store.Load(t.Context(), "tabs"); return off == 9 })
	applied, total := model.get()
	if total != 9 {
		t.Errorf("idempotent view counted %d events, want 9", total)
	}
	if applied != 9+dup {
		t.Errorf("non-idempotent counter %d, want %d = 9 events + the %d redelivered", applied, 9+dup, dup)
	}
}

func TestCommitIsConditional(t *testing.T) {
	js := jetStream(t)
	store := newStore(t, js, natsprojection.WithBucket("offsets"), natsprojection.WithMemoryStorage())
	ctx := t.Context()
	nop := func(context.Context) error { return nil }
	if err := store.Commit(ctx, "p", 0, 4, nop); err != nil {
		t.Fatal(err)
	}
	if err := store.Commit(ctx, "p", 0, 4, nop); !errors.Is(err, projection.ErrOffsetMoved) {
		t.Errorf("second first commit: %v, want ErrOffsetMoved", err)
	}
	if err := store.Commit(ctx, "p", 2, 6, nop); !errors.Is(err, projection.ErrOffsetMoved) {
		t.Errorf("Commit from a stale offset: %v, want ErrOffsetMoved", err)
	}
	boom := errors.New("boom")
	if err := store.Commit(ctx, "p", 4, 6, func(context.Context) error { return boom }); !errors.Is(err, boom) {
		t.Errorf("Commit with a failing handler: %v, want boom", err)
	}
	// Another runner moves the offset while the handler runs.
	other := newStore(t, js, natsprojection.WithBucket("offsets"))
	err := store.Commit(ctx, "p", 4, 6, func(ctx context.Context) error {
		return other.Commit(ctx, "p", 4, 5, nop)
	})
	if !errors.Is(err, projection.ErrOffsetMoved) {
		t.Errorf("Commit after a concurrent move: %v, want ErrOffsetMoved", err)
	}
	if off, err := store.Load(ctx, "p"); err != nil || off != 5 {
		t.Errorf("offset %d, %v; want 5 (the other runner's)", off, err)
	}
}

func TestResetAndNames(t *testing.T) {
	js := jetStream(t)
	store := newStore(t, js)
	ctx := t.Context()
	nop := func(context.Context) error { return nil }
	names := []string{"open-tabs", "chef.todo", "with space", "b64_x", "a..b", ".x", "ünï"}
	for i, name := range names {
		if err := store.Commit(ctx, name, 0, uint64(i+1), nop); err != nil {
			t.Fatalf("Commit %q: %v", name, err)
		}
	}
	for i, name := range names {
		if off, err := store.Load(ctx, name); err != nil || off != uint64(i+1) {
			t.Errorf("Load %q: %d, %v; want %d", name, off, err, i+1)
		}
	}
	cleared := false
	if err := store.Reset(ctx, "chef.todo", func(context.Context) error { cleared = true; return nil }); err != nil || !cleared {
		t.Fatalf("Reset: %v, cleared %t", err, cleared)
	}
	if off, _ := store.Load(ctx, "chef.todo"); off != 0 {
		t.Errorf("offset after Reset %d, want 0", off)
	}
	if err := store.Commit(ctx, "chef.todo", 0, 9, nop); err != nil {
		t.Errorf("Commit from 0 after Reset: %v", err)
	}
	// The offset goes to 0 before clear runs, so a failed clear can only
	// cause a rebuild over stale rows, never missing events.
	failing := errors.New("clear failed")
	err := store.Reset(ctx, "chef.todo", func(context.Context) error { return failing })
	if !errors.Is(err, failing) {
		t.Fatalf("Reset with failing clear: %v, want %v", err, failing)
	}
	if off, err := store.Load(ctx, "chef.todo"); err != nil || off != 0 {
		t.Errorf("offset after Reset with failing clear: %d, %v; want 0", off, err)
	}
	fresh := newStore(t, js)
	if off, err := fresh.Load(ctx, "chef.todo"); err != nil || off != 0 {
		t.Errorf("offset seen by another Store after Reset with failing clear: %d, %v; want 0", off, err)
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
