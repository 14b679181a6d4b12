package eventlogtest

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/eventsourced-go/eventsourced/eventlog"
	"github.com/eventsourced-go/eventsourced/internal/conformancetest"
)

// The cases of [eventlog.StreamDeleter]: tombstones, final and for reuse.

// tombstoneCases returns the cases of [eventlog.StreamDeleter], in the
// order [Run] runs them.
func tombstoneCases() []Case {
	c := conformancetest.New[eventlog.Log]
	return []Case{
		c("DeleteStreamFinal", "StreamDeleter: after a final DeleteStream, which returns the last Seq, Append at any expected Seq fails with a *DeletedError naming the stream and that Seq, ReadEntity from any Seq yields that one error and ends, and LastSeq still returns the last Seq", deleteStreamFinal),
		c("DeleteStreamReuse", "StreamDeleter: after a reuse DeleteStream, which returns the last Seq, the stream reads as empty, LastSeq is unchanged, an append expecting the last Seq continues at last+1 and one expecting another Seq conflicts", deleteStreamReuse),
		c("DeleteStreamAgain", "StreamDeleter: deleting again returns the same Seq, a final delete makes a reuse tombstone final, and a reuse delete of a final tombstone fails with a *DeletedError: a final tombstone is never lifted", deleteStreamAgain),
		c("DeleteStreamNeverWritten", "StreamDeleter: deleting a stream without events tombstones it at 0: a final tombstone refuses its first append, a reuse one lets it start at Seq 1", deleteStreamNeverWritten),
		c("DeleteStreamInvalid", "StreamDeleter: DeleteStream refuses a type or id that ValidateStream refuses with ErrInvalid and deletes nothing", deleteStreamInvalid),
		c("DeleteStreamOthersUntouched", "StreamDeleter: deleting a stream leaves the other streams of its type, and the same id under another type, as they were", deleteStreamOthersUntouched),
		c("DeleteStreamHidesFromReadType", "StreamDeleter: ReadType and Subscribe after DeleteStream skip the deleted events and yield the other streams' events, and a reuse stream's new ones, in Position order", deleteStreamHidesFromReadType),
		c("DeleteStreamEntityIDs", "StreamDeleter with IDLister: EntityIDs skips a deleted id, and lists a reuse-deleted one again once it has a new event", deleteStreamEntityIDs),
		c("DeleteStreamLiveSubscription", "StreamDeleter: a subscription started before a final delete never yields an event of the deleted stream after it, and keeps yielding the other streams' events in Position order", deleteStreamLiveSubscription),
		c("DeleteStreamRacingAppends", "StreamDeleter: of appends racing with DeleteStream, each one that succeeded landed before the delete (and is gone) or, with reuse, after it at a Seq above the tombstone; after a final delete no event is readable and appends fail with a *DeletedError at the Seq DeleteStream returned", deleteStreamRacingAppends),
	}
}

// streamDeleter returns log as an eventlog.StreamDeleter, or logs that the
// case does not apply and returns nil.
func streamDeleter(t TB, log eventlog.Log) eventlog.StreamDeleter {
	d, ok := log.(eventlog.StreamDeleter)
	if !ok {
		t.Logf("%T does not implement eventlog.StreamDeleter; case not applicable", log)
	}
	return d
}

// mustDeleteStream deletes a stream, ends the case on an error, and checks
// the Seq it returns.
func mustDeleteStream(t *conformancetest.T, ctx context.Context, d eventlog.StreamDeleter, typ, id string, reuse bool, want uint64) {
	t.Helper()
	got, err := d.DeleteStream(ctx, typ, id, reuse)
	if err != nil {
		t.Fatalf("DeleteStream(%s/%s, reuse %t): %v", typ, id, reuse, err)
	}
	if got != want {
		t.Errorf("DeleteStream(%s/%s, reuse %t) returned Seq %d, want %d", typ, id, reuse, got, want)
	}
}

// checkDeleted reports the case's rule broken unless err is a
// *DeletedError, matching ErrDeleted, for typ/id at seq.
func checkDeleted(t *conformancetest.T, what string, err error, typ, id string, seq uint64) {
	t.Helper()
	if err == nil {
		t.Errorf("%s succeeded, want a *DeletedError", what)
		return
	}
	if !errors.Is(err, eventlog.ErrDeleted) {
		t.Errorf("%s: got %v, want an error matching ErrDeleted", what, err)
	}
	var de *eventlog.DeletedError
	if !errors.As(err, &de) {
		t.Errorf("%s: got %T: %v, want a *DeletedError (errors.As)", what, err, err)
		return
	}
	if de.EntityType != typ || de.EntityID != id || de.Seq != seq {
		t.Errorf("%s: got DeletedError{%s, %s, Seq %d}, want {%s, %s, Seq %d}", what, de.EntityType, de.EntityID, de.Seq, typ, id, seq)
	}
}

// checkReadDeleted reads the stream from each Seq of froms and reports the
// case's rule broken unless every read yields no record and exactly one
// *DeletedError for typ/id at seq.
func checkReadDeleted(t *conformancetest.T, ctx context.Context, log eventlog.Log, typ, id string, seq uint64, froms ...uint64) {
	t.Helper()
	for _, from := range froms {
		recs, err := conformancetest.Collect(t, log.ReadEntity(ctx, typ, id, from))
		if len(recs) != 0 {
			t.Errorf("ReadEntity(%s/%s, from %d) of a deleted stream yielded Seqs %v", typ, id, from, seqs(recs))
		}
		checkDeleted(t, fmt.Sprintf("ReadEntity(%s/%s, from %d)", typ, id, from), err, typ, id, seq)
	}
}

func deleteStreamFinal(t *conformancetest.T, log eventlog.Log) {
	d := streamDeleter(t, log)
	if d == nil {
		return
	}
	ctx, n := conformancetest.Context(t), conformancetest.NewNames(t)
	typ, id := n.Type("order"), n.ID("1")
	mustAppend(t, ctx, log, typ, id, 0, evs("e", 1, 2)...)
	mustAppend(t, ctx, log, typ, id, 2, ev("e-3", ""))
	mustDeleteStream(t, ctx, d, typ, id, false, 3)

	for _, expected := range []uint64{0, 2, 3, 4} {
		_, err := log.Append(ctx, typ, id, expected, ev("after", ""))
		checkDeleted(t, fmt.Sprintf("Append expecting %d", expected), err, typ, id, 3)
	}
	checkReadDeleted(t, ctx, log, typ, id, 3, 0, 1, 3, 4, 100)
	if got := mustLastSeq(t, ctx, log, typ, id); got != 3 {
		t.Errorf("LastSeq after the delete: %d, want 3", got)
	}
}

func deleteStreamReuse(t *conformancetest.T, log eventlog.Log) {
	d := streamDeleter(t, log)
	if d == nil {
		return
	}
	ctx, n := conformancetest.Context(t), conformancetest.NewNames(t)
	typ, id := n.Type("order"), n.ID("1")
	mustAppend(t, ctx, log, typ, id, 0, evs("e", 1, 3)...)
	mustDeleteStream(t, ctx, d, typ, id, true, 3)

	for _, from := range []uint64{0, 1, 3, 4} {
		if recs := readEntity(t, ctx, log, typ, id, from); len(recs) != 0 {
			t.Errorf("ReadEntity from %d after the delete: got Seqs %v, want none", from, seqs(recs))
		}
	}
	if got := mustLastSeq(t, ctx, log, typ, id); got != 3 {
		t.Errorf("LastSeq after the delete: %d, want 3", got)
	}
	for _, expected := range []uint64{0, 2, 4} {
		_, err := log.Append(ctx, typ, id, expected, ev("stale", ""))
		checkConflict(t, err, typ, id, expected, 3)
	}
	mustAppend(t, ctx, log, typ, id, 3, evs("new", 4, 2)...)
	recs := readEntity(t, ctx, log, typ, id, 1)
	if got, want := seqs(recs), span(4, 5); !equalSeqs(got, want) {
		t.Fatalf("after appending at 3: got Seqs %v, want %v", got, want)
	}
	for _, r := range recs {
		if want := fmt.Sprintf("new-%d", r.Seq); r.Name != want {
			t.Errorf("Seq %d is %q, want %q", r.Seq, r.Name, want)
		}
	}
	if got := mustLastSeq(t, ctx, log, typ, id); got != 5 {
		t.Errorf("LastSeq after appending again: %d, want 5", got)
	}
}

func deleteStreamAgain(t *conformancetest.T, log eventlog.Log) {
	d := streamDeleter(t, log)
	if d == nil {
		return
	}
	ctx, n := conformancetest.Context(t), conformancetest.NewNames(t)
	typ, id := n.Type("order"), n.ID("1")
	mustAppend(t, ctx, log, typ, id, 0, evs("e", 1, 2)...)
	mustDeleteStream(t, ctx, d, typ, id, true, 2)
	mustDeleteStream(t, ctx, d, typ, id, true, 2)
	mustAppend(t, ctx, log, typ, id, 2, ev("e-3", ""))
	// A reuse stream that moved on is tombstoned at its new last Seq.
	mustDeleteStream(t, ctx, d, typ, id, true, 3)
	mustDeleteStream(t, ctx, d, typ, id, false, 3)
	mustDeleteStream(t, ctx, d, typ, id, false, 3)

	_, err := d.DeleteStream(ctx, typ, id, true)
	checkDeleted(t, "a reuse DeleteStream of a finally deleted stream", err, typ, id, 3)
	_, err = log.Append(ctx, typ, id, 3, ev("after", ""))
	checkDeleted(t, "Append expecting 3 after the reuse delete was refused", err, typ, id, 3)
	checkReadDeleted(t, ctx, log, typ, id, 3, 1)
	if got := mustLastSeq(t, ctx, log, typ, id); got != 3 {
		t.Errorf("LastSeq: %d, want 3", got)
	}
}

func deleteStreamNeverWritten(t *conformancetest.T, log eventlog.Log) {
	d := streamDeleter(t, log)
	if d == nil {
		return
	}
	ctx, n := conformancetest.Context(t), conformancetest.NewNames(t)
	typ, final, reuse := n.Type("order"), n.ID("final"), n.ID("reuse")

	mustDeleteStream(t, ctx, d, typ, final, false, 0)
	_, err := log.Append(ctx, typ, final, 0, ev("first", ""))
	checkDeleted(t, "Append expecting 0", err, typ, final, 0)
	checkReadDeleted(t, ctx, log, typ, final, 0, 0, 1)
	if got := mustLastSeq(t, ctx, log, typ, final); got != 0 {
		t.Errorf("LastSeq of %s: %d, want 0", final, got)
	}
	mustDeleteStream(t, ctx, d, typ, final, false, 0)

	mustDeleteStream(t, ctx, d, typ, reuse, true, 0)
	if recs := readEntity(t, ctx, log, typ, reuse, 1); len(recs) != 0 {
		t.Errorf("ReadEntity of %s: got Seqs %v, want none", reuse, seqs(recs))
	}
	mustAppend(t, ctx, log, typ, reuse, 0, ev("first", ""))
	if got, want := seqs(readEntity(t, ctx, log, typ, reuse, 1)), span(1, 1); !equalSeqs(got, want) {
		t.Errorf("after the first append to %s: got Seqs %v, want %v", reuse, got, want)
	}
	if recs := readType(t, ctx, log, typ, 0); len(recs) != 1 || keyOf(recs[0]) != (key{reuse, 1}) {
		var got []key
		for _, r := range recs {
			got = append(got, keyOf(r))
		}
		t.Errorf("ReadType: got %v, want [%s#1]", got, reuse)
	}
}

func deleteStreamInvalid(t *conformancetest.T, log eventlog.Log) {
	d := streamDeleter(t, log)
	if d == nil {
		return
	}
	ctx, n := conformancetest.Context(t), conformancetest.NewNames(t)
	typ, id := n.Type("order"), n.ID("1")
	mustAppend(t, ctx, log, typ, id, 0, ev("e", ""))
	long := strings.Repeat("x", eventlog.MaxIDLen+1)
	for _, c := range []struct{ typ, id string }{
		{"", id}, {typ, ""}, {typ, long}, {long, id}, {typ, "bad\x00id"}, {typ, "\xff"},
	} {
		for _, reuse := range []bool{false, true} {
			_, err := d.DeleteStream(ctx, c.typ, c.id, reuse)
			if !errors.Is(err, eventlog.ErrInvalid) {
				t.Errorf("DeleteStream(%q/%q, reuse %t): got %v, want ErrInvalid", eventlog.FormatID(c.typ), eventlog.FormatID(c.id), reuse, err)
			}
		}
	}
	if got, want := seqs(readEntity(t, ctx, log, typ, id, 1)), span(1, 1); !equalSeqs(got, want) {
		t.Errorf("after refused deletes: got Seqs %v, want %v", got, want)
	}
}

func deleteStreamOthersUntouched(t *conformancetest.T, log eventlog.Log) {
	d := streamDeleter(t, log)
	if d == nil {
		return
	}
	ctx, n := conformancetest.Context(t), conformancetest.NewNames(t)
	typ, other := n.Type("order"), n.Type("other")
	x, y, z := n.ID("x"), n.ID("y"), n.ID("z")
	for _, s := range [][2]string{{typ, x}, {typ, y}, {typ, z}, {other, x}} {
		mustAppend(t, ctx, log, s[0], s[1], 0, evs("e", 1, 2)...)
		mustAppend(t, ctx, log, s[0], s[1], 2, ev("e-3", "e-3"))
	}
	mustDeleteStream(t, ctx, d, typ, x, false, 3)
	mustDeleteStream(t, ctx, d, typ, y, true, 3)
	for _, s := range [][2]string{{typ, z}, {other, x}} {
		recs := readEntity(t, ctx, log, s[0], s[1], 1)
		if got, want := seqs(recs), span(1, 3); !equalSeqs(got, want) {
			t.Errorf("%s/%s: got Seqs %v, want %v", s[0], s[1], got, want)
			continue
		}
		for _, r := range recs {
			if want := fmt.Sprintf("e-%d", r.Seq); r.Name != want || string(r.Data) != want {
				t.Errorf("%s/%s Seq %d is %q/%q, want %q", s[0], s[1], r.Seq, r.Name, r.Data, want)
			}
		}
		if got := mustLastSeq(t, ctx, log, s[0], s[1]); got != 3 {
			t.Errorf("%s/%s: LastSeq %d, want 3", s[0], s[1], got)
		}
		mustAppend(t, ctx, log, s[0], s[1], 3, ev("e-4", ""))
	}
}

func deleteStreamHidesFromReadType(t *conformancetest.T, log eventlog.Log) {
	d := streamDeleter(t, log)
	if d == nil {
		return
	}
	ctx, n := conformancetest.Context(t), conformancetest.NewNames(t)
	typ := n.Type("order")
	x, y, z := n.ID("x"), n.ID("y"), n.ID("z")
	// Interleaved, so the deleted events sit between the kept ones.
	for round := range 3 {
		for _, id := range []string{x, y, z} {
			mustAppend(t, ctx, log, typ, id, uint64(round), ev(fmt.Sprintf("e-%d", round+1), ""))
		}
	}
	mustDeleteStream(t, ctx, d, typ, x, false, 3)
	mustDeleteStream(t, ctx, d, typ, y, true, 3)
	mustAppend(t, ctx, log, typ, y, 3, ev("e-4", ""))
	mustAppend(t, ctx, log, typ, z, 3, ev("e-4", ""))
	want := []key{{z, 1}, {z, 2}, {z, 3}, {y, 4}, {z, 4}}
	recs := readType(t, ctx, log, typ, 0)
	checkTypeRead(t, "ReadType after DeleteStream", typ, recs, want)
	if len(recs) == len(want) {
		// Positions order the reuse stream's new event before z#4.
		var got []key
		for _, r := range recs {
			got = append(got, keyOf(r))
		}
		if diff := diffKeys(got, want); diff != "" {
			t.Errorf("ReadType after DeleteStream: %s", diff)
		}
	}

	sub := subscribe(t, ctx, log, typ, 0)
	var got []key
	for range want {
		it, ok := sub.next(endTimeout)
		if !ok {
			t.Fatalf("Subscribe after DeleteStream yielded %v and then nothing within %v, want %v", got, endTimeout, want)
		}
		if it.err != nil {
			t.Fatalf("Subscribe after DeleteStream yielded %v and then the error %v, want %v", got, it.err, want)
		}
		got = append(got, keyOf(it.rec))
	}
	if diff := diffKeys(got, want); diff != "" {
		t.Errorf("Subscribe after DeleteStream: %s", diff)
	}
}

func deleteStreamEntityIDs(t *conformancetest.T, log eventlog.Log) {
	d := streamDeleter(t, log)
	if d == nil {
		return
	}
	l, ok := log.(eventlog.IDLister)
	if !ok {
		t.Logf("%T does not implement eventlog.IDLister; case not applicable", log)
		return
	}
	ctx, n := conformancetest.Context(t), conformancetest.NewNames(t)
	typ := n.Type("order")
	final, reuse, kept, trimmed, empty := n.ID("final"), n.ID("reuse"), n.ID("kept"), n.ID("trimmed"), n.ID("empty")
	for _, id := range []string{final, reuse, kept, trimmed} {
		mustAppend(t, ctx, log, typ, id, 0, evs("e", 1, 2)...)
	}
	mustDeleteStream(t, ctx, d, typ, final, false, 2)
	mustDeleteStream(t, ctx, d, typ, reuse, true, 2)
	mustDeleteStream(t, ctx, d, typ, empty, false, 0)
	// An entity whose events DeleteTo deleted stays listed.
	if dl, ok := log.(eventlog.Deleter); ok {
		if err := dl.DeleteTo(ctx, typ, trimmed, 2); err != nil {
			t.Fatalf("DeleteTo(%s, 2): %v", trimmed, err)
		}
	}
	list := func() []string {
		got := conformancetest.MustCollect(t, "EntityIDs", l.EntityIDs(ctx, typ))
		slices.Sort(got)
		return got
	}
	want := []string{kept, trimmed}
	slices.Sort(want)
	if got := list(); !slices.Equal(got, want) {
		t.Errorf("after the deletes: got %v, want %v", got, want)
	}
	mustAppend(t, ctx, log, typ, reuse, 2, ev("e-3", ""))
	want = append(want, reuse)
	slices.Sort(want)
	if got := list(); !slices.Equal(got, want) {
		t.Errorf("after the reuse stream's next append: got %v, want %v", got, want)
	}
}

func deleteStreamLiveSubscription(t *conformancetest.T, log eventlog.Log) {
	d := streamDeleter(t, log)
	if d == nil {
		return
	}
	ctx, n := conformancetest.Context(t), conformancetest.NewNames(t)
	typ := n.Type("live")
	x, y := n.ID("x"), n.ID("y")
	sub := subscribe(t, ctx, log, typ, 0)
	mustAppend(t, ctx, log, typ, x, 0, evs("x", 1, 2)...)
	mustAppend(t, ctx, log, typ, y, 0, ev("y-1", ""))

	expect := func(want ...key) {
		t.Helper()
		var got []key
		var last uint64
		for range want {
			it, ok := sub.next(endTimeout)
			if !ok {
				t.Fatalf("yielded %v and then nothing within %v, want %v", got, endTimeout, want)
			}
			if it.err != nil {
				t.Fatalf("yielded %v and then the error %v, want %v", got, it.err, want)
			}
			if it.rec.Position <= last {
				t.Errorf("yielded Position %d after %d", it.rec.Position, last)
			}
			last = it.rec.Position
			got = append(got, keyOf(it.rec))
		}
		if diff := diffKeys(got, want); diff != "" {
			t.Errorf("%s", diff)
		}
	}
	// Before the delete the subscription has seen the stream's events,
	// which it keeps.
	expect(key{x, 1}, key{x, 2}, key{y, 1})
	mustDeleteStream(t, ctx, d, typ, x, false, 2)
	for _, expected := range []uint64{0, 2} {
		_, err := log.Append(ctx, typ, x, expected, ev("x-3", ""))
		checkDeleted(t, fmt.Sprintf("Append to %s expecting %d", x, expected), err, typ, x, 2)
	}
	mustAppend(t, ctx, log, typ, y, 1, ev("y-2", ""))
	mustAppend(t, ctx, log, typ, y, 2, evs("y", 3, 2)...)
	expect(key{y, 2}, key{y, 3}, key{y, 4})
	// Nothing else arrives: no event of the deleted stream.
	if it, ok := sub.next(200 * time.Millisecond); ok {
		if it.err != nil {
			t.Errorf("yielded the error %v after the other stream's events", it.err)
		} else {
			t.Errorf("yielded %s, which nobody appended since", keyOf(it.rec))
		}
	}
}

// racer is what one goroutine appending to a stream while it is deleted
// saw: the Seqs of the appends it won (it wrote "writer:Seq" at each), the
// *DeletedErrors it got, and an unexpected error, which stopped it.
type racer struct {
	won     []uint64
	deleted []error
	err     error
}

func deleteStreamRacingAppends(t *conformancetest.T, log eventlog.Log) {
	d := streamDeleter(t, log)
	if d == nil {
		return
	}
	const (
		writers = 4
		before  = 8 // appends that land before the delete starts
		// Each writer keeps appending until it has tried after attempts
		// after the delete returned, and at most attempts in all, which
		// bounds the case.
		after    = 20
		attempts = 1000
	)
	ctx, n := conformancetest.Context(t), conformancetest.NewNames(t)
	typ := n.Type("race")
	for _, reuse := range []bool{false, true} {
		id := n.ID("final")
		if reuse {
			id = n.ID("reuse")
		}
		var (
			wg      sync.WaitGroup
			landed  = make(chan struct{}, writers*attempts)
			racers  [writers]racer
			started = make(chan struct{})
			deleted = make(chan struct{}) // closed when DeleteStream returned
		)
		for w := range writers {
			wg.Go(func() {
				r := &racers[w]
				<-started
				tries := 0
				for range attempts {
					select {
					case <-deleted:
						if tries++; tries > after {
							return
						}
					default:
					}
					last, err := log.LastSeq(ctx, typ, id)
					if err != nil {
						r.err = fmt.Errorf("LastSeq: %w", err)
						return
					}
					_, err = log.Append(ctx, typ, id, last, ev("e", fmt.Sprintf("%d:%d", w, last+1)))
					var ce *eventlog.ConflictError
					switch {
					case err == nil:
						r.won = append(r.won, last+1)
						landed <- struct{}{}
					case errors.As(err, &ce):
					case errors.Is(err, eventlog.ErrDeleted):
						r.deleted = append(r.deleted, err)
					default:
						r.err = fmt.Errorf("Append expecting %d: %w", last, err)
						return
					}
					// Let the other writers and the delete in, also on
					// one core.
					runtime.Gosched()
				}
			})
		}
		close(started)
		finished := make(chan struct{})
		go func() {
			wg.Wait()
			close(finished)
		}()
		for i := range before {
			select {
			case <-landed:
			case <-finished:
				if n := i + len(landed); n < before {
					t.Fatalf("reuse %t: the writers gave up with %d appends landed, want %d before the delete", reuse, n, before)
				}
			}
		}
		tomb, err := d.DeleteStream(ctx, typ, id, reuse)
		close(deleted)
		<-finished
		if err != nil {
			t.Fatalf("reuse %t: DeleteStream: %v", reuse, err)
		}
		var won []uint64
		data := make(map[uint64]string)
		for w := range racers {
			r := &racers[w]
			if r.err != nil {
				t.Errorf("reuse %t: writer %d: %v", reuse, w, r.err)
			}
			for _, seq := range r.won {
				won = append(won, seq)
				data[seq] = fmt.Sprintf("%d:%d", w, seq)
			}
			if reuse && len(r.deleted) > 0 {
				t.Errorf("reuse %t: writer %d got %v from an append to a stream deleted for reuse", reuse, w, r.deleted[0])
			}
			for _, err := range r.deleted {
				checkDeleted(t, fmt.Sprintf("reuse %t: a racing Append after the delete", reuse), err, typ, id, tomb)
			}
		}
		slices.Sort(won)
		last := mustLastSeq(t, ctx, log, typ, id)
		// Every Seq up to the last was won by exactly one append.
		if got, want := seqList(won), span(1, last); !equalSeqs(got, want) {
			t.Errorf("reuse %t: the appends that succeeded won Seqs %v, want %v (LastSeq %d)", reuse, got, want, last)
		}
		if tomb < before || tomb > last {
			t.Errorf("reuse %t: DeleteStream returned %d, want a Seq between %d (appended before it) and the last Seq %d", reuse, tomb, before, last)
		}
		if !reuse {
			if last != tomb {
				t.Errorf("appends succeeded after the final delete at %d: LastSeq %d", tomb, last)
			}
			checkReadDeleted(t, ctx, log, typ, id, tomb, 1)
			_, err := log.Append(ctx, typ, id, last, ev("late", ""))
			checkDeleted(t, "an Append after the race", err, typ, id, tomb)
		} else {
			recs := readEntity(t, ctx, log, typ, id, 1)
			if got, want := seqs(recs), span(tomb+1, last); !equalSeqs(got, want) {
				t.Errorf("reuse: tombstone at %d, LastSeq %d: ReadEntity got Seqs %v, want %v", tomb, last, got, want)
			}
			for _, r := range recs {
				if string(r.Data) != data[r.Seq] {
					t.Errorf("reuse: Seq %d holds %q, but the append that won it wrote %q", r.Seq, r.Data, data[r.Seq])
				}
			}
		}
		var mine []key
		for _, r := range readType(t, ctx, log, typ, 0) {
			if r.EntityID == id {
				mine = append(mine, keyOf(r))
			}
		}
		var want []key
		if reuse {
			for seq := tomb + 1; seq <= last; seq++ {
				want = append(want, key{id, seq})
			}
		}
		if diff := diffKeys(mine, want); diff != "" {
			t.Errorf("reuse %t: ReadType after the race, events of %s: %s", reuse, id, diff)
		}
	}
}
