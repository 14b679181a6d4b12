package relay_test

import (
	"context"
	"fmt"

	"github.com/eventsourced-go/eventsourced/eventlog"
	"github.com/eventsourced-go/eventsourced/projection"
	"github.com/eventsourced-go/eventsourced/relay"
)

// printSink prints what it publishes; a real program uses natssink or
// kafkasink.
type printSink struct{}

func (printSink) Publish(ctx context.Context, msgs []relay.Message) error {
	for _, m := range msgs {
		fmt.Printf("%s id=%s %s\n", m.Subject, m.ID, m.Data)
	}
	return nil
}

func Example() {
	ctx := context.Background()
	log := eventlog.NewMemory()
	log.Append(ctx, "Order", "o-1", 0, eventlog.Event{Name: "Placed", Data: []byte(`{"total":12}`)},
		eventlog.Event{Name: "InternalNote", Data: []byte(`{"note":"vip"}`)})
	last, _ := log.Append(ctx, "Order", "o-1", 2, eventlog.Event{Name: "Shipped", Data: []byte(`{}`)})

	// The public schema: internal notes stay inside, the rest goes to
	// shop.orders.<event>.
	public := func(rec eventlog.Record) (relay.Message, bool, error) {
		if rec.Name == "InternalNote" {
			return relay.Message{}, false, nil
		}
		return relay.Message{Subject: "shop.orders." + rec.Name, Key: rec.EntityID, Data: rec.Data}, true, nil
	}
	r, err := relay.New(log, []string{"Order"}, "order-events", projection.NewMemory(), printSink{}, relay.WithMap(public))
	if err != nil {
		panic(err)
	}
	r.Start(ctx)
	r.Projection().WaitFor(ctx, last)
	r.Stop(ctx)
	st := r.Status()
	fmt.Println("published", st.Published, "filtered", st.Filtered, "offset", st.Offset)
	// Output:
	// shop.orders.Placed id=Order/o-1/1 {"total":12}
	// shop.orders.Shipped id=Order/o-1/3 {}
	// published 2 filtered 1 offset 3
}
