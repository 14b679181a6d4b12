package timer

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unicode/utf8"

	"github.com/eventsourced-go/eventsourced/entity"
	"github.com/eventsourced-go/eventsourced/eventlog"
	"github.com/eventsourced-go/eventsourced/internal/lifecycle"
	"github.com/eventsourced-go/eventsourced/projection"
)

// Timer is a due timer as the fire function gets it.
type Timer struct {
	// Name is the name of the [Timers] it belongs to.
	Name string
	// ID is the timer's id.
	ID string
	// Generation counts the schedules of the timer id that changed it: 1
	// for the first, one more for each reschedule.
	Generation uint64
	// At is when it was due.
	At time.Time
	// Payload is what it was scheduled with. The fire function must not
	// modify it.
	Payload []byte
	// Key is the idempotency key of this fire, [Key](Name, ID,
	// Generation), also in the fire function's context
	// (entity.IdempotencyKeyFrom): every attempt to fire this generation,
	// before or after a restart, has the same key.
	Key string
	// Attempt counts the scheduler's attempts at this generation in this
	// run of the Timers, from 1: a fire that failed, and a check before
	// it or a record after it that failed in the store, count.
	Attempt int
}

// FireFunc is called when a timer is due, with ctx carrying the timer's
// idempotency key (entity.WithIdempotencyKey). It returns nil when the
// timer's work is done: then its firing is recorded and it does not fire
// again. An error (or a panic) makes it fire again later, with backoff
// ([WithRetry]). The same timer may fire more than once (see the package
// documentation): commands asked with ctx act once, since the entity
// answers a key it has recorded from the first outcome. Their entity
// types must keep keys (entity.WithIdempotency; the timers' own type
// does): entity.Ask refuses a keyed command to one that does not. It must
// return when ctx ends.
type FireFunc func(ctx context.Context, t Timer) error

// Key returns the idempotency key of generation gen of the timer id of
// the Timers name: "<name>/<id>/<gen>". Names contain no "/", so the key
// reads back unambiguously whatever the id.
func Key(name, id string, gen uint64) string {
	return name + "/" + id + "/" + strconv.FormatUint(gen, 10)
}

// Info is a timer as [Timers.Get] reports it.
type Info struct {
	ID string
	// State is what became of the last generation.
	State State
	// Generation is the last generation, 0 if never scheduled.
	Generation uint64
	// At and Payload are the last generation's.
	At      time.Time
	Payload []byte
}

// Timers schedules, cancels and fires the durable timers of one name.
// Create them with [New] and start the scheduler with [Timers.Start].
type Timers struct {
	sys     *entity.System
	name    string
	markKey string // the name the low-water mark is stored under: the projection's
	kind    *entity.Kind[state, Event]
	offsets projection.OffsetStore
	fire    FireFunc
	cfg     config
	codec   interface {
		Decode(name string, revision uint32, data []byte) (Event, error)
	}
	// p reads the timers; its offset lives in mem, which Start sets to
	// the stored low-water mark.
	p   *projection.Projection
	mem *projection.Memory

	// runs is the current run's cancel and each run's end and result.
	runs lifecycle.Runs

	// mu guards running, and serializes Start.
	mu      sync.Mutex
	running bool

	// cur is the current or last run's scheduler state; the projection's
	// handler reads it for every batch.
	cur atomic.Pointer[sched]
	// pausedSince is when the control records paused the running timers
	// (Unix nanoseconds), 0 while they are not paused.
	pausedSince atomic.Int64
	tel         telemetry
}

// New returns the timers named name, stored as entities of sys (type
// "<name>-timers" unless [WithEntityType] says otherwise), which fire
// with fire once started. offsets keeps the scheduler's low-water mark
// under name (or the slice's name, see [WithSlice]); any
// projection.OffsetStore does.
//
// A name is 1 to 200 bytes of UTF-8 without NUL or "/". Errors match
// [ErrInvalid] and name what was wrong; registering the entity type fails
// if sys has that type already.
func New(sys *entity.System, name string, offsets projection.OffsetStore, fire FireFunc, opts ...Option) (*Timers, error) {
	switch {
	case sys == nil:
		return nil, fmt.Errorf("%w: nil entity.System", ErrInvalid)
	case name == "":
		return nil, fmt.Errorf("%w: empty timers name", ErrInvalid)
	case len(name) > 200 || !utf8.ValidString(name) || strings.ContainsAny(name, "/\x00"):
		return nil, fmt.Errorf("%w: timers name %s: want 1 to 200 bytes of UTF-8 without NUL or \"/\"", ErrInvalid, eventlog.FormatID(name))
	case offsets == nil:
		return nil, fmt.Errorf("%w: timers %s: nil offset store", ErrInvalid, name)
	case fire == nil:
		return nil, fmt.Errorf("%w: timers %s: nil fire function", ErrInvalid, name)
	}
	cfg := config{
		typ:         name + "-timers",
		concurrency: DefaultConcurrency,
		initial:     100 * time.Millisecond,
		maxDelay:    30 * time.Second,
		clock:       systemClock{},
		logger:      slog.Default(),
		markEvery:   DefaultMarkInterval,
		control:     projection.DefaultControlInterval,
		renewAfter:  DefaultRenewAfter,
	}
	for i, o := range opts {
		if o == nil {
			return nil, fmt.Errorf("%w: timers %s: option %d is nil", ErrInvalid, name, i+1)
		}
		if err := o(&cfg); err != nil {
			return nil, fmt.Errorf("timers %s: %w", name, err)
		}
	}
	t := &Timers{sys: sys, name: name, markKey: name, offsets: offsets, fire: fire, cfg: cfg, codec: Events()}
	popts := []projection.Option{
		projection.WithBatchSize(256),
		projection.WithBufferSize(1024),
		projection.WithLogger(cfg.logger),
	}
	if n := cfg.slice[1]; n > 0 {
		popts = append(popts, projection.WithSlice(cfg.slice[0], n))
	}
	t.mem = projection.NewMemory()
	p, err := projection.New(sys.Log(), cfg.typ, name, runOffsets{t.mem}, t.handle, append(popts, cfg.popts...)...)
	if err != nil {
		if errors.Is(err, projection.ErrInvalid) {
			return nil, fmt.Errorf("%w: timers %s: %w", ErrInvalid, name, err)
		}
		return nil, fmt.Errorf("timers %s: %w", name, err)
	}
	// The projection's name is the slice's, however the slice was given
	// (WithSlice, or projection.WithSlice among the projection options):
	// each slice keeps its own mark.
	t.p, t.markKey = p, p.Name()
	t.tel.init(cfg.mp, t.markKey)
	if err := t.tel.inst.Err; err != nil {
		cfg.logger.Warn("timers: a metric instrument could not be created; it measures nothing", "timers", t.markKey, "err", err)
	}
	// The timers keep idempotency keys, so that a Schedule or Cancel sent
	// with one (by a fire function, a process manager, a projection)
	// acts once.
	kopts := append([]entity.KindOption{entity.WithPassivateAfter(time.Minute), entity.WithIdempotency()}, cfg.kopts...)
	t.kind, err = entity.Register(sys, timerType(cfg.typ), kopts...)
	if err != nil {
		return nil, fmt.Errorf("timers %s: %w", name, err)
	}
	t.cur.Store(newSched(0))
	return t, nil
}

// markSaveTimeout bounds the save of the low-water mark when a run ends.
const markSaveTimeout = 10 * time.Second

// runOffsets is the offset store of the scheduler's projection: process
// memory, set to the low-water mark on every Start. It hides the
// Memory's control records, which nobody writes.
type runOffsets struct{ projection.OffsetStore }

// Name returns the timers' name.
func (t *Timers) Name() string { return t.name }

// Type returns the entity type the timers are stored as, one stream per
// timer id.
func (t *Timers) Type() string { return t.cfg.typ }

// Fired reports whether rec records the firing of one of these timers (a
// [Fired] event of their type), and which. A process manager (package
// process) that follows the timers' type beside its sources learns of
// firings this way: each such event records one firing of the timer's
// pending generation, in the log's order.
func (t *Timers) Fired(rec eventlog.Record) (id string, ok bool) {
	if rec.EntityType != t.cfg.typ || rec.Name != EventFired {
		return "", false
	}
	return rec.EntityID, true
}

// Projection returns the projection the scheduler reads the timers with,
// for its status and WaitFor: the scheduler knows of every timer event
// up to the Position WaitFor returns for.
func (t *Timers) Projection() *projection.Projection { return t.p }

// checkID checks a timer id as the log will, before any I/O.
func (t *Timers) checkID(op, id string) error {
	if id == "" {
		return fmt.Errorf("%w: %s: empty timer id", ErrInvalid, op)
	}
	if err := eventlog.ValidateStream(t.cfg.typ, id); err != nil {
		return fmt.Errorf("%w: %s: timer id: %w", ErrInvalid, op, err)
	}
	return nil
}

// Schedule schedules the timer id of these Timers to fire at at with
// payload; [Timers.Get] tells its generation.
//
//   - A new id, or one that fired or was cancelled, is scheduled as the
//     next generation: ids may be reused.
//   - A pending timer is rescheduled: its generation is replaced by the
//     next one, which fires at the new time; the old one never fires
//     (unless it was being fired at that moment, see the package
//     documentation).
//   - A pending timer scheduled again at the same time with the same
//     payload is left as it is: Schedule may be retried after an error,
//     and run again after a crash, without rescheduling.
//   - A time in the past is allowed: the timer is due at once and fires
//     as soon as the scheduler reads it. Timer.At says when it was due.
//
// A zero time, an empty or invalid id, or a payload over [MaxPayload]
// bytes is refused with an error matching [ErrInvalid] that names it.
// Other errors are entity.Ask's: after one matching
// entity.ErrOutcomeUnknown, the timer may or may not be scheduled, and
// calling Schedule again settles it.
func (t *Timers) Schedule(ctx context.Context, id string, at time.Time, payload []byte) error {
	if err := t.checkID("Schedule", id); err != nil {
		return err
	}
	if at.IsZero() {
		return fmt.Errorf("%w: Schedule %s: zero time", ErrInvalid, eventlog.FormatID(id))
	}
	if len(payload) > MaxPayload {
		return fmt.Errorf("%w: Schedule %s: payload of %d bytes is over MaxPayload (%d)", ErrInvalid, eventlog.FormatID(id), len(payload), MaxPayload)
	}
	// The time is kept as the log will give it back: no monotonic
	// reading, in UTC.
	if _, err := entity.Ask(ctx, t.kind.Ref(id), scheduleCmd{at: at.Round(0).UTC(), payload: payload}); err != nil {
		return fmt.Errorf("timer: %s: schedule %s: %w", t.name, eventlog.FormatID(id), err)
	}
	return nil
}

// After schedules the timer id to fire d from now (by the [Clock]), as
// [Timers.Schedule] does. A d of 0 or less is due at once.
func (t *Timers) After(ctx context.Context, id string, d time.Duration, payload []byte) error {
	return t.Schedule(ctx, id, t.cfg.clock.Now().Add(d), payload)
}

// Cancel cancels the pending timer id. A timer that is unknown, fired or
// cancelled already is left alone: Cancel returns nil and records
// nothing, so it may be retried. A timer cancelled before the scheduler has begun to fire it
// never fires, even if the scheduler has not read the cancellation yet:
// the scheduler asks the timer before each fire. A timer being fired when
// Cancel runs may still complete its fire; its firing is then not
// recorded, since the timer is cancelled.
func (t *Timers) Cancel(ctx context.Context, id string) error {
	if err := t.checkID("Cancel", id); err != nil {
		return err
	}
	if _, err := entity.Ask(ctx, t.kind.Ref(id), cancelCmd{}); err != nil {
		return fmt.Errorf("timer: %s: cancel %s: %w", t.name, eventlog.FormatID(id), err)
	}
	return nil
}

// Get returns what the timer id is, from its entity: State StateNone for
// an id never scheduled.
func (t *Timers) Get(ctx context.Context, id string) (Info, error) {
	if err := t.checkID("Get", id); err != nil {
		return Info{}, err
	}
	s, err := entity.Ask(ctx, t.kind.Ref(id), getCmd{})
	if err != nil {
		return Info{}, fmt.Errorf("timer: %s: get %s: %w", t.name, eventlog.FormatID(id), err)
	}
	return Info{ID: id, State: s.st, Generation: s.gen, At: s.at, Payload: s.payload}, nil
}

// Start starts the scheduler in goroutines the Timers own: it loads the
// low-water mark, reads the timers from there, and fires the due ones
// until ctx ends or [Timers.Stop] is called (not while paused: see the
// package documentation). It returns [ErrRunning] if the scheduler runs
// already, and the offset store's error if the mark or the control
// records cannot be read. Schedule, Cancel and Get work without it.
func (t *Timers) Start(ctx context.Context) error {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.running {
		return fmt.Errorf("%w: %s", ErrRunning, t.markKey)
	}
	mark, err := t.offsets.Load(ctx, t.markKey)
	if err != nil {
		return fmt.Errorf("timer: %s: load low-water mark: %w", t.markKey, err)
	}
	if err := t.p.SetOffset(ctx, mark); err != nil {
		return fmt.Errorf("timer: %s: %w", t.markKey, err)
	}
	// The control records are read before anything fires, so that paused
	// timers start paused.
	ctl, hasCtl := t.offsets.(projection.Controls)
	t.pausedSince.Store(0)
	if hasCtl {
		if err := t.pollControl(ctx, ctl); err != nil {
			return err
		}
	}
	s := newSched(mark)
	// The scheduler's own commands carry no idempotency key, whatever
	// ctx has: each fire gets its own.
	rctx, cancel := context.WithCancel(entity.WithIdempotencyKey(ctx, ""))
	t.cur.Store(s) // before the projection's handler runs
	if err := t.p.Start(rctx); err != nil {
		cancel()
		return fmt.Errorf("timer: %s: %w", t.markKey, err)
	}
	end := t.runs.Begin(cancel)
	t.running = true

	var wg sync.WaitGroup
	work := make(chan *entry, t.cfg.concurrency)
	wg.Go(func() { t.dispatch(rctx, s, work) })
	for range t.cfg.concurrency {
		wg.Go(func() { t.worker(rctx, s, work) })
	}
	wg.Go(func() { t.saveMarks(rctx, s) })
	reg := t.tel.inst.Observe(t.observe, t.tel.pending, t.tel.due, t.tel.paused)
	if hasCtl {
		wg.Go(func() { t.followControl(rctx, ctl, s) })
	}
	go func() {
		// The projection runs until rctx ends, or stops at an event it
		// cannot decode.
		perr := t.p.Wait(context.Background())
		cancel()
		wg.Wait()
		_ = reg.Unregister()
		sctx, scancel := context.WithTimeout(context.WithoutCancel(ctx), markSaveTimeout)
		if err := t.saveMark(sctx, s); err != nil {
			t.cfg.logger.Warn("timers could not save their low-water mark on stop", "timers", t.markKey, "err", err)
		}
		scancel()
		t.mu.Lock()
		t.running = false
		t.mu.Unlock()
		end(perr)
	}()
	return nil
}

// Stop stops the scheduler and waits until its goroutines have ended and
// the low-water mark is saved, or ctx ends (an error wrapping ctx.Err()).
// A fire in progress sees its context canceled; unless its firing was
// recorded before, the timer fires again after the next Start, with the
// same key. Stop on timers that do not run returns nil. It does not shut
// the entity.System down: stop the timers first, then the System (a
// scheduler whose System is closed retries its commands until stopped).
func (t *Timers) Stop(ctx context.Context) error {
	if err := t.runs.Stop(ctx); err != nil {
		return fmt.Errorf("timer: stop %s: %w", t.markKey, err)
	}
	return nil
}

// Wait waits for the current or last run to end and returns why: nil
// after Stop or the end of the Start context, a *projection.PoisonError
// if a timer event could not be decoded. It returns ctx.Err() if ctx
// ends first, and nil if the scheduler never started.
func (t *Timers) Wait(ctx context.Context) error { return t.runs.Wait(ctx) }

// Run starts the scheduler and waits for it to end.
func (t *Timers) Run(ctx context.Context) error {
	if err := t.Start(ctx); err != nil {
		return err
	}
	return t.Wait(context.Background())
}

// Status is the scheduler's progress since its last Start.
type Status struct {
	// Name is the name the low-water mark is stored under: the timers'
	// name, or its slice's.
	Name    string
	Running bool
	// Pending counts the timers the scheduler has read as scheduled and
	// not yet read as fired or cancelled, those being fired included.
	Pending int
	// Due counts the pending timers that are due and wait for a worker
	// (or for a retry, after a failure); InFlight those being fired.
	Due, InFlight int
	// Fired counts the fire calls that returned nil; Recorded the
	// firings recorded in the log; Failures the fire calls that failed
	// (or panicked); StoreErrors the commands to the timer entities that
	// failed (they are retried).
	Fired, Recorded, Failures, StoreErrors uint64
	// LastError is the last failure of a fire call or a command, and
	// LastErrorTime when it happened.
	LastError     error
	LastErrorTime time.Time
	// Mark is the low-water mark last stored: a restart reads the timer
	// events after it. Next is the mark the scheduler would store now.
	Mark, Next uint64
	// Paused is set while the control records pause the timers
	// ([projection.Pause] of their name or their slice's name): due
	// timers wait, and fire once resumed. PausedSince is when the
	// running timers read the pause.
	Paused      bool
	PausedSince time.Time
	// Projection is the status of the projection that reads the timers:
	// its Handled counts the timer events read since Start, Lag those
	// read and not yet handled.
	Projection projection.Status
}

// Status returns the scheduler's progress.
func (t *Timers) Status() Status {
	t.mu.Lock()
	running := t.running
	t.mu.Unlock()
	s := t.cur.Load()
	st := Status{Name: t.markKey, Running: running, Projection: t.p.Status()}
	if since := t.pausedSince.Load(); running && since != 0 {
		st.Paused, st.PausedSince = true, time.Unix(0, since)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	now := unixNano(t.cfg.clock.Now())
	st.Pending, st.InFlight = len(s.byID), s.inflight
	st.Due = s.h.countDue(now)
	st.Fired, st.Recorded, st.Failures, st.StoreErrors = s.fired, s.recorded, s.failures, s.storeErrors
	st.LastError, st.LastErrorTime = s.lastErr, s.lastErrTime
	st.Mark, st.Next = s.saved, s.markLocked()
	return st
}

// Reslice changes the number of slices of the timers name (see
// [WithSlice]) from from to to (0 or 1: not sliced), by setting the
// low-water mark of every new slice to the lowest mark of the old ones:
// each old mark is before every timer its slice still had pending, so the
// lowest is before every pending timer, whichever new slice it falls in.
// The new slices read a little more on their first start, nothing is
// missed. Stop every runner of the old slices first, and start the new
// ones after. It can be run again if it fails half way.
func Reslice(ctx context.Context, offsets projection.OffsetStore, name string, from, to int) error {
	if offsets == nil {
		return fmt.Errorf("%w: Reslice %s: nil offset store", ErrInvalid, name)
	}
	if name == "" || from < 0 || to < 0 || from > projection.MaxSlices || to > projection.MaxSlices {
		return fmt.Errorf("%w: Reslice(%q, %d, %d): want a name and 0 <= slices <= %d", ErrInvalid, name, from, to, projection.MaxSlices)
	}
	names := func(n int) []string {
		if n <= 1 {
			return []string{name}
		}
		out := make([]string, n)
		for i := range out {
			out[i] = projection.SliceName(name, i, n)
		}
		return out
	}
	var low uint64
	for i, n := range names(from) {
		m, err := offsets.Load(ctx, n)
		if err != nil {
			return fmt.Errorf("timer: reslice %s: load the mark of %s: %w", name, n, err)
		}
		if i == 0 || m < low {
			low = m
		}
	}
	for _, n := range names(to) {
		m, err := offsets.Load(ctx, n)
		if err != nil {
			return fmt.Errorf("timer: reslice %s: load the mark of %s: %w", name, n, err)
		}
		if m == low {
			continue
		}
		if err := offsets.Commit(ctx, n, m, low, func(context.Context) error { return nil }); err != nil {
			return fmt.Errorf("timer: reslice %s: set the mark of %s to %d: %w", name, n, low, err)
		}
	}
	return nil
}
