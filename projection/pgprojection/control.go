package pgprojection

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"

	"github.com/eventsourced-go/eventsourced/projection"
)

// Compile-time check that Store has the projection.Controls capability.
var _ projection.Controls = (*Store)(nil)

// DefaultControlTable is the control table's name unless
// [WithControlTable] says otherwise.
const DefaultControlTable = "projection_controls"

// WithControlTable names the table of control records (default
// [DefaultControlTable]). The name may be schema-qualified; each part is
// quoted.
func WithControlTable(name string) Option {
	return func(s *Store) error {
		if name == "" {
			return fmt.Errorf("%w: pgprojection: WithControlTable(\"\")", projection.ErrInvalid)
		}
		s.controls = quote(name)
		return nil
	}
}

// controlSchema returns the statement that creates the control table: a
// row per projection name, the record as JSON (so that new fields need
// no migration, and psql shows it) and its version.
func controlSchema(table string) string {
	return `CREATE TABLE IF NOT EXISTS ` + table + ` (
	name       text        PRIMARY KEY,
	control    jsonb       NOT NULL,
	version    bigint      NOT NULL,
	updated_at timestamptz NOT NULL DEFAULT now()
)`
}

// LoadControl implements [projection.Controls].
func (s *Store) LoadControl(ctx context.Context, name string) (projection.Control, uint64, error) {
	var (
		raw     []byte
		version int64
		c       projection.Control
	)
	err := s.pool.QueryRow(ctx, `SELECT control, version FROM `+s.controls+` WHERE name = $1`, name).Scan(&raw, &version)
	if errors.Is(err, pgx.ErrNoRows) {
		return c, 0, nil
	}
	if err != nil {
		return c, 0, fmt.Errorf("pgprojection: load control of %s: %w", name, err)
	}
	if err := json.Unmarshal(raw, &c); err != nil {
		return c, 0, fmt.Errorf("pgprojection: control of %s: %w", name, err)
	}
	return c, uint64(version), nil
}

// SaveControl implements [projection.Controls]: one conditional statement,
// an insert for version 0 and an update of the row at version otherwise.
// Concurrent saves serialize on the row; the losers change nothing.
func (s *Store) SaveControl(ctx context.Context, name string, c projection.Control, version uint64) (uint64, error) {
	raw, err := json.Marshal(c)
	if err != nil {
		return 0, fmt.Errorf("pgprojection: save control of %s: %w", name, err)
	}
	var next int64
	if version == 0 {
		err = s.pool.QueryRow(ctx, `INSERT INTO `+s.controls+` (name, control, version) VALUES ($1, $2, 1)
ON CONFLICT (name) DO NOTHING RETURNING version`, name, raw).Scan(&next)
	} else {
		err = s.pool.QueryRow(ctx, `UPDATE `+s.controls+` SET control = $2, version = version + 1, updated_at = now()
WHERE name = $1 AND version = $3 RETURNING version`, name, raw, int64(version)).Scan(&next)
	}
	if errors.Is(err, pgx.ErrNoRows) {
		return 0, fmt.Errorf("pgprojection: save control of %s: %w: not at version %d", name, projection.ErrControlChanged, version)
	}
	if err != nil {
		return 0, fmt.Errorf("pgprojection: save control of %s: %w", name, err)
	}
	return uint64(next), nil
}
