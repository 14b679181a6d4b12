package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/eventsourced-go/eventsourced/eventlog"
	"github.com/eventsourced-go/eventsourced/natslog"
	"github.com/eventsourced-go/eventsourced/postgreslog"
	"github.com/eventsourced-go/eventsourced/projection"
	"github.com/eventsourced-go/eventsourced/projection/natsprojection"
	"github.com/eventsourced-go/eventsourced/projection/pgprojection"
)

// Environment variables that stand for flags left out.
const (
	envPostgresDSN = "EVENTSOURCED_POSTGRES_DSN"
	envNatsURL     = "NATS_URL"
)

// connFlags says which backend to use and how to reach it: the options of
// postgreslog and pgprojection, or of natslog and natsprojection.
type connFlags struct {
	prefix string // "" for the log commands work on, "to-" for copy's target

	pgDSN, pgSchema, pgTablePrefix string
	pgOffsets, pgDeadLetters       string
	pgControls                     string

	natsURL, natsCreds, natsStream, natsPrefix string
	natsOffsets, natsDeadLetters               string
	natsControls                               string
}

// register adds the connection flags to fs, each name behind c.prefix.
func (c *connFlags) register(fs *flag.FlagSet, prefix string) {
	c.prefix = prefix
	env := func(name string) string {
		if prefix != "" {
			return ""
		}
		return " (default $" + name + ")"
	}
	p := prefix
	fs.StringVar(&c.pgDSN, p+"pg-dsn", "", "PostgreSQL connection string"+env(envPostgresDSN))
	fs.StringVar(&c.pgSchema, p+"pg-schema", "", "schema of the event log's tables (postgreslog.WithSchema; default: the search_path's first)")
	fs.StringVar(&c.pgTablePrefix, p+"pg-table-prefix", postgreslog.DefaultTablePrefix, "prefix of the event log's tables (postgreslog.WithTablePrefix)")
	fs.StringVar(&c.natsURL, p+"nats-url", "", "NATS server URL(s), comma-separated"+env(envNatsURL))
	fs.StringVar(&c.natsCreds, p+"nats-creds", "", "NATS credentials file")
	fs.StringVar(&c.natsStream, p+"nats-stream", natslog.DefaultStream, "JetStream stream of the events (natslog.WithStream)")
	fs.StringVar(&c.natsPrefix, p+"nats-prefix", natslog.DefaultPrefix, "subject prefix of the events (natslog.WithPrefix)")
	if prefix == "" {
		fs.StringVar(&c.pgOffsets, "pg-offsets-table", pgprojection.DefaultTable, "projection offsets table, may be schema-qualified (pgprojection.WithTable)")
		fs.StringVar(&c.pgDeadLetters, "pg-dead-letter-table", pgprojection.DefaultDeadLetterTable, "dead-letter table, may be schema-qualified (pgprojection.WithDeadLetterTable)")
		fs.StringVar(&c.natsOffsets, "nats-offsets-bucket", natsprojection.DefaultBucket, "KV bucket of projection offsets (natsprojection.WithBucket)")
		fs.StringVar(&c.natsDeadLetters, "nats-dead-letter-bucket", natsprojection.DefaultDeadLetterBucket, "KV bucket of dead letters (natsprojection.NewDeadLetters WithBucket)")
		fs.StringVar(&c.pgControls, "pg-control-table", pgprojection.DefaultControlTable, "table of projection control records, may be schema-qualified (pgprojection.WithControlTable)")
		fs.StringVar(&c.natsControls, "nats-control-bucket", natsprojection.DefaultControlBucket, "KV bucket of projection control records (natsprojection.WithControlBucket)")
	}
}

// backend is an open connection to one backend.
type backend struct {
	name string // "postgres" or "nats", for messages
	log  eventlog.Log

	// One of these is set.
	pool *pgxpool.Pool
	pg   *postgreslog.Log
	nc   *nats.Conn
	js   jetstream.JetStream
	nl   *natslog.Log

	conn *connFlags
}

// choose returns which backend the flags and, for the main connection,
// the environment name: flags first, then the environment; exactly one.
func (c *connFlags) choose() (string, error) {
	pgFlag, natsFlag := "--"+c.prefix+"pg-dsn", "--"+c.prefix+"nats-url"
	switch {
	case c.pgDSN != "" && c.natsURL != "":
		return "", usagef("both %s and %s are given; choose one backend", pgFlag, natsFlag)
	case c.pgDSN != "":
		return "postgres", nil
	case c.natsURL != "":
		return "nats", nil
	case c.prefix != "":
		return "", usagef("no target: give %s or %s", pgFlag, natsFlag)
	}
	pgEnv, natsEnv := os.Getenv(envPostgresDSN), os.Getenv(envNatsURL)
	switch {
	case pgEnv != "" && natsEnv != "":
		return "", usagef("both $%s and $%s are set and no flag chooses; give %s or %s", envPostgresDSN, envNatsURL, pgFlag, natsFlag)
	case pgEnv != "":
		c.pgDSN = pgEnv
		return "postgres", nil
	case natsEnv != "":
		c.natsURL = natsEnv
		return "nats", nil
	}
	return "", usagef("no backend: give %s (or $%s) or %s (or $%s)", pgFlag, envPostgresDSN, natsFlag, envNatsURL)
}

// open connects to the backend the flags name and opens its event log.
// With setup it first creates the log's tables or stream (for copy's
// target); otherwise it checks they exist, so that a wrong schema,
// prefix or stream is named rather than read as an empty log.
func (c *connFlags) open(ctx context.Context, setup bool) (*backend, error) {
	kind, err := c.choose()
	if err != nil {
		return nil, err
	}
	b := &backend{name: kind, conn: c}
	if kind == "postgres" {
		return b, b.openPostgres(ctx, setup)
	}
	return b, b.openNATS(ctx, setup)
}

func (b *backend) openPostgres(ctx context.Context, setup bool) error {
	c := b.conn
	opts := []postgreslog.Option{postgreslog.WithTablePrefix(c.pgTablePrefix)}
	if c.pgSchema != "" {
		opts = append(opts, postgreslog.WithSchema(c.pgSchema))
	}
	pool, err := pgxpool.New(ctx, c.pgDSN)
	if err != nil {
		return fmt.Errorf("--%spg-dsn: %w", c.prefix, err)
	}
	b.pool = pool
	if err := pool.Ping(ctx); err != nil {
		return fmt.Errorf("cannot reach PostgreSQL (--%spg-dsn): %w", c.prefix, err)
	}
	if setup {
		if err := postgreslog.Setup(ctx, pool, opts...); err != nil {
			return err
		}
	}
	l, err := postgreslog.New(pool, opts...)
	if err != nil {
		return fmt.Errorf("--%spg-schema or --%spg-table-prefix: %w", c.prefix, c.prefix, err)
	}
	b.pg, b.log = l, l
	v, err := l.SchemaVersion(ctx)
	if err != nil || v == 0 {
		where := fmt.Sprintf("tables %q", c.pgTablePrefix+"*")
		if c.pgSchema != "" {
			where += fmt.Sprintf(" in schema %q", c.pgSchema)
		}
		if err == nil {
			err = errors.New("postgreslog.Setup never ran there")
		}
		return fmt.Errorf("no event log in PostgreSQL %s (see --%spg-schema, --%spg-table-prefix): %w", where, c.prefix, c.prefix, err)
	}
	return nil
}

func (b *backend) openNATS(ctx context.Context, setup bool) error {
	c := b.conn
	var opts []nats.Option
	if c.natsCreds != "" {
		opts = append(opts, nats.UserCredentials(c.natsCreds))
	}
	opts = append(opts, nats.Name("esctl"))
	nc, err := nats.Connect(c.natsURL, opts...)
	if err != nil {
		return fmt.Errorf("cannot reach NATS at %s (--%snats-url): %w", c.natsURL, c.prefix, err)
	}
	b.nc = nc
	js, err := jetstream.New(nc)
	if err != nil {
		return err
	}
	b.js = js
	lopts := []natslog.Option{natslog.WithStream(c.natsStream), natslog.WithPrefix(c.natsPrefix)}
	if setup {
		if err := natslog.Setup(ctx, js, lopts...); err != nil {
			return err
		}
	}
	l, err := natslog.New(ctx, js, lopts...)
	if err != nil {
		return fmt.Errorf("no event log on stream %q with prefix %q (see --%snats-stream, --%snats-prefix): %w", c.natsStream, c.natsPrefix, c.prefix, c.prefix, err)
	}
	b.nl, b.log = l, l
	return nil
}

// close releases what open took.
func (b *backend) close() {
	if b == nil {
		return
	}
	if b.pg != nil {
		b.pg.Close()
	}
	if b.pool != nil {
		b.pool.Close()
	}
	if b.nl != nil {
		b.nl.Close()
	}
	if b.nc != nil {
		b.nc.Close()
	}
}

// head returns the log's highest Position, of any type: events committed
// later have higher ones. Postgres: the highest Position in the events
// table; NATS: the stream's last sequence, which natslog uses as Position.
func (b *backend) head(ctx context.Context) (uint64, error) {
	if b.pool != nil {
		c := b.conn
		table := pgx.Identifier{c.pgTablePrefix + "events"}
		if c.pgSchema != "" {
			table = pgx.Identifier{c.pgSchema, c.pgTablePrefix + "events"}
		}
		var pos int64
		if err := b.pool.QueryRow(ctx, `SELECT coalesce(max(position), 0) FROM `+table.Sanitize()).Scan(&pos); err != nil {
			return 0, fmt.Errorf("head position: %w", err)
		}
		return uint64(pos), nil
	}
	s, err := b.js.Stream(ctx, b.conn.natsStream)
	if err != nil {
		return 0, fmt.Errorf("head position: %w", err)
	}
	info, err := s.Info(ctx)
	if err != nil {
		return 0, fmt.Errorf("head position: %w", err)
	}
	return info.State.LastSeq, nil
}

// offsets returns the backend's projection offset store. On NATS the
// bucket must exist: esctl creates none.
func (b *backend) offsets(ctx context.Context) (interface {
	projection.OffsetStore
	projection.OffsetLister
}, error) {
	c := b.conn
	if b.pool != nil {
		s, err := pgprojection.New(b.pool, pgprojection.WithTable(c.pgOffsets))
		if err != nil {
			return nil, err
		}
		// A missing table is named, not taken for no projections.
		var ok bool
		if err := b.pool.QueryRow(ctx, `SELECT to_regclass($1) IS NOT NULL`, c.pgOffsets).Scan(&ok); err != nil {
			return nil, err
		}
		if !ok {
			return nil, fmt.Errorf("no offsets table %q (see --pg-offsets-table; pgprojection.Store.Migrate creates it)", c.pgOffsets)
		}
		return s, nil
	}
	if _, err := b.js.KeyValue(ctx, c.natsOffsets); err != nil {
		if errors.Is(err, jetstream.ErrBucketNotFound) {
			return nil, fmt.Errorf("no offsets bucket %q (see --nats-offsets-bucket; natsprojection.New creates it)", c.natsOffsets)
		}
		return nil, err
	}
	return natsprojection.New(ctx, b.js, natsprojection.WithBucket(c.natsOffsets))
}

// deadLetters returns the backend's dead-letter store, which must exist.
func (b *backend) deadLetters(ctx context.Context) (projection.DeadLetters, error) {
	c := b.conn
	if b.pool != nil {
		var ok bool
		if err := b.pool.QueryRow(ctx, `SELECT to_regclass($1) IS NOT NULL`, c.pgDeadLetters).Scan(&ok); err != nil {
			return nil, err
		}
		if !ok {
			return nil, fmt.Errorf("no dead-letter table %q (see --pg-dead-letter-table; pgprojection.Store.Migrate creates it)", c.pgDeadLetters)
		}
		s, err := pgprojection.New(b.pool, pgprojection.WithTable(c.pgOffsets), pgprojection.WithDeadLetterTable(c.pgDeadLetters))
		if err != nil {
			return nil, err
		}
		return s.DeadLetters(), nil
	}
	if _, err := b.js.KeyValue(ctx, c.natsDeadLetters); err != nil {
		if errors.Is(err, jetstream.ErrBucketNotFound) {
			return nil, fmt.Errorf("no dead-letter bucket %q (see --nats-dead-letter-bucket; natsprojection.NewDeadLetters creates it)", c.natsDeadLetters)
		}
		return nil, err
	}
	return natsprojection.NewDeadLetters(ctx, b.js, natsprojection.WithBucket(c.natsDeadLetters))
}

// controls returns the backend's projection control records, which must
// exist: the application's pgprojection.Store.Migrate or natsprojection.New
// creates them.
func (b *backend) controls(ctx context.Context) (projection.Controls, error) {
	c := b.conn
	if b.pool != nil {
		var ok bool
		if err := b.pool.QueryRow(ctx, `SELECT to_regclass($1) IS NOT NULL`, c.pgControls).Scan(&ok); err != nil {
			return nil, err
		}
		if !ok {
			return nil, fmt.Errorf("no control table %q (see --pg-control-table; pgprojection.Store.Migrate creates it)", c.pgControls)
		}
		return pgprojection.New(b.pool, pgprojection.WithTable(c.pgOffsets), pgprojection.WithControlTable(c.pgControls))
	}
	for _, bucket := range []string{c.natsOffsets, c.natsControls} {
		if _, err := b.js.KeyValue(ctx, bucket); err != nil {
			if errors.Is(err, jetstream.ErrBucketNotFound) {
				return nil, fmt.Errorf("no bucket %q (see --nats-offsets-bucket and --nats-control-bucket; natsprojection.New creates them)", bucket)
			}
			return nil, err
		}
	}
	return natsprojection.New(ctx, b.js, natsprojection.WithBucket(c.natsOffsets), natsprojection.WithControlBucket(c.natsControls))
}
