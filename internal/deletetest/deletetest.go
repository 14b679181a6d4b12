package deletetest

import (
	"context"
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/eventsourced-go/eventsourced/binarize"
	"github.com/eventsourced-go/eventsourced/entity"
	"github.com/eventsourced-go/eventsourced/eventlog"
	"github.com/eventsourced-go/eventsourced/snapshotstore"
)

// TypeName is the entity type of the scenarios.
const TypeName = "Wallet"

// Added is the only event.
type Added struct{ N int }

// Wallet is the state.
type Wallet struct{ Total int }

// Add persists an Added; Get reads the state.
type (
	Add struct{ N int }
	Get struct{}
)

// Handle implements entity.Command.
func (c Add) Handle(tx *entity.Tx[Wallet, Added]) (int, error) {
	return tx.Persist(Added(c)).Total, nil
}

// Handle implements entity.Command.
func (Get) Handle(tx *entity.Tx[Wallet, Added]) (int, error) { return tx.State().Total, nil }

// Def returns the entity type.
func Def() entity.Type[Wallet, Added] {
	events := binarize.NewRegistry[Added](binarize.JSON)
	binarize.MustRegister[Added](events, "Added")
	return entity.Type[Wallet, Added]{
		Name:   TypeName,
		Apply:  func(s Wallet, e Added) Wallet { s.Total += e.N; return s },
		Events: events,
		State:  binarize.Value[Wallet](binarize.JSON),
	}
}

// Stores opens a fresh log and snapshot store.
type Stores func(t *testing.T) (eventlog.Log, snapshotstore.Store)

// Run runs every scenario on the stores open makes.
func Run(t *testing.T, open Stores) {
	t.Run("Final", func(t *testing.T) { final(t, open) })
	t.Run("Reuse", func(t *testing.T) { reuse(t, open) })
	t.Run("NeverWritten", func(t *testing.T) { neverWritten(t, open) })
}

// process is one process's System and Kind on the stores.
func process(t *testing.T, log eventlog.Log, snaps snapshotstore.Store) *entity.Kind[Wallet, Added] {
	t.Helper()
	sys, err := entity.NewSystem(log, entity.WithSnapshotStore(snaps), entity.WithoutTelemetry())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sys.Close() })
	k, err := entity.Register(sys, Def(), entity.WithSnapshotEvery(2))
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// fill adds 1..n to id and waits for the snapshot at the last even Seq.
func fill(t *testing.T, k *entity.Kind[Wallet, Added], snaps snapshotstore.Store, id string, n int) {
	t.Helper()
	for i := 1; i <= n; i++ {
		if _, err := entity.Ask(context.Background(), k.Ref(id), Add{N: i}); err != nil {
			t.Fatalf("%s: add %d: %v", id, i, err)
		}
	}
	want := uint64(n - n%2)
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(5 * time.Millisecond) {
		s, found, err := snaps.Load(context.Background(), TypeName, id)
		if err != nil {
			t.Fatal(err)
		}
		if found && s.Seq == want {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: no snapshot at seq %d after 10 s", id, want)
		}
	}
}

// wantDeleted fails t unless err is the error of a command to an entity
// deleted at seq.
func wantDeleted(t *testing.T, err error, id string, seq uint64) {
	t.Helper()
	var de *eventlog.DeletedError
	if !errors.As(err, &de) || !errors.Is(err, entity.ErrRecovery) || !errors.Is(err, eventlog.ErrDeleted) ||
		de.EntityType != TypeName || de.EntityID != id || de.Seq != seq {
		t.Fatalf("command to deleted %s: %v; want a RecoveryError wrapping DeletedError{%s, %s, %d}", id, err, TypeName, id, seq)
	}
}

func ids(t *testing.T, log eventlog.Log) []string {
	t.Helper()
	var out []string
	for id, err := range log.(eventlog.IDLister).EntityIDs(context.Background(), TypeName) {
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, id)
	}
	slices.Sort(out)
	return out
}

func readType(t *testing.T, log eventlog.Log) []string {
	t.Helper()
	var out []string
	for rec, err := range log.ReadType(context.Background(), TypeName, 0) {
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, rec.EntityID)
	}
	return out
}

func final(t *testing.T, open Stores) {
	ctx := context.Background()
	log, snaps := open(t)
	k := process(t, log, snaps)
	fill(t, k, snaps, "w-1", 5)
	fill(t, k, snaps, "w-2", 2)
	other := process(t, log, snaps) // another process that has w-1 live
	if got, err := entity.Ask(ctx, other.Ref("w-1"), Get{}); err != nil || got != 15 {
		t.Fatalf("other process before the delete: %d, %v", got, err)
	}

	seq, err := k.Delete(ctx, "w-1")
	if err != nil || seq != 5 {
		t.Fatalf("Delete: %d, %v; want 5", seq, err)
	}
	_, err = entity.Ask(ctx, k.Ref("w-1"), Add{N: 1})
	wantDeleted(t, err, "w-1", 5)
	const want = "entity: recover Wallet/w-1 at seq 1: read events: eventlog: Wallet/w-1 was deleted at seq 5; its id cannot be used again"
	if err.Error() != want {
		t.Fatalf("error\n got %s\nwant %s", err, want)
	}
	if _, found, err := snaps.Load(ctx, TypeName, "w-1"); err != nil || found {
		t.Fatalf("snapshot after Delete: found %v, %v", found, err)
	}
	// The other process's live entity finds out at its next append.
	_, err = entity.Ask(ctx, other.Ref("w-1"), Add{N: 1})
	var pe *entity.PersistError
	if !errors.As(err, &pe) || !errors.Is(err, eventlog.ErrDeleted) {
		t.Fatalf("stale entity in another process: %v; want a PersistError matching eventlog.ErrDeleted", err)
	}
	_, err = entity.Ask(ctx, other.Ref("w-1"), Get{})
	wantDeleted(t, err, "w-1", 5)
	// A fresh process.
	_, err = entity.Ask(ctx, process(t, log, snaps).Ref("w-1"), Get{})
	wantDeleted(t, err, "w-1", 5)

	if got := readType(t, log); !slices.Equal(got, []string{"w-2", "w-2"}) {
		t.Fatalf("ReadType after Delete: %v; want only w-2's events", got)
	}
	if got := ids(t, log); !slices.Equal(got, []string{"w-2"}) {
		t.Fatalf("EntityIDs after Delete: %v", got)
	}
	if got, err := entity.Ask(ctx, k.Ref("w-2"), Get{}); err != nil || got != 3 {
		t.Fatalf("w-2 after deleting w-1: %d, %v", got, err)
	}
	// Again: the same Seq; reuse cannot lift a final tombstone.
	if seq, err := k.Delete(ctx, "w-1"); err != nil || seq != 5 {
		t.Fatalf("Delete again: %d, %v; want 5", seq, err)
	}
	if _, err := k.Delete(ctx, "w-1", entity.AllowReuse()); !errors.Is(err, eventlog.ErrDeleted) {
		t.Fatalf("Delete with AllowReuse of a final tombstone: %v; want ErrDeleted", err)
	}
}

func reuse(t *testing.T, open Stores) {
	ctx := context.Background()
	log, snaps := open(t)
	k := process(t, log, snaps)
	fill(t, k, snaps, "w-1", 5)
	seq, err := k.Delete(ctx, "w-1", entity.AllowReuse())
	if err != nil || seq != 5 {
		t.Fatalf("Delete(AllowReuse): %d, %v; want 5", seq, err)
	}
	if got := ids(t, log); len(got) != 0 {
		t.Fatalf("EntityIDs after a reuse delete: %v; want none until a new event", got)
	}
	if got, err := entity.Ask(ctx, k.Ref("w-1"), Get{}); err != nil || got != 0 {
		t.Fatalf("reused id: %d, %v; want the initial state", got, err)
	}
	if got, err := entity.Ask(ctx, k.Ref("w-1"), Add{N: 7}); err != nil || got != 7 {
		t.Fatalf("reused id, first command: %d, %v; want 7", got, err)
	}
	var seqs []uint64
	for rec, err := range log.ReadEntity(ctx, TypeName, "w-1", 1) {
		if err != nil {
			t.Fatal(err)
		}
		seqs = append(seqs, rec.Seq)
	}
	if !slices.Equal(seqs, []uint64{6}) {
		t.Fatalf("events of the reused id: seqs %v; want [6]: it never starts at 1 again", seqs)
	}
	if got := ids(t, log); !slices.Equal(got, []string{"w-1"}) {
		t.Fatalf("EntityIDs after a new event: %v", got)
	}
	// A fresh process recovers the new life only.
	if got, err := entity.Ask(ctx, process(t, log, snaps).Ref("w-1"), Get{}); err != nil || got != 7 {
		t.Fatalf("reused id in a fresh process: %d, %v; want 7", got, err)
	}
	// A final delete after reuse.
	if seq, err := k.Delete(ctx, "w-1"); err != nil || seq != 6 {
		t.Fatalf("final Delete after reuse: %d, %v; want 6", seq, err)
	}
	_, err = entity.Ask(ctx, k.Ref("w-1"), Get{})
	wantDeleted(t, err, "w-1", 6)
}

func neverWritten(t *testing.T, open Stores) {
	ctx := context.Background()
	log, snaps := open(t)
	k := process(t, log, snaps)
	if seq, err := k.Delete(ctx, "ghost"); err != nil || seq != 0 {
		t.Fatalf("Delete of an id never written: %d, %v; want 0", seq, err)
	}
	_, err := entity.Ask(ctx, k.Ref("ghost"), Add{N: 1})
	var de *eventlog.DeletedError
	if !errors.As(err, &de) || de.Seq != 0 {
		t.Fatalf("command to a deleted id never written: %v; want DeletedError at seq 0", err)
	}
	if _, err := k.Delete(ctx, ""); !errors.Is(err, entity.ErrInvalid) {
		t.Fatalf("Delete of an empty id: %v; want ErrInvalid", err)
	}
}
