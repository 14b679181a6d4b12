package projectiontest

import (
	"context"
	"runtime"
	"sync"
	"time"

	"github.com/eventsourced-go/eventsourced/internal/conformancetest"
	"github.com/eventsourced-go/eventsourced/projection"
)

// ruleErrorf and ruleFatalf report a rule other than the running case's,
// such as one a helper checks.
var (
	ruleErrorf = conformancetest.RuleErrorf
	ruleFatalf = conformancetest.RuleFatalf
)

// nop is a handle or clear without effects.
func nop(context.Context) error { return nil }

// mustLoad returns the offset of name and ends the case on an error.
func mustLoad(t TB, ctx context.Context, store projection.OffsetStore, name string) uint64 {
	t.Helper()
	off, err := store.Load(ctx, name)
	if err != nil {
		ruleFatalf(t, "Load with a live ctx succeeds", "Load(%q): %v", name, err)
	}
	return off
}

// mustCommit commits and ends the case on an error.
func mustCommit(t TB, ctx context.Context, store projection.OffsetStore, name string, from, to uint64, handle func(context.Context) error) {
	t.Helper()
	if err := store.Commit(ctx, name, from, to, handle); err != nil {
		ruleFatalf(t, "Commit from the stored offset with a handle that succeeds succeeds", "Commit(%q, %d→%d): %v", name, from, to, err)
	}
}

// model is the read model of a case's handlers: how often each handler
// ran, in memory, and for an exactly-once store what committed, through
// [Transactional].
type model struct {
	t  TB
	tx Transactional // nil for an at-least-once store

	// mu guards runs: runners handle concurrently.
	mu   sync.Mutex
	runs map[string]int
}

func newModel(t TB, store projection.OffsetStore) *model {
	tx, _ := store.(Transactional)
	return &model{t: t, tx: tx, runs: make(map[string]int)}
}

// handle returns a handle that counts a run of key and, for an
// exactly-once store, writes key in the commit's transaction.
func (m *model) handle(key string) func(ctx context.Context) error {
	return func(ctx context.Context) error {
		m.mu.Lock()
		m.runs[key]++
		m.mu.Unlock()
		if m.tx != nil {
			return m.tx.Write(ctx, key)
		}
		return nil
	}
}

// failing returns a handle that does what [model.handle] does, then
// fails with err.
func (m *model) failing(key string, err error) func(ctx context.Context) error {
	h := m.handle(key)
	return func(ctx context.Context) error {
		if werr := h(ctx); werr != nil {
			return werr
		}
		return err
	}
}

// ran returns how many times handles of key ran.
func (m *model) ran(key string) int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.runs[key]
}

// committed returns how many writes of key committed; 0 for an
// at-least-once store. It ends the case if Count fails.
func (m *model) committed(ctx context.Context, key string) int {
	m.t.Helper()
	if m.tx == nil {
		return 0
	}
	n, err := m.tx.Count(ctx, key)
	if err != nil {
		ruleFatalf(m.t, "Transactional: Count with a live ctx succeeds", "Count(%q): %v", key, err)
	}
	return n
}

// crash is a way for a Commit to die between its handler's writes and its
// offset write.
type crash struct {
	name string
	// commit runs store.Commit with handle and kills it after handle's
	// writes. It ends the case if the commit did not die.
	commit func(t *conformancetest.T, ctx context.Context, name string, from, to uint64, handle func(context.Context) error)
}

// crashes returns the ways store can be crashed: in every store inside the
// handler, after its writes; in a [Crasher] also after the handler
// returned, before the offset write.
func crashes(store projection.OffsetStore) []crash {
	cs := []crash{{
		name: "the process dies in the handler, after its writes",
		commit: func(t *conformancetest.T, ctx context.Context, name string, from, to uint64, handle func(context.Context) error) {
			t.Helper()
			returned, err := dying(t, ctx, func(die func()) error {
				return store.Commit(ctx, name, from, to, func(ctx context.Context) error {
					if err := handle(ctx); err != nil {
						return err
					}
					die()
					return nil
				})
			})
			if returned {
				t.Fatalf("Commit(%q, %d→%d) returned (%v) though its handler died", name, from, to, err)
			}
		},
	}}
	if c, ok := store.(Crasher); ok {
		cs = append(cs, crash{
			name: "the process dies after the handler returned, before the offset write",
			commit: func(t *conformancetest.T, ctx context.Context, name string, from, to uint64, handle func(context.Context) error) {
				t.Helper()
				c.SetBeforeOffset(func(context.Context) error { return errCrash })
				err := store.Commit(ctx, name, from, to, handle)
				c.SetBeforeOffset(nil)
				if err == nil {
					ruleFatalf(t, "Crasher: a Commit whose hook fails returns an error", "Commit(%q, %d→%d) returned nil", name, from, to)
				}
			},
		})
	}
	return cs
}

// resetDying runs Reset with a clear that does what clear does, then dies.
func resetDying(t *conformancetest.T, ctx context.Context, store projection.OffsetStore, name string, clear func(context.Context) error) (returned bool, err error) {
	t.Helper()
	return dying(t, ctx, func(die func()) error {
		return store.Reset(ctx, name, func(ctx context.Context) error {
			if err := clear(ctx); err != nil {
				return err
			}
			die()
			return nil
		})
	})
}

// dying runs call in a goroutine of its own and hands it die, which ends
// that goroutine at once, as the death of the process would end the call
// (deferred functions do run: a store's rollback stands in for the
// server's). It reports whether call returned, and its error, and ends the
// case if the goroutine does not end.
func dying(t TB, ctx context.Context, call func(die func()) error) (returned bool, err error) {
	t.Helper()
	done := make(chan struct{})
	go func() {
		defer close(done)
		err = call(runtime.Goexit)
		returned = true
	}()
	timer := time.NewTimer(endTimeout)
	defer timer.Stop()
	select {
	case <-done:
		return returned, err
	case <-timer.C:
		ruleFatalf(t, "a Commit or Reset ends when its handler's or clear's goroutine does", "still running %v later", endTimeout)
	case <-ctx.Done():
		ruleFatalf(t, "a Commit or Reset ends when its handler's or clear's goroutine does", "still running at the end of the case: %v", ctx.Err())
	}
	return false, nil
}
