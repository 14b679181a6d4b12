package projection_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/eventsourced-go/eventsourced/binarize"
	"github.com/eventsourced-go/eventsourced/entity"
	"github.com/eventsourced-go/eventsourced/eventlog"
	"github.com/eventsourced-go/eventsourced/projection"
)

// The events of a shop's orders.
type (
	OrderEvent interface{ orderEvent() }
	Placed     struct{ Item string }
	Shipped    struct{ Carrier string }
)

func (Placed) orderEvent()  {}
func (Shipped) orderEvent() {}

func orderEvents() *binarize.Registry[OrderEvent] {
	r := binarize.NewRegistry[OrderEvent](binarize.JSON)
	binarize.MustRegister[Placed](r, "Placed")
	binarize.MustRegister[Shipped](r, "Shipped")
	return r
}

func appendEvents(t *testing.T, log eventlog.Log, id string, evs ...OrderEvent) {
	t.Helper()
	ctx := context.Background()
	last, err := log.LastSeq(ctx, "Order", id)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range evs {
		name, rev, data, err := orderEvents().Encode(e)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := log.Append(ctx, "Order", id, last, eventlog.Event{Name: name, Revision: rev, Data: data, Metadata: map[string]string{"n": fmt.Sprint(last + 1)}}); err != nil {
			t.Fatal(err)
		}
		last++
	}
}

// TestDecodedHandlers: Decode and DecodeEach hand the handler decoded
// events with their records, in Position order.
func TestDecodedHandlers(t *testing.T) {
	log := eventlog.NewMemory()
	appendEvents(t, log, "o-1", Placed{"tea"}, Shipped{"post"})
	appendEvents(t, log, "o-2", Placed{"cake"})
	want := []string{"o-1 1 Placed {tea} n=1", "o-1 2 Shipped {post} n=2", "o-2 1 Placed {cake} n=1"}
	line := func(d projection.Decoded[OrderEvent]) string {
		return fmt.Sprintf("%s %d %s %v n=%s", d.EntityID, d.Seq, d.Name, d.Event, d.Metadata["n"])
	}
	for _, batch := range []bool{true, false} {
		var mu sync.Mutex
		var got []string
		var h projection.Handler
		if batch {
			h = projection.Decode(orderEvents(), func(_ context.Context, b []projection.Decoded[OrderEvent]) error {
				mu.Lock()
				defer mu.Unlock()
				for _, d := range b {
					got = append(got, line(d))
				}
				return nil
			})
		} else {
			h = projection.DecodeEach(orderEvents(), func(_ context.Context, d projection.Decoded[OrderEvent]) error {
				mu.Lock()
				defer mu.Unlock()
				got = append(got, line(d))
				return nil
			})
		}
		p := mustNew(t, log, "Order", fmt.Sprintf("orders-%v", batch), projection.NewMemory(), h, projection.WithBatchSize(10))
		start(t, p)
		if err := p.WaitFor(context.Background(), 3); err != nil {
			t.Fatal(err)
		}
		stop(t, p)
		mu.Lock()
		if strings.Join(got, "; ") != strings.Join(want, "; ") {
			t.Fatalf("batch %v: handled\n %q\nwant\n %q", batch, got, want)
		}
		mu.Unlock()
	}
}

// TestDecodeFailureIsPoison: a record the codec cannot read fails the
// batch with an error naming the event, and the poison policy applies.
func TestDecodeFailureIsPoison(t *testing.T) {
	log := eventlog.NewMemory()
	appendEvents(t, log, "o-1", Placed{"tea"})
	if _, err := log.Append(context.Background(), "Order", "o-1", 1, eventlog.Event{Name: "Refunded", Data: []byte("{}")}); err != nil {
		t.Fatal(err)
	}
	appendEvents(t, log, "o-1", Shipped{"post"})
	var mu sync.Mutex
	var got []string
	h := projection.DecodeEach(orderEvents(), func(_ context.Context, d projection.Decoded[OrderEvent]) error {
		mu.Lock()
		defer mu.Unlock()
		got = append(got, d.Name)
		return nil
	})
	p := mustNew(t, log, "Order", "orders", projection.NewMemory(), h,
		projection.WithPoison(projection.SkipPoison), projection.WithRetry(time.Millisecond, time.Millisecond, 2))
	start(t, p)
	if err := p.WaitFor(context.Background(), 3); err != nil {
		t.Fatal(err)
	}
	stop(t, p)
	st := p.Status()
	if len(st.Skipped) != 1 || st.Skipped[0].Event.Name != "Refunded" || st.Skipped[0].Event.Seq != 2 {
		t.Fatalf("skipped %+v, want the Refunded event at seq 2", st.Skipped)
	}
	const wantErr = `projection: decode Order/o-1 seq 2 (position 2, Refunded): binarize: unknown event "Refunded" rev 0`
	if err := st.Skipped[0].Err; err == nil || err.Error() != wantErr {
		t.Fatalf("skip reason %v\nwant %s", err, wantErr)
	}
	mu.Lock()
	defer mu.Unlock()
	if strings.Join(got, ",") != "Placed,Shipped" {
		t.Fatalf("handled %v, want Placed,Shipped", got)
	}
}

// Order is an entity whose commands a read model follows.
type Order struct{ Items int }

// Place persists a Placed; Look reads the state and persists nothing.
type (
	Place struct{ Item string }
	Look  struct{}
)

func (c Place) Handle(tx *entity.Tx[Order, OrderEvent]) (int, error) {
	return tx.Persist(Placed{c.Item}).Items, nil
}

func (Look) Handle(tx *entity.Tx[Order, OrderEvent]) (int, error) { return tx.State().Items, nil }

// TestReadYourWrites: the Position AskPosition returns is the one the read
// model must reach for the command's events to show, and WaitFor waits for
// exactly that.
func TestReadYourWrites(t *testing.T) {
	ctx := context.Background()
	log := eventlog.NewMemory()
	sys, err := entity.NewSystem(log, entity.WithoutTelemetry())
	if err != nil {
		t.Fatal(err)
	}
	defer sys.Close()
	orders, err := entity.Register(sys, entity.Type[Order, OrderEvent]{
		Name:   "Order",
		Apply:  func(s Order, _ OrderEvent) Order { s.Items++; return s },
		Events: orderEvents(),
	})
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	items := map[string][]string{}
	gate := make(chan struct{}) // holds the read model back
	h := projection.DecodeEach(orderEvents(), func(ctx context.Context, d projection.Decoded[OrderEvent]) error {
		select {
		case <-gate:
		case <-ctx.Done():
			return ctx.Err()
		}
		mu.Lock()
		defer mu.Unlock()
		items[d.EntityID] = append(items[d.EntityID], d.Event.(Placed).Item)
		return nil
	})
	p := mustNew(t, log, "Order", "items", projection.NewMemory(), h)
	start(t, p)
	defer stop(t, p)

	_, pos1, err := entity.AskPosition(ctx, orders.Ref("o-1"), Place{"tea"})
	if err != nil || pos1 == 0 {
		t.Fatalf("AskPosition: %d, %v", pos1, err)
	}
	_, pos2, err := entity.AskPosition(ctx, orders.Ref("o-2"), Place{"cake"})
	if err != nil || pos2 <= pos1 {
		t.Fatalf("second AskPosition: %d, %v; want above %d", pos2, err, pos1)
	}
	for rec, err := range log.ReadEntity(ctx, "Order", "o-2", 1) {
		if err != nil || rec.Position != pos2 {
			t.Fatalf("o-2's event: position %d, %v; AskPosition said %d", rec.Position, err, pos2)
		}
	}
	if n, pos, err := entity.AskPosition(ctx, orders.Ref("o-2"), Look{}); err != nil || n != 1 || pos != 0 {
		t.Fatalf("a command that persists nothing: %d, position %d, %v; want position 0", n, pos, err)
	}

	short, cancel := context.WithTimeout(ctx, 20*time.Millisecond)
	defer cancel()
	err = p.WaitFor(short, pos2)
	if !errors.Is(err, context.DeadlineExceeded) || !strings.Contains(err.Error(), fmt.Sprintf("projection: items: wait for position %d", pos2)) {
		t.Fatalf("WaitFor a read model held back: %v; want the deadline, naming the position", err)
	}
	close(gate)
	if err := p.WaitFor(ctx, pos2); err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	got := fmt.Sprint(items)
	mu.Unlock()
	if got != "map[o-1:[tea] o-2:[cake]]" {
		t.Fatalf("read model after WaitFor: %s", got)
	}
	if err := p.WaitFor(ctx, pos1); err != nil { // passed already
		t.Fatal(err)
	}
}

// TestWaitForStopsAtPoison: a projection stopped by a poison event ends
// the wait with its PoisonError.
func TestWaitForStopsAtPoison(t *testing.T) {
	log := eventlog.NewMemory()
	appendEvents(t, log, "o-1", Placed{"tea"}, Placed{"cake"})
	boom := errors.New("boom")
	h := projection.DecodeEach(orderEvents(), func(_ context.Context, d projection.Decoded[OrderEvent]) error {
		if d.Seq == 2 {
			return boom
		}
		return nil
	})
	p := mustNew(t, log, "Order", "poisoned", projection.NewMemory(), h, projection.WithRetry(time.Millisecond, time.Millisecond, 2))
	start(t, p)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	err := p.WaitFor(ctx, 2)
	if !errors.Is(err, projection.ErrPoison) || !errors.Is(err, boom) {
		t.Fatalf("WaitFor past a poison event: %v; want the PoisonError", err)
	}
}
