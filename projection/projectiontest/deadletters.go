package projectiontest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"maps"
	"sync/atomic"
	"testing"
	"time"

	"github.com/eventsourced-go/eventsourced/eventlog"
	"github.com/eventsourced-go/eventsourced/internal/conformancetest"
	"github.com/eventsourced-go/eventsourced/projection"
)

// DeadLetterCase is one conformance check of the [projection.DeadLetters]
// contract, as [Case] is of the offset store's.
type DeadLetterCase = conformancetest.Case[projection.DeadLetters]

// RunDeadLetters runs every case of [DeadLetterCases] against the stores
// newStore returns, each as a subtest named after the case, with a fresh
// store per case. newStore should register the store's closing with
// t.Cleanup.
//
// A store's Retry is tested as at-least-once unless the value newStore
// returns implements [Transactional]: Write is then called from Retry's
// handle, with the context it gets, and must write in the transaction
// that drops the dead letter.
//
// Cases name their projections uniquely, so newStore may return stores
// that share one database or bucket.
func RunDeadLetters(t *testing.T, newStore func(t *testing.T) projection.DeadLetters) {
	t.Helper()
	conformancetest.Run(t, DeadLetterCases(), newStore)
}

// DeadLetterCases returns the dead-letter conformance cases, in the order
// [RunDeadLetters] runs them.
func DeadLetterCases() []DeadLetterCase {
	c := conformancetest.New[projection.DeadLetters]
	return []DeadLetterCase{
		c("PutGet", "Get returns the dead letter Put stored, every field of its record included, and fails with ErrNotFound for one never put", putGet),
		c("PutReplaces", "a Put under a projection and Position already stored replaces that dead letter: there is one per key", putReplaces),
		c("ListInPositionOrder", "List returns the projection's dead letters above after in Position order, at most limit of them (all if limit <= 0), and none of any other projection", listInPositionOrder),
		c("Drop", "Drop deletes one dead letter and leaves the others; Drop of one that does not exist fails with ErrNotFound", drop),
		c("RetrySucceeds", "Retry runs handle once with the stored dead letter and drops it when handle succeeds; an exactly-once store commits handle's writes", retrySucceeds),
		c("RetryFails", "a Retry whose handle fails returns its error and keeps the dead letter; an exactly-once store also undoes handle's writes", retryFails),
		c("RetryNotFound", "Retry of a dead letter that does not exist fails with ErrNotFound without running handle", retryNotFound),
		c("RetryCrash", "a crash in a Retry's handle keeps the dead letter; an exactly-once store also undoes handle's writes", retryCrash),
		c("DeadLettersCanceledContext", "Put, List, Get, Drop and Retry with a canceled ctx fail with an error matching context.Canceled and change nothing", deadLettersCanceledContext),
	}
}

// epoch is the time of the suite's dead letters: whole microseconds, the
// precision every store keeps.
var epoch = time.Date(2026, 3, 14, 15, 9, 26, 535897000, time.UTC)

// letter returns a dead letter of projection at pos with every field set,
// data that is not text and metadata that is not ASCII.
func letter(projectionName string, pos uint64) projection.DeadLetter {
	return projection.DeadLetter{
		Projection: projectionName,
		Record: eventlog.Record{
			EntityType: "Tab",
			EntityID:   fmt.Sprintf("t-%d äß", pos),
			Seq:        pos + 1<<40,
			Position:   pos,
			Name:       "DrinksOrdered",
			Revision:   3,
			Data:       []byte{0, 1, 0xff, 'x', byte(pos)},
			Metadata:   map[string]string{"traceparent": "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01", "note": "日本 🙂"},
			Time:       epoch.Add(time.Duration(pos%1000) * time.Microsecond),
		},
		Err:      fmt.Sprintf("decode DrinksOrdered at %d: unexpected \"}\"\nsecond line", pos),
		Attempts: 5,
		Time:     epoch.Add(time.Hour),
	}
}

// diff describes how got differs from want, "" if it does not. Data and
// metadata compare by content (nil and empty are the same), times by
// instant.
func diff(got, want projection.DeadLetter) string {
	g, w := got.Record, want.Record
	switch {
	case got.Projection != want.Projection:
		return fmt.Sprintf("Projection %q, want %q", got.Projection, want.Projection)
	case g.EntityType != w.EntityType || g.EntityID != w.EntityID || g.Seq != w.Seq || g.Position != w.Position || g.Name != w.Name || g.Revision != w.Revision:
		return fmt.Sprintf("record %s rev %d, want %s rev %d", projection.EventRef{EntityType: g.EntityType, EntityID: g.EntityID, Seq: g.Seq, Position: g.Position, Name: g.Name}, g.Revision,
			projection.EventRef{EntityType: w.EntityType, EntityID: w.EntityID, Seq: w.Seq, Position: w.Position, Name: w.Name}, w.Revision)
	case !bytes.Equal(g.Data, w.Data):
		return fmt.Sprintf("Data %x, want %x", g.Data, w.Data)
	case !maps.Equal(g.Metadata, w.Metadata):
		return fmt.Sprintf("Metadata %q, want %q", g.Metadata, w.Metadata)
	case !g.Time.Equal(w.Time):
		return fmt.Sprintf("Record.Time %v, want %v", g.Time, w.Time)
	case got.Err != want.Err:
		return fmt.Sprintf("Err %q, want %q", got.Err, want.Err)
	case got.Attempts != want.Attempts:
		return fmt.Sprintf("Attempts %d, want %d", got.Attempts, want.Attempts)
	case !got.Time.Equal(want.Time):
		return fmt.Sprintf("Time %v, want %v", got.Time, want.Time)
	}
	return ""
}

// mustPut puts d and ends the case on an error.
func mustPut(t TB, ctx context.Context, store projection.DeadLetters, d projection.DeadLetter) {
	t.Helper()
	if err := store.Put(ctx, d); err != nil {
		ruleFatalf(t, "Put with a live ctx succeeds", "Put(%q at %d): %v", d.Projection, d.Record.Position, err)
	}
}

// mustList lists and ends the case on an error.
func mustList(t TB, ctx context.Context, store projection.DeadLetters, name string, after uint64, limit int) []projection.DeadLetter {
	t.Helper()
	out, err := store.List(ctx, name, after, limit)
	if err != nil {
		ruleFatalf(t, "List with a live ctx succeeds", "List(%q, after %d, limit %d): %v", name, after, limit, err)
	}
	return out
}

// positions returns the Positions of ds.
func positions(ds []projection.DeadLetter) []uint64 {
	out := make([]uint64, len(ds))
	for i, d := range ds {
		out[i] = d.Record.Position
	}
	return out
}

// has reports whether store holds the dead letter of name at pos, ending
// the case if Get fails otherwise than with ErrNotFound.
func has(t TB, ctx context.Context, store projection.DeadLetters, name string, pos uint64) bool {
	t.Helper()
	_, err := store.Get(ctx, name, pos)
	switch {
	case err == nil:
		return true
	case errors.Is(err, projection.ErrNotFound):
		return false
	}
	ruleFatalf(t, "Get with a live ctx succeeds or fails with ErrNotFound", "Get(%q, %d): %v", name, pos, err)
	return false
}

// counted returns how many writes of key committed, 0 without tx.
func counted(t TB, ctx context.Context, tx Transactional, key string) int {
	t.Helper()
	if tx == nil {
		return 0
	}
	n, err := tx.Count(ctx, key)
	if err != nil {
		ruleFatalf(t, "Transactional: Count with a live ctx succeeds", "Count(%q): %v", key, err)
	}
	return n
}

func putGet(t *conformancetest.T, store projection.DeadLetters) {
	ctx, n := conformancetest.Context(t), conformancetest.NewNames(t)
	name := n.Name("p")
	full := letter(name, 7)
	big := letter(name, 1<<53+1)
	bare := projection.DeadLetter{Projection: name, Record: eventlog.Record{EntityType: "T", EntityID: "x", Seq: 1, Position: 2, Name: "E", Time: epoch}, Time: epoch}
	for _, d := range []projection.DeadLetter{full, big, bare} {
		mustPut(t, ctx, store, d)
	}
	for _, want := range []projection.DeadLetter{full, big, bare} {
		got, err := store.Get(ctx, name, want.Record.Position)
		if err != nil {
			t.Errorf("Get(%q, %d): %v", name, want.Record.Position, err)
			continue
		}
		if d := diff(got, want); d != "" {
			t.Errorf("Get(%q, %d): %s", name, want.Record.Position, d)
		}
	}
	for _, pos := range []uint64{0, 1, 8, 1 << 53} {
		if _, err := store.Get(ctx, name, pos); !errors.Is(err, projection.ErrNotFound) {
			t.Errorf("Get(%q, %d) of a dead letter never put: %v, want an error matching ErrNotFound", name, pos, err)
		}
	}
	if _, err := store.Get(ctx, n.Name("other"), 7); !errors.Is(err, projection.ErrNotFound) {
		t.Errorf("Get of another projection's Position: %v, want an error matching ErrNotFound", err)
	}
}

func putReplaces(t *conformancetest.T, store projection.DeadLetters) {
	ctx, n := conformancetest.Context(t), conformancetest.NewNames(t)
	name := n.Name("p")
	first := letter(name, 4)
	mustPut(t, ctx, store, first)
	second := letter(name, 4)
	second.Err, second.Attempts, second.Time = "failed again", 6, epoch.Add(2*time.Hour)
	second.Record.Metadata = map[string]string{"only": "this"}
	mustPut(t, ctx, store, second)
	got := mustList(t, ctx, store, name, 0, 0)
	if len(got) != 1 {
		t.Fatalf("after two Puts of one key, List has %d dead letters at %v, want 1", len(got), positions(got))
	}
	if d := diff(got[0], second); d != "" {
		t.Errorf("after two Puts of one key, the dead letter is not the second: %s", d)
	}
}

func listInPositionOrder(t *conformancetest.T, store projection.DeadLetters) {
	ctx, n := conformancetest.Context(t), conformancetest.NewNames(t)
	base := n.Name("")
	name := base + "a"
	others := []string{base + "A", base + "a.b", base + "a b", base + "a*", base + "b64_a", base, base + "äß"}
	for _, pos := range []uint64{9, 3, 1<<53 + 1, 5, 1} {
		mustPut(t, ctx, store, letter(name, pos))
	}
	for i, o := range others {
		mustPut(t, ctx, store, letter(o, uint64(4+i)))
	}
	tests := []struct {
		after uint64
		limit int
		want  []uint64
	}{
		{0, 0, []uint64{1, 3, 5, 9, 1<<53 + 1}},
		{0, -1, []uint64{1, 3, 5, 9, 1<<53 + 1}},
		{0, 2, []uint64{1, 3}},
		{3, 2, []uint64{5, 9}},
		{4, 10, []uint64{5, 9, 1<<53 + 1}},
		{9, 0, []uint64{1<<53 + 1}},
		{1<<53 + 1, 0, []uint64{}},
	}
	for _, tt := range tests {
		got := mustList(t, ctx, store, name, tt.after, tt.limit)
		if fmt.Sprint(positions(got)) != fmt.Sprint(tt.want) {
			t.Errorf("List(after %d, limit %d) = Positions %v, want %v", tt.after, tt.limit, positions(got), tt.want)
			continue
		}
		for _, d := range got {
			if msg := diff(d, letter(name, d.Record.Position)); msg != "" {
				t.Errorf("List(after %d, limit %d): at %d: %s", tt.after, tt.limit, d.Record.Position, msg)
			}
		}
	}
	for i, o := range others {
		got := mustList(t, ctx, store, o, 0, 0)
		if want := []uint64{uint64(4 + i)}; fmt.Sprint(positions(got)) != fmt.Sprint(want) {
			t.Errorf("List(%q) = Positions %v, want %v", o, positions(got), want)
		}
	}
	if got := mustList(t, ctx, store, n.Name("none"), 0, 0); len(got) != 0 {
		t.Errorf("List of a projection without dead letters = Positions %v, want none", positions(got))
	}
}

func drop(t *conformancetest.T, store projection.DeadLetters) {
	ctx, n := conformancetest.Context(t), conformancetest.NewNames(t)
	name, other := n.Name("p"), n.Name("q")
	for _, pos := range []uint64{2, 4, 6} {
		mustPut(t, ctx, store, letter(name, pos))
	}
	mustPut(t, ctx, store, letter(other, 4))
	if err := store.Drop(ctx, name, 4); err != nil {
		t.Fatalf("Drop(%q, 4): %v", name, err)
	}
	if got := positions(mustList(t, ctx, store, name, 0, 0)); fmt.Sprint(got) != "[2 6]" {
		t.Errorf("after Drop(%q, 4), List = Positions %v, want [2 6]", name, got)
	}
	if !has(t, ctx, store, other, 4) {
		t.Errorf("Drop(%q, 4) dropped the dead letter of %q at 4 too", name, other)
	}
	for _, pos := range []uint64{4, 5} {
		if err := store.Drop(ctx, name, pos); !errors.Is(err, projection.ErrNotFound) {
			t.Errorf("Drop(%q, %d) of a dead letter that does not exist: %v, want an error matching ErrNotFound", name, pos, err)
		}
	}
	// A dropped key can be put again.
	mustPut(t, ctx, store, letter(name, 4))
	if !has(t, ctx, store, name, 4) {
		t.Errorf("a dead letter put again after its Drop is missing")
	}
}

func retrySucceeds(t *conformancetest.T, store projection.DeadLetters) {
	ctx, n := conformancetest.Context(t), conformancetest.NewNames(t)
	tx, _ := store.(Transactional)
	name := n.Name("p")
	want := letter(name, 8)
	mustPut(t, ctx, store, want)
	mustPut(t, ctx, store, letter(name, 9))
	var runs atomic.Int32
	key := name + "@8"
	err := store.Retry(ctx, name, 8, func(ctx context.Context, d projection.DeadLetter) error {
		runs.Add(1)
		if msg := diff(d, want); msg != "" {
			t.Errorf("Retry handed handle a dead letter unlike the one put: %s", msg)
		}
		if tx != nil {
			return tx.Write(ctx, key)
		}
		return nil
	})
	if err != nil {
		t.Fatalf("Retry(%q, 8) with a handle that succeeds: %v", name, err)
	}
	if got := runs.Load(); got != 1 {
		t.Errorf("Retry ran handle %d times, want 1", got)
	}
	if has(t, ctx, store, name, 8) {
		t.Errorf("after a Retry whose handle succeeded, the dead letter is still there")
	}
	if !has(t, ctx, store, name, 9) {
		t.Errorf("Retry of the dead letter at 8 dropped the one at 9")
	}
	if got := counted(t, ctx, tx, key); tx != nil && got != 1 {
		t.Errorf("after a Retry whose handle succeeded, %d of its writes committed, want 1", got)
	}
}

func retryFails(t *conformancetest.T, store projection.DeadLetters) {
	ctx, n := conformancetest.Context(t), conformancetest.NewNames(t)
	tx, _ := store.(Transactional)
	name := n.Name("p")
	want := letter(name, 8)
	mustPut(t, ctx, store, want)
	boom := errors.New("handler failed again")
	key := name + "@8"
	err := store.Retry(ctx, name, 8, func(ctx context.Context, d projection.DeadLetter) error {
		if tx != nil {
			if err := tx.Write(ctx, key); err != nil {
				return err
			}
		}
		return boom
	})
	if !errors.Is(err, boom) {
		t.Errorf("Retry with a failing handle: %v, want an error matching handle's", err)
	}
	got, err := store.Get(ctx, name, 8)
	if err != nil {
		t.Fatalf("after a Retry whose handle failed, Get: %v; want the dead letter kept", err)
	}
	if msg := diff(got, want); msg != "" {
		t.Errorf("after a Retry whose handle failed, the dead letter changed: %s", msg)
	}
	if got := counted(t, ctx, tx, key); tx != nil && got != 0 {
		t.Errorf("after a Retry whose handle failed, %d of its writes committed, want 0", got)
	}
}

func retryNotFound(t *conformancetest.T, store projection.DeadLetters) {
	ctx, n := conformancetest.Context(t), conformancetest.NewNames(t)
	name := n.Name("p")
	mustPut(t, ctx, store, letter(name, 3))
	var runs atomic.Int32
	handle := func(context.Context, projection.DeadLetter) error {
		runs.Add(1)
		return nil
	}
	for _, key := range []struct {
		name string
		pos  uint64
	}{{name, 4}, {n.Name("other"), 3}} {
		if err := store.Retry(ctx, key.name, key.pos, handle); !errors.Is(err, projection.ErrNotFound) {
			t.Errorf("Retry(%q, %d) of a dead letter that does not exist: %v, want an error matching ErrNotFound", key.name, key.pos, err)
		}
	}
	if got := runs.Load(); got != 0 {
		t.Errorf("Retry of dead letters that do not exist ran handle %d times, want 0", got)
	}
}

func retryCrash(t *conformancetest.T, store projection.DeadLetters) {
	ctx, n := conformancetest.Context(t), conformancetest.NewNames(t)
	tx, _ := store.(Transactional)
	name := n.Name("p")
	mustPut(t, ctx, store, letter(name, 8))
	key := name + "@8"
	returned, err := dying(t, ctx, func(die func()) error {
		return store.Retry(ctx, name, 8, func(ctx context.Context, d projection.DeadLetter) error {
			if tx != nil {
				if err := tx.Write(ctx, key); err != nil {
					return err
				}
			}
			die()
			return nil
		})
	})
	if returned {
		t.Fatalf("Retry returned (%v) though its handle died", err)
	}
	if !has(t, ctx, store, name, 8) {
		t.Errorf("after a crash in Retry's handle, the dead letter is gone: the event would never be handled")
	}
	if got := counted(t, ctx, tx, key); tx != nil && got != 0 {
		t.Errorf("after a crash in Retry's handle, %d of its writes committed, want 0", got)
	}
}

func deadLettersCanceledContext(t *conformancetest.T, store projection.DeadLetters) {
	ctx, n := conformancetest.Context(t), conformancetest.NewNames(t)
	name := n.Name("p")
	mustPut(t, ctx, store, letter(name, 5))
	canceled, cancel := context.WithCancel(ctx)
	cancel()
	if err := store.Put(canceled, letter(name, 6)); !errors.Is(err, context.Canceled) {
		t.Errorf("Put: %v, want an error matching context.Canceled", err)
	}
	if _, err := store.List(canceled, name, 0, 0); !errors.Is(err, context.Canceled) {
		t.Errorf("List: %v, want an error matching context.Canceled", err)
	}
	if _, err := store.Get(canceled, name, 5); !errors.Is(err, context.Canceled) {
		t.Errorf("Get: %v, want an error matching context.Canceled", err)
	}
	if err := store.Drop(canceled, name, 5); !errors.Is(err, context.Canceled) {
		t.Errorf("Drop: %v, want an error matching context.Canceled", err)
	}
	var runs atomic.Int32
	err := store.Retry(canceled, name, 5, func(context.Context, projection.DeadLetter) error {
		runs.Add(1)
		return nil
	})
	if !errors.Is(err, context.Canceled) {
		t.Errorf("Retry: %v, want an error matching context.Canceled", err)
	}
	if got := positions(mustList(t, ctx, store, name, 0, 0)); fmt.Sprint(got) != "[5]" {
		t.Errorf("after calls with a canceled ctx, List = Positions %v, want [5]", got)
	}
	if got := runs.Load(); got != 0 {
		t.Errorf("Retry with a canceled ctx ran handle %d times, want 0", got)
	}
}
