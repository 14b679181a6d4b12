package main

import (
	"testing"

	"github.com/eventsourced-go/eventsourced/entity/entitytest"
)

func newTable(t *testing.T) *entitytest.Fixture[Table, TableEvent] {
	return entitytest.New(t, TableType(), tableID(testTable))
}

func TestCanTakeAFreeTable(t *testing.T) {
	entitytest.When(newTable(t), TakeTable{TabID: "tab-a", Waiter: testWaiter}).
		ThenEvents(TableTaken{TabID: "tab-a", Waiter: testWaiter}).
		ThenReply(Table{TabID: "tab-a", Waiter: testWaiter})
}

func TestCanNotTakeATakenTable(t *testing.T) {
	f := newTable(t).Given(TableTaken{TabID: "tab-a", Waiter: testWaiter})
	entitytest.When(f, TakeTable{TabID: "tab-b", Waiter: "Alice"}).
		ThenNoEvents().ThenReply(Table{TabID: "tab-a", Waiter: testWaiter})
}

func TestCanTakeAFreedTable(t *testing.T) {
	f := newTable(t).Given(TableTaken{TabID: "tab-a", Waiter: testWaiter}, TableFreed{TabID: "tab-a"})
	entitytest.When(f, TakeTable{TabID: "tab-b", Waiter: "Alice"}).
		ThenEvents(TableTaken{TabID: "tab-b", Waiter: "Alice"}).
		ThenReply(Table{TabID: "tab-b", Waiter: "Alice"})
}

func TestOnlyTheTabThatHasTheTableFreesIt(t *testing.T) {
	f := newTable(t).Given(TableTaken{TabID: "tab-a", Waiter: testWaiter})
	entitytest.When(f, FreeTable{TabID: "tab-b"}).ThenNoEvents().ThenState(Table{TabID: "tab-a", Waiter: testWaiter})
	entitytest.When(f, FreeTable{TabID: "tab-a"}).ThenEvents(TableFreed{TabID: "tab-a"}).ThenState(Table{})
	entitytest.When(newTable(t), FreeTable{TabID: "tab-a"}).ThenNoEvents()
}

func TestInvalidTableCommands(t *testing.T) {
	entitytest.When(newTable(t), TakeTable{Waiter: testWaiter}).ThenError(ErrInvalidCommand)
	entitytest.When(newTable(t), TakeTable{TabID: "tab-a"}).ThenError(ErrInvalidCommand)
}
