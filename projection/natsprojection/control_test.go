package natsprojection_test

import (
	"context"
	"errors"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/eventsourced-go/eventsourced/eventlog"
	"github.com/eventsourced-go/eventsourced/projection"
	"github.com/eventsourced-go/eventsourced/projection/natsprojection"
	"github.com/eventsourced-go/eventsourced/projection/projectiontest"
)

// TestControlConformance runs the control-record suite on one bucket.
func TestControlConformance(t *testing.T) {
	js := jetStream(t)
	projectiontest.RunControls(t, func(t *testing.T) projection.Controls { return newStore(t, js) })
}

// controlInterval is the control interval of these tests.
const controlInterval = 20 * time.Millisecond

// seen is a read model that records the Positions handled, in order.
type seen struct {
	mu  sync.Mutex // guards pos
	pos []uint64
}

func (s *seen) handle(_ context.Context, batch []eventlog.Record) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, rec := range batch {
		s.pos = append(s.pos, rec.Position)
	}
	return nil
}

func (s *seen) get() []uint64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.pos)
}

func waitUntil(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func appendTo(t *testing.T, log eventlog.Log, id string, n int) []uint64 {
	t.Helper()
	seq, err := log.LastSeq(t.Context(), "Tab", id)
	if err != nil {
		t.Fatal(err)
	}
	var out []uint64
	for i := range n {
		pos, err := log.Append(t.Context(), "Tab", id, seq+uint64(i), eventlog.Event{Name: "E", Data: []byte(strconv.Itoa(i))})
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, pos)
	}
	return out
}

// TestPauseResume pauses a running projection from another Store on the
// same bucket, as an operator's process would, appends while it is
// paused, restarts it paused and resumes it: nothing is handled while
// paused, and everything once after.
func TestPauseResume(t *testing.T) {
	js := jetStream(t)
	ctx := t.Context()
	store, operator := newStore(t, js), newStore(t, js)
	log := eventlog.NewMemory()
	want := appendTo(t, log, "t1", 3)
	var s seen
	p, err := projection.New(log, "Tab", "tabs", store, s.handle, projection.WithControlInterval(controlInterval))
	if err != nil {
		t.Fatal(err)
	}
	defer p.Stop(context.Background())
	if err := p.Start(ctx); err != nil {
		t.Fatal(err)
	}
	if err := p.WaitFor(ctx, want[2]); err != nil {
		t.Fatal(err)
	}
	if err := projection.Pause(ctx, operator, "tabs"); err != nil {
		t.Fatal(err)
	}
	waitUntil(t, "paused", func() bool { return p.Status().State == projection.StatePaused })
	later := appendTo(t, log, "t2", 4)
	time.Sleep(10 * controlInterval)
	if got := s.get(); !slices.Equal(got, want) {
		t.Fatalf("handled %v while paused, want %v", got, want)
	}
	if err := p.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	if err := p.Start(ctx); err != nil {
		t.Fatal(err)
	}
	time.Sleep(10 * controlInterval)
	if st := p.Status(); st.State != projection.StatePaused || !slices.Equal(s.get(), want) {
		t.Fatalf("restarted while paused: state %v, handled %v; want paused, %v", st.State, s.get(), want)
	}
	if err := projection.Resume(ctx, operator, "tabs"); err != nil {
		t.Fatal(err)
	}
	if err := p.WaitFor(ctx, later[3]); err != nil {
		t.Fatal(err)
	}
	if got, want := s.get(), append(want, later...); !slices.Equal(got, want) {
		t.Errorf("handled %v after Resume, want %v", got, want)
	}
	if off, err := operator.Load(ctx, "tabs"); err != nil || off != later[3] {
		t.Errorf("stored offset %d, %v; want %d", off, err, later[3])
	}
}

// TestRetryRequest dead-letters a poison event and has the running
// projection retry it on request.
func TestRetryRequest(t *testing.T) {
	js := jetStream(t)
	ctx := t.Context()
	store := newStore(t, js)
	dls, err := natsprojection.NewDeadLetters(ctx, js)
	if err != nil {
		t.Fatal(err)
	}
	log := eventlog.NewMemory()
	pos := appendTo(t, log, "t1", 3)
	var s seen
	var broken atomic.Bool
	broken.Store(true)
	h := func(ctx context.Context, batch []eventlog.Record) error {
		for _, rec := range batch {
			if rec.Seq == 2 && broken.Load() {
				return errors.New("boom")
			}
		}
		return s.handle(ctx, batch)
	}
	p, err := projection.New(log, "Tab", "retried", store, h,
		projection.WithPoison(projection.SkipPoison), projection.WithDeadLetters(dls),
		projection.WithRetry(time.Millisecond, time.Millisecond, 2), projection.WithControlInterval(controlInterval))
	if err != nil {
		t.Fatal(err)
	}
	defer p.Stop(context.Background())
	if err := p.Start(ctx); err != nil {
		t.Fatal(err)
	}
	if err := p.WaitFor(ctx, pos[2]); err != nil {
		t.Fatal(err)
	}
	broken.Store(false)
	if err := projection.RequestRetry(ctx, store, "retried", pos[1]); err != nil {
		t.Fatal(err)
	}
	waitUntil(t, "the request served", func() bool {
		ctl, _, err := store.LoadControl(ctx, "retried")
		return err == nil && len(ctl.Retries) == 0
	})
	if _, err := dls.Get(ctx, "retried", pos[1]); !errors.Is(err, projection.ErrNotFound) {
		t.Errorf("dead letter after a served retry request: %v, want ErrNotFound", err)
	}
	if got, want := s.get(), []uint64{pos[0], pos[2], pos[1]}; !slices.Equal(got, want) {
		t.Errorf("handled %v, want %v", got, want)
	}
}

func TestControlOptions(t *testing.T) {
	js := jetStream(t)
	if _, err := natsprojection.New(t.Context(), js, natsprojection.WithControlBucket("a.b")); !errors.Is(err, projection.ErrInvalid) {
		t.Errorf("WithControlBucket(a.b): %v, want ErrInvalid", err)
	}
	store := newStore(t, js, natsprojection.WithControlBucket("ctl"), natsprojection.WithMemoryStorage())
	if err := projection.Pause(t.Context(), store, "p"); err != nil {
		t.Fatal(err)
	}
	kv, err := js.KeyValue(t.Context(), "ctl")
	if err != nil {
		t.Fatalf("control bucket: %v", err)
	}
	if _, err := kv.Get(t.Context(), "p"); err != nil {
		t.Errorf("control record of p in bucket ctl: %v", err)
	}
}
