package projection

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"runtime/debug"
	"sync"
	"sync/atomic"
	"time"

	"github.com/eventsourced-go/eventsourced/eventlog"
)

// Handler applies a batch of events, in Position order, to a read model.
// Batches hold one event unless [WithBatchSize] allows more. A Handler that
// returns an error is retried with the same batch (see [WithRetry]); it must
// not keep the slice.
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

// PoisonPolicy says what a projection does with an event its handler fails
// on every attempt.
type PoisonPolicy int

const (
	// StopOnPoison stops the projection before the event: [Projection.Wait]
	// returns a [*PoisonError] and the offset stays before the event. This
	// is the default: nothing is skipped silently.
	StopOnPoison PoisonPolicy = iota
	// SkipPoison moves the offset past the event without applying it, and
	// records it in [Status.Skipped].
	SkipPoison
)

// EventRef identifies an event without its data.
type EventRef struct {
	EntityType string
	EntityID   string
	Seq        uint64
	Position   uint64
	// Name is the event type name.
	Name string
}

// String returns a description such as "Tab/t-1 seq 3 (position 17, DrinksOrdered)".
func (r EventRef) String() string {
	return fmt.Sprintf("%s/%s seq %d (position %d, %s)", eventlog.FormatID(r.EntityType), eventlog.FormatID(r.EntityID), r.Seq, r.Position, r.Name)
}

func refOf(rec eventlog.Record) EventRef {
	return EventRef{EntityType: rec.EntityType, EntityID: rec.EntityID, Seq: rec.Seq, Position: rec.Position, Name: rec.Name}
}

// Skipped is a poison event that [SkipPoison] skipped.
type Skipped struct {
	Event EventRef
	// Err is the handler's last error on the event.
	Err error
	// Time is when it was skipped.
	Time time.Time
}

// maxSkipped is how many skipped events [Status] keeps.
const maxSkipped = 100

// Status is a snapshot of a projection's progress.
type Status struct {
	// Name and EntityType are the projection's.
	Name       string
	EntityType string
	// Running reports whether the projection's goroutine runs.
	Running bool
	// Offset is the Position of the last event handled or skipped, as
	// stored; 0 before the first, and 0 right after Start until the
	// stored offset is loaded.
	Offset uint64
	// Head is the highest Position the projection has read from the log;
	// it may be ahead of Offset by the events read ahead.
	Head uint64
	// Lag is the number of events the projection has read from the log and
	// not yet handled: those waiting in its read-ahead buffer plus the batch
	// in the handler. The projection reads ahead at most [WithBufferSize]
	// events, so when ReadAheadFull is true more may be waiting in the log:
	// Lag is then a lower bound. When ReadAheadFull is false and Lag is 0,
	// the projection has handled every event the log has given it.
	Lag int
	// ReadAheadFull reports that the read-ahead buffer is full.
	ReadAheadFull bool
	// Handled counts the events handled since Start.
	Handled uint64
	// Retries is the number of consecutive failed attempts so far; 0 when
	// the last attempt succeeded.
	Retries int
	// LastError is the last error of the handler, the offset store or the
	// log, nil if there was none since Start; LastErrorTime is when.
	LastError     error
	LastErrorTime time.Time
	// Skipped lists the most recent events skipped by [SkipPoison], oldest
	// first, at most 100; SkippedTotal counts all of them since Start.
	Skipped      []Skipped
	SkippedTotal uint64
}

// Option configures a [Projection].
type Option func(*config) error

type config struct {
	batch    int
	buffer   int
	initial  time.Duration
	maxDelay time.Duration
	attempts int
	poison   PoisonPolicy
	logger   *slog.Logger
}

// WithBatchSize lets the handler get up to n events at once (default 1).
// The projection never waits to fill a batch: it hands over what has
// arrived. The offset moves once per batch.
func WithBatchSize(n int) Option {
	return func(c *config) error {
		if n < 1 {
			return fmt.Errorf("%w: WithBatchSize(%d): must be >= 1", ErrInvalid, n)
		}
		c.batch = n
		return nil
	}
}

// WithBufferSize sets how many events the projection reads ahead of its
// handler (default 256, and at least the batch size).
func WithBufferSize(n int) Option {
	return func(c *config) error {
		if n < 1 {
			return fmt.Errorf("%w: WithBufferSize(%d): must be >= 1", ErrInvalid, n)
		}
		c.buffer = n
		return nil
	}
}

// WithRetry sets the exponential backoff between attempts: the first retry
// waits initial, each next one twice as long, up to max. A batch whose
// handler fails attempts times in a row is poison (see [WithPoison]); a
// batch of several events is first retried event by event, so only the
// failing event is poison. Failures of the offset store and of the log are
// retried with the same backoff for as long as the projection runs. The
// defaults are 100ms, 10s and 5 attempts.
func WithRetry(initial, max time.Duration, attempts int) Option {
	return func(c *config) error {
		switch {
		case initial <= 0:
			return fmt.Errorf("%w: WithRetry: initial delay %v must be positive", ErrInvalid, initial)
		case max < initial:
			return fmt.Errorf("%w: WithRetry: max delay %v is below the initial delay %v", ErrInvalid, max, initial)
		case attempts < 1:
			return fmt.Errorf("%w: WithRetry: attempts %d must be >= 1", ErrInvalid, attempts)
		}
		c.initial, c.maxDelay, c.attempts = initial, max, attempts
		return nil
	}
}

// WithPoison sets what happens to a poison event (default [StopOnPoison]).
func WithPoison(p PoisonPolicy) Option {
	return func(c *config) error {
		if p != StopOnPoison && p != SkipPoison {
			return fmt.Errorf("%w: WithPoison(%d): unknown policy", ErrInvalid, p)
		}
		c.poison = p
		return nil
	}
}

// WithLogger logs retries, skipped events and stops to l (default: silent).
func WithLogger(l *slog.Logger) Option {
	return func(c *config) error {
		if l == nil {
			return fmt.Errorf("%w: WithLogger(nil)", ErrInvalid)
		}
		c.logger = l
		return nil
	}
}

// Projection runs a [Handler] over the events of one entity type, from the
// offset its [OffsetStore] keeps under its name. Create it with [New]; start
// it with [Projection.Start] or [Projection.Run].
type Projection struct {
	log     eventlog.Log
	typ     string
	name    string
	store   OffsetStore
	handler Handler
	cfg     config

	// head is the highest Position read from the log, written by the reader.
	head atomic.Uint64

	// mu guards every field below it.
	mu        sync.Mutex
	running   bool
	resetting bool // a Reset is in progress, outside of mu
	cancel    context.CancelFunc
	done      chan struct{} // closed when the current run ends
	result    error         // why the last run ended
	buf       chan item     // the current read-ahead buffer, for Lag
	inflight  int           // events in the handler
	st        Status
}

// New returns a projection named name of the events of entity type typ in
// log, kept by h, with its offset in store. Several projections may follow
// one type; each needs its own name.
func New(log eventlog.Log, typ, name string, store OffsetStore, h Handler, opts ...Option) (*Projection, error) {
	switch {
	case log == nil:
		return nil, fmt.Errorf("%w: nil log", ErrInvalid)
	case typ == "":
		return nil, fmt.Errorf("%w: empty entity type", ErrInvalid)
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
		logger:   slog.New(slog.DiscardHandler),
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
	p := &Projection{log: log, typ: typ, name: name, store: store, handler: h, cfg: cfg}
	p.st.Name, p.st.EntityType = name, typ
	return p, nil
}

// Name returns the projection's name.
func (p *Projection) Name() string { return p.name }

// Start starts the projection in a goroutine the projection owns. It runs
// until ctx is done, [Projection.Stop] is called, or a poison event stops it
// (see [WithPoison]). It returns [ErrRunning] if the projection runs already.
func (p *Projection) Start(ctx context.Context) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.running || p.resetting {
		return fmt.Errorf("%w: %s", ErrRunning, p.name)
	}
	ctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	p.running, p.cancel, p.done, p.result = true, cancel, done, nil
	p.st = Status{Name: p.name, EntityType: p.typ, Running: true}
	go func() {
		defer close(done)
		err := p.run(ctx)
		cancel()
		p.mu.Lock()
		defer p.mu.Unlock()
		p.running, p.result = false, err
		p.st.Running = false
	}()
	return nil
}

// Stop stops the projection and waits until its goroutine has ended or ctx
// is done. A batch in the handler sees its context canceled; whether its
// offset was stored is up to the store (see [OffsetStore]). Stop on a
// projection that is not running returns nil.
func (p *Projection) Stop(ctx context.Context) error {
	p.mu.Lock()
	cancel, done := p.cancel, p.done
	p.mu.Unlock()
	if cancel == nil {
		return nil
	}
	cancel()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("projection: stop %s: %w", p.name, ctx.Err())
	}
}

// Wait waits for the current or last run to end and returns why: nil if it
// was stopped by [Projection.Stop] or the end of its context, a
// [*PoisonError] if a poison event stopped it. It returns ctx.Err() if ctx
// ends first, and nil if the projection was never started.
func (p *Projection) Wait(ctx context.Context) error {
	p.mu.Lock()
	done := p.done
	p.mu.Unlock()
	if done == nil {
		return nil
	}
	select {
	case <-done:
	case <-ctx.Done():
		return ctx.Err()
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.result
}

// Run starts the projection and waits for it to end: when ctx is done (nil)
// or at a poison event (a [*PoisonError]).
func (p *Projection) Run(ctx context.Context) error {
	if err := p.Start(ctx); err != nil {
		return err
	}
	return p.Wait(context.Background())
}

// Reset sets the projection's offset to 0 after running clear (if not nil),
// which should empty the read model; the next Start rebuilds it from the
// first event. Transactional stores run clear and the reset in one
// transaction (see pgprojection.Clear). Reset returns [ErrRunning] while
// the projection runs or another Reset is in progress, and Start returns it
// during a Reset.
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
	p.head.Store(0)
	return nil
}

// Status returns the projection's current progress.
func (p *Projection) Status() Status {
	p.mu.Lock()
	defer p.mu.Unlock()
	st := p.st
	st.Skipped = append([]Skipped(nil), p.st.Skipped...)
	st.Head = max(p.head.Load(), st.Offset)
	st.Lag = p.inflight
	if p.buf != nil {
		n := len(p.buf)
		st.Lag += n
		st.ReadAheadFull = n == cap(p.buf)
	}
	return st
}

// item is what the reader hands the handler loop: a record or the error
// that ended the subscription.
type item struct {
	rec eventlog.Record
	err error
}

// run is the projection's goroutine: load the offset, follow the log, and
// start over after log failures and offset moves, until ctx is done or a
// poison event stops it.
func (p *Projection) run(ctx context.Context) error {
	var offset uint64
	load := func() error {
		return p.retry(ctx, func() error {
			off, err := p.store.Load(ctx, p.name)
			if err != nil {
				return fmt.Errorf("projection: load offset of %s: %w", p.name, err)
			}
			offset = off
			return nil
		})
	}
	if load() != nil {
		return nil // ctx is done
	}
	p.setOffset(offset)
	delay := p.cfg.initial
	for {
		before := offset
		err := p.follow(ctx, &offset)
		if offset != before {
			delay = p.cfg.initial // it made progress: not the same outage
		}
		switch {
		case ctx.Err() != nil:
			return nil
		case errors.Is(err, ErrPoison):
			p.cfg.logger.Error("projection stopped", "projection", p.name, "err", err)
			return err
		case errors.Is(err, ErrOffsetMoved):
			p.cfg.logger.Warn("projection offset moved; reloading", "projection", p.name, "err", err)
			if load() != nil {
				return nil
			}
			p.setOffset(offset)
			continue
		}
		// The subscription failed: follow again from the offset.
		p.recordError(err)
		p.cfg.logger.Warn("projection subscription failed; retrying", "projection", p.name, "err", err, "delay", delay)
		if !sleep(ctx, delay) {
			return nil
		}
		delay = min(2*delay, p.cfg.maxDelay)
	}
}

// follow subscribes after *offset and handles what arrives until the
// subscription fails, the offset moves, a poison event stops the
// projection or ctx is done. It advances *offset as batches commit.
func (p *Projection) follow(ctx context.Context, offset *uint64) error {
	rctx, cancel := context.WithCancel(ctx)
	buf := make(chan item, p.cfg.buffer)
	var wg sync.WaitGroup
	wg.Go(func() { p.read(rctx, *offset, buf) })
	p.mu.Lock()
	p.buf = buf
	p.mu.Unlock()
	defer func() {
		cancel()
		wg.Wait()
		p.mu.Lock()
		p.buf = nil
		p.mu.Unlock()
	}()

	batch := make([]eventlog.Record, 0, p.cfg.batch)
	for {
		var it item
		select {
		case it = <-buf:
		case <-ctx.Done():
			return ctx.Err()
		}
		if it.err != nil {
			return it.err
		}
		batch = append(batch[:0], it.rec)
		var pending error
	fill:
		for len(batch) < p.cfg.batch {
			select {
			case it = <-buf:
				if it.err != nil {
					pending = it.err
					break fill
				}
				batch = append(batch, it.rec)
			default:
				break fill
			}
		}
		if err := p.handle(ctx, batch, offset); err != nil {
			return err
		}
		if pending != nil {
			return pending
		}
	}
}

// read is the reader goroutine of follow: it copies the subscription into
// buf until rctx ends or the subscription fails.
func (p *Projection) read(rctx context.Context, after uint64, buf chan<- item) {
	send := func(it item) bool {
		select {
		case buf <- it:
			return true
		case <-rctx.Done():
			return false
		}
	}
	for rec, err := range p.log.Subscribe(rctx, p.typ, after) {
		if err != nil {
			if rctx.Err() == nil {
				send(item{err: fmt.Errorf("projection: subscribe to %s after %d: %w", p.typ, after, err)})
			}
			return
		}
		if rec.Position <= after {
			continue // a log must not do this; never apply twice
		}
		after = rec.Position
		if after > p.head.Load() {
			p.head.Store(after)
		}
		if !send(item{rec: rec}) {
			return
		}
	}
	if rctx.Err() == nil {
		send(item{err: fmt.Errorf("projection: subscription to %s ended", p.typ)})
	}
}

// handle commits batch, retrying it, and deals with a poison event. It
// advances *offset past what it committed or skipped.
func (p *Projection) handle(ctx context.Context, batch []eventlog.Record, offset *uint64) error {
	herr, err := p.attempt(ctx, batch, *offset, p.handler, false)
	if err != nil {
		return err
	}
	if herr == nil {
		*offset = batch[len(batch)-1].Position
		return nil
	}
	if len(batch) > 1 {
		// Find the poison event: retry the events one at a time.
		for i := range batch {
			if err := p.handle(ctx, batch[i:i+1], offset); err != nil {
				return err
			}
		}
		return nil
	}
	rec := batch[0]
	if p.cfg.poison == StopOnPoison {
		return &PoisonError{Projection: p.name, Event: refOf(rec), Err: herr}
	}
	p.cfg.logger.Error("projection skipped poison event", "projection", p.name, "event", refOf(rec).String(), "err", herr)
	skip := func(context.Context, []eventlog.Record) error { return nil }
	if _, err := p.attempt(ctx, batch, *offset, skip, true); err != nil {
		return err
	}
	*offset = rec.Position
	p.mu.Lock()
	defer p.mu.Unlock()
	p.st.Skipped = append(p.st.Skipped, Skipped{Event: refOf(rec), Err: herr, Time: time.Now()})
	if n := len(p.st.Skipped); n > maxSkipped {
		p.st.Skipped = append([]Skipped(nil), p.st.Skipped[n-maxSkipped:]...)
	}
	p.st.SkippedTotal++
	return nil
}

// attempt commits batch with h from offset from until it succeeds (nil,
// nil), h has failed the configured number of times (h's last error, nil),
// or it must give up (nil, err): ctx is done or the offset moved. Failures
// of the store are retried without limit.
func (p *Projection) attempt(ctx context.Context, batch []eventlog.Record, from uint64, h Handler, skipping bool) (herr, err error) {
	to := batch[len(batch)-1].Position
	delay := p.cfg.initial
	failures := 0
	p.setInflight(len(batch))
	defer p.setInflight(0)
	for {
		var last error
		err := p.store.Commit(ctx, p.name, from, to, func(ctx context.Context) error {
			last = p.call(ctx, h, batch)
			return last
		})
		if err == nil {
			p.committed(to, len(batch), !skipping)
			return nil, nil
		}
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		if errors.Is(err, ErrOffsetMoved) {
			return nil, err
		}
		p.recordError(err)
		if last != nil {
			failures++
			if failures >= p.cfg.attempts {
				return last, nil
			}
		}
		p.cfg.logger.Warn("projection batch failed; retrying", "projection", p.name,
			"from", batch[0].Position, "to", to, "err", err, "delay", delay)
		if !sleep(ctx, delay) {
			return nil, ctx.Err()
		}
		delay = min(2*delay, p.cfg.maxDelay)
	}
}

// call runs h, turning a panic into an error that wraps the panic value
// if it is an error.
func (p *Projection) call(ctx context.Context, h Handler, batch []eventlog.Record) (err error) {
	defer func() {
		if v := recover(); v != nil {
			p.cfg.logger.Error("projection handler panicked", "projection", p.name, "panic", v, "stack", string(debug.Stack()))
			if e, ok := v.(error); ok {
				err = fmt.Errorf("projection: %s: handler panicked on %s: %w", p.name, refOf(batch[0]), e)
			} else {
				err = fmt.Errorf("projection: %s: handler panicked on %s: %v", p.name, refOf(batch[0]), v)
			}
		}
	}()
	return h(ctx, batch)
}

// retry runs f until it succeeds or ctx is done, with backoff.
func (p *Projection) retry(ctx context.Context, f func() error) error {
	delay := p.cfg.initial
	for {
		err := f()
		if err == nil {
			return nil
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		p.recordError(err)
		p.cfg.logger.Warn("projection retrying", "projection", p.name, "err", err, "delay", delay)
		if !sleep(ctx, delay) {
			return ctx.Err()
		}
		delay = min(2*delay, p.cfg.maxDelay)
	}
}

// sleep waits d; false if ctx ended first.
func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}

func (p *Projection) setOffset(off uint64) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.st.Offset = off
}

func (p *Projection) setInflight(n int) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.inflight = n
}

// committed records a successful commit up to Position to of n events;
// a skip (h is not the projection's handler) does not count as handled.
func (p *Projection) committed(to uint64, n int, handled bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.st.Offset = to
	p.st.Retries = 0
	if handled {
		p.st.Handled += uint64(n)
	}
}

func (p *Projection) recordError(err error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.st.LastError, p.st.LastErrorTime = err, time.Now()
	p.st.Retries++
}
