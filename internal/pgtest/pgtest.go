package pgtest

import (
	"context"
	"crypto/rand"
	"net"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/eventsourced-go/eventsourced/internal/faultproxy"
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

// ThroughProxy returns a pool on the test server whose connections go
// through a faultproxy (to stall or drop them), and the proxy; configure,
// if not nil, adjusts the pool's config first. Both are closed when t
// ends, the pool first.
func ThroughProxy(t testing.TB, configure func(*pgxpool.Config)) (*pgxpool.Pool, *faultproxy.Proxy) {
	t.Helper()
	cfg, err := pgxpool.ParseConfig(pgdsn.Require(t))
	if err != nil {
		t.Fatalf("parse %s: %v", DSNVar, err)
	}
	proxy, err := faultproxy.New(net.JoinHostPort(cfg.ConnConfig.Host, strconv.Itoa(int(cfg.ConnConfig.Port))))
	if err != nil {
		t.Fatalf("proxy to the test server: %v", err)
	}
	t.Cleanup(func() { _ = proxy.Close() })
	cfg.ConnConfig.Host, cfg.ConnConfig.Port = "127.0.0.1", uint16(proxy.Port())
	if configure != nil {
		configure(cfg)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		t.Fatalf("pool through the proxy: %v", err)
	}
	t.Cleanup(pool.Close) // runs before the proxy's Close: last registered, first run
	return pool, proxy
}
