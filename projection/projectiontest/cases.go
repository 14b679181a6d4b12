package projectiontest

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/eventsourced-go/eventsourced/internal/conformancetest"
	"github.com/eventsourced-go/eventsourced/projection"
)

// Cases returns the conformance cases, in the order [Run] runs them.
func Cases() []Case {
	c := conformancetest.New[projection.OffsetStore]
	return []Case{
		c("LoadUnknown", "Load of a name that was never committed returns 0 and no error", loadUnknown),
		c("CommitMovesOffset", "Commit from the stored offset runs handle exactly once, then moves the offset to to", commitMovesOffset),
		c("CommitMovesBack", "Commit moves the offset to a to below from as well as above it, as Projection.SetOffset does to rewind", commitMovesBack),
		c("CommitFromWrongOffset", "Commit from an offset that is not the stored one fails with ErrOffsetMoved, does not run handle and leaves the offset alone", commitFromWrongOffset),
		c("FailingHandle", "a Commit whose handle fails returns its error and leaves the offset where it was; an exactly-once store also undoes handle's writes", failingHandle),
		c("Reset", "Reset runs clear once and sets the offset to 0, so the next Commit is from 0; a nil clear and a name never committed are fine", reset),
		c("ResetAtLeastOnce", "at least once: Reset sets the offset to 0 before clear runs, so a clear that fails or dies never leaves a cleared read model behind a non-zero offset", resetAtLeastOnce),
		c("ResetExactlyOnce", "exactly once: Reset runs clear and the offset reset in one transaction, so a clear that fails or dies leaves the read model and the offset as they were", resetExactlyOnce),
		c("NamesAreIndependent", "each name has its own offset, whatever its characters: committing or resetting one name leaves every other as it was", namesAreIndependent),
		c("ConcurrentRunners", "of runners of one name committing from the same offset at once, exactly one wins and the others get ErrOffsetMoved; an exactly-once store keeps the winner's writes only", concurrentRunners),
		c("CrashAtLeastOnce", "at least once: a crash between the handler and the offset write leaves the offset at from, and a Commit from it delivers the batch again", crashAtLeastOnce),
		c("CrashExactlyOnce", "exactly once: a crash between the handler and the offset write undoes the handler's writes and leaves the offset at from, so the batch delivered again applies once", crashExactlyOnce),
		c("Offsets", "OffsetLister: Offsets lists every committed name once, whatever its characters, with its stored offset, ordered by name; a reset name at 0 or not at all", offsets),
		c("CanceledContext", "Load, Commit and Reset with a canceled ctx fail with an error matching context.Canceled and move no offset", canceledContext),
	}
}

// raceWindow bounds how long each of the concurrent runners' handlers waits
// for the others to reach theirs. A store that serializes runners of one
// name before the handler (a row lock) keeps the others out, and the
// winner's handler goes on after raceWindow; the outcome checked is the
// same either way.
const raceWindow = 500 * time.Millisecond

// endTimeout bounds how long a Commit or Reset whose handler or clear died
// may take to end.
const endTimeout = 10 * time.Second

// errCrash is what a Crasher's hook returns to stop a commit.
var errCrash = errors.New("projectiontest: the process died here")

// loadUnknown checks that a name without a commit is at 0.
func loadUnknown(t *conformancetest.T, store projection.OffsetStore) {
	ctx, n := conformancetest.Context(t), conformancetest.NewNames(t)
	mustCommit(t, ctx, store, n.Name("known"), 0, 3, nop)
	for _, name := range []string{n.Name("unknown"), n.Name("known") + "x", n.Name("know")} {
		if off, err := store.Load(ctx, name); off != 0 || err != nil {
			t.Errorf("Load(%q) = %d, %v; want 0, nil", name, off, err)
		}
	}
}

// commitMovesOffset commits a chain of batches, the last to an offset that
// a float64 cannot hold.
func commitMovesOffset(t *conformancetest.T, store projection.OffsetStore) {
	ctx, n := conformancetest.Context(t), conformancetest.NewNames(t)
	m := newModel(t, store)
	name := n.Name("p")
	offsets := []uint64{0, 5, 6, 1<<53 + 1}
	for i := 1; i < len(offsets); i++ {
		from, to := offsets[i-1], offsets[i]
		key := fmt.Sprintf("%s@%d", name, to)
		if err := store.Commit(ctx, name, from, to, m.handle(key)); err != nil {
			t.Fatalf("Commit %d→%d: %v", from, to, err)
		}
		if got := m.ran(key); got != 1 {
			t.Errorf("Commit %d→%d ran handle %d times, want 1", from, to, got)
		}
		if got := mustLoad(t, ctx, store, name); got != to {
			t.Errorf("after Commit %d→%d, Load = %d, want %d", from, to, got, to)
		}
		if got := m.committed(ctx, key); m.tx != nil && got != 1 {
			t.Errorf("after Commit %d→%d, handle's write committed %d times, want 1", from, to, got)
		}
	}
}

// commitMovesBack rewinds a committed offset, to 0 among others, and
// commits on from there.
func commitMovesBack(t *conformancetest.T, store projection.OffsetStore) {
	ctx, n := conformancetest.Context(t), conformancetest.NewNames(t)
	m := newModel(t, store)
	name := n.Name("p")
	offsets := []uint64{0, 1<<53 + 1, 9, 10, 2, 0, 4}
	for i := 1; i < len(offsets); i++ {
		from, to := offsets[i-1], offsets[i]
		key := fmt.Sprintf("%s@%d/%d", name, to, i)
		if err := store.Commit(ctx, name, from, to, m.handle(key)); err != nil {
			t.Fatalf("Commit %d→%d: %v", from, to, err)
		}
		if got := mustLoad(t, ctx, store, name); got != to {
			t.Fatalf("after Commit %d→%d, Load = %d, want %d", from, to, got, to)
		}
	}
}

// commitFromWrongOffset commits from offsets behind and ahead of the stored
// one, on a name never committed and on one committed.
func commitFromWrongOffset(t *conformancetest.T, store projection.OffsetStore) {
	ctx, n := conformancetest.Context(t), conformancetest.NewNames(t)
	m := newModel(t, store)
	name := n.Name("p")
	wrong := func(stored uint64, froms ...uint64) {
		t.Helper()
		for _, from := range froms {
			err := store.Commit(ctx, name, from, from+10, m.handle("wrong"))
			if !errors.Is(err, projection.ErrOffsetMoved) {
				t.Errorf("Commit from %d with the offset at %d: %v, want an error matching ErrOffsetMoved", from, stored, err)
			}
			if got := mustLoad(t, ctx, store, name); got != stored {
				t.Fatalf("Commit from %d with the offset at %d moved it to %d", from, stored, got)
			}
		}
	}
	wrong(0, 1, 7)
	mustCommit(t, ctx, store, name, 0, 5, nop)
	wrong(5, 0, 3, 9)
	if got := m.ran("wrong"); got != 0 {
		t.Errorf("commits from a wrong offset ran handle %d times, want 0", got)
	}
}

// failingHandle fails the handler of a first commit and of a later one;
// each batch then commits when handled again.
func failingHandle(t *conformancetest.T, store projection.OffsetStore) {
	ctx, n := conformancetest.Context(t), conformancetest.NewNames(t)
	m := newModel(t, store)
	name := n.Name("p")
	boom := errors.New("handler failed")
	for _, step := range [][2]uint64{{0, 4}, {4, 9}} {
		from, to := step[0], step[1]
		key := fmt.Sprintf("%s@%d", name, to)
		err := store.Commit(ctx, name, from, to, m.failing(key, boom))
		if !errors.Is(err, boom) {
			t.Errorf("Commit %d→%d with a failing handle: %v, want an error matching handle's", from, to, err)
		}
		if got := mustLoad(t, ctx, store, name); got != from {
			t.Fatalf("Commit %d→%d with a failing handle moved the offset to %d", from, to, got)
		}
		if got := m.committed(ctx, key); m.tx != nil && got != 0 {
			t.Errorf("Commit %d→%d with a failing handle committed %d of its writes, want 0", from, to, got)
		}
		mustCommit(t, ctx, store, name, from, to, m.handle(key))
		if got := m.committed(ctx, key); m.tx != nil && got != 1 {
			t.Errorf("Commit %d→%d handled again: %d writes committed, want 1", from, to, got)
		}
	}
}

// reset resets a committed name with and without clear, and a name never
// committed.
func reset(t *conformancetest.T, store projection.OffsetStore) {
	ctx, n := conformancetest.Context(t), conformancetest.NewNames(t)
	name, unknown := n.Name("p"), n.Name("unknown")
	var cleared atomic.Int32
	clear := func(ctx context.Context) error {
		cleared.Add(1)
		return ctx.Err()
	}
	mustCommit(t, ctx, store, name, 0, 7, nop)
	if err := store.Reset(ctx, name, clear); err != nil {
		t.Fatalf("Reset: %v", err)
	}
	if got := cleared.Load(); got != 1 {
		t.Errorf("Reset ran clear %d times, want 1", got)
	}
	if got := mustLoad(t, ctx, store, name); got != 0 {
		t.Errorf("after Reset, Load = %d, want 0", got)
	}
	if err := store.Commit(ctx, name, 7, 8, nop); !errors.Is(err, projection.ErrOffsetMoved) {
		t.Errorf("Commit from the offset before Reset: %v, want an error matching ErrOffsetMoved", err)
	}
	mustCommit(t, ctx, store, name, 0, 3, nop)

	if err := store.Reset(ctx, name, nil); err != nil {
		t.Fatalf("Reset with a nil clear: %v", err)
	}
	if got := mustLoad(t, ctx, store, name); got != 0 {
		t.Errorf("after Reset with a nil clear, Load = %d, want 0", got)
	}
	mustCommit(t, ctx, store, name, 0, 2, nop)

	if err := store.Reset(ctx, unknown, clear); err != nil {
		t.Fatalf("Reset of a name never committed: %v", err)
	}
	if got := cleared.Load(); got != 2 {
		t.Errorf("Reset of a name never committed ran clear %d times, want 1", got-1)
	}
	if got := mustLoad(t, ctx, store, unknown); got != 0 {
		t.Errorf("after Reset of a name never committed, Load = %d, want 0", got)
	}
	mustCommit(t, ctx, store, unknown, 0, 1, nop)
}

// resetAtLeastOnce fails clear, then kills it, on a committed name.
func resetAtLeastOnce(t *conformancetest.T, store projection.OffsetStore) {
	if _, ok := store.(Transactional); ok {
		t.Logf("%T implements Transactional: it is exactly-once; case not applicable", store)
		return
	}
	ctx, n := conformancetest.Context(t), conformancetest.NewNames(t)
	name := n.Name("p")
	boom := errors.New("clear failed")
	mustCommit(t, ctx, store, name, 0, 7, nop)
	if err := store.Reset(ctx, name, func(context.Context) error { return boom }); !errors.Is(err, boom) {
		t.Errorf("Reset with a failing clear: %v, want an error matching clear's", err)
	}
	if got := mustLoad(t, ctx, store, name); got != 0 {
		t.Errorf("after Reset with a failing clear, Load = %d, want 0 (a store that resets and clears in one transaction declares it by implementing projectiontest.Transactional)", got)
	}

	mustCommit(t, ctx, store, name, 0, 9, nop)
	if returned, err := resetDying(t, ctx, store, name, nop); returned {
		t.Fatalf("Reset returned (%v) though its clear died", err)
	}
	if got := mustLoad(t, ctx, store, name); got != 0 {
		t.Errorf("after a crash in clear, Load = %d, want 0", got)
	}
}

// resetExactlyOnce fails clear after a write, then kills it, then lets it
// commit.
func resetExactlyOnce(t *conformancetest.T, store projection.OffsetStore) {
	tx, ok := store.(Transactional)
	if !ok {
		t.Logf("%T does not implement Transactional: it is at-least-once; case not applicable", store)
		return
	}
	ctx, n := conformancetest.Context(t), conformancetest.NewNames(t)
	m := newModel(t, store)
	name := n.Name("p")
	boom := errors.New("clear failed")
	mustCommit(t, ctx, store, name, 0, 7, nop)
	failed, died, cleared := name+"/failed", name+"/died", name+"/cleared"

	err := store.Reset(ctx, name, func(ctx context.Context) error {
		if err := tx.Write(ctx, failed); err != nil {
			return err
		}
		return boom
	})
	if !errors.Is(err, boom) {
		t.Errorf("Reset with a failing clear: %v, want an error matching clear's", err)
	}
	if got := mustLoad(t, ctx, store, name); got != 7 {
		t.Errorf("after Reset with a failing clear, Load = %d, want 7: the reset must roll back with clear", got)
	}
	if got := m.committed(ctx, failed); got != 0 {
		t.Errorf("after Reset with a failing clear, %d of clear's writes committed, want 0", got)
	}

	if returned, err := resetDying(t, ctx, store, name, func(ctx context.Context) error { return tx.Write(ctx, died) }); returned {
		t.Fatalf("Reset returned (%v) though its clear died", err)
	}
	if got := mustLoad(t, ctx, store, name); got != 7 {
		t.Errorf("after a crash in clear, Load = %d, want 7", got)
	}
	if got := m.committed(ctx, died); got != 0 {
		t.Errorf("after a crash in clear, %d of clear's writes committed, want 0", got)
	}

	if err := store.Reset(ctx, name, func(ctx context.Context) error { return tx.Write(ctx, cleared) }); err != nil {
		t.Fatalf("Reset: %v", err)
	}
	if got := mustLoad(t, ctx, store, name); got != 0 {
		t.Errorf("after Reset, Load = %d, want 0", got)
	}
	if got := m.committed(ctx, cleared); got != 1 {
		t.Errorf("after Reset, %d of clear's writes committed, want 1", got)
	}
}

// namesAreIndependent commits names that differ in case, punctuation and
// encoding, and that key-based stores must escape, then resets one.
func namesAreIndependent(t *conformancetest.T, store projection.OffsetStore) {
	ctx, n := conformancetest.Context(t), conformancetest.NewNames(t)
	base := n.Name("")
	names := []string{
		base + "a", base + "A", base + "b", base + "a.b", base + "a_b", base + "a b", base + "a/b",
		base + "a*>", base + "a..b", "." + base, base + "äß日本🙂", "b64_" + base + "a",
		conformancetest.Fill(base, 200),
	}
	for i, name := range names {
		if err := store.Commit(ctx, name, 0, uint64(i+1), nop); err != nil {
			t.Fatalf("the first Commit of %q, 0→%d, after %d other names: %v", name, i+1, i, err)
		}
	}
	check := func(when string, want func(i int) uint64) {
		t.Helper()
		for i, name := range names {
			if got := mustLoad(t, ctx, store, name); got != want(i) {
				t.Errorf("%s: Load(%q) = %d, want %d", when, name, got, want(i))
			}
		}
	}
	check("after one commit each", func(i int) uint64 { return uint64(i + 1) })
	if err := store.Commit(ctx, names[0], 2, 20, nop); !errors.Is(err, projection.ErrOffsetMoved) {
		t.Errorf("Commit of %q from the offset of %q: %v, want an error matching ErrOffsetMoved", names[0], names[1], err)
	}
	if err := store.Reset(ctx, names[0], nil); err != nil {
		t.Fatalf("Reset(%q): %v", names[0], err)
	}
	check("after resetting the first", func(i int) uint64 {
		if i == 0 {
			return 0
		}
		return uint64(i + 1)
	})
}

// concurrentRunners races runners of one name, first from 0 (no offset
// stored yet) and then from a stored offset.
func concurrentRunners(t *conformancetest.T, store projection.OffsetStore) {
	const runners = 3
	ctx, n := conformancetest.Context(t), conformancetest.NewNames(t)
	m := newModel(t, store)
	name := n.Name("p")
	var from uint64
	for round, base := range []uint64{10, 20} {
		var entered atomic.Int32
		allIn := make(chan struct{})
		start := make(chan struct{})
		errs := make([]error, runners)
		key := func(r int) string { return fmt.Sprintf("%s/round%d/runner%d", name, round, r) }
		var wg sync.WaitGroup
		for r := range runners {
			wg.Go(func() {
				<-start
				errs[r] = store.Commit(ctx, name, from, base+uint64(r), func(ctx context.Context) error {
					if entered.Add(1) == runners {
						close(allIn)
					}
					// Wait for the other runners to reach their handlers
					// too, so a store that checks the offset before the
					// handler and writes it after without checking again
					// lets more than one win.
					timer := time.NewTimer(raceWindow)
					defer timer.Stop()
					select {
					case <-allIn:
					case <-timer.C:
					case <-ctx.Done():
					}
					return m.handle(key(r))(ctx)
				})
			})
		}
		close(start)
		wg.Wait()
		winner := -1
		for r, err := range errs {
			switch {
			case err == nil && winner >= 0:
				t.Errorf("round %d from %d: runners %d and %d both won", round, from, winner, r)
			case err == nil:
				winner = r
			case !errors.Is(err, projection.ErrOffsetMoved):
				t.Errorf("round %d from %d: runner %d: %v, want success or an error matching ErrOffsetMoved", round, from, r, err)
			}
		}
		if winner < 0 {
			t.Fatalf("round %d from %d: no runner won: %v", round, from, errs)
		}
		if got, want := mustLoad(t, ctx, store, name), base+uint64(winner); got != want {
			t.Errorf("round %d from %d: Load = %d, want %d, the winner's", round, from, got, want)
		}
		if m.tx != nil {
			for r := range runners {
				want := 0
				if r == winner {
					want = 1
				}
				if got := m.committed(ctx, key(r)); got != want {
					t.Errorf("round %d from %d: runner %d (winner %d) has %d writes committed, want %d", round, from, r, winner, got, want)
				}
			}
		}
		from = base + uint64(winner)
	}
}

// crashAtLeastOnce kills a commit in each way the store allows, then
// delivers its batch again.
func crashAtLeastOnce(t *conformancetest.T, store projection.OffsetStore) {
	if _, ok := store.(Transactional); ok {
		t.Logf("%T implements Transactional: it is exactly-once; case not applicable", store)
		return
	}
	ctx, n := conformancetest.Context(t), conformancetest.NewNames(t)
	m := newModel(t, store)
	for i, c := range crashes(store) {
		name := n.Name(strconv.Itoa(i))
		key := name + "@9"
		mustCommit(t, ctx, store, name, 0, 4, nop)
		c.commit(t, ctx, name, 4, 9, m.handle(key))
		if got := m.ran(key); got != 1 {
			t.Fatalf("%s: handle ran %d times before the crash, want 1", c.name, got)
		}
		if got := mustLoad(t, ctx, store, name); got != 4 {
			t.Errorf("%s: after the crash, Load = %d, want 4: the batch would never be delivered again", c.name, got)
			continue
		}
		if err := store.Commit(ctx, name, 4, 9, m.handle(key)); err != nil {
			t.Errorf("%s: Commit 4→9 delivering the batch again: %v", c.name, err)
			continue
		}
		if got := m.ran(key); got != 2 {
			t.Errorf("%s: handle ran %d times, want 2: once before the crash, once after", c.name, got)
		}
		if got := mustLoad(t, ctx, store, name); got != 9 {
			t.Errorf("%s: after the batch was delivered again, Load = %d, want 9", c.name, got)
		}
	}
}

// crashExactlyOnce kills a commit in each way the store allows, then
// delivers its batch again.
func crashExactlyOnce(t *conformancetest.T, store projection.OffsetStore) {
	if _, ok := store.(Transactional); !ok {
		t.Logf("%T does not implement Transactional: it is at-least-once; case not applicable", store)
		return
	}
	ctx, n := conformancetest.Context(t), conformancetest.NewNames(t)
	m := newModel(t, store)
	for i, c := range crashes(store) {
		name := n.Name(strconv.Itoa(i))
		key := name + "@9"
		mustCommit(t, ctx, store, name, 0, 4, nop)
		c.commit(t, ctx, name, 4, 9, m.handle(key))
		if got := m.ran(key); got != 1 {
			t.Fatalf("%s: handle ran %d times before the crash, want 1", c.name, got)
		}
		if got := mustLoad(t, ctx, store, name); got != 4 {
			t.Errorf("%s: after the crash, Load = %d, want 4", c.name, got)
		}
		if got := m.committed(ctx, key); got != 0 {
			t.Errorf("%s: after the crash, %d of the handler's writes committed, want 0: delivered again, the batch applies twice", c.name, got)
		}
		if err := store.Commit(ctx, name, 4, 9, m.handle(key)); err != nil {
			t.Errorf("%s: Commit 4→9 delivering the batch again: %v", c.name, err)
			continue
		}
		if got := m.committed(ctx, key); got != 1 {
			t.Errorf("%s: after the batch was delivered again, %d of its writes committed, want 1", c.name, got)
		}
		if got := mustLoad(t, ctx, store, name); got != 9 {
			t.Errorf("%s: after the batch was delivered again, Load = %d, want 9", c.name, got)
		}
	}
}

// canceledContext calls everything with a canceled ctx on a committed name.
func canceledContext(t *conformancetest.T, store projection.OffsetStore) {
	ctx, n := conformancetest.Context(t), conformancetest.NewNames(t)
	m := newModel(t, store)
	name := n.Name("p")
	mustCommit(t, ctx, store, name, 0, 5, nop)
	canceled, cancel := context.WithCancel(ctx)
	cancel()
	if _, err := store.Load(canceled, name); !errors.Is(err, context.Canceled) {
		t.Errorf("Load: %v, want an error matching context.Canceled", err)
	}
	if err := store.Commit(canceled, name, 5, 9, m.handle("canceled")); !errors.Is(err, context.Canceled) {
		t.Errorf("Commit: %v, want an error matching context.Canceled", err)
	}
	if got := mustLoad(t, ctx, store, name); got != 5 {
		t.Errorf("after Commit with a canceled ctx, Load = %d, want 5", got)
	}
	if got := m.committed(ctx, "canceled"); m.tx != nil && got != 0 {
		t.Errorf("Commit with a canceled ctx committed %d writes, want 0", got)
	}
	if err := store.Reset(canceled, name, nil); !errors.Is(err, context.Canceled) {
		t.Errorf("Reset: %v, want an error matching context.Canceled", err)
	}
	if got := mustLoad(t, ctx, store, name); got != 5 {
		t.Errorf("after Reset with a canceled ctx, Load = %d, want 5", got)
	}
}

// offsets checks the optional listing of offsets.
func offsets(t *conformancetest.T, store projection.OffsetStore) {
	l, ok := store.(projection.OffsetLister)
	if !ok {
		t.Logf("%T does not implement projection.OffsetLister; case not applicable", store)
		return
	}
	ctx, n := conformancetest.Context(t), conformancetest.NewNames(t)
	a, b, odd, reset := n.Name("a"), n.Name("b"), n.Name("a b/é.*[0/2]"), n.Name("reset")
	mustCommit(t, ctx, store, b, 0, 7, nop)
	mustCommit(t, ctx, store, a, 0, 3, nop)
	mustCommit(t, ctx, store, a, 3, 5, nop)
	mustCommit(t, ctx, store, odd, 0, 9, nop)
	mustCommit(t, ctx, store, reset, 0, 2, nop)
	if err := store.Reset(ctx, reset, nil); err != nil {
		t.Fatalf("Reset: %v", err)
	}
	all, err := l.Offsets(ctx)
	if err != nil {
		t.Fatalf("Offsets: %v", err)
	}
	// The store may hold other cases' names: look at this case's only.
	var got []string
	for i, o := range all {
		if i > 0 && all[i-1].Name >= o.Name {
			t.Errorf("Offsets not ordered by name: %q before %q", all[i-1].Name, o.Name)
		}
		if o.Name == reset {
			if o.Position != 0 {
				t.Errorf("Offsets: %q after Reset is at %d, want 0", o.Name, o.Position)
			}
			continue
		}
		if strings.HasPrefix(o.Name, n.Name("")) {
			got = append(got, fmt.Sprintf("%s=%d", o.Name, o.Position))
		}
	}
	want := []string{a + "=5", odd + "=9", b + "=7"}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("Offsets: got %q, want %q", got, want)
	}
}
