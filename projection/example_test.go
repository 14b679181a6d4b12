package projection_test

import (
	"context"
	"fmt"

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
