package pgprojection

import (
	"context"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/eventsourced-go/eventsourced/eventlog"
	"github.com/eventsourced-go/eventsourced/projection"
)

// Compile-time check that DeadLetters is a projection.DeadLetters store.
var _ projection.DeadLetters = (*DeadLetters)(nil)

// DefaultDeadLetterTable is the dead-letter table's name unless
// [WithDeadLetterTable] says otherwise.
const DefaultDeadLetterTable = "projection_dead_letters"

// WithDeadLetterTable names the dead-letter table (default
// [DefaultDeadLetterTable]). The name may be schema-qualified; each part
// is quoted.
func WithDeadLetterTable(name string) Option {
	return func(s *Store) error {
		if name == "" {
			return fmt.Errorf("%w: pgprojection: WithDeadLetterTable(\"\")", projection.ErrInvalid)
		}
		s.deadLetters = quote(name)
		return nil
	}
}

// deadLetterSchema returns the statement that creates the dead-letter
// table. The key is (projection, position): a poison event is recorded
// once per projection, and Put of the same event again replaces it.
func deadLetterSchema(table string) string {
	return `CREATE TABLE IF NOT EXISTS ` + table + ` (
	projection  text        NOT NULL,
	position    bigint      NOT NULL,
	entity_type text        NOT NULL,
	entity_id   text        NOT NULL,
	seq         bigint      NOT NULL,
	event_name  text        NOT NULL,
	revision    bigint      NOT NULL,
	data        bytea,
	metadata    jsonb,
	event_time  timestamptz NOT NULL,
	error       text        NOT NULL,
	attempts    integer     NOT NULL,
	dead_at     timestamptz NOT NULL,
	PRIMARY KEY (projection, position)
)`
}

// DeadLetters is a transactional [projection.DeadLetters] store: a table
// in the database of its [Store], created by [Store.Migrate]. Get it with
// [Store.DeadLetters] and pass it to projection.WithDeadLetters along with
// the Store.
//
// Its Put joins the transaction of the Store's commit when ctx carries one
// (see [TxFrom]): the dead letter of a skipped poison event and the offset
// that moves past the event commit together. Its Retry runs the handler in
// a transaction that also deletes the dead letter, so handlers made with
// [Handle] and [HandleDecoded] write the retried event's effects and the
// delete atomically: exactly once. Concurrent retries of one dead letter
// serialize on its row; the second finds it gone ([projection.ErrNotFound]).
type DeadLetters struct {
	s *Store
}

// DeadLetters returns the dead-letter store in s's database.
func (s *Store) DeadLetters() *DeadLetters { return &DeadLetters{s: s} }

// querier is what a pool and a transaction share.
type querier interface {
	Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error)
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
}

// on returns the transaction ctx carries if it is one of this store's
// database, else the pool.
func (d *DeadLetters) on(ctx context.Context) querier {
	if v, ok := ctx.Value(txKey{}).(txValue); ok && v.pool == d.s.pool {
		return v.tx
	}
	return d.s.pool
}

// columns are the columns scan reads, in its order.
const columns = `projection, position, entity_type, entity_id, seq, event_name, revision, data, metadata, event_time, error, attempts, dead_at`

// Put implements [projection.DeadLetters]; in the transaction of a
// commit of the same Store when ctx carries one.
func (d *DeadLetters) Put(ctx context.Context, dl projection.DeadLetter) error {
	r := dl.Record
	_, err := d.on(ctx).Exec(ctx, `INSERT INTO `+d.s.deadLetters+` (`+columns+`)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)
ON CONFLICT (projection, position) DO UPDATE SET
	entity_type = EXCLUDED.entity_type, entity_id = EXCLUDED.entity_id, seq = EXCLUDED.seq,
	event_name = EXCLUDED.event_name, revision = EXCLUDED.revision, data = EXCLUDED.data,
	metadata = EXCLUDED.metadata, event_time = EXCLUDED.event_time, error = EXCLUDED.error,
	attempts = EXCLUDED.attempts, dead_at = EXCLUDED.dead_at`,
		dl.Projection, int64(r.Position), r.EntityType, r.EntityID, int64(r.Seq), r.Name, int64(r.Revision),
		r.Data, r.Metadata, r.Time, dl.Err, dl.Attempts, dl.Time)
	if err != nil {
		return fmt.Errorf("pgprojection: put dead letter of %s at %d: %w", dl.Projection, r.Position, err)
	}
	return nil
}

// List implements [projection.DeadLetters].
func (d *DeadLetters) List(ctx context.Context, name string, after uint64, limit int) ([]projection.DeadLetter, error) {
	var lim any // NULL: LIMIT ALL
	if limit > 0 {
		lim = limit
	}
	rows, err := d.s.pool.Query(ctx, `SELECT `+columns+` FROM `+d.s.deadLetters+`
WHERE projection = $1 AND position > $2 ORDER BY position LIMIT $3`, name, int64(after), lim)
	if err != nil {
		return nil, fmt.Errorf("pgprojection: list dead letters of %s: %w", name, err)
	}
	out, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (projection.DeadLetter, error) { return scan(row) })
	if err != nil {
		return nil, fmt.Errorf("pgprojection: list dead letters of %s: %w", name, err)
	}
	return out, nil
}

// Get implements [projection.DeadLetters].
func (d *DeadLetters) Get(ctx context.Context, name string, position uint64) (projection.DeadLetter, error) {
	return d.get(ctx, d.s.pool, name, position)
}

// get reads one dead letter through q.
func (d *DeadLetters) get(ctx context.Context, q querier, name string, position uint64) (projection.DeadLetter, error) {
	dl, err := scan(q.QueryRow(ctx, `SELECT `+columns+` FROM `+d.s.deadLetters+`
WHERE projection = $1 AND position = $2`, name, int64(position)))
	if errors.Is(err, pgx.ErrNoRows) {
		return dl, fmt.Errorf("pgprojection: %w: %s at position %d", projection.ErrNotFound, name, position)
	}
	if err != nil {
		return dl, fmt.Errorf("pgprojection: get dead letter of %s at %d: %w", name, position, err)
	}
	return dl, nil
}

// Drop implements [projection.DeadLetters].
func (d *DeadLetters) Drop(ctx context.Context, name string, position uint64) error {
	return d.drop(ctx, d.s.pool, name, position)
}

func (d *DeadLetters) drop(ctx context.Context, q querier, name string, position uint64) error {
	tag, err := q.Exec(ctx, `DELETE FROM `+d.s.deadLetters+` WHERE projection = $1 AND position = $2`, name, int64(position))
	if err != nil {
		return fmt.Errorf("pgprojection: drop dead letter of %s at %d: %w", name, position, err)
	}
	if tag.RowsAffected() == 0 {
		return fmt.Errorf("pgprojection: %w: %s at position %d", projection.ErrNotFound, name, position)
	}
	return nil
}

// Retry implements [projection.DeadLetters]: it begins a transaction,
// locks and reads the dead letter, runs handle with a context that carries
// the transaction (see [Handle] and [TxFrom]), deletes the dead letter and
// commits. If handle fails or anything fails before the commit, the
// transaction rolls back: the dead letter stays and handle's writes are
// undone.
func (d *DeadLetters) Retry(ctx context.Context, name string, position uint64, handle func(ctx context.Context, dl projection.DeadLetter) error) error {
	return d.s.inTx(ctx, func(ctx context.Context, tx pgx.Tx) error {
		// An advisory lock rather than the row's, for the reason Commit
		// gives.
		if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock(hashtextextended($1, 0))`,
			fmt.Sprintf("pgprojection dead letter %s %s %d", d.s.deadLetters, name, position)); err != nil {
			return fmt.Errorf("pgprojection: retry dead letter %s at position %d: lock: %w", name, position, err)
		}
		dl, err := d.get(ctx, tx, name, position)
		if err != nil {
			return err
		}
		if err := handle(d.s.withTx(ctx, tx), dl); err != nil {
			return err
		}
		return d.drop(ctx, tx, name, position)
	})
}

// scan reads a row of columns.
func scan(row pgx.Row) (projection.DeadLetter, error) {
	var (
		dl                      projection.DeadLetter
		r                       eventlog.Record
		position, seq, revision int64
		attempts                int32
	)
	err := row.Scan(&dl.Projection, &position, &r.EntityType, &r.EntityID, &seq, &r.Name, &revision,
		&r.Data, &r.Metadata, &r.Time, &dl.Err, &attempts, &dl.Time)
	if err != nil {
		return projection.DeadLetter{}, err
	}
	r.Position, r.Seq, r.Revision = uint64(position), uint64(seq), uint32(revision)
	dl.Record, dl.Attempts = r, int(attempts)
	return dl, nil
}
