package projection_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync/atomic"
	"time"

	"github.com/eventsourced-go/eventsourced/eventlog"
	"github.com/eventsourced-go/eventsourced/projection"
)

// Example_deadLetters skips an event the handler cannot handle, keeps it
// in a dead-letter store, and retries it once the handler is fixed.
func Example_deadLetters() {
	ctx := context.Background()
	log := eventlog.NewMemory()
	log.Append(ctx, "Tab", "t-1", 0, eventlog.Event{Name: "TabOpened"}, eventlog.Event{Name: "DrinksOrdered", Data: []byte(`{"drinks":`)})
	log.Append(ctx, "Tab", "t-2", 0, eventlog.Event{Name: "TabOpened"})

	var fixed atomic.Bool // the bug fix, deployed later
	h := projection.PerEvent(func(ctx context.Context, rec eventlog.Record) error {
		if rec.Name == "DrinksOrdered" && !fixed.Load() {
			return errors.New("unexpected end of JSON input")
		}
		fmt.Printf("applied %s %s\n", rec.EntityID, rec.Name)
		return nil
	})
	dead := projection.NewMemoryDeadLetters() // or pgprojection's table, natsprojection's bucket
	p, err := projection.New(log, "Tab", "tabs", projection.NewMemory(), h,
		projection.WithPoison(projection.SkipPoison), projection.WithDeadLetters(dead),
		projection.WithRetry(time.Millisecond, time.Millisecond, 3),
		projection.WithLogger(slog.New(slog.DiscardHandler)))
	if err != nil {
		panic(err)
	}
	p.Start(ctx)
	p.WaitFor(ctx, 3) // past the poison event
	p.Stop(ctx)

	letters, _ := p.ListDeadLetters(ctx, 0, 10)
	for _, d := range letters {
		fmt.Printf("dead letter: %s after %d attempts: %s\n", d.Ref(), d.Attempts, d.Err)
	}

	fixed.Store(true)
	if err := p.RetryDeadLetter(ctx, letters[0].Record.Position); err != nil {
		panic(err)
	}
	letters, _ = p.ListDeadLetters(ctx, 0, 10)
	fmt.Println("dead letters left:", len(letters), "state:", p.Status().State)
	// Output:
	// applied t-1 TabOpened
	// applied t-2 TabOpened
	// dead letter: Tab/t-1 seq 2 (position 2, DrinksOrdered) after 3 attempts: unexpected end of JSON input
	// applied t-1 DrinksOrdered
	// dead letters left: 0 state: stopped
}
