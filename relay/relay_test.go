package relay_test

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"math"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/eventsourced-go/eventsourced/eventlog"
	"github.com/eventsourced-go/eventsourced/projection"
	"github.com/eventsourced-go/eventsourced/relay"
)

// memSink keeps what it is given; it fails the first failures publishes.
type memSink struct {
	mu       sync.Mutex
	msgs     []relay.Message
	failures int
	calls    int
}

func (s *memSink) Publish(ctx context.Context, msgs []relay.Message) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.calls++
	if s.failures > 0 {
		s.failures--
		return errors.New("bus unreachable")
	}
	for _, m := range msgs {
		m.Data = append([]byte(nil), m.Data...) // the relay's bytes are not ours to keep
		s.msgs = append(s.msgs, m)
	}
	return nil
}

func (s *memSink) got() []relay.Message {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]relay.Message(nil), s.msgs...)
}

func wait(t *testing.T, r *relay.Relay, pos uint64) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := r.Projection().WaitFor(ctx, pos); err != nil {
		t.Fatalf("waiting for %d: %v (%+v)", pos, err, r.Status())
	}
}

// Rule: the default map publishes every event of every type on
// <prefix>.<type>.<event>, keyed by the id, with the record's data, the
// dedupe id <type>/<id>/<seq> and the record in headers.
func TestDefaultMap(t *testing.T) {
	ctx := context.Background()
	log := eventlog.NewMemory()
	log.Append(ctx, "Order", "o/1", 0, eventlog.Event{Name: "Placed", Revision: 2, Data: []byte("a"),
		Metadata: map[string]string{"traceparent": "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"}})
	last, _ := log.Append(ctx, "Tab", "t1", 0, eventlog.Event{Name: "Opened", Data: []byte("b")})
	sink := &memSink{}
	r, err := relay.New(log, nil, "all", projection.NewMemory(), sink, relay.WithPrefix("pub"))
	if err != nil {
		t.Fatal(err)
	}
	r.Start(ctx)
	defer r.Stop(ctx)
	wait(t, r, last)
	got := sink.got()
	if len(got) != 2 {
		t.Fatalf("published %d messages, want 2", len(got))
	}
	m := got[0]
	want := map[string]string{"Es-Type": "Order", "Es-Id": "o%2F1", "Es-Seq": "1", "Es-Position": "1", "Es-Event": "Placed", "Es-Rev": "2",
		"traceparent": "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"}
	if m.Subject != "pub.Order.Placed" || m.Key != "o/1" || m.ID != "Order/o%2F1/1" || string(m.Data) != "a" || m.Position != 1 || fmt.Sprint(m.Headers) != fmt.Sprint(want) {
		t.Errorf("first message %+v, want subject pub.Order.Placed, key o/1, id Order/o%%2F1/1, data a, position 1, headers %v", m, want)
	}
	if got[1].Subject != "pub.Tab.Opened" || got[1].ID != "Tab/t1/1" {
		t.Errorf("second message %+v", got[1])
	}
}

// Rule: the default map's subject, ID and headers are those its doc
// spells out, whatever the record's type, id and numbers (escaped, long,
// zero, the largest), and its ID is DefaultID's.
func TestDefaultMapFields(t *testing.T) {
	long := strings.Repeat("x", 200)
	tests := map[string]eventlog.Record{
		"plain":    {EntityType: "Order", EntityID: "o1", Name: "Placed", Seq: 1, Position: 7, Revision: 0},
		"escaped":  {EntityType: "Or%der", EntityID: "a/b c?d", Name: "Pläced", Seq: 12, Position: 3, Revision: 4},
		"long":     {EntityType: long, EntityID: long + "/" + long, Name: long, Seq: 123456789, Position: 987654321, Revision: 77},
		"largest":  {EntityType: "T", EntityID: "", Name: "E", Seq: math.MaxUint64, Position: math.MaxUint64, Revision: math.MaxUint32},
		"metadata": {EntityType: "T", EntityID: "i", Name: "E", Seq: 2, Position: 5, Metadata: map[string]string{"tracestate": "k=v", "other": "x"}},
	}
	for name, rec := range tests {
		t.Run(name, func(t *testing.T) {
			m, ok, err := relay.DefaultMap("pre.fix")(rec)
			if err != nil || !ok {
				t.Fatalf("DefaultMap: %v, %v", ok, err)
			}
			want := map[string]string{
				relay.HeaderType:     rec.EntityType,
				relay.HeaderID:       url.PathEscape(rec.EntityID),
				relay.HeaderSeq:      strconv.FormatUint(rec.Seq, 10),
				relay.HeaderPosition: strconv.FormatUint(rec.Position, 10),
				relay.HeaderEvent:    rec.Name,
				relay.HeaderRevision: strconv.FormatUint(uint64(rec.Revision), 10),
			}
			if v, ok := rec.Metadata["tracestate"]; ok {
				want["tracestate"] = v
			}
			if got, want := m.Subject, "pre.fix."+rec.EntityType+"."+rec.Name; got != want {
				t.Errorf("subject %q, want %q", got, want)
			}
			if got, want := m.ID, relay.DefaultID(rec); got != want {
				t.Errorf("id %q, want DefaultID's %q", got, want)
			}
			if m.Key != rec.EntityID {
				t.Errorf("key %q, want %q", m.Key, rec.EntityID)
			}
			if !maps.Equal(m.Headers, want) {
				t.Errorf("headers %v, want %v", m.Headers, want)
			}
		})
	}
}

// Rule: a failing sink is retried with backoff for as long as it takes;
// its failures show in Status and never poison or skip an event.
func TestSinkFailuresAreRetriedNotPoison(t *testing.T) {
	ctx := context.Background()
	log := eventlog.NewMemory()
	var last uint64
	for i := range 5 {
		last, _ = log.Append(ctx, "Order", fmt.Sprint(i), 0, eventlog.Event{Name: "Placed"})
	}
	sink := &memSink{failures: 12} // more than the projection's 5 attempts
	r, err := relay.New(log, []string{"Order"}, "orders", projection.NewMemory(), sink,
		relay.WithRetry(time.Millisecond, 5*time.Millisecond), relay.WithProjectionOptions(projection.WithRetry(time.Millisecond, time.Millisecond, 2)))
	if err != nil {
		t.Fatal(err)
	}
	r.Start(ctx)
	defer r.Stop(ctx)
	wait(t, r, last)
	st := r.Status()
	if n := len(sink.got()); n != 5 || st.PublishErrors != 12 || st.PublishFailures != 0 || st.SkippedTotal != 0 || st.Published != 5 || st.LastPublishError == nil {
		t.Errorf("published %d, status %+v; want 5 published, 12 errors, 0 failures now, none skipped, the last error kept", n, st)
	}
}

// stallingSink waits for its context on its first stalls publishes, as
// a publish to an unreachable bus that never gives up does.
type stallingSink struct {
	memSink
	stalls atomic.Int32
}

func (s *stallingSink) Publish(ctx context.Context, msgs []relay.Message) error {
	if s.stalls.Add(-1) >= 0 {
		<-ctx.Done()
		return ctx.Err()
	}
	return s.memSink.Publish(ctx, msgs)
}

// Rule: with projection.WithStoreTimeout a publish that waits too long
// is canceled, reported, and the batch published again: the offset
// store's transaction is not held for as long as the bus is away.
func TestStoreTimeoutCancelsAStalledPublish(t *testing.T) {
	ctx := context.Background()
	log := eventlog.NewMemory()
	var last uint64
	for i := range 5 {
		last, _ = log.Append(ctx, "Order", fmt.Sprint(i), 0, eventlog.Event{Name: "Placed"})
	}
	sink := &stallingSink{}
	sink.stalls.Store(2)
	r, err := relay.New(log, []string{"Order"}, "orders", projection.NewMemory(), sink, relay.WithBatchSize(5),
		relay.WithProjectionOptions(projection.WithRetry(time.Millisecond, 5*time.Millisecond, 1), projection.WithStoreTimeout(50*time.Millisecond)))
	if err != nil {
		t.Fatal(err)
	}
	r.Start(ctx)
	defer r.Stop(ctx)
	wait(t, r, last)
	st := r.Status()
	if n := len(sink.got()); n != 5 || st.Published != 5 || st.Poison != nil || st.SkippedTotal != 0 ||
		st.LastError == nil || !strings.Contains(st.LastError.Error(), "took longer than WithStoreTimeout(50ms)") {
		t.Errorf("published %d, status %+v; want 5 published, no poison, none skipped, the last error naming WithStoreTimeout(50ms)", n, st)
	}
}

// Rule: an error of the map is the event's: the projection's poison
// policy applies (stop before it by default), and the events before it
// are published.
func TestMapErrorIsPoison(t *testing.T) {
	ctx := context.Background()
	log := eventlog.NewMemory()
	for i := range 5 {
		log.Append(ctx, "Order", fmt.Sprint(i), 0, eventlog.Event{Name: "Placed"})
	}
	sink := &memSink{}
	bad := func(rec eventlog.Record) (relay.Message, bool, error) {
		if rec.EntityID == "3" {
			return relay.Message{}, false, errors.New("no public schema")
		}
		return relay.Message{Subject: "x"}, true, nil
	}
	r, err := relay.New(log, []string{"Order"}, "orders", projection.NewMemory(), sink, relay.WithMap(bad),
		relay.WithProjectionOptions(projection.WithRetry(time.Millisecond, time.Millisecond, 2)))
	if err != nil {
		t.Fatal(err)
	}
	err = r.Run(ctx)
	var pe *projection.PoisonError
	if !errors.As(err, &pe) || pe.Event.EntityID != "3" || !strings.Contains(err.Error(), "no public schema") {
		t.Fatalf("Run: %v, want a poison error at Order/3 naming the map's error", err)
	}
	if n := len(sink.got()); n != 3 {
		t.Errorf("published %d messages before the poison event, want 3", n)
	}
}

// Rule: bad arguments and option values are refused with an error that
// matches ErrInvalid and names what was wrong.
func TestBadInput(t *testing.T) {
	log, store, sink := eventlog.NewMemory(), projection.NewMemory(), &memSink{}
	for _, tc := range []struct {
		name  string
		log   eventlog.Log
		rname string
		store projection.OffsetStore
		sink  relay.Sink
		opts  []relay.Option
		want  string
	}{
		{"nil log", nil, "r", store, sink, nil, "nil log"},
		{"empty name", log, "", store, sink, nil, "empty relay name"},
		{"nil store", log, "r", nil, sink, nil, "nil offset store"},
		{"nil sink", log, "r", store, nil, nil, "nil sink"},
		{"nil option", log, "r", store, sink, []relay.Option{nil}, "option 1 is nil"},
		{"nil map", log, "r", store, sink, []relay.Option{relay.WithMap(nil)}, "WithMap(nil)"},
		{"batch 0", log, "r", store, sink, []relay.Option{relay.WithBatchSize(0)}, "WithBatchSize(0)"},
		{"retry", log, "r", store, sink, []relay.Option{relay.WithRetry(time.Second, time.Millisecond)}, "max delay 1ms is below"},
		{"retry 0", log, "r", store, sink, []relay.Option{relay.WithRetry(0, time.Second)}, "initial delay 0s"},
		{"prefix", log, "r", store, sink, []relay.Option{relay.WithPrefix("a.b")}, `WithPrefix("a.b")`},
		{"logger", log, "r", store, sink, []relay.Option{relay.WithLogger(nil)}, "WithLogger(nil)"},
		{"projection option", log, "r", store, sink, []relay.Option{relay.WithProjectionOptions(projection.WithPoison(7))}, "WithPoison(7)"},
		{"bad type", log, "r", store, sink, nil, "entity type"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			types := []string{"Order"}
			if tc.name == "bad type" {
				types = []string{"Order", ""}
			}
			_, err := relay.New(tc.log, types, tc.rname, tc.store, tc.sink, tc.opts...)
			if !errors.Is(err, relay.ErrInvalid) || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %v, want one matching relay.ErrInvalid naming %q", err, tc.want)
			}
		})
	}
}

// Rule: Start on a running relay returns projection.ErrRunning and
// leaves the run alone.
func TestStartTwice(t *testing.T) {
	ctx := context.Background()
	log := eventlog.NewMemory()
	last, _ := log.Append(ctx, "Order", "1", 0, eventlog.Event{Name: "Placed"})
	sink := &memSink{}
	r, err := relay.New(log, []string{"Order"}, "orders", projection.NewMemory(), sink)
	if err != nil {
		t.Fatal(err)
	}
	if err := r.Start(ctx); err != nil {
		t.Fatal(err)
	}
	defer r.Stop(ctx)
	wait(t, r, last)
	if err := r.Start(ctx); !errors.Is(err, projection.ErrRunning) {
		t.Errorf("second Start: %v, want projection.ErrRunning", err)
	}
	if st := r.Status(); st.Published != 1 || !st.Running {
		t.Errorf("status after the second Start: %+v, want 1 published, running", st)
	}
}

// resumerSink is a memSink that claims to hold everything up to pos.
type resumerSink struct {
	memSink
	pos   uint64
	asked int
}

func (s *resumerSink) LastPublished(ctx context.Context) (uint64, bool, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.asked++
	return s.pos, s.pos > 0, nil
}

// Rule: a relay resumes after a Resumer sink's last message when it is
// beyond the stored offset, and a slice never asks (the sink holds every
// slice's messages).
func TestResume(t *testing.T) {
	ctx := context.Background()
	log := eventlog.NewMemory()
	var last uint64
	for i := range 6 {
		last, _ = log.Append(ctx, "Order", fmt.Sprint(i), 0, eventlog.Event{Name: "Placed"})
	}
	sink := &resumerSink{pos: 4}
	r, err := relay.New(log, []string{"Order"}, "orders", projection.NewMemory(), sink)
	if err != nil {
		t.Fatal(err)
	}
	r.Start(ctx)
	defer r.Stop(ctx)
	wait(t, r, last)
	if got := sink.got(); len(got) != 2 || got[0].Position != 5 || r.Status().ResumedFrom != 4 {
		t.Errorf("published %+v, resumed from %d; want positions 5 and 6, resumed from 4", got, r.Status().ResumedFrom)
	}

	sliced := &resumerSink{pos: 4}
	for i := range 2 {
		s, err := relay.New(log, []string{"Order"}, "sliced", projection.NewMemory(), sliced,
			relay.WithProjectionOptions(projection.WithSlice(i, 2)))
		if err != nil {
			t.Fatal(err)
		}
		s.Start(ctx)
		defer s.Stop(ctx)
	}
	// A slice's offset stays at its own last event: wait for the sink.
	for deadline := time.Now().Add(10 * time.Second); len(sliced.got()) < 6 && time.Now().Before(deadline); {
		time.Sleep(5 * time.Millisecond)
	}
	if n := len(sliced.got()); n != 6 || sliced.asked != 0 {
		t.Errorf("slices published %d messages and asked the sink %d times; want 6 and 0", n, sliced.asked)
	}
}
