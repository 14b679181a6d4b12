package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strconv"

	"go.opentelemetry.io/contrib/instrumentation/net/http/otelhttp"
)

// Handler returns the cafe's HTTP JSON API:
//
//	GET  /menu                       the menu
//	POST /tabs                       {"table_number": 3, "waiter": "Derek"} -> {"tab_id": "..."}
//	POST /tabs/{id}/order            {"menu_numbers": [1, 16]}
//	POST /tabs/{id}/drinks-served    {"menu_numbers": [1]}
//	POST /tabs/{id}/food-prepared    {"menu_numbers": [16]}
//	POST /tabs/{id}/food-served      {"menu_numbers": [16]}
//	POST /tabs/{id}/close            {"amount_paid": 1000} -> {"tip": 100}
//	GET  /tables                     open tabs by table
//	GET  /tables/{n}                 the open tab of table n
//	GET  /tables/{n}/invoice         what table n owes
//	GET  /waiters/{name}/todo        what a waiter has to serve, by table
//	GET  /chef/todo                  what the kitchen has to prepare, by tab
//	GET  /projections                status of the projections
//	POST /projections/{name}/rebuild rebuild a read model from the first event
//	GET  /metrics                    metrics in the Prometheus text format
//
// Commands answer once their events are durable. Queries read the read
// models, which projections update right after: they are eventually
// consistent, usually within milliseconds. A rejected command is 409 with
// {"error": "..."}; a malformed one 400.
//
// Every request but GET /metrics is a server span ("POST /tabs") and is
// measured (http.server.request.duration); the span of the command it asks
// is its child, and so on down to the append and, through the trace
// context in the events' metadata, the projections.
func (a *App) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", a.tel.metrics)
	mux.HandleFunc("GET /menu", func(w http.ResponseWriter, r *http.Request) {
		items := make([]OrderedItem, 0, len(Menu))
		for _, it := range Menu {
			items = append(items, it)
		}
		slices.SortFunc(items, func(a, b OrderedItem) int { return a.MenuNumber - b.MenuNumber })
		reply(w, http.StatusOK, items)
	})
	mux.HandleFunc("POST /tabs", func(w http.ResponseWriter, r *http.Request) {
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
	})
	items := func(f func(r *http.Request, tab string, numbers []int) error) http.HandlerFunc {
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
	mux.HandleFunc("POST /tabs/{id}/order", items(func(r *http.Request, tab string, n []int) error { return a.Order(r.Context(), tab, n) }))
	mux.HandleFunc("POST /tabs/{id}/drinks-served", items(func(r *http.Request, tab string, n []int) error { return a.DrinksServed(r.Context(), tab, n) }))
	mux.HandleFunc("POST /tabs/{id}/food-prepared", items(func(r *http.Request, tab string, n []int) error { return a.FoodPrepared(r.Context(), tab, n) }))
	mux.HandleFunc("POST /tabs/{id}/food-served", items(func(r *http.Request, tab string, n []int) error { return a.FoodServed(r.Context(), tab, n) }))
	mux.HandleFunc("POST /tabs/{id}/close", func(w http.ResponseWriter, r *http.Request) {
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
	})
	mux.HandleFunc("GET /tables", func(w http.ResponseWriter, r *http.Request) {
		tables, err := a.Queries.ActiveTables(r.Context())
		if err != nil {
			fail(w, err)
			return
		}
		reply(w, http.StatusOK, tables)
	})
	table := func(f func(w http.ResponseWriter, r *http.Request, table int)) http.HandlerFunc {
		return func(w http.ResponseWriter, r *http.Request) {
			n, err := strconv.Atoi(r.PathValue("n"))
			if err != nil {
				fail(w, fmt.Errorf("table %q: %w", r.PathValue("n"), ErrInvalidCommand))
				return
			}
			f(w, r, n)
		}
	}
	mux.HandleFunc("GET /tables/{n}", table(func(w http.ResponseWriter, r *http.Request, n int) {
		v, ok, err := a.Queries.TabForTable(r.Context(), n)
		found(w, v, ok, err, n)
	}))
	mux.HandleFunc("GET /tables/{n}/invoice", table(func(w http.ResponseWriter, r *http.Request, n int) {
		inv, ok, err := a.Queries.InvoiceForTable(r.Context(), n)
		found(w, inv, ok, err, n)
	}))
	mux.HandleFunc("GET /waiters/{name}/todo", func(w http.ResponseWriter, r *http.Request) {
		todo, err := a.Queries.TodoListForWaiter(r.Context(), r.PathValue("name"))
		if err != nil {
			fail(w, err)
			return
		}
		reply(w, http.StatusOK, todo)
	})
	mux.HandleFunc("GET /chef/todo", func(w http.ResponseWriter, r *http.Request) {
		todo, err := a.Queries.ChefTodoList(r.Context())
		if err != nil {
			fail(w, err)
			return
		}
		reply(w, http.StatusOK, todo)
	})
	mux.HandleFunc("GET /projections", func(w http.ResponseWriter, r *http.Request) {
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
	})
	mux.HandleFunc("POST /projections/{name}/rebuild", func(w http.ResponseWriter, r *http.Request) {
		if err := a.Rebuild(r.Context(), r.PathValue("name")); err != nil {
			fail(w, err)
			return
		}
		reply(w, http.StatusAccepted, struct{}{})
	})
	return otelhttp.NewHandler(mux, "cafe",
		otelhttp.WithTracerProvider(a.tel.tracerProvider), otelhttp.WithMeterProvider(a.tel.meterProvider),
		otelhttp.WithPropagators(a.tel.propagator),
		// A scrape every few seconds is no request worth a trace.
		otelhttp.WithFilter(func(r *http.Request) bool { return r.URL.Path != "/metrics" }))
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
		reply(w, http.StatusBadRequest, map[string]string{"error": "bad request body: " + err.Error()})
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
	case errors.Is(err, errNotFound):
		status = http.StatusNotFound
	case errors.Is(err, ErrTabNotOpen), errors.Is(err, ErrTabAlreadyOpen), errors.Is(err, ErrDrinksNotOutstanding),
		errors.Is(err, ErrFoodNotOutstanding), errors.Is(err, ErrFoodNotPrepared), errors.Is(err, ErrMustPayEnough),
		errors.Is(err, ErrTabHasUnservedItems):
		status = http.StatusConflict
	}
	reply(w, status, map[string]string{"error": err.Error()})
}

func reply(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(v)
}
