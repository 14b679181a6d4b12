package postgreslog_test

import (
	"bytes"
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/eventsourced-go/eventsourced/internal/pgtest"
	"github.com/eventsourced-go/eventsourced/keystore"
	"github.com/eventsourced-go/eventsourced/keystore/keystoretest"
	"github.com/eventsourced-go/eventsourced/postgreslog"
)

// newKeyStore returns a KeyStore on pool with opts, closed when t ends.
func newKeyStore(t *testing.T, pool *pgxpool.Pool, opts ...postgreslog.Option) *postgreslog.KeyStore {
	t.Helper()
	s, err := postgreslog.NewKeyStore(pool, opts...)
	if err != nil {
		t.Fatalf("NewKeyStore: %v", err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s
}

// setupKeys runs s.Setup under a deadline and fails t on an error.
func setupKeys(t *testing.T, s *postgreslog.KeyStore) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := s.Setup(ctx); err != nil {
		t.Fatalf("KeyStore.Setup: %v", err)
	}
}

// TestKeyStoreConformance runs the keystore conformance suite with the two
// handles on two pools, as two processes would have them.
func TestKeyStoreConformance(t *testing.T) {
	poolA := postgreslog.NewTestPool(t, nil)
	poolB := postgreslog.NewTestPool(t, nil)
	schema := postgreslog.FreshSchema(t, poolA)
	setupKeys(t, newKeyStore(t, poolA, postgreslog.WithSchema(schema)))
	keystoretest.Run(t, func(t *testing.T) (a, b keystore.Store) {
		return newKeyStore(t, poolA, postgreslog.WithSchema(schema)), newKeyStore(t, poolB, postgreslog.WithSchema(schema))
	})
}

// TestKeyStoreForgetLeavesNoRow reads the whole table after Forget: no row
// holds the forgotten material, and the other subjects' rows are intact.
func TestKeyStoreForgetLeavesNoRow(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	pool := postgreslog.NewTestPool(t, nil)
	schema := postgreslog.FreshSchema(t, pool)
	s := newKeyStore(t, pool, postgreslog.WithSchema(schema), postgreslog.WithTablePrefix("app_"))
	setupKeys(t, s)
	keys := make(map[string]keystore.Key)
	for _, subject := range []string{"alice", "bob", "carol"} {
		k, err := s.GetOrCreate(ctx, subject)
		if err != nil {
			t.Fatalf("GetOrCreate(%s): %v", subject, err)
		}
		keys[subject] = k
	}
	if err := s.Forget(ctx, "bob"); err != nil {
		t.Fatalf("Forget(bob): %v", err)
	}

	rows, err := pool.Query(ctx, "SELECT subject, key_id, material FROM "+pgx.Identifier{schema, "app_keys"}.Sanitize()+" ORDER BY subject")
	if err != nil {
		t.Fatalf("read the table: %v", err)
	}
	var subject, id string
	var material []byte
	var got []string
	_, err = pgx.ForEachRow(rows, []any{&subject, &id, &material}, func() error {
		got = append(got, subject)
		if bytes.Equal(material, keys["bob"].Material) || id == keys["bob"].ID {
			t.Errorf("row of %s holds the forgotten key %s", subject, keys["bob"].ID)
		}
		if want := keys[subject]; id != want.ID || !bytes.Equal(material, want.Material) {
			t.Errorf("row of %s: key %s, want %s", subject, id, want.ID)
		}
		return nil
	})
	if err != nil {
		t.Fatalf("read the table: %v", err)
	}
	if want := []string{"alice", "carol"}; strings.Join(got, ",") != strings.Join(want, ",") {
		t.Errorf("rows of subjects %q, want %q", got, want)
	}
}

// TestKeyStoreSetupConcurrent runs Setup from several stores at once, on a
// schema that does not exist yet, together with the Log's Setup: all
// succeed, and Setup again is harmless.
func TestKeyStoreSetupConcurrent(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	pool := postgreslog.NewTestPool(t, nil)
	schema := postgreslog.FreshSchema(t, pool)
	var wg sync.WaitGroup
	errs := make([]error, 5)
	for i := range 4 {
		s := newKeyStore(t, pool, postgreslog.WithSchema(schema))
		wg.Go(func() { errs[i] = s.Setup(ctx) })
	}
	wg.Go(func() { errs[4] = postgreslog.Setup(ctx, pool, postgreslog.WithSchema(schema)) })
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Errorf("Setup %d: %v", i, err)
		}
	}
	s := newKeyStore(t, pool, postgreslog.WithSchema(schema))
	k, err := s.GetOrCreate(ctx, "subject")
	if err != nil {
		t.Fatalf("GetOrCreate: %v", err)
	}
	setupKeys(t, s)
	if got, found, err := s.Get(ctx, "subject"); err != nil || !found || got.ID != k.ID {
		t.Errorf("Get after a second Setup: key %q, found %v, err %v; want key %q", got.ID, found, err, k.ID)
	}
}

// TestKeyStoreNotSetUp: calls on a table that does not exist fail with
// ErrNotSetUp, naming the call and the subject.
func TestKeyStoreNotSetUp(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	pool := postgreslog.NewTestPool(t, nil)
	s := newKeyStore(t, pool, postgreslog.WithSchema(postgreslog.FreshSchema(t, pool)))
	_, _, err := s.Get(ctx, "user@example.com")
	if !errors.Is(err, postgreslog.ErrNotSetUp) {
		t.Errorf("Get: got %v, want an error matching ErrNotSetUp", err)
	}
	if err != nil && !strings.Contains(err.Error(), "get key of subject user@example.com") {
		t.Errorf("Get: %q does not name the call and the subject", err)
	}
	if _, err := s.GetOrCreate(ctx, "x"); !errors.Is(err, postgreslog.ErrNotSetUp) {
		t.Errorf("GetOrCreate: got %v, want an error matching ErrNotSetUp", err)
	}
	if err := s.Forget(ctx, "x"); !errors.Is(err, postgreslog.ErrNotSetUp) {
		t.Errorf("Forget: got %v, want an error matching ErrNotSetUp", err)
	}
}

func TestNewKeyStoreOptions(t *testing.T) {
	pool := postgreslog.NewTestPool(t, nil)
	for _, tc := range []struct {
		name string
		pool *pgxpool.Pool
		opts []postgreslog.Option
		want string // "" for success
	}{
		{"defaults", pool, nil, ""},
		{"names", pool, []postgreslog.Option{postgreslog.WithSchema("s"), postgreslog.WithTablePrefix("p_"), postgreslog.WithTables(postgreslog.Tables{Keys: "secrets"})}, ""},
		{"nil pool", nil, nil, "NewKeyStore with a nil pool"},
		{"option of New", pool, []postgreslog.Option{postgreslog.WithMaxBatch(8)}, "WithMaxBatch(8) is an option of New, not of NewKeyStore"},
		{"bad keys table", pool, []postgreslog.Option{postgreslog.WithTables(postgreslog.Tables{Keys: "my keys"})}, `character ' ' at byte 2`},
		{"keys table named like meta", pool, []postgreslog.Option{postgreslog.WithTables(postgreslog.Tables{Keys: "eventsourced_meta"})}, "the meta and keys tables are both named"},
	} {
		s, err := postgreslog.NewKeyStore(tc.pool, tc.opts...)
		switch {
		case tc.want == "" && err != nil:
			t.Errorf("%s: %v", tc.name, err)
		case tc.want == "":
			_ = s.Close()
		case !errors.Is(err, postgreslog.ErrInvalidOption) || !strings.Contains(err.Error(), tc.want):
			t.Errorf("%s: got %v, want ErrInvalidOption saying %q", tc.name, err, tc.want)
		}
	}
}

// TestKeyStoreUnavailable: with the server out of reach, calls fail with
// ErrUnavailable by their deadline, naming the subject.
func TestKeyStoreUnavailable(t *testing.T) {
	direct := postgreslog.NewTestPool(t, nil)
	schema := postgreslog.FreshSchema(t, direct)
	setupKeys(t, newKeyStore(t, direct, postgreslog.WithSchema(schema)))

	pool, proxy := pgtest.ThroughProxy(t, func(c *pgxpool.Config) { c.ConnConfig.ConnectTimeout = 2 * time.Second })
	s := newKeyStore(t, pool, postgreslog.WithSchema(schema))
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := s.GetOrCreate(ctx, "alice"); err != nil {
		t.Fatalf("GetOrCreate through the proxy: %v", err)
	}
	_ = proxy.Close() // drops the connections and stops listening

	start := time.Now()
	for _, call := range []struct {
		name string
		fn   func() error
	}{
		{"Get", func() error { _, _, err := s.Get(ctx, "alice"); return err }},
		{"GetOrCreate", func() error { _, err := s.GetOrCreate(ctx, "alice"); return err }},
		{"Forget", func() error { return s.Forget(ctx, "alice") }},
	} {
		err := call.fn()
		if !errors.Is(err, postgreslog.ErrUnavailable) {
			t.Errorf("%s with the server out of reach: got %v, want an error matching ErrUnavailable", call.name, err)
			continue
		}
		if !strings.Contains(err.Error(), "subject alice") {
			t.Errorf("%s: %q does not name the subject", call.name, err)
		}
	}
	if d := time.Since(start); d > 15*time.Second {
		t.Errorf("the failing calls took %v", d)
	}
}

// TestKeyStoreCreateWaitsForConcurrentInsert makes the race GetOrCreate
// runs its statement again for: another transaction inserts the subject's
// key, GetOrCreate's insert waits on it, and the other transaction commits
// after GetOrCreate's statement took its snapshot. GetOrCreate must return
// the committed key, not fail and not return a key of its own.
func TestKeyStoreCreateWaitsForConcurrentInsert(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	pool := postgreslog.NewTestPool(t, nil)
	schema := postgreslog.FreshSchema(t, pool)
	s := newKeyStore(t, pool, postgreslog.WithSchema(schema))
	setupKeys(t, s)

	other, err := keystore.NewKey()
	if err != nil {
		t.Fatal(err)
	}
	tx, err := pool.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = tx.Rollback(context.Background()) }()
	if _, err := tx.Exec(ctx, "INSERT INTO "+pgx.Identifier{schema, "eventsourced_keys"}.Sanitize()+" (subject, key_id, material) VALUES ($1, $2, $3)",
		"contended", other.ID, other.Material); err != nil {
		t.Fatalf("insert: %v", err)
	}

	type result struct {
		k   keystore.Key
		err error
	}
	done := make(chan result, 1)
	go func() {
		k, err := s.GetOrCreate(ctx, "contended")
		done <- result{k, err}
	}()
	// Wait until GetOrCreate's insert waits on the uncommitted row.
	for {
		var waiting int
		if err := pool.QueryRow(ctx, `SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' AND query LIKE '%WITH created AS%' AND query LIKE '%'||$1||'%'`, schema).Scan(&waiting); err != nil {
			t.Fatalf("pg_stat_activity: %v", err)
		}
		if waiting > 0 {
			break
		}
		select {
		case r := <-done:
			t.Fatalf("GetOrCreate returned key %q, err %v, before the other transaction committed", r.k.ID, r.err)
		case <-time.After(10 * time.Millisecond):
		}
	}
	if err := tx.Commit(ctx); err != nil {
		t.Fatalf("commit: %v", err)
	}
	r := <-done
	if r.err != nil || r.k.ID != other.ID || !bytes.Equal(r.k.Material, other.Material) {
		t.Errorf("GetOrCreate: key %q, err %v; want the committed key %q", r.k.ID, r.err, other.ID)
	}
}
