package main

import (
	"fmt"
	"time"

	"github.com/eventsourced-go/eventsourced/entity"
	"github.com/eventsourced-go/eventsourced/eventlog"
	"github.com/eventsourced-go/eventsourced/process"
)

// Fulfilment is the state of one order's fulfilment, the process that
// ties an order, its SKU's stock and its payment together:
//
//   - OrderPlaced: reserve the stock; give the customer PayWithin to pay
//     (the timer "unpaid").
//   - StockReserved and PaymentCharged, in either order: ship (the stock's
//     reservation ends as shipped, the order is shipped).
//   - ReservationRejected: cancel the order (refund if it was paid).
//   - PaymentDeclined: release the stock and cancel the order.
//   - The timer "unpaid", before payment: release and cancel.
//   - A payment after the order was cancelled: refund it.
type Fulfilment struct {
	Order    string `json:"order,omitempty"`
	SKU      string `json:"sku,omitempty"`
	Qty      int    `json:"qty,omitempty"`
	Reserved bool   `json:"reserved,omitempty"`
	Paid     bool   `json:"paid,omitempty"`
	Done     string `json:"done,omitempty"` // shipped or cancelled
}

// fulfilment returns the process's definition: commands go to the kinds
// given, and an order not paid within payWithin is cancelled.
func fulfilment(orders *entity.Kind[Order, OrderEvent], stock *entity.Kind[Stock, StockEvent],
	payments *entity.Kind[Payment, PaymentEvent], payWithin time.Duration) process.Definition[Fulfilment] {
	return process.Definition[Fulfilment]{
		Name:      "Fulfilment",
		Sources:   []string{"Order", "Stock", "Payment"},
		Correlate: correlate,
		Handle: func(s Fulfilment, in process.Input) (Fulfilment, process.Effects, error) {
			var eff process.Effects
			send := func(c process.Command) { eff.Commands = append(eff.Commands, c) }
			cancel := func(reason string) {
				send(process.Send(stock.Ref(s.SKU), Release{OrderID: s.Order}))
				send(process.Send(orders.Ref(s.Order), Cancel{Reason: reason}))
				eff.Cancel = append(eff.Cancel, "unpaid")
				s.Done = Cancelled
			}
			ship := func() {
				if s.Reserved && s.Paid && s.Done == "" {
					send(process.Send(stock.Ref(s.SKU), ShipStock{OrderID: s.Order}))
					send(process.Send(orders.Ref(s.Order), Ship{}))
					s.Done = Shipped
				}
			}
			if in.Timer != nil { // "unpaid"
				if !s.Paid && s.Done == "" {
					cancel("not paid in time")
				}
				return s, eff, nil
			}
			e, err := decode(in.Record)
			if err != nil {
				return s, eff, err
			}
			switch e := e.(type) {
			case OrderPlaced:
				s.Order, s.SKU, s.Qty = in.Instance, e.SKU, e.Qty
				send(process.Send(stock.Ref(e.SKU), Reserve{OrderID: s.Order, Qty: e.Qty}))
				// The time comes from the event, not the clock: a step must
				// decide the same effects when it runs again.
				eff.Timers = []process.Timer{{Name: "unpaid", At: in.Record.Time.Add(payWithin)}}
			case StockReserved:
				s.Reserved = true
				if s.Done == Cancelled {
					// Cancelled meanwhile (the reservation came late).
					send(process.Send(stock.Ref(s.SKU), Release{OrderID: s.Order}))
				}
				ship()
			case ReservationRejected:
				if s.Done == "" {
					send(process.Send(orders.Ref(s.Order), Cancel{Reason: "out of stock"}))
					eff.Cancel = append(eff.Cancel, "unpaid")
					s.Done = Cancelled
				}
				if s.Paid {
					send(process.Send(payments.Ref(s.Order), Refund{}))
				}
			case PaymentCharged:
				s.Paid = true
				eff.Cancel = append(eff.Cancel, "unpaid")
				if s.Done == Cancelled {
					send(process.Send(payments.Ref(s.Order), Refund{}))
				}
				ship()
			case PaymentDeclined:
				if s.Done == "" {
					cancel("payment declined")
				}
			}
			return s, eff, nil
		},
	}
}

// correlate maps an event to its order: orders and payments by their id,
// stock events by the order they name.
func correlate(rec eventlog.Record) (string, bool) {
	switch rec.EntityType {
	case "Order", "Payment":
		return rec.EntityID, true
	case "Stock":
		e, err := stockEvents.Decode(rec.Name, rec.Revision, rec.Data)
		if err != nil {
			return "", false
		}
		switch e := e.(type) {
		case StockReserved:
			return e.OrderID, true
		case ReservationRejected:
			return e.OrderID, true
		}
	}
	return "", false
}

// decode decodes an event of a source type.
func decode(rec eventlog.Record) (any, error) {
	var e any
	var err error
	switch rec.EntityType {
	case "Order":
		e, err = orderEvents.Decode(rec.Name, rec.Revision, rec.Data)
	case "Stock":
		e, err = stockEvents.Decode(rec.Name, rec.Revision, rec.Data)
	case "Payment":
		e, err = paymentEvents.Decode(rec.Name, rec.Revision, rec.Data)
	default:
		err = fmt.Errorf("event of type %s", rec.EntityType)
	}
	return e, err
}
