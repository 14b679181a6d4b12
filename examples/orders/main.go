// Command orders runs a small shop: orders, stock and payments are
// entities; a process manager (package process) reserves the stock when an
// order is placed, ships it once it is paid, compensates when the stock
// runs out or the payment is declined, and cancels an order that is not
// paid in time (a durable timer, package timer). The orders' events go out
// as public integration events on a NATS JetStream stream (package relay),
// which a second program, ./examples/orders/consumer, reads.
//
//	go run ./examples/orders                       # embedded NATS, temporary data
//	go run ./examples/orders -serve                # keep serving the public stream
//	go run ./examples/orders/consumer -nats <url>  # in another terminal
//
// Everything runs on a NATS server embedded in the process (JetStream, file
// storage), so there is nothing to install.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"sort"
	"strings"
	"syscall"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/eventsourced-go/eventsourced/entity"
	"github.com/eventsourced-go/eventsourced/eventlog"
	"github.com/eventsourced-go/eventsourced/natslog"
	"github.com/eventsourced-go/eventsourced/process"
	"github.com/eventsourced-go/eventsourced/projection/natsprojection"
	"github.com/eventsourced-go/eventsourced/relay"
	"github.com/eventsourced-go/eventsourced/relay/natssink"
	"github.com/eventsourced-go/eventsourced/timer"
)

// PublicStream is the JetStream stream of the public order events, on the
// subjects "shop.orders.<event>".
const PublicStream = "SHOP"

type config struct {
	dataDir   string
	orders    int
	payWithin time.Duration
	serve     bool
}

func main() {
	var cfg config
	flag.StringVar(&cfg.dataDir, "data", "", "data directory of the embedded NATS server (default: a temporary one)")
	flag.IntVar(&cfg.orders, "orders", 20, "orders to place")
	flag.DurationVar(&cfg.payWithin, "pay-within", 2*time.Second, "how long an order waits for its payment")
	flag.BoolVar(&cfg.serve, "serve", false, "keep serving the public stream after the run, until Ctrl-C")
	flag.Parse()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if _, err := run(ctx, cfg, os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "orders:", err)
		os.Exit(1)
	}
}

// report is what a run ended with.
type report struct {
	// statuses counts the orders by final status and reason.
	statuses map[string]int
	// available is the stock left per SKU; reserved the reservations
	// still held.
	available map[string]int
	reserved  int
	// charged and refunded sum the payments.
	charged, refunded int64
	// public counts the public events on the stream, by subject.
	public map[string]int
}

// skus and their stock at the start: fewer than the orders want, so some
// orders find none.
var skus = map[string]int{"tea": 8, "cake": 4, "mug": 2}

// scenario says how the customer of order i pays: most pay, some with a
// card that is declined, some never.
func scenario(i int) (card string, pays bool) {
	switch i % 5 {
	case 3:
		return "declined", true
	case 4:
		return "", false
	}
	return "visa", true
}

// run sets everything up, places cfg.orders orders, waits until every
// order is shipped or cancelled and the public stream has their events,
// and prints a summary to out.
func run(ctx context.Context, cfg config, out io.Writer) (rep report, err error) {
	if cfg.orders < 1 || cfg.payWithin <= 0 {
		return rep, fmt.Errorf("-orders (%d) must be at least 1 and -pay-within (%v) positive", cfg.orders, cfg.payWithin)
	}
	dir := cfg.dataDir
	if dir == "" {
		if dir, err = os.MkdirTemp("", "orders-example-"); err != nil {
			return rep, err
		}
		defer os.RemoveAll(dir)
	}
	srv, err := natslog.StartEmbedded(dir)
	if err != nil {
		return rep, err
	}
	defer srv.Shutdown()
	nc, err := nats.Connect(srv.ClientURL(), nats.Name("orders example"), nats.ReconnectBufSize(-1))
	if err != nil {
		return rep, err
	}
	defer nc.Close()
	js, err := jetstream.New(nc, jetstream.WithPublishAsyncMaxPending(4096), jetstream.WithPublishAsyncTimeout(10*time.Second))
	if err != nil {
		return rep, err
	}
	if err := natslog.Setup(ctx, js); err != nil {
		return rep, err
	}
	log, err := natslog.New(ctx, js)
	if err != nil {
		return rep, err
	}
	defer log.Close()
	offsets, err := natsprojection.New(ctx, js)
	if err != nil {
		return rep, err
	}
	fmt.Fprintf(out, "store: embedded NATS at %s, data in %s\n", srv.ClientURL(), dir)

	sys, err := entity.NewSystem(log)
	if err != nil {
		return rep, err
	}
	defer func() {
		sctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = sys.Shutdown(sctx)
	}()
	// The commands the process sends carry idempotency keys; these kinds
	// keep them, so a command sent again after a crash acts once.
	orders, err := entity.Register(sys, OrderType(), entity.WithIdempotency())
	if err != nil {
		return rep, err
	}
	stock, err := entity.Register(sys, StockType(), entity.WithIdempotency())
	if err != nil {
		return rep, err
	}
	payments, err := entity.Register(sys, PaymentType(), entity.WithIdempotency())
	if err != nil {
		return rep, err
	}

	// The process's timers. Firing one does nothing but record that it
	// fired: that event is the process's input.
	timers, err := timer.New(sys, "fulfilment", offsets, func(context.Context, timer.Timer) error { return nil })
	if err != nil {
		return rep, err
	}
	m, err := process.New(sys, fulfilment(orders, stock, payments, cfg.payWithin), offsets, process.WithTimers(timers))
	if err != nil {
		return rep, err
	}

	// The orders' events, published as public integration events.
	if err := natssink.Setup(ctx, js, PublicStream, []string{"shop.orders.>"}); err != nil {
		return rep, err
	}
	sink, err := natssink.New(ctx, js, PublicStream)
	if err != nil {
		return rep, err
	}
	pub, err := relay.New(log, []string{"Order"}, "public-orders", offsets, sink, relay.WithMap(publicOrderEvent))
	if err != nil {
		return rep, err
	}
	for _, s := range []interface{ Start(context.Context) error }{timers, m, pub} {
		if err := s.Start(ctx); err != nil {
			return rep, err
		}
	}
	defer func() {
		sctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = pub.Stop(sctx)
		_ = m.Stop(sctx)
		_ = timers.Stop(sctx)
	}()

	for sku, qty := range skus {
		if _, err := entity.Ask(ctx, stock.Ref(sku), AddStock{Qty: qty}); err != nil {
			return rep, err
		}
	}
	names := make([]string, 0, len(skus))
	for sku := range skus {
		names = append(names, sku)
	}
	sort.Strings(names)
	ids := make([]string, cfg.orders)
	for i := range cfg.orders {
		ids[i] = fmt.Sprintf("order-%03d", i+1)
		sku := names[i%len(names)]
		if _, err := entity.Ask(ctx, orders.Ref(ids[i]), Place{SKU: sku, Qty: 1, Amount: 450}); err != nil {
			return rep, err
		}
		if card, pays := scenario(i); pays {
			if _, err := entity.Ask(ctx, payments.Ref(ids[i]), Pay{Amount: 450, Card: card}); err != nil {
				return rep, err
			}
		}
	}
	fmt.Fprintf(out, "placed %d orders; waiting up to %v for payments\n", cfg.orders, cfg.payWithin)

	// Wait until every order is shipped or cancelled.
	rep.statuses = map[string]int{}
	for _, id := range ids {
		o, err := waitOrder(ctx, orders.Ref(id))
		if err != nil {
			return rep, err
		}
		key := o.Status
		if o.Reason != "" {
			key += " (" + o.Reason + ")"
		}
		rep.statuses[key]++
	}
	// Compensations that follow the last status change (a refund, a
	// release) may still be on their way: wait until the process has
	// handled everything in the log.
	if err := waitProcessed(ctx, log, m); err != nil {
		return rep, err
	}
	rep.available = map[string]int{}
	for _, sku := range names {
		s, err := entity.Ask(ctx, stock.Ref(sku), GetStock{})
		if err != nil {
			return rep, err
		}
		rep.available[sku] = s.Available
		rep.reserved += len(s.Reserved)
	}
	for _, id := range ids {
		p, err := entity.Ask(ctx, payments.Ref(id), GetPayment{})
		if err != nil {
			return rep, err
		}
		rep.charged += p.Charged
		rep.refunded += p.Refunded
	}
	if rep.public, err = readPublic(ctx, js, pub, log); err != nil {
		return rep, err
	}

	keys := make([]string, 0, len(rep.statuses))
	for k := range rep.statuses {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		fmt.Fprintf(out, "  %-32s %d\n", k, rep.statuses[k])
	}
	fmt.Fprintf(out, "stock left: %v, reservations held: %d\n", rep.available, rep.reserved)
	fmt.Fprintf(out, "payments: charged %d, refunded %d\n", rep.charged, rep.refunded)
	fmt.Fprintf(out, "public events on stream %s: %v\n", PublicStream, rep.public)
	st := m.Stats()
	fmt.Fprintf(out, "process: %d steps, %d commands sent, %d stale timers ignored\n", st.Steps, st.Commands, st.StaleTimers)
	if cfg.serve {
		fmt.Fprintf(out, "serving %s; read it with: go run ./examples/orders/consumer -nats %s\n", PublicStream, srv.ClientURL())
		<-ctx.Done()
	}
	return rep, nil
}

// waitOrder polls the order until it is shipped or cancelled.
func waitOrder(ctx context.Context, ref entity.Ref[Order, OrderEvent]) (Order, error) {
	for {
		o, err := entity.Ask(ctx, ref, GetOrder{})
		if err != nil || o.Status == Shipped || o.Status == Cancelled {
			return o, err
		}
		select {
		case <-ctx.Done():
			return o, fmt.Errorf("order %s still %s: %w", ref.ID(), o.Status, ctx.Err())
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// waitProcessed waits until the process has handled every event of its
// sources appended so far.
func waitProcessed(ctx context.Context, log eventlog.Log, m *process.Manager[Fulfilment]) error {
	all, ok := log.(eventlog.AllReader)
	if !ok {
		return errors.New("the log cannot read every type")
	}
	for {
		var last uint64
		for rec, err := range all.ReadAll(ctx, 0, "Order", "Stock", "Payment") {
			if err != nil {
				return err
			}
			last = rec.Position
		}
		if err := m.WaitFor(ctx, last); err != nil {
			return err
		}
		// Steps of that last event may have sent commands whose events
		// came after it.
		var again uint64
		for rec, err := range all.ReadAll(ctx, last, "Order", "Stock", "Payment") {
			if err != nil {
				return err
			}
			again = rec.Position
		}
		if again == 0 {
			return nil
		}
	}
}

// publicOrderEvent maps an order event to its public schema: JSON with
// the order id, the event and its fields, on "shop.orders.<event>".
func publicOrderEvent(rec eventlog.Record) (relay.Message, bool, error) {
	e, err := orderEvents.Decode(rec.Name, rec.Revision, rec.Data)
	if err != nil {
		return relay.Message{}, false, err
	}
	var body string
	switch e := e.(type) {
	case OrderPlaced:
		body = fmt.Sprintf(`{"order":%q,"event":"placed","sku":%q,"qty":%d,"amount":%d}`, rec.EntityID, e.SKU, e.Qty, e.Amount)
	case OrderShipped:
		body = fmt.Sprintf(`{"order":%q,"event":"shipped"}`, rec.EntityID)
	case OrderCancelled:
		body = fmt.Sprintf(`{"order":%q,"event":"cancelled","reason":%q}`, rec.EntityID, e.Reason)
	default:
		return relay.Message{}, false, nil
	}
	subject := "shop.orders." + strings.TrimPrefix(strings.ToLower(rec.Name), "order")
	return relay.Message{Subject: subject, Key: rec.EntityID, Data: []byte(body)}, true, nil
}

// readPublic waits until the relay has published every order event and
// counts the stream's messages by subject.
func readPublic(ctx context.Context, js jetstream.JetStream, pub *relay.Relay, log eventlog.Log) (map[string]int, error) {
	var last uint64
	for rec, err := range log.ReadType(ctx, "Order", 0) {
		if err != nil {
			return nil, err
		}
		last = rec.Position
	}
	if err := pub.Projection().WaitFor(ctx, last); err != nil {
		return nil, err
	}
	counts := map[string]int{}
	err := consume(ctx, js, func(subject string, data []byte) { counts[subject]++ })
	return counts, err
}
