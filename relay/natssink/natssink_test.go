package natssink_test

import (
	"context"
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/eventsourced-go/eventsourced/eventlog"
	"github.com/eventsourced-go/eventsourced/internal/freeport"
	"github.com/eventsourced-go/eventsourced/internal/natstest"
	"github.com/eventsourced-go/eventsourced/natslog"
	"github.com/eventsourced-go/eventsourced/projection"
	"github.com/eventsourced-go/eventsourced/relay"
	"github.com/eventsourced-go/eventsourced/relay/natssink"
)

const stream = "PUBLIC"

// connect connects to srv with reconnects that never give up and no
// reconnect buffer, and returns a JetStream context whose async acks time
// out.
func connect(t *testing.T, srv *natslog.EmbeddedServer, opts ...nats.Option) jetstream.JetStream {
	t.Helper()
	opts = append([]nats.Option{nats.MaxReconnects(-1), nats.ReconnectWait(50 * time.Millisecond), nats.ReconnectBufSize(-1)}, opts...)
	nc, err := nats.Connect(srv.ClientURL(), opts...)
	if err != nil {
		t.Fatalf("connect: %v", err)
	}
	t.Cleanup(nc.Close)
	js, err := jetstream.New(nc, jetstream.WithPublishAsyncMaxPending(4096), jetstream.WithPublishAsyncTimeout(5*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	return js
}

func setup(t *testing.T, js jetstream.JetStream, opts ...natssink.SetupOption) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := natssink.Setup(ctx, js, stream, []string{"public.>"}, opts...); err != nil {
		t.Fatal(err)
	}
}

// publicMap is the public schema of the tests: Secret events stay
// private, the others go to public.<type>.<event> with the data prefixed.
func publicMap(rec eventlog.Record) (relay.Message, bool, error) {
	if rec.Name == "Secret" {
		return relay.Message{}, false, nil
	}
	return relay.Message{
		Subject: "public." + rec.EntityType + "." + rec.Name,
		Key:     rec.EntityID,
		Data:    append([]byte("v1:"), rec.Data...),
		Headers: map[string]string{"Entity": rec.EntityID, "Seq": strconv.FormatUint(rec.Seq, 10)},
	}, true, nil
}

// appendEvents appends n events to each of the entities, round after
// round, every third one a Secret; it returns the last Position and how
// many events are not Secret.
func appendEvents(t *testing.T, log eventlog.Log, typ string, entities, n int, round0 int) (last uint64, public int) {
	t.Helper()
	ctx := context.Background()
	for r := round0; r < round0+n; r++ {
		for e := range entities {
			name := "Changed"
			if r%3 == 2 {
				name = "Secret"
			} else {
				public++
			}
			pos, err := log.Append(ctx, typ, fmt.Sprintf("e%d", e), uint64(r), eventlog.Event{Name: name, Data: fmt.Appendf(nil, "%d-%d", e, r+1)})
			if err != nil {
				t.Fatal(err)
			}
			last = pos
		}
	}
	return last, public
}

// stored reads every message of the stream and checks that each
// entity's messages are there once, in Seq order, mapped; it returns how
// many there are.
func stored(t *testing.T, js jetstream.JetStream) int {
	t.Helper()
	distinct, total := storedDup(t, js, false)
	if distinct != total {
		t.Errorf("stream holds %d messages, %d distinct ids", total, distinct)
	}
	return distinct
}

// storedDup is stored that tolerates duplicates if allowDup; it returns
// the distinct ids and the messages.
func storedDup(t *testing.T, js jetstream.JetStream, allowDup bool) (distinct, total int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	s, err := js.Stream(ctx, stream)
	if err != nil {
		t.Fatal(err)
	}
	info, err := s.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	ids := map[string]bool{}
	lastSeq := map[string]int{}
	for seq := uint64(1); seq <= info.State.LastSeq; seq++ {
		m, err := s.GetMsg(ctx, seq)
		if err != nil {
			t.Fatalf("message %d: %v", seq, err)
		}
		id := m.Header.Get(jetstream.MsgIDHeader)
		if ids[id] {
			if !allowDup {
				t.Errorf("message %d: id %s stored twice", seq, id)
			}
			continue // a copy: the order is that of first appearances
		}
		ids[id] = true
		ent := m.Header.Get("Entity")
		n, _ := strconv.Atoi(m.Header.Get("Seq"))
		if n <= lastSeq[ent] {
			t.Errorf("message %d: %s seq %d after seq %d: out of order", seq, ent, n, lastSeq[ent])
		}
		lastSeq[ent] = n
		if want := fmt.Sprintf("v1:%s-%d", ent[1:], n); string(m.Data) != want {
			t.Errorf("message %d: data %q, want %q", seq, m.Data, want)
		}
		if want := "public.Order.Changed"; m.Subject != want {
			t.Errorf("message %d: subject %q, want %q", seq, m.Subject, want)
		}
	}
	return len(ids), int(info.State.Msgs)
}

// restartable is an embedded server that can be shut down and started
// again on its port (one handed out by freeport, which no listen(:0) of
// another test takes meanwhile) with its data.
type restartable struct {
	*natslog.EmbeddedServer
	dir  string
	port int
}

func startRestartable(t *testing.T) *restartable {
	t.Helper()
	srv := &restartable{dir: t.TempDir(), port: freeport.Port(t)}
	srv.restart(t)
	return srv
}

// restart starts the server; it must be shut down.
func (s *restartable) restart(t *testing.T) {
	t.Helper()
	srv, err := natslog.StartEmbedded(s.dir, natslog.WithServerPort(s.port))
	if err != nil {
		t.Fatal(err)
	}
	s.EmbeddedServer = srv
	t.Cleanup(srv.Shutdown)
}

func newRelay(t *testing.T, log eventlog.Log, offsets projection.OffsetStore, sink relay.Sink, opts ...relay.Option) *relay.Relay {
	t.Helper()
	opts = append([]relay.Option{relay.WithMap(publicMap), relay.WithRetry(20*time.Millisecond, 200*time.Millisecond), relay.WithBatchSize(16)}, opts...)
	r, err := relay.New(log, []string{"Order"}, "public-orders", offsets, sink, opts...)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func waitFor(t *testing.T, r *relay.Relay, pos uint64) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := r.Projection().WaitFor(ctx, pos); err != nil {
		t.Fatalf("waiting for position %d: %v (status %+v)", pos, err, r.Status())
	}
}

// Rule: every selected event is published once, in order per entity, mapped.
func TestPublishesSelectedEventsOnce(t *testing.T) {
	for _, exclusive := range []bool{false, true} {
		t.Run(fmt.Sprintf("exclusive=%v", exclusive), func(t *testing.T) {
			js := connect(t, natstest.Server(t))
			setup(t, js)
			var opts []natssink.Option
			if exclusive {
				opts = append(opts, natssink.WithExclusive())
			}
			sink, err := natssink.New(context.Background(), js, stream, opts...)
			if err != nil {
				t.Fatal(err)
			}
			log := eventlog.NewMemory()
			log.Append(context.Background(), "Other", "x", 0, eventlog.Event{Name: "Changed"})
			last, public := appendEvents(t, log, "Order", 7, 30, 0)
			r := newRelay(t, log, projection.NewMemory(), sink)
			if err := r.Start(context.Background()); err != nil {
				t.Fatal(err)
			}
			defer r.Stop(context.Background())
			waitFor(t, r, last)
			if got := stored(t, js); got != public {
				t.Errorf("stream holds %d messages, want %d", got, public)
			}
			st := r.Status()
			if st.Published != uint64(public) || st.Filtered != uint64(7*30-public) || st.PublishErrors != 0 || st.Lag != 0 {
				t.Errorf("status: published %d filtered %d errors %d lag %d; want %d, %d, 0, 0",
					st.Published, st.Filtered, st.PublishErrors, st.Lag, public, 7*30-public)
			}
		})
	}
}

// Rule: every message is stored with exactly its own headers, its ID in
// Nats-Msg-Id and its Position in Relay-Position, whatever the number of
// its headers, in batches larger than the window.
func TestPublishesHeaders(t *testing.T) {
	for _, exclusive := range []bool{false, true} {
		t.Run(fmt.Sprintf("exclusive=%v", exclusive), func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			js := connect(t, natstest.Server(t))
			setup(t, js)
			opts := []natssink.Option{natssink.WithWindow(3)}
			if exclusive {
				opts = append(opts, natssink.WithExclusive())
			}
			sink, err := natssink.New(ctx, js, stream, opts...)
			if err != nil {
				t.Fatal(err)
			}
			var msgs []relay.Message
			for i := range 10 {
				h := map[string]string{}
				for k := range i {
					h[fmt.Sprintf("H-%d", k)] = fmt.Sprintf("%d-%d", i, k)
				}
				pos := uint64(1000*i + 7)
				if i == 9 {
					pos = math.MaxUint64
				}
				msgs = append(msgs, relay.Message{Subject: "public.T.E", ID: fmt.Sprintf("id-%d", i), Data: []byte{byte(i)}, Headers: h, Position: pos})
			}
			if err := sink.Publish(ctx, msgs[:4]); err != nil {
				t.Fatal(err)
			}
			if err := sink.Publish(ctx, msgs[4:]); err != nil {
				t.Fatal(err)
			}
			s, err := js.Stream(ctx, stream)
			if err != nil {
				t.Fatal(err)
			}
			for i, m := range msgs {
				got, err := s.GetMsg(ctx, uint64(i+1))
				if err != nil {
					t.Fatalf("message %d: %v", i+1, err)
				}
				want := nats.Header{jetstream.MsgIDHeader: {m.ID}, natssink.HeaderPosition: {strconv.FormatUint(m.Position, 10)}}
				for k, v := range m.Headers {
					want[k] = []string{v}
				}
				if exclusive {
					want[jetstream.ExpectedLastSeqHeader] = []string{strconv.Itoa(i)}
				}
				if fmt.Sprint(got.Header) != fmt.Sprint(want) || got.Subject != m.Subject || string(got.Data) != string(m.Data) {
					t.Errorf("message %d: %s %q %v, want %s %q %v", i+1, got.Subject, got.Data, got.Header, m.Subject, m.Data, want)
				}
			}
		})
	}
}

// crashSink publishes through its sink, then, once, reports a failure and
// cancels the relay's context: a crash after the publish and before the
// offset commit.
type crashSink struct {
	relay.Sink
	crashAt uint64 // crash after the batch that holds this position
	crash   func()
	crashed atomic.Bool
}

// LastPublished passes the sink's on, as a wrapper must for the relay to
// see the capability.
func (s *crashSink) LastPublished(ctx context.Context) (uint64, bool, error) {
	return s.Sink.(relay.Resumer).LastPublished(ctx)
}

func (s *crashSink) Publish(ctx context.Context, msgs []relay.Message) error {
	if err := s.Sink.Publish(ctx, msgs); err != nil {
		return err
	}
	if msgs[len(msgs)-1].Position >= s.crashAt && s.crashed.CompareAndSwap(false, true) {
		s.crash()
		return errors.New("crashed after publishing")
	}
	return nil
}

// Rule: a relay that crashes after publishing and before its offset
// commit publishes nothing twice into the stream when it restarts: within
// the duplicate window by the message ids, and beyond it, with an
// exclusive sink, by resuming after the stream's last message.
func TestCrashBeforeCommitPublishesOnce(t *testing.T) {
	for _, tc := range []struct {
		name      string
		exclusive bool
		pause     time.Duration // between the crash and the restart
	}{
		{"dedupe window", false, 0},
		{"exclusive beyond the duplicate window", true, 1500 * time.Millisecond},
		// The control: without WithExclusive, beyond the window, the
		// batches published before each crash are stored twice. It shows
		// that the case above does go beyond the window.
		{"not exclusive beyond the duplicate window", false, 1500 * time.Millisecond},
	} {
		t.Run(tc.name, func(t *testing.T) {
			js := connect(t, natstest.Server(t))
			setup(t, js, natssink.WithDuplicateWindow(time.Second))
			var opts []natssink.Option
			if tc.exclusive {
				opts = append(opts, natssink.WithExclusive())
			}
			log := eventlog.NewMemory()
			last, public := appendEvents(t, log, "Order", 5, 30, 0)
			offsets := projection.NewMemory()
			for run := range 3 {
				sink, err := natssink.New(context.Background(), js, stream, opts...)
				if err != nil {
					t.Fatal(err)
				}
				ctx, cancel := context.WithCancel(context.Background())
				cs := &crashSink{Sink: sink, crashAt: last / 3 * uint64(run+1), crash: cancel}
				if run == 2 {
					cs.crashAt = last + 1 // the last run does not crash
				}
				r := newRelay(t, log, offsets, cs)
				if err := r.Start(ctx); err != nil {
					t.Fatal(err)
				}
				if run < 2 {
					if err := r.Wait(context.Background()); err != nil {
						t.Fatalf("run %d: %v", run, err)
					}
					if !cs.crashed.Load() {
						t.Fatalf("run %d ended without crashing", run)
					}
					off, _ := offsets.Load(context.Background(), r.Name())
					if off >= cs.crashAt {
						t.Fatalf("run %d: offset %d committed past the crash at %d", run, off, cs.crashAt)
					}
					time.Sleep(tc.pause)
					continue
				}
				waitFor(t, r, last)
				if tc.exclusive && r.Status().ResumedFrom == 0 {
					off, _ := offsets.Load(context.Background(), r.Name())
					t.Errorf("the exclusive sink's relay did not resume from the stream (offset %d, status %+v)", off, r.Status())
				}
				r.Stop(context.Background())
				cancel()
			}
			if !tc.exclusive && tc.pause > 0 {
				distinct, total := storedDup(t, js, true)
				if distinct != public || total <= public {
					t.Errorf("stream holds %d messages, %d distinct; want %d distinct and copies of the batches before the crashes", total, distinct, public)
				}
				return
			}
			if got := stored(t, js); got != public {
				t.Errorf("stream holds %d messages, want %d", got, public)
			}
		})
	}
}

// Rule: an exclusive sink refuses a stream that holds messages that are
// not its own, naming the message, rather than resume after it.
func TestExclusiveRefusesForeignMessages(t *testing.T) {
	js := connect(t, natstest.Server(t))
	setup(t, js)
	ctx := context.Background()
	if _, err := js.Publish(ctx, "public.Order.Changed", []byte("not from a relay")); err != nil {
		t.Fatal(err)
	}
	sink, err := natssink.New(ctx, js, stream, natssink.WithExclusive())
	if err != nil {
		t.Fatal(err)
	}
	_, _, err = sink.LastPublished(ctx)
	if err == nil || !strings.Contains(err.Error(), "message 1 on public.Order.Changed has no Relay-Position header") {
		t.Fatalf("LastPublished: %v, want an error naming message 1 and the missing header", err)
	}
	err = sink.Publish(ctx, []relay.Message{{Subject: "public.Order.Changed", ID: "a", Position: 1}})
	if err == nil || !strings.Contains(err.Error(), "not this sink's alone") {
		t.Fatalf("Publish: %v, want the same error", err)
	}
}

// Rule: while the bus is unreachable the relay retries with backoff and
// reports it (failed attempts growing, lag), skips nothing, and delivers
// everything exactly once when the bus is back.
func TestUnreachableBus(t *testing.T) {
	srv := startRestartable(t)
	js := connect(t, srv.EmbeddedServer)
	setup(t, js)
	sink, err := natssink.New(context.Background(), js, stream, natssink.WithAckTimeout(300*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	log := eventlog.NewMemory()
	last, public := appendEvents(t, log, "Order", 4, 6, 0)
	r := newRelay(t, log, projection.NewMemory(), sink, relay.WithRetry(20*time.Millisecond, 100*time.Millisecond))
	if err := r.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	defer r.Stop(context.Background())
	waitFor(t, r, last)

	published := public
	srv.Shutdown()
	last, more := appendEvents(t, log, "Order", 4, 12, 6)
	public += more
	var st relay.Status
	deadline := time.Now().Add(20 * time.Second)
	for {
		st = r.Status()
		if st.PublishFailures >= 3 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no failed publishes reported while the server is down: %+v", st)
		}
		time.Sleep(20 * time.Millisecond)
	}
	if st.Lag == 0 || st.LastPublishError == nil || st.Retries < st.PublishFailures || st.State != projection.StateRunning {
		t.Errorf("status while the server is down: lag %d, last publish error %v, retries %d, state %v; want lag > 0, an error, retries >= %d, running",
			st.Lag, st.LastPublishError, st.Retries, st.State, st.PublishFailures)
	}
	st2 := r.Status()
	for deadline := time.Now().Add(10 * time.Second); st2.PublishFailures <= st.PublishFailures && time.Now().Before(deadline); {
		time.Sleep(50 * time.Millisecond)
		st2 = r.Status()
	}
	if st2.PublishFailures <= st.PublishFailures || st2.SkippedTotal != 0 || st2.Offset != st.Offset {
		t.Errorf("status later: failures %d (were %d), skipped %d, offset %d (was %d); want more failures, none skipped, the offset unmoved",
			st2.PublishFailures, st.PublishFailures, st2.SkippedTotal, st2.Offset, st.Offset)
	}

	// Stop returns promptly while a publish waits for the bus, and the
	// batch in hand is published again after the next Start.
	t0 := time.Now()
	if err := r.Stop(context.Background()); err != nil || time.Since(t0) > 2*time.Second {
		t.Errorf("Stop during the outage: %v after %v", err, time.Since(t0))
	}
	if err := r.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	srv.restart(t)
	waitFor(t, r, last)
	if got := stored(t, js); got != public {
		t.Errorf("stream holds %d messages, want %d", got, public)
	}
	if st := r.Status(); st.PublishFailures != 0 || st.SkippedTotal != 0 || st.Published != uint64(public-published) {
		t.Errorf("status after recovery: failures %d, skipped %d, published %d since the restart; want 0, 0, %d", st.PublishFailures, st.SkippedTotal, st.Published, public-published)
	}
}

// Rule: a batch that fails while the connection is down leaves nothing
// behind to be sent when it is back, where it would land after the
// batch's next publish and put an entity's messages out of order (CI,
// stop 23: e0's Seq 10 stored before its Seq 7).
func TestFailedBatchIsNotSentLater(t *testing.T) {
	srv := startRestartable(t)
	reconnected := make(chan struct{}, 1)
	js := connect(t, srv.EmbeddedServer, nats.ReconnectHandler(func(*nats.Conn) { reconnected <- struct{}{} }))
	setup(t, js)
	sink, err := natssink.New(context.Background(), js, stream, natssink.WithAckTimeout(300*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	msgs := func(from, to uint64) []relay.Message {
		var ms []relay.Message
		for seq := from; seq <= to; seq++ {
			ms = append(ms, relay.Message{Subject: "public.Order.Changed", ID: fmt.Sprintf("Order/e0/%d", seq), Position: seq,
				Data: fmt.Appendf(nil, "v1:0-%d", seq), Headers: map[string]string{"Entity": "e0", "Seq": strconv.FormatUint(seq, 10)}})
		}
		return ms
	}
	ctx := context.Background()
	if err := sink.Publish(ctx, msgs(1, 4)); err != nil {
		t.Fatal(err)
	}
	srv.Shutdown()
	for deadline := time.Now().Add(10 * time.Second); js.Conn().Status() == nats.CONNECTED; time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("the client did not notice the server's shutdown in 10s")
		}
	}
	err = sink.Publish(ctx, msgs(5, 12))
	if err == nil || !strings.Contains(err.Error(), "public.Order.Changed (id Order/e0/5): the connection to NATS is down") {
		t.Errorf("Publish while the server is down: %v, want an error naming message Order/e0/5 and the connection", err)
	}
	srv.restart(t)
	select {
	case <-reconnected:
	case <-time.After(10 * time.Second):
		t.Fatal("the client did not reconnect in 10s")
	}
	if err := js.Conn().Flush(); err != nil {
		t.Fatal(err)
	}
	if got := stored(t, js); got != 4 {
		t.Fatalf("after the reconnect the stream holds %d messages, want the 4 acknowledged before the outage", got)
	}
	if err := sink.Publish(ctx, msgs(5, 12)); err != nil {
		t.Fatal(err)
	}
	if got := stored(t, js); got != 12 {
		t.Errorf("the stream holds %d messages, want 12", got)
	}
}

// silentJS is a JetStream whose Stream requests get no reply once silent
// is set, as while a cluster elects a new leader.
type silentJS struct {
	jetstream.JetStream
	silent atomic.Bool
}

func (s *silentJS) Stream(ctx context.Context, name string) (jetstream.Stream, error) {
	if s.silent.Load() {
		<-ctx.Done()
		return nil, ctx.Err()
	}
	return s.JetStream.Stream(ctx, name)
}

// Rule: an exclusive sink that reads the stream's head gives up after the
// ack timeout when no reply comes, instead of waiting as long as its
// context (the relay's run) lasts; the relay then publishes the batch
// again.
func TestHeadReadTimesOut(t *testing.T) {
	js := &silentJS{JetStream: connect(t, natstest.Server(t))}
	setup(t, js)
	sink, err := natssink.New(context.Background(), js, stream, natssink.WithExclusive(), natssink.WithAckTimeout(200*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	js.silent.Store(true)
	t0 := time.Now()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	err = sink.Publish(ctx, []relay.Message{{Subject: "public.Order.Changed", ID: "Order/e0/1", Position: 1, Data: []byte("v1:0-1")}})
	if took := time.Since(t0); err == nil || !strings.Contains(err.Error(), "natssink: stream PUBLIC: context deadline exceeded (no reply in 200ms: WithAckTimeout)") || took > 5*time.Second {
		t.Fatalf("Publish with no reply to the head read: %v after %v, want an error naming the stream and the timeout after 200ms", err, took)
	}
	js.silent.Store(false)
	if err := sink.Publish(context.Background(), []relay.Message{{Subject: "public.Order.Changed", ID: "Order/e0/1", Position: 1, Data: []byte("v1:0-1"),
		Headers: map[string]string{"Entity": "e0", "Seq": "1"}}}); err != nil {
		t.Fatalf("Publish once replies come again: %v", err)
	}
	if got := stored(t, js); got != 1 {
		t.Errorf("the stream holds %d messages, want 1", got)
	}
}

// Rule: bad arguments are refused with errors that say what was wrong.
func TestBadInput(t *testing.T) {
	srv := natstest.Server(t)
	js := connect(t, srv)
	buffered := connect(t, srv, nats.ReconnectBufSize(nats.DefaultReconnectBufSize))
	ctx := context.Background()
	setup(t, js)
	// A stream of the sink's own chains its publishes: a late message
	// from a reconnect buffer is refused by its expected sequence.
	if _, err := natssink.New(ctx, buffered, stream, natssink.WithExclusive()); err != nil {
		t.Errorf("New with WithExclusive on a connection with a reconnect buffer: %v, want it accepted", err)
	}
	for name, tc := range map[string]struct {
		err  error
		want string
	}{
		"nil js":            {func() error { _, err := natssink.New(ctx, nil, stream); return err }(), "nil JetStream"},
		"empty stream":      {func() error { _, err := natssink.New(ctx, js, ""); return err }(), "empty stream name"},
		"missing stream":    {func() error { _, err := natssink.New(ctx, js, "NOPE"); return err }(), "stream NOPE"},
		"window 0":          {func() error { _, err := natssink.New(ctx, js, stream, natssink.WithWindow(0)); return err }(), "WithWindow(0)"},
		"ack timeout":       {func() error { _, err := natssink.New(ctx, js, stream, natssink.WithAckTimeout(-1)); return err }(), "WithAckTimeout(-1ns)"},
		"nil option":        {func() error { _, err := natssink.New(ctx, js, stream, nil); return err }(), "option 1 is nil"},
		"reconnect buffer":  {func() error { _, err := natssink.New(ctx, buffered, stream); return err }(), "nats.ReconnectBufSize is 8388608"},
		"setup no subjects": {natssink.Setup(ctx, js, "X", nil), "no subjects"},
		"setup window":      {natssink.Setup(ctx, js, "X", []string{"x.>"}, natssink.WithDuplicateWindow(0)), "WithDuplicateWindow(0s)"},
		"setup replicas":    {natssink.Setup(ctx, js, "X", []string{"x.>"}, natssink.WithReplicas(9)), "WithReplicas(9)"},
	} {
		if tc.err == nil || !strings.Contains(tc.err.Error(), tc.want) {
			t.Errorf("%s: error %v, want one naming %q", name, tc.err, tc.want)
		}
		if tc.err != nil && name != "missing stream" && !errors.Is(tc.err, relay.ErrInvalid) {
			t.Errorf("%s: error %v does not match relay.ErrInvalid", name, tc.err)
		}
	}
}

func containsAll(s, sub string) bool {
	return len(sub) == 0 || (len(s) >= len(sub) && indexOf(s, sub) >= 0)
}

func indexOf(s, sub string) int {
	for i := 0; i+len(sub) <= len(s); i++ {
		if s[i:i+len(sub)] == sub {
			return i
		}
	}
	return -1
}
