package main

import (
	"context"
	gosql "database/sql"
	"fmt"
	"net/url"
	"strings"
	"time"

	"github.com/google/uuid"
	hgsql "github.com/hallgren/eventsourcing/eventstore/sql"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	_ "github.com/lib/pq" // hallgren's README uses lib/pq with eventstore/sql
	"github.com/modernice/goes/aggregate/repository"
	"github.com/modernice/goes/backend/postgres"
	"github.com/modernice/goes/codec"
)

// The peers on PostgreSQL, in the postgres scenario: the same workload
// (one caller per entity, each command waiting for its reply) on each
// library's own PostgreSQL event store, used as its documentation shows,
// with its own schema (its migration), in the run's fresh schema (through
// search_path: both stores use the unqualified table name "events").
// Neither keeps aggregates in memory between commands, so every command
// loads the aggregate's events, runs, and saves in a transaction of its own.

// pgPeerBudget is the time a peer gets for the workload; a slower one is
// measured on what it did (done%).
const pgPeerBudget = 90 * time.Second

// createSchema creates the run's schema for a peer's tables.
func (e *pgEnv) createSchema(ctx context.Context) error {
	_, err := e.pool.Exec(ctx, "CREATE SCHEMA "+pgx.Identifier{e.schema}.Sanitize())
	return err
}

// withSearchPath returns the DSN with search_path set to schema, in the
// DSN's own syntax (URL or key=value), which lib/pq and pgx both accept.
func withSearchPath(dsn, schema string) (string, error) {
	if strings.HasPrefix(dsn, "postgres://") || strings.HasPrefix(dsn, "postgresql://") {
		u, err := url.Parse(dsn)
		if err != nil {
			return "", err
		}
		q := u.Query()
		q.Set("search_path", schema)
		u.RawQuery = q.Encode()
		return u.String(), nil
	}
	return dsn + " search_path=" + schema, nil
}

// pgHallgren runs hallgren/eventsourcing's aggregates (peer_hallgren.go) on
// its eventstore/sql Postgres store: sql.Open("postgres", dsn) with lib/pq
// and sql.NewPostgres(db), which migrates its events table, as the module's
// README shows.
func pgHallgren(ctx context.Context, env *Env) (Result, error) {
	pe, err := pgSetup(ctx)
	if err != nil {
		return Result{}, err
	}
	defer pe.close()
	if err := pe.createSchema(ctx); err != nil {
		return Result{}, err
	}
	dsn, err := withSearchPath(pgFlags.dsn, pe.schema)
	if err != nil {
		return Result{}, err
	}
	db, err := gosql.Open("postgres", dsn)
	if err != nil {
		return Result{}, fmt.Errorf("db open: %w", err)
	}
	// The same pool size as every other system (-pg-conns).
	db.SetMaxOpenConns(pgFlags.conns)
	db.SetMaxIdleConns(pgFlags.conns)
	if err := db.PingContext(ctx); err != nil {
		db.Close()
		return Result{}, err
	}
	es, err := hgsql.NewPostgres(db)
	if err != nil {
		db.Close()
		return Result{}, fmt.Errorf("hallgren NewPostgres: %w", err)
	}
	defer es.Close()
	hgSetup()
	n, cmds := pgSize(env)
	ids := make([]string, n)
	for i := range ids {
		ids[i] = entityID(i)
	}
	bctx, cancel := Budget(ctx, env, pgPeerBudget)
	defer cancel()
	res, err := Drive(bctx, env, n, cmds, func(ctx context.Context, c, i int) error {
		v, err := hgIncrement(ctx, es, ids[c])
		if err == nil && v != int64(i+1) {
			err = fmt.Errorf("reply %d, want %d", v, i+1)
		}
		return err
	})
	if err != nil {
		return res, err
	}
	if err := countRows(ctx, pe.pool, pgx.Identifier{pe.schema, "events"}.Sanitize(), res); err != nil {
		return res, err
	}
	return res, nil
}

// pgGoes runs modernice/goes' aggregates (peer_goes.go) on its
// backend/postgres event store: postgres.NewEventStore(enc, ...) with a
// codec registry for the event data (JSON, the default of codec.New), on a
// pgx pool of -pg-conns connections (the Pool option; the store creates its
// table and indexes on Connect), and a typed repository over it.
func pgGoes(ctx context.Context, env *Env) (Result, error) {
	pe, err := pgSetup(ctx)
	if err != nil {
		return Result{}, err
	}
	defer pe.close()
	if err := pe.createSchema(ctx); err != nil {
		return Result{}, err
	}
	cfg, err := pgxpool.ParseConfig(pgFlags.dsn)
	if err != nil {
		return Result{}, err
	}
	cfg.MaxConns = int32(pgFlags.conns)
	cfg.ConnConfig.RuntimeParams["search_path"] = pe.schema
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return Result{}, err
	}
	defer pool.Close()
	enc := codec.New()
	codec.Register[int64](enc, goesIncremented)
	store := postgres.NewEventStore(enc, postgres.Pool(pool))
	if err := store.Connect(ctx); err != nil {
		return Result{}, fmt.Errorf("goes postgres Connect: %w", err)
	}
	repo := repository.Typed(repository.New(store), newGoesCounter)
	n, cmds := pgSize(env)
	ids := make([]uuid.UUID, n)
	for i := range ids {
		ids[i] = uuid.NewSHA1(uuid.NameSpaceOID, []byte(entityID(i)))
	}
	bctx, cancel := Budget(ctx, env, pgPeerBudget)
	defer cancel()
	res, err := Drive(bctx, env, n, cmds, func(ctx context.Context, c, i int) error {
		var v int64
		err := repo.Use(ctx, ids[c], func(a *goesCounter) error {
			err := a.Increment(1)
			v = a.Value
			return err
		})
		if err == nil && v != int64(i+1) {
			err = fmt.Errorf("reply %d, want %d", v, i+1)
		}
		return err
	})
	if err != nil {
		return res, err
	}
	if err := countRows(ctx, pe.pool, pgx.Identifier{pe.schema, "events"}.Sanitize(), res); err != nil {
		return res, err
	}
	return res, nil
}
