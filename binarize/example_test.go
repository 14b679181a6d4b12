package binarize_test

import (
	"errors"
	"fmt"

	"github.com/eventsourced-go/eventsourced/binarize"
)

// CartEvent is the event type of a shopping cart.
type CartEvent interface{ cartEvent() }

// ItemAdded is revision 1 of "ItemAdded": a price in cents.
type ItemAdded struct {
	SKU        string `json:"sku"`
	PriceCents int64  `json:"price_cents"`
}

// CheckedOut was called "Ordered" until it was renamed.
type CheckedOut struct {
	Total int64 `json:"total"`
}

func (ItemAdded) cartEvent()  {}
func (CheckedOut) cartEvent() {}

// itemAddedV0 is how revision 0 of "ItemAdded" was written: a price in euros.
type itemAddedV0 struct {
	SKU   string  `json:"sku"`
	Price float64 `json:"price"`
}

// ordered is the shape of the old event name "Ordered".
type ordered struct {
	Total int64 `json:"total"`
}

var cartEvents = binarize.NewRegistry[CartEvent](binarize.JSON)

func init() {
	binarize.MustRegister[ItemAdded](cartEvents, "ItemAdded", binarize.Revision(1))
	binarize.MustRegister[CheckedOut](cartEvents, "CheckedOut")
	binarize.MustUpcast(cartEvents, "ItemAdded", 0, func(old itemAddedV0) (CartEvent, error) {
		if old.Price < 0 {
			return nil, errors.New("negative price")
		}
		return ItemAdded{SKU: old.SKU, PriceCents: int64(old.Price*100 + 0.5)}, nil
	})
	binarize.MustUpcast(cartEvents, "Ordered", 0, func(old ordered) (CartEvent, error) {
		return CheckedOut(old), nil
	})
}

func Example() {
	// Writing: the registry names the event and its current revision.
	name, rev, data, err := cartEvents.Encode(ItemAdded{SKU: "tea", PriceCents: 450})
	if err != nil {
		panic(err)
	}
	fmt.Printf("%s rev %d: %s\n", name, rev, data)

	// Reading what the log stored, in every revision and under every name.
	stored := []struct {
		name     string
		revision uint32
		data     string
	}{
		{"ItemAdded", 1, `{"sku":"tea","price_cents":450}`},
		{"ItemAdded", 0, `{"sku":"cake","price":3.2}`},
		{"Ordered", 0, `{"total":770}`},
		{"ItemAdded", 0, `{"sku":"x","price":-1}`},
		{"ItemAdded", 2, `{}`},
	}
	for _, s := range stored {
		e, err := cartEvents.Decode(s.name, s.revision, []byte(s.data))
		if err != nil {
			fmt.Println("error:", err)
			continue
		}
		fmt.Printf("%T %+v\n", e, e)
	}
	fmt.Println(cartEvents.Names())
	// Output:
	// ItemAdded rev 1: {"sku":"tea","price_cents":450}
	// binarize_test.ItemAdded {SKU:tea PriceCents:450}
	// binarize_test.ItemAdded {SKU:cake PriceCents:320}
	// binarize_test.CheckedOut {Total:770}
	// error: binarize: decode "ItemAdded" rev 0 (22 bytes): upcast from binarize_test.itemAddedV0: negative price
	// error: binarize: unknown event "ItemAdded" rev 2 (current revision 1; upcast revisions [0])
	// [CheckedOut ItemAdded]
}

func ExampleValue() {
	type State struct {
		Items []string `json:"items"`
		Total int64    `json:"total"`
	}
	codec := binarize.Value[State](binarize.Msgpack)
	data, err := codec.Encode(State{Items: []string{"tea"}, Total: 450})
	if err != nil {
		panic(err)
	}
	fmt.Printf("%d bytes: %q\n", len(data), data)
	s, err := codec.Decode(data)
	fmt.Printf("%+v %v\n", s, err)

	_, err = codec.Decode(data[:5])
	fmt.Println(err)
	var de *binarize.DecodeError
	fmt.Println(errors.As(err, &de), de.Name, errors.Is(err, binarize.ErrDecode))
	// Output:
	// 21 bytes: "\x82\xa5items\x91\xa3tea\xa5total\xcd\x01\xc2"
	// {Items:[tea] Total:450} <nil>
	// binarize: decode "binarize_test.State" rev 0 (5 bytes): msgpack: truncated input
	// true binarize_test.State true
}
