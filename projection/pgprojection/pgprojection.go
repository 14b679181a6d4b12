package pgprojection

import (
	"context"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/eventsourced-go/eventsourced/binarize"
	"github.com/eventsourced-go/eventsourced/eventlog"
	"github.com/eventsourced-go/eventsourced/projection"
)

// Compile-time checks that Store is a projection.OffsetStore and a
// projection.OffsetLister.
var (
	_ projection.OffsetStore  = (*Store)(nil)
	_ projection.OffsetLister = (*Store)(nil)
)

// DefaultTable is the offsets table's name unless [WithTable] says otherwise.
const DefaultTable = "projection_offsets"

// Store is a transactional [projection.OffsetStore] in PostgreSQL: each
// commit runs the handler and the offset update in one transaction. Create
// it with [New] and the table with [Store.Migrate].
type Store struct {
	pool        *pgxpool.Pool
	table       string // quoted
	deadLetters string // quoted, the dead-letter table
	controls    string // quoted, the control table

	// beforeOffset, if set, runs between the handler and the offset update;
	// tests use it to kill a commit there.
	beforeOffset func(ctx context.Context) error
}

// Option configures a [Store].
type Option func(*Store) error

// WithTable names the offsets table (default [DefaultTable]). The name may
// be schema-qualified ("readside.offsets"); each part is quoted.
func WithTable(name string) Option {
	return func(s *Store) error {
		if name == "" {
			return fmt.Errorf("%w: pgprojection: WithTable(\"\")", projection.ErrInvalid)
		}
		s.table = quote(name)
		return nil
	}
}

// New returns a Store that keeps offsets in pool's database.
func New(pool *pgxpool.Pool, opts ...Option) (*Store, error) {
	if pool == nil {
		return nil, fmt.Errorf("%w: pgprojection: nil pool", projection.ErrInvalid)
	}
	s := &Store{pool: pool, table: quote(DefaultTable), deadLetters: quote(DefaultDeadLetterTable), controls: quote(DefaultControlTable)}
	for _, o := range opts {
		if err := o(s); err != nil {
			return nil, err
		}
	}
	return s, nil
}

// quote quotes each dot-separated part of a table name.
func quote(name string) string {
	var parts pgx.Identifier
	start := 0
	for i := 0; i <= len(name); i++ {
		if i == len(name) || name[i] == '.' {
			parts = append(parts, name[start:i])
			start = i + 1
		}
	}
	return parts.Sanitize()
}

// Migrate creates the offsets table, the dead-letter table (see
// [Store.DeadLetters]) and the control table (see [Store.LoadControl]) if
// they do not exist. It is idempotent.
func (s *Store) Migrate(ctx context.Context) error {
	_, err := s.pool.Exec(ctx, `CREATE TABLE IF NOT EXISTS `+s.table+` (
	name       text        PRIMARY KEY,
	position   bigint      NOT NULL,
	updated_at timestamptz NOT NULL DEFAULT now()
)`)
	if err != nil {
		return fmt.Errorf("pgprojection: migrate %s: %w", s.table, err)
	}
	if _, err := s.pool.Exec(ctx, deadLetterSchema(s.deadLetters)); err != nil {
		return fmt.Errorf("pgprojection: migrate %s: %w", s.deadLetters, err)
	}
	if _, err := s.pool.Exec(ctx, controlSchema(s.controls)); err != nil {
		return fmt.Errorf("pgprojection: migrate %s: %w", s.controls, err)
	}
	return nil
}

// Load implements [projection.OffsetStore].
func (s *Store) Load(ctx context.Context, name string) (uint64, error) {
	var pos int64
	err := s.pool.QueryRow(ctx, `SELECT position FROM `+s.table+` WHERE name = $1`, name).Scan(&pos)
	if errors.Is(err, pgx.ErrNoRows) {
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("pgprojection: load offset of %s: %w", name, err)
	}
	return uint64(pos), nil
}

// Offsets implements [projection.OffsetLister]: every row of the offsets
// table, with the time of its last update.
func (s *Store) Offsets(ctx context.Context) ([]projection.Offset, error) {
	rows, err := s.pool.Query(ctx, `SELECT name, position, updated_at FROM `+s.table+` ORDER BY name COLLATE "C"`)
	var out []projection.Offset
	if err == nil {
		out, err = pgx.CollectRows(rows, func(row pgx.CollectableRow) (projection.Offset, error) {
			var o projection.Offset
			var pos int64
			err := row.Scan(&o.Name, &pos, &o.Updated)
			o.Position = uint64(pos)
			return o, err
		})
	}
	if err != nil {
		return nil, fmt.Errorf("pgprojection: list offsets in %s: %w", s.table, err)
	}
	return out, nil
}

// Commit implements [projection.OffsetStore]: it begins a transaction, runs
// handle with a context that carries it (see [Handle] and [TxFrom]), moves
// the offset from from to to in the same transaction and commits. If handle
// fails, the offset is not from, or anything fails before the commit, the
// transaction rolls back and the read model is unchanged: exactly once.
func (s *Store) Commit(ctx context.Context, name string, from, to uint64, handle func(ctx context.Context) error) error {
	return s.inTx(ctx, func(ctx context.Context, tx pgx.Tx) error {
		// Lock the name first, so a concurrent runner of the same name
		// waits here instead of doing the handler's work for nothing. An
		// advisory lock, not the row's (FOR UPDATE): a row lock gives
		// the transaction an id at once, and while a transaction with an
		// id runs, postgreslog's readers by Position read nothing after
		// it; a handler that waits (a relay whose bus is down) would hold
		// back every subscription of the server. The transaction takes an
		// id only when the handler writes, and at the offset's update.
		if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock(hashtextextended($1, 0))`, "pgprojection offset "+s.table+" "+name); err != nil {
			return fmt.Errorf("pgprojection: commit %s: lock offset: %w", name, err)
		}
		var cur int64
		err := tx.QueryRow(ctx, `SELECT position FROM `+s.table+` WHERE name = $1`, name).Scan(&cur)
		if errors.Is(err, pgx.ErrNoRows) {
			cur, err = 0, nil
		}
		if err != nil {
			return fmt.Errorf("pgprojection: commit %s: lock offset: %w", name, err)
		}
		if uint64(cur) != from {
			return fmt.Errorf("pgprojection: commit %s: %w: at %d, not %d", name, projection.ErrOffsetMoved, cur, from)
		}
		if err := handle(s.withTx(ctx, tx)); err != nil {
			return err
		}
		if s.beforeOffset != nil {
			if err := s.beforeOffset(ctx); err != nil {
				return err
			}
		}
		// The conflict clause covers a first commit racing another one:
		// the loser's insert finds the row and updates nothing.
		tag, err := tx.Exec(ctx, `INSERT INTO `+s.table+` AS o (name, position) VALUES ($1, $3)
ON CONFLICT (name) DO UPDATE SET position = EXCLUDED.position, updated_at = now()
WHERE o.position = $2`, name, int64(from), int64(to))
		if err != nil {
			return fmt.Errorf("pgprojection: commit %s: save offset: %w", name, err)
		}
		if tag.RowsAffected() != 1 {
			return fmt.Errorf("pgprojection: commit %s: %w", name, projection.ErrOffsetMoved)
		}
		return nil
	})
}

// Reset implements [projection.OffsetStore]: clear, run with a context that
// carries the transaction (see [Clear]), and the offset reset to 0 commit
// together.
func (s *Store) Reset(ctx context.Context, name string, clear func(ctx context.Context) error) error {
	return s.inTx(ctx, func(ctx context.Context, tx pgx.Tx) error {
		if clear != nil {
			if err := clear(s.withTx(ctx, tx)); err != nil {
				return err
			}
		}
		if _, err := tx.Exec(ctx, `INSERT INTO `+s.table+` (name, position) VALUES ($1, 0)
ON CONFLICT (name) DO UPDATE SET position = 0, updated_at = now()`, name); err != nil {
			return fmt.Errorf("pgprojection: reset %s: %w", name, err)
		}
		return nil
	})
}

// inTx runs f in a transaction and commits it, or rolls it back if f fails.
func (s *Store) inTx(ctx context.Context, f func(ctx context.Context, tx pgx.Tx) error) error {
	tx, err := s.pool.Begin(ctx)
	if err != nil {
		return fmt.Errorf("pgprojection: begin: %w", err)
	}
	// Rollback after a commit is a no-op; it uses a fresh context so a
	// canceled ctx still releases the connection cleanly.
	defer tx.Rollback(context.WithoutCancel(ctx))
	if err := f(ctx, tx); err != nil {
		return err
	}
	if err := tx.Commit(ctx); err != nil {
		return fmt.Errorf("pgprojection: commit: %w", err)
	}
	return nil
}

type txKey struct{}

// txValue is what ctx carries under txKey: the transaction, and the pool
// it belongs to, so that a DeadLetters joins it only on its own database.
type txValue struct {
	tx   pgx.Tx
	pool *pgxpool.Pool
}

// withTx returns ctx carrying tx, a transaction of s's pool.
func (s *Store) withTx(ctx context.Context, tx pgx.Tx) context.Context {
	return context.WithValue(ctx, txKey{}, txValue{tx: tx, pool: s.pool})
}

// TxFrom returns the transaction of the commit, reset or dead-letter
// retry that ctx belongs to; false outside of [Store.Commit],
// [Store.Reset] and [DeadLetters.Retry].
func TxFrom(ctx context.Context) (pgx.Tx, bool) {
	v, ok := ctx.Value(txKey{}).(txValue)
	return v.tx, ok
}

// ErrNoTx is returned by handlers made with [Handle] or [Clear] that run
// outside of a [Store]'s transaction, for instance with another
// [projection.OffsetStore].
var ErrNoTx = errors.New("pgprojection: handler run outside of a pgprojection.Store transaction")

// Handle returns a [projection.Handler] that runs h in the transaction that
// also moves the projection's offset. h must write the read model through tx
// only, and must not commit or roll it back.
func Handle(h func(ctx context.Context, tx pgx.Tx, batch []eventlog.Record) error) projection.Handler {
	return func(ctx context.Context, batch []eventlog.Record) error {
		tx, ok := TxFrom(ctx)
		if !ok {
			return ErrNoTx
		}
		return h(ctx, tx, batch)
	}
}

// Clear returns a function for [projection.Projection.Reset] that runs f in
// the transaction that also resets the offset, typically to empty the read
// model's tables.
func Clear(f func(ctx context.Context, tx pgx.Tx) error) func(ctx context.Context) error {
	return func(ctx context.Context) error {
		tx, ok := TxFrom(ctx)
		if !ok {
			return ErrNoTx
		}
		return f(ctx, tx)
	}
}

// HandleDecoded is [Handle] for typed handlers: it decodes the batch with
// codec as projection.Decode does and runs h in the transaction that also
// moves the projection's offset.
func HandleDecoded[E any](codec binarize.EventCodec[E], h func(ctx context.Context, tx pgx.Tx, batch []projection.Decoded[E]) error) projection.Handler {
	return projection.Decode(codec, func(ctx context.Context, batch []projection.Decoded[E]) error {
		tx, ok := TxFrom(ctx)
		if !ok {
			return ErrNoTx
		}
		return h(ctx, tx, batch)
	})
}
