package projection

import (
	"context"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/eventsourced-go/eventsourced/eventlog"
	"github.com/eventsourced-go/eventsourced/internal/lifecycle"
)

// Handler applies a batch of events, in Position order, to a read model.
// Batches hold one event unless [WithBatchSize] allows more. A Handler that
// returns an error or panics is called again with the same batch, and a batch
// of several events that keeps failing is then retried one event at a time
// (see [WithRetry]). The handler must not keep the slice: it is reused.
type Handler func(ctx context.Context, batch []eventlog.Record) error

// PerEvent returns a [Handler] that calls h for each event of a batch in
// order and stops at the first error.
func PerEvent(h func(ctx context.Context, rec eventlog.Record) error) Handler {
	return func(ctx context.Context, batch []eventlog.Record) error {
		for _, rec := range batch {
			if err := h(ctx, rec); err != nil {
				return err
			}
		}
		return nil
	}
}

// Projection runs a [Handler] over the events of one entity type, or of
// several ([NewOfTypes]), from the offset its [OffsetStore] keeps under its
// name. Create it with [New]; start it with [Projection.Start] or
// [Projection.Run].
type Projection struct {
	log eventlog.Log
	typ string // the entity type, or the types as logs and metrics name them
	// types are the entity types of a projection made by NewOfTypes, read
	// with all (none: every type); nil for New's one type.
	types []string
	all   eventlog.AllReader
	name  string
	// base is the name given to New, name without its slice: the control
	// record every slice obeys.
	base    string
	store   OffsetStore
	handler Handler
	cfg     config
	tel     telemetry

	// hmu serializes the calls of the handler: the run's commits and
	// RetryDeadLetter's, so the handler never runs concurrently with
	// itself. It is taken only with a dead-letter store, the only way to
	// run the handler outside of the run.
	hmu sync.Mutex

	// head is the highest Position read from the log, written by the reader.
	head atomic.Uint64

	// runs is the current run's cancel and each run's end and result.
	runs lifecycle.Runs

	// mu guards every field below it.
	mu        sync.Mutex
	running   bool
	resetting bool      // a Reset or SetOffset is in progress, outside of mu
	buf       chan item // the current read-ahead buffer, for Lag
	inflight  int       // events in the handler
	inflightT time.Time // commit time of the first event in the handler
	st        Status
	// moved is closed, and set to nil, when the offset moves or a run
	// ends: WaitFor waits on it.
	moved chan struct{}
	// passed is, for a slice, the highest Position of another slice's
	// event that the slice is past: every event of its own before it is
	// handled, so its read model reflects everything up to passed
	// (WaitFor). passing are the events of other slices read while events
	// of its own before them were still to commit, in read order, one per
	// own event (the last one read after it): at most as many as the read
	// buffer and the handler hold. Cleared whenever the offset is set from
	// outside a run.
	passed  uint64
	passing []passMark
	// atPoison is the poison event the last run stopped at while the
	// offset is still before it: Start, Reset and SetOffset clear it.
	atPoison *PoisonError
	// ctl is what the run last read from its control records.
	ctl controlState
}

// New returns a projection named name of the events of entity type typ in
// log, kept by h, with its offset in store. Several projections may follow
// one type; each needs its own name.
func New(log eventlog.Log, typ, name string, store OffsetStore, h Handler, opts ...Option) (*Projection, error) {
	if typ == "" {
		return nil, fmt.Errorf("%w: empty entity type", ErrInvalid)
	}
	return newProjection(log, typ, nil, nil, name, store, h, opts)
}

// NewOfTypes returns a projection named name of the events of the entity
// types types (of every type if types is empty), read in one log-wide
// Position order through the log's eventlog.AllReader, for a read model
// built from several types. Its offset is a log-wide Position, so it
// never skips an event of one type that commits later with a smaller
// Position than an event of another type it has handled. The log must
// implement eventlog.AllReader (eventlog.Memory, natslog and postgreslog
// do).
func NewOfTypes(log eventlog.Log, types []string, name string, store OffsetStore, h Handler, opts ...Option) (*Projection, error) {
	all, ok := log.(eventlog.AllReader)
	if log != nil && !ok {
		return nil, fmt.Errorf("%w: projection %s: the log (%T) cannot read several entity types in one order (eventlog.AllReader)", ErrInvalid, name, log)
	}
	label := "*"
	if len(types) > 0 {
		for _, t := range types {
			if err := eventlog.ValidateType(t); err != nil {
				return nil, fmt.Errorf("%w: projection %s: %w", ErrInvalid, name, err)
			}
		}
		types = slices.Clone(types)
		label = strings.Join(types, ",")
	} else {
		types = []string{}
	}
	return newProjection(log, label, types, all, name, store, h, opts)
}

// newProjection is New and NewOfTypes once their types are checked.
func newProjection(log eventlog.Log, typ string, types []string, all eventlog.AllReader, name string, store OffsetStore, h Handler, opts []Option) (*Projection, error) {
	switch {
	case log == nil:
		return nil, fmt.Errorf("%w: nil log", ErrInvalid)
	case name == "":
		return nil, fmt.Errorf("%w: empty projection name", ErrInvalid)
	case store == nil:
		return nil, fmt.Errorf("%w: projection %s: nil offset store", ErrInvalid, name)
	case h == nil:
		return nil, fmt.Errorf("%w: projection %s: nil handler", ErrInvalid, name)
	}
	cfg := config{
		batch:    1,
		initial:  100 * time.Millisecond,
		maxDelay: 10 * time.Second,
		attempts: 5,
		logger:   slog.Default(),

		controlInterval: DefaultControlInterval,
	}
	for _, o := range opts {
		if err := o(&cfg); err != nil {
			return nil, err
		}
	}
	if cfg.buffer == 0 {
		cfg.buffer = 256
	}
	cfg.buffer = max(cfg.buffer, cfg.batch)
	base := name
	if cfg.slice.n > 0 {
		name = SliceName(name, cfg.slice.i, cfg.slice.n)
	}
	p := &Projection{log: log, typ: typ, types: types, all: all, name: name, base: base, store: store, handler: h, cfg: cfg}
	p.st.Name, p.st.EntityType, p.st.EntityTypes = name, typ, p.entityTypes()
	p.tel.init(&p.cfg, name, typ)
	if err := p.tel.inst.Err; err != nil {
		cfg.logger.Warn("projection metrics unavailable", "projection", name, "entity_type", typ, "err", err)
	}
	return p, nil
}

// entityTypes returns the types as Status reports them.
func (p *Projection) entityTypes() []string {
	if p.types == nil {
		return []string{p.typ}
	}
	return slices.Clone(p.types)
}

// Name returns the projection's name.
func (p *Projection) Name() string { return p.name }

// Start starts the projection in goroutines the projection owns. It runs
// until ctx is done, [Projection.Stop] is called, or a poison event stops it
// (see [WithPoison]). It returns [ErrRunning] if the projection runs already
// or a [Projection.Reset] is in progress.
func (p *Projection) Start(ctx context.Context) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.running || p.resetting {
		return fmt.Errorf("%w: %s", ErrRunning, p.name)
	}
	ctx, cancel := context.WithCancel(ctx)
	end := p.runs.Begin(cancel)
	p.running, p.atPoison = true, nil
	p.st = Status{Name: p.name, EntityType: p.typ, EntityTypes: p.entityTypes(), Running: true}
	p.clearPassed()
	// The lag gauges report while the projection runs: a Projection has no
	// Close, so a registration kept beyond the run would keep it alive.
	reg := p.tel.inst.Observe(p.observe, p.tel.lag, p.tel.lagTime)
	go func() {
		err := p.run(ctx)
		cancel()
		_ = reg.Unregister()
		p.mu.Lock()
		p.running, p.ctl = false, controlState{}
		p.atPoison, _ = err.(*PoisonError)
		p.st.Running = false
		p.wake()
		p.mu.Unlock()
		end(err)
	}()
	return nil
}

// Stop stops the projection and waits until its goroutines have ended or
// ctx is done; in the latter case it returns an error wrapping ctx.Err(). A batch in the handler sees its context canceled; whether its
// offset was stored is up to the store (see [OffsetStore]). Stop on a
// projection that is not running returns nil.
func (p *Projection) Stop(ctx context.Context) error {
	if err := p.runs.Stop(ctx); err != nil {
		return fmt.Errorf("projection: stop %s: %w", p.name, err)
	}
	return nil
}

// Wait waits for the current or last run to end and returns why: nil if it
// was stopped by [Projection.Stop] or the end of its context, a
// [*PoisonError] if a poison event stopped it. It returns ctx.Err() if ctx
// ends first, and nil if the projection was never started.
func (p *Projection) Wait(ctx context.Context) error { return p.runs.Wait(ctx) }

// Run starts the projection and waits for it to end: when ctx is done or
// [Projection.Stop] is called (nil), or at a poison event (a [*PoisonError]).
// Like Start, it returns [ErrRunning] if the projection runs already.
func (p *Projection) Run(ctx context.Context) error {
	if err := p.Start(ctx); err != nil {
		return err
	}
	return p.Wait(context.Background())
}

// Reset sets the projection's offset to 0 and runs clear (if not nil),
// which should empty the read model; the next Start rebuilds it from the
// first event. Transactional stores run clear and the reset in one
// transaction (see pgprojection.Clear); other stores set the offset first
// (see [OffsetStore.Reset]). Reset returns [ErrRunning] while the projection
// runs or another Reset is in progress, and Start returns it during a
// Reset.
func (p *Projection) Reset(ctx context.Context, clear func(ctx context.Context) error) error {
	p.mu.Lock()
	if p.running || p.resetting {
		p.mu.Unlock()
		return fmt.Errorf("%w: reset %s: stop it first", ErrRunning, p.name)
	}
	p.resetting = true
	p.mu.Unlock()

	err := p.store.Reset(ctx, p.name, clear)

	p.mu.Lock()
	defer p.mu.Unlock()
	p.resetting = false
	if err != nil {
		return fmt.Errorf("projection: reset %s: %w", p.name, err)
	}
	p.st.Offset, p.st.Head = 0, 0
	p.clearPassed()
	p.head.Store(0)
	p.atPoison = nil // the offset is no longer before it
	return nil
}
