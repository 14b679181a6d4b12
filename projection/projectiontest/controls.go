package projectiontest

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/eventsourced-go/eventsourced/internal/conformancetest"
	"github.com/eventsourced-go/eventsourced/projection"
)

// ControlCase is one conformance check of the [projection.Controls]
// capability, as [Case] is of the offset store's.
type ControlCase = conformancetest.Case[projection.Controls]

// RunControls runs every case of [ControlCases] against the stores
// newStore returns, each as a subtest named after the case, with a fresh
// store per case. newStore should register the store's closing with
// t.Cleanup. If the store is also a [projection.OffsetStore], the suite
// checks that a name's offset and control record are independent.
//
// Cases name their projections uniquely, so newStore may return stores
// that share one database or bucket.
func RunControls(t *testing.T, newStore func(t *testing.T) projection.Controls) {
	t.Helper()
	conformancetest.Run(t, ControlCases(), newStore)
}

// ControlCases returns the control-record conformance cases, in the order
// [RunControls] runs them.
func ControlCases() []ControlCase {
	c := conformancetest.New[projection.Controls]
	return []ControlCase{
		c("ControlAbsent", "LoadControl of a name never saved returns the zero Control and version 0", controlAbsent),
		c("ControlSaveLoad", "LoadControl returns what SaveControl saved, every field included, at the version SaveControl returned, which is never 0 and changes with every save", controlSaveLoad),
		c("ControlConditional", "SaveControl at a version other than the record's (0 for one that exists, another for one that does not) fails with ErrControlChanged and changes nothing", controlConditional),
		c("ControlNamesApart", "names that differ, even only in characters a key-based store escapes, have records of their own", controlNamesApart),
		c("ControlConcurrentUpdates", "of concurrent SaveControls at one version exactly one succeeds, so UpdateControl loses no writer's change", controlConcurrentUpdates),
		c("ControlApartFromOffset", "a name's control record and its offset are independent: saving one leaves the other as it was", controlApartFromOffset),
		c("ControlCanceledContext", "LoadControl and SaveControl with a canceled ctx fail with an error matching context.Canceled and change nothing", controlCanceledContext),
	}
}

// fullControl returns a Control with every field set.
func fullControl(retries ...uint64) projection.Control {
	return projection.Control{Paused: true, PausedAt: epoch.Add(42 * time.Microsecond), Retries: retries}
}

// controlDiff describes how got differs from want, "" if it does not.
// Retries compare by content (nil and empty are the same), times by
// instant.
func controlDiff(got, want projection.Control) string {
	switch {
	case got.Paused != want.Paused:
		return fmt.Sprintf("Paused %v, want %v", got.Paused, want.Paused)
	case !got.PausedAt.Equal(want.PausedAt):
		return fmt.Sprintf("PausedAt %v, want %v", got.PausedAt, want.PausedAt)
	case !slices.Equal(got.Retries, want.Retries):
		return fmt.Sprintf("Retries %v, want %v", got.Retries, want.Retries)
	}
	return ""
}

// mustLoadControl loads and ends the case on an error.
func mustLoadControl(t TB, ctx context.Context, store projection.Controls, name string) (projection.Control, uint64) {
	t.Helper()
	c, v, err := store.LoadControl(ctx, name)
	if err != nil {
		ruleFatalf(t, "LoadControl with a live ctx succeeds", "LoadControl(%q): %v", name, err)
	}
	return c, v
}

// mustSaveControl saves and ends the case on an error.
func mustSaveControl(t TB, ctx context.Context, store projection.Controls, name string, c projection.Control, version uint64) uint64 {
	t.Helper()
	v, err := store.SaveControl(ctx, name, c, version)
	if err != nil {
		ruleFatalf(t, "SaveControl at the record's version succeeds", "SaveControl(%q, version %d): %v", name, version, err)
	}
	return v
}

func controlAbsent(t *conformancetest.T, store projection.Controls) {
	ctx, n := conformancetest.Context(t), conformancetest.NewNames(t)
	c, v, err := store.LoadControl(ctx, n.Name("never"))
	if err != nil {
		t.Fatalf("LoadControl: %v", err)
	}
	if d := controlDiff(c, projection.Control{}); d != "" || v != 0 {
		t.Errorf("LoadControl of a name never saved: version %d, %s; want the zero Control at version 0", v, d)
	}
}

func controlSaveLoad(t *conformancetest.T, store projection.Controls) {
	ctx, n := conformancetest.Context(t), conformancetest.NewNames(t)
	name := n.Name("p")
	var version uint64
	seen := map[uint64]bool{}
	for i, want := range []projection.Control{
		fullControl(3, 1<<53+1),
		{Retries: []uint64{7}},
		fullControl(),
		{},
	} {
		v := mustSaveControl(t, ctx, store, name, want, version)
		if v == 0 || seen[v] {
			t.Fatalf("save %d returned version %d, want a new one, never 0 (had %v)", i, v, seen)
		}
		seen[v] = true
		got, gv := mustLoadControl(t, ctx, store, name)
		if d := controlDiff(got, want); d != "" {
			t.Errorf("after save %d, LoadControl: %s", i, d)
		}
		if gv != v {
			t.Errorf("after save %d, LoadControl version %d, want %d as SaveControl returned", i, gv, v)
		}
		version = v
	}
}

func controlConditional(t *conformancetest.T, store projection.Controls) {
	ctx, n := conformancetest.Context(t), conformancetest.NewNames(t)
	name, absent := n.Name("p"), n.Name("absent")
	want := fullControl(4)
	v := mustSaveControl(t, ctx, store, name, want, 0)
	for _, stale := range []uint64{0, v + 1, v + 1000} {
		if _, err := store.SaveControl(ctx, name, projection.Control{}, stale); !errors.Is(err, projection.ErrControlChanged) {
			t.Errorf("SaveControl at version %d of a record at %d: %v, want an error matching ErrControlChanged", stale, v, err)
		}
	}
	if got, gv := mustLoadControl(t, ctx, store, name); controlDiff(got, want) != "" || gv != v {
		t.Errorf("after refused saves: version %d, %s; want the record as saved at %d", gv, controlDiff(got, want), v)
	}
	if _, err := store.SaveControl(ctx, absent, want, v); !errors.Is(err, projection.ErrControlChanged) {
		t.Errorf("SaveControl at version %d of a name without a record: %v, want an error matching ErrControlChanged", v, err)
	}
	if got, gv := mustLoadControl(t, ctx, store, absent); controlDiff(got, projection.Control{}) != "" || gv != 0 {
		t.Errorf("after a refused save, the name without a record has one at version %d: %+v", gv, got)
	}
}

func controlNamesApart(t *conformancetest.T, store projection.Controls) {
	ctx, n := conformancetest.Context(t), conformancetest.NewNames(t)
	base := n.Name("")
	names := []string{base + "a", base + "A", base + "a.b", base + "a b", base + "a*", base + "b64_a", base, base + "äß", projection.SliceName(base+"a", 0, 2)}
	for i, name := range names {
		mustSaveControl(t, ctx, store, name, projection.Control{Retries: []uint64{uint64(i + 1)}}, 0)
	}
	for i, name := range names {
		got, _ := mustLoadControl(t, ctx, store, name)
		if d := controlDiff(got, projection.Control{Retries: []uint64{uint64(i + 1)}}); d != "" {
			t.Errorf("LoadControl(%q): %s", name, d)
		}
	}
}

func controlConcurrentUpdates(t *conformancetest.T, store projection.Controls) {
	ctx, n := conformancetest.Context(t), conformancetest.NewNames(t)
	name := n.Name("p")
	v := mustSaveControl(t, ctx, store, name, projection.Control{}, 0)
	const writers = 8
	var (
		wg   sync.WaitGroup
		mu   sync.Mutex // guards wins
		wins []uint64
	)
	for i := range writers {
		wg.Go(func() {
			_, err := store.SaveControl(ctx, name, projection.Control{Retries: []uint64{uint64(i + 1)}}, v)
			switch {
			case err == nil:
				mu.Lock()
				wins = append(wins, uint64(i+1))
				mu.Unlock()
			case !errors.Is(err, projection.ErrControlChanged):
				t.Errorf("SaveControl racing at one version: %v, want nil or ErrControlChanged", err)
			}
		})
	}
	wg.Wait()
	if len(wins) != 1 {
		t.Fatalf("%d of %d SaveControls at one version succeeded (%v), want exactly 1", len(wins), writers, wins)
	}
	if got, _ := mustLoadControl(t, ctx, store, name); !slices.Equal(got.Retries, wins) {
		t.Errorf("after the race, Retries %v, want the winner's %v", got.Retries, wins)
	}
	// UpdateControl from many goroutines: every change lands.
	for i := range writers {
		wg.Go(func() {
			err := projection.UpdateControl(ctx, store, name, func(c *projection.Control) {
				c.Retries = append(c.Retries, uint64(100+i))
			})
			if err != nil {
				t.Errorf("UpdateControl: %v", err)
			}
		})
	}
	wg.Wait()
	got, _ := mustLoadControl(t, ctx, store, name)
	slices.Sort(got.Retries)
	want := append([]uint64(nil), wins...)
	for i := range writers {
		want = append(want, uint64(100+i))
	}
	if !slices.Equal(got.Retries, want) {
		t.Errorf("after %d concurrent UpdateControls, Retries %v, want %v", writers, got.Retries, want)
	}
}

func controlApartFromOffset(t *conformancetest.T, store projection.Controls) {
	offsets, ok := store.(projection.OffsetStore)
	if !ok {
		t.Logf("the store is not an OffsetStore: nothing to check")
		return
	}
	ctx, n := conformancetest.Context(t), conformancetest.NewNames(t)
	name := n.Name("p")
	mustCommit(t, ctx, offsets, name, 0, 17, nop)
	v := mustSaveControl(t, ctx, store, name, fullControl(17), 0)
	if off := mustLoad(t, ctx, offsets, name); off != 17 {
		t.Errorf("after SaveControl, the offset is %d, want 17 as committed", off)
	}
	mustCommit(t, ctx, offsets, name, 17, 18, nop)
	if err := offsets.Reset(ctx, name, nil); err != nil {
		t.Fatalf("Reset(%q): %v", name, err)
	}
	if got, gv := mustLoadControl(t, ctx, store, name); controlDiff(got, fullControl(17)) != "" || gv != v {
		t.Errorf("after Commit and Reset, the control record is at version %d: %s; want it as saved at %d", gv, controlDiff(got, fullControl(17)), v)
	}
	other := n.Name("q")
	mustSaveControl(t, ctx, store, other, fullControl(), 0)
	if off := mustLoad(t, ctx, offsets, other); off != 0 {
		t.Errorf("a name with only a control record has offset %d, want 0", off)
	}
}

func controlCanceledContext(t *conformancetest.T, store projection.Controls) {
	ctx, n := conformancetest.Context(t), conformancetest.NewNames(t)
	name := n.Name("p")
	v := mustSaveControl(t, ctx, store, name, fullControl(5), 0)
	canceled, cancel := context.WithCancel(ctx)
	cancel()
	if _, _, err := store.LoadControl(canceled, name); !errors.Is(err, context.Canceled) {
		t.Errorf("LoadControl: %v, want an error matching context.Canceled", err)
	}
	if _, err := store.SaveControl(canceled, name, projection.Control{}, v); !errors.Is(err, context.Canceled) {
		t.Errorf("SaveControl: %v, want an error matching context.Canceled", err)
	}
	if got, gv := mustLoadControl(t, ctx, store, name); controlDiff(got, fullControl(5)) != "" || gv != v {
		t.Errorf("after a SaveControl with a canceled ctx, the record is at version %d: %s; want it unchanged", gv, controlDiff(got, fullControl(5)))
	}
}
