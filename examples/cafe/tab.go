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

// The tutorial's business rules, as rejections. The tutorial's TabNotOpen
// is two: a tab never opened does not exist (ErrNoSuchTab, 404 over HTTP),
// while a closed one does and takes no more commands (ErrTabClosed).
var (
	ErrNoSuchTab            = errors.New("no such tab")
	ErrTabClosed            = errors.New("tab is closed")
	ErrTabAlreadyOpen       = errors.New("tab is already open at another table")
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
	TableNumber       int           `msgpack:"table_number"`
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
		s.Open, s.TableNumber = true, e.TableNumber
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

// missing returns the index of the first menu number not in items,
// counting repeats, or -1 if every one is.
func missing(items []OrderedItem, numbers []int) int {
	rest := items
	for i, n := range numbers {
		var taken []OrderedItem
		if rest, taken = takeItems(rest, []int{n}); len(taken) == 0 {
			return i
		}
	}
	return -1
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

// OpenTab opens the tab for a table. Opening it again for the same table
// does nothing: whoever finds a table taken by a tab not open yet opens it
// (see [App.OpenTab]), and so may its opener, in either order.
type OpenTab struct {
	TableNumber int
	Waiter      string
}

// Handle implements entity.Command.
func (c OpenTab) Handle(tx *entity.Tx[Tab, Event]) (Ack, error) {
	s := tx.State()
	switch {
	case c.TableNumber <= 0 || c.Waiter == "":
		return Ack{}, fmt.Errorf("open tab %s: table %d, waiter %q: %w", tx.ID(), c.TableNumber, c.Waiter, ErrInvalidCommand)
	case s.Closed:
		return Ack{}, fmt.Errorf("open tab %s: %w", tx.ID(), ErrTabClosed)
	case s.Open && s.TableNumber == c.TableNumber:
		return Ack{}, nil
	case s.Open:
		return Ack{}, fmt.Errorf("open tab %s at table %d: open at table %d: %w", tx.ID(), c.TableNumber, s.TableNumber, ErrTabAlreadyOpen)
	}
	tx.Persist(TabOpened(c))
	return Ack{}, nil
}

// isOpen returns nil if the tab is open, and why not otherwise.
func isOpen(s Tab, what, id string) error {
	switch {
	case s.Closed:
		return fmt.Errorf("%s on %s: %w", what, id, ErrTabClosed)
	case !s.Open:
		return fmt.Errorf("%s on %s: %w", what, id, ErrNoSuchTab)
	}
	return nil
}

// PlaceOrder orders items; drinks and food become separate events.
type PlaceOrder struct {
	Items []OrderedItem
}

// Handle implements entity.Command.
func (c PlaceOrder) Handle(tx *entity.Tx[Tab, Event]) (Ack, error) {
	if err := isOpen(tx.State(), "place order", tx.ID()); err != nil {
		return Ack{}, err
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
	if i := missing(tx.State().OutstandingDrinks, c.MenuNumbers); i >= 0 {
		return Ack{}, fmt.Errorf("serve drinks on %s: menu_numbers[%d] (%d): %w", tx.ID(), i, c.MenuNumbers[i], ErrDrinksNotOutstanding)
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
	if i := missing(tx.State().OutstandingFood, c.MenuNumbers); i >= 0 {
		return Ack{}, fmt.Errorf("prepare food on %s: menu_numbers[%d] (%d): %w", tx.ID(), i, c.MenuNumbers[i], ErrFoodNotOutstanding)
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
	if i := missing(tx.State().PreparedFood, c.MenuNumbers); i >= 0 {
		return Ack{}, fmt.Errorf("serve food on %s: menu_numbers[%d] (%d): %w", tx.ID(), i, c.MenuNumbers[i], ErrFoodNotPrepared)
	}
	tx.Persist(FoodServed(c))
	return Ack{}, nil
}

func checkNumbers(tx *entity.Tx[Tab, Event], what string, numbers []int) error {
	if err := isOpen(tx.State(), what, tx.ID()); err != nil {
		return err
	}
	if len(numbers) == 0 {
		return fmt.Errorf("%s on %s: no menu numbers: %w", what, tx.ID(), ErrInvalidCommand)
	}
	return nil
}

// CloseTab pays the tab and closes it.
type CloseTab struct {
	AmountPaid int
}

// ClosedTab is the reply to CloseTab: the tip, and the table to free.
type ClosedTab struct {
	TableNumber int
	Tip         int
}

// Handle implements entity.Command.
func (c CloseTab) Handle(tx *entity.Tx[Tab, Event]) (ClosedTab, error) {
	s := tx.State()
	if err := isOpen(s, "close", tx.ID()); err != nil {
		return ClosedTab{}, err
	}
	switch {
	case len(s.OutstandingDrinks) > 0 || len(s.OutstandingFood) > 0 || len(s.PreparedFood) > 0:
		return ClosedTab{}, fmt.Errorf("close %s: %d drinks to serve, %d food to prepare, %d food to serve: %w",
			tx.ID(), len(s.OutstandingDrinks), len(s.OutstandingFood), len(s.PreparedFood), ErrTabHasUnservedItems)
	case c.AmountPaid < s.ServedItemsValue:
		return ClosedTab{}, fmt.Errorf("close %s: paid %d of %d: %w", tx.ID(), c.AmountPaid, s.ServedItemsValue, ErrMustPayEnough)
	}
	tip := c.AmountPaid - s.ServedItemsValue
	tx.Persist(TabClosed{AmountPaid: c.AmountPaid, OrderValue: s.ServedItemsValue, TipValue: tip})
	return ClosedTab{TableNumber: s.TableNumber, Tip: tip}, nil
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
