// Command bank runs bank accounts on PostgreSQL: it opens accounts, sends
// deposits and withdrawals from many goroutines (overdrafts are rejected),
// audits the books with a live subscription to every account event, and
// checks that the audit matches the sum of the balances.
//
//	go run ./examples/bank -postgres 'postgres://user:pass@localhost:5432/bank'
//	go run ./examples/bank -postgres "$DATABASE_URL" -accounts 1000 -ops 50000
//
// The tables (bank_events, bank_streams, bank_snapshots, bank_meta) are
// created on the first run; later runs continue with the same accounts.
// Ctrl-C stops the run and shuts down cleanly.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"os/signal"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/eventsourced-go/eventsourced/entity"
	"github.com/eventsourced-go/eventsourced/eventlog"
	"github.com/eventsourced-go/eventsourced/postgreslog"
)

// config is what the flags set.
type config struct {
	dsn      string
	schema   string
	prefix   string
	accounts int
	ops      int
	workers  int
}

func main() {
	var cfg config
	flag.StringVar(&cfg.dsn, "postgres", os.Getenv("DATABASE_URL"), "PostgreSQL DSN (default $DATABASE_URL)")
	flag.StringVar(&cfg.schema, "schema", "", "PostgreSQL schema for the tables (default: the search_path's first)")
	flag.StringVar(&cfg.prefix, "prefix", "bank_", "prefix of the table names")
	flag.IntVar(&cfg.accounts, "accounts", 100, "how many accounts")
	flag.IntVar(&cfg.ops, "ops", 5000, "deposits and withdrawals to send, from all workers together")
	flag.IntVar(&cfg.workers, "workers", 64, "concurrent clients")
	flag.Parse()

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if _, err := run(ctx, cfg, os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "bank:", err)
		os.Exit(1)
	}
}

// report is what a run did.
type report struct {
	ok, rejected int64
	// balances is the sum of the accounts' balances; audited the sum the
	// live subscription computed from the events, and read the same sum
	// computed by reading the events once more at the end.
	balances, audited, read int64
}

// run opens the stores, runs the workload and checks the books. It shuts
// everything down before it returns, also when ctx ends early.
func run(ctx context.Context, cfg config, out io.Writer) (rep report, err error) {
	switch {
	case cfg.dsn == "":
		return rep, errors.New("no database: pass -postgres DSN or set DATABASE_URL")
	case cfg.accounts < 1 || cfg.ops < 0 || cfg.workers < 1:
		return rep, fmt.Errorf("-accounts (%d) and -workers (%d) must be at least 1, -ops (%d) at least 0", cfg.accounts, cfg.workers, cfg.ops)
	}
	pool, err := pgxpool.New(ctx, cfg.dsn)
	if err != nil {
		return rep, err
	}
	defer pool.Close()
	opts := []postgreslog.Option{postgreslog.WithTablePrefix(cfg.prefix)}
	if cfg.schema != "" {
		opts = append(opts, postgreslog.WithSchema(cfg.schema))
	}
	if err := postgreslog.Setup(ctx, pool, opts...); err != nil {
		return rep, err
	}
	log, err := postgreslog.New(pool, opts...)
	if err != nil {
		return rep, err
	}
	defer log.Close()
	snaps, err := postgreslog.NewSnapshotStore(pool, opts...)
	if err != nil {
		return rep, err
	}
	defer snaps.Close()
	sys, err := entity.NewSystem(log, entity.WithSnapshotStore(snaps))
	if err != nil {
		return rep, err
	}
	defer func() {
		// Shutdown drains the commands in flight; it gets its own deadline
		// because ctx may be what ended the run.
		sctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if serr := sys.Shutdown(sctx); serr != nil && err == nil {
			err = serr
		}
	}()
	kind, err := entity.Register(sys, AccountType(), entity.WithSnapshotEvery(100))
	if err != nil {
		return rep, err
	}
	fmt.Fprintf(out, "bank: %d accounts, %d operations from %d workers\n", cfg.accounts, cfg.ops, cfg.workers)

	// The auditor follows every account event live, from the first one
	// ever, and keeps the money in the bank: deposits minus withdrawals.
	var audited atomic.Int64
	var auditedTo atomic.Uint64 // the Position of the last event it saw
	auditCtx, stopAudit := context.WithCancel(ctx)
	auditErr := make(chan error, 1)
	go func() {
		for rec, err := range log.Subscribe(auditCtx, kind.Name(), 0) {
			var a int64
			if err == nil {
				a, err = amount(rec)
			}
			if err != nil {
				auditErr <- err
				return
			}
			audited.Add(a)
			auditedTo.Store(rec.Position)
		}
		auditErr <- nil
	}()
	defer func() {
		stopAudit()
		if aerr := <-auditErr; aerr != nil && !errors.Is(aerr, context.Canceled) && err == nil {
			err = aerr
		}
	}()

	refs := make([]entity.Ref[Account, Event], cfg.accounts)
	for i := range refs {
		refs[i] = kind.Ref(fmt.Sprintf("acc-%05d", i))
		if _, err := entity.Ask(ctx, refs[i], OpenAccount{Owner: fmt.Sprintf("owner %d", i)}); err != nil && !errors.Is(err, ErrAlreadyOpen) {
			return rep, err
		}
	}

	start := time.Now()
	var ok, rejected atomic.Int64
	var next atomic.Int64
	var wg sync.WaitGroup
	errs := make(chan error, cfg.workers)
	for range cfg.workers {
		wg.Go(func() {
			for next.Add(1) <= int64(cfg.ops) && ctx.Err() == nil {
				ref := refs[rand.IntN(len(refs))]
				amount := 1 + rand.Int64N(10_000)
				var err error
				if rand.IntN(5) < 3 {
					_, err = entity.Ask(ctx, ref, Deposit{Amount: amount})
				} else {
					_, err = entity.Ask(ctx, ref, Withdraw{Amount: amount})
				}
				switch {
				case err == nil:
					ok.Add(1)
				case errors.Is(err, ErrInsufficientFunds):
					rejected.Add(1)
				case ctx.Err() != nil:
					return
				default:
					errs <- err
					return
				}
			}
		})
	}
	wg.Wait()
	elapsed := time.Since(start)
	rep.ok, rep.rejected = ok.Load(), rejected.Load()
	if ctx.Err() != nil {
		fmt.Fprintf(out, "interrupted after %d operations; shutting down\n", rep.ok+rep.rejected)
		return rep, nil
	}
	select {
	case err := <-errs:
		return rep, err
	default:
	}
	st := log.Stats()
	fmt.Fprintf(out, "%d operations in %v (%.0f/s): %d done, %d rejected as overdrafts\n",
		rep.ok+rep.rejected, elapsed.Round(time.Millisecond), float64(rep.ok+rep.rejected)/elapsed.Seconds(), rep.ok, rep.rejected)
	fmt.Fprintf(out, "log: %d events in %d transactions (%.1f events per transaction)\n",
		st.Events, st.Batches, float64(st.Events)/float64(max(st.Batches, 1)))

	// The books: the balances, the events read once more, and the live
	// audit once it has caught up with them.
	for _, ref := range refs {
		b, err := entity.Ask(ctx, ref, Balance{})
		if err != nil {
			return rep, err
		}
		rep.balances += b
	}
	var last uint64
	for rec, err := range log.ReadType(ctx, kind.Name(), 0) {
		var a int64
		if err == nil {
			a, err = amount(rec)
		}
		if err != nil {
			return rep, err
		}
		rep.read += a
		last = rec.Position
	}
	deadline := time.Now().Add(10 * time.Second)
	for auditedTo.Load() < last && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	rep.audited = audited.Load()
	fmt.Fprintf(out, "money in the bank: %d.%02d by the balances, %d.%02d by the events, %d.%02d by the live audit\n",
		rep.balances/100, rep.balances%100, rep.read/100, rep.read%100, rep.audited/100, rep.audited%100)
	if rep.balances != rep.read || rep.read != rep.audited {
		return rep, errors.New("the books do not balance")
	}
	fmt.Fprintln(out, "the books balance")
	return rep, nil
}

// events decodes account events for the audit.
var events = AccountType().Events

// amount returns what an event does to the money in the bank.
func amount(rec eventlog.Record) (int64, error) {
	e, err := events.Decode(rec.Name, rec.Revision, rec.Data)
	if err != nil {
		return 0, fmt.Errorf("audit %s/%s seq %d: %w", rec.EntityType, rec.EntityID, rec.Seq, err)
	}
	switch e := e.(type) {
	case Deposited:
		return e.Amount, nil
	case Withdrawn:
		return -e.Amount, nil
	}
	return 0, nil
}
