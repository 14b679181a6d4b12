package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/eventsourced-go/eventsourced/internal/pgdsn"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"go.opentelemetry.io/otel/sdk/resource"
)

// server runs the cafe with run, as main does, until the test ends or
// the returned stop is called.
func server(t *testing.T, store, dir, dsn string) (base string, stop func()) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	ready := make(chan string, 1)
	done := make(chan error, 1)
	tel, err := newTelemetry(resource.Empty(), nil)
	if err != nil {
		t.Fatal(err)
	}
	go func() { done <- run(ctx, slog.New(slog.DiscardHandler), tel, "127.0.0.1:0", store, dir, dsn, ready) }()
	select {
	case addr := <-ready:
		base = "http://" + addr
	case err := <-done:
		cancel()
		t.Fatalf("run: %v", err)
	case <-time.After(30 * time.Second):
		cancel()
		t.Fatal("cafe did not start in 30s")
	}
	stopped := false
	stop = func() {
		if stopped {
			return
		}
		stopped = true
		cancel()
		if err := <-done; err != nil {
			t.Errorf("run: %v", err)
		}
	}
	t.Cleanup(stop)
	return base, stop
}

// call sends a request and decodes the JSON answer into out (if not nil);
// it returns the status code.
func call(t *testing.T, method, u string, body any, out any) int {
	t.Helper()
	var rd io.Reader
	if s, ok := body.(string); ok {
		rd = strings.NewReader(s)
	} else if body != nil {
		data, err := json.Marshal(body)
		if err != nil {
			t.Fatal(err)
		}
		rd = bytes.NewReader(data)
	}
	req, err := http.NewRequest(method, u, rd)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	if out != nil && resp.StatusCode < 300 {
		if err := json.Unmarshal(data, out); err != nil {
			t.Fatalf("%s %s: decode %s: %v", method, u, data, err)
		}
	}
	return resp.StatusCode
}

// eventually polls a GET until its JSON answer equals want: read models are
// eventually consistent.
func eventually[T any](t *testing.T, u string, want T) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	var got T
	for {
		var cur T
		if call(t, "GET", u, nil, &cur) == http.StatusOK && reflect.DeepEqual(cur, want) {
			return
		}
		got = cur
		if time.Now().After(deadline) {
			t.Fatalf("GET %s:\n got %+v\nwant %+v", u, got, want)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func mustStatus(t *testing.T, what string, got, want int) {
	t.Helper()
	if got != want {
		t.Fatalf("%s: status %d, want %d", what, got, want)
	}
}

func item(n int) OrderedItem { return Menu[n] }

// scenario plays an evening at the cafe through the HTTP API and checks the
// read models at each step.
func scenario(t *testing.T, base string) {
	var menu []OrderedItem
	mustStatus(t, "menu", call(t, "GET", base+"/menu", nil, &menu), 200)
	if len(menu) != len(Menu) || menu[0].MenuNumber != 1 {
		t.Errorf("menu %+v", menu)
	}

	var a, b struct {
		TabID string `json:"tab_id"`
	}
	mustStatus(t, "open tab 3", call(t, "POST", base+"/tabs", map[string]any{"table_number": 3, "waiter": "Derek"}, &a), 201)
	mustStatus(t, "open tab 5", call(t, "POST", base+"/tabs", map[string]any{"table_number": 5, "waiter": "Alice"}, &b), 201)
	tab := func(id, path string) string { return base + "/tabs/" + id + path }
	numbers := func(n ...int) map[string][]int { return map[string][]int{"menu_numbers": n} }

	mustStatus(t, "order 3", call(t, "POST", tab(a.TabID, "/order"), numbers(10, 16, 16), nil), 200)
	mustStatus(t, "order 5", call(t, "POST", tab(b.TabID, "/order"), numbers(1), nil), 200)
	eventually(t, base+"/tables", []OpenTable{{3, "Derek", a.TabID}, {5, "Alice", b.TabID}})
	eventually(t, base+"/waiters/Derek/todo", []WaiterTodo{{3, []OrderedItem{item(10)}}})
	eventually(t, base+"/chef/todo", []ChefTodo{{a.TabID, []TodoItem{{16, "Beef Noodles"}, {16, "Beef Noodles"}}}})

	mustStatus(t, "serve beer", call(t, "POST", tab(a.TabID, "/drinks-served"), numbers(10), nil), 200)
	mustStatus(t, "serve beer again", call(t, "POST", tab(a.TabID, "/drinks-served"), numbers(10), nil), 409)
	mustStatus(t, "serve unprepared food", call(t, "POST", tab(a.TabID, "/food-served"), numbers(16), nil), 409)
	mustStatus(t, "prepare food", call(t, "POST", tab(a.TabID, "/food-prepared"), numbers(16, 16), nil), 200)
	eventually(t, base+"/chef/todo", []ChefTodo{})
	eventually(t, base+"/waiters/Derek/todo", []WaiterTodo{{3, []OrderedItem{item(16), item(16)}}})
	mustStatus(t, "serve food", call(t, "POST", tab(a.TabID, "/food-served"), numbers(16), nil), 200)
	mustStatus(t, "close with unserved items", call(t, "POST", tab(a.TabID, "/close"), map[string]int{"amount_paid": 5000}, nil), 409)
	mustStatus(t, "serve food", call(t, "POST", tab(a.TabID, "/food-served"), numbers(16), nil), 200)
	eventually(t, base+"/tables/3/invoice", Invoice{TabID: a.TabID, TableNumber: 3, Items: []OrderedItem{item(10), item(16), item(16)}, Total: 1750})
	mustStatus(t, "underpay", call(t, "POST", tab(a.TabID, "/close"), map[string]int{"amount_paid": 1700}, nil), 409)
	var tip struct{ Tip int }
	mustStatus(t, "close 3", call(t, "POST", tab(a.TabID, "/close"), map[string]int{"amount_paid": 2000}, &tip), 200)
	if tip.Tip != 250 {
		t.Errorf("tip %d, want 250", tip.Tip)
	}
	mustStatus(t, "close 3 again", call(t, "POST", tab(a.TabID, "/close"), map[string]int{"amount_paid": 2000}, nil), 409)
	eventually(t, base+"/tables", []OpenTable{{5, "Alice", b.TabID}})
	eventually(t, base+"/tables/5/invoice", Invoice{TabID: b.TabID, TableNumber: 5, Items: []OrderedItem{}, Total: 0, HasUnservedItems: true})
	mustStatus(t, "closed table", call(t, "GET", base+"/tables/3", nil, nil), 404)
	mustStatus(t, "table not a number", call(t, "GET", base+"/tables/x", nil, nil), 400)

	mustStatus(t, "order on a tab never opened", call(t, "POST", tab("nope", "/order"), numbers(1), nil), 404)
	mustStatus(t, "order off the menu", call(t, "POST", tab(b.TabID, "/order"), numbers(99), nil), 400)
	mustStatus(t, "bad body", call(t, "POST", tab(b.TabID, "/order"), `{"menu":`, nil), 400)
	mustStatus(t, "bad table", call(t, "POST", base+"/tabs", map[string]any{"table_number": 0, "waiter": "x"}, nil), 400)
}

// rebuild resets a read model and checks it comes back the same.
func rebuild(t *testing.T, base string) {
	var before []OpenTable
	mustStatus(t, "tables", call(t, "GET", base+"/tables", nil, &before), 200)
	mustStatus(t, "rebuild", call(t, "POST", base+"/projections/open-tabs/rebuild", nil, nil), 202)
	eventually(t, base+"/tables", before)
	mustStatus(t, "rebuild unknown", call(t, "POST", base+"/projections/nope/rebuild", nil, nil), 404)
}

// caughtUp waits until both projections run at offset want (any offset
// above 0 if want is 0) with no lag, and returns their status.
func caughtUp(t *testing.T, base string, want float64) []map[string]any {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		var st []map[string]any
		mustStatus(t, "projections", call(t, "GET", base+"/projections", nil, &st), 200)
		if len(st) == 2 && st[0]["offset"] == st[1]["offset"] && st[0]["lag"] == 0.0 && st[1]["lag"] == 0.0 &&
			st[0]["running"] == true && st[1]["running"] == true &&
			(want == 0 && st[0]["offset"].(float64) > 0 || st[0]["offset"] == want) {
			return st
		}
		if time.Now().After(deadline) {
			t.Fatalf("projections not caught up: %+v", st)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestAPIMemory(t *testing.T) {
	base, _ := server(t, "memory", "", "")
	emptyLists(t, base)
	scenario(t, base)
	unknownTabs(t, base)
	oneOpenTabPerTable(t, base)
	rebuild(t, base)
	caughtUp(t, base, 0)
}

func TestAPINATS(t *testing.T) {
	dir := t.TempDir()
	base, stop := server(t, "nats", dir, "")
	emptyLists(t, base)
	scenario(t, base)
	unknownTabs(t, base)
	oneOpenTabPerTable(t, base)
	rebuild(t, base)
	st := caughtUp(t, base, 0)
	var tables []OpenTable
	call(t, "GET", base+"/tables", nil, &tables)
	stop()

	// A restart finds the events, offsets and read models where they were.
	base, _ = server(t, "nats", dir, "")
	eventually(t, base+"/tables", tables)
	caughtUp(t, base, st[0]["offset"].(float64))
}

func TestAPIPostgres(t *testing.T) {
	dsn := testDatabase(t)
	base, stop := server(t, "postgres", "", dsn)
	emptyLists(t, base)
	scenario(t, base)
	unknownTabs(t, base)
	oneOpenTabPerTable(t, base)
	rebuild(t, base)
	st := caughtUp(t, base, 0)
	var tables []OpenTable
	call(t, "GET", base+"/tables", nil, &tables)
	stop()

	base, _ = server(t, "postgres", "", dsn)
	eventually(t, base+"/tables", tables)
	caughtUp(t, base, st[0]["offset"].(float64))
}

// testDatabase creates a fresh database on the server EVENTSOURCED_POSTGRES_DSN
// names, drops it when the test ends, and returns its DSN. Without the
// variable the test is skipped, unless CI=true.
func testDatabase(t *testing.T) string {
	t.Helper()
	dsn := pgdsn.Require(t)
	ctx := context.Background()
	admin, err := pgxpool.New(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer admin.Close()
	name := "cafe_" + strings.ToLower(rand.Text()[:10])
	if _, err := admin.Exec(ctx, "CREATE DATABASE "+pgx.Identifier{name}.Sanitize()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		admin, err := pgxpool.New(context.Background(), dsn)
		if err != nil {
			t.Error(err)
			return
		}
		defer admin.Close()
		if _, err := admin.Exec(context.Background(), "DROP DATABASE "+pgx.Identifier{name}.Sanitize()+" WITH (FORCE)"); err != nil {
			t.Error(err)
		}
	})
	if u, err := url.Parse(dsn); err == nil && (u.Scheme == "postgres" || u.Scheme == "postgresql") {
		u.Path = "/" + name
		return u.String()
	}
	return fmt.Sprintf("%s dbname=%s", dsn, name)
}
