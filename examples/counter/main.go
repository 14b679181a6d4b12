// Command counter runs counter entities: it increments a few counters from
// many goroutines, shows a rejected command, and prints the final values.
//
// By default the events and snapshots go to a NATS server embedded in the
// process, with its data in ./.eventsourced-data, so the counters keep
// counting across runs and nothing needs installing:
//
//	go run ./examples/counter              # embedded NATS, ./.eventsourced-data
//	go run ./examples/counter              # again: the counters continue
//	go run ./examples/counter -data /tmp/c # another data directory
//	go run ./examples/counter -store memory
//	go run ./examples/counter -nats nats://localhost:4222 # an external server
//	go run ./examples/counter -postgres postgres://user@localhost/db
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"sync"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/eventsourced-go/eventsourced/entity"
	"github.com/eventsourced-go/eventsourced/eventlog"
	"github.com/eventsourced-go/eventsourced/natslog"
	"github.com/eventsourced-go/eventsourced/postgreslog"
	"github.com/eventsourced-go/eventsourced/snapshotstore"
)

// config is what the flags set.
type config struct {
	// store is "nats", "memory" or "postgres".
	store string
	// dataDir is where the embedded NATS server keeps its data.
	dataDir string
	// natsURL selects an external NATS server instead of the embedded one.
	natsURL string
	// postgresDSN selects PostgreSQL.
	postgresDSN string

	counters   int
	increments int
}

func main() {
	var cfg config
	flag.StringVar(&cfg.store, "store", "nats", "where events and snapshots go: nats, memory or postgres")
	flag.StringVar(&cfg.dataDir, "data", ".eventsourced-data", "data directory of the embedded NATS server")
	flag.StringVar(&cfg.natsURL, "nats", "", "URL of an external NATS server with JetStream (implies -store nats; -data is then unused)")
	flag.StringVar(&cfg.postgresDSN, "postgres", "", "PostgreSQL DSN (implies -store postgres)")
	flag.IntVar(&cfg.counters, "counters", 3, "how many counter entities")
	flag.IntVar(&cfg.increments, "increments", 1000, "increments per counter, sent concurrently")
	flag.Parse()

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if _, err := run(ctx, cfg, os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "counter:", err)
		os.Exit(1)
	}
}

// stores is an event log and a snapshot store, and how to release them.
type stores struct {
	log       eventlog.Log
	snapshots snapshotstore.Store
	// where says where the data lives, for the output.
	where   string
	release func()
}

// openStores opens the stores cfg selects.
func openStores(ctx context.Context, cfg config) (*stores, error) {
	switch {
	case cfg.postgresDSN != "" || cfg.store == "postgres":
		return openPostgres(ctx, cfg)
	case cfg.natsURL != "" || cfg.store == "nats":
		return openNATS(ctx, cfg)
	case cfg.store == "memory":
		return &stores{
			log:       eventlog.NewMemory(),
			snapshots: snapshotstore.NewMemory(),
			where:     "memory (gone when the program ends)",
			release:   func() {},
		}, nil
	default:
		return nil, fmt.Errorf("-store %q: want nats, memory or postgres", cfg.store)
	}
}

// openNATS connects to the external server cfg names, or starts an
// embedded one with its data in cfg.dataDir, and sets up the stream and the
// snapshot bucket.
func openNATS(ctx context.Context, cfg config) (_ *stores, err error) {
	var cleanup []func() // run in reverse order
	closeAll := func() {
		for i := len(cleanup) - 1; i >= 0; i-- {
			cleanup[i]()
		}
	}
	defer func() {
		if err != nil {
			closeAll()
		}
	}()

	url, where := cfg.natsURL, "NATS at "+cfg.natsURL
	if url == "" {
		srv, err := natslog.StartEmbedded(cfg.dataDir)
		if err != nil {
			return nil, err
		}
		cleanup = append(cleanup, srv.Shutdown)
		url, where = srv.ClientURL(), "embedded NATS, data in "+cfg.dataDir
	}
	nc, err := nats.Connect(url, nats.Name("eventsourced counter example"), nats.MaxReconnects(-1), nats.ReconnectWait(250*time.Millisecond))
	if err != nil {
		return nil, fmt.Errorf("connect to %s: %w", url, err)
	}
	cleanup = append(cleanup, nc.Close)
	js, err := jetstream.New(nc)
	if err != nil {
		return nil, err
	}
	if err := natslog.Setup(ctx, js); err != nil {
		return nil, err
	}
	log, err := natslog.New(ctx, js)
	if err != nil {
		return nil, err
	}
	cleanup = append(cleanup, func() { _ = log.Close() })
	snaps, err := natslog.NewSnapshotStore(ctx, js)
	if err != nil {
		return nil, err
	}
	cleanup = append(cleanup, func() { _ = snaps.Close() })
	return &stores{log: log, snapshots: snaps, where: where, release: closeAll}, nil
}

// run increments cfg.counters counters cfg.increments times each, all at
// once, prints the values and a rejected command to out, and returns the
// final values.
func run(ctx context.Context, cfg config, out io.Writer) ([]int, error) {
	if cfg.counters < 1 || cfg.increments < 1 {
		return nil, fmt.Errorf("-counters (%d) and -increments (%d) must be at least 1", cfg.counters, cfg.increments)
	}
	st, err := openStores(ctx, cfg)
	if err != nil {
		return nil, err
	}
	defer st.release()
	fmt.Fprintf(out, "store: %s\n", st.where)

	sys, err := entity.NewSystem(st.log, entity.WithSnapshotStore(st.snapshots))
	if err != nil {
		return nil, err
	}
	// Shut the entities down before the stores close (deferred above).
	defer func() {
		shutdownCtx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		sys.Shutdown(shutdownCtx)
	}()
	kind, err := entity.Register(sys, CounterType(), entity.WithSnapshotEvery(100))
	if err != nil {
		return nil, err
	}

	start := time.Now()
	var wg sync.WaitGroup
	errs := make(chan error, 1)
	for c := range cfg.counters {
		ref := kind.Ref(fmt.Sprintf("counter-%d", c+1))
		for range cfg.increments {
			wg.Go(func() {
				if _, err := entity.Ask(ctx, ref, Increment{By: 1}); err != nil {
					select {
					case errs <- err:
					default:
					}
				}
			})
		}
	}
	wg.Wait()
	select {
	case err := <-errs:
		return nil, err
	default:
	}
	elapsed := time.Since(start)

	values := make([]int, cfg.counters)
	for c := range cfg.counters {
		ref := kind.Ref(fmt.Sprintf("counter-%d", c+1))
		v, err := entity.Ask(ctx, ref, Get{})
		if err != nil {
			return nil, err
		}
		values[c] = v
		fmt.Fprintf(out, "%s = %d\n", ref, v)
	}
	_, err = entity.Ask(ctx, kind.Ref("counter-1"), Decrement{By: values[0] + 1})
	fmt.Fprintf(out, "rejected: %v (ErrBelowZero: %t)\n", err, errors.Is(err, ErrBelowZero))
	total := cfg.counters * cfg.increments
	fmt.Fprintf(out, "%d commands in %v (%.0f commands/s)\n", total, elapsed.Round(time.Millisecond), float64(total)/elapsed.Seconds())
	return values, nil
}

// openPostgres connects to cfg.postgresDSN and sets up the tables.
func openPostgres(ctx context.Context, cfg config) (*stores, error) {
	if cfg.postgresDSN == "" {
		return nil, errors.New("-store postgres needs -postgres DSN")
	}
	pool, err := pgxpool.New(ctx, cfg.postgresDSN)
	if err != nil {
		return nil, fmt.Errorf("postgres: %w", err)
	}
	err = postgreslog.Setup(ctx, pool)
	var log *postgreslog.Log
	if err == nil {
		log, err = postgreslog.New(pool)
	}
	var snaps *postgreslog.SnapshotStore
	if err == nil {
		snaps, err = postgreslog.NewSnapshotStore(pool)
	}
	if err != nil {
		pool.Close()
		return nil, err
	}
	return &stores{
		log:       log,
		snapshots: snaps,
		where:     "PostgreSQL",
		release: func() {
			_ = log.Close()
			_ = snaps.Close()
			pool.Close()
		},
	}, nil
}
