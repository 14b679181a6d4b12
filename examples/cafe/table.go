package main

import (
	"errors"
	"fmt"
	"strconv"

	"github.com/eventsourced-go/eventsourced/binarize"
	"github.com/eventsourced-go/eventsourced/entity"
)

// A table has at most one open tab. Tabs are entities of their own, each
// deciding alone, so no tab can see another tab at its table; a check on
// the open-tabs read model would not do either: it lags the events, and two
// waiters opening a tab at table 3 at once would both find it free. The
// rule needs one place that sees every open at a table, one after the
// other: the Table entity, "table-3". Like any entity it handles one
// command at a time and is the only writer of its stream (the log's
// expected-Seq check backs that up), so of two concurrent TakeTable
// commands exactly one takes the table and the other is told which tab
// has it.
//
// Taking the table and opening the tab are two commands to two entities,
// not one transaction, so [App.OpenTab] orders them to be safe when it
// stops between the two. The table is taken first, and whoever finds a
// table taken by a tab that is not open yet opens it (OpenTab is
// idempotent): an acknowledged TakeTable always ends in an open tab, and
// the first of two concurrent opens wins. [App.Close] closes the tab first
// and frees the table after; whoever finds a table still held by a closed
// tab frees it. Listing every open tab of a table instead would have needed
// no coordination, but the cafe serves one bill per table, and a second
// tab opened there by mistake would go unpaid.

// TableEvent is implemented by every table event.
type TableEvent interface{ isTableEvent() }

// TableTaken gives a table to a tab about to be opened.
type TableTaken struct {
	TabID  string `msgpack:"tab_id"`
	Waiter string `msgpack:"waiter"`
}

// TableFreed gives a table back once its tab is closed.
type TableFreed struct {
	TabID string `msgpack:"tab_id"`
}

func (TableTaken) isTableEvent() {}
func (TableFreed) isTableEvent() {}

// Table is the state of a table: the tab that has it, if any.
type Table struct {
	TabID  string `msgpack:"tab_id"` // "" if the table is free
	Waiter string `msgpack:"waiter"`
}

func applyTable(s Table, e TableEvent) Table {
	switch e := e.(type) {
	case TableTaken:
		s.TabID, s.Waiter = e.TabID, e.Waiter
	case TableFreed:
		s = Table{}
	}
	return s
}

// TakeTable gives the table to a tab unless another tab has it. The reply
// is the table after the command: its TabID is the command's if it took
// the table, the other tab's if not.
type TakeTable struct {
	TabID  string
	Waiter string
}

// Handle implements entity.Command.
func (c TakeTable) Handle(tx *entity.Tx[Table, TableEvent]) (Table, error) {
	if c.TabID == "" || c.Waiter == "" {
		return Table{}, fmt.Errorf("take %s: tab %q, waiter %q: %w", tx.ID(), c.TabID, c.Waiter, ErrInvalidCommand)
	}
	if s := tx.State(); s.TabID != "" {
		return s, nil
	}
	tx.Persist(TableTaken(c))
	return tx.State(), nil
}

// FreeTable gives the table back if the tab has it, and does nothing
// otherwise: freeing twice, or after another tab took the table, is no
// mistake.
type FreeTable struct {
	TabID string
}

// Handle implements entity.Command.
func (c FreeTable) Handle(tx *entity.Tx[Table, TableEvent]) (Ack, error) {
	if tx.State().TabID == c.TabID && c.TabID != "" {
		tx.Persist(TableFreed(c))
	}
	return Ack{}, nil
}

// ErrTableTaken rejects opening a tab at a table that has an open tab.
var ErrTableTaken = errors.New("table has an open tab")

// TableTakenError is ErrTableTaken with the table and the tab that has it.
type TableTakenError struct {
	TableNumber int
	TabID       string
}

func (e *TableTakenError) Error() string {
	return fmt.Sprintf("table %d has open tab %s: close it first", e.TableNumber, e.TabID)
}

// Is makes errors.Is(err, ErrTableTaken) true.
func (e *TableTakenError) Is(target error) bool { return target == ErrTableTaken }

// TableTypeName is the Table entity type's name in the event log.
const TableTypeName = "Table"

// tableID is the entity id of table n.
func tableID(n int) string { return "table-" + strconv.Itoa(n) }

// TableType is the Table entity type: msgpack events and state.
func TableType() entity.Type[Table, TableEvent] {
	r := binarize.NewRegistry[TableEvent](binarize.Msgpack)
	binarize.MustRegister[TableTaken](r, "TableTaken")
	binarize.MustRegister[TableFreed](r, "TableFreed")
	return entity.Type[Table, TableEvent]{
		Name:   TableTypeName,
		Apply:  applyTable,
		Events: r,
		State:  binarize.Value[Table](binarize.Msgpack),
	}
}
