package postgreslog_test

import (
	"context"
	"errors"
	"fmt"
	"log"
	"os"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/eventsourced-go/eventsourced/eventlog"
	"github.com/eventsourced-go/eventsourced/postgreslog"
)

// Open a Log on a pool, create the tables, append and read back. (Not run
// by go test: it needs a server.)
func Example() {
	ctx := context.Background()
	pool, err := pgxpool.New(ctx, os.Getenv("DATABASE_URL"))
	if err != nil {
		log.Fatal(err)
	}
	defer pool.Close()

	// Setup is idempotent: run it at deployment or at every start.
	if err := postgreslog.Setup(ctx, pool, postgreslog.WithTablePrefix("shop_")); err != nil {
		log.Fatal(err)
	}
	events, err := postgreslog.New(pool, postgreslog.WithTablePrefix("shop_"))
	if err != nil {
		log.Fatal(err)
	}
	defer events.Close()

	pos, err := events.Append(ctx, "Cart", "c-1", 0, eventlog.Event{Name: "ItemAdded", Data: []byte(`{"sku":"42"}`)})
	var conflict *eventlog.ConflictError
	switch {
	case errors.As(err, &conflict):
		fmt.Println("someone else wrote c-1 first; its last Seq is", conflict.Actual)
	case err != nil:
		log.Fatal(err)
	default:
		fmt.Println("appended at Position", pos)
	}
	for rec, err := range events.ReadEntity(ctx, "Cart", "c-1", 1) {
		if err != nil {
			log.Fatal(err)
		}
		fmt.Println(rec.Seq, rec.Name, string(rec.Data))
	}
}

// Table names are checked when the Log is built: they must be plain SQL
// identifiers, so they can be quoted safely and typed in psql.
func ExampleWithTablePrefix() {
	var pool *pgxpool.Pool // the options are checked first
	_, err := postgreslog.New(pool, postgreslog.WithTablePrefix("orders-"))
	fmt.Println(err)
	fmt.Println(errors.Is(err, postgreslog.ErrInvalidOption))
	// Output:
	// postgreslog: invalid option: WithTablePrefix: "orders-": character '-' at byte 6 is not allowed (use letters, digits and underscores, not starting with a digit)
	// true
}
