package snapshotstoretest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"strconv"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/eventsourced-go/eventsourced/snapshotstore"
)

// Cases returns the conformance cases, in the order [Run] runs them.
func Cases() []Case {
	return []Case{
		{"LoadNone", "Load of an entity without snapshots returns found false and a nil error", loadNone},
		{"SaveLoadLatest", "Load returns the snapshot with the highest Seq, whatever order they were saved in", saveLoadLatest},
		{"OverwriteSameSeq", "a Save at an existing Seq replaces that snapshot", overwriteSameSeq},
		{"KeepLastK", "Save with keep K leaves only the K snapshots with the highest Seq; keep <= 0 keeps all", keepLastK},
		{"LargeSnapshot", "an 8 MiB snapshot round-trips byte for byte", largeSnapshot},
		{"KeysPerTypeAndID", "snapshots are keyed by (entity type, entity id): the same id under two types, or two ids, are separate", keysPerTypeAndID},
		{"Delete", "Delete removes all of an entity's snapshots, and deleting none is not an error", deleteAll},
		{"InvalidArguments", "an empty type or id, or a Save at Seq 0, fails with ErrInvalid and stores nothing", invalidArguments},
		{"NameLimits", "types and ids of MaxTypeLen and MaxIDLen bytes of any UTF-8 work in every call; one byte more is refused with ErrInvalid and a bounded message", nameLimits},
		{"TimeSet", "the store sets a snapshot's Time when it saves it", timeSet},
		{"ConcurrentSaves", "concurrent saves to many entities each keep their own latest snapshot", concurrentSaves},
	}
}

// caseTimeout bounds every case, so a hung backend fails instead of hanging.
const caseTimeout = 60 * time.Second

// testContext returns a context canceled when the case ends or times out.
func testContext(t TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), caseTimeout)
	t.Cleanup(cancel)
	return ctx
}

// names makes entity types and ids unique to one run of one case, using
// only lower-case letters, digits and underscores.
type names struct{ prefix string }

func newNames(t TB) names {
	name := t.Name()
	if i := strings.LastIndexByte(name, '/'); i >= 0 {
		name = name[i+1:]
	}
	var b strings.Builder
	for _, r := range strings.ToLower(name) {
		switch {
		case r >= 'a' && r <= 'z', r >= '0' && r <= '9':
			b.WriteRune(r)
		default:
			b.WriteByte('_')
		}
		if b.Len() >= 24 {
			break
		}
	}
	return names{prefix: fmt.Sprintf("%s_%08x", b.String(), rand.Uint32())}
}

func (n names) typ(s string) string { return "t_" + n.prefix + "_" + s }
func (n names) id(s string) string  { return "i_" + n.prefix + "_" + s }

// ruleErrorf reports a broken rule and carries on.
func ruleErrorf(t TB, rule, format string, args ...any) {
	t.Helper()
	t.Errorf("rule: %s: %s", rule, fmt.Sprintf(format, args...))
}

// ruleFatalf reports a broken rule and ends the case.
func ruleFatalf(t TB, rule, format string, args ...any) {
	t.Helper()
	t.Fatalf("rule: %s: %s", rule, fmt.Sprintf(format, args...))
}

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

// expectLatest reports a broken rule unless the latest snapshot of typ/id is
// the one snap(typ, id, seq) made, or there is none when seq is 0.
func expectLatest(t TB, rule string, ctx context.Context, store snapshotstore.Store, typ, id string, seq uint64) {
	t.Helper()
	s, found := mustLoad(t, ctx, store, typ, id)
	switch {
	case seq == 0 && found:
		ruleErrorf(t, rule, "Load(%s/%s): found Seq %d, want none", typ, id, s.Seq)
	case seq == 0:
	case !found:
		ruleErrorf(t, rule, "Load(%s/%s): found none, want Seq %d", typ, id, seq)
	default:
		want := snap(typ, id, seq)
		if s.EntityType != typ || s.EntityID != id || s.Seq != seq || s.Revision != want.Revision || !bytes.Equal(s.Data, want.Data) {
			ruleErrorf(t, rule, "Load(%s/%s): got %s/%s Seq %d rev %d data %q, want Seq %d rev %d data %q",
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

func loadNone(t TB, store snapshotstore.Store) {
	const rule = "Load of an entity without snapshots returns found false and a nil error"
	ctx, n := testContext(t), newNames(t)
	s, found, err := store.Load(ctx, n.typ("account"), n.id("1"))
	if err != nil || found {
		ruleErrorf(t, rule, "got found %v, err %v", found, err)
	}
	if s.Seq != 0 || len(s.Data) != 0 {
		ruleErrorf(t, rule, "got Seq %d and %d bytes along with found false", s.Seq, len(s.Data))
	}
}

func saveLoadLatest(t TB, store snapshotstore.Store) {
	const rule = "Load returns the snapshot with the highest Seq, whatever order they were saved in"
	ctx, n := testContext(t), newNames(t)
	typ, id := n.typ("account"), n.id("1")
	for _, seq := range []uint64{5, 9, 7} {
		mustSave(t, ctx, store, snap(typ, id, seq), 0)
	}
	expectLatest(t, rule, ctx, store, typ, id, 9)
	mustSave(t, ctx, store, snap(typ, id, 12), 0)
	expectLatest(t, rule, ctx, store, typ, id, 12)
}

func overwriteSameSeq(t TB, store snapshotstore.Store) {
	const rule = "a Save at an existing Seq replaces that snapshot"
	ctx, n := testContext(t), newNames(t)
	typ, id := n.typ("account"), n.id("1")
	first := snapshotstore.Snapshot{EntityType: typ, EntityID: id, Seq: 3, Revision: 1, Data: []byte("first")}
	second := snapshotstore.Snapshot{EntityType: typ, EntityID: id, Seq: 3, Revision: 2, Data: []byte("second")}
	mustSave(t, ctx, store, first, 0)
	mustSave(t, ctx, store, second, 0)
	s, found := mustLoad(t, ctx, store, typ, id)
	if !found || s.Seq != 3 || s.Revision != 2 || string(s.Data) != "second" {
		ruleErrorf(t, rule, "got found %v Seq %d rev %d data %q, want Seq 3 rev 2 data \"second\"", found, s.Seq, s.Revision, s.Data)
	}
	if seqs, ok := listSeqs(t, ctx, store, typ, id); ok && len(seqs) != 1 {
		ruleErrorf(t, rule, "List: got Seqs %v, want [3]", seqs)
	}
}

func keepLastK(t TB, store snapshotstore.Store) {
	const rule = "Save with keep K leaves only the K snapshots with the highest Seq; keep <= 0 keeps all"
	ctx, n := testContext(t), newNames(t)
	typ := n.typ("account")
	check := func(id string, want []uint64) {
		t.Helper()
		expectLatest(t, rule, ctx, store, typ, id, want[len(want)-1])
		seqs, ok := listSeqs(t, ctx, store, typ, id)
		if !ok {
			return
		}
		if fmt.Sprint(seqs) != fmt.Sprint(want) {
			ruleErrorf(t, rule, "%s: List got Seqs %v, want %v", id, seqs, want)
		}
	}
	if _, ok := store.(snapshotstore.Lister); !ok {
		t.Logf("%T does not implement snapshotstore.Lister; checking the latest snapshot only", store)
	}

	// Keep 2 of 1..5.
	a := n.id("a")
	for seq := uint64(1); seq <= 5; seq++ {
		mustSave(t, ctx, store, snap(typ, a, seq), 2)
	}
	check(a, []uint64{4, 5})

	// Keep 3 of 10 saved out of order.
	b := n.id("b")
	for _, seq := range []uint64{4, 9, 1, 10, 2, 7, 3, 8, 6, 5} {
		mustSave(t, ctx, store, snap(typ, b, seq), 3)
	}
	check(b, []uint64{8, 9, 10})

	// Keep 0 and keep -1 keep all.
	c := n.id("c")
	for seq := uint64(1); seq <= 4; seq++ {
		mustSave(t, ctx, store, snap(typ, c, seq), int(seq%2)-1)
	}
	check(c, []uint64{1, 2, 3, 4})

	// A smaller keep later trims what a larger one left.
	mustSave(t, ctx, store, snap(typ, c, 5), 1)
	check(c, []uint64{5})
}

func largeSnapshot(t TB, store snapshotstore.Store) {
	const rule = "an 8 MiB snapshot round-trips byte for byte"
	ctx, n := testContext(t), newNames(t)
	typ, id := n.typ("big"), n.id("1")
	data := make([]byte, 8<<20)
	rng := rand.NewChaCha8([32]byte{1, 2, 3})
	_, _ = rng.Read(data)
	mustSave(t, ctx, store, snapshotstore.Snapshot{EntityType: typ, EntityID: id, Seq: 42, Data: data}, 0)
	s, found := mustLoad(t, ctx, store, typ, id)
	if !found {
		ruleFatalf(t, rule, "found none")
	}
	if len(s.Data) != len(data) {
		ruleFatalf(t, rule, "got %d bytes, want %d", len(s.Data), len(data))
	}
	if i := firstDiff(s.Data, data); i >= 0 {
		ruleErrorf(t, rule, "byte %d is %#x, want %#x", i, s.Data[i], data[i])
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

func keysPerTypeAndID(t TB, store snapshotstore.Store) {
	const rule = "snapshots are keyed by (entity type, entity id): the same id under two types, or two ids, are separate"
	ctx, n := testContext(t), newNames(t)
	ta, tb := n.typ("a"), n.typ("b")
	x, y := n.id("x"), n.id("y")
	mustSave(t, ctx, store, snap(ta, x, 3), 1)
	mustSave(t, ctx, store, snap(tb, x, 5), 1)
	mustSave(t, ctx, store, snap(ta, y, 7), 1)
	expectLatest(t, rule, ctx, store, ta, x, 3)
	expectLatest(t, rule, ctx, store, tb, x, 5)
	expectLatest(t, rule, ctx, store, ta, y, 7)
	expectLatest(t, rule, ctx, store, tb, y, 0)
	if err := store.Delete(ctx, ta, x); err != nil {
		ruleFatalf(t, rule, "Delete(%s/%s): %v", ta, x, err)
	}
	expectLatest(t, rule, ctx, store, ta, x, 0)
	expectLatest(t, rule, ctx, store, tb, x, 5)
	expectLatest(t, rule, ctx, store, ta, y, 7)
}

func deleteAll(t TB, store snapshotstore.Store) {
	const rule = "Delete removes all of an entity's snapshots, and deleting none is not an error"
	ctx, n := testContext(t), newNames(t)
	typ, id := n.typ("account"), n.id("1")
	for seq := uint64(1); seq <= 3; seq++ {
		mustSave(t, ctx, store, snap(typ, id, seq), 0)
	}
	for range 2 {
		if err := store.Delete(ctx, typ, id); err != nil {
			ruleFatalf(t, rule, "Delete: %v", err)
		}
		expectLatest(t, rule, ctx, store, typ, id, 0)
		if seqs, ok := listSeqs(t, ctx, store, typ, id); ok && len(seqs) != 0 {
			ruleErrorf(t, rule, "List after Delete: got Seqs %v, want none", seqs)
		}
	}
	if err := store.Delete(ctx, typ, n.id("never-saved")); err != nil {
		ruleErrorf(t, rule, "Delete of an entity without snapshots: %v", err)
	}
	// The entity can be snapshotted again, at any Seq.
	mustSave(t, ctx, store, snap(typ, id, 2), 0)
	expectLatest(t, rule, ctx, store, typ, id, 2)
}

func invalidArguments(t TB, store snapshotstore.Store) {
	const rule = "an empty type or id, or a Save at Seq 0, fails with ErrInvalid and stores nothing"
	ctx, n := testContext(t), newNames(t)
	typ, id := n.typ("account"), n.id("1")
	check := func(what string, err error) {
		t.Helper()
		if !errors.Is(err, snapshotstore.ErrInvalid) {
			ruleErrorf(t, rule, "%s: got %v, want an error matching ErrInvalid", what, err)
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
	expectLatest(t, rule, ctx, store, typ, id, 0)
}

// fill returns prefix followed by filler up to exactly n bytes of valid
// UTF-8 that does not compress: runes drawn at random, seeded by prefix,
// from several scripts and characters key-based stores escape.
func fill(prefix string, n int) string {
	alphabet := []rune("aZ9_-.*> /\\=$%é日本語🙂ßЖ\t")
	seed := uint64(len(prefix))
	for _, c := range []byte(prefix) {
		seed = seed*1099511628211 + uint64(c)
	}
	r := rand.New(rand.NewPCG(seed, 0x9e3779b97f4a7c15))
	b := []byte(prefix)
	for len(b) < n {
		c := alphabet[r.IntN(len(alphabet))]
		if len(b)+utf8.RuneLen(c) > n {
			c = rune('a' + r.IntN(26))
		}
		b = utf8.AppendRune(b, c)
	}
	return string(b)
}

func nameLimits(t TB, store snapshotstore.Store) {
	const rule = "types and ids of MaxTypeLen and MaxIDLen bytes of any UTF-8 work in every call; one byte more is refused with ErrInvalid and a bounded message"
	ctx, n := testContext(t), newNames(t)
	typ := fill(n.typ("lim"), snapshotstore.MaxTypeLen)
	for _, id := range []string{fill(n.id("a"), snapshotstore.MaxIDLen), fill(n.id("b"), snapshotstore.MaxIDLen)} {
		if err := store.Save(ctx, snap(typ, id, 1), 2); err != nil {
			ruleErrorf(t, rule, "Save of a %d-byte type and a %d-byte id: %v", len(typ), len(id), err)
			continue
		}
		if err := store.Save(ctx, snap(typ, id, 2), 2); err != nil {
			ruleErrorf(t, rule, "second Save of a %d-byte id: %v", len(id), err)
		}
		expectLatest(t, rule, ctx, store, typ, id, 2)
		if l, ok := store.(snapshotstore.Lister); ok {
			list, err := l.List(ctx, typ, id)
			if err != nil || len(list) != 2 || list[0].EntityID != id || list[0].EntityType != typ {
				ruleErrorf(t, rule, "List of a %d-byte id: %d snapshots, %v; want 2 of this entity", len(id), len(list), err)
			}
		}
		if err := store.Delete(ctx, typ, id); err != nil {
			ruleErrorf(t, rule, "Delete of a %d-byte id: %v", len(id), err)
		}
		expectLatest(t, rule, ctx, store, typ, id, 0)
	}
	longID := fill(n.id("over"), snapshotstore.MaxIDLen+1)
	longType := fill(n.typ("over"), snapshotstore.MaxTypeLen+1)
	check := func(what string, err error) {
		t.Helper()
		if !errors.Is(err, snapshotstore.ErrInvalid) {
			ruleErrorf(t, rule, "%s: got %v, want an error matching ErrInvalid", what, err)
			return
		}
		if len(err.Error()) > 400 {
			ruleErrorf(t, rule, "%s: a %d-byte message, want the id quoted as a bounded prefix", what, len(err.Error()))
		}
	}
	check("Save of a 256-byte id", store.Save(ctx, snap(typ, longID, 1), 0))
	check("Save of a 256-byte type", store.Save(ctx, snap(longType, n.id("x"), 1), 0))
	_, _, err := store.Load(ctx, typ, longID)
	check("Load of a 256-byte id", err)
	check("Delete of a 256-byte id", store.Delete(ctx, typ, longID))
	check("Save of an id that is not UTF-8", store.Save(ctx, snap(typ, "bad\xffutf8", 1), 0))
}

func timeSet(t TB, store snapshotstore.Store) {
	const rule = "the store sets a snapshot's Time when it saves it"
	ctx, n := testContext(t), newNames(t)
	typ := n.typ("account")
	before := time.Now()
	stale := time.Date(2001, 1, 1, 0, 0, 0, 0, time.UTC)
	for i, given := range []time.Time{{}, stale} {
		id := n.id(strconv.Itoa(i))
		s := snap(typ, id, 1)
		s.Time = given
		mustSave(t, ctx, store, s, 0)
		got, found := mustLoad(t, ctx, store, typ, id)
		switch {
		case !found:
			ruleErrorf(t, rule, "saved with Time %v: found none", given)
		case got.Time.IsZero():
			ruleErrorf(t, rule, "saved with Time %v: loaded a zero Time", given)
		case got.Time.Sub(before) < -time.Hour || got.Time.Sub(before) > time.Hour:
			ruleErrorf(t, rule, "saved with Time %v at %v: loaded Time %v", given, before, got.Time)
		}
	}
}

func concurrentSaves(t TB, store snapshotstore.Store) {
	const rule = "concurrent saves to many entities each keep their own latest snapshot"
	const writers, entities, saves = 16, 8, 6
	ctx, n := testContext(t), newNames(t)
	typ := n.typ("account")
	var wg sync.WaitGroup
	for w := range writers {
		wg.Go(func() {
			for e := range entities {
				id := n.id(fmt.Sprintf("%d_%d", w, e))
				for seq := uint64(1); seq <= saves; seq++ {
					if err := store.Save(ctx, snap(typ, id, seq), 3); err != nil {
						t.Errorf("rule: %s: Save(%s@%d): %v", rule, id, seq, err)
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
			id := n.id(fmt.Sprintf("%d_%d", w, e))
			expectLatest(t, rule, ctx, store, typ, id, saves)
			if seqs, ok := listSeqs(t, ctx, store, typ, id); ok && fmt.Sprint(seqs) != fmt.Sprint([]uint64{4, 5, 6}) {
				ruleErrorf(t, rule, "%s: List got Seqs %v, want [4 5 6]", id, seqs)
			}
		}
	}
}
