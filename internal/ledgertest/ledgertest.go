package ledgertest

import (
	"github.com/eventsourced-go/eventsourced/binarize"
	"github.com/eventsourced-go/eventsourced/entity"
)

// Ledger is the state: the items added, in order.
type Ledger struct {
	Items []int `json:"items"`
}

// ItemAdded is the one event.
type ItemAdded struct {
	Item int `json:"item"`
}

// AddItem adds Item and replies with the ledger's length after it.
type AddItem struct{ Item int }

// Handle implements entity.Command.
func (c AddItem) Handle(tx *entity.Tx[Ledger, ItemAdded]) (int, error) {
	return len(tx.Persist(ItemAdded(c)).Items), nil
}

// Items replies with the ledger's items.
type Items struct{}

// Handle implements entity.Command.
func (Items) Handle(tx *entity.Tx[Ledger, ItemAdded]) ([]int, error) { return tx.State().Items, nil }

// Type is the entity type "Ledger", JSON events.
func Type() entity.Type[Ledger, ItemAdded] {
	events := binarize.NewRegistry[ItemAdded](binarize.JSON)
	binarize.MustRegister[ItemAdded](events, "ItemAdded")
	return entity.Type[Ledger, ItemAdded]{
		Name: "Ledger",
		Apply: func(s Ledger, e ItemAdded) Ledger {
			s.Items = append(s.Items[:len(s.Items):len(s.Items)], e.Item)
			return s
		},
		Events: events,
	}
}
