package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"iter"
	"net"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/eventsourced-go/eventsourced/entity"
	"github.com/eventsourced-go/eventsourced/eventlog"
	"github.com/eventsourced-go/eventsourced/postgreslog"
)

// The postgres scenarios, against the server at -pg-dsn (default
// $EVENTSOURCED_POSTGRES_DSN; skipped without one). Every system run gets a
// fresh schema, dropped afterwards.
//
// postgres: 10,000 entities, one caller each, every command persisting one
// event, request/reply. The subject is the entity runtime on postgreslog
// (group commit). It is compared with
//   - raw-copy, the ceiling: this program inserting the same rows (same
//     table, same indexes) with COPY in batches of -pg-copy-batch rows,
//     one transaction per batch, no runtime and no checks;
//   - insert-per-event: the same entity runtime on a log that does what Go
//     event stores typically ship (hallgren/eventsourcing's SQL store,
//     eventhorizon, goes' postgres store): one transaction per append that
//     reads the stream's version and INSERTs each event, Positions from a
//     bigserial;
//   - the peers on their own PostgreSQL stores (peer_pg.go): hallgren-sql
//     (hallgren/eventsourcing on eventstore/sql's NewPostgres) and
//     goes-postgres (modernice/goes on backend/postgres), each with its
//     own tables, one load/command/save per command.
//
// postgres-hot: one entity, 64 concurrent callers, on postgreslog: command
// batching on (the entity's default) versus off (entity.WithMaxBatch(1),
// one append and so one commit round trip per command).

var pgFlags struct {
	dsn        string
	entities   int
	commands   int
	conns      int
	logWorkers int
	copyBatch  int
	copyConns  int
	hotCallers int
	// remoteDelay is postgres-remote's latency per direction.
	remoteDelay time.Duration
}

func init() {
	RegisterFlags(func(fs *flag.FlagSet) {
		fs.StringVar(&pgFlags.dsn, "pg-dsn", os.Getenv("EVENTSOURCED_POSTGRES_DSN"), "postgres: server DSN (default $EVENTSOURCED_POSTGRES_DSN)")
		fs.IntVar(&pgFlags.entities, "pg-entities", 10_000, "postgres: entities (one caller each)")
		fs.IntVar(&pgFlags.commands, "pg-commands", 10, "postgres: commands per entity, one after the other")
		fs.IntVar(&pgFlags.conns, "pg-conns", 16, "postgres: pool size (pgxpool MaxConns) of every system")
		fs.IntVar(&pgFlags.logWorkers, "pg-log-concurrency", postgreslog.DefaultConcurrency, "postgres: group-commit transactions the eventsourced Log runs at once (postgreslog.WithConcurrency)")
		fs.IntVar(&pgFlags.copyBatch, "pg-copy-batch", 10_000, "postgres: rows per COPY of the raw-copy ceiling")
		fs.IntVar(&pgFlags.copyConns, "pg-copy-conns", 2, "postgres: concurrent COPY connections of the raw-copy ceiling")
		fs.IntVar(&pgFlags.hotCallers, "pg-hot-callers", 64, "postgres-hot: concurrent callers of the one entity")
		fs.DurationVar(&pgFlags.remoteDelay, "pg-remote-delay", time.Millisecond, "postgres-remote: latency the proxy adds to each direction")
	})
	Register(Scenario{
		Name:      "postgres",
		Doc:       "10,000 entities, 1 event/command, request/reply, on PostgreSQL (-pg-dsn)",
		Unit:      "commands",
		Reference: "raw-copy",
		Timeout:   4 * time.Minute,
		Targets: []Target{
			{
				Desc: "eventsourced >= 50% of raw COPY",
				Check: func(s *Summary) (string, bool) {
					v, ok := s.Ratio("eventsourced", "raw-copy")
					return fmt.Sprintf("%.0f%%", 100*v), ok && v >= 0.5
				},
			},
			{
				Desc: "eventsourced >= 10x one INSERT per event",
				Check: func(s *Summary) (string, bool) {
					v, ok := s.Ratio("eventsourced", "insert-per-event")
					return fmt.Sprintf("%.1fx", v), ok && v >= 10
				},
			},
			cpuTarget("eventsourced", 3.5, "raw-copy-callers"),
		},
		Systems: []System{
			{Name: "eventsourced", Role: Subject, Doc: "entity.Ask on an entity.System over postgreslog (group commit)", Run: pgEventsourced(false)},
			{Name: "raw-copy", Role: Ceiling, Doc: "the same rows COPYed into the same table in large batches, no runtime, no checks", Run: pgRawCopy(false)},
			{Name: "raw-copy-callers", Role: Variant, Doc: "the floor of the request/reply shape: one caller per entity queues its raw-copy row and waits for its round's COPY; no runtime, no encoding, no checks", Run: pgRawCopyCallers},
			{Name: "insert-per-event", Role: Variant, Doc: "the same runtime on a log with one transaction per append and one INSERT per event (what Go event stores ship)", Run: pgInsertPerEvent(false)},
			{Name: "hallgren-sql", Role: Peer, Doc: "hallgren/eventsourcing v0.9.1 aggregates on its eventstore/sql v0.7.0 NewPostgres (lib/pq), load/command/save per command", Run: pgHallgren},
			{Name: "goes-postgres", Role: Peer, Doc: "modernice/goes v0.9.0 TypedRepository.Use per command on backend/postgres NewEventStore (pgx pool, JSON data)", Run: pgGoes},
		},
	})
	Register(Scenario{
		Name:      "postgres-remote",
		Doc:       "postgres's workload with every connection through a loopback proxy adding 1 ms each way (-pg-remote-delay)",
		Unit:      "commands",
		Reference: "raw-copy",
		Timeout:   4 * time.Minute,
		Targets: []Target{{
			Desc: "eventsourced >= 50% of raw COPY through the same proxy",
			Check: func(s *Summary) (string, bool) {
				v, ok := s.Ratio("eventsourced", "raw-copy")
				p99 := "p99 n/a"
				if r := s.Row("eventsourced"); r != nil && r.Median != nil {
					p99 = "eventsourced p99 " + fmtDur(r.Median.Latency.P99)
				}
				return fmt.Sprintf("%.0f%%; %s", 100*v, p99), ok && v >= 0.5
			},
		}},
		Systems: []System{
			{Name: "eventsourced", Role: Subject, Doc: "entity.Ask on an entity.System over postgreslog, through the proxy", Run: pgEventsourced(true)},
			{Name: "raw-copy", Role: Ceiling, Doc: "the same rows by COPY in large batches, through the proxy", Run: pgRawCopy(true)},
			{Name: "insert-per-event", Role: Variant, Doc: "one transaction and one INSERT per event, through the proxy", Run: pgInsertPerEvent(true)},
		},
	})
	Register(Scenario{
		Name:      "postgres-hot",
		Doc:       "1 entity, 64 concurrent callers, on PostgreSQL: command batching on vs off",
		Unit:      "commands",
		Subject:   "batching-on",
		Reference: "batching-off",
		Targets: []Target{{
			Desc: "batching on >= 10x off",
			Check: func(s *Summary) (string, bool) {
				v, ok := s.Ratio("batching-on", "batching-off")
				return fmt.Sprintf("%.1fx", v), ok && v >= 10
			},
		}},
		Systems: []System{
			{Name: "batching-on", Role: Subject, Doc: "postgreslog, the entity's default batching (up to 256 commands per append)", Run: pgHot(256)},
			{Name: "batching-off", Role: Variant, Doc: "postgreslog, entity.WithMaxBatch(1): one append per command", Run: pgHot(1)},
		},
	})
}

// pgEnv is a pool and a fresh schema for one system run.
type pgEnv struct {
	pool   *pgxpool.Pool
	schema string
	// proxy is postgres-remote's latency proxy (a helper process, so its
	// CPU is not the client's); nil when connected directly.
	proxy *helper
	// rtt is the median round trip of a ping, measured at setup.
	rtt time.Duration
}

func pgSetup(ctx context.Context) (*pgEnv, error) { return pgSetupVia(ctx, false) }

// pgSetupVia connects to -pg-dsn, through a delayProxy adding
// -pg-remote-delay each way if remote.
func pgSetupVia(ctx context.Context, remote bool) (*pgEnv, error) {
	if pgFlags.dsn == "" {
		return nil, Skip("no -pg-dsn and no EVENTSOURCED_POSTGRES_DSN")
	}
	cfg, err := pgxpool.ParseConfig(pgFlags.dsn)
	if err != nil {
		return nil, err
	}
	cfg.MaxConns = int32(pgFlags.conns)
	e := &pgEnv{}
	if remote {
		cc := cfg.ConnConfig
		if strings.HasPrefix(cc.Host, "/") {
			return nil, Skip("postgres-remote needs a TCP -pg-dsn, not a unix socket (%s)", cc.Host)
		}
		upstream := net.JoinHostPort(cc.Host, strconv.Itoa(int(cc.Port)))
		if e.proxy, err = startHelper(helperSpec{Kind: "delay-proxy", Upstream: upstream, Delay: pgFlags.remoteDelay}); err != nil {
			return nil, err
		}
		host, port, err := net.SplitHostPort(e.proxy.addr)
		if err != nil {
			e.proxy.close()
			return nil, err
		}
		p, _ := strconv.Atoi(port)
		cc.Host, cc.Port, cc.Fallbacks = host, uint16(p), nil
	}
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		e.closeProxy()
		return nil, err
	}
	e.pool = pool
	var rtts []time.Duration
	for range 11 {
		t0 := time.Now()
		if err := pool.Ping(ctx); err != nil {
			e.pool.Close()
			e.closeProxy()
			return nil, fmt.Errorf("ping %s: %w", pgFlags.dsn, err)
		}
		rtts = append(rtts, time.Since(t0))
	}
	slices.Sort(rtts)
	e.rtt = rtts[len(rtts)/2]
	b := make([]byte, 6)
	_, _ = rand.Read(b)
	e.schema = "bench_" + hex.EncodeToString(b)
	return e, nil
}

func (e *pgEnv) closeProxy() {
	if e.proxy != nil {
		e.proxy.close()
	}
}

func (e *pgEnv) close() {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	_, _ = e.pool.Exec(ctx, "DROP SCHEMA IF EXISTS "+pgx.Identifier{e.schema}.Sanitize()+" CASCADE")
	e.pool.Close()
	e.closeProxy()
}

// note adds the ping round trip to res when the run went through the
// proxy.
func (e *pgEnv) note(res *Result) {
	if e.proxy == nil {
		return
	}
	if res.Metrics == nil {
		res.Metrics = map[string]float64{}
	}
	res.Metrics["ping RTT ms"] = float64(e.rtt.Microseconds()) / 1000
}

// postgreslog returns a Log on tables set up in the run's schema.
func (e *pgEnv) postgreslog(ctx context.Context) (*postgreslog.Log, error) {
	if err := postgreslog.Setup(ctx, e.pool, postgreslog.WithSchema(e.schema)); err != nil {
		return nil, err
	}
	return postgreslog.New(e.pool, postgreslog.WithSchema(e.schema), postgreslog.WithConcurrency(pgFlags.logWorkers))
}

// pgSize returns the scenario's entities and commands per entity.
func pgSize(env *Env) (entities, commands int) {
	return env.Scale(pgFlags.entities, 200), env.Scale(pgFlags.commands, 3)
}

// runCounters drives n entities with cmds increments each through an
// entity.System on log, one caller per entity, after activating every
// entity (not measured).
func runCounters(ctx context.Context, env *Env, log eventlog.Log, n, cmds int, onStart func()) (Result, error) {
	sys, err := entity.NewSystem(log)
	if err != nil {
		return Result{}, err
	}
	defer sys.Close()
	kind, err := entity.Register(sys, counterType())
	if err != nil {
		return Result{}, err
	}
	refs := make([]entity.Ref[Counter, CounterEvent], n)
	for i := range refs {
		refs[i] = kind.Ref(entityID(i))
	}
	t0 := time.Now()
	if err := activate(ctx, refs); err != nil {
		return Result{}, err
	}
	activated := time.Since(t0)
	if onStart != nil {
		onStart() // the measured part starts
	}
	ctx, cancel := Budget(ctx, env, 90*time.Second)
	defer cancel()
	res, err := Drive(ctx, env, n, cmds, func(ctx context.Context, c, i int) error {
		v, err := entity.Ask(ctx, refs[c], Increment{By: 1})
		if err == nil && v != int64(i+1) {
			err = fmt.Errorf("reply %d, want %d", v, i+1)
		}
		return err
	})
	if err == nil {
		// Activation (a recovery from an empty stream per entity, 64 at a
		// time) is not part of the measured work; say what it took.
		if res.Metrics == nil {
			res.Metrics = map[string]float64{}
		}
		res.Metrics["activations/s"] = float64(n) / activated.Seconds()
	}
	return res, err
}

// activate recovers every entity (an empty read each) before the clock
// starts, 64 at a time.
func activate(ctx context.Context, refs []entity.Ref[Counter, CounterEvent]) error {
	sem := make(chan struct{}, 64)
	var wg sync.WaitGroup
	var mu sync.Mutex // guards first
	var first error
	for _, ref := range refs {
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			if _, err := entity.Ask(ctx, ref, Get{}); err != nil {
				mu.Lock()
				first = cmpErr(first, err)
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	return first
}

func cmpErr(a, b error) error {
	if a != nil {
		return a
	}
	return b
}

// countRows checks that the table holds want rows, one per acknowledged
// command of res. A run cut by its time budget (done% set) may hold a few
// more: commands in flight at the deadline can commit after their caller
// gave up, so then it checks that no acknowledged row is missing.
func countRows(ctx context.Context, pool *pgxpool.Pool, table string, res Result) error {
	want := res.Ops
	var got int64
	if err := pool.QueryRow(ctx, "SELECT count(*) FROM "+table).Scan(&got); err != nil {
		return err
	}
	if _, cut := res.Metrics["done%"]; cut && got >= want {
		return nil
	}
	if got != want {
		return fmt.Errorf("%s holds %d rows after %d acknowledged commands", table, got, want)
	}
	return nil
}

func pgEventsourced(remote bool) func(ctx context.Context, env *Env) (Result, error) {
	return func(ctx context.Context, env *Env) (Result, error) {
		pe, err := pgSetupVia(ctx, remote)
		if err != nil {
			return Result{}, err
		}
		defer pe.close()
		log, err := pe.postgreslog(ctx)
		if err != nil {
			return Result{}, err
		}
		defer log.Close()
		n, cmds := pgSize(env)
		before := log.Stats()
		res, err := runCounters(ctx, env, log, n, cmds, nil)
		if err != nil {
			return res, err
		}
		if err := countRows(ctx, pe.pool, pgx.Identifier{pe.schema, "eventsourced_events"}.Sanitize(), res); err != nil {
			return res, err
		}
		st := log.Stats()
		res.Metrics["events/transaction"] = float64(st.Events-before.Events) / float64(max(1, st.Batches-before.Batches))
		pe.note(&res)
		return res, nil
	}
}

// pgRawCopy is the ceiling: the rows eventsourced writes for the same
// workload (same table and indexes, created by postgreslog's Setup), sent
// with COPY in large batches, one transaction each, from -pg-copy-conns
// connections. Ops counts rows, one per command of the workload.
func pgRawCopy(remote bool) func(ctx context.Context, env *Env) (Result, error) {
	return func(ctx context.Context, env *Env) (Result, error) { return pgRawCopyVia(ctx, env, remote) }
}

// rawRows is what the raw systems write: the events table of a fresh
// schema (created by a postgreslog that is closed again) and the rows of
// the workload, whose one event's bytes are made once.
type rawRows struct {
	pe      *pgEnv
	n, cmds int      // entities, commands per entity
	ids     []string // entity ids
	data    []byte   // the event's bytes
	table   pgx.Identifier
	cols    []string
}

func newRawRows(ctx context.Context, env *Env, remote bool) (*rawRows, error) {
	pe, err := pgSetupVia(ctx, remote)
	if err != nil {
		return nil, err
	}
	log, err := pe.postgreslog(ctx)
	if err != nil {
		pe.close()
		return nil, err
	}
	log.Close() // only its tables are needed
	_, _, data, err := counterType().Events.Encode(Incremented{By: 1})
	if err != nil {
		pe.close()
		return nil, err
	}
	r := &rawRows{
		pe: pe, data: data,
		table: pgx.Identifier{pe.schema, "eventsourced_events"},
		cols:  []string{"entity_type", "entity_id", "seq", "position", "name", "revision", "data"},
	}
	r.n, r.cmds = pgSize(env)
	r.ids = make([]string, r.n)
	for i := range r.ids {
		r.ids[i] = entityID(i)
	}
	return r, nil
}

// row is the row of entity c's event at seq, at position pos.
func (r *rawRows) row(c, seq int, pos int64) []any {
	return []any{"Counter", r.ids[c], int64(seq), pos, "Incremented", int64(0), r.data}
}

func pgRawCopyVia(ctx context.Context, env *Env, remote bool) (Result, error) {
	rr, err := newRawRows(ctx, env, remote)
	if err != nil {
		return Result{}, err
	}
	pe := rr.pe
	defer pe.close()
	// The rows in the order the workload commits them: round after round
	// of one command per entity.
	total := rr.n * rr.cmds
	rows := make([][]any, 0, total)
	for seq := 1; seq <= rr.cmds; seq++ {
		for c := range rr.n {
			rows = append(rows, rr.row(c, seq, int64(len(rows)+1)))
		}
	}
	batch := env.Scale(pgFlags.copyBatch, 100)
	conns := max(1, pgFlags.copyConns)
	var next int
	var mu sync.Mutex // guards next
	var wg sync.WaitGroup
	errs := make([]error, conns)
	recs := make([]*Recorder, conns)
	for c := range recs {
		recs[c] = env.Recorder(total/batch/conns + 1)
	}
	sw := startStopwatch()
	for c := range conns {
		wg.Go(func() {
			for {
				mu.Lock()
				lo := next
				next = min(next+batch, total)
				hi := next
				mu.Unlock()
				if lo >= hi {
					return
				}
				b0 := time.Now()
				if _, err := pe.pool.CopyFrom(ctx, rr.table, rr.cols, pgx.CopyFromRows(rows[lo:hi])); err != nil {
					errs[c] = err
					return
				}
				recs[c].Record(time.Since(b0))
				env.Progress(int64(hi), int64(total))
			}
		})
	}
	wg.Wait()
	elapsed, cpu := sw.stop()
	if err := errors.Join(errs...); err != nil {
		return Result{}, err
	}
	res := Result{
		Ops: int64(total), Elapsed: elapsed, CPU: cpu,
		Metrics: map[string]float64{"rows/COPY": float64(batch), "connections": float64(conns)},
		Notes:   []string{"latency is per COPY batch, not per command"},
	}
	pe.note(&res)
	return res, nil
}

func pgInsertPerEvent(remote bool) func(ctx context.Context, env *Env) (Result, error) {
	return func(ctx context.Context, env *Env) (Result, error) {
		pe, err := pgSetupVia(ctx, remote)
		if err != nil {
			return Result{}, err
		}
		defer pe.close()
		log, err := newInsertLog(ctx, pe.pool, pe.schema)
		if err != nil {
			return Result{}, err
		}
		n, cmds := pgSize(env)
		res, err := runCounters(ctx, env, log, n, cmds, nil)
		if err != nil {
			return res, err
		}
		if err := countRows(ctx, pe.pool, log.table, res); err != nil {
			return res, err
		}
		pe.note(&res)
		return res, nil
	}
}

func pgHot(maxBatch int) func(ctx context.Context, env *Env) (Result, error) {
	return func(ctx context.Context, env *Env) (Result, error) {
		pe, err := pgSetup(ctx)
		if err != nil {
			return Result{}, err
		}
		defer pe.close()
		log, err := pe.postgreslog(ctx)
		if err != nil {
			return Result{}, err
		}
		defer log.Close()
		sys, err := entity.NewSystem(log)
		if err != nil {
			return Result{}, err
		}
		defer sys.Close()
		kind, err := entity.Register(sys, counterType(), entity.WithMaxBatch(maxBatch))
		if err != nil {
			return Result{}, err
		}
		ref := kind.Ref("hot")
		if _, err := entity.Ask(ctx, ref, Get{}); err != nil {
			return Result{}, err
		}
		callers := env.Scale(pgFlags.hotCallers, 8)
		per := env.Scale(500, 5)
		if maxBatch == 1 {
			per = env.Scale(50, 5)
		}
		before := log.Stats()
		res, err := driveHot(ctx, env, ref, callers, per, 60*time.Second)
		if err != nil {
			return res, err
		}
		st := log.Stats()
		res.Metrics = map[string]float64{"commands/append": float64(res.Ops) / float64(max(1, st.Appends-before.Appends))}
		return res, nil
	}
}

// insertLog is the baseline log: what Go event stores typically ship. Each
// Append is one transaction that reads the stream's last version and then
// INSERTs the events one by one; the unique key turns a lost race into a
// conflict; Positions come from a bigserial (so readers by Position could
// skip late commits: it does not implement reads by type). Only what the
// entity runtime needs is implemented.
type insertLog struct {
	pool   *pgxpool.Pool
	table  string
	insert string
	last   string
	read   string
}

func newInsertLog(ctx context.Context, pool *pgxpool.Pool, schema string) (*insertLog, error) {
	s := pgx.Identifier{schema}.Sanitize()
	table := pgx.Identifier{schema, "events"}.Sanitize()
	for _, stmt := range []string{
		"CREATE SCHEMA " + s,
		"CREATE TABLE " + table + ` (
			position bigserial PRIMARY KEY,
			entity_type text NOT NULL,
			entity_id text NOT NULL,
			seq bigint NOT NULL,
			name text NOT NULL,
			revision bigint NOT NULL,
			data bytea NOT NULL,
			metadata jsonb,
			committed_at timestamptz NOT NULL DEFAULT now(),
			UNIQUE (entity_type, entity_id, seq))`,
	} {
		if _, err := pool.Exec(ctx, stmt); err != nil {
			return nil, err
		}
	}
	return &insertLog{
		pool:   pool,
		table:  table,
		insert: "INSERT INTO " + table + " (entity_type, entity_id, seq, name, revision, data) VALUES ($1, $2, $3, $4, $5, $6) RETURNING position",
		last:   "SELECT coalesce(max(seq), 0) FROM " + table + " WHERE entity_type = $1 AND entity_id = $2",
		read:   "SELECT seq, position, name, revision, data, committed_at FROM " + table + " WHERE entity_type = $1 AND entity_id = $2 AND seq >= $3 ORDER BY seq",
	}, nil
}

// detach returns a context with ctx's deadline that is not derived from
// ctx. The entity runtime's store contexts currently break when pgx derives
// contexts from them after the call (a data race, and a "missing cancel
// error" panic under load; reported); the baseline must not crash for it.
func detach(ctx context.Context) (context.Context, context.CancelFunc) {
	if d, ok := ctx.Deadline(); ok {
		return context.WithDeadline(context.Background(), d)
	}
	return context.WithCancel(context.Background())
}

func (l *insertLog) Append(ctx context.Context, typ, id string, expected uint64, events ...eventlog.Event) (uint64, error) {
	if err := eventlog.Validate(typ, id, events); err != nil {
		return 0, err
	}
	ctx, cancel := detach(ctx)
	defer cancel()
	tx, err := l.pool.Begin(ctx)
	if err != nil {
		return 0, err
	}
	defer tx.Rollback(context.Background())
	var last int64
	if err := tx.QueryRow(ctx, l.last, typ, id).Scan(&last); err != nil {
		return 0, err
	}
	if uint64(last) != expected {
		return 0, &eventlog.ConflictError{EntityType: typ, EntityID: id, Expected: expected, Actual: uint64(last)}
	}
	var pos int64
	for i, ev := range events {
		data := ev.Data
		if data == nil {
			data = []byte{}
		}
		if err := tx.QueryRow(ctx, l.insert, typ, id, int64(expected)+int64(i)+1, ev.Name, int64(ev.Revision), data).Scan(&pos); err != nil {
			var pgErr *pgconn.PgError
			if errors.As(err, &pgErr) && pgErr.Code == "23505" {
				return 0, &eventlog.ConflictError{EntityType: typ, EntityID: id, Expected: expected, Actual: expected + 1}
			}
			return 0, err
		}
	}
	if err := tx.Commit(ctx); err != nil {
		return 0, err
	}
	return uint64(pos), nil
}

func (l *insertLog) LastSeq(ctx context.Context, typ, id string) (uint64, error) {
	ctx, cancel := detach(ctx)
	defer cancel()
	var last int64
	err := l.pool.QueryRow(ctx, l.last, typ, id).Scan(&last)
	return uint64(last), err
}

func (l *insertLog) ReadEntity(ctx context.Context, typ, id string, from uint64) iter.Seq2[eventlog.Record, error] {
	return func(yield func(eventlog.Record, error) bool) {
		ctx, cancel := detach(ctx)
		defer cancel()
		rows, err := l.pool.Query(ctx, l.read, typ, id, int64(max(from, 1)))
		if err != nil {
			yield(eventlog.Record{}, err)
			return
		}
		defer rows.Close()
		for rows.Next() {
			r := eventlog.Record{EntityType: typ, EntityID: id}
			var seq, pos, rev int64
			if err := rows.Scan(&seq, &pos, &r.Name, &rev, &r.Data, &r.Time); err != nil {
				yield(eventlog.Record{}, err)
				return
			}
			r.Seq, r.Position, r.Revision = uint64(seq), uint64(pos), uint32(rev)
			if !yield(r, nil) {
				return
			}
		}
		if err := rows.Err(); err != nil {
			yield(eventlog.Record{}, err)
		}
	}
}

var errNotImplemented = errors.New("insertLog: reads by type are not implemented (the benchmark does not need them)")

func (l *insertLog) ReadType(ctx context.Context, typ string, after uint64) iter.Seq2[eventlog.Record, error] {
	return func(yield func(eventlog.Record, error) bool) { yield(eventlog.Record{}, errNotImplemented) }
}

func (l *insertLog) Subscribe(ctx context.Context, typ string, after uint64) iter.Seq2[eventlog.Record, error] {
	return l.ReadType(ctx, typ, after)
}
