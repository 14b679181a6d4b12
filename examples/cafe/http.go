package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strconv"
	"strings"

	"go.opentelemetry.io/contrib/instrumentation/net/http/otelhttp"
)

// endpoint is one route of the API, as GET / lists it and as the README's
// table of endpoints documents it.
type endpoint struct {
	Method   string `json:"method"`
	Path     string `json:"path"`
	Does     string `json:"does"`
	Request  string `json:"request,omitempty"` // an example body
	Response string `json:"response"`          // the body of a success
	handler  http.HandlerFunc
}

// Handler returns the cafe's HTTP JSON API; GET / lists its endpoints
// (see [App.endpoints]).
//
// Commands answer once their events are durable. Queries read the read
// models, which projections update right after: they are eventually
// consistent, usually within milliseconds. Errors are {"error": "..."}
// naming what was wrong (the tab, the table, the index of a menu number):
// 400 for a malformed request, 404 for a tab, table, projection or
// endpoint that does not exist, 409 for a command the cafe's rules refuse
// (a table taken also gives "table_number" and the "tab_id" that has it).
// Lists are [] when empty, never null.
//
// Every request but GET /metrics is a server span ("POST /tabs") and is
// measured (http.server.request.duration); the span of the command it asks
// is its child, and so on down to the append and, through the trace
// context in the events' metadata, the projections.
func (a *App) Handler() http.Handler {
	mux := http.NewServeMux()
	eps := a.endpoints()
	for _, e := range eps {
		if e.handler == nil {
			continue // GET /metrics, below
		}
		path := e.Path
		if path == "/" {
			path = "/{$}" // only the root, not every path
		}
		mux.HandleFunc(e.Method+" "+path, e.handler)
	}
	mux.Handle("GET /metrics", a.tel.metrics)
	// Anything else gets a JSON error too: 405 with Allow for a path that
	// exists under another method, 404 otherwise.
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		var allow []string
		for _, m := range []string{"GET", "POST"} {
			other := *r
			other.Method = m
			if _, pattern := mux.Handler(&other); pattern != "/" && pattern != "" {
				allow = append(allow, m)
			}
		}
		if len(allow) > 0 {
			w.Header().Set("Allow", strings.Join(allow, ", "))
			reply(w, http.StatusMethodNotAllowed, map[string]string{
				"error": fmt.Sprintf("%s %s: method not allowed, want %s", r.Method, r.URL.Path, strings.Join(allow, " or "))})
			return
		}
		reply(w, http.StatusNotFound, map[string]string{"error": fmt.Sprintf("no endpoint %s %s: GET / lists them", r.Method, r.URL.Path)})
	})
	return otelhttp.NewHandler(mux, "cafe",
		otelhttp.WithTracerProvider(a.tel.tracerProvider), otelhttp.WithMeterProvider(a.tel.meterProvider),
		otelhttp.WithPropagators(a.tel.propagator),
		// A scrape every few seconds is no request worth a trace.
		otelhttp.WithFilter(func(r *http.Request) bool { return r.URL.Path != "/metrics" }))
}

// endpoints returns the API: GET / lists it and Handler serves it, so the
// list cannot miss one.
func (a *App) endpoints() []endpoint {
	tabCommand := func(f func(r *http.Request, tab string, numbers []int) error) http.HandlerFunc {
		return func(w http.ResponseWriter, r *http.Request) {
			var req struct {
				MenuNumbers []int `json:"menu_numbers"`
			}
			if !decode(w, r, &req) {
				return
			}
			if err := f(r, r.PathValue("id"), req.MenuNumbers); err != nil {
				fail(w, err)
				return
			}
			reply(w, http.StatusOK, struct{}{})
		}
	}
	table := func(f func(w http.ResponseWriter, r *http.Request, table int)) http.HandlerFunc {
		return func(w http.ResponseWriter, r *http.Request) {
			n, err := strconv.Atoi(r.PathValue("n"))
			if err != nil {
				fail(w, fmt.Errorf("table %q is not a number: %w", r.PathValue("n"), ErrInvalidCommand))
				return
			}
			f(w, r, n)
		}
	}
	query := func(f func(r *http.Request) (any, error)) http.HandlerFunc {
		return func(w http.ResponseWriter, r *http.Request) {
			v, err := f(r)
			if err != nil {
				fail(w, err)
				return
			}
			reply(w, http.StatusOK, v)
		}
	}
	var eps []endpoint
	eps = []endpoint{
		{Method: "GET", Path: "/", Does: "lists the endpoints",
			Response: `[{"method": "GET", "path": "/", "does": "...", "request": "...", "response": "..."}, ...]`,
			handler:  func(w http.ResponseWriter, r *http.Request) { reply(w, http.StatusOK, eps) }},
		{Method: "GET", Path: "/menu", Does: "the menu, by menu number; prices in cents",
			Response: `[{"menu_number": 1, "description": "Coke", "is_drink": true, "price": 150}, ...]`,
			handler: func(w http.ResponseWriter, r *http.Request) {
				items := make([]OrderedItem, 0, len(Menu))
				for _, it := range Menu {
					items = append(items, it)
				}
				slices.SortFunc(items, func(a, b OrderedItem) int { return a.MenuNumber - b.MenuNumber })
				reply(w, http.StatusOK, items)
			}},
		{Method: "POST", Path: "/tabs", Does: "opens a tab at a table (201); 409 if the table has an open tab",
			Request: `{"table_number": 3, "waiter": "Derek"}`, Response: `{"tab_id": "tab-..."}`,
			handler: func(w http.ResponseWriter, r *http.Request) {
				var req struct {
					TableNumber int    `json:"table_number"`
					Waiter      string `json:"waiter"`
				}
				if !decode(w, r, &req) {
					return
				}
				id, err := a.OpenTab(r.Context(), req.TableNumber, req.Waiter)
				if err != nil {
					fail(w, err)
					return
				}
				reply(w, http.StatusCreated, map[string]string{"tab_id": id})
			}},
		{Method: "POST", Path: "/tabs/{id}/order", Does: "orders menu items on a tab: drinks to serve, food for the kitchen",
			Request: `{"menu_numbers": [1, 16]}`, Response: `{}`,
			handler: tabCommand(func(r *http.Request, tab string, n []int) error { return a.Order(r.Context(), tab, n) })},
		{Method: "POST", Path: "/tabs/{id}/drinks-served", Does: "marks ordered drinks served",
			Request: `{"menu_numbers": [1]}`, Response: `{}`,
			handler: tabCommand(func(r *http.Request, tab string, n []int) error { return a.DrinksServed(r.Context(), tab, n) })},
		{Method: "POST", Path: "/tabs/{id}/food-prepared", Does: "the kitchen marks ordered food prepared",
			Request: `{"menu_numbers": [16]}`, Response: `{}`,
			handler: tabCommand(func(r *http.Request, tab string, n []int) error { return a.FoodPrepared(r.Context(), tab, n) })},
		{Method: "POST", Path: "/tabs/{id}/food-served", Does: "marks prepared food served",
			Request: `{"menu_numbers": [16]}`, Response: `{}`,
			handler: tabCommand(func(r *http.Request, tab string, n []int) error { return a.FoodServed(r.Context(), tab, n) })},
		{Method: "POST", Path: "/tabs/{id}/close", Does: "pays and closes a tab with everything served, frees its table; the tip is what was paid over the served items",
			Request: `{"amount_paid": 1000}`, Response: `{"tip": 100}`,
			handler: func(w http.ResponseWriter, r *http.Request) {
				var req struct {
					AmountPaid int `json:"amount_paid"`
				}
				if !decode(w, r, &req) {
					return
				}
				tip, err := a.Close(r.Context(), r.PathValue("id"), req.AmountPaid)
				if err != nil {
					fail(w, err)
					return
				}
				reply(w, http.StatusOK, map[string]int{"tip": tip})
			}},
		{Method: "GET", Path: "/tables", Does: "the open tabs, by table number",
			Response: `[{"table_number": 3, "waiter": "Derek", "tab_id": "tab-..."}, ...]`,
			handler:  query(func(r *http.Request) (any, error) { return a.Queries.ActiveTables(r.Context()) })},
		{Method: "GET", Path: "/tables/{n}", Does: "the open tab of table n; 404 if none",
			Response: `{"tab_id": "tab-...", "table_number": 3, "waiter": "Derek", "to_serve": [...], "in_preparation": [...], "served": [...], "closed": false}`,
			handler: table(func(w http.ResponseWriter, r *http.Request, n int) {
				v, ok, err := a.Queries.TabForTable(r.Context(), n)
				found(w, v, ok, err, n)
			})},
		{Method: "GET", Path: "/tables/{n}/invoice", Does: "what table n owes for the items served so far; 404 if it has no open tab",
			Response: `{"tab_id": "tab-...", "table_number": 3, "items": [...], "total": 1750, "has_unserved_items": false}`,
			handler: table(func(w http.ResponseWriter, r *http.Request, n int) {
				inv, ok, err := a.Queries.InvoiceForTable(r.Context(), n)
				found(w, inv, ok, err, n)
			})},
		{Method: "GET", Path: "/waiters/{name}/todo", Does: "what a waiter has to serve, by table",
			Response: `[{"table_number": 3, "items": [...]}, ...]`,
			handler: query(func(r *http.Request) (any, error) {
				return a.Queries.TodoListForWaiter(r.Context(), r.PathValue("name"))
			})},
		{Method: "GET", Path: "/chef/todo", Does: "what the kitchen has to prepare, by tab, oldest order first",
			Response: `[{"tab_id": "tab-...", "items": [{"menu_number": 16, "description": "Beef Noodles"}]}, ...]`,
			handler:  query(func(r *http.Request) (any, error) { return a.Queries.ChefTodoList(r.Context()) })},
		{Method: "GET", Path: "/projections", Does: "the status of the projections that keep the read models",
			Response: `[{"name": "open-tabs", "running": true, "offset": 42, "lag": 0, "read_ahead_full": false, "handled": 42, "retries": 0, "last_error": "...", "skipped": 0}, ...]`,
			handler:  a.serveProjections},
		{Method: "POST", Path: "/projections/{name}/rebuild", Does: "rebuilds a read model (open-tabs or chef-todo) from the first event (202)",
			Response: `{}`,
			handler: func(w http.ResponseWriter, r *http.Request) {
				if err := a.Rebuild(r.Context(), r.PathValue("name")); err != nil {
					fail(w, err)
					return
				}
				reply(w, http.StatusAccepted, struct{}{})
			}},
		{Method: "GET", Path: "/metrics", Does: "the metrics in the Prometheus text format (not JSON)",
			Response: "eventsourced_commands_total{...} 1 ..."},
	}
	return eps
}

func (a *App) serveProjections(w http.ResponseWriter, r *http.Request) {
	type status struct {
		Name          string `json:"name"`
		Running       bool   `json:"running"`
		Offset        uint64 `json:"offset"`
		Lag           int    `json:"lag"`
		ReadAheadFull bool   `json:"read_ahead_full"`
		Handled       uint64 `json:"handled"`
		Retries       int    `json:"retries"`
		LastError     string `json:"last_error,omitempty"`
		Skipped       uint64 `json:"skipped"`
	}
	out := []status{}
	for _, st := range a.Projections() {
		s := status{Name: st.Name, Running: st.Running, Offset: st.Offset, Lag: st.Lag, ReadAheadFull: st.ReadAheadFull,
			Handled: st.Handled, Retries: st.Retries, Skipped: st.SkippedTotal}
		if st.LastError != nil {
			s.LastError = st.LastError.Error()
		}
		out = append(out, s)
	}
	reply(w, http.StatusOK, out)
}

func found(w http.ResponseWriter, v any, ok bool, err error, table int) {
	switch {
	case err != nil:
		fail(w, err)
	case !ok:
		fail(w, fmt.Errorf("no open tab at table %d: %w", table, errNotFound))
	default:
		reply(w, http.StatusOK, v)
	}
}

// decode reads a JSON request body into v, answering 400 if it cannot.
func decode(w http.ResponseWriter, r *http.Request, v any) bool {
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, 1<<20))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		msg := err.Error()
		if errors.Is(err, io.EOF) {
			msg = "empty, want a JSON object"
		}
		reply(w, http.StatusBadRequest, map[string]string{"error": "bad request body: " + msg})
		return false
	}
	return true
}

// fail answers with the status that fits err.
func fail(w http.ResponseWriter, err error) {
	status := http.StatusInternalServerError
	switch {
	case errors.Is(err, ErrInvalidCommand), errors.Is(err, ErrNotOnMenu):
		status = http.StatusBadRequest
	case errors.Is(err, errNotFound), errors.Is(err, ErrNoSuchTab):
		status = http.StatusNotFound
	case errors.Is(err, ErrTableTaken), errors.Is(err, ErrTabClosed), errors.Is(err, ErrTabAlreadyOpen),
		errors.Is(err, ErrDrinksNotOutstanding), errors.Is(err, ErrFoodNotOutstanding), errors.Is(err, ErrFoodNotPrepared),
		errors.Is(err, ErrMustPayEnough), errors.Is(err, ErrTabHasUnservedItems):
		status = http.StatusConflict
	}
	body := map[string]any{"error": err.Error()}
	if taken, ok := errors.AsType[*TableTakenError](err); ok {
		body["table_number"], body["tab_id"] = taken.TableNumber, taken.TabID
	}
	reply(w, status, body)
}

func reply(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(v)
}
