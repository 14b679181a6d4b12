package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/eventsourced-go/eventsourced/internal/pgdsn"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/vmihailenco/msgpack/v5"

	"github.com/eventsourced-go/eventsourced/eventlog"
	"github.com/eventsourced-go/eventsourced/internal/natstest"
	"github.com/eventsourced-go/eventsourced/natslog"
	"github.com/eventsourced-go/eventsourced/postgreslog"
	"github.com/eventsourced-go/eventsourced/projection"
	"github.com/eventsourced-go/eventsourced/projection/natsprojection"
	"github.com/eventsourced-go/eventsourced/projection/pgprojection"
)

// build builds esctl into a temporary directory.
func build(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "esctl")
	out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput()
	if err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}

// fixture is a seeded log and its projection stores, and the flags that
// reach them.
type fixture struct {
	bin   string
	flags []string
	env   []string
	log   eventlog.Log
	offs  projection.OffsetStore
	dead  projection.DeadLetters
	ctl   projection.Controls
	// Positions of the seeded events: o1 #1, o1 #2, o2 #1, c1 #1, c1 #2.
	pos [5]uint64
}

var timeRe = regexp.MustCompile(`\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z`)

// esctl runs the binary and returns stdout with times replaced by "T",
// stderr and the exit code.
func (f *fixture) esctl(t *testing.T, args ...string) (string, string, int) {
	t.Helper()
	cmd := exec.Command(f.bin, append(args, f.flags...)...)
	cmd.Env = append(os.Environ(), f.env...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	return timeRe.ReplaceAllString(stdout.String(), "T"), stderr.String(), code
}

// ok runs esctl, wants exit 0 and returns stdout.
func (f *fixture) ok(t *testing.T, args ...string) string {
	t.Helper()
	out, errOut, code := f.esctl(t, args...)
	if code != 0 {
		t.Fatalf("esctl %s: exit %d\nstdout: %s\nstderr: %s", strings.Join(args, " "), code, out, errOut)
	}
	return out
}

func (f *fixture) want(t *testing.T, want string, args ...string) {
	t.Helper()
	if got := f.ok(t, args...); got != want {
		t.Errorf("esctl %s:\ngot:\n%s\nwant:\n%s", strings.Join(args, " "), got, want)
	}
}

// envelope is data protected by binarize/shred, as its envelope starts.
func envelope(subject, keyID string) []byte {
	b := []byte{0x00, 0xC5, 'S', 1, byte(len(subject))}
	b = append(b, subject...)
	b = append(b, byte(len(keyID)))
	b = append(b, keyID...)
	return append(b, make([]byte, 12+1)...) // nonce, empty ciphertext
}

// seed appends the events, commits offsets and puts a dead letter.
func (f *fixture) seed(t *testing.T) {
	ctx := context.Background()
	mp, err := msgpack.Marshal(map[string]any{"qty": 2, "sku": "A-1"})
	if err != nil {
		t.Fatal(err)
	}
	app := func(i int, typ, id string, exp uint64, ev eventlog.Event) {
		p, err := f.log.Append(ctx, typ, id, exp, ev)
		if err != nil {
			t.Fatal(err)
		}
		f.pos[i] = p
	}
	app(0, "Order", "o1", 0, eventlog.Event{Name: "Placed", Data: []byte(`{"total": 12}`), Metadata: map[string]string{"correlation": "c 1"}})
	app(1, "Order", "o1", 1, eventlog.Event{Name: "Shipped", Revision: 2, Data: mp})
	app(2, "Order", "o 2", 0, eventlog.Event{Name: "Placed", Data: []byte{0xde, 0xad}})
	app(3, "Customer", "c1", 0, eventlog.Event{Name: "Registered", Data: envelope("c1", "key-7")})
	app(4, "Customer", "c1", 1, eventlog.Event{Name: "Renamed"})

	commit := func(name string, to uint64) {
		if err := f.offs.Commit(ctx, name, 0, to, func(context.Context) error { return nil }); err != nil {
			t.Fatal(err)
		}
	}
	commit("orders", f.pos[0])
	commit("customers[0/2]", f.pos[3])
	commit("customers[1/2]", f.pos[4])
	err = f.dead.Put(ctx, projection.DeadLetter{Projection: "orders", Record: eventlog.Record{
		EntityType: "Order", EntityID: "o1", Seq: 2, Position: f.pos[1], Name: "Shipped", Revision: 2, Data: mp, Time: time.Now(),
	}, Err: "boom", Attempts: 3, Time: time.Now()})
	if err != nil {
		t.Fatal(err)
	}
}

// check runs every command against the seeded fixture.
func (f *fixture) check(t *testing.T, target []string) {
	p := f.pos
	f.want(t, "Customer\nOrder\n", "types")
	f.want(t, `{"type":"Customer"}`+"\n"+`{"type":"Order"}`+"\n", "types", "--json")
	f.want(t, "\"o 2\"\no1\n", "ids", "Order")
	f.want(t, fmt.Sprintf(`Order/o1 seq=1 pos=%d time=T name=Placed rev=0 data=json:{"total":12} meta.correlation="c 1"
Order/o1 seq=2 pos=%d time=T name=Shipped rev=2 data=msgpack:{"qty":2,"sku":"A-1"}
`, p[0], p[1]), "events", "Order", "o1")
	f.want(t, fmt.Sprintf(`{"type":"Order","id":"o 2","seq":1,"position":%d,"time":"T","name":"Placed","revision":0,"encoding":"hex","data":"dead"}
`, p[2]), "events", "--json", "Order", "o 2")
	f.want(t, fmt.Sprintf(`Customer/c1 seq=1 pos=%d time=T name=Registered rev=0 data=encrypted:subject=c1,key=key-7
Customer/c1 seq=2 pos=%d time=T name=Renamed rev=0 data=empty
`, p[3], p[4]), "events", "Customer", "c1")
	f.want(t, fmt.Sprintf(`{"type":"Customer","id":"c1","seq":2,"position":%d,"time":"T","name":"Renamed","revision":0,"encoding":"empty","data":null}
`, p[4]), "events", "Customer", "c1", "--json", "--from", "2")

	// Lag: orders is 2 events behind on Order; the slices count their
	// own events of Customer only: c1 is in one slice.
	c1 := projection.SliceOf("Customer", "c1", 2)
	lag0, lag1 := "0", "0"
	if c1 == 0 {
		lag0 = "1" // slice 0 is at pos[3], before c1's second event
	}
	out := f.ok(t, "projections", "--type", "Customer")
	want := fmt.Sprintf("NAME            SLICE  OFFSET  LAG  UPDATED\ncustomers[0/2]  0/2    %d      %s    T\ncustomers[1/2]  1/2    %d      %s    T\norders          -      %d      2    T\n", p[3], lag0, p[4], lag1, p[0])
	if strings.Fields(out) == nil || normalizeSpace(out) != normalizeSpace(want) {
		t.Errorf("projections:\ngot:\n%s\nwant:\n%s", out, want)
	}
	f.want(t, fmt.Sprintf(`{"name":"orders","projection":"orders","slice":null,"offset":%d,"lag":2,"updated":"T"}
`, p[0]), "projections", "--json", "--type", "Order", "orders")
	f.want(t, fmt.Sprintf(`{"name":"orders","projection":"orders","slice":null,"offset":%d,"lag":1,"lag_at_least":true,"updated":"T"}
`, p[0]), "projections", "--json", "--all-types", "--lag-limit", "1", "orders")

	// Dead letters.
	f.want(t, fmt.Sprintf(`orders pos=%d attempts=3 time=T error="boom" event=Order/o1 seq=2 name=Shipped rev=2 data=msgpack:{"qty":2,"sku":"A-1"}
`, p[1]), "dead-letters")
	f.want(t, fmt.Sprintf(`{"projection":"orders","position":%d,"attempts":3,"error":"boom","time":"T","event":{"type":"Order","id":"o1","seq":2,"position":%d,"time":"T","name":"Shipped","revision":2,"encoding":"msgpack","data":{"qty":2,"sku":"A-1"}}}
`, p[1], p[1]), "dead-letters", "--json", "orders")
	// Control records: pause, resume, a retry request.
	control := func() projection.Control {
		c, _, err := f.ctl.LoadControl(context.Background(), "orders")
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	f.want(t, "orders: paused (its runners follow within their control interval)\n", "pause", "orders")
	if c := control(); !c.Paused || c.PausedAt.IsZero() {
		t.Errorf("after esctl pause: control %+v, want paused", c)
	}
	f.want(t, `{"projection":"orders","paused":false}`+"\n", "resume", "orders", "--json")
	if c := control(); c.Paused {
		t.Errorf("after esctl resume: control %+v, want not paused", c)
	}
	f.want(t, fmt.Sprintf("orders: retry of the dead letter at position %d requested\n", p[1]), "retry-dead-letter", "orders", fmt.Sprint(p[1]))
	if c := control(); len(c.Retries) != 1 || c.Retries[0] != p[1] {
		t.Errorf("after esctl retry-dead-letter: control %+v, want retries [%d]", c, p[1])
	}
	if _, errOut, code := f.esctl(t, "retry-dead-letter", "orders", "999999"); code != 1 || !strings.Contains(errOut, "not found") {
		t.Errorf("retry of a missing dead letter: exit %d, %q", code, errOut)
	}
	f.want(t, fmt.Sprintf("orders: dropped the dead letter at position %d\n", p[1]), "drop-dead-letter", "orders", fmt.Sprint(p[1]))
	f.want(t, "", "dead-letters", "orders")
	if _, errOut, code := f.esctl(t, "drop-dead-letter", "orders", fmt.Sprint(p[1])); code != 1 || !strings.Contains(errOut, "not found") {
		t.Errorf("drop of a missing dead letter: exit %d, %q", code, errOut)
	}

	// Offsets: skip, set-offset, reset.
	f.want(t, fmt.Sprintf("orders: offset %d -> %d\n", p[0], p[1]), "skip", "orders", "--type", "Order")
	f.want(t, fmt.Sprintf(`{"name":"orders","from":%d,"to":%d}`+"\n", p[1], p[0]), "set-offset", "orders", fmt.Sprint(p[0]), "--json")
	f.want(t, fmt.Sprintf("orders: offset %d -> 0\n", p[0]), "reset", "orders")
	if _, errOut, code := f.esctl(t, "skip", "orders", "--type", "Order", "--count", "9"); code != 1 || !strings.Contains(errOut, "has 3 event(s) after its offset 0, fewer than --count 9") {
		t.Errorf("skip past the end: exit %d, %q", code, errOut)
	}

	// Errors name what was wrong.
	for _, c := range []struct {
		args []string
		code int
		msg  string
	}{
		{[]string{"events", "Order"}, 2, "want 2 argument(s), <type> <id>; got 1"},
		{[]string{"events", "Order", "nobody"}, 1, "esctl events: no entity Order/nobody"},
		{[]string{"pause"}, 2, "want 1 argument(s), <projection>; got 0"},
		{[]string{"set-offset", "orders", "x"}, 2, `position "x" is not a non-negative integer`},
		{[]string{"frobnicate"}, 2, `unknown command "frobnicate"`},
		{[]string{"types", "--nats-url", "nats://x", "--pg-dsn", "postgres://x"}, 2, "choose one backend"},
	} {
		_, errOut, code := f.esctl(t, c.args...)
		if code != c.code || !strings.Contains(errOut, c.msg) {
			t.Errorf("esctl %s: exit %d, stderr %q; want exit %d and %q", strings.Join(c.args, " "), code, errOut, c.code, c.msg)
		}
	}

	// Follow from the end: only events appended after it started.
	f.follow(t)

	// Copy to the target, with a checkpoint; again: nothing to append.
	cp := filepath.Join(t.TempDir(), "copy.checkpoint")
	args := append([]string{"copy", "--checkpoint", cp, "--setup"}, target...)
	f.want(t, "Customer appended=2 present=0 streams=1 events=2 skipped=0 verified=true\nOrder appended=4 present=0 streams=2 events=4 skipped=0 verified=true\n", args...)
	f.want(t, "Customer appended=0 present=0 streams=1 events=2 skipped=0 verified=true\nOrder appended=0 present=0 streams=2 events=4 skipped=0 verified=true\n", args...)
}

func normalizeSpace(s string) string { return strings.Join(strings.Fields(s), " ") }

// follow starts esctl follow, appends an event and waits for its line,
// then interrupts it.
func (f *fixture) follow(t *testing.T) {
	t.Helper()
	cmd := exec.Command(f.bin, append([]string{"follow", "--json", "--type", "Order"}, f.flags...)...)
	cmd.Env = append(os.Environ(), f.env...)
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	stderrPipe, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	// The notice on stderr says the follower has read the head.
	var stderr strings.Builder
	started := make(chan struct{})
	stderrDone := make(chan struct{})
	go func() {
		defer close(stderrDone)
		sc := bufio.NewScanner(stderrPipe)
		for sc.Scan() {
			if stderr.Len() == 0 {
				close(started)
			}
			stderr.WriteString(sc.Text() + "\n")
		}
	}()
	select {
	case <-started:
	case <-time.After(15 * time.Second):
		t.Fatal("follow did not start")
	}
	lines := make(chan string)
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			lines <- sc.Text()
		}
		close(lines)
	}()
	if _, err := f.log.Append(context.Background(), "Order", "o1", 2, eventlog.Event{Name: "Noted", Data: []byte(`"hi"`)}); err != nil {
		t.Fatal(err)
	}
	var got string
	select {
	case got = <-lines:
	case <-time.After(15 * time.Second):
		t.Fatal("follow printed nothing")
	}
	if !strings.Contains(got, `"type":"Order","id":"o1","seq":3,`) || !strings.Contains(got, `"name":"Noted","revision":0,"encoding":"json","data":"hi"}`) {
		t.Errorf("follow printed %s, want Order/o1 seq 3 (the first appended after it started)", got)
	}
	if err := cmd.Process.Signal(os.Interrupt); err != nil {
		t.Fatal(err)
	}
	for range lines {
	}
	<-stderrDone
	if err := cmd.Wait(); err != nil {
		t.Errorf("follow after SIGINT: %v; stderr: %s", err, stderr.String())
	}
}

func TestNATS(t *testing.T) {
	t.Parallel()
	srv := natstest.Server(t)
	js := natstest.Connect(t, srv)
	ctx := context.Background()
	if err := natslog.Setup(ctx, js); err != nil {
		t.Fatal(err)
	}
	log, err := natslog.New(ctx, js)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { log.Close() })
	offs, err := natsprojection.New(ctx, js)
	if err != nil {
		t.Fatal(err)
	}
	dead, err := natsprojection.NewDeadLetters(ctx, js)
	if err != nil {
		t.Fatal(err)
	}
	f := &fixture{bin: build(t), log: log, offs: offs, dead: dead, ctl: offs, env: []string{"NATS_URL=" + srv.ClientURL(), envPostgresDSN + "="}}
	f.seed(t)

	// The target: another stream and prefix on the same server.
	target := []string{"--to-nats-url", srv.ClientURL(), "--to-nats-stream", "copy", "--to-nats-prefix", "copy"}
	f.check(t, target)
}

func TestPostgres(t *testing.T) {
	t.Parallel()
	dsn := pgdsn.Require(t)
	ctx := context.Background()
	pool, err := pgxpool.New(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Close)
	schema := "esctl_" + strings.ToLower(rand.Text()[:10])
	t.Cleanup(func() {
		for _, s := range []string{schema, schema + "_copy"} {
			if _, err := pool.Exec(context.Background(), `DROP SCHEMA IF EXISTS `+pgx.Identifier{s}.Sanitize()+` CASCADE`); err != nil {
				t.Error(err)
			}
		}
	})
	if err := postgreslog.Setup(ctx, pool, postgreslog.WithSchema(schema)); err != nil {
		t.Fatal(err)
	}
	log, err := postgreslog.New(pool, postgreslog.WithSchema(schema))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { log.Close() })
	offTable, deadTable, ctlTable := schema+".offsets", schema+".dead", schema+".controls"
	store, err := pgprojection.New(pool, pgprojection.WithTable(offTable), pgprojection.WithDeadLetterTable(deadTable), pgprojection.WithControlTable(ctlTable))
	if err != nil {
		t.Fatal(err)
	}
	if err := store.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	f := &fixture{bin: build(t), log: log, offs: store, dead: store.DeadLetters(), ctl: store,
		env:   []string{"NATS_URL=", envPostgresDSN + "=" + dsn},
		flags: []string{"--pg-schema", schema, "--pg-offsets-table", offTable, "--pg-dead-letter-table", deadTable, "--pg-control-table", ctlTable}}
	f.seed(t)
	target := []string{"--to-pg-dsn", dsn, "--to-pg-schema", schema + "_copy"}
	f.check(t, target)
}
