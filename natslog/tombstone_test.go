package natslog_test

import (
	"context"
	"errors"
	"maps"
	"slices"
	"testing"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/eventsourced-go/eventsourced/eventlog"
	"github.com/eventsourced-go/eventsourced/natslog"
)

// checkDeleted fails t unless err is a DeletedError of typ/id at seq.
func checkDeleted(t *testing.T, what string, err error, typ, id string, seq uint64) {
	t.Helper()
	var de *eventlog.DeletedError
	if !errors.As(err, &de) || *de != (eventlog.DeletedError{EntityType: typ, EntityID: id, Seq: seq}) {
		t.Errorf("%s: %v, want a DeletedError of %s/%s at Seq %d", what, err, typ, id, seq)
	}
}

// TestFinalTombstoneAcrossLogs checks that a Log that remembers an
// entity's last message, or has just read the tombstone, still refuses
// appends after another Log (another process) deleted the entity for good:
// the server refuses the remembered sequence, and a tombstone is never
// remembered, so no append can pass the server's check against it.
func TestFinalTombstoneAcrossLogs(t *testing.T) {
	_, js := setup(t)
	a, b := newLog(t, js), newLog(t, js)
	ctx := testCtx(t)
	mustAppend(t, a, "order", "1", 0, evs("e", 2)...)
	mustAppend(t, a, "order", "2", 0, evs("e", 3)...)
	for _, id := range []string{"1", "2"} {
		if seq, err := b.DeleteStream(ctx, "order", id, false); err != nil || seq == 0 {
			t.Fatalf("DeleteStream(%s): %d, %v", id, seq, err)
		}
	}
	// a remembers 1's last message (Seq 2) from its append.
	_, err := a.Append(ctx, "order", "1", 2, ev("late"))
	checkDeleted(t, "Append by the Log that remembered the last message", err, "order", "1", 2)
	// a reads the tombstone of 2, then appends expecting what it read.
	last, err := a.LastSeq(ctx, "order", "2")
	if err != nil || last != 3 {
		t.Fatalf("LastSeq: %d, %v; want 3", last, err)
	}
	for range 2 {
		_, err = a.Append(ctx, "order", "2", 3, ev("late"))
		checkDeleted(t, "Append after reading the tombstone", err, "order", "2", 3)
	}
	for r, err := range a.ReadEntity(ctx, "order", "2", 1) {
		if err == nil {
			t.Errorf("ReadEntity yielded Seq %d", r.Seq)
			continue
		}
		checkDeleted(t, "ReadEntity", err, "order", "2", 3)
	}
}

// TestDeleteStreamNeedsRollups sets up the stream as an earlier release
// did, without rollups, and checks that DeleteStream fails with ErrNotSetUp
// and deletes nothing, and that Setup then allows them.
func TestDeleteStreamNeedsRollups(t *testing.T) {
	_, js := setup(t)
	ctx := testCtx(t)
	cfg, err := natslog.StreamConfig()
	if err != nil {
		t.Fatal(err)
	}
	cfg.AllowRollup = false
	if _, err := js.UpdateStream(ctx, cfg); err != nil {
		t.Fatalf("UpdateStream: %v", err)
	}
	l := newLog(t, js)
	mustAppend(t, l, "order", "1", 0, evs("e", 2)...)
	if _, err := l.DeleteStream(ctx, "order", "1", false); !errors.Is(err, natslog.ErrNotSetUp) {
		t.Fatalf("DeleteStream without rollups: %v, want ErrNotSetUp", err)
	}
	if got := seqsOf(collect(t, l.ReadEntity(ctx, "order", "1", 1))); !slices.Equal(got, span(1, 2)) {
		t.Errorf("after the refused delete: Seqs %v, want [1 2]", got)
	}
	if err := natslog.Setup(ctx, js); err != nil {
		t.Fatalf("Setup: %v", err)
	}
	stream, err := js.Stream(ctx, cfg.Name)
	if err != nil {
		t.Fatal(err)
	}
	if !stream.CachedInfo().Config.AllowRollup {
		t.Fatalf("Setup left rollups off")
	}
	if seq, err := l.DeleteStream(ctx, "order", "1", false); err != nil || seq != 2 {
		t.Fatalf("DeleteStream after Setup: %d, %v; want 2", seq, err)
	}
	_, err = l.Append(ctx, "order", "1", 2, ev("late"))
	checkDeleted(t, "Append", err, "order", "1", 2)
}

// TestTombstoneReplacesSubject checks the layout: after a delete the
// entity's subject holds the tombstone alone, a rollup of the earlier
// messages, and the index subject one message however often the entity is
// deleted; a reuse stream's next events follow the tombstone and read back
// without it.
func TestTombstoneReplacesSubject(t *testing.T) {
	_, js := setup(t)
	l := newLog(t, js)
	ctx := testCtx(t)
	mustAppend(t, l, "order", "1", 0, evs("e", 3)...)
	for range 3 {
		if seq, err := l.DeleteStream(ctx, "order", "1", true); err != nil || seq != 3 {
			t.Fatalf("DeleteStream: %d, %v; want 3", seq, err)
		}
	}
	counts := subjectCounts(t, ctx, js, "es.order.>")
	if want := map[string]uint64{"es.order.1": 1, "es.order.1.deleted": 1}; !maps.Equal(counts, want) {
		t.Errorf("subjects after three reuse deletes: %v, want %v", counts, want)
	}
	mustAppend(t, l, "order", "1", 3, evs("n", 2)...)
	if got := seqsOf(collect(t, l.ReadEntity(ctx, "order", "1", 1))); !slices.Equal(got, span(4, 5)) {
		t.Errorf("ReadEntity after the reuse delete and two appends: Seqs %v, want [4 5]", got)
	}
	if got := seqsOf(collect(t, l.ReadEntity(ctx, "order", "1", 5))); !slices.Equal(got, span(5, 5)) {
		t.Errorf("ReadEntity from 5: Seqs %v, want [5]", got)
	}
	if seq, err := l.DeleteStream(ctx, "order", "1", false); err != nil || seq != 5 {
		t.Fatalf("final DeleteStream: %d, %v; want 5", seq, err)
	}
	counts = subjectCounts(t, ctx, js, "es.order.>")
	if want := map[string]uint64{"es.order.1": 1, "es.order.1.deleted": 1}; !maps.Equal(counts, want) {
		t.Errorf("subjects after the final delete: %v, want %v", counts, want)
	}
}

// subjectCounts returns the message count of each subject of the default
// stream that matches filter.
func subjectCounts(t *testing.T, ctx context.Context, js jetstream.JetStream, filter string) map[string]uint64 {
	t.Helper()
	cfg, err := natslog.StreamConfig()
	if err != nil {
		t.Fatal(err)
	}
	stream, err := js.Stream(ctx, cfg.Name)
	if err != nil {
		t.Fatal(err)
	}
	info, err := stream.Info(ctx, jetstream.WithSubjectFilter(filter))
	if err != nil {
		t.Fatal(err)
	}
	return info.State.Subjects
}
