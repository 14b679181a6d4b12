package postgreslog

import (
	"fmt"
	"log/slog"
	"time"
)

// Defaults of the options.
const (
	// DefaultTablePrefix prefixes the table names unless [WithTablePrefix]
	// or [WithTables] says otherwise: eventsourced_events,
	// eventsourced_streams, eventsourced_snapshots and eventsourced_meta.
	DefaultTablePrefix = "eventsourced_"
	// DefaultMaxBatch is the default of [WithMaxBatch].
	DefaultMaxBatch = 4096
	// DefaultMaxAppendEvents is the default of [WithMaxAppendEvents].
	DefaultMaxAppendEvents = 10_000
	// DefaultMaxAppendBytes is the default of [WithMaxAppendBytes].
	DefaultMaxAppendBytes = 64 << 20
	// DefaultPollInterval is the default of [WithPollInterval].
	DefaultPollInterval = time.Second
	// DefaultWriteTimeout is the default of [WithWriteTimeout].
	DefaultWriteTimeout = 10 * time.Second
	// DefaultConcurrency is the default of [WithConcurrency].
	DefaultConcurrency = 2
)

// Tables names the tables explicitly; see [WithTables]. An empty field keeps
// the name the prefix gives.
type Tables struct {
	// Events holds one row per event.
	Events string
	// Streams holds one row per stream with its last Seq.
	Streams string
	// Snapshots holds the snapshots of the [Store].
	Snapshots string
	// Meta holds one row: the schema version and the last Position handed out.
	Meta string
}

// Option configures a [Log] or a [Store]. Options that only concern the log
// (batching, subscriptions) are ignored by [NewStore]. An Option returns an
// error matching [ErrInvalidOption] for a bad value.
type Option func(*config) error

type config struct {
	schema          string
	prefix          string
	tables          Tables
	maxBatch        int
	maxBatchBytes   int
	maxAppendEvents int
	maxAppendBytes  int
	pollInterval    time.Duration
	notify          bool
	writeTimeout    time.Duration
	concurrency     int
	logger          *slog.Logger
	copyThreshold   int // see defaultCopyThreshold; tests change it
}

func newConfig(opts []Option) (*config, error) {
	cfg := &config{
		prefix:          DefaultTablePrefix,
		maxBatch:        DefaultMaxBatch,
		maxBatchBytes:   16 << 20,
		maxAppendEvents: DefaultMaxAppendEvents,
		maxAppendBytes:  DefaultMaxAppendBytes,
		pollInterval:    DefaultPollInterval,
		notify:          true,
		writeTimeout:    DefaultWriteTimeout,
		concurrency:     DefaultConcurrency,
		logger:          slog.New(slog.DiscardHandler),
		copyThreshold:   defaultCopyThreshold,
	}
	for _, opt := range opts {
		if opt == nil {
			return nil, fmt.Errorf("%w: nil Option", ErrInvalidOption)
		}
		if err := opt(cfg); err != nil {
			return nil, err
		}
	}
	// Resolve the table names now, so two options that each look fine
	// cannot combine into a name that is too long or a duplicate.
	seen := make(map[string]string)
	for _, t := range []struct{ what, explicit, suffix string }{
		{"events", cfg.tables.Events, "events"},
		{"streams", cfg.tables.Streams, "streams"},
		{"snapshots", cfg.tables.Snapshots, "snapshots"},
		{"meta", cfg.tables.Meta, "meta"},
	} {
		name := t.explicit
		if name == "" {
			name = cfg.prefix + t.suffix
		}
		if err := validIdentifier(name, maxTableName); err != nil {
			return nil, fmt.Errorf("%w: %s table name: %v", ErrInvalidOption, t.what, err)
		}
		if other, dup := seen[name]; dup {
			return nil, fmt.Errorf("%w: the %s and %s tables are both named %q", ErrInvalidOption, other, t.what, name)
		}
		seen[name] = t.what
	}
	return cfg, nil
}

// WithSchema puts the tables in the PostgreSQL schema name instead of the
// first schema of the connection's search_path. [Log.Migrate] creates the
// schema if it does not exist. The name follows the rules of
// [WithTablePrefix] and may be up to 63 bytes long.
func WithSchema(name string) Option {
	return func(c *config) error {
		if err := validIdentifier(name, maxSchemaName); err != nil {
			return fmt.Errorf("%w: WithSchema: %v", ErrInvalidOption, err)
		}
		c.schema = name
		return nil
	}
}

// WithTablePrefix sets the prefix of the table names (default
// [DefaultTablePrefix]): <prefix>events, <prefix>streams,
// <prefix>snapshots and <prefix>meta. Table names must start with a letter or
// an underscore, contain only ASCII letters, digits and underscores, and be
// at most 48 bytes long. They are always quoted, so upper-case letters are
// kept as given. The prefix may be empty.
func WithTablePrefix(prefix string) Option {
	return func(c *config) error {
		if prefix != "" {
			// The prefix must itself start like an identifier; the full
			// names are checked once all options are applied.
			if err := validIdentifier(prefix, maxTableName); err != nil {
				return fmt.Errorf("%w: WithTablePrefix: %v", ErrInvalidOption, err)
			}
		}
		c.prefix = prefix
		return nil
	}
}

// WithTables names tables explicitly; an empty field keeps the name from the
// prefix. The names follow the rules of [WithTablePrefix] and must differ
// from each other.
func WithTables(t Tables) Option {
	return func(c *config) error {
		for _, name := range []string{t.Events, t.Streams, t.Snapshots, t.Meta} {
			if name == "" {
				continue
			}
			if err := validIdentifier(name, maxTableName); err != nil {
				return fmt.Errorf("%w: WithTables: %v", ErrInvalidOption, err)
			}
		}
		c.tables = t
		return nil
	}
}

// WithMaxBatch bounds how many events one group-commit transaction carries
// (default [DefaultMaxBatch]). A single append larger than n still commits,
// alone in its transaction. n must be at least 1; 1 turns group commit off.
func WithMaxBatch(n int) Option {
	return func(c *config) error {
		if n < 1 {
			return fmt.Errorf("%w: WithMaxBatch(%d): must be at least 1", ErrInvalidOption, n)
		}
		c.maxBatch = n
		return nil
	}
}

// WithMaxAppendEvents bounds the events of one append (default
// [DefaultMaxAppendEvents]); a larger append fails with
// eventlog.ErrInvalid. n must be at least 1.
func WithMaxAppendEvents(n int) Option {
	return func(c *config) error {
		if n < 1 {
			return fmt.Errorf("%w: WithMaxAppendEvents(%d): must be at least 1", ErrInvalidOption, n)
		}
		c.maxAppendEvents = n
		return nil
	}
}

// WithMaxAppendBytes bounds the total data and metadata bytes of one append
// (default [DefaultMaxAppendBytes]); a larger append fails with
// eventlog.ErrInvalid. n must be at least 1 and at most 512 MiB, half of
// PostgreSQL's limit for one value.
func WithMaxAppendBytes(n int) Option {
	return func(c *config) error {
		if n < 1 || n > 512<<20 {
			return fmt.Errorf("%w: WithMaxAppendBytes(%d): must be between 1 and 512 MiB", ErrInvalidOption, n)
		}
		c.maxAppendBytes = n
		return nil
	}
}

// WithPollInterval sets how often a subscription that has caught up looks
// for new events when no notification wakes it (default
// [DefaultPollInterval]). Notifications normally wake it at once; polling
// covers a lost listener connection and [WithNotify](false). d must be
// positive.
func WithPollInterval(d time.Duration) Option {
	return func(c *config) error {
		if d <= 0 {
			return fmt.Errorf("%w: WithPollInterval(%v): must be positive", ErrInvalidOption, d)
		}
		c.pollInterval = d
		return nil
	}
}

// WithNotify turns LISTEN/NOTIFY on (the default) or off. When off, appends
// send no NOTIFY and subscriptions find events by polling only; use it with
// connection poolers that do not support LISTEN, such as PgBouncer in
// transaction mode. Subscriptions in the same process are woken by its own
// appends either way.
func WithNotify(enabled bool) Option {
	return func(c *config) error {
		c.notify = enabled
		return nil
	}
}

// WithWriteTimeout bounds one group-commit transaction (default
// [DefaultWriteTimeout]), whatever the contexts of the appends in it. An
// append's own context still decides how long its caller waits: the bound
// is for the worker, which a transaction stuck behind a lock would
// otherwise hold, and with it every append queued for that worker. d must
// be positive.
func WithWriteTimeout(d time.Duration) Option {
	return func(c *config) error {
		if d <= 0 {
			return fmt.Errorf("%w: WithWriteTimeout(%v): must be positive", ErrInvalidOption, d)
		}
		c.writeTimeout = d
		return nil
	}
}

// WithConcurrency sets how many group-commit transactions a Log runs at once
// (default [DefaultConcurrency]), each on its own pooled connection. They
// take Positions one after another, but while one commits, the next has its
// statements on the wire, so the server never waits for the client. n must
// be between 1 and 64.
func WithConcurrency(n int) Option {
	return func(c *config) error {
		if n < 1 || n > 64 {
			return fmt.Errorf("%w: WithConcurrency(%d): must be between 1 and 64", ErrInvalidOption, n)
		}
		c.concurrency = n
		return nil
	}
}

// WithLogger sets the logger for what reaches no caller: failed batches, a
// lost listener connection and its reconnection. The default discards
// everything.
func WithLogger(l *slog.Logger) Option {
	return func(c *config) error {
		if l == nil {
			return fmt.Errorf("%w: WithLogger(nil)", ErrInvalidOption)
		}
		c.logger = l
		return nil
	}
}
