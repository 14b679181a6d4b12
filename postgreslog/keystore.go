package postgreslog

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/eventsourced-go/eventsourced/eventlog"
	"github.com/eventsourced-go/eventsourced/keystore"
)

// Compile-time checks that KeyStore provides the contract and its optional
// capability.
var (
	_ keystore.Store  = (*KeyStore)(nil)
	_ keystore.Closer = (*KeyStore)(nil)
)

// maxCreateAttempts bounds the statements one GetOrCreate runs. A second
// one is needed only when another transaction created the subject's key
// after this one's statement began (see [KeyStore.GetOrCreate]); a third
// only when that key was forgotten again before it could be read. The
// bound guards against a livelock of creates and forgets.
const maxCreateAttempts = 16

// KeyStore is a [keystore.Store] on PostgreSQL: one row per subject in the
// keys table (<prefix>keys unless [WithTables] names it), with the
// subject as primary key, the key's ID and material, and the time it was
// created. It also implements [keystore.Closer]. Create it with
// [NewKeyStore] and create its table with [KeyStore.Setup]; closing it
// does not close the pool.
//
// Forget deletes the subject's row. PostgreSQL keeps a deleted row's bytes
// in the table's pages until VACUUM reclaims them (autovacuum does so on
// its own schedule; run VACUUM on the table to hasten it), and in the
// write-ahead log and in backups until they expire: treat them as copies
// of the keys, and keep them no longer than a forgotten subject may stay
// readable.
type KeyStore struct {
	pool   *pgxpool.Pool
	n      names
	closed atomic.Bool

	// The statements, built once from the table name.
	get, getOrCreate, forget string
}

// NewKeyStore returns a KeyStore keeping keys in the table the options
// name, through pool. It takes the options that name the tables
// ([WithSchema], [WithTablePrefix], [WithTables]) and refuses the others.
// It does not touch the database: run [KeyStore.Setup] first.
func NewKeyStore(pool *pgxpool.Pool, opts ...Option) (*KeyStore, error) {
	cfg, err := newConfig(forKeys, opts)
	if err != nil {
		return nil, err
	}
	if pool == nil {
		return nil, fmt.Errorf("%w: NewKeyStore with a nil pool", ErrInvalidOption)
	}
	n := resolveNames(cfg)
	return &KeyStore{
		pool: pool,
		n:    n,
		get:  fmt.Sprintf(`SELECT key_id, material FROM %s WHERE subject = $1`, n.keys),
		// The insert's changes are invisible to the rest of the statement,
		// so the SELECT finds only a key that was there before it: the
		// statement returns the new key or the existing one, never both.
		getOrCreate: fmt.Sprintf(`WITH created AS (
	INSERT INTO %[1]s (subject, key_id, material) VALUES ($1, $2, $3)
	ON CONFLICT (subject) DO NOTHING
	RETURNING key_id, material
)
SELECT key_id, material FROM created
UNION ALL
SELECT key_id, material FROM %[1]s WHERE subject = $1`, n.keys),
		forget: fmt.Sprintf(`DELETE FROM %s WHERE subject = $1`, n.keys),
	}, nil
}

// Setup creates the keys table (and the schema, see [WithSchema]) if they
// do not exist. It is idempotent and safe to run from several processes at
// once: it takes the advisory lock that [Setup] takes for the same schema
// and prefix, so the two never race to create the schema. It returns by
// ctx's deadline.
func (s *KeyStore) Setup(ctx context.Context) (err error) {
	if err := s.ready(ctx); err != nil {
		return err
	}
	defer func() {
		if err != nil {
			err = s.wrap(ctx, err, "set up key table %s", s.n.keys)
		}
	}()
	tx, err := s.pool.Begin(ctx)
	if err != nil {
		return err
	}
	defer func() {
		if err != nil {
			rollback(tx)
		}
	}()
	stmts := []string{`SELECT pg_advisory_xact_lock($1)`}
	if s.n.schema != "" {
		stmts = append(stmts, `CREATE SCHEMA IF NOT EXISTS `+s.n.schema)
	}
	stmts = append(stmts, fmt.Sprintf(`CREATE TABLE IF NOT EXISTS %s (
	subject    text        PRIMARY KEY,
	key_id     text        NOT NULL,
	material   bytea       NOT NULL CHECK (octet_length(material) = %d),
	created_at timestamptz NOT NULL DEFAULT now()
)`, s.n.keys, keystore.KeySize))
	for i, stmt := range stmts {
		var args []any
		if i == 0 {
			args = []any{s.n.migrateLock}
		}
		if _, err := tx.Exec(ctx, stmt, args...); err != nil {
			return err
		}
	}
	return tx.Commit(ctx)
}

// Get implements [keystore.Store]: one SELECT.
func (s *KeyStore) Get(ctx context.Context, subject string) (keystore.Key, bool, error) {
	if err := keystore.ValidateSubject(subject); err != nil {
		return keystore.Key{}, false, err
	}
	if err := s.ready(ctx); err != nil {
		return keystore.Key{}, false, err
	}
	k, err := s.scan(s.pool.QueryRow(ctx, s.get, subject))
	switch {
	case errors.Is(err, pgx.ErrNoRows):
		return keystore.Key{}, false, nil
	case err != nil:
		return keystore.Key{}, false, s.wrap(ctx, err, "get key of subject %s", eventlog.FormatID(subject))
	}
	return k, true, nil
}

// GetOrCreate implements [keystore.Store]: one statement, which inserts a
// new key unless the subject has one and returns whichever it has.
//
// Under READ COMMITTED the statement sees the table as of its start. If
// another transaction inserts the subject's key after that and commits
// while this insert waits on it, the insert does nothing and the SELECT
// cannot see that key: the statement returns no row, and runs again, now
// seeing it.
func (s *KeyStore) GetOrCreate(ctx context.Context, subject string) (keystore.Key, error) {
	if err := keystore.ValidateSubject(subject); err != nil {
		return keystore.Key{}, err
	}
	if err := s.ready(ctx); err != nil {
		return keystore.Key{}, err
	}
	fresh, err := keystore.NewKey()
	if err != nil {
		return keystore.Key{}, fmt.Errorf("postgreslog: get or create key of subject %s: %w", eventlog.FormatID(subject), err)
	}
	// The new key is only a candidate: wipe it unless it was stored, in
	// which case the caller has its own copy from the row.
	defer clear(fresh.Material)
	for range maxCreateAttempts {
		k, err := s.scan(s.pool.QueryRow(ctx, s.getOrCreate, subject, fresh.ID, fresh.Material))
		switch {
		case errors.Is(err, pgx.ErrNoRows):
			continue
		case err != nil:
			return keystore.Key{}, s.wrap(ctx, err, "get or create key of subject %s", eventlog.FormatID(subject))
		}
		return k, nil
	}
	return keystore.Key{}, fmt.Errorf("postgreslog: get or create key of subject %s: gave up after %d statements, each racing a concurrent create or forget of the subject",
		eventlog.FormatID(subject), maxCreateAttempts)
}

// scan reads a key from row, checking its material: a key of the wrong
// size would encrypt with a weaker cipher or fail later, far from here.
func (s *KeyStore) scan(row pgx.Row) (keystore.Key, error) {
	var k keystore.Key
	if err := row.Scan(&k.ID, &k.Material); err != nil {
		return keystore.Key{}, err
	}
	if len(k.Material) != keystore.KeySize || k.ID == "" {
		n := len(k.Material)
		clear(k.Material)
		return keystore.Key{}, fmt.Errorf("the row in %s is malformed: key ID %q with %d bytes of material, want a non-empty ID and %d bytes",
			s.n.keys, k.ID, n, keystore.KeySize)
	}
	return k, nil
}

// Forget implements [keystore.Store]: one DELETE. See [KeyStore] for where
// the deleted key's bytes may remain.
func (s *KeyStore) Forget(ctx context.Context, subject string) error {
	if err := keystore.ValidateSubject(subject); err != nil {
		return err
	}
	if err := s.ready(ctx); err != nil {
		return err
	}
	if _, err := s.pool.Exec(ctx, s.forget, subject); err != nil {
		return s.wrap(ctx, err, "forget key of subject %s", eventlog.FormatID(subject))
	}
	return nil
}

// Close implements [keystore.Closer]. Afterwards the KeyStore's methods
// return [keystore.ErrClosed], Close included. It does not close the pool.
func (s *KeyStore) Close() error {
	if s.closed.Swap(true) {
		return keystore.ErrClosed
	}
	return nil
}

func (s *KeyStore) ready(ctx context.Context) error {
	if s.closed.Load() {
		return keystore.ErrClosed
	}
	return ctx.Err()
}

// wrap says what failed, and why: the caller's ctx ending, the store being
// closed, or the database's error translated (see translate).
func (s *KeyStore) wrap(ctx context.Context, err error, format string, args ...any) error {
	what := fmt.Sprintf(format, args...)
	if ctxErr := ctx.Err(); ctxErr != nil {
		return fmt.Errorf("postgreslog: %s: %w", what, ctxErr)
	}
	if s.closed.Load() {
		return fmt.Errorf("postgreslog: %s: %w", what, keystore.ErrClosed)
	}
	return fmt.Errorf("postgreslog: %s: %w", what, translate(err))
}
