package postgreslog

import (
	"fmt"
	"log/slog"
	"strings"
	"time"

	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/trace"
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
	// MaxTransactionEvents bounds the events of one transaction, and so
	// [WithMaxBatch] and [WithMaxAppendEvents]: a transaction's Positions
	// are its transaction id times 2^16 plus 1, 2, 3 ... (see the package
	// documentation).
	MaxTransactionEvents = 1<<positionBits - 1
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
	// Snapshots holds the snapshots of the [SnapshotStore].
	Snapshots string
	// Meta holds one row: the schema version and the last Position handed out.
	Meta string
	// Keys holds the data keys of the [KeyStore].
	Keys string
}

// Option configures [Setup], [New], [NewSnapshotStore] or [NewKeyStore].
// Each option's documentation says which of them it applies to; the others
// refuse it with an error matching [ErrInvalidOption] that names it, rather
// than ignore it. A bad value is refused the same way. Give all of them the
// options that name the tables (schema, prefix, tables).
type Option struct {
	name string // how the caller wrote it, for error messages
	uses use
	set  func(*config)
	err  error // a bad value, reported by the call that gets the option
}

// use is a set of the calls that take options.
type use uint8

const (
	forSetup use = 1 << iota
	forLog
	forStore
	forKeys
	forNames = forSetup | forLog | forStore | forKeys
)

// String names the calls of u, for error messages.
func (u use) String() string {
	var names []string
	for _, c := range []struct {
		u    use
		name string
	}{{forSetup, "Setup"}, {forLog, "New"}, {forStore, "NewSnapshotStore"}, {forKeys, "NewKeyStore"}} {
		if u&c.u != 0 {
			names = append(names, c.name)
		}
	}
	if len(names) > 2 {
		return strings.Join(names[:len(names)-1], ", ") + " and " + names[len(names)-1]
	}
	return strings.Join(names, " and ")
}

// option returns an Option named name for the calls of uses, or one that
// fails with err.
func option(name string, uses use, err error, set func(*config)) Option {
	return Option{name: name, uses: uses, set: set, err: err}
}

type config struct {
	schema          string
	prefix          string
	tables          Tables
	maxBatch        int
	maxAppendEvents int
	maxAppendBytes  int
	pollInterval    time.Duration
	notify          bool
	writeTimeout    time.Duration
	concurrency     int
	logger          *slog.Logger
	tp              trace.TracerProvider // nil: the global one
	mp              metric.MeterProvider // nil: the global one
	copyThreshold   int                  // see defaultCopyThreshold; tests change it
}

func newConfig(call use, opts []Option) (*config, error) {
	cfg := &config{
		prefix:          DefaultTablePrefix,
		maxBatch:        DefaultMaxBatch,
		maxAppendEvents: DefaultMaxAppendEvents,
		maxAppendBytes:  DefaultMaxAppendBytes,
		pollInterval:    DefaultPollInterval,
		notify:          true,
		writeTimeout:    DefaultWriteTimeout,
		concurrency:     DefaultConcurrency,
		logger:          slog.Default(),
		copyThreshold:   defaultCopyThreshold,
	}
	for _, opt := range opts {
		if opt.set == nil {
			return nil, fmt.Errorf("%w: a zero Option", ErrInvalidOption)
		}
		if opt.err != nil {
			return nil, opt.err
		}
		if opt.uses&call == 0 {
			return nil, fmt.Errorf("%w: %s is an option of %s, not of %s", ErrInvalidOption, opt.name, opt.uses, call)
		}
		opt.set(cfg)
	}
	// Resolve the table names now, so two options that each look fine
	// cannot combine into a name that is too long or a duplicate.
	seen := make(map[string]string)
	for _, t := range []struct{ what, explicit, suffix string }{
		{"events", cfg.tables.Events, "events"},
		{"streams", cfg.tables.Streams, "streams"},
		{"snapshots", cfg.tables.Snapshots, "snapshots"},
		{"meta", cfg.tables.Meta, "meta"},
		{"keys", cfg.tables.Keys, "keys"},
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
// first schema of the connection's search_path. [Setup] creates the schema
// if it does not exist. The name follows the rules of [WithTablePrefix] and
// may be up to 63 bytes long. For Setup, New, NewSnapshotStore and
// NewKeyStore.
func WithSchema(name string) Option {
	var err error
	if e := validIdentifier(name, maxSchemaName); e != nil {
		err = fmt.Errorf("%w: WithSchema: %v", ErrInvalidOption, e)
	}
	return option(fmt.Sprintf("WithSchema(%q)", name), forNames, err, func(c *config) { c.schema = name })
}

// WithTablePrefix sets the prefix of the table names (default
// [DefaultTablePrefix]): <prefix>events, <prefix>streams,
// <prefix>snapshots and <prefix>meta, and <prefix>keys for the [KeyStore].
// Table names must start with a letter or
// an underscore, contain only ASCII letters, digits and underscores, and be
// at most 48 bytes long. They are always quoted, so upper-case letters are
// kept as given. The prefix may be empty. For Setup, New, NewSnapshotStore
// and NewKeyStore.
func WithTablePrefix(prefix string) Option {
	var err error
	if prefix != "" {
		// The prefix must itself start like an identifier; the full
		// names are checked once all options are applied.
		if e := validIdentifier(prefix, maxTableName); e != nil {
			err = fmt.Errorf("%w: WithTablePrefix: %v", ErrInvalidOption, e)
		}
	}
	return option(fmt.Sprintf("WithTablePrefix(%q)", prefix), forNames, err, func(c *config) { c.prefix = prefix })
}

// WithTables names tables explicitly; an empty field keeps the name from the
// prefix. The names follow the rules of [WithTablePrefix] and must differ
// from each other. For Setup, New, NewSnapshotStore and NewKeyStore.
func WithTables(t Tables) Option {
	var err error
	for _, name := range []string{t.Events, t.Streams, t.Snapshots, t.Meta, t.Keys} {
		if name == "" {
			continue
		}
		if e := validIdentifier(name, maxTableName); e != nil {
			err = fmt.Errorf("%w: WithTables: %v", ErrInvalidOption, e)
			break
		}
	}
	return option("WithTables", forNames, err, func(c *config) { c.tables = t })
}

// WithMaxBatch bounds how many events one group-commit transaction carries
// (default [DefaultMaxBatch]). A single append larger than n still commits,
// alone in its transaction. n must be between 1 and [MaxTransactionEvents];
// 1 turns group commit off. For New.
func WithMaxBatch(n int) Option {
	var err error
	if n < 1 || n > MaxTransactionEvents {
		err = fmt.Errorf("%w: WithMaxBatch(%d): must be between 1 and %d", ErrInvalidOption, n, MaxTransactionEvents)
	}
	return option(fmt.Sprintf("WithMaxBatch(%d)", n), forLog, err, func(c *config) { c.maxBatch = n })
}

// WithMaxAppendEvents bounds the events of one append (default
// [DefaultMaxAppendEvents]); a larger append fails with [ErrTooLarge]. n
// must be between 1 and [MaxTransactionEvents]. For New.
func WithMaxAppendEvents(n int) Option {
	var err error
	if n < 1 || n > MaxTransactionEvents {
		err = fmt.Errorf("%w: WithMaxAppendEvents(%d): must be between 1 and %d", ErrInvalidOption, n, MaxTransactionEvents)
	}
	return option(fmt.Sprintf("WithMaxAppendEvents(%d)", n), forLog, err, func(c *config) { c.maxAppendEvents = n })
}

// WithMaxAppendBytes bounds the total data and metadata bytes of one append
// (default [DefaultMaxAppendBytes]); a larger append fails with
// [ErrTooLarge]. n must be at least 1 and at most 512 MiB, half of
// PostgreSQL's limit for one value. For New.
func WithMaxAppendBytes(n int) Option {
	var err error
	if n < 1 || n > 512<<20 {
		err = fmt.Errorf("%w: WithMaxAppendBytes(%d): must be between 1 and 512 MiB", ErrInvalidOption, n)
	}
	return option(fmt.Sprintf("WithMaxAppendBytes(%d)", n), forLog, err, func(c *config) { c.maxAppendBytes = n })
}

// WithPollInterval sets how often a subscription that has caught up looks
// for new events when no notification wakes it (default
// [DefaultPollInterval]). Notifications normally wake it at once; polling
// covers a lost listener connection and [WithNotify](false). d must be
// positive. For New.
func WithPollInterval(d time.Duration) Option {
	var err error
	if d <= 0 {
		err = fmt.Errorf("%w: WithPollInterval(%v): must be positive", ErrInvalidOption, d)
	}
	return option(fmt.Sprintf("WithPollInterval(%v)", d), forLog, err, func(c *config) { c.pollInterval = d })
}

// WithNotify turns LISTEN/NOTIFY on (the default) or off. When off, appends
// send no NOTIFY and subscriptions find events by polling only; use it with
// connection poolers that do not support LISTEN, such as PgBouncer in
// transaction mode. Subscriptions in the same process are woken by its own
// appends either way. For New.
func WithNotify(enabled bool) Option {
	return option(fmt.Sprintf("WithNotify(%v)", enabled), forLog, nil, func(c *config) { c.notify = enabled })
}

// WithWriteTimeout bounds one group-commit transaction (default
// [DefaultWriteTimeout]), whatever the contexts of the appends in it. An
// append's own context still decides how long its caller waits: the bound
// is for the worker, which a transaction stuck behind a lock would
// otherwise hold, and with it every append queued for that worker. d must
// be positive. For New.
func WithWriteTimeout(d time.Duration) Option {
	var err error
	if d <= 0 {
		err = fmt.Errorf("%w: WithWriteTimeout(%v): must be positive", ErrInvalidOption, d)
	}
	return option(fmt.Sprintf("WithWriteTimeout(%v)", d), forLog, err, func(c *config) { c.writeTimeout = d })
}

// WithConcurrency sets how many group-commit transactions a Log runs at once
// (default [DefaultConcurrency]), each on its own pooled connection. They
// run side by side: each takes its Positions from its own transaction id
// (see the package documentation), so none waits for another to commit.
// On a server with few cores, side by side they take more of its CPU from
// other work: measured on 2 cores under writers at full speed, a
// pgprojection read model on the same server handled 90k events/s with 1
// and 34k/s with 2, while the writers did 90k/s and 117k/s (see
// bench/README.md). n must be between 1 and 64. For New.
func WithConcurrency(n int) Option {
	var err error
	if n < 1 || n > 64 {
		err = fmt.Errorf("%w: WithConcurrency(%d): must be between 1 and 64", ErrInvalidOption, n)
	}
	return option(fmt.Sprintf("WithConcurrency(%d)", n), forLog, err, func(c *config) { c.concurrency = n })
}

// WithLogger sets the logger for what reaches no caller: failed batches
// (Warn), a lost listener connection (Warn) and its reconnection (Info),
// transactions run again (Debug). The default is slog.Default(); a healthy
// Log logs nothing per append. For New.
func WithLogger(l *slog.Logger) Option {
	var err error
	if l == nil {
		err = fmt.Errorf("%w: WithLogger(nil)", ErrInvalidOption)
	}
	return option("WithLogger", forLog, err, func(c *config) { c.logger = l })
}

// WithTracerProvider sets the tracer provider of the spans of a Log (one
// per group-commit transaction, one per batched first-read query) or a
// SnapshotStore (one per Save and Load); see the package documentation.
// The default is the global provider (otel.GetTracerProvider), which
// records nothing until the program installs an SDK; until then no span
// is started at all. For New and NewSnapshotStore.
func WithTracerProvider(tp trace.TracerProvider) Option {
	var err error
	if tp == nil {
		err = fmt.Errorf("%w: WithTracerProvider(nil)", ErrInvalidOption)
	}
	return option("WithTracerProvider", forLog|forStore, err, func(c *config) { c.tp = tp })
}

// WithMeterProvider sets the meter provider of the metrics of a Log or a
// SnapshotStore; see the package documentation. The default is the global
// provider (otel.GetMeterProvider); until the program installs an SDK
// nothing is measured at all. For New and NewSnapshotStore.
func WithMeterProvider(mp metric.MeterProvider) Option {
	var err error
	if mp == nil {
		err = fmt.Errorf("%w: WithMeterProvider(nil)", ErrInvalidOption)
	}
	return option("WithMeterProvider", forLog|forStore, err, func(c *config) { c.mp = mp })
}
