package main

import (
	"context"
	"reflect"
	"testing"

	"github.com/eventsourced-go/eventsourced/eventlog"
)

// records encodes events of one tab as the log would return them.
func records(t *testing.T, tab string, firstPos uint64, evs ...Event) []eventlog.Record {
	t.Helper()
	reg := events()
	var recs []eventlog.Record
	for i, e := range evs {
		name, rev, data, err := reg.Encode(e)
		if err != nil {
			t.Fatal(err)
		}
		recs = append(recs, eventlog.Record{EntityType: TabTypeName, EntityID: tab, Seq: uint64(i + 1), Position: firstPos + uint64(i), Name: name, Revision: rev, Data: data})
	}
	return recs
}

// TestReadModelsIgnoreRedelivery feeds the read models every event, then
// the last batch again as at-least-once delivery would after a crash, and
// checks nothing changed, closed tab included.
func TestReadModelsIgnoreRedelivery(t *testing.T) {
	ctx := context.Background()
	docs := newMemDocs()
	q := Queries{docs: docs}
	reg := events()
	open := viewHandler(docs, OpenTabsKind, reg, applyOpenTabs)
	chef := viewHandler(docs, ChefTodoKind, reg, applyChefTodo)
	a := records(t, "tab-a", 1,
		TabOpened{TableNumber: 3, Waiter: "Derek"},
		DrinksOrdered{Items: []OrderedItem{drink2}},
		FoodOrdered{Items: []OrderedItem{food1, food2}},
		FoodPrepared{MenuNumbers: []int{food1.MenuNumber}},
	)
	b := records(t, "tab-b", 10,
		TabOpened{TableNumber: 5, Waiter: "Alice"},
		DrinksOrdered{Items: []OrderedItem{drink1}},
		DrinksServed{MenuNumbers: []int{drink1.MenuNumber}},
		TabClosed{AmountPaid: 150, OrderValue: 150},
	)
	all := append(append([]eventlog.Record{}, a...), b...)
	snapshot := func() (any, any) {
		tables, err := q.ActiveTables(ctx)
		if err != nil {
			t.Fatal(err)
		}
		todo, err := q.ChefTodoList(ctx)
		if err != nil {
			t.Fatal(err)
		}
		return tables, todo
	}
	for _, h := range []func(context.Context, []eventlog.Record) error{open, chef} {
		if err := h(ctx, all); err != nil {
			t.Fatal(err)
		}
	}
	tables, todo := snapshot()
	wantTables := []OpenTable{{3, "Derek", "tab-a"}}
	wantTodo := []ChefTodo{{"tab-a", []TodoItem{{food2.MenuNumber, food2.Description}}}}
	if !reflect.DeepEqual(tables, wantTables) || !reflect.DeepEqual(todo, wantTodo) {
		t.Fatalf("read models\n got %+v %+v\nwant %+v %+v", tables, todo, wantTables, wantTodo)
	}
	inv, ok, err := q.InvoiceForTable(ctx, 3)
	if err != nil || !ok || inv.Total != 0 || !inv.HasUnservedItems {
		t.Errorf("invoice %+v, %t, %v; want nothing served yet, unserved items", inv, ok, err)
	}
	todoDerek, _ := q.TodoListForWaiter(ctx, "Derek")
	if want := []WaiterTodo{{3, []OrderedItem{drink2, food1}}}; !reflect.DeepEqual(todoDerek, want) {
		t.Errorf("Derek's todo %+v, want %+v", todoDerek, want)
	}

	// Redeliver the tail of each tab, the closed one included.
	again := append(append([]eventlog.Record{}, a[2:]...), b[1:]...)
	for _, h := range []func(context.Context, []eventlog.Record) error{open, chef} {
		if err := h(ctx, again); err != nil {
			t.Fatal(err)
		}
	}
	if tables2, todo2 := snapshot(); !reflect.DeepEqual(tables2, tables) || !reflect.DeepEqual(todo2, todo) {
		t.Errorf("after redelivery\n got %+v %+v\nwant %+v %+v", tables2, todo2, tables, todo)
	}
}
