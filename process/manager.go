package process

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/eventsourced-go/eventsourced/binarize"
	"github.com/eventsourced-go/eventsourced/entity"
	"github.com/eventsourced-go/eventsourced/eventlog"
	"github.com/eventsourced-go/eventsourced/projection"
)

// Timers is where a manager keeps its instances' timers: package timer's
// *timer.Timers, or any store of durable timers that records each firing
// as an event of one entity type in the same log.
type Timers interface {
	// Type is the entity type whose events record the timers, firings
	// included; the manager follows it beside the sources.
	Type() string
	// Schedule sets the timer id to fire at (at once if at has passed)
	// with payload, replacing a pending timer of that id.
	Schedule(ctx context.Context, id string, at time.Time, payload []byte) error
	// Cancel cancels the timer id; a timer that is not pending is left
	// alone.
	Cancel(ctx context.Context, id string) error
	// Fired reports whether rec records the firing of a timer, and which.
	Fired(rec eventlog.Record) (id string, ok bool)
}

// Option configures a [Manager].
type Option func(*config) error

type config struct {
	timers  Timers
	popts   []projection.Option
	kopts   []entity.KindOption
	timeout time.Duration
	slices  int   // 0: not sliced
	own     []int // the slices this manager runs
}

// WithTimers gives the manager durable timers; without it, a step that
// sets or cancels a timer fails.
func WithTimers(t Timers) Option {
	return func(c *config) error {
		if t == nil {
			return fmt.Errorf("%w: WithTimers(nil)", ErrInvalid)
		}
		c.timers = t
		return nil
	}
}

// WithProjectionOptions passes options to the manager's projection
// (retries, poison policy, dead letters, telemetry; see package
// projection).
func WithProjectionOptions(opts ...projection.Option) Option {
	return func(c *config) error {
		c.popts = append(c.popts, opts...)
		return nil
	}
}

// WithKindOptions passes options to the entity type of the instances
// (snapshots, passivation; see package entity).
func WithKindOptions(opts ...entity.KindOption) Option {
	return func(c *config) error {
		c.kopts = append(c.kopts, opts...)
		return nil
	}
}

// WithStepTimeout bounds one step: recording it, sending its commands and
// setting its timers (default 30 s). A step that runs out fails and is
// retried like any failure.
func WithStepTimeout(d time.Duration) Option {
	return func(c *config) error {
		if d <= 0 {
			return fmt.Errorf("%w: WithStepTimeout(%v): must be positive", ErrInvalid, d)
		}
		c.timeout = d
		return nil
	}
}

// WithSlices splits the process's inputs into n slices by instance (see
// projection.WithSlice and projection.WithSliceKey): every input of an
// instance belongs to the slice projection.SliceOf("", instance, n), so an
// instance's inputs stay in one slice, in Position order. The manager runs
// the slices own, each a projection with its own offset; run every slice
// once, in this process or spread over several (a cluster's members), each
// with the same definition and n. Change n only with every slice stopped,
// with projection.Reslice on the slices' projections.
func WithSlices(n int, own ...int) Option {
	return func(c *config) error {
		if n < 1 || n > projection.MaxSlices {
			return fmt.Errorf("%w: WithSlices(%d, %v): want 1 <= n <= %d", ErrInvalid, n, own, projection.MaxSlices)
		}
		if len(own) == 0 {
			return fmt.Errorf("%w: WithSlices(%d): no slice to run", ErrInvalid, n)
		}
		seen := map[int]bool{}
		for _, i := range own {
			if i < 0 || i >= n || seen[i] {
				return fmt.Errorf("%w: WithSlices(%d, %v): slice %d is out of range or named twice", ErrInvalid, n, own, i)
			}
			seen[i] = true
		}
		c.slices, c.own = n, append([]int(nil), own...)
		return nil
	}
}

// Manager runs a process: a projection over the source types (and the
// timers' type) that hands each event to its instance, one step at a
// time.
type Manager[S any] struct {
	def    Definition[S]
	cfg    config
	kind   *entity.Kind[instance, stepped]
	projs  []*projection.Projection
	codec  binarize.Codec[S]
	steps  atomic.Uint64
	resent atomic.Uint64
	sent   atomic.Uint64
	stale  atomic.Uint64
}

// instance is the state of one instance as its entity keeps it: the
// process state (encoded), the state before the last step, the Position of
// the last step's input, and the pending timers by name.
type instance struct {
	State  []byte             `json:"state,omitempty"`
	Prev   []byte             `json:"prev,omitempty"`
	Last   uint64             `json:"last,omitempty"`
	Timers map[string]pending `json:"timers,omitempty"`
	// PrevTimers are the pending timers before the last step.
	PrevTimers map[string]pending `json:"prev_timers,omitempty"`
}

// pending is a timer an instance has set: the id it was set under in the
// Timers store, and its payload.
type pending struct {
	ID      string `json:"id"`
	Payload []byte `json:"payload,omitempty"`
}

// stepped is the one event of an instance: a step, with its input's
// Position, the state after it and the pending timers after it.
type stepped struct {
	Position uint64             `json:"position"`
	State    []byte             `json:"state,omitempty"`
	Timers   map[string]pending `json:"timers,omitempty"`
}

var steppedEvents = func() *binarize.Registry[stepped] {
	r := binarize.NewRegistry[stepped](binarize.JSON)
	if err := binarize.Register[stepped](r, "Stepped"); err != nil {
		panic(err)
	}
	return r
}()

// New registers the process's instance type on sys and returns a stopped
// Manager whose projection reads sys's log (which must be an
// eventlog.AllReader, as every log of this module is) and keeps its offset
// in offsets under the process's name.
func New[S any](sys *entity.System, def Definition[S], offsets projection.OffsetStore, opts ...Option) (*Manager[S], error) {
	if sys == nil {
		return nil, fmt.Errorf("%w: nil entity system", ErrInvalid)
	}
	if err := def.validate(); err != nil {
		return nil, err
	}
	if offsets == nil {
		return nil, fmt.Errorf("%w: process %s: nil offset store", ErrInvalid, def.Name)
	}
	cfg := config{timeout: 30 * time.Second}
	for i, o := range opts {
		if o == nil {
			return nil, fmt.Errorf("%w: process %s: option %d is nil", ErrInvalid, def.Name, i+1)
		}
		if err := o(&cfg); err != nil {
			return nil, fmt.Errorf("process %s: %w", def.Name, err)
		}
	}
	m := &Manager[S]{def: def, cfg: cfg, codec: def.State}
	if m.codec == nil {
		m.codec = binarize.Value[S](binarize.JSON)
	}
	types := append([]string(nil), def.Sources...)
	if cfg.timers != nil {
		tt := cfg.timers.Type()
		if slices.Contains(def.Sources, tt) {
			return nil, fmt.Errorf("%w: process %s: the timers' type %s is a source", ErrInvalid, def.Name, tt)
		}
		types = append(types, tt)
	}
	kind, err := entity.Register(sys, entity.Type[instance, stepped]{
		Name:   def.Name,
		Apply:  applyStep,
		Events: steppedEvents,
		State:  binarize.Value[instance](binarize.JSON),
	}, cfg.kopts...)
	if err != nil {
		return nil, fmt.Errorf("process %s: %w", def.Name, err)
	}
	m.kind = kind
	if cfg.slices == 0 {
		cfg.own = []int{-1}
	}
	for _, i := range cfg.own {
		popts := cfg.popts
		if i >= 0 {
			popts = append(slices.Clip(popts), projection.WithSlice(i, cfg.slices), projection.WithSliceKey(m.instanceOf))
		}
		proj, err := projection.NewOfTypes(sys.Log(), types, def.Name, offsets, projection.PerEvent(m.handle), popts...)
		if err != nil {
			return nil, fmt.Errorf("process %s: %w", def.Name, err)
		}
		m.projs = append(m.projs, proj)
	}
	return m, nil
}

// instanceOf is the slice key of an input: its instance, "" for an event
// no instance takes.
func (m *Manager[S]) instanceOf(rec eventlog.Record) string {
	if m.cfg.timers != nil && rec.EntityType == m.cfg.timers.Type() {
		inst, _, _ := splitTimerID(rec.EntityID)
		return inst
	}
	inst, _ := m.def.Correlate(rec)
	return inst
}

func applyStep(s instance, e stepped) instance {
	return instance{State: e.State, Prev: s.State, Last: e.Position, Timers: e.Timers, PrevTimers: s.Timers}
}

// Start starts the manager's projections (one per slice it runs; see
// projection.Projection.Start).
func (m *Manager[S]) Start(ctx context.Context) error {
	for i, p := range m.projs {
		if err := p.Start(ctx); err != nil {
			for _, started := range m.projs[:i] {
				_ = started.Stop(context.WithoutCancel(ctx))
			}
			return err
		}
	}
	return nil
}

// Stop stops them and waits for the steps in flight.
func (m *Manager[S]) Stop(ctx context.Context) error {
	var errs []error
	for _, p := range m.projs {
		errs = append(errs, p.Stop(ctx))
	}
	return errors.Join(errs...)
}

// Wait waits until they have all stopped, and returns why (a
// projection.PoisonError if an input failed for good).
func (m *Manager[S]) Wait(ctx context.Context) error {
	var errs []error
	for _, p := range m.projs {
		errs = append(errs, p.Wait(ctx))
	}
	return errors.Join(errs...)
}

// WaitFor waits until every slice the manager runs has handled the log up
// to Position pos (see projection.Projection.WaitFor).
func (m *Manager[S]) WaitFor(ctx context.Context, pos uint64) error {
	for _, p := range m.projs {
		if err := p.WaitFor(ctx, pos); err != nil {
			return err
		}
	}
	return nil
}

// Projections returns the manager's projections, one per slice it runs
// (one if not sliced), for Status, SetOffset, dead letters and Reslice.
func (m *Manager[S]) Projections() []*projection.Projection { return slices.Clip(m.projs) }

// Stats counts what the manager did since it was made.
type Stats struct {
	// Steps is the inputs recorded as steps.
	Steps uint64
	// Resent is the steps run again after a crash or a failure, whose
	// effects were sent again.
	Resent uint64
	// Commands is the commands sent (again ones included).
	Commands uint64
	// StaleTimers is the firings of timers that a later step cancelled or
	// replaced, ignored.
	StaleTimers uint64
}

// Stats returns the counts.
func (m *Manager[S]) Stats() Stats {
	return Stats{Steps: m.steps.Load(), Resent: m.resent.Load(), Commands: m.sent.Load(), StaleTimers: m.stale.Load()}
}

// State returns the state of instance as of its last step, and whether it
// has one.
func (m *Manager[S]) State(ctx context.Context, instance string) (S, bool, error) {
	var zero S
	st, err := entity.Ask(ctx, m.kind.Ref(instance), read{})
	if err != nil {
		return zero, false, err
	}
	if st.Last == 0 {
		return m.initial(), false, nil
	}
	s, err := m.codec.Decode(st.State)
	if err != nil {
		return zero, false, fmt.Errorf("process %s: instance %s: decode the state: %w", m.def.Name, instance, err)
	}
	return s, true, nil
}

func (m *Manager[S]) initial() S {
	if m.def.Initial != nil {
		return m.def.Initial()
	}
	var zero S
	return zero
}

// handle is the projection's handler: it finds the input's instance and
// runs its step.
func (m *Manager[S]) handle(ctx context.Context, rec eventlog.Record) error {
	in := Input{Record: rec}
	var timerID string
	if m.cfg.timers != nil && rec.EntityType == m.cfg.timers.Type() {
		id, ok := m.cfg.timers.Fired(rec)
		if !ok {
			return nil // a timer scheduled or cancelled
		}
		inst, name, ok := splitTimerID(id)
		if !ok {
			return nil // not one of ours
		}
		in.Instance, in.Timer, timerID = inst, &Fired{Name: name}, id
	} else {
		inst, ok := m.def.Correlate(rec)
		if !ok {
			return nil
		}
		if err := eventlog.ValidateStream(m.def.Name, inst); err != nil {
			return fmt.Errorf("%w: process %s: Correlate of %s/%s seq %d: instance id: %v",
				ErrInvalid, m.def.Name, rec.EntityType, eventlog.FormatID(rec.EntityID), rec.Seq, err)
		}
		in.Instance = inst
	}
	ctx, cancel := context.WithTimeout(ctx, m.cfg.timeout)
	defer cancel()
	out, err := entity.Ask(ctx, m.kind.Ref(in.Instance), step[S]{m: m, in: in, timerID: timerID})
	if err != nil {
		return fmt.Errorf("process %s: instance %s: step at position %d: %w", m.def.Name, in.Instance, rec.Position, err)
	}
	switch out.kind {
	case stepSkipped:
		return nil
	case stepStale:
		m.stale.Add(1)
		return nil
	case stepAgain:
		m.resent.Add(1)
	default:
		m.steps.Add(1)
	}
	return m.effect(ctx, in, out)
}

// effect sends a recorded step's commands, then sets and cancels its
// timers.
func (m *Manager[S]) effect(ctx context.Context, in Input, out stepOut) error {
	pos := strconv.FormatUint(in.Record.Position, 10)
	for i, c := range out.effects.Commands {
		key := m.def.Name + "/" + in.Instance + "/" + pos + "/" + strconv.Itoa(i)
		m.sent.Add(1)
		if err := c.send(entity.WithIdempotencyKey(ctx, key)); err != nil {
			return fmt.Errorf("process %s: instance %s: step at position %d: command %d (%s): %w",
				m.def.Name, in.Instance, in.Record.Position, i+1, c, err)
		}
	}
	for _, t := range out.effects.Timers {
		if err := m.cfg.timers.Schedule(ctx, out.timers[t.Name], t.At, t.Payload); err != nil {
			return fmt.Errorf("process %s: instance %s: set timer %q: %w", m.def.Name, in.Instance, t.Name, err)
		}
	}
	for _, id := range out.cancel {
		if err := m.cfg.timers.Cancel(ctx, id); err != nil {
			return fmt.Errorf("process %s: instance %s: cancel timer %s: %w", m.def.Name, in.Instance, id, err)
		}
	}
	return nil
}

// timerID is the id of the timer name of instance set by the step at
// Position pos: a timer set again gets a new id, so a firing of the one
// it replaced is recognised as stale.
func timerID(instance, name string, pos uint64) string {
	return instance + "/" + name + "@" + strconv.FormatUint(pos, 10)
}

// splitTimerID returns the instance and the timer name of a timer id.
func splitTimerID(id string) (instance, name string, ok bool) {
	at := strings.LastIndexByte(id, '@')
	if at < 0 {
		return "", "", false
	}
	slash := strings.LastIndexByte(id[:at], '/')
	if slash < 0 {
		return "", "", false
	}
	return id[:slash], id[slash+1 : at], true
}

type stepKind int

const (
	stepDone    stepKind = iota // recorded now
	stepAgain                   // recorded before: effects decided again
	stepSkipped                 // recorded before an earlier step: nothing to do
	stepStale                   // a timer that is no longer pending
)

// stepOut is a step's reply: what to do outside the instance.
type stepOut struct {
	kind    stepKind
	effects Effects
	timers  map[string]string // the ids of the timers the step sets, by name
	cancel  []string          // the ids of the timers to cancel
}

// step is the command that runs one step on an instance.
type step[S any] struct {
	m       *Manager[S]
	in      Input
	timerID string // for a timer's firing, its id
}

// Handle runs the step in the instance: it skips an input it has taken
// already, decides the effects of its last input again from the state
// before it, and records any later input's step.
func (c step[S]) Handle(tx *entity.Tx[instance, stepped]) (stepOut, error) {
	m, in, st := c.m, c.in, tx.State()
	pos := in.Record.Position
	var state []byte
	var timers map[string]pending
	switch {
	case pos < st.Last:
		return stepOut{kind: stepSkipped}, nil
	case pos == st.Last:
		// Recorded, but its effects may not all have been carried out:
		// decide them again from the state before it.
		state, timers = st.Prev, st.PrevTimers
	default:
		state, timers = st.State, st.Timers
	}
	if in.Timer != nil {
		p, ok := timers[in.Timer.Name]
		if !ok || p.ID != c.timerID {
			return stepOut{kind: stepStale}, nil
		}
		in.Timer.Payload = p.Payload
	}
	s := m.initial()
	if state != nil {
		var err error
		if s, err = m.codec.Decode(state); err != nil {
			return stepOut{}, fmt.Errorf("decode the state: %w", err)
		}
	}
	next, eff, err := m.def.Handle(s, in)
	if err != nil {
		return stepOut{}, err
	}
	if err := validateEffects(eff, m.cfg.timers != nil); err != nil {
		return stepOut{}, err
	}
	after := maps.Clone(timers)
	if in.Timer != nil {
		delete(after, in.Timer.Name)
	}
	out := stepOut{effects: eff}
	for _, name := range eff.Cancel {
		if p, ok := after[name]; ok {
			out.cancel = append(out.cancel, p.ID)
			delete(after, name)
		}
	}
	if len(eff.Timers) > 0 {
		out.timers = make(map[string]string, len(eff.Timers))
		if after == nil {
			after = make(map[string]pending, len(eff.Timers))
		}
	}
	for _, t := range eff.Timers {
		if p, ok := after[t.Name]; ok {
			out.cancel = append(out.cancel, p.ID) // replaced
		}
		id := timerID(tx.ID(), t.Name, pos)
		out.timers[t.Name], after[t.Name] = id, pending{ID: id, Payload: t.Payload}
	}
	if pos == st.Last {
		out.kind = stepAgain
		return out, nil
	}
	data, err := m.codec.Encode(next)
	if err != nil {
		return stepOut{}, fmt.Errorf("encode the state: %w", err)
	}
	tx.Persist(stepped{Position: pos, State: data, Timers: after})
	return out, nil
}

// read is the command that reads an instance's state.
type read struct{}

func (read) Handle(tx *entity.Tx[instance, stepped]) (instance, error) { return tx.State(), nil }
