package main

import (
	"errors"
	"fmt"
	"maps"

	"github.com/eventsourced-go/eventsourced/binarize"
	"github.com/eventsourced-go/eventsourced/entity"
)

// The three entity types of the shop: orders, stock per SKU and a payment
// per order. They know nothing of each other; the fulfilment process
// (fulfilment.go) ties them together.

// Order statuses.
const (
	Placed    = "placed"
	Shipped   = "shipped"
	Cancelled = "cancelled"
)

// Order is the state of an order.
type Order struct {
	Status string `json:"status,omitempty"`
	SKU    string `json:"sku,omitempty"`
	Qty    int    `json:"qty,omitempty"`
	Amount int64  `json:"amount,omitempty"`
	Reason string `json:"reason,omitempty"`
}

// OrderEvent is implemented by every order event.
type OrderEvent interface{ isOrderEvent() }

// OrderPlaced starts an order.
type OrderPlaced struct {
	SKU    string `json:"sku"`
	Qty    int    `json:"qty"`
	Amount int64  `json:"amount"`
}

// OrderShipped ends an order that was paid.
type OrderShipped struct{}

// OrderCancelled ends an order that was not.
type OrderCancelled struct {
	Reason string `json:"reason"`
}

func (OrderPlaced) isOrderEvent()    {}
func (OrderShipped) isOrderEvent()   {}
func (OrderCancelled) isOrderEvent() {}

var orderEvents = func() *binarize.Registry[OrderEvent] {
	r := binarize.NewRegistry[OrderEvent](binarize.JSON)
	binarize.MustRegister[OrderPlaced](r, "OrderPlaced")
	binarize.MustRegister[OrderShipped](r, "OrderShipped")
	binarize.MustRegister[OrderCancelled](r, "OrderCancelled")
	return r
}()

// OrderType is the order entity type.
func OrderType() entity.Type[Order, OrderEvent] {
	return entity.Type[Order, OrderEvent]{
		Name: "Order",
		Apply: func(s Order, e OrderEvent) Order {
			switch e := e.(type) {
			case OrderPlaced:
				s = Order{Status: Placed, SKU: e.SKU, Qty: e.Qty, Amount: e.Amount}
			case OrderShipped:
				s.Status = Shipped
			case OrderCancelled:
				s.Status, s.Reason = Cancelled, e.Reason
			}
			return s
		},
		Events: orderEvents,
		State:  binarize.Value[Order](binarize.JSON),
	}
}

// ErrOrderState rejects a command that the order's status does not allow.
var ErrOrderState = errors.New("not allowed in the order's status")

// Place places an order. It replies with the order.
type Place struct {
	SKU    string
	Qty    int
	Amount int64
}

// Handle implements entity.Command.
func (c Place) Handle(tx *entity.Tx[Order, OrderEvent]) (Order, error) {
	switch {
	case tx.State().Status != "":
		return Order{}, fmt.Errorf("place order %s: it is %s: %w", tx.ID(), tx.State().Status, ErrOrderState)
	case c.SKU == "" || c.Qty < 1 || c.Amount < 1:
		return Order{}, fmt.Errorf("place order %s: want a SKU, a quantity and an amount, got %q, %d, %d", tx.ID(), c.SKU, c.Qty, c.Amount)
	}
	return tx.Persist(OrderPlaced{SKU: c.SKU, Qty: c.Qty, Amount: c.Amount}), nil
}

// Ship ships a placed order. Shipping a shipped order changes nothing.
type Ship struct{}

// Handle implements entity.Command.
func (Ship) Handle(tx *entity.Tx[Order, OrderEvent]) (Order, error) {
	switch tx.State().Status {
	case Shipped:
		return tx.State(), nil
	case Placed:
		return tx.Persist(OrderShipped{}), nil
	}
	return Order{}, fmt.Errorf("ship order %s: it is %q: %w", tx.ID(), tx.State().Status, ErrOrderState)
}

// Cancel cancels a placed order. Cancelling a cancelled order changes
// nothing.
type Cancel struct{ Reason string }

// Handle implements entity.Command.
func (c Cancel) Handle(tx *entity.Tx[Order, OrderEvent]) (Order, error) {
	switch tx.State().Status {
	case Cancelled:
		return tx.State(), nil
	case Placed:
		return tx.Persist(OrderCancelled{Reason: c.Reason}), nil
	}
	return Order{}, fmt.Errorf("cancel order %s: it is %q: %w", tx.ID(), tx.State().Status, ErrOrderState)
}

// GetOrder replies with the order.
type GetOrder struct{}

// Handle implements entity.Command.
func (GetOrder) Handle(tx *entity.Tx[Order, OrderEvent]) (Order, error) { return tx.State(), nil }

// Stock is the state of one SKU's stock: what is on hand and not
// reserved, and the reservations by order.
type Stock struct {
	Available int            `json:"available"`
	Reserved  map[string]int `json:"reserved,omitempty"`
}

// StockEvent is implemented by every stock event.
type StockEvent interface{ isStockEvent() }

// StockAdded adds to what is available.
type StockAdded struct {
	Qty int `json:"qty"`
}

// StockReserved holds stock for an order.
type StockReserved struct {
	OrderID string `json:"order_id"`
	Qty     int    `json:"qty"`
}

// ReservationRejected records an order the stock could not serve. It is
// an event, not an error, so that the fulfilment process reacts to it.
type ReservationRejected struct {
	OrderID   string `json:"order_id"`
	Qty       int    `json:"qty"`
	Available int    `json:"available"`
}

// StockReleased gives an order's reservation back.
type StockReleased struct {
	OrderID string `json:"order_id"`
	Qty     int    `json:"qty"`
}

// StockShipped ends an order's reservation: the stock left.
type StockShipped struct {
	OrderID string `json:"order_id"`
	Qty     int    `json:"qty"`
}

func (StockAdded) isStockEvent()          {}
func (StockReserved) isStockEvent()       {}
func (ReservationRejected) isStockEvent() {}
func (StockReleased) isStockEvent()       {}
func (StockShipped) isStockEvent()        {}

var stockEvents = func() *binarize.Registry[StockEvent] {
	r := binarize.NewRegistry[StockEvent](binarize.JSON)
	binarize.MustRegister[StockAdded](r, "StockAdded")
	binarize.MustRegister[StockReserved](r, "StockReserved")
	binarize.MustRegister[ReservationRejected](r, "ReservationRejected")
	binarize.MustRegister[StockReleased](r, "StockReleased")
	binarize.MustRegister[StockShipped](r, "StockShipped")
	return r
}()

// StockType is the stock entity type, one entity per SKU.
func StockType() entity.Type[Stock, StockEvent] {
	return entity.Type[Stock, StockEvent]{
		Name: "Stock",
		Apply: func(s Stock, e StockEvent) Stock {
			s.Reserved = maps.Clone(s.Reserved)
			switch e := e.(type) {
			case StockAdded:
				s.Available += e.Qty
			case StockReserved:
				s.Available -= e.Qty
				if s.Reserved == nil {
					s.Reserved = map[string]int{}
				}
				s.Reserved[e.OrderID] = e.Qty
			case StockReleased:
				s.Available += e.Qty
				delete(s.Reserved, e.OrderID)
			case StockShipped:
				delete(s.Reserved, e.OrderID)
			}
			return s
		},
		Events: stockEvents,
		State:  binarize.Value[Stock](binarize.JSON),
	}
}

// AddStock adds Qty to the SKU's stock.
type AddStock struct{ Qty int }

// Handle implements entity.Command.
func (c AddStock) Handle(tx *entity.Tx[Stock, StockEvent]) (Stock, error) {
	if c.Qty < 1 {
		return Stock{}, fmt.Errorf("add %d to stock %s: want at least 1", c.Qty, tx.ID())
	}
	return tx.Persist(StockAdded{Qty: c.Qty}), nil
}

// Reserve reserves Qty for an order, or records that it could not.
type Reserve struct {
	OrderID string
	Qty     int
}

// Handle implements entity.Command.
func (c Reserve) Handle(tx *entity.Tx[Stock, StockEvent]) (Stock, error) {
	s := tx.State()
	if _, ok := s.Reserved[c.OrderID]; ok {
		return s, nil // reserved already
	}
	if s.Available < c.Qty {
		return tx.Persist(ReservationRejected{OrderID: c.OrderID, Qty: c.Qty, Available: s.Available}), nil
	}
	return tx.Persist(StockReserved{OrderID: c.OrderID, Qty: c.Qty}), nil
}

// Release gives back an order's reservation, if it has one.
type Release struct{ OrderID string }

// Handle implements entity.Command.
func (c Release) Handle(tx *entity.Tx[Stock, StockEvent]) (Stock, error) {
	qty, ok := tx.State().Reserved[c.OrderID]
	if !ok {
		return tx.State(), nil
	}
	return tx.Persist(StockReleased{OrderID: c.OrderID, Qty: qty}), nil
}

// ShipStock ends an order's reservation as shipped, if it has one.
type ShipStock struct{ OrderID string }

// Handle implements entity.Command.
func (c ShipStock) Handle(tx *entity.Tx[Stock, StockEvent]) (Stock, error) {
	qty, ok := tx.State().Reserved[c.OrderID]
	if !ok {
		return tx.State(), nil
	}
	return tx.Persist(StockShipped{OrderID: c.OrderID, Qty: qty}), nil
}

// GetStock replies with the stock.
type GetStock struct{}

// Handle implements entity.Command.
func (GetStock) Handle(tx *entity.Tx[Stock, StockEvent]) (Stock, error) { return tx.State(), nil }

// Payment is the state of an order's payment (the payment's id is the
// order's).
type Payment struct {
	Charged  int64 `json:"charged,omitempty"`
	Refunded int64 `json:"refunded,omitempty"`
	Declined bool  `json:"declined,omitempty"`
}

// PaymentEvent is implemented by every payment event.
type PaymentEvent interface{ isPaymentEvent() }

// PaymentCharged records a payment taken.
type PaymentCharged struct {
	Amount int64 `json:"amount"`
}

// PaymentDeclined records a payment refused. Like ReservationRejected, it
// is an event the process reacts to.
type PaymentDeclined struct {
	Reason string `json:"reason"`
}

// PaymentRefunded records a payment given back.
type PaymentRefunded struct {
	Amount int64 `json:"amount"`
}

func (PaymentCharged) isPaymentEvent()  {}
func (PaymentDeclined) isPaymentEvent() {}
func (PaymentRefunded) isPaymentEvent() {}

var paymentEvents = func() *binarize.Registry[PaymentEvent] {
	r := binarize.NewRegistry[PaymentEvent](binarize.JSON)
	binarize.MustRegister[PaymentCharged](r, "PaymentCharged")
	binarize.MustRegister[PaymentDeclined](r, "PaymentDeclined")
	binarize.MustRegister[PaymentRefunded](r, "PaymentRefunded")
	return r
}()

// PaymentType is the payment entity type.
func PaymentType() entity.Type[Payment, PaymentEvent] {
	return entity.Type[Payment, PaymentEvent]{
		Name: "Payment",
		Apply: func(s Payment, e PaymentEvent) Payment {
			switch e := e.(type) {
			case PaymentCharged:
				s.Charged += e.Amount
			case PaymentDeclined:
				s.Declined = true
			case PaymentRefunded:
				s.Refunded += e.Amount
			}
			return s
		},
		Events: paymentEvents,
		State:  binarize.Value[Payment](binarize.JSON),
	}
}

// Pay is the customer paying an order: a card that is "declined" is.
type Pay struct {
	Amount int64
	Card   string
}

// Handle implements entity.Command.
func (c Pay) Handle(tx *entity.Tx[Payment, PaymentEvent]) (Payment, error) {
	s := tx.State()
	if s.Charged > 0 || s.Declined {
		return s, nil // paid or declined already
	}
	if c.Card == "declined" {
		return tx.Persist(PaymentDeclined{Reason: "card declined"}), nil
	}
	return tx.Persist(PaymentCharged{Amount: c.Amount}), nil
}

// Refund gives back what was charged and not refunded yet.
type Refund struct{}

// Handle implements entity.Command.
func (Refund) Handle(tx *entity.Tx[Payment, PaymentEvent]) (Payment, error) {
	s := tx.State()
	if s.Charged == s.Refunded {
		return s, nil
	}
	return tx.Persist(PaymentRefunded{Amount: s.Charged - s.Refunded}), nil
}

// GetPayment replies with the payment.
type GetPayment struct{}

// Handle implements entity.Command.
func (GetPayment) Handle(tx *entity.Tx[Payment, PaymentEvent]) (Payment, error) {
	return tx.State(), nil
}
