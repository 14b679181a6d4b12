package process_test

import (
	"context"
	"fmt"
	"time"

	"github.com/eventsourced-go/eventsourced/binarize"
	"github.com/eventsourced-go/eventsourced/entity"
	"github.com/eventsourced-go/eventsourced/eventlog"
	"github.com/eventsourced-go/eventsourced/process"
	"github.com/eventsourced-go/eventsourced/projection"
)

// Invoice is the state of the example's target entity: the orders billed.
type Invoice struct{ Orders []string }

// Billed is its one event.
type Billed struct{ Order string }

// Bill bills an order once, however often it is sent.
type Bill struct{ Order string }

func (c Bill) Handle(tx *entity.Tx[Invoice, Billed]) (int, error) {
	return len(tx.Persist(Billed(c)).Orders), nil
}

// A process that bills every order placed: the order's "Placed" event
// makes its instance send Bill to the customer's invoice, with an
// idempotency key, so a step that runs again after a crash bills once.
func Example() {
	ctx := context.Background()
	log := eventlog.NewMemory()
	sys, _ := entity.NewSystem(log)
	defer sys.Close()
	events := binarize.NewRegistry[Billed](binarize.JSON)
	binarize.MustRegister[Billed](events, "Billed")
	invoices, _ := entity.Register(sys, entity.Type[Invoice, Billed]{
		Name: "Invoice",
		Apply: func(s Invoice, e Billed) Invoice {
			s.Orders = append(s.Orders[:len(s.Orders):len(s.Orders)], e.Order)
			return s
		},
		Events: events,
	}, entity.WithIdempotency()) // the process's commands carry keys

	m, err := process.New(sys, process.Definition[int]{
		Name:    "Billing",
		Sources: []string{"Order"},
		Correlate: func(rec eventlog.Record) (string, bool) {
			return rec.EntityID, rec.Name == "Placed"
		},
		Handle: func(steps int, in process.Input) (int, process.Effects, error) {
			customer := string(in.Record.Data)
			return steps + 1, process.Effects{Commands: []process.Command{
				process.Send(invoices.Ref(customer), Bill{Order: in.Instance}),
			}}, nil
		},
	}, projection.NewMemory())
	if err != nil {
		panic(err)
	}
	if err := m.Start(ctx); err != nil {
		panic(err)
	}
	defer m.Stop(ctx)

	var last uint64
	for _, order := range []string{"o-1", "o-2"} {
		last, _ = log.Append(ctx, "Order", order, 0, eventlog.Event{Name: "Placed", Data: []byte("alice")})
	}
	wctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if err := m.WaitFor(wctx, last); err != nil {
		panic(err)
	}
	inv, _ := entity.Ask(ctx, invoices.Ref("alice"), getInvoice{})
	fmt.Println("alice's invoice:", inv.Orders)
	steps, _, _ := m.State(ctx, "o-1")
	fmt.Println("steps of o-1:", steps, "stats:", m.Stats().Steps, "steps,", m.Stats().Commands, "commands")
	// Output:
	// alice's invoice: [o-1 o-2]
	// steps of o-1: 1 stats: 2 steps, 2 commands
}

// getInvoice replies with the invoice.
type getInvoice struct{}

func (getInvoice) Handle(tx *entity.Tx[Invoice, Billed]) (Invoice, error) { return tx.State(), nil }
