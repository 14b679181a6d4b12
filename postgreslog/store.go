package postgreslog

import (
	"context"
	"errors"
	"fmt"
	"math"
	"sync/atomic"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/eventsourced-go/eventsourced/eventlog"
	itel "github.com/eventsourced-go/eventsourced/internal/telemetry"
	"github.com/eventsourced-go/eventsourced/snapshotstore"
)

// Compile-time checks that Store provides the contract and its optional
// capabilities.
var (
	_ snapshotstore.Store  = (*SnapshotStore)(nil)
	_ snapshotstore.Lister = (*SnapshotStore)(nil)
	_ snapshotstore.Closer = (*SnapshotStore)(nil)
)

// SnapshotStore is a [snapshotstore.Store] on PostgreSQL, in the snapshots
// table of the same schema as the [Log]. It also implements
// [snapshotstore.Lister] and [snapshotstore.Closer]. Create it with
// [NewSnapshotStore]; closing it does not close the pool.
type SnapshotStore struct {
	pool   *pgxpool.Pool
	n      names
	sql    statements
	tel    *itel.SnapshotOps
	closed atomic.Bool
}

// NewSnapshotStore returns a SnapshotStore keeping snapshots in the table
// the options name, through pool. It takes the options that name the
// tables ([WithSchema], [WithTablePrefix], [WithTables]) and those of
// telemetry ([WithTracerProvider], [WithMeterProvider]), and refuses the
// others. Like New it does not touch the database: run [Setup] first.
func NewSnapshotStore(pool *pgxpool.Pool, opts ...Option) (*SnapshotStore, error) {
	cfg, err := newConfig(forStore, opts)
	if err != nil {
		return nil, err
	}
	if pool == nil {
		return nil, fmt.Errorf("%w: NewSnapshotStore with a nil pool", ErrInvalidOption)
	}
	n := resolveNames(cfg)
	return &SnapshotStore{pool: pool, n: n, sql: newStatements(n), tel: newStoreTelemetry(cfg)}, nil
}

// Save implements [snapshotstore.Store]. The upsert and the trimming to keep
// snapshots run in one transaction.
func (s *SnapshotStore) Save(ctx context.Context, snap snapshotstore.Snapshot, keep int) error {
	ctx, op := s.tel.Start(ctx, itel.SnapshotSave, snap.EntityType, snap.EntityID)
	err := s.save(ctx, snap, keep)
	s.tel.End(ctx, op, err)
	return err
}

func (s *SnapshotStore) save(ctx context.Context, snap snapshotstore.Snapshot, keep int) error {
	if err := snapshotstore.Validate(snap); err != nil {
		return err
	}
	if err := s.ready(ctx); err != nil {
		return err
	}
	if snap.Seq > math.MaxInt64 {
		return fmt.Errorf("%w: snapshot of %s/%s at seq %d beyond the largest bigint", snapshotstore.ErrInvalid, eventlog.FormatID(snap.EntityType), eventlog.FormatID(snap.EntityID), snap.Seq)
	}
	data := snap.Data
	if data == nil {
		data = []byte{}
	}
	// A batch without BEGIN runs as one implicit transaction.
	b := &pgx.Batch{}
	b.Queue(s.sql.saveSnapshot, snap.EntityType, snap.EntityID, int64(snap.Seq), int64(snap.Revision), data)
	if keep > 0 {
		b.Queue(s.sql.trimSnapshots, snap.EntityType, snap.EntityID, keep-1)
	}
	if err := s.pool.SendBatch(ctx, b).Close(); err != nil {
		return s.wrap(ctx, err, "save snapshot of %s/%s at seq %d", eventlog.FormatID(snap.EntityType), eventlog.FormatID(snap.EntityID), snap.Seq)
	}
	return nil
}

// Load implements [snapshotstore.Store].
func (s *SnapshotStore) Load(ctx context.Context, typ, id string) (snapshotstore.Snapshot, bool, error) {
	ctx, op := s.tel.Start(ctx, itel.SnapshotLoad, typ, id)
	snap, ok, err := s.load(ctx, typ, id)
	s.tel.End(ctx, op, err)
	return snap, ok, err
}

func (s *SnapshotStore) load(ctx context.Context, typ, id string) (snapshotstore.Snapshot, bool, error) {
	if err := snapshotstore.ValidateKey(typ, id); err != nil {
		return snapshotstore.Snapshot{}, false, err
	}
	if err := s.ready(ctx); err != nil {
		return snapshotstore.Snapshot{}, false, err
	}
	snap := snapshotstore.Snapshot{EntityType: typ, EntityID: id}
	var seq, rev int64
	err := s.pool.QueryRow(ctx, s.sql.loadSnapshot, typ, id).Scan(&seq, &rev, &snap.Data, &snap.Time)
	switch {
	case errors.Is(err, pgx.ErrNoRows):
		return snapshotstore.Snapshot{}, false, nil
	case err != nil:
		return snapshotstore.Snapshot{}, false, s.wrap(ctx, err, "load snapshot of %s/%s", eventlog.FormatID(typ), eventlog.FormatID(id))
	}
	snap.Seq, snap.Revision = uint64(seq), uint32(rev)
	return snap, true, nil
}

// Delete implements [snapshotstore.Store].
func (s *SnapshotStore) Delete(ctx context.Context, typ, id string) error {
	if err := snapshotstore.ValidateKey(typ, id); err != nil {
		return err
	}
	if err := s.ready(ctx); err != nil {
		return err
	}
	if _, err := s.pool.Exec(ctx, s.sql.deleteSnapshots, typ, id); err != nil {
		return s.wrap(ctx, err, "delete snapshots of %s/%s", eventlog.FormatID(typ), eventlog.FormatID(id))
	}
	return nil
}

// List implements [snapshotstore.Lister].
func (s *SnapshotStore) List(ctx context.Context, typ, id string) ([]snapshotstore.Snapshot, error) {
	if err := snapshotstore.ValidateKey(typ, id); err != nil {
		return nil, err
	}
	if err := s.ready(ctx); err != nil {
		return nil, err
	}
	rows, err := s.pool.Query(ctx, s.sql.listSnapshots, typ, id)
	if err != nil {
		return nil, s.wrap(ctx, err, "list snapshots of %s/%s", eventlog.FormatID(typ), eventlog.FormatID(id))
	}
	var out []snapshotstore.Snapshot
	var seq, rev int64
	var data []byte
	var snap snapshotstore.Snapshot
	_, err = pgx.ForEachRow(rows, []any{&seq, &rev, &data, &snap.Time}, func() error {
		out = append(out, snapshotstore.Snapshot{
			EntityType: typ, EntityID: id, Seq: uint64(seq), Revision: uint32(rev), Data: data, Time: snap.Time,
		})
		data = nil
		return nil
	})
	if err != nil {
		return nil, s.wrap(ctx, err, "list snapshots of %s/%s", eventlog.FormatID(typ), eventlog.FormatID(id))
	}
	return out, nil
}

// Close implements [snapshotstore.Closer]. Afterwards the Store's methods
// return [snapshotstore.ErrClosed], Close included. It does not close the
// pool.
func (s *SnapshotStore) Close() error {
	if s.closed.Swap(true) {
		return snapshotstore.ErrClosed
	}
	return nil
}

func (s *SnapshotStore) ready(ctx context.Context) error {
	if s.closed.Load() {
		return snapshotstore.ErrClosed
	}
	return ctx.Err()
}

func (s *SnapshotStore) wrap(ctx context.Context, err error, format string, args ...any) error {
	what := fmt.Sprintf(format, args...)
	if ctxErr := ctx.Err(); ctxErr != nil {
		return fmt.Errorf("postgreslog: %s: %w", what, ctxErr)
	}
	if s.closed.Load() {
		return fmt.Errorf("postgreslog: %s: %w", what, snapshotstore.ErrClosed)
	}
	return fmt.Errorf("postgreslog: %s: %w", what, translate(err))
}
