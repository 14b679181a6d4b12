// Command cafe is the Edument CQRS tutorial's cafe (https://cqrs.nu) on
// eventsourced: Tab entities take the waiters' and the kitchen's commands,
// and two projections keep the read models (the open tabs with their
// invoices and the waiters' todo lists, and the chef's todo list) that a
// small HTTP JSON API serves.
//
//	go run ./examples/cafe                                  # embedded NATS in ./cafe-data
//	go run ./examples/cafe -store memory                    # everything in memory
//	go run ./examples/cafe -store postgres -postgres "$DSN" # PostgreSQL
//
// Then, for instance:
//
//	curl -s localhost:8080/                # the endpoints
//	curl -s localhost:8080/tabs -d '{"table_number": 3, "waiter": "Derek"}'
//	curl -s localhost:8080/tabs/$TAB/order -d '{"menu_numbers": [10, 16]}'
//	curl -s localhost:8080/chef/todo
//
// A table has at most one open tab: a Table entity per table decides which
// (see table.go).
//
// With NATS, events, snapshots, projection offsets and read models live in
// JetStream (the read models are KV buckets, updated at least once and
// idempotently). With PostgreSQL, each projection writes its read model and
// its offset in one transaction: exactly once.
//
// # Telemetry
//
// GET /metrics serves the metrics in the Prometheus text format: the
// entities' (eventsourced_commands_total, eventsourced_command_duration_seconds
// and the rest), the other components', the HTTP server's
// (http_server_request_duration_seconds) and the Go runtime's. With
// -otlp, traces go to an OpenTelemetry collector over OTLP/HTTP:
//
//	go run ./examples/cafe -store memory -otlp localhost:4318
//
// A request is one trace: the HTTP server span, the span of the command
// it asks ("Tab PlaceOrder"), the append that stores its events ("append
// Tab"), and then the projections that read them. The OpenTelemetry SDK is
// installed as the global tracer and meter provider, which every
// component uses without options; the providers are flushed and shut down
// when the cafe stops.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/eventsourced-go/eventsourced/eventlog"
	"github.com/eventsourced-go/eventsourced/natslog"
	"github.com/eventsourced-go/eventsourced/postgreslog"
	"github.com/eventsourced-go/eventsourced/projection"
	"github.com/eventsourced-go/eventsourced/projection/natsprojection"
	"github.com/eventsourced-go/eventsourced/projection/pgprojection"
)

func main() {
	addr := flag.String("addr", "127.0.0.1:8080", "HTTP listen address")
	store := flag.String("store", "nats", "where to keep events and read models: nats (embedded server), postgres or memory")
	dir := flag.String("dir", "cafe-data", "data directory of the embedded NATS server (-store nats)")
	dsn := flag.String("postgres", os.Getenv("EVENTSOURCED_POSTGRES_DSN"), "PostgreSQL connection string (-store postgres)")
	otlp := flag.String("otlp", "", "export traces over OTLP/HTTP to this collector: host:port (localhost:4318) or a URL; none if empty")
	flag.Parse()
	logger := slog.New(slog.NewTextHandler(os.Stderr, nil))
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	tel, err := openTelemetry(ctx, *otlp)
	if err != nil {
		fmt.Fprintln(os.Stderr, "cafe: telemetry:", err)
		os.Exit(1)
	}
	tel.install(logger)
	err = run(ctx, logger, tel, *addr, *store, *dir, *dsn, nil)
	// run has drained the entities and stopped the projections: their last
	// spans have ended, and the shutdown exports them.
	shutdownCtx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if serr := tel.shutdown(shutdownCtx); serr != nil {
		logger.Warn("telemetry shutdown", "err", serr)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "cafe:", err)
		cancel()
		os.Exit(1)
	}
}

// run serves the cafe on addr, measured with tel, until ctx ends. If ready
// is not nil it gets the listening address once the server accepts
// connections.
func run(ctx context.Context, logger *slog.Logger, tel *telemetry, addr, store, dir, dsn string, ready chan<- string) error {
	b, err := openBackend(ctx, store, dir, dsn)
	if err != nil {
		return err
	}
	defer b.close()
	app, err := NewApp(b, logger, tel)
	if err != nil {
		return err
	}
	defer func() {
		shutdownCtx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := app.Shutdown(shutdownCtx); err != nil {
			logger.Error("shutdown", "err", err)
		}
	}()
	if err := app.Start(); err != nil {
		return err
	}

	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return err
	}
	srv := &http.Server{Handler: app.Handler(), ReadHeaderTimeout: 10 * time.Second}
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()
	logger.Info("cafe open", "addr", ln.Addr().String(), "store", store)
	if ready != nil {
		ready <- ln.Addr().String()
	}
	select {
	case err := <-served:
		return err
	case <-ctx.Done():
	}
	shutdownCtx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	err = srv.Shutdown(shutdownCtx)
	if serr := <-served; !errors.Is(serr, http.ErrServerClosed) {
		err = errors.Join(err, serr)
	}
	return err
}

// openBackend opens the storage named by store. The backend's close
// releases everything it opened.
func openBackend(ctx context.Context, store, dir, dsn string) (b backend, err error) {
	var closers []func()
	b.close = func() {
		for i := len(closers) - 1; i >= 0; i-- {
			closers[i]()
		}
	}
	defer func() {
		if err != nil {
			b.close()
		}
	}()
	switch store {
	case "memory":
		mem := eventlog.NewMemory()
		closers = append(closers, func() { mem.Close() })
		b.log, b.offsets, b.docs = mem, projection.NewMemory(), newMemDocs()
		return b, nil

	case "nats":
		srv, err := natslog.StartEmbedded(dir)
		if err != nil {
			return b, err
		}
		closers = append(closers, srv.Shutdown)
		nc, err := srv.Connect()
		if err != nil {
			return b, err
		}
		closers = append(closers, nc.Close)
		js, err := jetstream.New(nc)
		if err != nil {
			return b, err
		}
		if err := natslog.Setup(ctx, js); err != nil {
			return b, err
		}
		log, err := natslog.New(ctx, js)
		if err != nil {
			return b, err
		}
		closers = append(closers, func() { log.Close() })
		snaps, err := natslog.NewSnapshotStore(ctx, js)
		if err != nil {
			return b, err
		}
		closers = append(closers, func() { snaps.Close() })
		offsets, err := natsprojection.New(ctx, js, natsprojection.WithBucket("cafe_offsets"))
		if err != nil {
			return b, err
		}
		b.log, b.snapshots, b.offsets, b.docs = log, snaps, offsets, newNATSDocs(js)
		return b, nil

	case "postgres":
		if dsn == "" {
			return b, errors.New("-store postgres needs -postgres DSN (or EVENTSOURCED_POSTGRES_DSN)")
		}
		pool, err := pgxpool.New(ctx, dsn)
		if err != nil {
			return b, err
		}
		closers = append(closers, pool.Close)
		if err := postgreslog.Setup(ctx, pool); err != nil {
			return b, err
		}
		log, err := postgreslog.New(pool)
		if err != nil {
			return b, err
		}
		closers = append(closers, func() { log.Close() })
		snaps, err := postgreslog.NewSnapshotStore(pool)
		if err != nil {
			return b, err
		}
		closers = append(closers, func() { snaps.Close() })
		offsets, err := pgprojection.New(pool, pgprojection.WithTable("cafe_offsets"))
		if err != nil {
			return b, err
		}
		if err := offsets.Migrate(ctx); err != nil {
			return b, err
		}
		docs := pgDocs{pool: pool}
		if err := docs.migrate(ctx); err != nil {
			return b, err
		}
		b.log, b.snapshots, b.offsets, b.docs = log, snaps, offsets, docs
		return b, nil
	}
	return b, fmt.Errorf("-store %q: want nats, postgres or memory", store)
}
