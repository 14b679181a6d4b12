package projection

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"
)

// Control is the control record of a projection name: what an operator
// asks of the projection's runners, wherever they run. A running
// [Projection] whose offset store implements [Controls] reads it every
// [WithControlInterval] and obeys it; [Pause], [Resume] and
// [RequestRetry] write it from any process, an operator CLI included.
//
// The zero Control asks nothing: it is what a name never written has.
type Control struct {
	// Paused asks the runners not to call the handler until it is
	// cleared. They keep their offset and read-ahead buffer; the events
	// appended meanwhile are handled after [Resume].
	Paused bool `json:"paused,omitempty"`
	// PausedAt is when [Pause] paused it; zero when not paused.
	PausedAt time.Time `json:"paused_at,omitzero"`
	// Retries are the Positions of the name's dead letters that an
	// operator asked to retry ([RequestRetry]), ascending, without
	// duplicates. The runner of the name retries each with its handler,
	// as [Projection.RetryDeadLetter] does, and removes it from the list.
	Retries []uint64 `json:"retries,omitempty"`
}

// Controls is an optional capability of an [OffsetStore]: it keeps a
// [Control] record per projection name, beside the offsets, so that the
// processes that run a projection and the operator who steers it share
// nothing but the store. The records are versioned, and a write is
// conditional on the version read, so concurrent writers (an operator and
// a runner removing a served retry) never lose each other's changes.
//
// Implementations: [Memory] here, a table in PostgreSQL (pgprojection)
// and a key-value bucket in NATS (natsprojection).
// projectiontest.RunControls is their conformance suite.
type Controls interface {
	// LoadControl returns the control record of name and its version; the
	// zero Control and version 0 if name has none.
	LoadControl(ctx context.Context, name string) (Control, uint64, error)

	// SaveControl replaces the control record of name with c if its
	// version is version (0: name has none) and returns the new version,
	// which is never 0. Otherwise it changes nothing and returns an
	// error matching [ErrControlChanged]. The record of a name is
	// independent of its offset: neither write changes the other.
	SaveControl(ctx context.Context, name string, c Control, version uint64) (uint64, error)
}

// DefaultControlInterval is how often a running projection reads its
// control record unless [WithControlInterval] says otherwise.
const DefaultControlInterval = time.Second

// WithControlInterval sets how often a running projection whose offset
// store implements [Controls] reads its control record (default
// [DefaultControlInterval]): a pause, a resume or a retry request takes
// effect within d, once the batch in the handler, if any, has ended. The
// projection reads it also when it starts, before it handles anything, so
// a paused projection starts paused. Reading costs one round trip to the
// store per interval (two for a slice: see [Pause]), never one per batch.
func WithControlInterval(d time.Duration) Option {
	return func(c *config) error {
		if d <= 0 {
			return fmt.Errorf("%w: WithControlInterval(%v): must be positive", ErrInvalid, d)
		}
		c.controlInterval = d
		return nil
	}
}

// Pause pauses the projection name, in every process that runs it: within
// one control interval (see [WithControlInterval]), its runners stop
// calling the handler and [Status.State] reports [StatePaused]. Runners
// started later start paused. The offset stays where it is, so [Resume]
// carries on with the next event, exactly once with a transactional store.
//
// name is the name given to [New] or [NewOfTypes]: pausing it pauses
// every slice of the projection (see [WithSlice]). Pausing a
// [SliceName] pauses that slice alone. Pausing a paused projection
// changes nothing, not even [Control.PausedAt].
func Pause(ctx context.Context, c Controls, name string) error {
	now := time.Now()
	err := UpdateControl(ctx, c, name, func(ctl *Control) {
		if !ctl.Paused {
			ctl.Paused, ctl.PausedAt = true, now
		}
	})
	if err != nil {
		return fmt.Errorf("projection: pause %s: %w", name, err)
	}
	return nil
}

// Resume undoes [Pause] of name: within one control interval its runners
// carry on from their offset. A slice paused by its own [SliceName] stays
// paused until that name is resumed too.
func Resume(ctx context.Context, c Controls, name string) error {
	err := UpdateControl(ctx, c, name, func(ctl *Control) {
		ctl.Paused, ctl.PausedAt = false, time.Time{}
	})
	if err != nil {
		return fmt.Errorf("projection: resume %s: %w", name, err)
	}
	return nil
}

// RequestRetry asks the runner of the projection name to retry its dead
// letter at position: within one control interval of running (and not
// paused), it runs its handler on the event as [Projection.RetryDeadLetter]
// does, exactly once with a transactional store, and drops the dead letter
// if the handler succeeds; if it fails, the dead letter stays with the new
// error and one more attempt ([DeadLetter.Err], [DeadLetter.Attempts]).
// Either way, or if the dead letter is gone, the request is removed from
// [Control.Retries]; a request the runner could not serve (its dead-letter
// store failed) stays for the next interval.
//
// name is the dead letter's [DeadLetter.Projection]: for a sliced
// projection, the [SliceName] of the slice that skipped the event. A
// request stays in the record until a runner of that name serves it; the
// runner needs [WithDeadLetters]. Requesting a retry already requested
// changes nothing.
func RequestRetry(ctx context.Context, c Controls, name string, position uint64) error {
	err := UpdateControl(ctx, c, name, func(ctl *Control) {
		if i, found := slices.BinarySearch(ctl.Retries, position); !found {
			ctl.Retries = slices.Insert(ctl.Retries, i, position)
		}
	})
	if err != nil {
		return fmt.Errorf("projection: request retry of %s at %d: %w", name, position, err)
	}
	return nil
}

// UpdateControl changes the control record of name with f, which may run
// several times: it loads the record, lets f change it and saves it if
// nobody else did meanwhile, and starts over if somebody did. f must
// not keep the record. A record f leaves unchanged is not written.
func UpdateControl(ctx context.Context, c Controls, name string, f func(*Control)) error {
	if c == nil {
		return fmt.Errorf("%w: nil Controls", ErrInvalid)
	}
	if name == "" {
		return fmt.Errorf("%w: empty projection name", ErrInvalid)
	}
	for {
		ctl, version, err := c.LoadControl(ctx, name)
		if err != nil {
			return err
		}
		old := ctl
		old.Retries = slices.Clone(ctl.Retries)
		f(&ctl)
		if sameControl(old, ctl) {
			return nil
		}
		_, err = c.SaveControl(ctx, name, ctl, version)
		if !errors.Is(err, ErrControlChanged) {
			return err
		}
		if err := ctx.Err(); err != nil {
			return err
		}
	}
}

// sameControl reports whether a and b ask the same.
func sameControl(a, b Control) bool {
	return a.Paused == b.Paused && a.PausedAt.Equal(b.PausedAt) && slices.Equal(a.Retries, b.Retries)
}

// Compile-time check that Memory has the Controls capability.
var _ Controls = (*Memory)(nil)

// memControl is a control record of [Memory] and its version.
type memControl struct {
	c       Control
	version uint64
}

// controls returns m's control records, made on first use; m.mu is held.
func (m *Memory) controlsLocked() map[string]memControl {
	if m.controls == nil {
		m.controls = make(map[string]memControl)
	}
	return m.controls
}

// LoadControl implements [Controls].
func (m *Memory) LoadControl(ctx context.Context, name string) (Control, uint64, error) {
	if err := ctx.Err(); err != nil {
		return Control{}, 0, err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	r := m.controlsLocked()[name]
	c := r.c
	c.Retries = slices.Clone(c.Retries)
	return c, r.version, nil
}

// SaveControl implements [Controls]. It keeps a copy of c.Retries.
func (m *Memory) SaveControl(ctx context.Context, name string, c Control, version uint64) (uint64, error) {
	if err := ctx.Err(); err != nil {
		return 0, err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	all := m.controlsLocked()
	if cur := all[name].version; cur != version {
		return 0, fmt.Errorf("%w: %s is at version %d, not %d", ErrControlChanged, name, cur, version)
	}
	m.ctlVersion++ // versions never repeat, even across names
	c.Retries = slices.Clone(c.Retries)
	all[name] = memControl{c: c, version: m.ctlVersion}
	return m.ctlVersion, nil
}

// controlState is what a running projection last read from its control
// records; guarded by Projection.mu.
type controlState struct {
	paused bool
	since  time.Time
}

// controller reads and applies a running projection's control records.
// It is owned by the handler loop, which calls poll between batches, so
// whatever it does never overlaps a commit of the run.
type controller struct {
	p     *Projection
	c     Controls
	names []string // the records it obeys: the base name, and the slice's own
	// paused is the pause in force, which a failed read leaves as it was.
	paused bool
	// warned is set once the runner has logged that it cannot serve retry
	// requests, so that it does not log it every interval.
	warned bool
}

// newController returns the controller of a run of p, nil if p's store
// has no control records. It lives as long as the run, so the pause in
// force survives resubscriptions.
func (p *Projection) newController() *controller {
	c, ok := p.store.(Controls)
	if !ok {
		return nil
	}
	names := []string{p.base}
	if p.name != p.base {
		names = append(names, p.name)
	}
	return &controller{p: p, c: c, names: names}
}

// poll reads the control records and obeys them: it sets the pause in
// force and serves the retry requests of the projection's own name, unless
// paused. A record it cannot read leaves the pause as it was, and poll
// returns the error: a store that fails does not unpause a paused
// projection, nor pause a running one.
func (ct *controller) poll(ctx context.Context) error {
	p := ct.p
	var (
		paused bool
		since  time.Time
		own    Control
	)
	for _, name := range ct.names {
		lctx, done := p.storeCtx(ctx, "read of control record "+name, 0)
		c, _, err := ct.c.LoadControl(lctx, name)
		if err = done(err); err != nil {
			return fmt.Errorf("projection: read control record of %s: %w", name, err)
		}
		if c.Paused {
			if !paused || c.PausedAt.Before(since) {
				since = c.PausedAt
			}
			paused = true
		}
		if name == p.name {
			own = c
		}
	}
	if paused != ct.paused {
		msg := "projection resumed"
		if paused {
			msg = "projection paused"
		}
		p.cfg.logger.Info(msg, "projection", p.name, "entity_type", p.typ)
	}
	ct.paused = paused
	p.mu.Lock()
	p.ctl = controlState{paused: paused, since: since}
	p.mu.Unlock()
	if !paused && len(own.Retries) > 0 {
		ct.retry(ctx, own.Retries)
	}
	return nil
}

// tick is poll at an interval: a failure is logged and recorded in the
// Status, and the next interval tries again.
func (ct *controller) tick(ctx context.Context) {
	if err := ct.poll(ctx); err != nil && ctx.Err() == nil {
		p := ct.p
		p.recordError(err)
		p.cfg.logger.Warn("projection could not read its control record; keeping its state", "projection", p.name, "entity_type", p.typ, "paused", ct.paused, "err", err)
	}
}

// retry serves the retry requests of positions and removes those it served
// from the record.
func (ct *controller) retry(ctx context.Context, positions []uint64) {
	p := ct.p
	if p.cfg.deadLetters == nil {
		if !ct.warned {
			ct.warned = true
			p.cfg.logger.Warn("projection has retry requests but no dead-letter store (WithDeadLetters); leaving them", "projection", p.name, "entity_type", p.typ, "positions", positions)
		}
		return
	}
	var served []uint64
	for _, pos := range positions {
		failed, err := p.retryDeadLetter(ctx, pos)
		switch {
		case err == nil, failed, errors.Is(err, ErrNotFound):
			// Handled, gone (served before a crash, or dropped), or failed
			// again and recorded in the dead letter: the request is served.
			served = append(served, pos)
		case ctx.Err() != nil:
			return
		default:
			p.recordError(err)
			p.cfg.logger.Warn("projection could not serve a retry request; trying again later", "projection", p.name, "entity_type", p.typ, "position", pos, "err", err)
		}
	}
	if len(served) == 0 {
		return
	}
	err := UpdateControl(ctx, ct.c, p.name, func(c *Control) {
		c.Retries = slices.DeleteFunc(c.Retries, func(pos uint64) bool {
			_, found := slices.BinarySearch(served, pos)
			return found
		})
	})
	if err != nil && ctx.Err() == nil {
		// The requests stay and are served again next time; the dead
		// letters are gone, so that finds ErrNotFound and removes them.
		p.recordError(err)
		p.cfg.logger.Warn("projection could not remove served retry requests", "projection", p.name, "entity_type", p.typ, "positions", served, "err", err)
	}
}
