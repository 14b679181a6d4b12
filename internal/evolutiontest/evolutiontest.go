package evolutiontest

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/eventsourced-go/eventsourced/binarize"
	"github.com/eventsourced-go/eventsourced/entity"
	"github.com/eventsourced-go/eventsourced/eventlog"
	"github.com/eventsourced-go/eventsourced/snapshotstore"
)

// TypeName is the entity type of the scenarios.
const TypeName = "Account"

// Deposited is the only event: both releases read it.
type Deposited struct{ Amount int }

// AccountV1 is release 1's state, snapshotted at revision 1: whole euros.
type AccountV1 struct{ Balance int }

// AccountV2 is release 2's state, at revision 2: cents. A revision-1
// snapshot decodes into it without an error, and wrongly (Cents 0), which
// is what the revision guards against.
type AccountV2 struct{ Cents int64 }

// Deposit persists a Deposited in release 1.
type Deposit struct{ Amount int }

// Handle implements entity.Command.
func (c Deposit) Handle(tx *entity.Tx[AccountV1, Deposited]) (int, error) {
	return tx.Persist(Deposited(c)).Balance, nil
}

// Balance reads release 2's state.
type Balance struct{}

// Handle implements entity.Command.
func (Balance) Handle(tx *entity.Tx[AccountV2, Deposited]) (int64, error) {
	return tx.State().Cents, nil
}

// Deposit2 persists a Deposited in release 2.
type Deposit2 struct{ Amount int }

// Handle implements entity.Command.
func (c Deposit2) Handle(tx *entity.Tx[AccountV2, Deposited]) (int64, error) {
	return tx.Persist(Deposited(c)).Cents, nil
}

func events() *binarize.Registry[Deposited] {
	r := binarize.NewRegistry[Deposited](binarize.Msgpack)
	binarize.MustRegister[Deposited](r, "Deposited")
	return r
}

// Release1 is the entity type of release 1.
func Release1() entity.Type[AccountV1, Deposited] {
	return entity.Type[AccountV1, Deposited]{
		Name:          TypeName,
		Apply:         func(s AccountV1, e Deposited) AccountV1 { s.Balance += e.Amount; return s },
		Events:        events(),
		State:         binarize.Value[AccountV1](binarize.Msgpack),
		StateRevision: 1,
	}
}

// Release2 is the entity type of release 2. With upcast, its State codec
// reads revision-1 snapshots; without, it reads revision 2 only. applied,
// if not nil, counts the events Apply sees.
func Release2(upcast bool, applied *Counter) entity.Type[AccountV2, Deposited] {
	var state binarize.Codec[AccountV2]
	if upcast {
		v := binarize.NewVersioned[AccountV2](binarize.Msgpack, 2)
		binarize.MustUpcastValue(v, 1, func(old AccountV1) (AccountV2, error) {
			return AccountV2{Cents: int64(old.Balance) * 100}, nil
		})
		state = v
	} else {
		state = binarize.Value[AccountV2](binarize.Msgpack)
	}
	return entity.Type[AccountV2, Deposited]{
		Name: TypeName,
		Apply: func(s AccountV2, e Deposited) AccountV2 {
			applied.Add()
			s.Cents += int64(e.Amount) * 100
			return s
		},
		Events:        events(),
		State:         state,
		StateRevision: map[bool]uint32{true: 0, false: 2}[upcast],
	}
}

// Counter counts calls; a nil Counter counts nothing.
type Counter struct {
	mu sync.Mutex // guards n
	n  int
}

// Add counts one.
func (c *Counter) Add() {
	if c == nil {
		return
	}
	c.mu.Lock()
	c.n++
	c.mu.Unlock()
}

// N returns the count.
func (c *Counter) N() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.n
}

// Stores opens the log and snapshot store of one scenario: fresh ones,
// shared by both releases, which the backend closes when t ends.
type Stores func(t *testing.T) (eventlog.Log, snapshotstore.Store)

// Run runs every scenario on the stores open makes.
func Run(t *testing.T, open Stores) {
	t.Run("UpcasterReadsOldSnapshot", func(t *testing.T) { upcasterReadsOldSnapshot(t, open) })
	t.Run("OldRevisionSkipped", func(t *testing.T) { oldRevisionSkipped(t, open) })
	t.Run("UndecodableSnapshotSkipped", func(t *testing.T) { undecodableSnapshotSkipped(t, open) })
	t.Run("FailPolicy", func(t *testing.T) { failPolicy(t, open) })
	t.Run("DeletedEventsNeedUpcaster", func(t *testing.T) { deletedEventsNeedUpcaster(t, open) })
}

const id = "acct-1"

// release1 writes 5 deposits of 1..5 euros (15) with a snapshot every 4
// events, so the latest snapshot is at Seq 4 (10 euros), revision 1.
func release1(t *testing.T, log eventlog.Log, snaps snapshotstore.Store, opts ...entity.KindOption) {
	t.Helper()
	ctx := context.Background()
	sys, err := entity.NewSystem(log, entity.WithSnapshotStore(snaps), entity.WithoutTelemetry())
	if err != nil {
		t.Fatal(err)
	}
	k, err := entity.Register(sys, Release1(), append([]entity.KindOption{entity.WithSnapshotEvery(4)}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	for i := 1; i <= 5; i++ {
		if _, err := entity.Ask(ctx, k.Ref(id), Deposit{Amount: i}); err != nil {
			t.Fatalf("release 1: deposit %d: %v", i, err)
		}
	}
	sctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	if err := sys.Shutdown(sctx); err != nil { // waits for the snapshot save
		t.Fatalf("release 1: Shutdown: %v", err)
	}
	wantSnapshot(t, snaps, 4, 1)
}

// release2 starts release 2 on the stores, logging into logs.
func release2(t *testing.T, log eventlog.Log, snaps snapshotstore.Store, def entity.Type[AccountV2, Deposited], logs *Logs, opts ...entity.KindOption) *entity.Kind[AccountV2, Deposited] {
	t.Helper()
	sys, err := entity.NewSystem(log, entity.WithSnapshotStore(snaps), entity.WithoutTelemetry(), entity.WithLogger(slog.New(logs)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sys.Close() })
	k, err := entity.Register(sys, def, append([]entity.KindOption{entity.WithSnapshotEvery(100)}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// wantSnapshot fails t unless the latest snapshot is at seq and revision,
// waiting up to 10 s for a save in the background.
func wantSnapshot(t *testing.T, snaps snapshotstore.Store, seq uint64, revision uint32) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		s, found, err := snaps.Load(context.Background(), TypeName, id)
		if err != nil {
			t.Fatalf("load snapshot: %v", err)
		}
		if found && s.Seq == seq && s.Revision == revision {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("latest snapshot: found %v, seq %d, revision %d; want seq %d, revision %d", found, s.Seq, s.Revision, seq, revision)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func upcasterReadsOldSnapshot(t *testing.T, open Stores) {
	log, snaps := open(t)
	release1(t, log, snaps)
	var applied Counter
	var logs Logs
	k := release2(t, log, snaps, Release2(true, &applied), &logs)
	got, err := entity.Ask(context.Background(), k.Ref(id), Balance{})
	if err != nil || got != 1500 {
		t.Fatalf("release 2 with an upcaster: balance %d, %v; want 1500 cents", got, err)
	}
	if n := applied.N(); n != 1 {
		t.Fatalf("release 2 applied %d events on recovery, want 1: the upcast snapshot covers Seq 1-4", n)
	}
	if w := logs.Warnings(); len(w) != 0 {
		t.Fatalf("a usable snapshot was logged: %v", w)
	}
	// The next snapshot is written at the new revision.
	k2 := k
	for i := 0; i < 100; i++ {
		if _, err := entity.Ask(context.Background(), k2.Ref(id), Deposit2{Amount: 1}); err != nil {
			t.Fatal(err)
		}
	}
	wantSnapshot(t, snaps, 104, 2) // 100 events after the one at Seq 4
}

func oldRevisionSkipped(t *testing.T, open Stores) {
	log, snaps := open(t)
	release1(t, log, snaps)
	var applied Counter
	var logs Logs
	k := release2(t, log, snaps, Release2(false, &applied), &logs)
	got, err := entity.Ask(context.Background(), k.Ref(id), Balance{})
	if err != nil || got != 1500 {
		t.Fatalf("release 2 without an upcaster: balance %d, %v; want 1500 cents, from the events", got, err)
	}
	if n := applied.N(); n != 5 {
		t.Fatalf("release 2 applied %d events, want all 5", n)
	}
	logs.WantOneWarning(t, "seq=4 revision=1 state_revision=2",
		"binarize: unknown revision: state of Account rev 1: the State codec reads only revision 2 (StateRevision)")
	// A fresh snapshot replaces the unusable one at once.
	wantSnapshot(t, snaps, 5, 2)
}

func undecodableSnapshotSkipped(t *testing.T, open Stores) {
	log, snaps := open(t)
	release1(t, log, snaps)
	ctx := context.Background()
	// A snapshot at the current revision whose bytes do not decode, such as
	// one an incompatible change wrote without raising the revision.
	if err := snaps.Save(ctx, snapshotstore.Snapshot{EntityType: TypeName, EntityID: id, Seq: 5, Revision: 2, Data: []byte{0xc1}}, 2); err != nil {
		t.Fatal(err)
	}
	var logs Logs
	k := release2(t, log, snaps, Release2(true, nil), &logs)
	got, err := entity.Ask(ctx, k.Ref(id), Balance{})
	if err != nil || got != 1500 {
		t.Fatalf("undecodable snapshot: balance %d, %v; want 1500 cents, from the events", got, err)
	}
	logs.WantOneWarning(t, "seq=5 revision=2 state_revision=2",
		`binarize: decode "evolutiontest.AccountV2" rev 2 (1 bytes): msgpack: invalid code 0xc1 at offset 0`)
	// The fresh snapshot replaces the bad one at the same Seq.
	def := Release2(true, nil)
	for deadline := time.Now().Add(10 * time.Second); ; {
		s, _, err := snaps.Load(ctx, TypeName, id)
		if err != nil {
			t.Fatal(err)
		}
		v, err := def.DecodeSnapshot(s.Revision, s.Data)
		if err == nil && v.Cents == 1500 && s.Seq == 5 && s.Revision == 2 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the latest snapshot, seq %d rev %d, holds %+v, %v; want 1500 cents at seq 5 rev 2", s.Seq, s.Revision, v, err)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func failPolicy(t *testing.T, open Stores) {
	log, snaps := open(t)
	release1(t, log, snaps)
	var logs Logs
	k := release2(t, log, snaps, Release2(false, nil), &logs, entity.WithSnapshotPolicy(entity.FailOnUnusableSnapshot))
	_, err := entity.Ask(context.Background(), k.Ref(id), Deposit2{Amount: 1})
	var re *entity.RecoveryError
	if !errors.As(err, &re) || re.EntityType != TypeName || re.EntityID != id || re.Seq != 4 ||
		!errors.Is(err, entity.ErrUnusableSnapshot) || !errors.Is(err, binarize.ErrUnknownRevision) {
		t.Fatalf("FailOnUnusableSnapshot: err %v; want a RecoveryError of Account/acct-1 at seq 4 matching ErrUnusableSnapshot and binarize.ErrUnknownRevision", err)
	}
	const want = "entity: recover Account/acct-1 at seq 4: entity: unusable snapshot: snapshot at seq 4, state rev 1 (FailOnUnusableSnapshot): binarize: unknown revision: state of Account rev 1: the State codec reads only revision 2 (StateRevision); make State a binarize.Versioned with an upcaster of revision 1 to read it"
	if err.Error() != want {
		t.Fatalf("error\n got %s\nwant %s", err, want)
	}
	if last, err := log.LastSeq(context.Background(), TypeName, id); err != nil || last != 5 {
		t.Fatalf("LastSeq %d, %v; want 5: nothing appended by an entity that failed to recover", last, err)
	}
	wantSnapshot(t, snaps, 4, 1)
}

func deletedEventsNeedUpcaster(t *testing.T, open Stores) {
	log, snaps := open(t)
	if _, ok := log.(eventlog.Deleter); !ok {
		t.Fatalf("the log %T cannot delete events", log)
	}
	release1(t, log, snaps, entity.WithDeleteEventsOnSnapshot())
	var logs Logs
	k := release2(t, log, snaps, Release2(false, nil), &logs, entity.WithDeleteEventsOnSnapshot())
	_, err := entity.Ask(context.Background(), k.Ref(id), Balance{})
	var re *entity.RecoveryError
	if !errors.As(err, &re) || re.Seq != 4 || !errors.Is(err, entity.ErrUnusableSnapshot) {
		t.Fatalf("deleted events: err %v; want a RecoveryError at seq 4 matching ErrUnusableSnapshot", err)
	}
	for _, part := range []string{
		"entity: recover Account/acct-1 at seq 4: entity: unusable snapshot: snapshot at seq 4, state rev 1, cannot be read (binarize: unknown revision",
		"events 1 to 4, which it covers, are no longer in the log (deleted by WithDeleteEventsOnSnapshot)",
		"register an upcaster of state revision 1 (binarize.UpcastValue on a binarize.Versioned State codec)",
	} {
		if !strings.Contains(err.Error(), part) {
			t.Fatalf("error %q does not say %q", err, part)
		}
	}
	// The way out the error names: release 2 with an upcaster.
	k = release2(t, log, snaps, Release2(true, nil), &logs, entity.WithDeleteEventsOnSnapshot())
	if got, err := entity.Ask(context.Background(), k.Ref(id), Balance{}); err != nil || got != 1500 {
		t.Fatalf("deleted events, with an upcaster: balance %d, %v; want 1500", got, err)
	}
}

// Logs is a slog.Handler that keeps the records it handles.
type Logs struct {
	mu   sync.Mutex // guards recs
	recs []string
	lvls []slog.Level
}

// Enabled implements slog.Handler.
func (l *Logs) Enabled(context.Context, slog.Level) bool { return true }

// Handle implements slog.Handler: it keeps the message and attributes as
// "msg k=v ...".
func (l *Logs) Handle(_ context.Context, r slog.Record) error {
	var b strings.Builder
	b.WriteString(r.Message)
	r.Attrs(func(a slog.Attr) bool {
		fmt.Fprintf(&b, " %s=%v", a.Key, a.Value)
		return true
	})
	l.mu.Lock()
	l.recs = append(l.recs, b.String())
	l.lvls = append(l.lvls, r.Level)
	l.mu.Unlock()
	return nil
}

// WithAttrs implements slog.Handler; the scenarios log no groups or attrs.
func (l *Logs) WithAttrs([]slog.Attr) slog.Handler { return l }

// WithGroup implements slog.Handler.
func (l *Logs) WithGroup(string) slog.Handler { return l }

// Warnings returns the records logged at Warn.
func (l *Logs) Warnings() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []string
	for i, r := range l.recs {
		if l.lvls[i] == slog.LevelWarn {
			out = append(out, r)
		}
	}
	return out
}

// WantOneWarning fails t unless exactly one Warn was logged, naming the
// skipped snapshot of Account/acct-1 with attrs and the error.
func (l *Logs) WantOneWarning(t *testing.T, attrs, errText string) {
	t.Helper()
	w := l.Warnings()
	want := "entity: snapshot unusable; recovered from the events instead type=Account id=acct-1 " + attrs + " events=5 error=" + errText
	if len(w) != 1 || !strings.HasPrefix(w[0], want) {
		t.Fatalf("warnings %q; want one starting %q", w, want)
	}
}
