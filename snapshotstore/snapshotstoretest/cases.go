package snapshotstoretest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"strconv"
	"sync"
	"time"

	"github.com/eventsourced-go/eventsourced/internal/conformancetest"
	"github.com/eventsourced-go/eventsourced/snapshotstore"
)

// Cases returns the conformance cases, in the order [Run] runs them.
func Cases() []Case {
	c := conformancetest.New[snapshotstore.Store]
	return []Case{
		c("LoadNone", "Load of an entity without snapshots returns found false and a nil error", loadNone),
		c("SaveLoadLatest", "Load returns the snapshot with the highest Seq, whatever order they were saved in", saveLoadLatest),
		c("OverwriteSameSeq", "a Save at an existing Seq replaces that snapshot", overwriteSameSeq),
		c("KeepLastK", "Save with keep K leaves only the K snapshots with the highest Seq; keep <= 0 keeps all", keepLastK),
		c("LargeSnapshot", "an 8 MiB snapshot round-trips byte for byte", largeSnapshot),
		c("KeysPerTypeAndID", "snapshots are keyed by (entity type, entity id): the same id under two types, or two ids, are separate", keysPerTypeAndID),
		c("Delete", "Delete removes all of an entity's snapshots, and deleting none is not an error", deleteAll),
		c("InvalidArguments", "an empty type or id, or a Save at Seq 0, fails with ErrInvalid and stores nothing", invalidArguments),
		c("NameLimits", "types and ids of MaxTypeLen and MaxIDLen bytes of any UTF-8 work in every call; one byte more is refused with ErrInvalid and a bounded message", nameLimits),
		c("TimeSet", "the store sets a snapshot's Time when it saves it", timeSet),
		c("ConcurrentSaves", "concurrent saves to many entities each keep their own latest snapshot", concurrentSaves),
	}
}

// ruleErrorf and ruleFatalf report a rule other than the running case's,
// such as one a helper checks.
var (
	ruleErrorf = conformancetest.RuleErrorf
	ruleFatalf = conformancetest.RuleFatalf
)

// snap returns a snapshot of typ/id at seq with data naming them.
func snap(typ, id string, seq uint64) snapshotstore.Snapshot {
	return snapshotstore.Snapshot{
		EntityType: typ, EntityID: id, Seq: seq, Revision: uint32(seq % 7),
		Data: fmt.Appendf(nil, "%s/%s@%d", typ, id, seq),
	}
}

func mustSave(t TB, ctx context.Context, store snapshotstore.Store, s snapshotstore.Snapshot, keep int) {
	t.Helper()
	if err := store.Save(ctx, s, keep); err != nil {
		ruleFatalf(t, "a Save of a valid snapshot succeeds", "Save(%s/%s@%d, keep %d): %v", s.EntityType, s.EntityID, s.Seq, keep, err)
	}
}

// mustLoad loads and ends the case on an error.
func mustLoad(t TB, ctx context.Context, store snapshotstore.Store, typ, id string) (snapshotstore.Snapshot, bool) {
	t.Helper()
	s, found, err := store.Load(ctx, typ, id)
	if err != nil {
		ruleFatalf(t, "a Load of valid arguments succeeds", "Load(%s/%s): %v", typ, id, err)
	}
	return s, found
}

// expectLatest reports a broken rule of the case unless the latest snapshot
// of typ/id is the one snap(typ, id, seq) made, or there is none when seq is
// 0.
func expectLatest(t *conformancetest.T, ctx context.Context, store snapshotstore.Store, typ, id string, seq uint64) {
	t.Helper()
	s, found := mustLoad(t, ctx, store, typ, id)
	switch {
	case seq == 0 && found:
		t.Errorf("Load(%s/%s): found Seq %d, want none", typ, id, s.Seq)
	case seq == 0:
	case !found:
		t.Errorf("Load(%s/%s): found none, want Seq %d", typ, id, seq)
	default:
		want := snap(typ, id, seq)
		if s.EntityType != typ || s.EntityID != id || s.Seq != seq || s.Revision != want.Revision || !bytes.Equal(s.Data, want.Data) {
			t.Errorf("Load(%s/%s): got %s/%s Seq %d rev %d data %q, want Seq %d rev %d data %q",
				typ, id, s.EntityType, s.EntityID, s.Seq, s.Revision, s.Data, seq, want.Revision, want.Data)
		}
	}
}

// listSeqs returns the Seqs of the entity's snapshots if store is a
// Lister; ok is false otherwise.
func listSeqs(t TB, ctx context.Context, store snapshotstore.Store, typ, id string) (seqs []uint64, ok bool) {
	t.Helper()
	l, ok := store.(snapshotstore.Lister)
	if !ok {
		return nil, false
	}
	list, err := l.List(ctx, typ, id)
	if err != nil {
		ruleFatalf(t, "Lister: List of valid arguments succeeds", "List(%s/%s): %v", typ, id, err)
	}
	for _, s := range list {
		if s.EntityType != typ || s.EntityID != id {
			ruleErrorf(t, "Lister: List yields the entity's own snapshots", "List(%s/%s) yielded one of %s/%s", typ, id, s.EntityType, s.EntityID)
		}
		seqs = append(seqs, s.Seq)
	}
	return seqs, true
}

func loadNone(t *conformancetest.T, store snapshotstore.Store) {
	ctx, n := conformancetest.Context(t), conformancetest.NewNames(t)
	s, found, err := store.Load(ctx, n.Type("account"), n.ID("1"))
	if err != nil || found {
		t.Errorf("got found %v, err %v", found, err)
	}
	if s.Seq != 0 || len(s.Data) != 0 {
		t.Errorf("got Seq %d and %d bytes along with found false", s.Seq, len(s.Data))
	}
}

func saveLoadLatest(t *conformancetest.T, store snapshotstore.Store) {
	ctx, n := conformancetest.Context(t), conformancetest.NewNames(t)
	typ, id := n.Type("account"), n.ID("1")
	for _, seq := range []uint64{5, 9, 7} {
		mustSave(t, ctx, store, snap(typ, id, seq), 0)
	}
	expectLatest(t, ctx, store, typ, id, 9)
	mustSave(t, ctx, store, snap(typ, id, 12), 0)
	expectLatest(t, ctx, store, typ, id, 12)
}

func overwriteSameSeq(t *conformancetest.T, store snapshotstore.Store) {
	ctx, n := conformancetest.Context(t), conformancetest.NewNames(t)
	typ, id := n.Type("account"), n.ID("1")
	first := snapshotstore.Snapshot{EntityType: typ, EntityID: id, Seq: 3, Revision: 1, Data: []byte("first")}
	second := snapshotstore.Snapshot{EntityType: typ, EntityID: id, Seq: 3, Revision: 2, Data: []byte("second")}
	mustSave(t, ctx, store, first, 0)
	mustSave(t, ctx, store, second, 0)
	s, found := mustLoad(t, ctx, store, typ, id)
	if !found || s.Seq != 3 || s.Revision != 2 || string(s.Data) != "second" {
		t.Errorf("got found %v Seq %d rev %d data %q, want Seq 3 rev 2 data \"second\"", found, s.Seq, s.Revision, s.Data)
	}
	if seqs, ok := listSeqs(t, ctx, store, typ, id); ok && len(seqs) != 1 {
		t.Errorf("List: got Seqs %v, want [3]", seqs)
	}
}

func keepLastK(t *conformancetest.T, store snapshotstore.Store) {
	ctx, n := conformancetest.Context(t), conformancetest.NewNames(t)
	typ := n.Type("account")
	check := func(id string, want []uint64) {
		t.Helper()
		expectLatest(t, ctx, store, typ, id, want[len(want)-1])
		seqs, ok := listSeqs(t, ctx, store, typ, id)
		if !ok {
			return
		}
		if fmt.Sprint(seqs) != fmt.Sprint(want) {
			t.Errorf("%s: List got Seqs %v, want %v", id, seqs, want)
		}
	}
	if _, ok := store.(snapshotstore.Lister); !ok {
		t.Logf("%T does not implement snapshotstore.Lister; checking the latest snapshot only", store)
	}

	// Keep 2 of 1..5.
	a := n.ID("a")
	for seq := uint64(1); seq <= 5; seq++ {
		mustSave(t, ctx, store, snap(typ, a, seq), 2)
	}
	check(a, []uint64{4, 5})

	// Keep 3 of 10 saved out of order.
	b := n.ID("b")
	for _, seq := range []uint64{4, 9, 1, 10, 2, 7, 3, 8, 6, 5} {
		mustSave(t, ctx, store, snap(typ, b, seq), 3)
	}
	check(b, []uint64{8, 9, 10})

	// Keep 0 and keep -1 keep all.
	c := n.ID("c")
	for seq := uint64(1); seq <= 4; seq++ {
		mustSave(t, ctx, store, snap(typ, c, seq), int(seq%2)-1)
	}
	check(c, []uint64{1, 2, 3, 4})

	// A smaller keep later trims what a larger one left.
	mustSave(t, ctx, store, snap(typ, c, 5), 1)
	check(c, []uint64{5})
}

func largeSnapshot(t *conformancetest.T, store snapshotstore.Store) {
	ctx, n := conformancetest.Context(t), conformancetest.NewNames(t)
	typ, id := n.Type("big"), n.ID("1")
	data := make([]byte, 8<<20)
	rng := rand.NewChaCha8([32]byte{1, 2, 3})
	_, _ = rng.Read(data)
	mustSave(t, ctx, store, snapshotstore.Snapshot{EntityType: typ, EntityID: id, Seq: 42, Data: data}, 0)
	s, found := mustLoad(t, ctx, store, typ, id)
	if !found {
		t.Fatalf("found none")
	}
	if len(s.Data) != len(data) {
		t.Fatalf("got %d bytes, want %d", len(s.Data), len(data))
	}
	if i := firstDiff(s.Data, data); i >= 0 {
		t.Errorf("byte %d is %#x, want %#x", i, s.Data[i], data[i])
	}
}

// firstDiff returns the index of the first byte where a and b differ, or -1.
func firstDiff(a, b []byte) int {
	for i := range min(len(a), len(b)) {
		if a[i] != b[i] {
			return i
		}
	}
	if len(a) != len(b) {
		return min(len(a), len(b))
	}
	return -1
}

func keysPerTypeAndID(t *conformancetest.T, store snapshotstore.Store) {
	ctx, n := conformancetest.Context(t), conformancetest.NewNames(t)
	ta, tb := n.Type("a"), n.Type("b")
	x, y := n.ID("x"), n.ID("y")
	mustSave(t, ctx, store, snap(ta, x, 3), 1)
	mustSave(t, ctx, store, snap(tb, x, 5), 1)
	mustSave(t, ctx, store, snap(ta, y, 7), 1)
	expectLatest(t, ctx, store, ta, x, 3)
	expectLatest(t, ctx, store, tb, x, 5)
	expectLatest(t, ctx, store, ta, y, 7)
	expectLatest(t, ctx, store, tb, y, 0)
	if err := store.Delete(ctx, ta, x); err != nil {
		t.Fatalf("Delete(%s/%s): %v", ta, x, err)
	}
	expectLatest(t, ctx, store, ta, x, 0)
	expectLatest(t, ctx, store, tb, x, 5)
	expectLatest(t, ctx, store, ta, y, 7)
}

func deleteAll(t *conformancetest.T, store snapshotstore.Store) {
	ctx, n := conformancetest.Context(t), conformancetest.NewNames(t)
	typ, id := n.Type("account"), n.ID("1")
	for seq := uint64(1); seq <= 3; seq++ {
		mustSave(t, ctx, store, snap(typ, id, seq), 0)
	}
	for range 2 {
		if err := store.Delete(ctx, typ, id); err != nil {
			t.Fatalf("Delete: %v", err)
		}
		expectLatest(t, ctx, store, typ, id, 0)
		if seqs, ok := listSeqs(t, ctx, store, typ, id); ok && len(seqs) != 0 {
			t.Errorf("List after Delete: got Seqs %v, want none", seqs)
		}
	}
	if err := store.Delete(ctx, typ, n.ID("never-saved")); err != nil {
		t.Errorf("Delete of an entity without snapshots: %v", err)
	}
	// The entity can be snapshotted again, at any Seq.
	mustSave(t, ctx, store, snap(typ, id, 2), 0)
	expectLatest(t, ctx, store, typ, id, 2)
}

func invalidArguments(t *conformancetest.T, store snapshotstore.Store) {
	ctx, n := conformancetest.Context(t), conformancetest.NewNames(t)
	typ, id := n.Type("account"), n.ID("1")
	check := func(what string, err error) {
		t.Helper()
		if !errors.Is(err, snapshotstore.ErrInvalid) {
			t.Errorf("%s: got %v, want an error matching ErrInvalid", what, err)
		}
	}
	check("Save with an empty type", store.Save(ctx, snap("", id, 1), 0))
	check("Save with an empty id", store.Save(ctx, snap(typ, "", 1), 0))
	check("Save at Seq 0", store.Save(ctx, snap(typ, id, 0), 0))
	_, _, err := store.Load(ctx, "", id)
	check("Load with an empty type", err)
	_, _, err = store.Load(ctx, typ, "")
	check("Load with an empty id", err)
	check("Delete with an empty type", store.Delete(ctx, "", id))
	check("Delete with an empty id", store.Delete(ctx, typ, ""))
	expectLatest(t, ctx, store, typ, id, 0)
}

func nameLimits(t *conformancetest.T, store snapshotstore.Store) {
	ctx, n := conformancetest.Context(t), conformancetest.NewNames(t)
	typ := conformancetest.Fill(n.Type("lim"), snapshotstore.MaxTypeLen)
	for _, id := range []string{conformancetest.Fill(n.ID("a"), snapshotstore.MaxIDLen), conformancetest.Fill(n.ID("b"), snapshotstore.MaxIDLen)} {
		if err := store.Save(ctx, snap(typ, id, 1), 2); err != nil {
			t.Errorf("Save of a %d-byte type and a %d-byte id: %v", len(typ), len(id), err)
			continue
		}
		if err := store.Save(ctx, snap(typ, id, 2), 2); err != nil {
			t.Errorf("second Save of a %d-byte id: %v", len(id), err)
		}
		expectLatest(t, ctx, store, typ, id, 2)
		if l, ok := store.(snapshotstore.Lister); ok {
			list, err := l.List(ctx, typ, id)
			if err != nil || len(list) != 2 || list[0].EntityID != id || list[0].EntityType != typ {
				t.Errorf("List of a %d-byte id: %d snapshots, %v; want 2 of this entity", len(id), len(list), err)
			}
		}
		if err := store.Delete(ctx, typ, id); err != nil {
			t.Errorf("Delete of a %d-byte id: %v", len(id), err)
		}
		expectLatest(t, ctx, store, typ, id, 0)
	}
	longID := conformancetest.Fill(n.ID("over"), snapshotstore.MaxIDLen+1)
	longType := conformancetest.Fill(n.Type("over"), snapshotstore.MaxTypeLen+1)
	check := func(what string, err error) {
		t.Helper()
		if !errors.Is(err, snapshotstore.ErrInvalid) {
			t.Errorf("%s: got %v, want an error matching ErrInvalid", what, err)
			return
		}
		if len(err.Error()) > 400 {
			t.Errorf("%s: a %d-byte message, want the id quoted as a bounded prefix", what, len(err.Error()))
		}
	}
	check("Save of a 256-byte id", store.Save(ctx, snap(typ, longID, 1), 0))
	check("Save of a 256-byte type", store.Save(ctx, snap(longType, n.ID("x"), 1), 0))
	_, _, err := store.Load(ctx, typ, longID)
	check("Load of a 256-byte id", err)
	check("Delete of a 256-byte id", store.Delete(ctx, typ, longID))
	check("Save of an id that is not UTF-8", store.Save(ctx, snap(typ, "bad\xffutf8", 1), 0))
}

func timeSet(t *conformancetest.T, store snapshotstore.Store) {
	ctx, n := conformancetest.Context(t), conformancetest.NewNames(t)
	typ := n.Type("account")
	before := time.Now()
	stale := time.Date(2001, 1, 1, 0, 0, 0, 0, time.UTC)
	for i, given := range []time.Time{{}, stale} {
		id := n.ID(strconv.Itoa(i))
		s := snap(typ, id, 1)
		s.Time = given
		mustSave(t, ctx, store, s, 0)
		got, found := mustLoad(t, ctx, store, typ, id)
		switch {
		case !found:
			t.Errorf("saved with Time %v: found none", given)
		case got.Time.IsZero():
			t.Errorf("saved with Time %v: loaded a zero Time", given)
		case got.Time.Sub(before) < -time.Hour || got.Time.Sub(before) > time.Hour:
			t.Errorf("saved with Time %v at %v: loaded Time %v", given, before, got.Time)
		}
	}
}

func concurrentSaves(t *conformancetest.T, store snapshotstore.Store) {
	const writers, entities, saves = 16, 8, 6
	ctx, n := conformancetest.Context(t), conformancetest.NewNames(t)
	typ := n.Type("account")
	var wg sync.WaitGroup
	for w := range writers {
		wg.Go(func() {
			for e := range entities {
				id := n.ID(fmt.Sprintf("%d_%d", w, e))
				for seq := uint64(1); seq <= saves; seq++ {
					if err := store.Save(ctx, snap(typ, id, seq), 3); err != nil {
						t.Errorf("Save(%s@%d): %v", id, seq, err)
						return
					}
				}
			}
		})
	}
	wg.Wait()
	if t.Failed() {
		return
	}
	for w := range writers {
		for e := range entities {
			id := n.ID(fmt.Sprintf("%d_%d", w, e))
			expectLatest(t, ctx, store, typ, id, saves)
			if seqs, ok := listSeqs(t, ctx, store, typ, id); ok && fmt.Sprint(seqs) != fmt.Sprint([]uint64{4, 5, 6}) {
				t.Errorf("%s: List got Seqs %v, want [4 5 6]", id, seqs)
			}
		}
	}
}
