package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"go.opentelemetry.io/otel/sdk/resource"

	"github.com/eventsourced-go/eventsourced/entity"
	"github.com/eventsourced-go/eventsourced/eventlog"
	"github.com/eventsourced-go/eventsourced/projection"
)

// do sends a request and returns the status, the body without its final
// newline, and the Allow header. It does not fail the test, so goroutines
// can call it.
func do(method, u, body string) (status int, got, allow string, err error) {
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequest(method, u, rd)
	if err != nil {
		return 0, "", "", err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, "", "", err
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	return resp.StatusCode, strings.TrimSuffix(string(data), "\n"), resp.Header.Get("Allow"), err
}

// compact returns the JSON s without spaces, as the cafe writes it.
func compact(t *testing.T, s string) string {
	t.Helper()
	var b bytes.Buffer
	if err := json.Compact(&b, []byte(s)); err != nil {
		t.Fatalf("want %s: %v", s, err)
	}
	return b.String()
}

// expect sends a request and checks the status and the exact JSON body.
func expect(t *testing.T, method, u, body string, wantStatus int, want string) {
	t.Helper()
	status, got, _, err := do(method, u, body)
	if err != nil {
		t.Fatal(err)
	}
	if want = compact(t, want); status != wantStatus || got != want {
		t.Errorf("%s %s %s:\n got %d %s\nwant %d %s", method, u, body, status, got, wantStatus, want)
	}
}

// eventuallyBody polls a GET until its body is exactly want (compacted).
func eventuallyBody(t *testing.T, u, want string) {
	t.Helper()
	want = compact(t, want)
	deadline := time.Now().Add(10 * time.Second)
	for {
		status, got, _, err := do("GET", u, "")
		if err != nil {
			t.Fatal(err)
		}
		if status == http.StatusOK && got == want {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("GET %s:\n got %d %s\nwant 200 %s", u, status, got, want)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// openTab opens a tab through the API and returns its id.
func openTab(t *testing.T, base string, table int, waiter string) string {
	t.Helper()
	var open struct {
		TabID string `json:"tab_id"`
	}
	mustStatus(t, fmt.Sprintf("open tab at table %d", table),
		call(t, "POST", base+"/tabs", map[string]any{"table_number": table, "waiter": waiter}, &open), 201)
	return open.TabID
}

// emptyLists checks, on a cafe with no tab yet, that every list the API
// answers is [] when empty, never null, lists inside objects included.
func emptyLists(t *testing.T, base string) {
	for _, path := range []string{"/tables", "/waiters/Erin/todo", "/chef/todo"} {
		expect(t, "GET", base+path, "", 200, `[]`)
	}
	id := openTab(t, base, 9, "Erin")
	eventuallyBody(t, base+"/tables/9", `{"tab_id": "`+id+`", "table_number": 9, "waiter": "Erin",
		"to_serve": [], "in_preparation": [], "served": [], "closed": false}`)
	expect(t, "GET", base+"/tables/9/invoice", "", 200,
		`{"tab_id": "`+id+`", "table_number": 9, "items": [], "total": 0, "has_unserved_items": false}`)
	expect(t, "GET", base+"/waiters/Erin/todo", "", 200, `[]`)
	expect(t, "POST", base+"/tabs/"+id+"/close", `{"amount_paid": 0}`, 200, `{"tip": 0}`)
	eventuallyBody(t, base+"/tables", `[]`)
}

// unknownTabs checks every /tabs/{id}/... endpoint answers 404 naming the
// tab for a tab never opened.
func unknownTabs(t *testing.T, base string) {
	for _, tc := range []struct{ path, body, want string }{
		{"/order", `{"menu_numbers": [1]}`, "place order on tab-nope: no such tab"},
		{"/drinks-served", `{"menu_numbers": [1]}`, "serve drinks on tab-nope: no such tab"},
		{"/food-prepared", `{"menu_numbers": [16]}`, "prepare food on tab-nope: no such tab"},
		{"/food-served", `{"menu_numbers": [16]}`, "serve food on tab-nope: no such tab"},
		{"/close", `{"amount_paid": 0}`, "close on tab-nope: no such tab"},
	} {
		expect(t, "POST", base+"/tabs/tab-nope"+tc.path, tc.body, 404, `{"error": "`+tc.want+`"}`)
	}
}

// oneOpenTabPerTable checks a table has at most one open tab: of many
// concurrent opens at a table exactly one succeeds and the others are told
// which tab has it; once that tab is closed the table takes a new one.
func oneOpenTabPerTable(t *testing.T, base string) {
	const n = 16
	type answer struct {
		status int
		body   string
	}
	answers := make([]answer, n)
	start := make(chan struct{})
	var wg sync.WaitGroup
	for i := range answers {
		wg.Go(func() {
			<-start
			status, body, _, err := do("POST", base+"/tabs", fmt.Sprintf(`{"table_number": 7, "waiter": "waiter %d"}`, i))
			if err != nil {
				t.Error(err)
			}
			answers[i] = answer{status, body}
		})
	}
	close(start)
	wg.Wait()
	var winner string
	for _, a := range answers {
		var open struct {
			TabID string `json:"tab_id"`
		}
		if a.status == 201 && json.Unmarshal([]byte(a.body), &open) == nil {
			if winner != "" {
				t.Fatalf("two concurrent opens at table 7 succeeded: %s and %s", winner, open.TabID)
			}
			winner = open.TabID
		}
	}
	if winner == "" {
		t.Fatalf("no concurrent open at table 7 succeeded: %+v", answers)
	}
	taken := compact(t, `{"error": "table 7 has open tab `+winner+`: close it first", "tab_id": "`+winner+`", "table_number": 7}`)
	for _, a := range answers {
		if a.status != 201 && (a.status != 409 || a.body != taken) {
			t.Errorf("concurrent open at table 7: got %d %s, want 201 once and otherwise 409 %s", a.status, a.body, taken)
		}
	}
	eventuallyBody(t, base+"/tables/7/invoice",
		`{"tab_id": "`+winner+`", "table_number": 7, "items": [], "total": 0, "has_unserved_items": false}`)
	var tables []OpenTable
	mustStatus(t, "tables", call(t, "GET", base+"/tables", nil, &tables), 200)
	var at7 []string
	for _, o := range tables {
		if o.TableNumber == 7 {
			at7 = append(at7, o.TabID)
		}
	}
	if want := []string{winner}; !reflect.DeepEqual(at7, want) {
		t.Errorf("open tabs at table 7 %q, want %q", at7, want)
	}

	expect(t, "POST", base+"/tabs", `{"table_number": 7, "waiter": "Derek"}`, 409, taken)
	expect(t, "POST", base+"/tabs/"+winner+"/close", `{"amount_paid": 0}`, 200, `{"tip": 0}`)
	expect(t, "POST", base+"/tabs/"+winner+"/order", `{"menu_numbers": [1]}`, 409,
		`{"error": "place order on `+winner+`: tab is closed"}`)
	next := openTab(t, base, 7, "Derek")
	eventuallyBody(t, base+"/tables/7/invoice",
		`{"tab_id": "`+next+`", "table_number": 7, "items": [], "total": 0, "has_unserved_items": false}`)
	expect(t, "POST", base+"/tabs/"+next+"/close", `{"amount_paid": 0}`, 200, `{"tip": 0}`)
	// Leave the read models caught up for the tests that follow.
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		status, body, _, err := do("GET", base+"/tables/7", "")
		if err != nil {
			t.Fatal(err)
		}
		if status == http.StatusNotFound {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("GET /tables/7 after its tab closed: %d %s, want 404", status, body)
		}
	}
}

// TestAPIErrors checks each error names what was wrong: the tab, the
// table, the index of the menu number, the endpoint.
func TestAPIErrors(t *testing.T) {
	base, _ := server(t, "memory", "", "")
	id := openTab(t, base, 2, "Derek")
	for _, tc := range []struct {
		method, path, body string
		status             int
		want               string
	}{
		{"POST", "/tabs", `{"table_number": 0, "waiter": "Derek"}`, 400, `open tab at table 0, waiter \"Derek\": invalid command`},
		{"POST", "/tabs", `{"table_number": 1, "waiter": ""}`, 400, `open tab at table 1, waiter \"\": invalid command`},
		{"POST", "/tabs", ``, 400, `bad request body: empty, want a JSON object`},
		{"POST", "/tabs", `{"table": 1}`, 400, `bad request body: json: unknown field \"table\"`},
		{"POST", "/tabs/" + id + "/order", `{"menu_numbers": [1, 99]}`, 400, `place order on ` + id + `: menu_numbers[1] (99): not on the menu`},
		{"POST", "/tabs/" + id + "/order", `{"menu_numbers": []}`, 400, `place order on ` + id + `: no items: invalid command`},
		{"POST", "/tabs/" + id + "/order", `{"menu_numbers": [1, 16]}`, 200, ``},
		{"POST", "/tabs/" + id + "/drinks-served", `{"menu_numbers": [1, 1]}`, 409, `serve drinks on ` + id + `: menu_numbers[1] (1): drinks are not outstanding`},
		{"POST", "/tabs/" + id + "/food-served", `{"menu_numbers": [16]}`, 409, `serve food on ` + id + `: menu_numbers[0] (16): food is not prepared`},
		{"POST", "/tabs/" + id + "/food-prepared", `{"menu_numbers": [16, 25]}`, 409, `prepare food on ` + id + `: menu_numbers[1] (25): food is not outstanding`},
		{"POST", "/tabs/" + id + "/close", `{"amount_paid": 1000}`, 409, `close ` + id + `: 1 drinks to serve, 1 food to prepare, 0 food to serve: tab has unserved items`},
		{"POST", "/tabs/" + id + "/drinks-served", `{"menu_numbers": [1]}`, 200, ``},
		{"POST", "/tabs/" + id + "/food-prepared", `{"menu_numbers": [16]}`, 200, ``},
		{"POST", "/tabs/" + id + "/food-served", `{"menu_numbers": [16]}`, 200, ``},
		{"POST", "/tabs/" + id + "/close", `{"amount_paid": 800}`, 409, `close ` + id + `: paid 800 of 900: must pay enough`},
		{"GET", "/tables/x", ``, 400, `table \"x\" is not a number: invalid command`},
		{"GET", "/tables/4", ``, 404, `no open tab at table 4: not found`},
		{"GET", "/tables/4/invoice", ``, 404, `no open tab at table 4: not found`},
		{"POST", "/projections/nope/rebuild", ``, 404, `no projection \"nope\": not found`},
		{"GET", "/nope", ``, 404, `no endpoint GET /nope: GET / lists them`},
		{"GET", "/tabs/" + id + "/close", ``, 405, `GET /tabs/` + id + `/close: method not allowed, want POST`},
	} {
		want := `{}`
		if tc.want != "" {
			want = `{"error": "` + tc.want + `"}`
		}
		expect(t, tc.method, base+tc.path, tc.body, tc.status, want)
	}
	if _, _, allow, _ := do("POST", base+"/tables", ""); allow != "GET" {
		t.Errorf("POST /tables: Allow %q, want GET", allow)
	}
}

// wantEndpoints is the API, method and path, in the order GET / lists it.
var wantEndpoints = []string{
	"GET /", "GET /menu",
	"POST /tabs", "POST /tabs/{id}/order", "POST /tabs/{id}/drinks-served", "POST /tabs/{id}/food-prepared",
	"POST /tabs/{id}/food-served", "POST /tabs/{id}/close",
	"GET /tables", "GET /tables/{n}", "GET /tables/{n}/invoice", "GET /waiters/{name}/todo", "GET /chef/todo",
	"GET /projections", "POST /projections/{name}/rebuild", "GET /metrics",
}

// TestAPIRoot checks GET / lists every endpoint with what it does, and that
// each one listed is served.
func TestAPIRoot(t *testing.T) {
	base, _ := server(t, "memory", "", "")
	var eps []map[string]string
	mustStatus(t, "GET /", call(t, "GET", base+"/", nil, &eps), 200)
	var got []string
	for _, e := range eps {
		got = append(got, e["method"]+" "+e["path"])
		if e["does"] == "" || e["response"] == "" {
			t.Errorf("GET / lists %s %s without what it does and answers: %v", e["method"], e["path"], e)
		}
	}
	if !reflect.DeepEqual(got, wantEndpoints) {
		t.Errorf("GET / lists\n%q\nwant\n%q", got, wantEndpoints)
	}
	if want := (map[string]string{"method": "POST", "path": "/tabs",
		"does":    "opens a tab at a table (201); 409 if the table has an open tab",
		"request": `{"table_number": 3, "waiter": "Derek"}`, "response": `{"tab_id": "tab-..."}`}); len(eps) < 3 || !reflect.DeepEqual(eps[2], want) {
		t.Errorf("GET / lists POST /tabs as %v, want %v", eps[2], want)
	}
	for _, e := range eps {
		path := strings.NewReplacer("{id}", "tab-nope", "{n}", "1", "{name}", "chef-todo").Replace(e["path"])
		status, body, _, err := do(e["method"], base+path, "")
		if err != nil {
			t.Fatal(err)
		}
		if status == http.StatusMethodNotAllowed || strings.Contains(body, "no endpoint") {
			t.Errorf("%s %s (listed by GET /): %d %s", e["method"], path, status, body)
		}
	}
}

// TestREADMEListsEveryEndpoint keeps the README's table of endpoints
// complete.
func TestREADMEListsEveryEndpoint(t *testing.T) {
	readme, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range wantEndpoints {
		if !bytes.Contains(readme, []byte("| `"+e+"` |")) {
			t.Errorf("README.md has no row | `%s` | in the cafe's table of endpoints", e)
		}
	}
}

// TestTableAfterHalfDoneOpenOrClose checks a table recovers from an open
// or a close that stopped between its two commands: a table taken by a
// tab that was never opened, and a table still held by a closed tab.
func TestTableAfterHalfDoneOpenOrClose(t *testing.T) {
	ctx := context.Background()
	tel, err := newTelemetry(resource.Empty(), nil)
	if err != nil {
		t.Fatal(err)
	}
	log := eventlog.NewMemory()
	defer log.Close()
	app, err := NewApp(backend{log: log, offsets: projection.NewMemory(), docs: newMemDocs()}, slog.New(slog.DiscardHandler), tel)
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		defer cancel()
		if err := app.Shutdown(ctx); err != nil {
			t.Error(err)
		}
	}()
	table := app.tables.Ref(tableID(4))

	// An open that took the table and stopped: the next open opens that
	// tab, and is told it has the table.
	if _, err := entity.Ask(ctx, table, TakeTable{TabID: "tab-ghost", Waiter: "Derek"}); err != nil {
		t.Fatal(err)
	}
	_, err = app.OpenTab(ctx, 4, "Alice")
	if taken, ok := errors.AsType[*TableTakenError](err); !ok || *taken != (TableTakenError{TableNumber: 4, TabID: "tab-ghost"}) {
		t.Fatalf("open at a table taken by a tab not open yet: %v, want table 4 taken by tab-ghost", err)
	}
	if err := app.Order(ctx, "tab-ghost", []int{1}); err != nil {
		t.Fatalf("order on the tab that had the table: %v, want it open", err)
	}

	// A close that closed the tab and stopped before freeing the table:
	// the next open frees it and takes it.
	if err := app.DrinksServed(ctx, "tab-ghost", []int{1}); err != nil {
		t.Fatal(err)
	}
	if _, err := entity.Ask(ctx, app.tabs.Ref("tab-ghost"), CloseTab{AmountPaid: 150}); err != nil {
		t.Fatal(err)
	}
	id, err := app.OpenTab(ctx, 4, "Alice")
	if err != nil {
		t.Fatalf("open at a table held by a closed tab: %v", err)
	}
	got, err := entity.Ask(ctx, table, TakeTable{TabID: "tab-probe", Waiter: "Bob"})
	if want := (Table{TabID: id, Waiter: "Alice"}); err != nil || got != want {
		t.Errorf("table 4 after the open: %+v, %v; want %+v", got, err, want)
	}
}
