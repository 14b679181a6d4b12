package main

import (
	"errors"
	"fmt"

	"github.com/eventsourced-go/eventsourced/binarize"
	"github.com/eventsourced-go/eventsourced/entity"
)

// The Tab entity follows the Edument CQRS tutorial (https://cqrs.nu): a tab
// is opened for a table, drinks and food are ordered on it, drinks are
// served, food is prepared by the kitchen and then served, and the tab is
// closed when the bill is paid. Prices are in cents.

// OrderedItem is one item of an order, as on the menu.
type OrderedItem struct {
	MenuNumber  int    `msgpack:"menu_number" json:"menu_number"`
	Description string `msgpack:"description" json:"description"`
	IsDrink     bool   `msgpack:"is_drink" json:"is_drink"`
	Price       int    `msgpack:"price" json:"price"`
}

// Event is implemented by every tab event.
type Event interface{ isTabEvent() }

// TabOpened starts a tab for a table.
type TabOpened struct {
	TableNumber int    `msgpack:"table_number"`
	Waiter      string `msgpack:"waiter"`
}

// DrinksOrdered adds drinks to serve.
type DrinksOrdered struct {
	Items []OrderedItem `msgpack:"items"`
}

// FoodOrdered adds food for the kitchen to prepare.
type FoodOrdered struct {
	Items []OrderedItem `msgpack:"items"`
}

// DrinksServed marks ordered drinks served.
type DrinksServed struct {
	MenuNumbers []int `msgpack:"menu_numbers"`
}

// FoodPrepared marks ordered food prepared by the kitchen.
type FoodPrepared struct {
	MenuNumbers []int `msgpack:"menu_numbers"`
}

// FoodServed marks prepared food served.
type FoodServed struct {
	MenuNumbers []int `msgpack:"menu_numbers"`
}

// TabClosed ends a tab once it is paid.
type TabClosed struct {
	AmountPaid int `msgpack:"amount_paid"`
	OrderValue int `msgpack:"order_value"`
	TipValue   int `msgpack:"tip_value"`
}

func (TabOpened) isTabEvent()     {}
func (DrinksOrdered) isTabEvent() {}
func (FoodOrdered) isTabEvent()   {}
func (DrinksServed) isTabEvent()  {}
func (FoodPrepared) isTabEvent()  {}
func (FoodServed) isTabEvent()    {}
func (TabClosed) isTabEvent()     {}

// The tutorial's business rules, as rejections.
var (
	ErrTabNotOpen           = errors.New("tab is not open")
	ErrTabAlreadyOpen       = errors.New("tab is already open")
	ErrDrinksNotOutstanding = errors.New("drinks are not outstanding")
	ErrFoodNotOutstanding   = errors.New("food is not outstanding")
	ErrFoodNotPrepared      = errors.New("food is not prepared")
	ErrMustPayEnough        = errors.New("must pay enough")
	ErrTabHasUnservedItems  = errors.New("tab has unserved items")
	ErrInvalidCommand       = errors.New("invalid command")
)

// Tab is the state of a tab: only what the business rules need.
type Tab struct {
	Open              bool          `msgpack:"open"`
	Closed            bool          `msgpack:"closed"`
	OutstandingDrinks []OrderedItem `msgpack:"outstanding_drinks"`
	OutstandingFood   []OrderedItem `msgpack:"outstanding_food"`
	PreparedFood      []OrderedItem `msgpack:"prepared_food"`
	ServedItemsValue  int           `msgpack:"served_items_value"`
}

// apply is the Tab type's Apply.
func apply(s Tab, e Event) Tab {
	switch e := e.(type) {
	case TabOpened:
		s.Open = true
	case DrinksOrdered:
		s.OutstandingDrinks = appendItems(s.OutstandingDrinks, e.Items)
	case FoodOrdered:
		s.OutstandingFood = appendItems(s.OutstandingFood, e.Items)
	case DrinksServed:
		var served []OrderedItem
		s.OutstandingDrinks, served = takeItems(s.OutstandingDrinks, e.MenuNumbers)
		s.ServedItemsValue += value(served)
	case FoodPrepared:
		var prepared []OrderedItem
		s.OutstandingFood, prepared = takeItems(s.OutstandingFood, e.MenuNumbers)
		s.PreparedFood = appendItems(s.PreparedFood, prepared)
	case FoodServed:
		var served []OrderedItem
		s.PreparedFood, served = takeItems(s.PreparedFood, e.MenuNumbers)
		s.ServedItemsValue += value(served)
	case TabClosed:
		s.Open, s.Closed = false, true
	}
	return s
}

// appendItems appends to a copy, so states never share backing arrays.
func appendItems(dst, items []OrderedItem) []OrderedItem {
	if len(items) == 0 {
		return dst
	}
	out := make([]OrderedItem, 0, len(dst)+len(items))
	return append(append(out, dst...), items...)
}

// takeItems removes one item per menu number (first match) and returns the
// rest and the removed. Empty results are nil, as a codec gives them back.
func takeItems(items []OrderedItem, numbers []int) (rest, taken []OrderedItem) {
	rest = append([]OrderedItem(nil), items...)
	for _, n := range numbers {
		for i, it := range rest {
			if it.MenuNumber == n {
				taken = append(taken, it)
				rest = append(rest[:i:i], rest[i+1:]...)
				break
			}
		}
	}
	if len(rest) == 0 {
		rest = nil
	}
	return rest, taken
}

// allIn reports whether every menu number is in items, counting repeats.
func allIn(items []OrderedItem, numbers []int) bool {
	_, taken := takeItems(items, numbers)
	return len(taken) == len(numbers)
}

func value(items []OrderedItem) int {
	v := 0
	for _, it := range items {
		v += it.Price
	}
	return v
}

// Ack is the reply of commands that have nothing to say.
type Ack struct{}

// OpenTab opens the tab for a table.
type OpenTab struct {
	TableNumber int
	Waiter      string
}

// Handle implements entity.Command.
func (c OpenTab) Handle(tx *entity.Tx[Tab, Event]) (Ack, error) {
	switch {
	case c.TableNumber <= 0 || c.Waiter == "":
		return Ack{}, fmt.Errorf("open tab %s: table %d, waiter %q: %w", tx.ID(), c.TableNumber, c.Waiter, ErrInvalidCommand)
	case tx.State().Open || tx.State().Closed:
		return Ack{}, fmt.Errorf("open tab %s: %w", tx.ID(), ErrTabAlreadyOpen)
	}
	tx.Persist(TabOpened(c))
	return Ack{}, nil
}

// PlaceOrder orders items; drinks and food become separate events.
type PlaceOrder struct {
	Items []OrderedItem
}

// Handle implements entity.Command.
func (c PlaceOrder) Handle(tx *entity.Tx[Tab, Event]) (Ack, error) {
	if !tx.State().Open {
		return Ack{}, fmt.Errorf("place order on %s: %w", tx.ID(), ErrTabNotOpen)
	}
	if len(c.Items) == 0 {
		return Ack{}, fmt.Errorf("place order on %s: no items: %w", tx.ID(), ErrInvalidCommand)
	}
	var drinks, food []OrderedItem
	for _, it := range c.Items {
		if it.IsDrink {
			drinks = append(drinks, it)
		} else {
			food = append(food, it)
		}
	}
	if drinks != nil {
		tx.Persist(DrinksOrdered{Items: drinks})
	}
	if food != nil {
		tx.Persist(FoodOrdered{Items: food})
	}
	return Ack{}, nil
}

// MarkDrinksServed marks ordered drinks served.
type MarkDrinksServed struct {
	MenuNumbers []int
}

// Handle implements entity.Command.
func (c MarkDrinksServed) Handle(tx *entity.Tx[Tab, Event]) (Ack, error) {
	if err := checkNumbers(tx, "serve drinks", c.MenuNumbers); err != nil {
		return Ack{}, err
	}
	if !allIn(tx.State().OutstandingDrinks, c.MenuNumbers) {
		return Ack{}, fmt.Errorf("serve drinks %v on %s: %w", c.MenuNumbers, tx.ID(), ErrDrinksNotOutstanding)
	}
	tx.Persist(DrinksServed(c))
	return Ack{}, nil
}

// MarkFoodPrepared is the kitchen saying ordered food is ready.
type MarkFoodPrepared struct {
	MenuNumbers []int
}

// Handle implements entity.Command.
func (c MarkFoodPrepared) Handle(tx *entity.Tx[Tab, Event]) (Ack, error) {
	if err := checkNumbers(tx, "prepare food", c.MenuNumbers); err != nil {
		return Ack{}, err
	}
	if !allIn(tx.State().OutstandingFood, c.MenuNumbers) {
		return Ack{}, fmt.Errorf("prepare food %v on %s: %w", c.MenuNumbers, tx.ID(), ErrFoodNotOutstanding)
	}
	tx.Persist(FoodPrepared(c))
	return Ack{}, nil
}

// MarkFoodServed marks prepared food served.
type MarkFoodServed struct {
	MenuNumbers []int
}

// Handle implements entity.Command.
func (c MarkFoodServed) Handle(tx *entity.Tx[Tab, Event]) (Ack, error) {
	if err := checkNumbers(tx, "serve food", c.MenuNumbers); err != nil {
		return Ack{}, err
	}
	if !allIn(tx.State().PreparedFood, c.MenuNumbers) {
		return Ack{}, fmt.Errorf("serve food %v on %s: %w", c.MenuNumbers, tx.ID(), ErrFoodNotPrepared)
	}
	tx.Persist(FoodServed(c))
	return Ack{}, nil
}

func checkNumbers(tx *entity.Tx[Tab, Event], what string, numbers []int) error {
	if !tx.State().Open {
		return fmt.Errorf("%s on %s: %w", what, tx.ID(), ErrTabNotOpen)
	}
	if len(numbers) == 0 {
		return fmt.Errorf("%s on %s: no menu numbers: %w", what, tx.ID(), ErrInvalidCommand)
	}
	return nil
}

// CloseTab pays the tab and closes it; the reply is the tip.
type CloseTab struct {
	AmountPaid int
}

// Handle implements entity.Command.
func (c CloseTab) Handle(tx *entity.Tx[Tab, Event]) (int, error) {
	s := tx.State()
	switch {
	case !s.Open:
		return 0, fmt.Errorf("close %s: %w", tx.ID(), ErrTabNotOpen)
	case len(s.OutstandingDrinks) > 0 || len(s.OutstandingFood) > 0 || len(s.PreparedFood) > 0:
		return 0, fmt.Errorf("close %s: %w", tx.ID(), ErrTabHasUnservedItems)
	case c.AmountPaid < s.ServedItemsValue:
		return 0, fmt.Errorf("close %s: paid %d of %d: %w", tx.ID(), c.AmountPaid, s.ServedItemsValue, ErrMustPayEnough)
	}
	tip := c.AmountPaid - s.ServedItemsValue
	tx.Persist(TabClosed{AmountPaid: c.AmountPaid, OrderValue: s.ServedItemsValue, TipValue: tip})
	return tip, nil
}

// TabTypeName is the Tab entity type's name in the event log.
const TabTypeName = "Tab"

// events returns the registry of tab events, by name.
func events() *binarize.Registry[Event] {
	r := binarize.NewRegistry[Event](binarize.Msgpack)
	binarize.MustRegister[TabOpened](r, "TabOpened")
	binarize.MustRegister[DrinksOrdered](r, "DrinksOrdered")
	binarize.MustRegister[FoodOrdered](r, "FoodOrdered")
	binarize.MustRegister[DrinksServed](r, "DrinksServed")
	binarize.MustRegister[FoodPrepared](r, "FoodPrepared")
	binarize.MustRegister[FoodServed](r, "FoodServed")
	binarize.MustRegister[TabClosed](r, "TabClosed")
	return r
}

// TabType is the Tab entity type: msgpack events and state.
func TabType() entity.Type[Tab, Event] {
	return entity.Type[Tab, Event]{
		Name:   TabTypeName,
		Apply:  apply,
		Events: events(),
		State:  binarize.Value[Tab](binarize.Msgpack),
	}
}
