package entity

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/asynkron/protoactor-go/actor"

	"github.com/eventsourced-go/eventsourced/eventlog"
	"github.com/eventsourced-go/eventsourced/snapshotstore"
)

// System hosts the entity kinds of one process: it owns their actors, the
// event log and the snapshot store they use. Create it with [NewSystem],
// register entity types with [Register], and stop it with [System.Shutdown].
type System struct {
	log       eventlog.Log
	snapshots snapshotstore.Store
	logger    *slog.Logger
	actors    *actor.ActorSystem
	ownActors bool

	closed   atomic.Bool
	inflight atomic.Int64 // commands accepted and not yet answered
	running  atomic.Int64 // spawned actors not yet stopped
	done     chan struct{}
	stopOnce sync.Once
	bg       sync.WaitGroup // snapshot and passivation goroutines

	mu    sync.Mutex // guards kinds
	kinds map[string]kindHandle
}

// kindHandle is what the System needs of a Kind, whatever its type parameters.
type kindHandle interface {
	closeAll()
}

// Option configures a [System].
type Option func(*System) error

// WithSnapshotStore sets the store for snapshots. Without one, kinds cannot
// use [WithSnapshotEvery].
func WithSnapshotStore(s snapshotstore.Store) Option {
	return func(sys *System) error {
		if s == nil {
			return fmt.Errorf("%w: WithSnapshotStore(nil)", ErrInvalid)
		}
		sys.snapshots = s
		return nil
	}
}

// WithLogger sets the logger for failures that reach no caller, such as a
// failed snapshot. The default discards everything.
func WithLogger(l *slog.Logger) Option {
	return func(sys *System) error {
		if l == nil {
			return fmt.Errorf("%w: WithLogger(nil)", ErrInvalid)
		}
		sys.logger = l
		return nil
	}
}

// WithActorSystem runs the entities' actors in an existing protoactor-go
// actor system, such as a cluster member's. The System does not shut it down.
func WithActorSystem(as *actor.ActorSystem) Option {
	return func(sys *System) error {
		if as == nil {
			return fmt.Errorf("%w: WithActorSystem(nil)", ErrInvalid)
		}
		sys.actors = as
		return nil
	}
}

// NewSystem returns a System storing events in log.
func NewSystem(log eventlog.Log, opts ...Option) (*System, error) {
	if log == nil {
		return nil, fmt.Errorf("%w: NewSystem with a nil log", ErrInvalid)
	}
	sys := &System{
		log:    log,
		logger: slog.New(slog.DiscardHandler),
		done:   make(chan struct{}),
		kinds:  make(map[string]kindHandle),
	}
	for _, opt := range opts {
		if err := opt(sys); err != nil {
			return nil, err
		}
	}
	if sys.actors == nil {
		logger := sys.logger
		sys.actors = actor.NewActorSystem(actor.WithLoggerFactory(func(*actor.ActorSystem) *slog.Logger { return logger }))
		sys.ownActors = true
	}
	return sys, nil
}

// ActorSystem returns the protoactor-go actor system the entities run in.
func (s *System) ActorSystem() *actor.ActorSystem { return s.actors }

// Log returns the event log.
func (s *System) Log() eventlog.Log { return s.log }

// Shutdown stops taking commands (calls return [ErrClosed]), waits until every
// accepted command is answered, then stops the entities and waits for pending
// snapshots. If ctx ends first it calls [System.Close] and returns ctx.Err().
func (s *System) Shutdown(ctx context.Context) error {
	s.closed.Store(true)
	if err := s.waitZero(ctx, &s.inflight); err != nil {
		s.Close()
		return err
	}
	return s.Close()
}

// Close stops the System at once: commands still waiting in mailboxes get
// [ErrClosed], batches already running finish, and Close waits for the actors
// and background work to stop. Calls after it return ErrClosed.
func (s *System) Close() error {
	s.closed.Store(true)
	s.stopOnce.Do(func() {
		close(s.done)
		s.mu.Lock()
		kinds := make([]kindHandle, 0, len(s.kinds))
		for _, k := range s.kinds {
			kinds = append(kinds, k)
		}
		s.mu.Unlock()
		for _, k := range kinds {
			k.closeAll()
		}
		_ = s.waitZero(context.Background(), &s.running)
		s.bg.Wait()
		if s.ownActors {
			s.actors.Shutdown()
		}
	})
	return nil
}

// waitZero polls n until it is zero or ctx ends. Shutdown is rare, so a
// short poll beats making every command pay for a condition variable.
func (s *System) waitZero(ctx context.Context, n *atomic.Int64) error {
	delay := 100 * time.Microsecond
	for n.Load() > 0 {
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
