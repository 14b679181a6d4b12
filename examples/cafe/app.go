package main

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/eventsourced-go/eventsourced/entity"
	"github.com/eventsourced-go/eventsourced/eventlog"
	"github.com/eventsourced-go/eventsourced/projection"
	"github.com/eventsourced-go/eventsourced/snapshotstore"
)

// backend is where the cafe keeps its events, snapshots, offsets and read
// models, and how to release them.
type backend struct {
	log       eventlog.Log
	snapshots snapshotstore.Store // may be nil
	offsets   projection.OffsetStore
	docs      docStore
	close     func() // releases the backend; may be nil
}

// App is the cafe: the Tab and Table entities (write side), the projections
// that keep the read models, and the queries on them (read side).
type App struct {
	sys         *entity.System
	tabs        *entity.Kind[Tab, Event]
	tables      *entity.Kind[Table, TableEvent]
	logger      *slog.Logger
	log         eventlog.Log
	docs        docStore
	projections []*projection.Projection
	tel         *telemetry
	Queries     Queries
}

// NewApp builds the cafe on b, measured with tel; [App.Start] starts its
// projections.
func NewApp(b backend, logger *slog.Logger, tel *telemetry) (*App, error) {
	opts := []entity.Option{entity.WithLogger(logger),
		entity.WithTracerProvider(tel.tracerProvider), entity.WithMeterProvider(tel.meterProvider),
		entity.WithPropagator(tel.propagator)}
	if b.snapshots != nil {
		opts = append(opts, entity.WithSnapshotStore(b.snapshots))
	}
	sys, err := entity.NewSystem(b.log, opts...)
	if err != nil {
		return nil, err
	}
	kindOpts := []entity.KindOption{entity.WithPassivateAfter(time.Minute)}
	if b.snapshots != nil {
		kindOpts = append(kindOpts, entity.WithSnapshotEvery(50))
	}
	tabs, err := entity.Register(sys, TabType(), kindOpts...)
	if err != nil {
		sys.Close()
		return nil, err
	}
	tables, err := entity.Register(sys, TableType(), kindOpts...)
	if err != nil {
		sys.Close()
		return nil, err
	}
	a := &App{sys: sys, tabs: tabs, tables: tables, logger: logger, log: b.log, docs: b.docs, tel: tel, Queries: Queries{docs: b.docs}}
	reg := events()
	for _, p := range []struct {
		name string
		h    projection.Handler
	}{
		{OpenTabsKind, viewHandler(b.docs, OpenTabsKind, reg, applyOpenTabs)},
		{ChefTodoKind, viewHandler(b.docs, ChefTodoKind, reg, applyChefTodo)},
	} {
		pr, err := projection.New(b.log, TabTypeName, p.name, b.offsets, p.h,
			// A store that stops answering fails the batch after 30 s, is
			// reported in Status, and is retried, instead of holding the view.
			projection.WithBatchSize(64), projection.WithStoreTimeout(30*time.Second), projection.WithLogger(logger),
			projection.WithTracerProvider(tel.tracerProvider), projection.WithMeterProvider(tel.meterProvider),
			projection.WithPropagator(tel.propagator))
		if err != nil {
			sys.Close()
			return nil, err
		}
		a.projections = append(a.projections, pr)
	}
	return a, nil
}

// Start starts the projections; they run until [App.Shutdown].
func (a *App) Start() error {
	for _, p := range a.projections {
		if err := p.Start(context.Background()); err != nil {
			return err
		}
	}
	return nil
}

// Shutdown stops the projections and drains the entities.
func (a *App) Shutdown(ctx context.Context) error {
	var errs []error
	for _, p := range a.projections {
		errs = append(errs, p.Stop(ctx))
	}
	errs = append(errs, a.sys.Shutdown(ctx))
	return errors.Join(errs...)
}

// Projections returns the status of each projection.
func (a *App) Projections() []projection.Status {
	var out []projection.Status
	for _, p := range a.projections {
		out = append(out, p.Status())
	}
	return out
}

// Rebuild stops the projection named name, empties its read model, sets
// its offset to 0 and starts it again.
func (a *App) Rebuild(ctx context.Context, name string) error {
	for _, p := range a.projections {
		if p.Name() != name {
			continue
		}
		if err := p.Stop(ctx); err != nil {
			return err
		}
		if err := p.Reset(ctx, func(ctx context.Context) error { return a.docs.clear(ctx, name) }); err != nil {
			return err
		}
		return p.Start(context.Background())
	}
	return fmt.Errorf("no projection %q: %w", name, errNotFound)
}

var errNotFound = errors.New("not found")

// OpenTab opens a tab for a table and returns its id. If the table has an
// open tab, the error is a [*TableTakenError] naming it.
//
// The Table entity decides who has the table (see table.go): OpenTab takes
// the table for a new tab and then opens the tab. Whoever takes the table,
// this call or an earlier one that stopped halfway, its tab is opened here,
// so a taken table always has an open tab; a table still held by a closed
// tab (a Close that stopped before freeing it) is freed and taken again.
func (a *App) OpenTab(ctx context.Context, table int, waiter string) (string, error) {
	if table <= 0 || waiter == "" {
		// Checked before the table is taken, for a tab that could not open.
		return "", fmt.Errorf("open tab at table %d, waiter %q: %w", table, waiter, ErrInvalidCommand)
	}
	id := "tab-" + strings.ToLower(rand.Text()[:12])
	for {
		t, err := entity.Ask(ctx, a.tables.Ref(tableID(table)), TakeTable{TabID: id, Waiter: waiter})
		if err != nil {
			return "", err
		}
		_, err = entity.Ask(ctx, a.tabs.Ref(t.TabID), OpenTab{TableNumber: table, Waiter: t.Waiter})
		switch {
		case t.TabID != id && errors.Is(err, ErrTabClosed):
			if _, err := entity.Ask(ctx, a.tables.Ref(tableID(table)), FreeTable{TabID: t.TabID}); err != nil {
				return "", err
			}
			continue
		case err != nil:
			return "", err
		case t.TabID != id:
			return "", &TableTakenError{TableNumber: table, TabID: t.TabID}
		}
		return id, nil
	}
}

// Order places an order of menu items on a tab.
func (a *App) Order(ctx context.Context, tab string, menuNumbers []int) error {
	items := make([]OrderedItem, 0, len(menuNumbers))
	for i, n := range menuNumbers {
		it, ok := Menu[n]
		if !ok {
			return fmt.Errorf("place order on %s: menu_numbers[%d] (%d): %w", tab, i, n, ErrNotOnMenu)
		}
		items = append(items, it)
	}
	_, err := entity.Ask(ctx, a.tabs.Ref(tab), PlaceOrder{Items: items})
	return err
}

// DrinksServed marks drinks of a tab served.
func (a *App) DrinksServed(ctx context.Context, tab string, menuNumbers []int) error {
	_, err := entity.Ask(ctx, a.tabs.Ref(tab), MarkDrinksServed{MenuNumbers: menuNumbers})
	return err
}

// FoodPrepared marks food of a tab prepared.
func (a *App) FoodPrepared(ctx context.Context, tab string, menuNumbers []int) error {
	_, err := entity.Ask(ctx, a.tabs.Ref(tab), MarkFoodPrepared{MenuNumbers: menuNumbers})
	return err
}

// FoodServed marks food of a tab served.
func (a *App) FoodServed(ctx context.Context, tab string, menuNumbers []int) error {
	_, err := entity.Ask(ctx, a.tabs.Ref(tab), MarkFoodServed{MenuNumbers: menuNumbers})
	return err
}

// Close closes a tab paid with amountPaid cents, frees its table and
// returns the tip. The tab is closed and paid even if freeing the table
// fails: the next [App.OpenTab] at the table frees it.
func (a *App) Close(ctx context.Context, tab string, amountPaid int) (int, error) {
	c, err := entity.Ask(ctx, a.tabs.Ref(tab), CloseTab{AmountPaid: amountPaid})
	if err != nil {
		return 0, err
	}
	if _, err := entity.Ask(ctx, a.tables.Ref(tableID(c.TableNumber)), FreeTable{TabID: tab}); err != nil {
		a.logger.Warn("free table after closing its tab; the next open there frees it", "tab", tab, "table", c.TableNumber, "err", err)
	}
	return c.Tip, nil
}

// ErrNotOnMenu rejects an order of something the cafe does not serve.
var ErrNotOnMenu = errors.New("not on the menu")

// Menu is what the cafe serves, by menu number; prices in cents.
var Menu = map[int]OrderedItem{
	1:  {MenuNumber: 1, Description: "Coke", IsDrink: true, Price: 150},
	4:  {MenuNumber: 4, Description: "Sprite", IsDrink: true, Price: 150},
	10: {MenuNumber: 10, Description: "Beer", IsDrink: true, Price: 250},
	16: {MenuNumber: 16, Description: "Beef Noodles", Price: 750},
	25: {MenuNumber: 25, Description: "Vegetable Curry", Price: 600},
}
