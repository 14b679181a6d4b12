package timer_test

import (
	"context"
	"fmt"
	"time"

	"github.com/eventsourced-go/eventsourced/entity"
	"github.com/eventsourced-go/eventsourced/eventlog"
	"github.com/eventsourced-go/eventsourced/projection"
	"github.com/eventsourced-go/eventsourced/timer"
)

func Example() {
	ctx := context.Background()
	sys, err := entity.NewSystem(eventlog.NewMemory())
	if err != nil {
		panic(err)
	}
	defer sys.Shutdown(ctx)

	fired := make(chan struct{})
	fire := func(ctx context.Context, t timer.Timer) error {
		// A real fire function sends a command with ctx, which carries
		// the key: entity.Ask(ctx, orders.Ref(...), Expire{}).
		key, _ := entity.IdempotencyKeyFrom(ctx)
		fmt.Printf("fired %s with %q, key %s\n", t.ID, t.Payload, key)
		close(fired)
		return nil
	}
	reminders, err := timer.New(sys, "reminders", projection.NewMemory(), fire)
	if err != nil {
		panic(err)
	}
	if err := reminders.Start(ctx); err != nil {
		panic(err)
	}
	defer reminders.Stop(ctx)

	reminders.After(ctx, "call-bob", 20*time.Millisecond, []byte("call Bob"))
	reminders.After(ctx, "call-alice", time.Hour, []byte("call Alice"))
	cancelled, _ := reminders.Cancel(ctx, "call-alice")
	fmt.Println("cancelled call-alice:", cancelled)
	<-fired
	// Output:
	// cancelled call-alice: true
	// fired call-bob with "call Bob", key reminders/call-bob/1
}
