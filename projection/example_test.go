package projection_test

import (
	"context"
	"fmt"
	"sync"

	"github.com/eventsourced-go/eventsourced/binarize"
	"github.com/eventsourced-go/eventsourced/entity"
	"github.com/eventsourced-go/eventsourced/eventlog"
	"github.com/eventsourced-go/eventsourced/projection"
)

func Example() {
	ctx := context.Background()
	log := eventlog.NewMemory()
	log.Append(ctx, "Tab", "t-1", 0, eventlog.Event{Name: "TabOpened"}, eventlog.Event{Name: "DrinksOrdered"})
	log.Append(ctx, "Tab", "t-2", 0, eventlog.Event{Name: "TabOpened"})

	// The read model: how many events each tab has seen. It remembers the
	// last Seq per tab, so an event delivered again is ignored.
	lastSeq := map[string]uint64{}
	done := make(chan struct{})
	h := projection.PerEvent(func(ctx context.Context, rec eventlog.Record) error {
		if rec.Seq > lastSeq[rec.EntityID] {
			lastSeq[rec.EntityID] = rec.Seq
			fmt.Printf("%s %s (position %d)\n", rec.EntityID, rec.Name, rec.Position)
		}
		if rec.Position == 3 {
			close(done)
		}
		return nil
	})
	offsets := projection.NewMemory()
	p, err := projection.New(log, "Tab", "tab-events", offsets, h)
	if err != nil {
		panic(err)
	}
	p.Start(ctx)
	<-done
	p.Stop(ctx)

	st := p.Status()
	fmt.Println("offset", st.Offset, "handled", st.Handled, "lag", st.Lag)
	// Output:
	// t-1 TabOpened (position 1)
	// t-1 DrinksOrdered (position 2)
	// t-2 TabOpened (position 3)
	// offset 3 handled 3 lag 0
}

// Example_readYourWrites builds a read model with a typed handler and
// answers a query that must see the caller's own command.
func Example_readYourWrites() {
	events := binarize.NewRegistry[Opened](binarize.JSON)
	binarize.MustRegister[Opened](events, "Opened")

	ctx := context.Background()
	log := eventlog.NewMemory()
	sys, _ := entity.NewSystem(log)
	defer sys.Shutdown(ctx)
	accounts, _ := entity.Register(sys, entity.Type[string, Opened]{
		Name:   "Account",
		Apply:  func(_ string, e Opened) string { return e.Owner },
		Events: events,
	})

	var mu sync.Mutex
	owners := map[string]string{} // the read model: account id -> owner
	p, _ := projection.New(log, "Account", "owners", projection.NewMemory(),
		projection.DecodeEach(events, func(_ context.Context, ev projection.Decoded[Opened]) error {
			mu.Lock()
			defer mu.Unlock()
			owners[ev.EntityID] = ev.Event.Owner
			return nil
		}))
	p.Start(ctx)
	defer p.Stop(ctx)

	_, pos, err := entity.AskPosition(ctx, accounts.Ref("a-1"), open{Owner: "ann"})
	if err != nil {
		panic(err)
	}
	p.WaitFor(ctx, pos) // the read model has the command's event now
	mu.Lock()
	fmt.Println(owners["a-1"])
	mu.Unlock()
	// Output:
	// ann
}

// Opened is the event of an account opened by open.
type Opened struct{ Owner string }

// open opens an account.
type open struct{ Owner string }

func (c open) Handle(tx *entity.Tx[string, Opened]) (string, error) {
	return tx.Persist(Opened(c)), nil
}
