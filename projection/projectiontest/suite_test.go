package projectiontest_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"

	"github.com/eventsourced-go/eventsourced/internal/conformancetest"
	"github.com/eventsourced-go/eventsourced/projection"
	"github.com/eventsourced-go/eventsourced/projection/projectiontest"
)

func memory(*testing.T) projection.OffsetStore { return projection.NewMemory() }

func newTxStore(*testing.T) projection.OffsetStore { return newTx("") }

// TestCasesPassOnMemory checks the harness: every case passes against the
// reference store, at-least-once, when run through the recorder.
func TestCasesPassOnMemory(t *testing.T) {
	conformancetest.CheckPass(t, projectiontest.Cases(), memory)
}

// TestCasesPassOnTransactional checks the exactly-once cases against a
// correct transactional store without a database.
func TestCasesPassOnTransactional(t *testing.T) {
	conformancetest.CheckPass(t, projectiontest.Cases(), newTxStore)
}

func TestCasesAreNamedAndStateRules(t *testing.T) {
	conformancetest.CheckCases(t, projectiontest.Cases())
}

// TestSuiteDetectsBrokenStores runs cases against stores that each break
// one rule and checks that the cases that should catch it fail, saying
// which rule broke.
func TestSuiteDetectsBrokenStores(t *testing.T) {
	wrap := func(f func(*projection.Memory) projection.OffsetStore) func(*testing.T) projection.OffsetStore {
		return func(*testing.T) projection.OffsetStore { return f(projection.NewMemory()) }
	}
	buggy := func(bug string) func(*testing.T) projection.OffsetStore {
		return func(*testing.T) projection.OffsetStore { return newTx(bug) }
	}
	b := conformancetest.Break[projection.OffsetStore]
	conformancetest.CheckCaught(t, projectiontest.Cases(), []conformancetest.Broken[projection.OffsetStore]{
		// At-least-once stores, wrapping Memory.
		b("LoadsUnknownAsOne", wrap(func(m *projection.Memory) projection.OffsetStore { return unknownIsOne{m} }),
			"LoadUnknown"),
		b("RunsHandleTwice", wrap(func(m *projection.Memory) projection.OffsetStore { return handleTwice{m} }),
			"CommitMovesOffset"),
		b("RefusesToMoveBack", wrap(func(m *projection.Memory) projection.OffsetStore { return forwardOnly{m} }),
			"CommitMovesBack"),
		b("IgnoresFrom", wrap(func(m *projection.Memory) projection.OffsetStore { return ignoreFrom{m} }),
			"CommitFromWrongOffset"),
		b("ChecksFromAfterHandle", wrap(func(m *projection.Memory) projection.OffsetStore { return checkAfterHandle{m} }),
			"CommitFromWrongOffset"),
		b("MovesOffsetWhenHandleFails", wrap(func(m *projection.Memory) projection.OffsetStore { return moveOnFailure{m} }),
			"FailingHandle"),
		b("ResetForgetsClear", wrap(func(m *projection.Memory) projection.OffsetStore { return forgetClear{m} }),
			"Reset"),
		b("ClearsBeforeResetting", wrap(func(m *projection.Memory) projection.OffsetStore { return clearFirst{m} }),
			"ResetAtLeastOnce"),
		b("OneOffsetForAllNames", wrap(func(m *projection.Memory) projection.OffsetStore { return oneName{m} }),
			"NamesAreIndependent"),
		b("WritesOffsetUnchecked", func(*testing.T) projection.OffsetStore { return &blindWrite{offsets: map[string]uint64{}} },
			"ConcurrentRunners"),
		b("WritesOffsetBeforeHandle", wrap(func(m *projection.Memory) projection.OffsetStore { return offsetFirst{m} }),
			"CrashAtLeastOnce", "FailingHandle"),
		b("IgnoresCanceledContext", wrap(func(m *projection.Memory) projection.OffsetStore { return ignoreCancel{m} }),
			"CanceledContext"),
		// Exactly-once stores.
		b("KeepsWritesOfFailedHandle", buggy("keep failed writes"),
			"FailingHandle"),
		b("ResetNotAtomic", buggy("reset not atomic"),
			"ResetExactlyOnce"),
		b("KeepsLosersWrites", buggy("keep losers' writes"),
			"ConcurrentRunners"),
		b("CommitsHandlerBeforeOffset", buggy("commit handler first"),
			"CrashExactlyOnce"),
	})
}

// unknownIsOne loads 1 for a name never committed.
type unknownIsOne struct{ *projection.Memory }

func (s unknownIsOne) Load(ctx context.Context, name string) (uint64, error) {
	off, err := s.Memory.Load(ctx, name)
	if off == 0 {
		off = 1
	}
	return off, err
}

// handleTwice runs every handle twice, as a store that retries internally
// might.
type handleTwice struct{ *projection.Memory }

func (s handleTwice) Commit(ctx context.Context, name string, from, to uint64, handle func(context.Context) error) error {
	return s.Memory.Commit(ctx, name, from, to, func(ctx context.Context) error {
		if err := handle(ctx); err != nil {
			return err
		}
		return handle(ctx)
	})
}

// forwardOnly refuses to move an offset back, as a store that keeps the
// highest offset it saw would.
type forwardOnly struct{ *projection.Memory }

func (s forwardOnly) Commit(ctx context.Context, name string, from, to uint64, handle func(context.Context) error) error {
	if to < from {
		return fmt.Errorf("offset %d is below %d", to, from)
	}
	return s.Memory.Commit(ctx, name, from, to, handle)
}

// ignoreFrom commits from whatever the offset is.
type ignoreFrom struct{ *projection.Memory }

func (s ignoreFrom) Commit(ctx context.Context, name string, _, to uint64, handle func(context.Context) error) error {
	cur, err := s.Memory.Load(ctx, name)
	if err != nil {
		return err
	}
	return s.Memory.Commit(ctx, name, cur, to, handle)
}

// checkAfterHandle runs handle before it looks at the offset.
type checkAfterHandle struct{ *projection.Memory }

func (s checkAfterHandle) Commit(ctx context.Context, name string, from, to uint64, handle func(context.Context) error) error {
	if err := handle(ctx); err != nil {
		return err
	}
	return s.Memory.Commit(ctx, name, from, to, func(context.Context) error { return nil })
}

// moveOnFailure moves the offset even when handle fails.
type moveOnFailure struct{ *projection.Memory }

func (s moveOnFailure) Commit(ctx context.Context, name string, from, to uint64, handle func(context.Context) error) error {
	var herr error
	if err := s.Memory.Commit(ctx, name, from, to, func(ctx context.Context) error {
		herr = handle(ctx)
		return nil
	}); err != nil {
		return err
	}
	return herr
}

// forgetClear resets the offset without running clear.
type forgetClear struct{ *projection.Memory }

func (s forgetClear) Reset(ctx context.Context, name string, _ func(context.Context) error) error {
	return s.Memory.Reset(ctx, name, nil)
}

// clearFirst runs clear, then resets the offset: a failing clear leaves
// the old offset.
type clearFirst struct{ *projection.Memory }

func (s clearFirst) Reset(ctx context.Context, name string, clear func(context.Context) error) error {
	if clear != nil {
		if err := clear(ctx); err != nil {
			return err
		}
	}
	return s.Memory.Reset(ctx, name, nil)
}

// oneName keeps one offset for every name.
type oneName struct{ *projection.Memory }

func (s oneName) Load(ctx context.Context, _ string) (uint64, error) {
	return s.Memory.Load(ctx, "")
}

func (s oneName) Commit(ctx context.Context, _ string, from, to uint64, handle func(context.Context) error) error {
	return s.Memory.Commit(ctx, "", from, to, handle)
}

func (s oneName) Reset(ctx context.Context, _ string, clear func(context.Context) error) error {
	return s.Memory.Reset(ctx, "", clear)
}

// offsetFirst moves the offset, then runs handle: at most once.
type offsetFirst struct{ *projection.Memory }

func (s offsetFirst) Commit(ctx context.Context, name string, from, to uint64, handle func(context.Context) error) error {
	if err := s.Memory.Commit(ctx, name, from, to, func(context.Context) error { return nil }); err != nil {
		return err
	}
	return handle(ctx)
}

// ignoreCancel works on with a canceled ctx.
type ignoreCancel struct{ *projection.Memory }

func (s ignoreCancel) Load(ctx context.Context, name string) (uint64, error) {
	return s.Memory.Load(context.WithoutCancel(ctx), name)
}

func (s ignoreCancel) Commit(ctx context.Context, name string, from, to uint64, handle func(context.Context) error) error {
	return s.Memory.Commit(context.WithoutCancel(ctx), name, from, to, handle)
}

func (s ignoreCancel) Reset(ctx context.Context, name string, clear func(context.Context) error) error {
	return s.Memory.Reset(context.WithoutCancel(ctx), name, clear)
}

// blindWrite checks the offset before handle and writes it after without
// checking again, so runners that pass the check together all win.
type blindWrite struct {
	// mu guards offsets.
	mu      sync.Mutex
	offsets map[string]uint64
}

func (s *blindWrite) Load(ctx context.Context, name string) (uint64, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.offsets[name], ctx.Err()
}

func (s *blindWrite) Commit(ctx context.Context, name string, from, to uint64, handle func(context.Context) error) error {
	if cur, err := s.Load(ctx, name); err != nil {
		return err
	} else if cur != from {
		return fmt.Errorf("%w: at %d", projection.ErrOffsetMoved, cur)
	}
	if err := handle(ctx); err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.offsets[name] = to
	return nil
}

func (s *blindWrite) Reset(ctx context.Context, name string, clear func(context.Context) error) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	s.mu.Lock()
	delete(s.offsets, name)
	s.mu.Unlock()
	if clear != nil {
		return clear(ctx)
	}
	return nil
}

// txStore is an exactly-once offset store in memory: a commit's writes and
// its offset apply together, under one lock, or not at all. With a bug
// set, it breaks that promise in one way.
type txStore struct {
	bug string

	// mu guards offsets, counts and beforeOffset.
	mu           sync.Mutex
	offsets      map[string]uint64
	counts       map[string]int
	beforeOffset func(context.Context) error
}

var (
	_ projectiontest.Transactional = (*txStore)(nil)
	_ projectiontest.Crasher       = (*txStore)(nil)
)

func newTx(bug string) *txStore {
	return &txStore{bug: bug, offsets: map[string]uint64{}, counts: map[string]int{}}
}

// txKey carries a commit's or reset's pending writes in its ctx.
type txKey struct{}

type pending struct {
	mu   sync.Mutex // guards keys
	keys []string
}

func (s *txStore) Write(ctx context.Context, key string) error {
	p, ok := ctx.Value(txKey{}).(*pending)
	if !ok {
		return errors.New("txStore: Write outside of a transaction")
	}
	if s.bug == "reset not atomic" || s.bug == "commit handler first" {
		s.apply(key)
		return nil
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	p.keys = append(p.keys, key)
	return nil
}

// apply commits writes at once, as a store that commits the handler's
// transaction on its own would.
func (s *txStore) apply(keys ...string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, k := range keys {
		s.counts[k]++
	}
}

func (s *txStore) Count(ctx context.Context, key string) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.counts[key], ctx.Err()
}

func (s *txStore) SetBeforeOffset(f func(context.Context) error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.beforeOffset = f
}

func (s *txStore) Load(ctx context.Context, name string) (uint64, error) {
	if err := ctx.Err(); err != nil {
		return 0, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.offsets[name], nil
}

func (s *txStore) Commit(ctx context.Context, name string, from, to uint64, handle func(context.Context) error) error {
	if cur, err := s.Load(ctx, name); err != nil {
		return err
	} else if cur != from {
		return fmt.Errorf("%w: at %d", projection.ErrOffsetMoved, cur)
	}
	p := &pending{}
	if err := handle(context.WithValue(ctx, txKey{}, p)); err != nil {
		if s.bug == "keep failed writes" {
			s.apply(p.keys...)
		}
		return err
	}
	s.mu.Lock()
	before := s.beforeOffset
	s.mu.Unlock()
	if before != nil {
		if err := before(ctx); err != nil {
			return err
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := ctx.Err(); err != nil {
		return err
	}
	if cur := s.offsets[name]; cur != from {
		if s.bug == "keep losers' writes" {
			for _, k := range p.keys {
				s.counts[k]++
			}
		}
		return fmt.Errorf("%w: at %d", projection.ErrOffsetMoved, cur)
	}
	for _, k := range p.keys {
		s.counts[k]++
	}
	s.offsets[name] = to
	return nil
}

func (s *txStore) Reset(ctx context.Context, name string, clear func(context.Context) error) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	p := &pending{}
	if clear != nil {
		if err := clear(context.WithValue(ctx, txKey{}, p)); err != nil {
			return err
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, k := range p.keys {
		s.counts[k]++
	}
	delete(s.offsets, name)
	return nil
}
