package process_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/eventsourced-go/eventsourced/entity"
	"github.com/eventsourced-go/eventsourced/eventlog"
	"github.com/eventsourced-go/eventsourced/process"
	"github.com/eventsourced-go/eventsourced/projection"
)

// probe is a Target that records the idempotency key of every command
// sent to it and answers with failNext errors first.
type probe struct {
	id       string
	mu       sync.Mutex
	keys     []string
	failNext []error
}

func (p *probe) ID() string   { return p.id }
func (p *probe) Type() string { return "Probe" }
func (p *probe) Call(ctx context.Context, c *entity.Call[int, int]) (any, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	key, _ := entity.IdempotencyKeyFrom(ctx)
	p.keys = append(p.keys, key+"="+c.Command().(note).Text)
	if len(p.failNext) > 0 {
		err := p.failNext[0]
		p.failNext = p.failNext[1:]
		return nil, err
	}
	return 0, nil
}

func (p *probe) got() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return slices.Clone(p.keys)
}

// note is the command the tests' steps send to a probe.
type note struct{ Text string }

func (note) Handle(tx *entity.Tx[int, int]) (int, error) { return 0, nil }

// fakeTimers keeps timers in memory and records a firing, when the test
// fires one, as an event of its type in the log, as a durable timer
// store would.
type fakeTimers struct {
	log       eventlog.Log
	mu        sync.Mutex
	scheduled map[string]time.Time
	cancelled []string
	fired     map[string]uint64 // Seq of each timer's stream
}

func newFakeTimers(log eventlog.Log) *fakeTimers {
	return &fakeTimers{log: log, scheduled: map[string]time.Time{}, fired: map[string]uint64{}}
}

func (f *fakeTimers) Type() string { return "FakeTimers" }

func (f *fakeTimers) Schedule(ctx context.Context, id string, at time.Time, payload []byte) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.scheduled[id] = at
	return nil
}

func (f *fakeTimers) Cancel(ctx context.Context, id string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.cancelled = append(f.cancelled, id)
	delete(f.scheduled, id)
	return nil
}

func (f *fakeTimers) Fired(rec eventlog.Record) (string, bool) {
	return rec.EntityID, rec.Name == "Fired"
}

// fire records the firing of timer id with payload.
func (f *fakeTimers) fire(t *testing.T, ctx context.Context, id, payload string) uint64 {
	t.Helper()
	f.mu.Lock()
	seq := f.fired[id]
	f.fired[id] = seq + 1
	f.mu.Unlock()
	pos, err := f.log.Append(ctx, f.Type(), id, seq, eventlog.Event{Name: "Fired", Data: []byte(payload)})
	if err != nil {
		t.Fatalf("fire %s: %v", id, err)
	}
	return pos
}

func (f *fakeTimers) pending() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []string
	for id := range f.scheduled {
		out = append(out, id)
	}
	slices.Sort(out)
	return out
}

// saga is the tests' process state.
type saga struct {
	Seen  []string `json:"seen"`
	Fired []string `json:"fired"`
}

type fixture struct {
	ctx    context.Context
	log    *eventlog.Memory
	sys    *entity.System
	probe  *probe
	timers *fakeTimers
	m      *process.Manager[saga]
}

// newFixture starts a manager of process "Saga" over source type "Order",
// whose events correlate by entity id. Each event's step records its name
// and sends note{name} to the probe; an event named "Arm" sets timer
// "t" (payload "p"), "Rearm" sets it again, "Disarm" cancels it, "Bad"
// fails the step.
func newFixture(t *testing.T, opts ...process.Option) *fixture {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	log := eventlog.NewMemory()
	sys, err := entity.NewSystem(log)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = sys.Close() })
	f := &fixture{ctx: ctx, log: log, sys: sys, probe: &probe{id: "p"}, timers: newFakeTimers(log)}
	def := process.Definition[saga]{
		Name:    "Saga",
		Sources: []string{"Order"},
		Correlate: func(rec eventlog.Record) (string, bool) {
			return rec.EntityID, rec.Name != "Ignored"
		},
		Handle: func(s saga, in process.Input) (saga, process.Effects, error) {
			if in.Timer != nil {
				s.Fired = append(s.Fired, in.Timer.Name+":"+string(in.Timer.Payload))
				return s, process.Effects{Commands: []process.Command{process.Send[int, int, int](f.probe, note{"timer " + in.Timer.Name})}}, nil
			}
			var eff process.Effects
			switch in.Record.Name {
			case "Bad":
				return s, eff, errors.New("bad event")
			case "Arm", "Rearm":
				eff.Timers = []process.Timer{{Name: "t", At: time.Now().Add(time.Hour), Payload: []byte("p")}}
			case "Disarm":
				eff.Cancel = []string{"t", "never-set"}
			}
			s.Seen = append(s.Seen, in.Record.Name)
			eff.Commands = append(eff.Commands, process.Send[int, int, int](f.probe, note{in.Record.Name}))
			return s, eff, nil
		},
	}
	opts = append([]process.Option{process.WithTimers(f.timers),
		process.WithProjectionOptions(projection.WithRetry(time.Millisecond, 5*time.Millisecond, 3))}, opts...)
	m, err := process.New(sys, def, projection.NewMemory(), opts...)
	if err != nil {
		t.Fatal(err)
	}
	f.m = m
	if err := m.Start(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = m.Stop(context.Background()) })
	return f
}

func (f *fixture) emit(t *testing.T, id string, names ...string) uint64 {
	t.Helper()
	last, err := f.log.LastSeq(f.ctx, "Order", id)
	if err != nil {
		t.Fatal(err)
	}
	evs := make([]eventlog.Event, len(names))
	for i, n := range names {
		evs[i] = eventlog.Event{Name: n}
	}
	pos, err := f.log.Append(f.ctx, "Order", id, last, evs...)
	if err != nil {
		t.Fatal(err)
	}
	return pos
}

func (f *fixture) waitFor(t *testing.T, pos uint64) {
	t.Helper()
	if err := f.m.WaitFor(f.ctx, pos); err != nil {
		t.Fatalf("WaitFor(%d): %v", pos, err)
	}
}

func (f *fixture) state(t *testing.T, id string) saga {
	t.Helper()
	s, _, err := f.m.State(f.ctx, id)
	if err != nil {
		t.Fatalf("State(%s): %v", id, err)
	}
	return s
}

func (f *fixture) steps(t *testing.T, id string) int {
	t.Helper()
	n := 0
	for _, err := range f.log.ReadEntity(f.ctx, "Saga", id, 1) {
		if err != nil {
			t.Fatal(err)
		}
		n++
	}
	return n
}

// TestStepsSendCommandsWithKeys checks that each event reaches its
// instance's step in order, the state is recorded, ignored events take no
// step, and the commands go out with the keys
// "<process>/<instance>/<Position>/<index>".
func TestStepsSendCommandsWithKeys(t *testing.T) {
	f := newFixture(t)
	p1 := f.emit(t, "o-1", "Placed")
	p2 := f.emit(t, "o-2", "Placed", "Ignored")
	p3 := f.emit(t, "o-1", "Paid")
	f.waitFor(t, p3)
	want := []string{
		fmt.Sprintf("Saga/o-1/%d/0=Placed", p1),
		fmt.Sprintf("Saga/o-2/%d/0=Placed", p2-1),
		fmt.Sprintf("Saga/o-1/%d/0=Paid", p3),
	}
	if got := f.probe.got(); !slices.Equal(got, want) {
		t.Errorf("commands sent: %v, want %v", got, want)
	}
	if s := f.state(t, "o-1"); !slices.Equal(s.Seen, []string{"Placed", "Paid"}) {
		t.Errorf("o-1's state: %+v, want Seen [Placed Paid]", s)
	}
	if n := f.steps(t, "o-2"); n != 1 {
		t.Errorf("o-2 recorded %d steps, want 1 (the ignored event takes none)", n)
	}
	if st := f.m.Stats(); st.Steps != 3 || st.Resent != 0 || st.Commands != 3 {
		t.Errorf("Stats: %+v, want 3 steps, 0 resent, 3 commands", st)
	}
}

// TestFailedCommandIsSentAgainWithItsKey fails the first sending of a
// step's command (outcome unknown, as after a lost connection): the input
// comes again, the step is not recorded twice, and the command goes out
// again with the same key. The timer an earlier step set stays as it was.
func TestFailedCommandIsSentAgainWithItsKey(t *testing.T) {
	f := newFixture(t)
	arm := f.emit(t, "o-1", "Arm")
	f.waitFor(t, arm)
	base := f.probe.got()
	if len(base) != 1 {
		t.Fatalf("commands after the first step: %v", base)
	}
	f.probe.mu.Lock()
	f.probe.failNext = []error{fmt.Errorf("lost: %w", entity.ErrOutcomeUnknown)}
	f.probe.mu.Unlock()
	p := f.emit(t, "o-1", "Paid")
	f.waitFor(t, p)
	key := fmt.Sprintf("Saga/o-1/%d/0=Paid", p)
	if got := f.probe.got()[1:]; !slices.Equal(got, []string{key, key}) {
		t.Errorf("commands of the step that failed once: %v, want %v twice", got, key)
	}
	if n := f.steps(t, "o-1"); n != 2 {
		t.Errorf("o-1 recorded %d steps, want 2", n)
	}
	if st := f.m.Stats(); st.Steps != 2 || st.Resent != 1 {
		t.Errorf("Stats: %+v, want 2 steps and 1 resent", st)
	}
	if s := f.state(t, "o-1"); !slices.Equal(s.Seen, []string{"Arm", "Paid"}) {
		t.Errorf("state after the resent step: %+v, want Seen [Arm Paid] (decided once)", s)
	}
	// The timer the first step set was scheduled once, under its step's id.
	if got, want := f.timers.pending(), []string{fmt.Sprintf("o-1/t@%d", arm)}; !slices.Equal(got, want) {
		t.Errorf("pending timers: %v, want %v", got, want)
	}
}

// TestHandleErrorIsPoison has a step fail for good: nothing is recorded,
// no command goes out, and the manager stops before the event with a
// PoisonError naming it.
func TestHandleErrorIsPoison(t *testing.T) {
	f := newFixture(t)
	f.emit(t, "o-1", "Placed")
	bad := f.emit(t, "o-1", "Bad")
	err := f.m.Wait(f.ctx)
	var pe *projection.PoisonError
	if !errors.As(err, &pe) || pe.Event.Position != bad || !strings.Contains(err.Error(), "bad event") {
		t.Fatalf("Wait: %v, want a PoisonError at position %d with the step's error", err, bad)
	}
	if n := f.steps(t, "o-1"); n != 1 {
		t.Errorf("o-1 recorded %d steps, want 1", n)
	}
	if got := f.probe.got(); len(got) != 1 {
		t.Errorf("commands: %v, want only Placed's", got)
	}
}

// TestTimers sets a timer, sets it again (the first is cancelled and its
// late firing ignored), fires the current one (the instance steps with
// Input.Timer and its payload), and cancels: the cancel of a fired timer
// or of a name never set changes nothing.
func TestTimers(t *testing.T) {
	f := newFixture(t)
	arm := f.emit(t, "o-1", "Arm")
	rearm := f.emit(t, "o-1", "Rearm")
	f.waitFor(t, rearm)
	first, second := fmt.Sprintf("o-1/t@%d", arm), fmt.Sprintf("o-1/t@%d", rearm)
	if got := f.timers.pending(); !slices.Equal(got, []string{second}) {
		t.Errorf("pending after Rearm: %v, want [%s]", got, second)
	}
	if got := f.timers.cancelled; !slices.Equal(got, []string{first}) {
		t.Errorf("cancelled after Rearm: %v, want [%s]", got, first)
	}
	stale := f.timers.fire(t, f.ctx, first, "")
	f.waitFor(t, stale)
	if st := f.m.Stats(); st.StaleTimers != 1 {
		t.Errorf("StaleTimers after the replaced timer fired: %d, want 1", st.StaleTimers)
	}
	fired := f.timers.fire(t, f.ctx, second, "p")
	f.waitFor(t, fired)
	again := f.timers.fire(t, f.ctx, second, "p") // at least once: a second firing
	f.waitFor(t, again)
	disarm := f.emit(t, "o-1", "Disarm")
	f.waitFor(t, disarm)
	s := f.state(t, "o-1")
	if !slices.Equal(s.Fired, []string{"t:p"}) {
		t.Errorf("timer inputs: %v, want [t:p] once", s.Fired)
	}
	if got := f.timers.cancelled; len(got) != 1 {
		t.Errorf("cancelled after Disarm: %v, want only the replaced timer (the fired one is no longer pending)", got)
	}
	if st := f.m.Stats(); st.StaleTimers != 2 {
		t.Errorf("StaleTimers: %d, want 2 (the replaced timer, the second firing)", st.StaleTimers)
	}
	want := fmt.Sprintf("Saga/o-1/%d/0=timer t", fired)
	if got := f.probe.got(); !slices.Contains(got, want) {
		t.Errorf("commands: %v, want %s", got, want)
	}
}

// TestInvalidDefinitions checks that New refuses each bad definition or
// option with an error naming it.
func TestInvalidDefinitions(t *testing.T) {
	sys, err := entity.NewSystem(eventlog.NewMemory())
	if err != nil {
		t.Fatal(err)
	}
	defer sys.Close()
	ok := process.Definition[saga]{
		Name: "P", Sources: []string{"Order"},
		Correlate: func(eventlog.Record) (string, bool) { return "", false },
		Handle:    func(s saga, _ process.Input) (saga, process.Effects, error) { return s, process.Effects{}, nil },
	}
	with := func(f func(d *process.Definition[saga])) process.Definition[saga] {
		d := ok
		f(&d)
		return d
	}
	for _, c := range []struct {
		name string
		def  process.Definition[saga]
		opts []process.Option
		want string
	}{
		{"empty name", with(func(d *process.Definition[saga]) { d.Name = "" }), nil, "process name"},
		{"no sources", with(func(d *process.Definition[saga]) { d.Sources = nil }), nil, "process P: no source types"},
		{"bad source", with(func(d *process.Definition[saga]) { d.Sources = []string{""} }), nil, "process P: source type"},
		{"own type as source", with(func(d *process.Definition[saga]) { d.Sources = []string{"P"} }), nil, "its own type P cannot be a source"},
		{"nil Correlate", with(func(d *process.Definition[saga]) { d.Correlate = nil }), nil, "process P: nil Correlate"},
		{"nil Handle", with(func(d *process.Definition[saga]) { d.Handle = nil }), nil, "process P: nil Handle"},
		{"nil option", ok, []process.Option{nil}, "process P: option 1 is nil"},
		{"nil timers", ok, []process.Option{process.WithTimers(nil)}, "WithTimers(nil)"},
		{"step timeout 0", ok, []process.Option{process.WithStepTimeout(0)}, "WithStepTimeout(0s): must be positive"},
		{"timers type as source", with(func(d *process.Definition[saga]) { d.Sources = []string{"FakeTimers"} }),
			[]process.Option{process.WithTimers(newFakeTimers(nil))}, "the timers' type FakeTimers is a source"},
	} {
		t.Run(c.name, func(t *testing.T) {
			_, err := process.New(sys, c.def, projection.NewMemory(), c.opts...)
			if !errors.Is(err, process.ErrInvalid) || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("New: %v, want ErrInvalid saying %q", err, c.want)
			}
		})
	}
	if _, err := process.New[saga](nil, ok, projection.NewMemory()); !errors.Is(err, process.ErrInvalid) {
		t.Errorf("New with a nil system: %v, want ErrInvalid", err)
	}
	if _, err := process.New(sys, ok, nil); !errors.Is(err, process.ErrInvalid) || !strings.Contains(err.Error(), "nil offset store") {
		t.Errorf("New with a nil offset store: %v, want ErrInvalid naming it", err)
	}
}

// TestInvalidEffects checks that a step returning bad effects fails, with
// an error naming the effect, and records nothing.
func TestInvalidEffects(t *testing.T) {
	for _, c := range []struct {
		name  string
		eff   process.Effects
		timed bool
		want  string
	}{
		{"empty command", process.Effects{Commands: []process.Command{{}}}, true, "command 1 is empty (build commands with process.Send)"},
		{"timer without name", process.Effects{Timers: []process.Timer{{At: time.Now()}}}, true, "timer 1: empty timer name"},
		{"timer name with slash", process.Effects{Timers: []process.Timer{{Name: "a/b", At: time.Now()}}}, true, `timer name "a/b" contains '/'`},
		{"timer without time", process.Effects{Timers: []process.Timer{{Name: "a"}}}, true, `timer "a": zero time`},
		{"timer set twice", process.Effects{Timers: []process.Timer{{Name: "a", At: time.Now()}, {Name: "a", At: time.Now()}}}, true, `timer "a" set twice in one step`},
		{"cancel without name", process.Effects{Cancel: []string{""}}, true, "cancel: empty timer name"},
		{"timer without timers", process.Effects{Timers: []process.Timer{{Name: "a", At: time.Now()}}}, false, "the step sets or cancels timers, but the manager has none (WithTimers)"},
		{"nil target", process.Effects{Commands: []process.Command{process.Send[int, int, int](nil, note{})}}, true, "command process_test.note to a nil target"},
		{"zero ref", process.Effects{Commands: []process.Command{process.Send[int, int, int](entity.Ref[int, int]{}, note{})}}, true, "command process_test.note to /: "},
		{"nil command", process.Effects{Commands: []process.Command{process.Send[int, int, int](&probe{id: "p"}, nil)}}, true, "a nil command to Probe/p"},
	} {
		t.Run(c.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			log := eventlog.NewMemory()
			sys, _ := entity.NewSystem(log)
			defer sys.Close()
			def := process.Definition[saga]{
				Name: "P", Sources: []string{"Order"},
				Correlate: func(rec eventlog.Record) (string, bool) { return rec.EntityID, true },
				Handle:    func(s saga, _ process.Input) (saga, process.Effects, error) { return s, c.eff, nil },
			}
			opts := []process.Option{process.WithProjectionOptions(projection.WithRetry(time.Millisecond, time.Millisecond, 2))}
			if c.timed {
				opts = append(opts, process.WithTimers(newFakeTimers(log)))
			}
			m, err := process.New(sys, def, projection.NewMemory(), opts...)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := log.Append(ctx, "Order", "o-1", 0, eventlog.Event{Name: "Placed"}); err != nil {
				t.Fatal(err)
			}
			if err := m.Start(ctx); err != nil {
				t.Fatal(err)
			}
			err = m.Wait(ctx)
			if !errors.Is(err, process.ErrInvalid) || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("Wait: %v, want ErrInvalid saying %q", err, c.want)
			}
		})
	}
}

// TestSlices runs a process in two slices, each in a System of its own on
// one log, as two processes would: every input is handled by the slice of
// its instance (events of two source types correlate to one instance),
// in order, each instance records one step per input, and each command
// goes out once.
func TestSlices(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	log := eventlog.NewMemory()
	p := &probe{id: "p"}
	handled := make([]map[string]int, 2) // slice -> instance -> steps
	var mu sync.Mutex
	def := func(slice int) process.Definition[saga] {
		return process.Definition[saga]{
			Name:    "Saga",
			Sources: []string{"Order", "Payment"},
			Correlate: func(rec eventlog.Record) (string, bool) {
				return string(rec.Data), true // the order the event names
			},
			Handle: func(s saga, in process.Input) (saga, process.Effects, error) {
				mu.Lock()
				handled[slice][in.Instance]++
				mu.Unlock()
				s.Seen = append(s.Seen, in.Record.EntityType)
				return s, process.Effects{Commands: []process.Command{process.Send[int, int, int](p, note{in.Record.EntityType})}}, nil
			},
		}
	}
	var ms []*process.Manager[saga]
	offsets := projection.NewMemory()
	for slice := range 2 {
		handled[slice] = map[string]int{}
		sys, err := entity.NewSystem(log)
		if err != nil {
			t.Fatal(err)
		}
		defer sys.Close()
		m, err := process.New(sys, def(slice), offsets, process.WithSlices(2, slice))
		if err != nil {
			t.Fatal(err)
		}
		if err := m.Start(ctx); err != nil {
			t.Fatal(err)
		}
		defer m.Stop(context.Background())
		ms = append(ms, m)
	}
	var last uint64
	for i := range 20 {
		order := fmt.Sprintf("o-%d", i)
		for _, typ := range []string{"Order", "Payment"} {
			pos, err := log.Append(ctx, typ, typ+"-"+order, 0, eventlog.Event{Name: "E", Data: []byte(order)})
			if err != nil {
				t.Fatal(err)
			}
			last = pos
		}
	}
	for _, m := range ms {
		if err := m.WaitFor(ctx, last); err != nil {
			t.Fatal(err)
		}
	}
	mu.Lock()
	defer mu.Unlock()
	for i := range 20 {
		order := fmt.Sprintf("o-%d", i)
		want := projection.SliceOf("", order, 2)
		if handled[want][order] != 2 || handled[1-want][order] != 0 {
			t.Errorf("%s: handled %d times by slice %d (its own) and %d by the other, want 2 and 0",
				order, handled[want][order], want, handled[1-want][order])
		}
		s, _, err := ms[want].State(ctx, order)
		if err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(s.Seen, []string{"Order", "Payment"}) {
			t.Errorf("%s's state in its slice: %v, want [Order Payment]", order, s.Seen)
		}
	}
	if got := len(p.got()); got != 40 {
		t.Errorf("%d commands sent, want 40", got)
	}
	for _, c := range []struct {
		opt  process.Option
		want string
	}{
		{process.WithSlices(0, 0), "WithSlices(0, [0]): want 1 <= n <= 1024"},
		{process.WithSlices(2), "WithSlices(2): no slice to run"},
		{process.WithSlices(2, 2), "slice 2 is out of range or named twice"},
		{process.WithSlices(2, 1, 1), "slice 1 is out of range or named twice"},
	} {
		sys, _ := entity.NewSystem(log)
		if _, err := process.New(sys, def(0), offsets, c.opt); !errors.Is(err, process.ErrInvalid) || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: got %v", c.want, err)
		}
		sys.Close()
	}
}
