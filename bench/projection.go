package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/eventsourced-go/eventsourced/eventlog"
	"github.com/eventsourced-go/eventsourced/natslog"
	"github.com/eventsourced-go/eventsourced/postgreslog"
	"github.com/eventsourced-go/eventsourced/projection"
	"github.com/eventsourced-go/eventsourced/projection/pgprojection"
)

// The projection scenarios: how fast a projection catches up with a log of
// -projection-events events (default 1,000,000) of -projection-entities
// entities (10,000), and how far it lags behind writers going at full
// speed. `projection` runs on PostgreSQL (-pg-dsn), `projection-nats` on an
// NATS server in a helper process (helper.go); run both in one invocation:
//
//	go run ./bench projection projection-nats
//
// The events are loaded once per backend and invocation, by the first
// system run that needs them (not measured), and every later run of the
// invocation reads the same log: on PostgreSQL a schema
// bench_projection_<parent pid>_..., written with COPY; on NATS the data
// directory of the server under the temporary directory, written
// with natslog's Append, ten events of one entity per atomic batch. The
// last run of the invocation removes them; a run that finds one left by an
// invocation that no longer runs removes it too.
//
// Catch-up systems (Ops = the events of the log, handled once each):
//   - raw-read, the ceiling: Log.ReadType over every event, nothing else;
//   - projection-1, -2, -4: 1, 2 or 4 slices (projection.WithSlice) of one
//     projection in this process, started together, with a no-op handler,
//     WithBatchSize(-projection-batch) and a projection.Memory offset
//     store; the clock stops when every slice's WaitFor of the Position of
//     the last event of its slice has returned. Each slice reads the whole
//     type and keeps its entities' events, so n slices read n times the
//     log ("events read");
//   - pgprojection-1, -2, -4 (PostgreSQL only): the same with
//     pgprojection's store and a handler that writes one row per event
//     (COPY of the batch) in the transaction that moves the offset:
//     exactly once.
//
// Live systems (Ops = events appended; the latency columns are the lag of
// every event: its commit time, Record.Time, to the moment the handler got
// it): on a fresh, empty log, one writer goroutine per entity appends one
// event at a time with Log.Append for -projection-live, while one slice of
// a projection follows; the events committed in the first tenth of the
// time are warm-up and not sampled. live: no-op handler, memory offsets;
// pgprojection-live: one row per event, exactly once.

var projFlags struct {
	events     int
	natsEvents int
	entities   int
	batch      int
	live       time.Duration
}

// projType is the entity type of every event of the scenarios.
const projType = "Counter"

func init() {
	RegisterFlags(func(fs *flag.FlagSet) {
		fs.IntVar(&projFlags.events, "projection-events", 1_000_000, "projection: events in the log the catch-up systems read (rounded down to a multiple of -projection-entities)")
		fs.IntVar(&projFlags.natsEvents, "projection-nats-events", 100_000, "projection-nats: events in the log (natslog reads by type at ~10-20k events/s with 10,000 entities here, so 1,000,000 takes minutes per system run)")
		fs.IntVar(&projFlags.entities, "projection-entities", 10_000, "projection: entities of those events, and writers of the live systems")
		fs.IntVar(&projFlags.batch, "projection-batch", 256, "projection: WithBatchSize of every projection")
		fs.DurationVar(&projFlags.live, "projection-live", 10*time.Second, "projection: how long the writers of the live systems write")
	})
	for _, b := range []*projBackend{projPostgres, projNATS} {
		systems := []System{
			{Name: "raw-read", Role: Ceiling, Doc: "Log.ReadType over every event, nothing else", Run: b.rawRead},
			{Name: "projection-1", Role: Subject, Doc: "1 slice, no-op handler, memory offsets", Run: b.catchUp(1, false)},
			{Name: "projection-2", Role: Variant, Doc: "2 slices in one process, no-op handler, memory offsets", Run: b.catchUp(2, false)},
			{Name: "projection-4", Role: Variant, Doc: "4 slices in one process, no-op handler, memory offsets", Run: b.catchUp(4, false)},
		}
		if b.pg {
			systems = append(systems,
				System{Name: "pgprojection-1", Role: Variant, Doc: "1 slice, pgprojection: one row per event in the offset's transaction", Run: b.catchUp(1, true)},
				System{Name: "pgprojection-2", Role: Variant, Doc: "2 slices, pgprojection, one row per event", Run: b.catchUp(2, true)},
				System{Name: "pgprojection-4", Role: Variant, Doc: "4 slices, pgprojection, one row per event", Run: b.catchUp(4, true)},
			)
		}
		systems = append(systems, System{Name: "live", Role: Variant, Doc: "lag behind one writer per entity at full speed; no-op handler", Run: b.live(false)})
		if b.pg {
			systems = append(systems, System{Name: "pgprojection-live", Role: Variant, Doc: "lag behind one writer per entity at full speed; pgprojection, one row per event", Run: b.live(true)})
		}
		targets := []Target{{
			Desc: "projection-1 (catch-up, no-op handler) >= 50% of raw read",
			Check: func(s *Summary) (string, bool) {
				v, ok := s.Ratio("projection-1", "raw-read")
				return fmt.Sprintf("%.0f%%", 100*v), ok && v >= 0.5
			},
		}}
		Register(Scenario{
			Name:      b.scenario,
			Doc:       b.doc,
			Unit:      "events",
			Subject:   "projection-1",
			Reference: "raw-read",
			Timeout:   4 * time.Minute,
			Targets:   targets,
			Systems:   systems,
		})
	}
}

// projBackend is one backend of the scenarios.
type projBackend struct {
	scenario string
	doc      string
	pg       bool
	// fixture opens the log of the catch-up systems, loading it first if
	// no earlier run of the invocation did.
	fixture func(ctx context.Context, env *Env) (*projLog, error)
	// fresh opens an empty log for the live systems.
	fresh func(ctx context.Context) (*projLog, error)
	// drop removes the fixture of the invocation.
	drop func(ctx context.Context)
}

// projLog is a log a system runs on.
type projLog struct {
	log    eventlog.Log
	pool   *pgxpool.Pool // PostgreSQL only
	schema string        // PostgreSQL only
	// total is the number of events; lastOf the Position of each entity's
	// last event (fixtures only).
	total  int
	lastOf map[string]uint64
	close  func()
}

// projSize returns the fixture's entities, events per entity, and events
// per append (or per round of COPY) on PostgreSQL (pg) or NATS.
func projSize(env *Env, pg bool) (entities, per, chunk int) {
	events := projFlags.events
	if !pg {
		events = projFlags.natsEvents
	}
	entities = max(1, env.Scale(projFlags.entities, 100))
	per = max(1, env.Scale(events, 2_000)/entities)
	chunk = 1
	if per%10 == 0 {
		chunk = 10
	}
	return entities, per, chunk
}

// projKey names the fixture of this invocation: the parent process (every
// system run is a child of it) and the size.
func projKey(env *Env, pg bool) string {
	entities, per, _ := projSize(env, pg)
	return fmt.Sprintf("%d_%d_%d", os.Getppid(), entities*per, entities)
}

// projLastRun reports whether this child is the last system run of the
// invocation, from the child spec the parent passed (see runner.go), so
// that it can remove the fixture.
func projLastRun() bool {
	var spec childSpec
	if json.Unmarshal([]byte(os.Getenv(childEnv)), &spec) != nil {
		return false
	}
	o, _, err := parseArgs(spec.Args, new(strings.Builder))
	sc := scenarios[spec.Scenario]
	if err != nil || sc == nil {
		return false
	}
	systems := sc.Systems
	if o.systems != "" {
		want := strings.Split(o.systems, ",")
		systems = slices.DeleteFunc(slices.Clone(systems), func(s System) bool { return !slices.Contains(want, s.Name) })
	}
	reps := sc.Reps
	if o.reps > 0 {
		reps = o.reps
	} else if o.quick {
		reps = 1
	}
	if len(systems) == 0 {
		return false
	}
	last := systems[(len(systems)-1+reps-1)%len(systems)]
	return spec.Rep == reps-1 && spec.System == last.Name
}

// projCleanup removes the fixture after the invocation's last run.
func (b *projBackend) cleanup() {
	if projLastRun() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		b.drop(ctx)
	}
}

// alive reports whether a process with the pid runs on this machine.
func alive(pid int) bool {
	p, err := os.FindProcess(pid)
	if err != nil {
		return false
	}
	err = p.Signal(syscall.Signal(0))
	return err == nil || errors.Is(err, syscall.EPERM)
}

// staleKey reports whether a fixture key belongs to an invocation that no
// longer runs.
func staleKey(key string) bool {
	pid, _, _ := strings.Cut(key, "_")
	n, err := strconv.Atoi(pid)
	return err == nil && n != os.Getppid() && !alive(n)
}

// sliceTargets returns, for each slice of n, the Position of its last
// event: what the slice's WaitFor waits for.
func (pl *projLog) sliceTargets(n int) []uint64 {
	t := make([]uint64, n)
	for id, pos := range pl.lastOf {
		i := projection.SliceOf(projType, id, n)
		t[i] = max(t[i], pos)
	}
	return t
}

// projEvent is the data of every event: the counter's Incremented.
func projEvent() (eventlog.Event, error) {
	name, rev, data, err := counterType().Events.Encode(Incremented{By: 1})
	return eventlog.Event{Name: name, Revision: rev, Data: data}, err
}

// rawRead is the ceiling: one ReadType over the whole log.
func (b *projBackend) rawRead(ctx context.Context, env *Env) (Result, error) {
	defer b.cleanup()
	pl, err := b.fixture(ctx, env)
	if err != nil {
		return Result{}, err
	}
	defer pl.close()
	var n int64
	sw := startStopwatch()
	for _, err := range pl.log.ReadType(ctx, projType, 0) {
		if err != nil {
			return Result{}, err
		}
		if n++; n&4095 == 0 {
			env.Progress(n, int64(pl.total))
		}
	}
	elapsed, cpu := sw.stop()
	if n != int64(pl.total) {
		return Result{}, fmt.Errorf("read %d events, the log holds %d", n, pl.total)
	}
	return Result{Ops: n, Elapsed: elapsed, CPU: cpu, Metrics: map[string]float64{"events read": float64(n)},
		Notes: []string{"no latency: one read"}}, nil
}

// catchUp runs n slices of a projection over the fixture, from offset 0,
// until each has handled the last event of its slice. exactlyOnce uses
// pgprojection and writes one row per event.
func (b *projBackend) catchUp(n int, exactlyOnce bool) func(ctx context.Context, env *Env) (Result, error) {
	return func(ctx context.Context, env *Env) (Result, error) {
		defer b.cleanup()
		pl, err := b.fixture(ctx, env)
		if err != nil {
			return Result{}, err
		}
		defer pl.close()
		var handled atomic.Int64
		store, handler, check, drop, err := projHandler(ctx, pl, exactlyOnce, &handled, nil)
		if err != nil {
			return Result{}, err
		}
		defer drop()
		ps := make([]*projection.Projection, n)
		for i := range ps {
			if ps[i], err = projection.New(pl.log, projType, "bench", store, handler,
				projection.WithSlice(i, n), projection.WithBatchSize(projFlags.batch)); err != nil {
				return Result{}, err
			}
		}
		targets := pl.sliceTargets(n)
		ctx, cancel := context.WithTimeout(ctx, 3*time.Minute)
		defer cancel()
		stopProgress := projProgress(env, &handled, int64(pl.total))
		sw := startStopwatch()
		for _, p := range ps {
			if err := p.Start(ctx); err != nil {
				return Result{}, err
			}
		}
		errs := make([]error, n)
		var wg sync.WaitGroup
		for i, p := range ps {
			wg.Go(func() { errs[i] = p.WaitFor(ctx, targets[i]) })
		}
		wg.Wait()
		elapsed, cpu := sw.stop()
		stopProgress()
		for _, p := range ps {
			if err := p.Stop(context.Background()); err != nil {
				errs = append(errs, err)
			}
		}
		if err := errors.Join(errs...); err != nil {
			return Result{}, err
		}
		if got := handled.Load(); got != int64(pl.total) {
			return Result{}, fmt.Errorf("the slices handled %d events, the log holds %d", got, pl.total)
		}
		if err := check(ctx, int64(pl.total)); err != nil {
			return Result{}, err
		}
		return Result{
			Ops: int64(pl.total), Elapsed: elapsed, CPU: cpu,
			Metrics: map[string]float64{"slices": float64(n), "events read": float64(n * pl.total)},
			Notes:   []string{"no latency: catch-up time"},
		}, nil
	}
}

// projHandler returns the offset store and handler of a system, a check of
// the read model after the run and a function that drops it. The no-op
// handler counts events; the exactly-once one also writes one row per
// event with pgprojection. lag, if not nil, gets every event's lag.
func projHandler(ctx context.Context, pl *projLog, exactlyOnce bool, handled *atomic.Int64, lag func(batch []eventlog.Record)) (
	store projection.OffsetStore, h projection.Handler, check func(ctx context.Context, want int64) error, drop func(), err error) {
	if !exactlyOnce {
		h = func(_ context.Context, batch []eventlog.Record) error {
			if lag != nil {
				lag(batch)
			}
			handled.Add(int64(len(batch)))
			return nil
		}
		return projection.NewMemory(), h, func(context.Context, int64) error { return nil }, func() {}, nil
	}
	if pl.pool == nil {
		return nil, nil, nil, nil, errors.New("pgprojection needs PostgreSQL")
	}
	suffix := strconv.FormatInt(time.Now().UnixNano(), 36)
	offsets := pl.schema + ".offsets_" + suffix
	letters := pl.schema + ".dead_letters_" + suffix
	model := pgx.Identifier{pl.schema, "model_" + suffix}
	s, err := pgprojection.New(pl.pool, pgprojection.WithTable(offsets), pgprojection.WithDeadLetterTable(letters))
	if err != nil {
		return nil, nil, nil, nil, err
	}
	if err := s.Migrate(ctx); err != nil {
		return nil, nil, nil, nil, err
	}
	drop = func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		for _, t := range []string{quoteTable(offsets), quoteTable(letters), model.Sanitize()} {
			_, _ = pl.pool.Exec(ctx, "DROP TABLE IF EXISTS "+t)
		}
	}
	if _, err := pl.pool.Exec(ctx, "CREATE TABLE "+model.Sanitize()+` (
	position  bigint PRIMARY KEY,
	entity_id text   NOT NULL,
	seq       bigint NOT NULL)`); err != nil {
		drop()
		return nil, nil, nil, nil, err
	}
	cols := []string{"position", "entity_id", "seq"}
	h = pgprojection.Handle(func(ctx context.Context, tx pgx.Tx, batch []eventlog.Record) error {
		if lag != nil {
			lag(batch)
		}
		_, err := tx.CopyFrom(ctx, model, cols, pgx.CopyFromSlice(len(batch), func(i int) ([]any, error) {
			r := &batch[i]
			return []any{int64(r.Position), r.EntityID, int64(r.Seq)}, nil
		}))
		if err == nil {
			handled.Add(int64(len(batch)))
		}
		return err
	})
	check = func(ctx context.Context, want int64) error {
		if want < 0 {
			return nil
		}
		return countRows(ctx, pl.pool, model.Sanitize(), Result{Ops: want})
	}
	return s, h, check, drop, nil
}

// quoteTable quotes a schema-qualified table name.
func quoteTable(name string) string {
	schema, table, _ := strings.Cut(name, ".")
	return pgx.Identifier{schema, table}.Sanitize()
}

// projProgress reports handled/total every half second until stopped.
func projProgress(env *Env, handled *atomic.Int64, total int64) (stop func()) {
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		t := time.NewTicker(500 * time.Millisecond)
		defer t.Stop()
		for {
			select {
			case <-done:
				return
			case <-t.C:
				env.Progress(handled.Load(), total)
			}
		}
	})
	return func() { close(done); wg.Wait() }
}

// live measures the lag of a projection behind one writer per entity.
func (b *projBackend) live(exactlyOnce bool) func(ctx context.Context, env *Env) (Result, error) {
	return func(ctx context.Context, env *Env) (Result, error) {
		defer b.cleanup()
		pl, err := b.fresh(ctx)
		if err != nil {
			return Result{}, err
		}
		defer pl.close()
		ev, err := projEvent()
		if err != nil {
			return Result{}, err
		}
		entities, _, _ := projSize(env, b.pg)
		dur := projFlags.live
		if env.Quick {
			dur = time.Second
		}
		rec := env.Recorder(1 << 20)
		var t0 time.Time // set before the projection starts
		var warmEnd time.Time
		lag := func(batch []eventlog.Record) {
			now := time.Now()
			for i := range batch {
				if t := batch[i].Time; t.After(warmEnd) {
					rec.Record(now.Sub(t))
				}
			}
		}
		var handled atomic.Int64
		store, handler, check, drop, err := projHandler(ctx, pl, exactlyOnce, &handled, lag)
		if err != nil {
			return Result{}, err
		}
		defer drop()
		p, err := projection.New(pl.log, projType, "live", store, handler, projection.WithBatchSize(projFlags.batch))
		if err != nil {
			return Result{}, err
		}
		ids := make([]string, entities)
		for i := range ids {
			ids[i] = entityID(i)
		}
		cpu0 := processCPU()
		t0 = time.Now()
		warmEnd = t0.Add(dur / 10)
		if err := p.Start(ctx); err != nil {
			return Result{}, err
		}
		defer p.Stop(context.Background())
		wctx, cancel := context.WithTimeoutCause(ctx, dur, errLiveDone)
		defer cancel()
		var appended atomic.Int64
		var last atomic.Uint64
		var mu sync.Mutex // guards firstErr
		var firstErr error
		var wg sync.WaitGroup
		// Every 8th append of each writer is timed, for the writers' own
		// latency next to the lag.
		appendLat := make([][]time.Duration, len(ids))
		stopProgress := projProgress(env, &appended, 0)
		for w, id := range ids {
			wg.Go(func() {
				var top uint64
				defer func() {
					for {
						cur := last.Load()
						if top <= cur || last.CompareAndSwap(cur, top) {
							return
						}
					}
				}()
				for seq := uint64(0); ; seq++ {
					timed := (seq+uint64(w))%sampleEvery == 0
					var a0 time.Time
					if timed {
						a0 = time.Now()
					}
					pos, err := pl.log.Append(wctx, projType, id, seq, ev)
					if timed && err == nil {
						appendLat[w] = append(appendLat[w], time.Since(a0))
					}
					if err != nil {
						if context.Cause(wctx) != errLiveDone {
							mu.Lock()
							firstErr = cmpErr(firstErr, fmt.Errorf("append %s at %d: %w", id, seq, err))
							mu.Unlock()
							cancel()
						}
						return
					}
					top = pos
					appended.Add(1)
				}
			})
		}
		wg.Wait()
		elapsed := time.Since(t0)
		cpu := processCPU() - cpu0
		handledLive := handled.Load()
		stopProgress()
		if firstErr != nil {
			return Result{}, firstErr
		}
		// Every acknowledged event is at or below last: wait until the
		// projection has handled them all.
		wait, wcancel := context.WithTimeout(ctx, time.Minute)
		defer wcancel()
		if err := p.WaitFor(wait, last.Load()); err != nil {
			return Result{}, fmt.Errorf("catching up after the writers stopped: %w", err)
		}
		drained := time.Since(t0) - elapsed
		if err := p.Stop(context.Background()); err != nil {
			return Result{}, err
		}
		n := appended.Load()
		if got := handled.Load(); got < n {
			return Result{}, fmt.Errorf("handled %d events of %d acknowledged", got, n)
		}
		// Appends cut off by the end of the run may have landed too: the
		// read model holds at least the acknowledged events.
		if err := check(ctx, -1); err != nil {
			return Result{}, err
		}
		lat := slices.Concat(appendLat...)
		slices.Sort(lat)
		at := func(q float64) float64 {
			if len(lat) == 0 {
				return 0
			}
			return float64(lat[min(len(lat)-1, int(q*float64(len(lat))))].Microseconds()) / 1000
		}
		return Result{
			Ops: n, Elapsed: elapsed, CPU: cpu,
			Metrics: map[string]float64{
				"writers":                 float64(entities),
				"drain ms":                float64(drained.Milliseconds()),
				"handled while writing/s": float64(handledLive) / elapsed.Seconds(),
				"append p50 ms":           at(0.50),
				"append p99 ms":           at(0.99),
			},
			Notes: []string{"p50/p99/p999 = lag from commit to handler, events after the warm-up"},
		}, nil
	}
}

var errLiveDone = errors.New("live: the writers' time is up")

// PostgreSQL.

var projPostgres = &projBackend{
	scenario: "projection",
	doc:      "projection catch-up of 1,000,000 events of 10,000 entities (1, 2, 4 slices; pgprojection) and live lag, on PostgreSQL (-pg-dsn)",
	pg:       true,
	fixture:  pgProjFixture,
	fresh:    pgProjFresh,
	drop: func(ctx context.Context) {
		pool, err := pgProjPool(ctx)
		if err != nil {
			return
		}
		defer pool.Close()
		_, _ = pool.Exec(ctx, "DROP SCHEMA IF EXISTS "+pgx.Identifier{pgProjSchema(nil)}.Sanitize()+" CASCADE")
	},
}

// pgProjSchema returns the fixture's schema; env nil means the key of the
// run that is ending (the size flags, not -quick, so drop uses the child's
// Quick too).
func pgProjSchema(env *Env) string {
	if env == nil {
		env = projDropEnv()
	}
	return "bench_projection_" + projKey(env, true)
}

// projDropEnv returns an Env with the child's -quick, for the fixture's key.
func projDropEnv() *Env {
	var spec childSpec
	_ = json.Unmarshal([]byte(os.Getenv(childEnv)), &spec)
	o, _, err := parseArgs(spec.Args, new(strings.Builder))
	if err != nil {
		return &Env{}
	}
	return &Env{Quick: o.quick}
}

func pgProjPool(ctx context.Context) (*pgxpool.Pool, error) {
	if pgFlags.dsn == "" {
		return nil, Skip("no -pg-dsn and no EVENTSOURCED_POSTGRES_DSN")
	}
	cfg, err := pgxpool.ParseConfig(pgFlags.dsn)
	if err != nil {
		return nil, err
	}
	cfg.MaxConns = int32(pgFlags.conns)
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, err
	}
	if err := pool.Ping(ctx); err != nil {
		pool.Close()
		return nil, fmt.Errorf("ping %s: %w", pgFlags.dsn, err)
	}
	return pool, nil
}

// pgProjPosition is the Position of event seq (from 1) of entity e in the
// fixture: rounds of chunk events per entity, entity after entity.
func pgProjPosition(entities, chunk, e, seq int) int64 {
	round, j := (seq-1)/chunk, (seq-1)%chunk
	return int64(round*entities*chunk + e*chunk + j + 1)
}

func pgProjFixture(ctx context.Context, env *Env) (*projLog, error) {
	pool, err := pgProjPool(ctx)
	if err != nil {
		return nil, err
	}
	schema := pgProjSchema(env)
	entities, per, chunk := projSize(env, true)
	var loaded bool
	err = pool.QueryRow(ctx, "SELECT to_regclass($1) IS NOT NULL", pgx.Identifier{schema, "bench_loaded"}.Sanitize()).Scan(&loaded)
	if err == nil && !loaded {
		err = pgProjLoad(ctx, env, pool, schema, entities, per, chunk)
	}
	if err != nil {
		pool.Close()
		return nil, err
	}
	log, err := postgreslog.New(pool, postgreslog.WithSchema(schema))
	if err != nil {
		pool.Close()
		return nil, err
	}
	pl := &projLog{log: log, pool: pool, schema: schema, total: entities * per, lastOf: make(map[string]uint64, entities)}
	for e := range entities {
		pl.lastOf[entityID(e)] = uint64(pgProjPosition(entities, chunk, e, per))
	}
	pl.close = func() { log.Close(); pool.Close() }
	return pl, nil
}

// pgProjLoad writes the fixture: postgreslog's tables in a fresh schema,
// the events by COPY from two connections, the Position counter set to
// the last event, and the marker table bench_loaded last.
func pgProjLoad(ctx context.Context, env *Env, pool *pgxpool.Pool, schema string, entities, per, chunk int) error {
	// Fixtures of invocations that no longer run.
	rows, err := pool.Query(ctx, "SELECT nspname FROM pg_namespace WHERE nspname LIKE 'bench\\_projection\\_%'")
	if err != nil {
		return err
	}
	stale, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return err
	}
	for _, s := range stale {
		if s == schema || staleKey(strings.TrimPrefix(s, "bench_projection_")) {
			if _, err := pool.Exec(ctx, "DROP SCHEMA IF EXISTS "+pgx.Identifier{s}.Sanitize()+" CASCADE"); err != nil {
				return err
			}
		}
	}
	if err := postgreslog.Setup(ctx, pool, postgreslog.WithSchema(schema)); err != nil {
		return err
	}
	ev, err := projEvent()
	if err != nil {
		return err
	}
	ids := make([]string, entities)
	for i := range ids {
		ids[i] = entityID(i)
	}
	table := pgx.Identifier{schema, "eventsourced_events"}
	cols := []string{"entity_type", "entity_id", "seq", "position", "name", "revision", "data"}
	rounds := per / chunk
	total := int64(entities * per)
	var copied atomic.Int64
	const conns = 2
	errs := make([]error, conns)
	var wg sync.WaitGroup
	for c := range conns {
		wg.Go(func() {
			// Connection c copies every conns-th round, in Position order.
			for r := c; r < rounds; r += conns {
				e, j := 0, 0
				row := make([]any, len(cols))
				src := pgx.CopyFromFunc(func() ([]any, error) {
					if e == entities {
						return nil, nil
					}
					seq := r*chunk + j + 1
					row[0], row[1], row[2], row[3], row[4], row[5], row[6] = projType, ids[e], int64(seq),
						pgProjPosition(entities, chunk, e, seq), ev.Name, int64(ev.Revision), ev.Data
					if j++; j == chunk {
						e, j = e+1, 0
					}
					return row, nil
				})
				if _, err := pool.CopyFrom(ctx, table, cols, src); err != nil {
					errs[c] = fmt.Errorf("load the fixture: %w", err)
					return
				}
				env.Progress(copied.Add(int64(entities*chunk)), total)
			}
		})
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return err
	}
	for _, stmt := range []string{
		"ANALYZE " + table.Sanitize(),
		"CREATE TABLE " + pgx.Identifier{schema, "bench_loaded"}.Sanitize() + " (events bigint)",
	} {
		if _, err := pool.Exec(ctx, stmt); err != nil {
			return err
		}
	}
	return nil
}

// pgProjFresh is an empty postgreslog in a schema of its own.
func pgProjFresh(ctx context.Context) (*projLog, error) {
	pe, err := pgSetup(ctx)
	if err != nil {
		return nil, err
	}
	log, err := pe.postgreslog(ctx)
	if err != nil {
		pe.close()
		return nil, err
	}
	return &projLog{log: log, pool: pe.pool, schema: pe.schema, close: func() { log.Close(); pe.close() }}, nil
}

// NATS.

var projNATS = &projBackend{
	scenario: "projection-nats",
	doc:      "projection catch-up of 100,000 events of 10,000 entities (-projection-nats-events; 1, 2, 4 slices) and live lag, on a local NATS server (a helper process)",
	fixture:  natsProjFixture,
	fresh:    natsProjFresh,
	drop:     func(context.Context) { _ = os.RemoveAll(natsProjDir(nil)) },
}

// natsProjDir is the fixture's directory: the server's data in js/, the
// entities' last Positions in fixture.json, written last.
func natsProjDir(env *Env) string {
	if env == nil {
		env = projDropEnv()
	}
	return filepath.Join(os.TempDir(), "bench-projection-nats-"+projKey(env, false))
}

// natsProjMeta is fixture.json.
type natsProjMeta struct {
	Total  int               `json:"total"`
	LastOf map[string]uint64 `json:"last_of"`
}

const natsProjName = "bench_projection"

func natsProjFixture(ctx context.Context, env *Env) (*projLog, error) {
	if natsFlags.url != "" {
		return nil, Skip("the projection fixture needs the helper-process server (no -nats-url)")
	}
	dir := natsProjDir(env)
	var meta natsProjMeta
	b, err := os.ReadFile(filepath.Join(dir, "fixture.json"))
	loaded := err == nil && json.Unmarshal(b, &meta) == nil
	if !loaded {
		natsProjCleanStale()
		if err := os.RemoveAll(dir); err != nil {
			return nil, err
		}
	}
	// The server runs in a helper process, so that CPU/event is the
	// client's alone.
	srv, err := startHelper(helperSpec{Kind: "nats-server", Dir: filepath.Join(dir, "js")})
	if err != nil {
		return nil, err
	}
	pl := &projLog{}
	nc, err := nats.Connect(srv.addr, nats.MaxReconnects(-1))
	if err != nil {
		srv.close()
		return nil, err
	}
	pl.close = func() { nc.Close(); srv.close() }
	fail := func(err error) (*projLog, error) { pl.close(); return nil, err }
	js, err := jetstream.New(nc)
	if err != nil {
		return fail(err)
	}
	opts := []natslog.Option{natslog.WithStream(natsProjName), natslog.WithPrefix(natsProjName)}
	if err := natslog.Setup(ctx, js, append(opts, natslog.WithBucket(natsProjName+"_snaps"))...); err != nil {
		return fail(err)
	}
	log, err := natslog.New(ctx, js, opts...)
	if err != nil {
		return fail(err)
	}
	pl.log = log
	pl.close = func() { log.Close(); nc.Close(); srv.close() }
	if !loaded {
		if meta, err = natsProjLoad(ctx, env, log); err != nil {
			return fail(err)
		}
		b, _ := json.Marshal(meta)
		if err := os.WriteFile(filepath.Join(dir, "fixture.json"), b, 0o644); err != nil {
			return fail(err)
		}
	}
	pl.total, pl.lastOf = meta.Total, meta.LastOf
	return pl, nil
}

// natsProjCleanStale removes the fixtures of invocations that no longer run.
func natsProjCleanStale() {
	matches, _ := filepath.Glob(filepath.Join(os.TempDir(), "bench-projection-nats-*"))
	for _, m := range matches {
		if staleKey(strings.TrimPrefix(filepath.Base(m), "bench-projection-nats-")) {
			_ = os.RemoveAll(m)
		}
	}
}

// natsProjLoad appends the fixture with natslog: 256 writers, each taking
// every 256th entity and appending chunk events per append (one atomic
// batch), round after round.
func natsProjLoad(ctx context.Context, env *Env, log eventlog.Log) (natsProjMeta, error) {
	entities, per, chunk := projSize(env, false)
	ev, err := projEvent()
	if err != nil {
		return natsProjMeta{}, err
	}
	events := make([]eventlog.Event, chunk)
	for i := range events {
		events[i] = ev
	}
	const writers = 256
	lastOf := make([]uint64, entities)
	var appended atomic.Int64
	total := int64(entities * per)
	errs := make([]error, writers)
	var wg sync.WaitGroup
	for w := range writers {
		wg.Go(func() {
			for r := range per / chunk {
				for e := w; e < entities; e += writers {
					actx, cancel := context.WithTimeout(ctx, 30*time.Second)
					pos, err := log.Append(actx, projType, entityID(e), uint64(r*chunk), events...)
					cancel()
					if err != nil {
						errs[w] = fmt.Errorf("load the fixture: %w", err)
						return
					}
					lastOf[e] = pos
					env.Progress(appended.Add(int64(chunk)), total)
				}
			}
		})
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return natsProjMeta{}, err
	}
	meta := natsProjMeta{Total: int(total), LastOf: make(map[string]uint64, entities)}
	for e, pos := range lastOf {
		meta.LastOf[entityID(e)] = pos
	}
	return meta, nil
}

// natsProjFresh is an empty natslog on a fresh server (a helper process).
func natsProjFresh(ctx context.Context) (*projLog, error) {
	ne, err := natsSetup(ctx)
	if err != nil {
		return nil, err
	}
	log, err := natslog.New(ctx, ne.js, ne.opts...)
	if err != nil {
		ne.close()
		return nil, err
	}
	return &projLog{log: log, close: func() { log.Close(); ne.close() }}, nil
}
