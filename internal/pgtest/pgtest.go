package pgtest

import (
	"context"
	"crypto/rand"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/eventsourced-go/eventsourced/internal/pgdsn"
	"github.com/eventsourced-go/eventsourced/postgreslog"
)

// DSNVar names the environment variable with the test server's DSN.
const DSNVar = pgdsn.Var

// Schema returns a pool on the test server and a fresh schema, created,
// named prefix followed by random letters, both gone when t ends.
func Schema(t testing.TB, prefix string) (*pgxpool.Pool, string) {
	t.Helper()
	dsn := pgdsn.Require(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	pool, err := pgxpool.New(ctx, dsn)
	if err != nil {
		t.Fatalf("connect to the test server: %v", err)
	}
	t.Cleanup(pool.Close)
	schema := prefix + strings.ToLower(rand.Text()[:10])
	if _, err := pool.Exec(ctx, "CREATE SCHEMA "+pgx.Identifier{schema}.Sanitize()); err != nil {
		t.Fatalf("create schema %s: %v", schema, err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if _, err := pool.Exec(ctx, "DROP SCHEMA IF EXISTS "+pgx.Identifier{schema}.Sanitize()+" CASCADE"); err != nil {
			t.Errorf("drop schema %s: %v", schema, err)
		}
	})
	return pool, schema
}

// Log returns a postgreslog.Log with opts, its tables set up in a fresh
// schema (see [Schema]), closed when t ends, and its pool and schema.
func Log(t testing.TB, prefix string, opts ...postgreslog.Option) (*postgreslog.Log, *pgxpool.Pool, string) {
	t.Helper()
	pool, schema := Schema(t, prefix)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := postgreslog.Setup(ctx, pool, postgreslog.WithSchema(schema)); err != nil {
		t.Fatalf("postgreslog.Setup: %v", err)
	}
	l, err := postgreslog.New(pool, append([]postgreslog.Option{postgreslog.WithSchema(schema)}, opts...)...)
	if err != nil {
		t.Fatalf("postgreslog.New: %v", err)
	}
	t.Cleanup(func() { _ = l.Close() })
	return l, pool, schema
}
