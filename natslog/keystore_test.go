package natslog_test

import (
	"bytes"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/eventsourced-go/eventsourced/internal/natstest"
	"github.com/eventsourced-go/eventsourced/keystore"
	"github.com/eventsourced-go/eventsourced/keystore/keystoretest"
	"github.com/eventsourced-go/eventsourced/natslog"
)

// newKeyStore returns a KeyStore on js with opts, closed when t ends.
func newKeyStore(t testing.TB, js jetstream.JetStream, opts ...natslog.Option) *natslog.KeyStore {
	t.Helper()
	s, err := natslog.NewKeyStore(js, opts...)
	if err != nil {
		t.Fatalf("NewKeyStore: %v", err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s
}

// keyServer starts a server and sets up the key bucket, returning the
// server and a JetStream context on a connection of its own.
func keyServer(t *testing.T) (*natslog.EmbeddedServer, jetstream.JetStream) {
	t.Helper()
	srv := natstest.Server(t)
	js := natstest.Connect(t, srv)
	if err := newKeyStore(t, js).Setup(testCtx(t)); err != nil {
		t.Fatalf("KeyStore.Setup: %v", err)
	}
	return srv, js
}

// TestKeyStoreConformance runs the keystore conformance suite with the two
// handles on two connections, as two processes would have them.
func TestKeyStoreConformance(t *testing.T) {
	srv, jsA := keyServer(t)
	jsB := natstest.Connect(t, srv)
	keystoretest.Run(t, func(t *testing.T) (a, b keystore.Store) {
		return newKeyStore(t, jsA), newKeyStore(t, jsB)
	})
}

// TestKeyStoreForgetLeavesNoCopy reads every message of the bucket's stream
// after Forget, and every file of the server's storage: none holds the
// forgotten material, while the other keys are intact.
func TestKeyStoreForgetLeavesNoCopy(t *testing.T) {
	ctx := testCtx(t)
	srv, err := natslog.StartEmbedded(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv.Shutdown)
	js := natstest.Connect(t, srv)
	s := newKeyStore(t, js, natslog.WithKeyBucket("shred"))
	if err := s.Setup(ctx); err != nil {
		t.Fatal(err)
	}
	keys := make(map[string]keystore.Key)
	for _, subject := range []string{"alice@example.com", "bob@example.com", "carol@example.com"} {
		k, err := s.GetOrCreate(ctx, subject)
		if err != nil {
			t.Fatalf("GetOrCreate(%s): %v", subject, err)
		}
		keys[subject] = k
	}
	forgotten := keys["bob@example.com"]
	if err := s.Forget(ctx, "bob@example.com"); err != nil {
		t.Fatalf("Forget: %v", err)
	}

	stream, err := js.Stream(ctx, "KV_shred")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := stream.GetLastMsgForSubject(ctx, "$KV.shred.bob=40example=2Ecom"); !errors.Is(err, jetstream.ErrMsgNotFound) {
		t.Errorf("last message of the forgotten subject: got %v, want ErrMsgNotFound", err)
	}
	info, err := stream.Info(ctx, jetstream.WithSubjectFilter(">"))
	if err != nil {
		t.Fatal(err)
	}
	if info.State.Msgs != 2 || len(info.State.Subjects) != 2 {
		t.Errorf("the stream holds %d messages on subjects %v, want 2, of alice and carol", info.State.Msgs, info.State.Subjects)
	}
	read := 0
	for seq := info.State.FirstSeq; seq <= info.State.LastSeq; seq++ {
		m, err := stream.GetMsg(ctx, seq)
		if errors.Is(err, jetstream.ErrMsgNotFound) {
			continue
		}
		if err != nil {
			t.Fatalf("get message %d: %v", seq, err)
		}
		read++
		if bytes.Contains(m.Data, forgotten.Material) || bytes.Contains(m.Data, []byte(forgotten.ID)) {
			t.Errorf("message %d on %s holds the forgotten key", seq, m.Subject)
		}
	}
	if read != 2 {
		t.Errorf("read %d messages, want 2", read)
	}
	for _, subject := range []string{"alice@example.com", "carol@example.com"} {
		if k, found, err := s.Get(ctx, subject); err != nil || !found || k.ID != keys[subject].ID || !bytes.Equal(k.Material, keys[subject].Material) {
			t.Errorf("Get(%s): key %q, found %v, err %v; want key %q", subject, k.ID, found, err, keys[subject].ID)
		}
	}

	// The secure delete overwrote the message where the server stores it.
	// Stop the server so that everything it holds in memory is written.
	srv.Shutdown()
	files, kept := 0, 0
	err = filepath.WalkDir(srv.Dir(), func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		data, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		files++
		if bytes.Contains(data, forgotten.Material) {
			t.Errorf("%s holds the forgotten material", path)
		}
		if bytes.Contains(data, keys["alice@example.com"].Material) {
			kept++
		}
		return nil
	})
	// Alice's key is found on disk: the scan sees keys where they are.
	if err != nil || files == 0 || kept == 0 {
		t.Errorf("scanned %d files of the server's storage, %d of them with a kept key: %v", files, kept, err)
	}
}

// TestKeyStoreRefusesDefaultBucket: a bucket made with KV defaults (more
// than one value per key, deletes denied, direct gets) is refused with
// ErrNotSetUp, since Forget could not erase a key from it, and Setup
// cannot fix it: the server does not let a stream allow deletes.
func TestKeyStoreRefusesDefaultBucket(t *testing.T) {
	ctx := testCtx(t)
	js := natstest.Connect(t, natstest.Server(t))
	if _, err := js.CreateKeyValue(ctx, jetstream.KeyValueConfig{Bucket: natslog.DefaultKeyBucket, History: 5}); err != nil {
		t.Fatal(err)
	}
	s := newKeyStore(t, js)
	_, _, err := s.Get(ctx, "alice")
	if !errors.Is(err, natslog.ErrNotSetUp) || !strings.Contains(err.Error(), "keeps 5 values per key") {
		t.Errorf("Get on a default bucket: got %v, want ErrNotSetUp saying it keeps 5 values per key", err)
	}
	err = s.Setup(ctx)
	if !errors.Is(err, natslog.ErrNotSetUp) || !strings.Contains(err.Error(), "denies deleting messages") {
		t.Errorf("Setup of a default bucket: got %v, want ErrNotSetUp saying it denies deletes", err)
	}
}

// TestKeyStoreForeignValues: values written around the KeyStore, with KV
// tools, are read as far as they make sense: a value in another format is
// an error naming the subject, a delete marker means no key.
func TestKeyStoreForeignValues(t *testing.T) {
	_, js := keyServer(t)
	ctx := testCtx(t)
	s := newKeyStore(t, js)
	kv, err := js.KeyValue(ctx, natslog.DefaultKeyBucket)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := kv.Put(ctx, "mallory", []byte{2, 1, 'x'}); err != nil {
		t.Fatal(err)
	}
	_, _, err = s.Get(ctx, "mallory")
	if err == nil || !strings.Contains(err.Error(), "get key of subject mallory") || !strings.Contains(err.Error(), "format version 2, want 1") {
		t.Errorf("Get of a value in another format: got %v, want an error naming the subject and the version", err)
	}
	k, err := s.GetOrCreate(ctx, "alice")
	if err != nil {
		t.Fatal(err)
	}
	if err := kv.Delete(ctx, "alice"); err != nil {
		t.Fatal(err)
	}
	if _, found, err := s.Get(ctx, "alice"); err != nil || found {
		t.Errorf("Get after a KV delete: found %v, err %v; want not found", found, err)
	}
	again, err := s.GetOrCreate(ctx, "alice")
	if err != nil || again.ID == k.ID {
		t.Errorf("GetOrCreate after a KV delete: key %q, err %v; want a new key", again.ID, err)
	}
	if got, found, err := newKeyStore(t, js).Get(ctx, "alice"); err != nil || !found || got.ID != again.ID {
		t.Errorf("Get from another store: key %q, found %v, err %v; want %q", got.ID, found, err, again.ID)
	}
	if err := s.Forget(ctx, "alice"); err != nil {
		t.Fatal(err)
	}
	if _, found, err := s.Get(ctx, "alice"); err != nil || found {
		t.Errorf("Get after Forget: found %v, err %v; want not found", found, err)
	}
}

func TestKeyStoreNotSetUp(t *testing.T) {
	ctx := testCtx(t)
	js := natstest.Connect(t, natstest.Server(t))
	s := newKeyStore(t, js)
	for what, f := range map[string]func() error{
		"Get":         func() error { _, _, err := s.Get(ctx, "alice"); return err },
		"GetOrCreate": func() error { _, err := s.GetOrCreate(ctx, "alice"); return err },
		"Forget":      func() error { return s.Forget(ctx, "alice") },
	} {
		err := f()
		if !errors.Is(err, natslog.ErrNotSetUp) || !strings.Contains(err.Error(), `key bucket "eventsourced_keys" does not exist`) || !strings.Contains(err.Error(), "subject alice") {
			t.Errorf("%s without Setup: got %v, want ErrNotSetUp naming the bucket and the subject", what, err)
		}
	}
}

func TestNewKeyStoreOptions(t *testing.T) {
	js := natstest.Connect(t, natstest.Server(t))
	for _, tc := range []struct {
		name string
		js   jetstream.JetStream
		opts []natslog.Option
		want string // "" for success
	}{
		{"defaults", js, nil, ""},
		{"all of its options", js, []natslog.Option{natslog.WithKeyBucket("k"), natslog.WithReplicas(1), natslog.WithStorage(jetstream.MemoryStorage), natslog.WithTimeout(time.Second)}, ""},
		{"nil JetStream", nil, nil, "nil JetStream context"},
		{"snapshot bucket option", js, []natslog.Option{natslog.WithBucket("b")}, `WithBucket("b") is an option of Setup and NewSnapshotStore, not of NewKeyStore`},
		{"bad bucket name", js, []natslog.Option{natslog.WithKeyBucket("my.keys")}, `WithKeyBucket("my.keys")`},
	} {
		s, err := natslog.NewKeyStore(tc.js, tc.opts...)
		switch {
		case tc.want == "" && err != nil:
			t.Errorf("%s: %v", tc.name, err)
		case tc.want == "":
			_ = s.Close()
		case !errors.Is(err, natslog.ErrInvalidOption) || !strings.Contains(err.Error(), tc.want):
			t.Errorf("%s: got %v, want ErrInvalidOption saying %q", tc.name, err, tc.want)
		}
	}
	cfg, err := natslog.KeyStreamConfig(natslog.WithKeyBucket("k"), natslog.WithReplicas(3))
	if err != nil || cfg.Name != "KV_k" || cfg.Replicas != 3 || cfg.MaxMsgsPerSubject != 1 || cfg.DenyDelete || cfg.AllowDirect {
		t.Errorf("KeyStreamConfig: %+v, %v", cfg, err)
	}
}

// TestKeyStoreServerDown: with the server stopped, calls fail at once with
// ErrUnavailable, naming the subject.
func TestKeyStoreServerDown(t *testing.T) {
	srv, js := keyServer(t)
	ctx := testCtx(t)
	s := newKeyStore(t, js)
	if _, err := s.GetOrCreate(ctx, "alice"); err != nil {
		t.Fatal(err)
	}
	srv.Shutdown()
	deadline := time.Now().Add(10 * time.Second)
	for js.Conn().IsConnected() && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	for what, f := range map[string]func() error{
		"Get":         func() error { _, _, err := s.Get(ctx, "alice"); return err },
		"GetOrCreate": func() error { _, err := s.GetOrCreate(ctx, "bob"); return err },
		"Forget":      func() error { return s.Forget(ctx, "alice") },
	} {
		start := time.Now()
		err := f()
		if d := time.Since(start); d > time.Second {
			t.Errorf("%s with the server stopped took %v", what, d)
		}
		if !errors.Is(err, natslog.ErrUnavailable) || !strings.Contains(err.Error(), "key of subject") {
			t.Errorf("%s with the server stopped: got %v, want ErrUnavailable naming the subject", what, err)
		}
	}
}
