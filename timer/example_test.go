package timer_test

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/eventsourced-go/eventsourced/binarize"
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

	reminders.After(ctx, "call-alice", time.Hour, []byte("call Alice"))
	reminders.Cancel(ctx, "call-alice")
	alice, _ := reminders.Get(ctx, "call-alice")
	fmt.Println("call-alice is", alice.State)
	reminders.After(ctx, "call-bob", 10*time.Millisecond, []byte("call Bob"))
	<-fired
	// Output:
	// call-alice is cancelled
	// fired call-bob with "call Bob", key reminders/call-bob/1
}

// Order is the state of an order entity whose payment has a deadline.
type Order struct{ Placed, Paid, Expired bool }

// OrderEvent is implemented by the order's events.
type OrderEvent interface{ orderEvent() }

// OrderPlaced, OrderPaid and OrderExpired are the order's events.
type (
	OrderPlaced  struct{}
	OrderPaid    struct{}
	OrderExpired struct{}
)

func (OrderPlaced) orderEvent()  {}
func (OrderPaid) orderEvent()    {}
func (OrderExpired) orderEvent() {}

// PlaceOrder places the order.
type PlaceOrder struct{}

func (PlaceOrder) Handle(tx *entity.Tx[Order, OrderEvent]) (Order, error) {
	return tx.Persist(OrderPlaced{}), nil
}

// ExpireOrder expires the order unless it was paid: what the payment
// timer does when it fires. Checking the state makes a late or repeated
// fire harmless; a fire before the order exists fails, and the timer
// fires again later.
type ExpireOrder struct{}

func (ExpireOrder) Handle(tx *entity.Tx[Order, OrderEvent]) (Order, error) {
	switch s := tx.State(); {
	case !s.Placed:
		return s, errors.New("no order yet")
	case s.Paid || s.Expired:
		return s, nil
	}
	return tx.Persist(OrderExpired{}), nil
}

// An entity's deadline: the code that places the order schedules the
// payment timer (a command handler must not block, so it does not); the
// fire function sends the entity its command with the context it gets,
// which carries the timer's idempotency key.
func Example_entityDeadline() {
	ctx := context.Background()
	events := binarize.NewRegistry[OrderEvent](binarize.Msgpack)
	binarize.MustRegister[OrderPlaced](events, "OrderPlaced")
	binarize.MustRegister[OrderPaid](events, "OrderPaid")
	binarize.MustRegister[OrderExpired](events, "OrderExpired")
	orderType := entity.Type[Order, OrderEvent]{
		Name:   "Order",
		Events: events,
		Apply: func(s Order, e OrderEvent) Order {
			switch e.(type) {
			case OrderPlaced:
				s.Placed = true
			case OrderPaid:
				s.Paid = true
			case OrderExpired:
				s.Expired = true
			}
			return s
		},
	}
	sys, _ := entity.NewSystem(eventlog.NewMemory())
	defer sys.Shutdown(ctx)
	// The orders keep idempotency keys: the fire function's commands
	// carry one.
	orders, _ := entity.Register(sys, orderType, entity.WithIdempotency())

	expired := make(chan Order, 1)
	payments, err := timer.New(sys, "payments", projection.NewMemory(), func(ctx context.Context, t timer.Timer) error {
		order, err := entity.Ask(ctx, orders.Ref(string(t.Payload)), ExpireOrder{})
		if err == nil {
			expired <- order
		}
		return err
	})
	if err != nil {
		panic(err)
	}
	payments.Start(ctx)
	defer payments.Stop(ctx)

	// Schedule first, then place: a crash in between leaves a timer that
	// finds no order to expire (it retries, with backoff), never an order
	// without its deadline.
	payments.After(ctx, "order-7/payment", 10*time.Millisecond, []byte("order-7"))
	entity.Ask(ctx, orders.Ref("order-7"), PlaceOrder{})
	fmt.Printf("%+v\n", <-expired)
	// Output:
	// {Placed:true Paid:false Expired:true}
}
