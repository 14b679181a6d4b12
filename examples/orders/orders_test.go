package main

import (
	"bytes"
	"context"
	"strings"
	"testing"
	"time"
)

// TestRun runs the shop with 30 orders against less stock than they want.
// Which orders find stock depends on when cancelled ones give theirs back,
// so the test checks what must hold whatever the timing: every order ends
// shipped or cancelled for a reason its customer explains; nothing is
// reserved at the end; the stock shipped and left adds up to the stock
// there was; what was charged and not refunded is what shipped; and the
// public stream has each order's placed event and its end, once.
func TestRun(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	var out bytes.Buffer
	const orders = 30
	rep, err := run(ctx, config{orders: orders, payWithin: 500 * time.Millisecond}, &out)
	if err != nil {
		t.Fatalf("run: %v\n%s", err, out.String())
	}
	t.Log("\n" + out.String())

	shipped := rep.statuses[Shipped]
	total := 0
	for status, n := range rep.statuses {
		total += n
		switch status {
		case Shipped, Cancelled + " (out of stock)", Cancelled + " (payment declined)", Cancelled + " (not paid in time)":
		default:
			t.Errorf("%d orders ended %q", n, status)
		}
	}
	if total != orders {
		t.Errorf("%d orders ended, want %d", total, orders)
	}
	// Of every five customers, three pay, one's card is declined, one
	// never pays.
	if n := rep.statuses[Cancelled+" (payment declined)"]; n > orders/5 {
		t.Errorf("%d orders cancelled for a declined payment, at most %d customers had such a card", n, orders/5)
	}
	if n := rep.statuses[Cancelled+" (not paid in time)"]; n > orders/5 {
		t.Errorf("%d orders cancelled unpaid, at most %d customers never paid", n, orders/5)
	}
	if shipped == 0 || shipped > 3*orders/5 {
		t.Errorf("%d orders shipped, want 1 to %d", shipped, 3*orders/5)
	}
	if rep.reserved != 0 {
		t.Errorf("%d reservations still held after every order ended", rep.reserved)
	}
	stockLeft, stockAtStart := 0, 0
	for sku, qty := range skus {
		stockAtStart += qty
		stockLeft += rep.available[sku]
	}
	if stockLeft+shipped != stockAtStart {
		t.Errorf("stock left %d + shipped %d != stock at the start %d", stockLeft, shipped, stockAtStart)
	}
	if got, want := rep.charged-rep.refunded, int64(450*shipped); got != want {
		t.Errorf("charged %d - refunded %d = %d, want %d for %d orders shipped", rep.charged, rep.refunded, got, want, shipped)
	}
	if rep.public["shop.orders.placed"] != orders || rep.public["shop.orders.shipped"] != shipped ||
		rep.public["shop.orders.cancelled"] != orders-shipped || len(rep.public) != 3 {
		t.Errorf("public events %v, want %d placed, %d shipped, %d cancelled", rep.public, orders, shipped, orders-shipped)
	}
	if !strings.Contains(out.String(), "public events on stream SHOP") {
		t.Errorf("the summary does not name the public stream:\n%s", out.String())
	}
}
