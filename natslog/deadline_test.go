package natslog_test

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/eventsourced-go/eventsourced/entity"
	"github.com/eventsourced-go/eventsourced/eventlog"
	"github.com/eventsourced-go/eventsourced/internal/faultproxy"
	"github.com/eventsourced-go/eventsourced/internal/faulttest"
	"github.com/eventsourced-go/eventsourced/internal/freeport"
	"github.com/eventsourced-go/eventsourced/natslog"
	"github.com/eventsourced-go/eventsourced/projection/natsprojection"
	"github.com/eventsourced-go/eventsourced/snapshotstore"
)

// slack is how late after its ctx's deadline a call may return in these
// tests: the time to notice the deadline and hand the error back, on a
// loaded 2-core machine under the race detector.
const slack = 500 * time.Millisecond

// proxied starts a server with the stream and bucket set up, and a proxy in
// front of it, and connects through the proxy with the options the package
// documentation recommends (reconnecting every 100 ms, forever).
func proxied(t *testing.T) (*natslog.EmbeddedServer, *faultproxy.Proxy, *nats.Conn, jetstream.JetStream) {
	t.Helper()
	srv, _ := setup(t)
	p, err := faultproxy.New(fmt.Sprintf("127.0.0.1:%d", srv.Port()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = p.Close() })
	nc, err := nats.Connect("nats://"+p.Addr(),
		nats.MaxReconnects(-1), nats.ReconnectWait(100*time.Millisecond), nats.ReconnectJitter(0, 0),
		nats.ErrorHandler(func(*nats.Conn, *nats.Subscription, error) {}))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	return srv, p, nc, js
}

// restartable is an embedded server, set up, that a test stops and starts
// again on the same port and data, and a connection to it that reconnects
// every 100 ms.
type restartable struct {
	dir  string
	port int
	srv  *natslog.EmbeddedServer
	nc   *nats.Conn
	js   jetstream.JetStream
}

func startRestartable(t *testing.T) *restartable {
	t.Helper()
	// A port below the ephemeral range, so that no outgoing connection
	// takes it while the server is down.
	rs := &restartable{dir: t.TempDir(), port: freeport.Port(t)}
	rs.start(t)
	t.Cleanup(func() { rs.srv.Shutdown() })
	nc, err := rs.srv.Connect(nats.ErrorHandler(func(*nats.Conn, *nats.Subscription, error) {}))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := natslog.Setup(ctx, js); err != nil {
		t.Fatal(err)
	}
	rs.nc, rs.js = nc, js
	return rs
}

// start starts the server on its port and returns once it accepts
// connections.
func (rs *restartable) start(t *testing.T) {
	t.Helper()
	srv, err := natslog.StartEmbedded(rs.dir, natslog.WithServerPort(rs.port))
	if err != nil {
		t.Fatal(err)
	}
	rs.srv = srv
}

// stop shuts the server down.
func (rs *restartable) stop() { rs.srv.Shutdown() }

// waitConnected waits until nc is connected, for at most 10 s.
func waitConnected(t *testing.T, nc *nats.Conn) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !nc.IsConnected() {
		if time.Now().After(deadline) {
			t.Fatalf("not reconnected: %v", nc.Status())
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// within runs f and fails t if it takes longer than d.
func within[T any](t *testing.T, what string, d time.Duration, f func() T) T {
	t.Helper()
	start := time.Now()
	v := f()
	if took := time.Since(start); took > d {
		t.Errorf("%s took %v, want at most %v", what, took.Round(time.Millisecond), d)
	}
	return v
}

// Calls in flight when the connection drops fail at once with an error
// matching ErrUnavailable and eventlog.ErrUnavailable, not at their
// deadline; after the client reconnects, the Log works again.
func TestDroppedConnectionFailsInFlightCalls(t *testing.T) {
	_, p, nc, js := proxied(t)
	l := newLog(t, js)
	snaps, err := natslog.NewSnapshotStore(context.Background(), js)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { snaps.Close() })
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := l.Append(ctx, "Acct", "a", 0, eventlog.Event{Name: "Opened"}); err != nil {
		t.Fatal(err)
	}

	type result struct {
		what string
		err  error
	}
	calls := map[string]func() error{
		"append": func() error {
			_, err := l.Append(ctx, "Acct", "a", 1, eventlog.Event{Name: "Deposited"})
			return err
		},
		"first append": func() error {
			_, err := l.Append(ctx, "Acct", "new", 0, eventlog.Event{Name: "Opened"})
			return err
		},
		"read entity": func() error {
			for _, err := range l.ReadEntity(ctx, "Acct", "other", 1) {
				if err != nil {
					return err
				}
			}
			return nil
		},
		"last seq": func() error {
			_, err := l.LastSeq(ctx, "Acct", "a")
			return err
		},
		"read all": func() error {
			for _, err := range l.ReadAll(ctx, 0, "Acct", "Other") {
				if err != nil {
					return err
				}
			}
			return nil
		},
		"entity ids": func() error {
			for _, err := range l.EntityIDs(ctx, "Acct") {
				if err != nil {
					return err
				}
			}
			return nil
		},
		"load snapshot": func() error {
			_, _, err := snaps.Load(ctx, "Acct", "a")
			return err
		},
	}
	p.Stall()
	results := make(chan result, len(calls))
	for what, f := range calls {
		go func() { results <- result{what, f()} }()
	}
	time.Sleep(200 * time.Millisecond) // the calls are in flight, held by the proxy
	select {
	case r := <-results:
		t.Fatalf("%s returned while the server could not answer: %v", r.what, r.err)
	default:
	}
	dropped := time.Now()
	p.Drop()
	p.Resume()
	for range calls {
		r := <-results
		took := time.Since(dropped)
		if !errors.Is(r.err, natslog.ErrUnavailable) || !errors.Is(r.err, eventlog.ErrUnavailable) {
			t.Errorf("%s after the connection dropped: %v, want ErrUnavailable", r.what, r.err)
		}
		if took > time.Second {
			t.Errorf("%s failed %v after the connection dropped, want well under a second", r.what, took.Round(time.Millisecond))
		}
	}
	waitConnected(t, nc)
	// The append whose outcome was unknown never reached the server: the
	// proxy held it.
	if seq, err := l.LastSeq(ctx, "Acct", "a"); err != nil || seq != 1 {
		t.Fatalf("LastSeq after reconnecting: %d, %v; want 1", seq, err)
	}
	if _, err := l.Append(ctx, "Acct", "a", 1, eventlog.Event{Name: "Deposited"}); err != nil {
		t.Fatalf("append after reconnecting: %v", err)
	}
}

// While the connection is down, calls fail at once, without sending
// anything, with an error matching ErrUnavailable; once it is back they
// work.
func TestCallsFailFastWhileDisconnected(t *testing.T) {
	rs := startRestartable(t)
	nc, js := rs.nc, rs.js
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	l := newLog(t, js)
	snaps, err := natslog.NewSnapshotStore(ctx, js)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { snaps.Close() })
	if _, err := l.Append(ctx, "Acct", "a", 0, eventlog.Event{Name: "Opened"}); err != nil {
		t.Fatal(err)
	}
	rs.stop()
	deadline := time.Now().Add(10 * time.Second)
	for nc.IsConnected() && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	time.Sleep(50 * time.Millisecond) // the Log hears of it
	for what, f := range map[string]func() error{
		"append": func() error {
			_, err := l.Append(ctx, "Acct", "a", 1, eventlog.Event{Name: "Deposited"})
			return err
		},
		"last seq": func() error {
			_, err := l.LastSeq(ctx, "Acct", "a")
			return err
		},
		"save snapshot": func() error {
			return snaps.Save(ctx, snapshotOf("a", 1), 1)
		},
		"read all": func() error {
			for _, err := range l.ReadAll(ctx, 0) {
				if err != nil {
					return err
				}
			}
			return nil
		},
	} {
		err := within(t, what+" while disconnected", 100*time.Millisecond, f)
		if !errors.Is(err, natslog.ErrUnavailable) || !errors.Is(err, eventlog.ErrUnavailable) {
			t.Errorf("%s while disconnected: %v, want ErrUnavailable", what, err)
		}
	}
	rs.start(t)
	waitConnected(t, nc)
	// JetStream may take a moment to answer after the server starts: the
	// Log retries while nothing answers, bounded by ctx.
	if _, err := l.Append(ctx, "Acct", "a", 1, eventlog.Event{Name: "Deposited"}); err != nil {
		t.Fatalf("append after the restart: %v", err)
	}
	if err := snaps.Save(ctx, snapshotOf("a", 2), 1); err != nil {
		t.Fatalf("save after the restart: %v", err)
	}
}

// entitySystem returns a System on l and snaps, with the ledger kind
// registered with opts, closed when the test ends.
func entitySystem(t *testing.T, l *natslog.Log, snaps *natslog.SnapshotStore, opts ...entity.KindOption) *entity.Kind[faulttest.Ledger, faulttest.LedgerEvent] {
	t.Helper()
	sysOpts := []entity.Option{}
	if snaps != nil {
		sysOpts = append(sysOpts, entity.WithSnapshotStore(snaps))
	}
	sys, err := entity.NewSystem(l, sysOpts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sys.Close() })
	k, err := entity.Register(sys, faulttest.Def(), opts...)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// An entity whose append is in flight when the connection drops answers
// its caller in well under a second with an error whose outcome is unknown,
// recovers from the log, and takes the next command once the client has
// reconnected. The store timeout is long on purpose: it plays no part.
func TestEntityAppendOnDroppedConnection(t *testing.T) {
	_, p, nc, js := proxied(t)
	l := newLog(t, js)
	k := entitySystem(t, l, nil, entity.WithStoreTimeout(time.Minute))
	ref := k.Ref("drop")
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if n, err := entity.Ask(ctx, ref, faulttest.Record{Cmd: "one"}); err != nil || n != 1 {
		t.Fatalf("first command: %d, %v", n, err)
	}
	p.Stall()
	done := make(chan error, 1)
	go func() {
		_, err := entity.Ask(ctx, ref, faulttest.Record{Cmd: "two"})
		done <- err
	}()
	time.Sleep(200 * time.Millisecond)
	dropped := time.Now()
	p.Drop()
	p.Resume()
	err := <-done
	if took := time.Since(dropped); took > time.Second {
		t.Errorf("the command failed %v after the connection dropped, want well under a second", took.Round(time.Millisecond))
	}
	if !errors.Is(err, entity.ErrOutcomeUnknown) || !errors.Is(err, natslog.ErrUnavailable) {
		t.Fatalf("command in flight on the dropped connection: %v, want ErrOutcomeUnknown and ErrUnavailable", err)
	}
	waitConnected(t, nc)
	if n, err := entity.Ask(ctx, ref, faulttest.Record{Cmd: "three"}); err != nil || n != 2 {
		t.Fatalf("command after reconnecting: %d, %v; want 2 (the dropped command never reached the server)", n, err)
	}
	faulttest.Verify(t, l, map[string]string{"one": "drop", "three": "drop"})
}

// A server that stops answering without dropping the connection (here a
// proxy that stops forwarding) holds no caller past its deadline: not one
// whose entity is live, nor one whose entity must recover, nor one queued
// behind them, although the store timeout is long. Once the server answers
// again, every entity works and every acknowledged command is stored
// exactly once.
func TestStalledServerAsksReturnByDeadline(t *testing.T) {
	if testing.Short() {
		t.Skip("stalls a server under load")
	}
	_, p, _, js := proxied(t)
	l := newLog(t, js)
	snaps, err := natslog.NewSnapshotStore(context.Background(), js)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { snaps.Close() })
	k := entitySystem(t, l, snaps, entity.WithStoreTimeout(30*time.Second), entity.WithSnapshotEvery(10))
	run := faulttest.Load{Kind: k, Entities: 400, Callers: 64, Deadline: 1500 * time.Millisecond, Pause: 20 * time.Millisecond, Slack: slack}.Start()
	if !run.WaitAcked(400, 30*time.Second) {
		run.Stop()
		t.Fatalf("only %d commands acknowledged before the stall", run.Acked())
	}
	stalled := run.Now()
	p.Stall()
	time.Sleep(4 * time.Second)
	p.Resume()
	resumed := run.Now()
	time.Sleep(3 * time.Second)
	run.Stop()
	faulttest.CheckLate(t, run)
	during := run.Failures(stalled, resumed)
	if len(during) == 0 {
		t.Errorf("no command failed while the server did not answer")
	}
	faulttest.CheckFailures(t, "stalled", during, context.DeadlineExceeded)
	first, ok := run.FirstSuccessAfter(resumed)
	if !ok {
		t.Fatalf("no command succeeded after the server answered again")
	}
	t.Logf("%d acknowledged; %d failed while stalled; first success %v after the server answered again",
		run.Acked(), len(during), first.Round(time.Millisecond))
	faulttest.Verify(t, l, run.AckedCommands())
}

// TestRestartTimeToFirstSuccess restarts the server under load (1,000
// entities, 128 callers, a store timeout of 30 s) and measures how long
// after the server accepts connections again the commands succeed: within
// 2 s, whatever the store timeout. The client reconnects every 100 ms.
// Every acknowledged command is stored exactly once.
func TestRestartTimeToFirstSuccess(t *testing.T) {
	if testing.Short() {
		t.Skip("restarts a server under load")
	}
	rs := startRestartable(t)
	l := newLog(t, rs.js)
	k := entitySystem(t, l, nil, entity.WithStoreTimeout(30*time.Second))
	// The callers' deadlines are as long as the store timeout: only the
	// Log failing the calls lost with the connection brings them back
	// quickly.
	run := faulttest.Load{Kind: k, Entities: 1000, Callers: 128, Deadline: 30 * time.Second, Pause: 20 * time.Millisecond, Slack: slack}.Start()
	if !run.WaitAcked(3000, 60*time.Second) {
		run.Stop()
		t.Fatalf("only %d commands acknowledged before the restart", run.Acked())
	}
	time.Sleep(time.Second) // the rate before the outage is measured over this second
	before := run.Now()
	rs.stop()
	time.Sleep(time.Second)
	rs.start(t)
	up := run.Now() // StartEmbedded returns once the server accepts connections
	time.Sleep(4 * time.Second)
	run.Stop()
	faulttest.CheckBackQuickly(t, run, before, up, 2*time.Second)
	faulttest.CheckLate(t, run)
	// A publish made as the connection dropped, before the Log heard of
	// it, waits in the client's reconnect buffer and may land after the
	// entity, told its outcome was unknown, recovered: the entity's next
	// append then conflicts. Nothing is lost or written twice (Verify).
	faulttest.CheckFailures(t, "restart", run.Failures(before, up+4*time.Second), natslog.ErrUnavailable, eventlog.ErrConflict)
	faulttest.Verify(t, l, run.AckedCommands())
}

// snapshotOf returns a small snapshot of Acct/id at seq.
func snapshotOf(id string, seq uint64) snapshotstore.Snapshot {
	return snapshotstore.Snapshot{EntityType: "Acct", EntityID: id, Seq: seq, Data: []byte(`{"n":1}`)}
}

// Against a server that stops answering without dropping the connection
// (a proxy that forwards nothing), every call returns by its ctx's
// deadline, Setup and the constructors included, with an error matching
// the ctx's.
func TestStalledServerCallsReturnByDeadline(t *testing.T) {
	_, p, _, js := proxied(t)
	l := newLog(t, js)
	snaps, err := natslog.NewSnapshotStore(context.Background(), js)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { snaps.Close() })
	offsets, err := natsprojection.New(context.Background(), js)
	if err != nil {
		t.Fatal(err)
	}
	drain := func(seq func(func(eventlog.Record, error) bool)) error {
		for _, err := range seq {
			if err != nil {
				return err
			}
		}
		return nil
	}
	calls := map[string]func(ctx context.Context) error{
		"Setup": func(ctx context.Context) error { return natslog.Setup(ctx, js) },
		"New": func(ctx context.Context) error {
			l, err := natslog.New(ctx, js)
			if err == nil {
				l.Close()
			}
			return err
		},
		"NewSnapshotStore": func(ctx context.Context) error {
			s, err := natslog.NewSnapshotStore(ctx, js)
			if err == nil {
				s.Close()
			}
			return err
		},
		"natsprojection.New": func(ctx context.Context) error { _, err := natsprojection.New(ctx, js); return err },
		"Append": func(ctx context.Context) error {
			_, err := l.Append(ctx, "Acct", "a", 0, eventlog.Event{Name: "Opened"})
			return err
		},
		"LastSeq":    func(ctx context.Context) error { _, err := l.LastSeq(ctx, "Acct", "a"); return err },
		"ReadEntity": func(ctx context.Context) error { return drain(l.ReadEntity(ctx, "Acct", "a", 1)) },
		"ReadType":   func(ctx context.Context) error { return drain(l.ReadType(ctx, "Acct", 0)) },
		"Subscribe":  func(ctx context.Context) error { return drain(l.Subscribe(ctx, "Acct", 0)) },
		"ReadAll":    func(ctx context.Context) error { return drain(l.ReadAll(ctx, 0)) },
		"ReadAll of types": func(ctx context.Context) error {
			return drain(l.ReadAll(ctx, 0, "Acct", "Other"))
		},
		"SubscribeAll": func(ctx context.Context) error { return drain(l.SubscribeAll(ctx, 0, "Acct", "Other")) },
		"EntityIDs": func(ctx context.Context) error {
			for _, err := range l.EntityIDs(ctx, "Acct") {
				if err != nil {
					return err
				}
			}
			return nil
		},
		"DeleteTo": func(ctx context.Context) error { return l.DeleteTo(ctx, "Acct", "a", 1) },
		"DeleteStream": func(ctx context.Context) error {
			_, err := l.DeleteStream(ctx, "Acct", "a", false)
			return err
		},
		"Snapshot Save": func(ctx context.Context) error { return snaps.Save(ctx, snapshotOf("a", 1), 1) },
		"Snapshot Load": func(ctx context.Context) error { _, _, err := snaps.Load(ctx, "Acct", "a"); return err },
		"offsets Load":  func(ctx context.Context) error { _, err := offsets.Load(ctx, "p"); return err },
		"offsets Commit": func(ctx context.Context) error {
			return offsets.Commit(ctx, "p", 0, 1, func(context.Context) error { return nil })
		},
	}
	p.Stall()
	faulttest.CallsReturnByDeadline(t, "against a stalled server", time.Second, slack, calls)
}
