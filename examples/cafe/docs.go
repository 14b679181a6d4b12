package main

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/eventsourced-go/eventsourced/projection/pgprojection"
)

// memDocs is a docStore in memory, for -store memory, where the offsets are
// in memory too and both start empty.
type memDocs struct {
	// mu guards docs.
	mu   sync.Mutex
	docs map[string]map[string][]byte // kind -> id -> document
}

func newMemDocs() *memDocs { return &memDocs{docs: map[string]map[string][]byte{}} }

func (m *memDocs) get(_ context.Context, kind, id string) ([]byte, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.docs[kind][id], nil
}

func (m *memDocs) put(_ context.Context, kind, id string, data []byte) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.docs[kind] == nil {
		m.docs[kind] = map[string][]byte{}
	}
	m.docs[kind][id] = slices.Clone(data)
	return nil
}

func (m *memDocs) list(_ context.Context, kind string, f func([]byte) error) error {
	m.mu.Lock()
	all := make([][]byte, 0, len(m.docs[kind]))
	for _, d := range m.docs[kind] {
		all = append(all, d)
	}
	m.mu.Unlock()
	for _, d := range all {
		if err := f(d); err != nil {
			return err
		}
	}
	return nil
}

func (m *memDocs) clear(_ context.Context, kind string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	delete(m.docs, kind)
	return nil
}

// pgDocs is a docStore in a PostgreSQL table. Writes go through the
// projection commit's transaction (pgprojection.TxFrom), so a document and
// the offset that covers it commit together: exactly once.
type pgDocs struct {
	pool *pgxpool.Pool
}

const pgDocsTable = "cafe_views"

func (p pgDocs) migrate(ctx context.Context) error {
	_, err := p.pool.Exec(ctx, `CREATE TABLE IF NOT EXISTS `+pgDocsTable+` (
	kind text  NOT NULL,
	id   text  NOT NULL,
	doc  jsonb NOT NULL,
	PRIMARY KEY (kind, id)
)`)
	return err
}

func (p pgDocs) tx(ctx context.Context) (pgx.Tx, error) {
	tx, ok := pgprojection.TxFrom(ctx)
	if !ok {
		return nil, pgprojection.ErrNoTx
	}
	return tx, nil
}

func (p pgDocs) get(ctx context.Context, kind, id string) ([]byte, error) {
	tx, err := p.tx(ctx)
	if err != nil {
		return nil, err
	}
	var data []byte
	err = tx.QueryRow(ctx, `SELECT doc FROM `+pgDocsTable+` WHERE kind = $1 AND id = $2`, kind, id).Scan(&data)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, nil
	}
	return data, err
}

func (p pgDocs) put(ctx context.Context, kind, id string, data []byte) error {
	tx, err := p.tx(ctx)
	if err != nil {
		return err
	}
	_, err = tx.Exec(ctx, `INSERT INTO `+pgDocsTable+` (kind, id, doc) VALUES ($1, $2, $3)
ON CONFLICT (kind, id) DO UPDATE SET doc = EXCLUDED.doc`, kind, id, string(data))
	return err
}

func (p pgDocs) list(ctx context.Context, kind string, f func([]byte) error) error {
	rows, err := p.pool.Query(ctx, `SELECT doc FROM `+pgDocsTable+` WHERE kind = $1`, kind)
	if err != nil {
		return err
	}
	var data []byte
	_, err = pgx.ForEachRow(rows, []any{&data}, func() error { return f(data) })
	return err
}

func (p pgDocs) clear(ctx context.Context, kind string) error {
	tx, err := p.tx(ctx)
	if err != nil {
		return err
	}
	_, err = tx.Exec(ctx, `DELETE FROM `+pgDocsTable+` WHERE kind = $1`, kind)
	return err
}

// natsDocs is a docStore in NATS KV buckets, one per kind. The offsets are
// in another bucket (natsprojection), so a crash between a document write
// and the offset update delivers events again: the Seq in each document
// makes that harmless.
type natsDocs struct {
	// mu guards kvs.
	mu  sync.Mutex
	js  jetstream.JetStream
	kvs map[string]jetstream.KeyValue
}

func newNATSDocs(js jetstream.JetStream) *natsDocs {
	return &natsDocs{js: js, kvs: map[string]jetstream.KeyValue{}}
}

// bucket returns the bucket of kind, creating it if needed.
func (n *natsDocs) bucket(ctx context.Context, kind string) (jetstream.KeyValue, error) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if kv := n.kvs[kind]; kv != nil {
		return kv, nil
	}
	kv, err := n.js.CreateOrUpdateKeyValue(ctx, jetstream.KeyValueConfig{Bucket: "cafe_" + kvName(kind), History: 1})
	if err != nil {
		return nil, fmt.Errorf("cafe: read model bucket %s: %w", kind, err)
	}
	n.kvs[kind] = kv
	return kv, nil
}

// kvName makes a kind a valid bucket name: '-' is fine, anything else
// outside letters, digits and '_' becomes '_'.
func kvName(kind string) string {
	b := []byte(kind)
	for i, c := range b {
		if !(c == '-' || c == '_' || 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9') {
			b[i] = '_'
		}
	}
	return string(b)
}

func (n *natsDocs) get(ctx context.Context, kind, id string) ([]byte, error) {
	kv, err := n.bucket(ctx, kind)
	if err != nil {
		return nil, err
	}
	e, err := kv.Get(ctx, id)
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	return e.Value(), nil
}

func (n *natsDocs) put(ctx context.Context, kind, id string, data []byte) error {
	kv, err := n.bucket(ctx, kind)
	if err != nil {
		return err
	}
	_, err = kv.Put(ctx, id, data)
	return err
}

func (n *natsDocs) list(ctx context.Context, kind string, f func([]byte) error) error {
	kv, err := n.bucket(ctx, kind)
	if err != nil {
		return err
	}
	keys, err := kv.ListKeys(ctx)
	if err != nil {
		return err
	}
	defer keys.Stop()
	var ids []string
	for k := range keys.Keys() {
		ids = append(ids, k)
	}
	for _, id := range ids {
		e, err := kv.Get(ctx, id)
		if errors.Is(err, jetstream.ErrKeyNotFound) {
			continue // deleted meanwhile
		}
		if err != nil {
			return err
		}
		if err := f(e.Value()); err != nil {
			return err
		}
	}
	return nil
}

func (n *natsDocs) clear(ctx context.Context, kind string) error {
	kv, err := n.bucket(ctx, kind)
	if err != nil {
		return err
	}
	keys, err := kv.ListKeys(ctx)
	if err != nil {
		return err
	}
	defer keys.Stop()
	var ids []string
	for k := range keys.Keys() {
		ids = append(ids, k)
	}
	for _, id := range ids {
		if err := kv.Purge(ctx, id); err != nil {
			return err
		}
	}
	return nil
}
