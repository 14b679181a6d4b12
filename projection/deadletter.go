package projection

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"sync"
	"time"

	"github.com/eventsourced-go/eventsourced/eventlog"
)

// DeadLetter is a poison event that a projection skipped and recorded in
// its [DeadLetters] store (see [WithDeadLetters]), with why and how often
// it failed.
type DeadLetter struct {
	// Projection is the name of the projection that skipped the event.
	Projection string
	// Record is the event as the log gave it: entity type and id, Seq,
	// Position, event name, revision, data, metadata and commit time.
	Record eventlog.Record
	// Err is the text of the handler's last error on the event.
	Err string
	// Attempts counts the handler's failed attempts at the event: those of
	// the run that skipped it, plus one per failed
	// [Projection.RetryDeadLetter].
	Attempts int
	// Time is when the dead letter was last put.
	Time time.Time
}

// Ref identifies the dead letter's event without its data.
func (d DeadLetter) Ref() EventRef { return refOf(d.Record) }

// DeadLetters is a durable store of poison events, keyed by projection
// name and the event's Position. A projection with [SkipPoison] and
// [WithDeadLetters] puts each event it skips there before its offset moves
// past it; operators list the dead letters, retry them through the
// projection's handler ([Projection.RetryDeadLetter]) or drop them.
//
// Implementations: [MemoryDeadLetters] here, a table in PostgreSQL
// (pgprojection.Store.DeadLetters) and a key-value bucket in NATS
// (natsprojection.NewDeadLetters). projectiontest.RunDeadLetters is their
// conformance suite.
type DeadLetters interface {
	// Put stores d under (d.Projection, d.Record.Position), replacing what
	// that key held: putting the same dead letter twice keeps one.
	Put(ctx context.Context, d DeadLetter) error

	// List returns the dead letters of projection with a Position above
	// after, in Position order (the log's order, oldest first), at most
	// limit of them, all if limit <= 0. To page, pass the Position of the
	// last one returned as the next after.
	List(ctx context.Context, projection string, after uint64, limit int) ([]DeadLetter, error)

	// Get returns the dead letter of projection at position, or an error
	// matching [ErrNotFound].
	Get(ctx context.Context, projection string, position uint64) (DeadLetter, error)

	// Drop deletes the dead letter of projection at position, or returns
	// an error matching [ErrNotFound] if there is none.
	Drop(ctx context.Context, projection string, position uint64) error

	// Retry runs handle with the dead letter of projection at position and
	// drops it if handle succeeds. If there is none, it returns an error
	// matching [ErrNotFound] without running handle. If handle fails,
	// Retry returns its error (possibly wrapped) and keeps the dead letter.
	// A transactional store runs handle and the drop in one transaction,
	// whose handle's ctx carries: the retried event changes the read model
	// exactly once. Other stores run handle, then drop: a crash in between
	// keeps the dead letter, and retrying it again delivers the event a
	// second time.
	Retry(ctx context.Context, projection string, position uint64, handle func(ctx context.Context, d DeadLetter) error) error
}

// Compile-time check that MemoryDeadLetters is a DeadLetters store.
var _ DeadLetters = (*MemoryDeadLetters)(nil)

// MemoryDeadLetters is a [DeadLetters] store in process memory, for tests
// and for projections whose offsets live in memory too ([Memory]). Retry
// runs handle, then drops: at least once.
//
// The zero value is not usable; call [NewMemoryDeadLetters].
type MemoryDeadLetters struct {
	// mu guards letters.
	mu sync.Mutex
	// letters holds the dead letters by projection name and Position.
	letters map[string]map[uint64]DeadLetter
}

// NewMemoryDeadLetters returns an empty in-memory dead-letter store.
func NewMemoryDeadLetters() *MemoryDeadLetters {
	return &MemoryDeadLetters{letters: make(map[string]map[uint64]DeadLetter)}
}

// Put implements [DeadLetters]. It keeps a copy of d's data and metadata,
// since the caller may reuse them.
func (m *MemoryDeadLetters) Put(ctx context.Context, d DeadLetter) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	byPos := m.letters[d.Projection]
	if byPos == nil {
		byPos = make(map[uint64]DeadLetter)
		m.letters[d.Projection] = byPos
	}
	byPos[d.Record.Position] = clone(d)
	return nil
}

// List implements [DeadLetters].
func (m *MemoryDeadLetters) List(ctx context.Context, projection string, after uint64, limit int) ([]DeadLetter, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	var out []DeadLetter
	for pos, d := range m.letters[projection] {
		if pos > after {
			out = append(out, clone(d))
		}
	}
	slices.SortFunc(out, func(a, b DeadLetter) int { return cmp.Compare(a.Record.Position, b.Record.Position) })
	if limit > 0 && len(out) > limit {
		out = out[:limit]
	}
	return out, nil
}

// Get implements [DeadLetters].
func (m *MemoryDeadLetters) Get(ctx context.Context, projection string, position uint64) (DeadLetter, error) {
	if err := ctx.Err(); err != nil {
		return DeadLetter{}, err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	d, ok := m.letters[projection][position]
	if !ok {
		return DeadLetter{}, notFound(projection, position)
	}
	return clone(d), nil
}

// Drop implements [DeadLetters].
func (m *MemoryDeadLetters) Drop(ctx context.Context, projection string, position uint64) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if _, ok := m.letters[projection][position]; !ok {
		return notFound(projection, position)
	}
	delete(m.letters[projection], position)
	if len(m.letters[projection]) == 0 {
		delete(m.letters, projection)
	}
	return nil
}

// Retry implements [DeadLetters]. It does not hold its lock while handle
// runs. A dead letter put again while handle ran is dropped all the same:
// handle succeeded on its event.
func (m *MemoryDeadLetters) Retry(ctx context.Context, projection string, position uint64, handle func(ctx context.Context, d DeadLetter) error) error {
	d, err := m.Get(ctx, projection, position)
	if err != nil {
		return err
	}
	if err := handle(ctx, d); err != nil {
		return err
	}
	if err := m.Drop(ctx, projection, position); err != nil && !errors.Is(err, ErrNotFound) {
		return err
	}
	return nil
}

// clone returns d with its own data and metadata.
func clone(d DeadLetter) DeadLetter {
	d.Record.Data = slices.Clone(d.Record.Data)
	d.Record.Metadata = maps.Clone(d.Record.Metadata)
	return d
}

// notFound returns the error of a missing dead letter.
func notFound(projection string, position uint64) error {
	return fmt.Errorf("%w: %s at position %d", ErrNotFound, projection, position)
}
