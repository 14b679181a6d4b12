package main

import (
	"testing"

	"github.com/eventsourced-go/eventsourced/entity/entitytest"
)

// The scenarios of the Edument CQRS tutorial (https://cqrs.nu), given/when/then.

var (
	drink1 = OrderedItem{MenuNumber: 4, Description: "Sprite", IsDrink: true, Price: 150}
	drink2 = OrderedItem{MenuNumber: 10, Description: "Beer", IsDrink: true, Price: 250}
	food1  = OrderedItem{MenuNumber: 16, Description: "Beef Noodles", Price: 750}
	food2  = OrderedItem{MenuNumber: 25, Description: "Vegetable Curry", Price: 600}
)

const (
	testTable  = 42
	testWaiter = "Derek"
)

func newTab(t *testing.T) *entitytest.Fixture[Tab, Event] {
	return entitytest.New(t, TabType(), "tab-1")
}

var opened = TabOpened{TableNumber: testTable, Waiter: testWaiter}

func TestCanOpenANewTab(t *testing.T) {
	entitytest.When(newTab(t), OpenTab{TableNumber: testTable, Waiter: testWaiter}).
		ThenEvents(opened).ThenState(Tab{Open: true, TableNumber: testTable})
}

// Opening a tab again at its table is what App.OpenTab does when it finds
// the table taken by a tab not open yet: nothing happens.
func TestOpeningATabAgainAtItsTableDoesNothing(t *testing.T) {
	entitytest.When(newTab(t).Given(opened), OpenTab{TableNumber: testTable, Waiter: testWaiter}).
		ThenNoEvents().ThenReply(Ack{})
}

func TestCanNotOpenATabAtAnotherTable(t *testing.T) {
	entitytest.When(newTab(t).Given(opened), OpenTab{TableNumber: testTable + 1, Waiter: testWaiter}).ThenError(ErrTabAlreadyOpen)
}

func TestCanNotOrderWithUnopenedTab(t *testing.T) {
	entitytest.When(newTab(t), PlaceOrder{Items: []OrderedItem{drink1}}).ThenError(ErrNoSuchTab)
}

// A tab never opened does not exist, whatever the command.
func TestUnopenedTabIsNoSuchTab(t *testing.T) {
	entitytest.When(newTab(t), MarkDrinksServed{MenuNumbers: []int{1}}).ThenError(ErrNoSuchTab)
	entitytest.When(newTab(t), MarkFoodPrepared{MenuNumbers: []int{16}}).ThenError(ErrNoSuchTab)
	entitytest.When(newTab(t), MarkFoodServed{MenuNumbers: []int{16}}).ThenError(ErrNoSuchTab)
	entitytest.When(newTab(t), CloseTab{AmountPaid: 0}).ThenError(ErrNoSuchTab)
}

func TestCanPlaceDrinksOrder(t *testing.T) {
	entitytest.When(newTab(t).Given(opened), PlaceOrder{Items: []OrderedItem{drink1, drink2}}).
		ThenEvents(DrinksOrdered{Items: []OrderedItem{drink1, drink2}})
}

func TestCanPlaceFoodOrder(t *testing.T) {
	entitytest.When(newTab(t).Given(opened), PlaceOrder{Items: []OrderedItem{food1, food1}}).
		ThenEvents(FoodOrdered{Items: []OrderedItem{food1, food1}})
}

func TestCanPlaceFoodAndDrinkOrder(t *testing.T) {
	entitytest.When(newTab(t).Given(opened), PlaceOrder{Items: []OrderedItem{food1, drink2}}).
		ThenEvents(DrinksOrdered{Items: []OrderedItem{drink2}}, FoodOrdered{Items: []OrderedItem{food1}})
}

func TestOrderedDrinksCanBeServed(t *testing.T) {
	f := newTab(t).Given(opened, DrinksOrdered{Items: []OrderedItem{drink1, drink2}})
	entitytest.When(f, MarkDrinksServed{MenuNumbers: []int{drink1.MenuNumber, drink2.MenuNumber}}).
		ThenEvents(DrinksServed{MenuNumbers: []int{drink1.MenuNumber, drink2.MenuNumber}}).
		ThenState(Tab{Open: true, TableNumber: testTable, ServedItemsValue: drink1.Price + drink2.Price})
}

func TestCanNotServeAnUnorderedDrink(t *testing.T) {
	f := newTab(t).Given(opened, DrinksOrdered{Items: []OrderedItem{drink1}})
	entitytest.When(f, MarkDrinksServed{MenuNumbers: []int{drink2.MenuNumber}}).ThenError(ErrDrinksNotOutstanding)
}

func TestCanNotServeAnOrderedDrinkTwice(t *testing.T) {
	f := newTab(t).Given(opened, DrinksOrdered{Items: []OrderedItem{drink1}}, DrinksServed{MenuNumbers: []int{drink1.MenuNumber}})
	entitytest.When(f, MarkDrinksServed{MenuNumbers: []int{drink1.MenuNumber}}).ThenError(ErrDrinksNotOutstanding)
}

func TestOrderedFoodCanBeMarkedPrepared(t *testing.T) {
	f := newTab(t).Given(opened, FoodOrdered{Items: []OrderedItem{food1, food1}})
	entitytest.When(f, MarkFoodPrepared{MenuNumbers: []int{food1.MenuNumber, food1.MenuNumber}}).
		ThenEvents(FoodPrepared{MenuNumbers: []int{food1.MenuNumber, food1.MenuNumber}}).
		ThenState(Tab{Open: true, TableNumber: testTable, PreparedFood: []OrderedItem{food1, food1}})
}

func TestFoodNotOrderedCanNotBeMarkedPrepared(t *testing.T) {
	f := newTab(t).Given(opened)
	entitytest.When(f, MarkFoodPrepared{MenuNumbers: []int{food2.MenuNumber}}).ThenError(ErrFoodNotOutstanding)
}

func TestCanNotMarkFoodAsPreparedTwice(t *testing.T) {
	f := newTab(t).Given(opened, FoodOrdered{Items: []OrderedItem{food1, food1}}, FoodPrepared{MenuNumbers: []int{food1.MenuNumber, food1.MenuNumber}})
	entitytest.When(f, MarkFoodPrepared{MenuNumbers: []int{food1.MenuNumber}}).ThenError(ErrFoodNotOutstanding)
}

func TestCanServePreparedFood(t *testing.T) {
	f := newTab(t).Given(opened, FoodOrdered{Items: []OrderedItem{food1, food2}}, FoodPrepared{MenuNumbers: []int{food1.MenuNumber, food2.MenuNumber}})
	entitytest.When(f, MarkFoodServed{MenuNumbers: []int{food2.MenuNumber, food1.MenuNumber}}).
		ThenEvents(FoodServed{MenuNumbers: []int{food2.MenuNumber, food1.MenuNumber}})
}

func TestCanNotServePreparedFoodTwice(t *testing.T) {
	f := newTab(t).Given(opened, FoodOrdered{Items: []OrderedItem{food1, food2}}, FoodPrepared{MenuNumbers: []int{food1.MenuNumber, food2.MenuNumber}},
		FoodServed{MenuNumbers: []int{food2.MenuNumber, food1.MenuNumber}})
	entitytest.When(f, MarkFoodServed{MenuNumbers: []int{food2.MenuNumber, food1.MenuNumber}}).ThenError(ErrFoodNotPrepared)
}

func TestCanNotServeUnorderedFood(t *testing.T) {
	f := newTab(t).Given(opened, FoodOrdered{Items: []OrderedItem{food1}})
	entitytest.When(f, MarkFoodServed{MenuNumbers: []int{food2.MenuNumber}}).ThenError(ErrFoodNotPrepared)
}

func TestCanNotServeOrderedButUnpreparedFood(t *testing.T) {
	f := newTab(t).Given(opened, FoodOrdered{Items: []OrderedItem{food1}})
	entitytest.When(f, MarkFoodServed{MenuNumbers: []int{food1.MenuNumber}}).ThenError(ErrFoodNotPrepared)
}

func TestCanCloseTabByPayingExactAmount(t *testing.T) {
	f := newTab(t).Given(opened, DrinksOrdered{Items: []OrderedItem{drink1, drink2}}, DrinksServed{MenuNumbers: []int{drink1.MenuNumber, drink2.MenuNumber}})
	entitytest.When(f, CloseTab{AmountPaid: drink1.Price + drink2.Price}).
		ThenEvents(TabClosed{AmountPaid: 400, OrderValue: 400, TipValue: 0}).ThenReply(ClosedTab{TableNumber: testTable, Tip: 0})
}

func TestCanCloseTabWithTip(t *testing.T) {
	f := newTab(t).Given(opened, DrinksOrdered{Items: []OrderedItem{drink2}}, DrinksServed{MenuNumbers: []int{drink2.MenuNumber}})
	entitytest.When(f, CloseTab{AmountPaid: drink2.Price + 50}).
		ThenEvents(TabClosed{AmountPaid: 300, OrderValue: 250, TipValue: 50}).ThenReply(ClosedTab{TableNumber: testTable, Tip: 50}).
		ThenState(Tab{Closed: true, TableNumber: testTable, ServedItemsValue: 250})
}

func TestMustPayEnoughToCloseTab(t *testing.T) {
	f := newTab(t).Given(opened, DrinksOrdered{Items: []OrderedItem{drink2}}, DrinksServed{MenuNumbers: []int{drink2.MenuNumber}})
	entitytest.When(f, CloseTab{AmountPaid: drink2.Price - 50}).ThenError(ErrMustPayEnough)
}

func TestCanNotCloseTabTwice(t *testing.T) {
	f := newTab(t).Given(opened, DrinksOrdered{Items: []OrderedItem{drink2}}, DrinksServed{MenuNumbers: []int{drink2.MenuNumber}},
		TabClosed{AmountPaid: 300, OrderValue: 250, TipValue: 50})
	entitytest.When(f, CloseTab{AmountPaid: 300}).ThenError(ErrTabClosed)
	entitytest.When(f, PlaceOrder{Items: []OrderedItem{drink1}}).ThenError(ErrTabClosed)
	entitytest.When(f, OpenTab{TableNumber: testTable, Waiter: testWaiter}).ThenError(ErrTabClosed)
}

func TestCanNotCloseTabWithUnservedDrinksItems(t *testing.T) {
	f := newTab(t).Given(opened, DrinksOrdered{Items: []OrderedItem{drink2}})
	entitytest.When(f, CloseTab{AmountPaid: drink2.Price}).ThenError(ErrTabHasUnservedItems)
}

func TestCanNotCloseTabWithUnpreparedFoodItems(t *testing.T) {
	f := newTab(t).Given(opened, FoodOrdered{Items: []OrderedItem{food1}})
	entitytest.When(f, CloseTab{AmountPaid: food1.Price}).ThenError(ErrTabHasUnservedItems)
}

func TestCanNotCloseTabWithUnservedFoodItems(t *testing.T) {
	f := newTab(t).Given(opened, FoodOrdered{Items: []OrderedItem{food1}}, FoodPrepared{MenuNumbers: []int{food1.MenuNumber}})
	entitytest.When(f, CloseTab{AmountPaid: food1.Price}).ThenError(ErrTabHasUnservedItems)
}

func TestInvalidCommands(t *testing.T) {
	entitytest.When(newTab(t), OpenTab{TableNumber: 0, Waiter: testWaiter}).ThenError(ErrInvalidCommand)
	entitytest.When(newTab(t), OpenTab{TableNumber: 1}).ThenError(ErrInvalidCommand)
	f := newTab(t).Given(opened)
	entitytest.When(f, PlaceOrder{}).ThenError(ErrInvalidCommand)
	entitytest.When(f, MarkDrinksServed{}).ThenError(ErrInvalidCommand)
	entitytest.When(f, MarkFoodPrepared{}).ThenError(ErrInvalidCommand)
	entitytest.When(f, MarkFoodServed{}).ThenError(ErrInvalidCommand)
}
