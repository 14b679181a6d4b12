package entitytest

import (
	"errors"
	"fmt"
	"reflect"
	"testing"

	"github.com/eventsourced-go/eventsourced/entity"
)

// Fixture holds one entity's state for given/when/then tests. Create it with
// [New], give it history with [Fixture.Given], and run commands with [When].
type Fixture[S, E any] struct {
	t     testing.TB
	def   *entity.Type[S, E]
	id    string
	state S
	seq   uint64
	meta  map[string]string
}

// New returns a Fixture for entity id of type def in its initial state.
func New[S, E any](t testing.TB, def entity.Type[S, E], id string) *Fixture[S, E] {
	t.Helper()
	f := &Fixture[S, E]{t: t, def: &def, id: id}
	if def.Apply == nil || def.Events == nil {
		t.Fatalf("entitytest: entity type %q needs Apply and Events", def.Name)
	}
	if def.Initial != nil {
		f.state = def.Initial()
	}
	return f
}

// Given applies events as if the entity had persisted them earlier. Each is
// round-tripped through the type's event codec first, as recovery would.
func (f *Fixture[S, E]) Given(events ...E) *Fixture[S, E] {
	f.t.Helper()
	for _, e := range events {
		f.state = f.def.Apply(f.state, f.roundTrip(e))
		f.seq++
	}
	return f
}

// GivenSnapshot sets the state from a snapshot as recovery would read it:
// data, written at revision, decoded with the type's State codec through
// [entity.Type.DecodeSnapshot], so a state upcaster can be tested with the
// bytes an older release wrote. seq is the Seq the snapshot was taken at;
// events given afterwards follow it. The test fails if the snapshot cannot
// be decoded.
func (f *Fixture[S, E]) GivenSnapshot(seq uint64, revision uint32, data []byte) *Fixture[S, E] {
	f.t.Helper()
	state, err := f.def.DecodeSnapshot(revision, data)
	if err != nil {
		f.t.Fatalf("entitytest: snapshot of %s/%s at seq %d, revision %d: %v", f.def.Name, f.id, seq, revision, err)
		return f
	}
	f.state, f.seq = state, seq
	return f
}

// WithMetadata sets the metadata the next commands carry.
func (f *Fixture[S, E]) WithMetadata(md map[string]string) *Fixture[S, E] {
	f.meta = md
	return f
}

// State returns the entity's current state.
func (f *Fixture[S, E]) State() S { return f.state }

// Seq returns the Seq of the entity's last event.
func (f *Fixture[S, E]) Seq() uint64 { return f.seq }

// roundTrip encodes and decodes e and fails the test if it does not come back
// equal: a codec that loses data would corrupt recovery.
func (f *Fixture[S, E]) roundTrip(e E) E {
	f.t.Helper()
	name, rev, data, err := f.def.Events.Encode(e)
	if err != nil {
		f.t.Fatalf("entitytest: encode event %T: %v", e, err)
	}
	back, err := f.def.Events.Decode(name, rev, data)
	if err != nil {
		f.t.Fatalf("entitytest: decode event %q rev %d: %v", name, rev, err)
	}
	if !reflect.DeepEqual(back, e) {
		f.t.Errorf("entitytest: event %T does not survive its codec:\n got %#v\nwant %#v", e, back, e)
	}
	return back
}

// Outcome is the result of [When]: assert on it with the Then methods.
type Outcome[S, E, R any] struct {
	t testing.TB
	entity.Result[S, E, R]
}

// When runs cmd against the fixture's entity exactly as the runtime would,
// without goroutines or storage. On success the events are round-tripped
// through the event codec and the new state through the state codec (if the
// type has one), and the fixture moves to the new state, so Whens chain.
func When[S, E, R any](f *Fixture[S, E], cmd entity.Command[S, E, R]) *Outcome[S, E, R] {
	f.t.Helper()
	res := entity.Execute(f.def, f.id, f.seq, f.state, f.meta, cmd)
	if res.Err == nil {
		for _, e := range res.Events {
			f.roundTrip(e)
		}
		if f.def.State != nil {
			data, err := f.def.State.Encode(res.State)
			if err != nil {
				f.t.Fatalf("entitytest: encode state %T: %v", res.State, err)
			}
			back, err := f.def.State.Decode(data)
			if err != nil {
				f.t.Fatalf("entitytest: decode state %T: %v", res.State, err)
			}
			if !reflect.DeepEqual(back, res.State) {
				f.t.Errorf("entitytest: state %T does not survive its codec:\n got %#v\nwant %#v", res.State, back, res.State)
			}
		}
		f.state, f.seq = res.State, res.Seq
	}
	return &Outcome[S, E, R]{t: f.t, Result: res}
}

// ThenEvents asserts that the command succeeded and persisted exactly want, in order.
func (o *Outcome[S, E, R]) ThenEvents(want ...E) *Outcome[S, E, R] {
	o.t.Helper()
	if o.Err != nil {
		o.t.Errorf("entitytest: want events %s, got error %v", describe(want), o.Err)
		return o
	}
	if len(want) == 0 && len(o.Events) == 0 {
		return o
	}
	if !reflect.DeepEqual(o.Events, want) {
		o.t.Errorf("entitytest: events\n got %s\nwant %s", describe(o.Events), describe(want))
	}
	return o
}

// ThenNoEvents asserts that the command succeeded without persisting.
func (o *Outcome[S, E, R]) ThenNoEvents() *Outcome[S, E, R] {
	o.t.Helper()
	return o.ThenEvents()
}

// ThenReply asserts that the command succeeded with reply want.
func (o *Outcome[S, E, R]) ThenReply(want R) *Outcome[S, E, R] {
	o.t.Helper()
	if o.Err != nil {
		o.t.Errorf("entitytest: want reply %#v, got error %v", want, o.Err)
	} else if !reflect.DeepEqual(o.Reply, want) {
		o.t.Errorf("entitytest: reply\n got %#v\nwant %#v", o.Reply, want)
	}
	return o
}

// ThenState asserts the entity's state after the command.
func (o *Outcome[S, E, R]) ThenState(want S) *Outcome[S, E, R] {
	o.t.Helper()
	if !reflect.DeepEqual(o.State, want) {
		o.t.Errorf("entitytest: state\n got %#v\nwant %#v", o.State, want)
	}
	return o
}

// ThenError asserts that the command was rejected with an error matching
// target (errors.Is) and persisted nothing.
func (o *Outcome[S, E, R]) ThenError(target error) *Outcome[S, E, R] {
	o.t.Helper()
	if o.Err == nil {
		o.t.Errorf("entitytest: want error %v, got success with events %s", target, describe(o.Events))
	} else if !errors.Is(o.Err, target) {
		o.t.Errorf("entitytest: error %v does not match %v", o.Err, target)
	}
	return o
}

// ThenPanic asserts that user code panicked.
func (o *Outcome[S, E, R]) ThenPanic() *Outcome[S, E, R] {
	o.t.Helper()
	var pe *entity.PanicError
	if !errors.As(o.Err, &pe) {
		o.t.Errorf("entitytest: want a panic, got error %v", o.Err)
	}
	return o
}

func describe[E any](events []E) string {
	if len(events) == 0 {
		return "(none)"
	}
	s := ""
	for i, e := range events {
		if i > 0 {
			s += ", "
		}
		s += fmt.Sprintf("%T%+v", e, e)
	}
	return s
}
