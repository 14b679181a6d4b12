package entity

import (
	"context"
	"fmt"
	"hash/maphash"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"go.opentelemetry.io/otel/metric"

	"github.com/eventsourced-go/eventsourced/eventlog"
	"github.com/eventsourced-go/eventsourced/snapshotstore"
)

// System hosts the entity kinds of one process: it owns their actors, the
// event log and the snapshot store they use. Create it with [NewSystem],
// register entity types with [Register], and stop it with [System.Shutdown].
type System struct {
	eventLog  eventlog.Log
	snapshots snapshotstore.Store
	logger    *slog.Logger
	actors    *actor.ActorSystem
	ownActors bool

	closed atomic.Bool
	// flight counts the commands accepted and not yet answered, striped by
	// entity id so that commands to different entities do not all update
	// one cache line; a command is counted and uncounted in the stripe of
	// its entity id.
	flightSeed maphash.Seed
	// The padding keeps closed, which every command reads, off the cache
	// line of flight[0], which the commands of a stripe write.
	_       [64]byte
	flight  [flightStripes]flightStripe
	running atomic.Int64 // spawned actors not yet stopped
	done    chan struct{}
	// bgCtx is the parent of the store calls made for no caller in
	// particular (a batch of queued commands, a recovery a caller gave up
	// on, a snapshot); Close cancels it, so they end at once.
	bgCtx    context.Context
	bgCancel context.CancelFunc
	stopOnce sync.Once
	bg       sync.WaitGroup // the kinds' housekeepers, which stop at Close
	// work counts the snapshot savers and the recoveries that went on
	// after their callers gave up: Shutdown lets them finish, Close cancels
	// them. Each is added while a command is in flight, so before Shutdown
	// or Close waits for it.
	work sync.WaitGroup

	mu    sync.Mutex // guards kinds
	kinds map[string]kindHandle

	telCfg telemetryConfig // set by the options, read by NewSystem
	tel    sysTelemetry
}

const flightStripes = 32

type flightStripe struct {
	n atomic.Int64
	_ [56]byte // one cache line per stripe
}

// flightOf returns the in-flight counter of entity id's stripe.
func (s *System) flightOf(id string) *atomic.Int64 {
	return &s.flight[maphash.String(s.flightSeed, id)%flightStripes].n
}

// inflight returns how many accepted commands are not yet answered. A
// command accepted after closed is set is not missed: it is counted before
// it checks closed, so a sum that reads its stripe before the count sees
// closed set, and the command is refused.
func (s *System) inflight() int64 {
	var n int64
	for i := range s.flight {
		n += s.flight[i].n.Load()
	}
	return n
}

// kindHandle is what the System needs of a Kind, whatever its type parameters.
type kindHandle interface {
	closeAll()
	observe(o metric.Observer)
}

// NewSystem returns a System storing events in eventLog.
func NewSystem(eventLog eventlog.Log, opts ...Option) (*System, error) {
	if eventLog == nil {
		return nil, fmt.Errorf("%w: NewSystem with a nil log", ErrInvalid)
	}
	sys := &System{
		eventLog: eventLog,
		logger:   slog.Default(),
		done:     make(chan struct{}),

		flightSeed: maphash.MakeSeed(),
		kinds:      make(map[string]kindHandle),
	}
	sys.bgCtx, sys.bgCancel = context.WithCancel(context.Background())
	for _, opt := range opts {
		if err := opt(sys); err != nil {
			sys.bgCancel()
			return nil, err
		}
	}
	if sys.actors == nil {
		// protoactor-go logs its own life at info; the System's log stays
		// quiet unless something is wrong.
		logger := slog.New(minLevel{sys.logger.Handler(), slog.LevelWarn})
		sys.actors = actor.NewActorSystem(actor.WithLoggerFactory(func(*actor.ActorSystem) *slog.Logger { return logger }))
		sys.ownActors = true
	}
	sys.initTelemetry(sys.telCfg)
	return sys, nil
}

// ActorSystem returns the protoactor-go actor system the entities run in.
func (s *System) ActorSystem() *actor.ActorSystem { return s.actors }

// Log returns the event log.
func (s *System) Log() eventlog.Log { return s.eventLog }

// Shutdown stops taking commands (calls return [ErrClosed]), waits until every
// accepted command is answered, then stops the entities and waits for pending
// snapshots. If ctx ends first it calls [System.Close] and returns ctx.Err();
// it then returns as soon as the commands running on their callers'
// goroutines end, which their callers' contexts and the store timeout bound.
func (s *System) Shutdown(ctx context.Context) error {
	s.closed.Store(true)
	err := s.waitZero(ctx, s.inflight)
	if err == nil {
		err = waitGroup(ctx, &s.work)
	}
	s.Close()
	return err
}

// waitGroup waits for wg until ctx ends. If ctx ends first, it leaves a
// goroutine waiting for wg, which ends once Close has stopped what wg
// counts.
func waitGroup(ctx context.Context, wg *sync.WaitGroup) error {
	done := make(chan struct{})
	go func() {
		wg.Wait()
		close(done)
	}()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Close stops the System at once: commands still waiting in mailboxes get
// [ErrClosed]; the store calls of the batches that entities' actors run, of
// recoveries and of snapshots are canceled, so their commands fail with a
// [*PersistError] or [*RecoveryError] matching [context.Canceled] (an
// append's outcome is then unknown); commands running on their callers'
// goroutines finish, and Close waits for them, the actors and the
// background work. Calls after it return ErrClosed.
func (s *System) Close() error {
	s.closed.Store(true)
	s.stopOnce.Do(func() {
		close(s.done)
		s.bgCancel()
		s.mu.Lock()
		kinds := make([]kindHandle, 0, len(s.kinds))
		for _, k := range s.kinds {
			kinds = append(kinds, k)
		}
		s.mu.Unlock()
		for _, k := range kinds {
			k.closeAll()
		}
		// Commands already running (on an actor, or on the goroutine of
		// the caller that found its entity idle) finish; then the actors
		// stop.
		_ = s.waitZero(context.Background(), s.inflight)
		_ = s.waitZero(context.Background(), s.running.Load)
		s.work.Wait()
		s.bg.Wait()
		_ = s.tel.registration.Unregister()
		if s.ownActors {
			s.actors.Shutdown()
		}
	})
	return nil
}

// waitZero polls n until it is zero or ctx ends. Shutdown is rare, so a
// short poll beats making every command pay for a condition variable.
func (s *System) waitZero(ctx context.Context, n func() int64) error {
	delay := 100 * time.Microsecond
	for n() > 0 {
		t := time.NewTimer(delay)
		select {
		case <-ctx.Done():
			t.Stop()
			return ctx.Err()
		case <-t.C:
		}
		delay = min(2*delay, 10*time.Millisecond)
	}
	return nil
}

// minLevel is a slog handler that passes on records at min and above only.
type minLevel struct {
	slog.Handler
	min slog.Level
}

func (h minLevel) Enabled(ctx context.Context, l slog.Level) bool {
	return l >= h.min && h.Handler.Enabled(ctx, l)
}

func (h minLevel) WithAttrs(attrs []slog.Attr) slog.Handler {
	return minLevel{h.Handler.WithAttrs(attrs), h.min}
}

func (h minLevel) WithGroup(name string) slog.Handler {
	return minLevel{h.Handler.WithGroup(name), h.min}
}
