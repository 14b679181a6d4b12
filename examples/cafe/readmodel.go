package main

import (
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"slices"

	"github.com/eventsourced-go/eventsourced/binarize"
	"github.com/eventsourced-go/eventsourced/eventlog"
	"github.com/eventsourced-go/eventsourced/projection"
)

// The read side: two read models, each kept by its own projection over the
// Tab events, as in the tutorial. Each view is a JSON document per tab in a
// docStore (memory, PostgreSQL or a NATS KV bucket), together with the Seq
// of the last event applied to it. Handlers skip events at or below that
// Seq, so at-least-once delivery (NATS, memory) applies each event once,
// and views are never deleted (a closed tab stays as a tombstone) so a
// redelivered event cannot bring a finished view back.

// Read model kinds, which are also the projection names.
const (
	OpenTabsKind = "open-tabs"
	ChefTodoKind = "chef-todo"
)

// TabView is the open-tabs read model of one tab: what the waiters see.
type TabView struct {
	TabID         string        `json:"tab_id"`
	TableNumber   int           `json:"table_number"`
	Waiter        string        `json:"waiter"`
	ToServe       []OrderedItem `json:"to_serve"`
	InPreparation []OrderedItem `json:"in_preparation"`
	Served        []OrderedItem `json:"served"`
	Closed        bool          `json:"closed"`
}

// applyOpenTabs is the open-tabs read model's reaction to one event.
func applyOpenTabs(v TabView, rec eventlog.Record, e Event) TabView {
	v.TabID = rec.EntityID
	switch e := e.(type) {
	case TabOpened:
		v.TableNumber, v.Waiter = e.TableNumber, e.Waiter
	case DrinksOrdered:
		v.ToServe = appendItems(v.ToServe, e.Items)
	case FoodOrdered:
		v.InPreparation = appendItems(v.InPreparation, e.Items)
	case FoodPrepared:
		var prepared []OrderedItem
		v.InPreparation, prepared = takeItems(v.InPreparation, e.MenuNumbers)
		v.ToServe = appendItems(v.ToServe, prepared)
	case DrinksServed:
		v.ToServe, v.Served = serve(v.ToServe, v.Served, e.MenuNumbers)
	case FoodServed:
		v.ToServe, v.Served = serve(v.ToServe, v.Served, e.MenuNumbers)
	case TabClosed:
		v.Closed = true
	}
	return v
}

func serve(toServe, served []OrderedItem, numbers []int) (rest, done []OrderedItem) {
	rest, taken := takeItems(toServe, numbers)
	return rest, appendItems(served, taken)
}

// TodoItem is a dish for the chef to prepare.
type TodoItem struct {
	MenuNumber  int    `json:"menu_number"`
	Description string `json:"description"`
}

// ChefGroup is the chef's todo list for one tab (the tutorial's
// TodoListGroup). Since is the Position of the tab's first food order, which
// keeps the list in order of arrival.
type ChefGroup struct {
	TabID string     `json:"tab_id"`
	Since uint64     `json:"since"`
	Items []TodoItem `json:"items"`
}

// applyChefTodo is the chef's todo list's reaction to one event.
func applyChefTodo(g ChefGroup, rec eventlog.Record, e Event) ChefGroup {
	g.TabID = rec.EntityID
	switch e := e.(type) {
	case FoodOrdered:
		if g.Since == 0 {
			g.Since = rec.Position
		}
		items := slices.Clone(g.Items)
		for _, it := range e.Items {
			items = append(items, TodoItem{MenuNumber: it.MenuNumber, Description: it.Description})
		}
		g.Items = items
	case FoodPrepared:
		items := slices.Clone(g.Items)
		for _, n := range e.MenuNumbers {
			if i := slices.IndexFunc(items, func(it TodoItem) bool { return it.MenuNumber == n }); i >= 0 {
				items = slices.Delete(items, i, i+1)
			}
		}
		if len(items) == 0 {
			items = nil
		}
		g.Items = items
	}
	return g
}

// doc is a view as stored, with the Seq of the last event applied.
type doc[V any] struct {
	Seq  uint64 `json:"seq"`
	View V      `json:"view"`
}

// docStore keeps JSON documents by kind and id. Writes happen inside a
// projection commit; with PostgreSQL they join its transaction.
type docStore interface {
	// get returns the document kind/id, or nil if there is none.
	get(ctx context.Context, kind, id string) ([]byte, error)
	put(ctx context.Context, kind, id string, data []byte) error
	// list calls f with every document of kind, in no particular order.
	list(ctx context.Context, kind string, f func(data []byte) error) error
	// clear deletes every document of kind, for a projection reset.
	clear(ctx context.Context, kind string) error
}

// viewHandler returns the projection handler of a read model: decode each
// event, load the tab's document, apply the event unless the document has
// seen it, and store the document.
func viewHandler[V any](docs docStore, kind string, events *binarize.Registry[Event], apply func(V, eventlog.Record, Event) V) projection.Handler {
	return projection.PerEvent(func(ctx context.Context, rec eventlog.Record) error {
		e, err := events.Decode(rec.Name, rec.Revision, rec.Data)
		if err != nil {
			return fmt.Errorf("%s: decode %s/%s seq %d: %w", kind, rec.EntityType, rec.EntityID, rec.Seq, err)
		}
		var d doc[V]
		data, err := docs.get(ctx, kind, rec.EntityID)
		if err != nil {
			return err
		}
		if data != nil {
			if err := json.Unmarshal(data, &d); err != nil {
				return fmt.Errorf("%s: document %s: %w", kind, rec.EntityID, err)
			}
		}
		if rec.Seq <= d.Seq {
			return nil // delivered again after a crash: already applied
		}
		d.View, d.Seq = apply(d.View, rec, e), rec.Seq
		if data, err = json.Marshal(d); err != nil {
			return err
		}
		return docs.put(ctx, kind, rec.EntityID, data)
	})
}

// views returns every view of kind.
func views[V any](ctx context.Context, docs docStore, kind string) ([]V, error) {
	var out []V
	err := docs.list(ctx, kind, func(data []byte) error {
		var d doc[V]
		if err := json.Unmarshal(data, &d); err != nil {
			return fmt.Errorf("%s: %w", kind, err)
		}
		out = append(out, d.View)
		return nil
	})
	return out, err
}

// Queries answers from the read models.
type Queries struct {
	docs docStore
}

// OpenTable is an open tab in the list of open tables.
type OpenTable struct {
	TableNumber int    `json:"table_number"`
	Waiter      string `json:"waiter"`
	TabID       string `json:"tab_id"`
}

// openTabs returns the views of the open tabs, by table number.
func (q Queries) openTabs(ctx context.Context) ([]TabView, error) {
	all, err := views[TabView](ctx, q.docs, OpenTabsKind)
	if err != nil {
		return nil, err
	}
	all = slices.DeleteFunc(all, func(v TabView) bool { return v.Closed || v.TableNumber == 0 })
	slices.SortFunc(all, func(a, b TabView) int {
		return cmp.Or(cmp.Compare(a.TableNumber, b.TableNumber), cmp.Compare(a.TabID, b.TabID))
	})
	return all, nil
}

// ActiveTables lists the tables with an open tab.
func (q Queries) ActiveTables(ctx context.Context) ([]OpenTable, error) {
	tabs, err := q.openTabs(ctx)
	if err != nil {
		return nil, err
	}
	out := []OpenTable{}
	for _, v := range tabs {
		out = append(out, OpenTable{TableNumber: v.TableNumber, Waiter: v.Waiter, TabID: v.TabID})
	}
	return out, nil
}

// TabForTable returns the open tab of a table. The Table entity keeps it to
// one; the read model can hold two for a moment, a tab closed and the next
// one opened before it applied the close, and then the one with the smaller
// id is returned.
func (q Queries) TabForTable(ctx context.Context, table int) (TabView, bool, error) {
	tabs, err := q.openTabs(ctx)
	if err != nil {
		return TabView{}, false, err
	}
	for _, v := range tabs {
		if v.TableNumber == table {
			v.ToServe, v.InPreparation, v.Served = orEmpty(v.ToServe), orEmpty(v.InPreparation), orEmpty(v.Served)
			return v, true, nil
		}
	}
	return TabView{}, false, nil
}

// orEmpty returns s, or an empty slice if s is nil: the API's lists are []
// when empty, never null.
func orEmpty[T any](s []T) []T {
	if s == nil {
		return []T{}
	}
	return s
}

// Invoice is what a table owes so far.
type Invoice struct {
	TabID            string        `json:"tab_id"`
	TableNumber      int           `json:"table_number"`
	Items            []OrderedItem `json:"items"`
	Total            int           `json:"total"`
	HasUnservedItems bool          `json:"has_unserved_items"`
}

// InvoiceForTable returns the invoice of a table's open tab.
func (q Queries) InvoiceForTable(ctx context.Context, table int) (Invoice, bool, error) {
	v, ok, err := q.TabForTable(ctx, table)
	if !ok || err != nil {
		return Invoice{}, ok, err
	}
	return Invoice{
		TabID: v.TabID, TableNumber: v.TableNumber, Items: v.Served, Total: value(v.Served),
		HasUnservedItems: len(v.ToServe) > 0 || len(v.InPreparation) > 0,
	}, true, nil
}

// WaiterTodo is what a waiter has to serve at one table.
type WaiterTodo struct {
	TableNumber int           `json:"table_number"`
	Items       []OrderedItem `json:"items"`
}

// TodoListForWaiter returns, by table, what a waiter has to serve.
func (q Queries) TodoListForWaiter(ctx context.Context, waiter string) ([]WaiterTodo, error) {
	tabs, err := q.openTabs(ctx)
	if err != nil {
		return nil, err
	}
	out := []WaiterTodo{}
	for _, v := range tabs {
		if v.Waiter == waiter && len(v.ToServe) > 0 {
			out = append(out, WaiterTodo{TableNumber: v.TableNumber, Items: v.ToServe})
		}
	}
	return out, nil
}

// ChefTodo is the food to prepare for one tab.
type ChefTodo struct {
	TabID string     `json:"tab_id"`
	Items []TodoItem `json:"items"`
}

// ChefTodoList returns the food to prepare, grouped by tab, oldest first.
func (q Queries) ChefTodoList(ctx context.Context) ([]ChefTodo, error) {
	groups, err := views[ChefGroup](ctx, q.docs, ChefTodoKind)
	if err != nil {
		return nil, err
	}
	groups = slices.DeleteFunc(groups, func(g ChefGroup) bool { return len(g.Items) == 0 })
	slices.SortFunc(groups, func(a, b ChefGroup) int { return cmp.Compare(a.Since, b.Since) })
	out := []ChefTodo{}
	for _, g := range groups {
		out = append(out, ChefTodo{TabID: g.TabID, Items: g.Items})
	}
	return out, nil
}
