package timer

import (
	"bytes"
	"time"

	"github.com/eventsourced-go/eventsourced/binarize"
	"github.com/eventsourced-go/eventsourced/entity"
)

// Event is implemented by the events of a timer stream: [Scheduled],
// [Cancelled] and [Fired]. Each timer id is one stream of the timers'
// entity type ([WithEntityType]); a read model of the timers can follow
// that type with package projection and decode with [Events].
type Event interface{ timerEvent() }

// Scheduled records that the timer is due at At with Payload. Every
// Schedule that changes the timer records one with the next Generation,
// so a reschedule is a new Scheduled, and a Scheduled is all a reader
// needs to know about the timer's current generation.
type Scheduled struct {
	At         time.Time `json:"at"`
	Payload    []byte    `json:"payload,omitempty"`
	Generation uint64    `json:"gen"`
}

// Cancelled records that the pending generation Generation was cancelled.
type Cancelled struct {
	Generation uint64 `json:"gen"`
}

// Fired records that the generation Generation fired: the fire function
// returned nil for it.
type Fired struct {
	Generation uint64 `json:"gen"`
}

func (Scheduled) timerEvent() {}
func (Cancelled) timerEvent() {}
func (Fired) timerEvent()     {}

// Event type names in the log.
const (
	EventScheduled = "Scheduled"
	EventCancelled = "Cancelled"
	EventFired     = "Fired"
)

// Events returns the codec of the timer events (msgpack), for readers of
// the timer streams.
func Events() *binarize.Registry[Event] {
	r := binarize.NewRegistry[Event](binarize.Msgpack)
	binarize.MustRegister[Scheduled](r, EventScheduled)
	binarize.MustRegister[Cancelled](r, EventCancelled)
	binarize.MustRegister[Fired](r, EventFired)
	return r
}

// State is what a timer is, as [Timers.Get] reports it.
type State int

const (
	// StateNone: the timer was never scheduled.
	StateNone State = iota
	// StatePending: scheduled, not yet fired nor cancelled.
	StatePending
	// StateCancelled: the last generation was cancelled.
	StateCancelled
	// StateFired: the last generation fired.
	StateFired
)

// String returns "none", "pending", "cancelled" or "fired".
func (s State) String() string {
	switch s {
	case StateNone:
		return "none"
	case StatePending:
		return "pending"
	case StateCancelled:
		return "cancelled"
	case StateFired:
		return "fired"
	}
	return "State(?)"
}

// state is a timer entity's state: its last generation and what became of
// it.
type state struct {
	gen     uint64
	st      State
	at      time.Time
	payload []byte
}

func apply(s state, e Event) state {
	switch e := e.(type) {
	case Scheduled:
		return state{gen: e.Generation, st: StatePending, at: e.At, payload: e.Payload}
	case Cancelled:
		if e.Generation == s.gen {
			s.st = StateCancelled
		}
	case Fired:
		if e.Generation == s.gen {
			s.st = StateFired
		}
	}
	return s
}

// timerType returns the entity type of the timers stored under typ.
func timerType(typ string) entity.Type[state, Event] {
	return entity.Type[state, Event]{Name: typ, Apply: apply, Events: Events()}
}

type tx = entity.Tx[state, Event]

// scheduleCmd schedules the timer, as a new generation unless it is
// pending already at the same time with the same payload: so a Schedule
// retried after an unknown outcome, or a projection that schedules the
// same timer again after a restart, changes nothing.
type scheduleCmd struct {
	at      time.Time
	payload []byte
}

func (c scheduleCmd) Handle(tx *tx) (uint64, error) {
	s := tx.State()
	if s.st == StatePending && s.at.Equal(c.at) && bytes.Equal(s.payload, c.payload) {
		return s.gen, nil
	}
	return tx.Persist(Scheduled{At: c.at, Payload: c.payload, Generation: s.gen + 1}).gen, nil
}

// cancelCmd cancels the pending generation, if any: it replies whether
// there was one.
type cancelCmd struct{}

func (cancelCmd) Handle(tx *tx) (bool, error) {
	s := tx.State()
	if s.st != StatePending {
		return false, nil
	}
	tx.Persist(Cancelled{Generation: s.gen})
	return true, nil
}

// verdict is the reply of checkCmd and markFiredCmd: whether the
// generation asked about is the pending one (checkCmd) or was recorded
// fired (markFiredCmd), and the timer's last generation, which tells the
// scheduler whether the entity is behind the log.
type verdict struct {
	ok  bool
	gen uint64
}

// checkCmd asks whether generation gen is the pending one: the scheduler
// asks before it fires, so that a timer cancelled or rescheduled in the
// log is not fired because the scheduler has not read that yet.
type checkCmd struct{ gen uint64 }

func (c checkCmd) Handle(tx *tx) (verdict, error) {
	s := tx.State()
	return verdict{ok: s.st == StatePending && s.gen == c.gen, gen: s.gen}, nil
}

// markFiredCmd records that generation gen fired, if it is still the
// pending one; otherwise (cancelled, rescheduled or recorded already
// meanwhile) it records nothing.
type markFiredCmd struct{ gen uint64 }

func (c markFiredCmd) Handle(tx *tx) (verdict, error) {
	s := tx.State()
	if s.st != StatePending || s.gen != c.gen {
		return verdict{gen: s.gen}, nil
	}
	tx.Persist(Fired{Generation: c.gen})
	return verdict{ok: true, gen: s.gen}, nil
}

// renewCmd records the pending generation gen again, as it is, if it is
// still pending: a later Scheduled of the same generation, which the
// scheduler reads as the same timer needed from a later Position, so that
// its low-water mark can move past the first one.
type renewCmd struct{ gen uint64 }

func (c renewCmd) Handle(tx *tx) (bool, error) {
	s := tx.State()
	if s.st != StatePending || s.gen != c.gen {
		return false, nil
	}
	tx.Persist(Scheduled{At: s.at, Payload: s.payload, Generation: s.gen})
	return true, nil
}

// getCmd replies with the timer's state.
type getCmd struct{}

func (getCmd) Handle(tx *tx) (state, error) { return tx.State(), nil }
