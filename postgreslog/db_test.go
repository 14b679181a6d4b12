package postgreslog

// This file provides the database of the tests, internal and external: it
// is in package postgreslog so the external tests can use its exported
// helpers and the internal tests can reach unexported state.

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/eventsourced-go/eventsourced/internal/freeport"
	"github.com/eventsourced-go/eventsourced/internal/pgdsn"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// DSNVar names the environment variable with the test database;
// scripts/test.sh (make test) provisions a server and sets it.
const DSNVar = pgdsn.Var

// RequireDSN returns the test database's DSN. Without one the test skips,
// unless CI=true, when it fails: CI must not pass by skipping.
func RequireDSN(t testing.TB) string {
	t.Helper()
	return pgdsn.Require(t)
}

// NewTestPool returns a pool on the test database, closed when t ends.
// configure, if not nil, adjusts its config first.
func NewTestPool(t testing.TB, configure func(*pgxpool.Config)) *pgxpool.Pool {
	t.Helper()
	cfg, err := pgxpool.ParseConfig(RequireDSN(t))
	if err != nil {
		t.Fatalf("parse %s: %v", DSNVar, err)
	}
	cfg.MaxConns = 16
	cfg.ConnConfig.ConnectTimeout = 5 * time.Second
	if configure != nil {
		configure(cfg)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		t.Fatalf("pgxpool.NewWithConfig: %v", err)
	}
	if err := pool.Ping(ctx); err != nil {
		pool.Close()
		t.Fatalf("ping the test database: %v", err)
	}
	t.Cleanup(pool.Close)
	return pool
}

// FreshSchema returns the name of a fresh schema for t (it does not create
// it; Migrate does), dropped with everything in it when t ends, so tests can
// run again and again on one database.
func FreshSchema(t testing.TB, pool *pgxpool.Pool) string {
	t.Helper()
	b := make([]byte, 6)
	_, _ = rand.Read(b)
	schema := "postgreslog_test_" + hex.EncodeToString(b)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		conn, err := pgx.Connect(ctx, RequireDSN(t))
		if err != nil {
			t.Logf("drop schema %s: %v", schema, err)
			return
		}
		defer conn.Close(ctx)
		if _, err := conn.Exec(ctx, "DROP SCHEMA IF EXISTS "+pgx.Identifier{schema}.Sanitize()+" CASCADE"); err != nil {
			t.Logf("drop schema %s: %v", schema, err)
		}
	})
	return schema
}

// NewTestLog returns a migrated Log in a fresh schema on pool, with opts
// after the schema option, closed when t ends.
func NewTestLog(t testing.TB, pool *pgxpool.Pool, opts ...Option) *Log {
	t.Helper()
	schema := FreshSchema(t, pool)
	opts = append([]Option{WithSchema(schema)}, opts...)
	l := OpenTestLog(t, pool, opts...)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := Setup(ctx, pool, SetupOptions(opts)...); err != nil {
		t.Fatalf("Setup: %v", err)
	}
	return l
}

// SetupOptions returns the options of opts that Setup takes: those naming
// the tables.
func SetupOptions(opts []Option) []Option {
	var out []Option
	for _, o := range opts {
		if o.uses&forSetup != 0 {
			out = append(out, o)
		}
	}
	return out
}

// OpenTestLog returns a Log with opts, closed when t ends, without setting
// up the tables.
func OpenTestLog(t testing.TB, pool *pgxpool.Pool, opts ...Option) *Log {
	t.Helper()
	l, err := New(pool, opts...)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	t.Cleanup(func() { _ = l.Close() })
	return l
}

// WithCopyThreshold sets the round size from which commits use COPY, so
// tests can run both ways of committing: 1 always uses COPY, a large value
// never does.
func WithCopyThreshold(n int) Option {
	return option(fmt.Sprintf("WithCopyThreshold(%d)", n), forLog, nil, func(c *config) { c.copyThreshold = n })
}

// CommitPaths are the two ways of committing a round, as options.
var CommitPaths = []struct {
	Name string
	Opt  Option
}{
	{"insert", WithCopyThreshold(1 << 30)},
	{"copy", WithCopyThreshold(1)},
}

// ListenerPID returns the server process id of l's listener connection, 0
// while it has none.
func ListenerPID(l *Log) uint32 { return l.listenerPID.Load() }

// QueueLen returns how many appends wait for a group-commit worker.
func QueueLen(l *Log) int { return l.queue.len() }

// Schema returns the schema option of l, "" if none.
func Schema(l *Log) string { return l.cfg.schema }

// MetaTable returns the quoted name of l's meta table.
func MetaTable(l *Log) string { return l.n.meta }

// EventsTable returns the quoted name of l's events table.
func EventsTable(l *Log) string { return l.n.events }

// StreamsTable returns l's streams table, quoted.
func StreamsTable(l *Log) string { return l.n.streams }

// PositionIndex returns the unquoted name of the events table's index on
// position.
func PositionIndex(l *Log) string { return l.n.posIndex }

// HoldPositions takes, in a transaction of its own, the lock that deletes
// take (see lockPositions), so that every round waits to take Positions;
// appends queue up behind it. The returned function releases the lock.
func HoldPositions(t testing.TB, pool *pgxpool.Pool, l *Log) (release func()) {
	t.Helper()
	ctx := context.Background()
	tx, err := pool.Begin(ctx)
	if err != nil {
		t.Fatalf("begin: %v", err)
	}
	if _, err := tx.Exec(ctx, l.sql.lockPositions); err != nil {
		_ = tx.Rollback(ctx)
		t.Fatalf("take the positions lock: %v", err)
	}
	done := false
	release = func() {
		if !done {
			done = true
			_ = tx.Rollback(ctx)
		}
	}
	t.Cleanup(release)
	return release
}

// ServerControl is a PostgreSQL server of one fault test: its own
// throwaway cluster, so that crashing it cannot break the tests of other
// packages that go test runs at the same time against the shared server.
type ServerControl struct {
	// DSN reaches the server's postgres database.
	DSN string

	bin, dir, data, logFile, user string
}

// StartPrivateServer initdbs and starts a cluster for t in a temporary
// directory, on a free loopback port, with the server programs in
// EVENTSOURCED_PG_BIN (as scripts/test.sh exports them), as the OS user
// EVENTSOURCED_PG_USER (default postgres when root: the server refuses to
// run as root). It stops the server and removes the directory when t ends.
// Without the programs the test skips, or fails under CI=true.
func StartPrivateServer(t testing.TB) *ServerControl {
	t.Helper()
	RequireDSN(t)
	bin := os.Getenv("EVENTSOURCED_PG_BIN")
	if bin == "" && os.Getenv("EVENTSOURCED_PG_CTL") != "" {
		bin = filepath.Dir(os.Getenv("EVENTSOURCED_PG_CTL"))
	}
	if _, err := os.Stat(filepath.Join(bin, "initdb")); bin == "" || err != nil {
		msg := "EVENTSOURCED_PG_BIN does not hold initdb and pg_ctl: cannot run a server to crash (make test sets it)"
		if os.Getenv("CI") == "true" {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}
	sc := &ServerControl{bin: bin, user: os.Getenv("EVENTSOURCED_PG_USER")}
	if sc.user == "" && os.Geteuid() == 0 {
		sc.user = "postgres"
	}
	dir, err := os.MkdirTemp("", "postgreslog-fault-")
	if err != nil {
		t.Fatal(err)
	}
	sc.dir, sc.data, sc.logFile = dir, filepath.Join(dir, "data"), filepath.Join(dir, "postgres.log")
	t.Cleanup(func() { _ = os.RemoveAll(dir) })
	if os.Geteuid() == 0 {
		u, err := user.Lookup(sc.user)
		if err != nil {
			t.Fatalf("OS user %s to run the server: %v", sc.user, err)
		}
		uid, _ := strconv.Atoi(u.Uid)
		gid, _ := strconv.Atoi(u.Gid)
		if err := os.Chown(dir, uid, gid); err != nil {
			t.Fatal(err)
		}
	}
	sc.run(t, "initdb", "-D", sc.data, "-U", "postgres", "--auth=trust", "--encoding=UTF8", "--locale=C", "--no-sync")
	port := freeport.Port(t)
	conf := fmt.Sprintf("\nlisten_addresses = '127.0.0.1'\nport = %d\nunix_socket_directories = '%s'\nmax_connections = 100\nfsync = off\n", port, dir)
	f, err := os.OpenFile(filepath.Join(sc.data, "postgresql.conf"), os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	_, err = f.WriteString(conf)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		t.Fatal(err)
	}
	sc.Start(t)
	t.Cleanup(func() {
		// Whatever the test did, the server goes.
		_ = sc.command("pg_ctl", "-D", sc.data, "-m", "immediate", "-w", "stop").Run()
	})
	sc.DSN = fmt.Sprintf("postgres://postgres@127.0.0.1:%d/postgres?sslmode=disable", port)
	return sc
}

// Stop crashes the server: pg_ctl stop -m immediate, no shutdown checkpoint.
func (sc *ServerControl) Stop(t testing.TB) {
	t.Helper()
	sc.run(t, "pg_ctl", "-D", sc.data, "-m", "immediate", "-w", "stop")
}

// Start starts the server and returns once it accepts connections.
func (sc *ServerControl) Start(t testing.TB) {
	t.Helper()
	sc.run(t, "pg_ctl", "-D", sc.data, "-l", sc.logFile, "-w", "-t", "60", "start")
}

func (sc *ServerControl) run(t testing.TB, program string, args ...string) {
	t.Helper()
	if out, err := sc.command(program, args...).CombinedOutput(); err != nil {
		t.Fatalf("%s %s: %v\n%s", program, strings.Join(args, " "), err, out)
	}
}

// command runs a server program as the cluster's user, from a directory
// that user can enter. pg_ctl start gets -l, so the server does not keep
// the command's output open.
func (sc *ServerControl) command(program string, args ...string) *exec.Cmd {
	path := filepath.Join(sc.bin, program)
	var cmd *exec.Cmd
	if os.Geteuid() == 0 {
		cmd = exec.Command("runuser", append([]string{"-u", sc.user, "--", path}, args...)...)
	} else {
		cmd = exec.Command(path, args...)
	}
	cmd.Dir = sc.dir
	return cmd
}

// ReadQueueLen returns how many first reads of streams wait for a reader.
func ReadQueueLen(l *Log) int { return len(l.reads) }

// LockWaiters returns how many server processes other than the caller's
// wait for a lock in a statement that names table (a quoted name, as
// MetaTable and EventsTable return it): a test that holds a lock knows from
// it that a Log's transaction or query has reached the database and waits.
func LockWaiters(t testing.TB, pool *pgxpool.Pool, table string) int {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var n int
	err := pool.QueryRow(ctx, `SELECT count(*) FROM pg_stat_activity
		WHERE wait_event_type = 'Lock' AND pid <> pg_backend_pid() AND position($1 in query) > 0`, table).Scan(&n)
	if err != nil {
		t.Fatalf("count the lock waiters: %v", err)
	}
	return n
}
