package postgreslog

import (
	"fmt"
	"hash/fnv"
	"strconv"

	"github.com/jackc/pgx/v5"
)

// maxTableName bounds table names so that the constraint and index names
// derived from them ("<events>_type_position", 14 bytes longer) stay within
// PostgreSQL's 63-byte identifier limit instead of being truncated.
const maxTableName = 48

// maxSchemaName is PostgreSQL's identifier limit (NAMEDATALEN - 1).
const maxSchemaName = 63

// validIdentifier reports why s is not an identifier this package accepts:
// a letter or underscore, then letters, digits or underscores, at most max
// bytes. Quoting would allow more, but names that need no quoting are the
// ones people can also type in psql.
func validIdentifier(s string, max int) error {
	if s == "" {
		return fmt.Errorf("empty name")
	}
	if len(s) > max {
		return fmt.Errorf("%q is %d bytes long, more than %d", s, len(s), max)
	}
	for i, r := range s {
		switch {
		case r == '_', r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z':
		case r >= '0' && r <= '9' && i > 0:
		default:
			return fmt.Errorf("%q: character %q at byte %d is not allowed (use letters, digits and underscores, not starting with a digit)", s, r, i)
		}
	}
	return nil
}

// names holds the quoted SQL names one Log or Store uses, resolved from the
// options.
type names struct {
	schema    string // quoted schema, "" for the search_path
	events    string // quoted, schema-qualified table names
	streams   string
	snapshots string
	meta      string
	keys      string // the KeyStore's table

	eventsPkey    string // unquoted name of the events primary key constraint
	eventsTypePos string // quoted, schema-qualified index name for CREATE INDEX
	typePosIndex  string // unquoted index name
	eventsPos     string // quoted name of the (position) index, for CREATE INDEX
	posIndex      string // unquoted name of the (position) index

	// channel is the LISTEN/NOTIFY channel of the events table; listen is
	// it quoted for LISTEN.
	channel string
	listen  string

	// migrateLock is the advisory lock key that serializes migrations of
	// these tables.
	migrateLock int64
	// positionsLock is the advisory lock key that group-commit rounds
	// hold in share mode and deletes and migrations in exclusive mode.
	positionsLock int64
}

// resolveNames builds the names of cfg's tables. The options have validated
// every part already.
func resolveNames(cfg *config) names {
	table := func(explicit, suffix string) string {
		if explicit != "" {
			return explicit
		}
		return cfg.prefix + suffix
	}
	events := table(cfg.tables.Events, "events")
	streams := table(cfg.tables.Streams, "streams")
	snapshots := table(cfg.tables.Snapshots, "snapshots")
	meta := table(cfg.tables.Meta, "meta")
	keys := table(cfg.tables.Keys, "keys")
	qualify := func(name string) string {
		if cfg.schema == "" {
			return pgx.Identifier{name}.Sanitize()
		}
		return pgx.Identifier{cfg.schema, name}.Sanitize()
	}
	n := names{
		events:        qualify(events),
		streams:       qualify(streams),
		snapshots:     qualify(snapshots),
		meta:          qualify(meta),
		keys:          qualify(keys),
		eventsPkey:    events + "_pkey",
		typePosIndex:  events + "_type_position",
		eventsTypePos: pgx.Identifier{events + "_type_position"}.Sanitize(),
		posIndex:      events + "_position",
		eventsPos:     pgx.Identifier{events + "_position"}.Sanitize(),
	}
	if cfg.schema != "" {
		n.schema = pgx.Identifier{cfg.schema}.Sanitize()
	}
	// The channel and the lock key derive from the qualified names, so every
	// process using the same tables agrees on them, and logs on other tables
	// of the same database do not wake each other.
	n.channel = "postgreslog_" + strconv.FormatUint(hash64("channel "+n.events), 16)
	n.listen = pgx.Identifier{n.channel}.Sanitize()
	n.migrateLock = int64(hash64("migrate " + n.meta))
	n.positionsLock = int64(hash64("positions " + n.events))
	return n
}

func hash64(s string) uint64 {
	h := fnv.New64a()
	h.Write([]byte(s))
	return h.Sum64()
}
