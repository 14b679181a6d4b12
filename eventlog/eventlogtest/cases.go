package eventlogtest

import (
	"context"
	"errors"
	"fmt"
	"iter"
	"maps"
	"runtime"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
	"unicode/utf8"

	"github.com/eventsourced-go/eventsourced/eventlog"
	"github.com/eventsourced-go/eventsourced/internal/conformancetest"
)

// Cases returns the conformance cases, in the order [Run] runs them.
func Cases() []Case {
	c := conformancetest.New[eventlog.Log]
	return append([]Case{
		c("ReplayAll", "ReadEntity from 1 (or 0) yields every event of the stream in Seq order 1, 2, 3 ... and ends at its end", replayAll),
		c("ReplayFromSeq", "ReadEntity from a Seq yields exactly the events with Seq >= from", replayFromSeq),
		c("ReplayBeyondEnd", "ReadEntity from beyond the last Seq yields nothing and no error", replayBeyondEnd),
		c("ReplayUnknownEntity", "ReadEntity of a stream that does not exist yields nothing and no error", replayUnknownEntity),
		c("LastSeq", "LastSeq returns the stream's last Seq without a replay, 0 for an unknown stream", lastSeq),
		c("StreamsKeyedByTypeAndID", "a stream is (entity type, entity id): the same id under two types is two streams", streamsKeyedByTypeAndID),
		c("AppendAtomic", "append is atomic: a conflicting multi-event append stores none of its events", appendAtomic),
		c("GuardedFirstWrite", "the first write is guarded: of two creators with expected 0 exactly one wins, the other gets a ConflictError with Actual 1", guardedFirstWrite),
		c("StaleExpectedConflicts", "an append with a stale expected Seq fails with a *ConflictError matching ErrConflict, Expected and Actual filled in", staleExpectedConflicts),
		c("ExpectedAheadConflicts", "an append with an expected Seq ahead of the stream conflicts", expectedAheadConflicts),
		c("ConcurrentAppenders", "concurrent appenders to one entity: exactly one wins each Seq and the stream has no gaps", concurrentAppenders),
		c("ManyEntitiesInterleaved", "each stream keeps its own contiguous Seq 1..n however appends to many entities interleave", manyEntitiesInterleaved),
		c("RecordFields", "records carry the appended EntityType, EntityID, Seq, Name, Revision, Data and Metadata, a non-zero Position and Time", recordFields),
		c("AppendReturnsPosition", "Append returns the Position of its last event, the one reads report", appendReturnsPosition),
		c("EmptyDataNilMetadata", "empty data and nil or empty metadata round-trip as empty", emptyDataNilMetadata),
		c("ReadTypeOrderAndFilter", "ReadType yields every event of its type and only those, in strictly increasing Position order", readTypeOrderAndFilter),
		c("ReadTypeResume", "ReadType after any Position yields exactly the events after it: no repeats, no skips", readTypeResume),
		c("SubscribeGapSafe", "a live reader by Position sees every event exactly once, in increasing Position order, while many writers commit concurrently", subscribeGapSafe),
		c("SubscribeLive", "Subscribe yields events appended after it started and ends with ctx.Err() when ctx is canceled", subscribeLive),
		c("CanceledContext", "a read with a canceled ctx yields an error matching context.Canceled and ends", canceledContext),
		c("BreakEarly", "a consumer may break out of any iterator early and the log stays usable", breakEarly),
		c("InvalidArguments", "Append with an empty type or id, no events or an unnamed event fails with ErrInvalid and stores nothing", invalidArguments),
		c("NameLimits", "types and ids of MaxTypeLen and MaxIDLen bytes of any UTF-8 (unicode, dots, spaces, '*', '>') work in every call; one byte more is refused with ErrInvalid and a message that quotes a bounded prefix", nameLimits),
		c("DeleteTo", "Deleter: after DeleteTo k, reads start at k+1, LastSeq is unchanged and appends continue from it", deleteTo),
		c("DeleteAll", "Deleter: deleting every event keeps LastSeq, and the next append must still expect it", deleteAll),
		c("DeleteHidesFromReadType", "Deleter: deleted events are gone for readers by type too", deleteHidesFromReadType),
		c("EntityIDs", "IDLister: EntityIDs yields exactly the ids of the type's entities, once each", entityIDs),
		c("EntityTypes", "TypeLister: EntityTypes yields every type with an appended event once, and no type that was only read or refused an append", entityTypes),
	}, slices.Concat(tombstoneCases(), allReadCases(), asyncCases())...)
}

func replayAll(t *conformancetest.T, log eventlog.Log) {
	ctx, n := conformancetest.Context(t), conformancetest.NewNames(t)
	typ, id := n.Type("order"), n.ID("1")
	mustAppend(t, ctx, log, typ, id, 0, evs("e", 1, 1)...)
	mustAppend(t, ctx, log, typ, id, 1, evs("e", 2, 2)...)
	for _, from := range []uint64{0, 1} {
		recs := readEntity(t, ctx, log, typ, id, from)
		if got, want := seqs(recs), span(1, 3); !equalSeqs(got, want) {
			t.Errorf("from %d: got Seqs %v, want %v", from, got, want)
			continue
		}
		for i, r := range recs {
			if want := fmt.Sprintf("e-%d", i+1); r.Name != want || string(r.Data) != want {
				t.Errorf("from %d: record %d is %q/%q, want %q", from, i, r.Name, r.Data, want)
			}
		}
	}
}

func replayFromSeq(t *conformancetest.T, log eventlog.Log) {
	ctx, n := conformancetest.Context(t), conformancetest.NewNames(t)
	typ, id := n.Type("order"), n.ID("1")
	mustAppend(t, ctx, log, typ, id, 0, evs("e", 1, 5)...)
	for _, from := range []uint64{2, 3, 5} {
		recs := readEntity(t, ctx, log, typ, id, from)
		if got, want := seqs(recs), span(from, 5); !equalSeqs(got, want) {
			t.Errorf("from %d: got Seqs %v, want %v", from, got, want)
			continue
		}
		if r := recs[0]; r.Name != fmt.Sprintf("e-%d", from) {
			t.Errorf("from %d: first record is %q", from, r.Name)
		}
	}
}

func replayBeyondEnd(t *conformancetest.T, log eventlog.Log) {
	ctx, n := conformancetest.Context(t), conformancetest.NewNames(t)
	typ, id := n.Type("order"), n.ID("1")
	mustAppend(t, ctx, log, typ, id, 0, evs("e", 1, 5)...)
	for _, from := range []uint64{6, 100, 1 << 62} {
		if recs := readEntity(t, ctx, log, typ, id, from); len(recs) != 0 {
			t.Errorf("from %d: got Seqs %v", from, seqs(recs))
		}
	}
}

func replayUnknownEntity(t *conformancetest.T, log eventlog.Log) {
	ctx, n := conformancetest.Context(t), conformancetest.NewNames(t)
	typ := n.Type("order")
	mustAppend(t, ctx, log, typ, n.ID("known"), 0, ev("e", ""))
	for _, s := range [][2]string{{typ, n.ID("unknown")}, {n.Type("unknown"), n.ID("known")}} {
		if recs := readEntity(t, ctx, log, s[0], s[1], 1); len(recs) != 0 {
			t.Errorf("%s/%s: got Seqs %v", s[0], s[1], seqs(recs))
		}
	}
}

func lastSeq(t *conformancetest.T, log eventlog.Log) {
	ctx, n := conformancetest.Context(t), conformancetest.NewNames(t)
	typ, a, b := n.Type("order"), n.ID("a"), n.ID("b")
	if got := mustLastSeq(t, ctx, log, typ, a); got != 0 {
		t.Errorf("unknown stream: got %d, want 0", got)
	}
	mustAppend(t, ctx, log, typ, a, 0, ev("e", ""))
	if got := mustLastSeq(t, ctx, log, typ, a); got != 1 {
		t.Errorf("after 1 event: got %d, want 1", got)
	}
	mustAppend(t, ctx, log, typ, a, 1, evs("e", 2, 3)...)
	if got := mustLastSeq(t, ctx, log, typ, a); got != 4 {
		t.Errorf("after 4 events: got %d, want 4", got)
	}
	if got := mustLastSeq(t, ctx, log, typ, b); got != 0 {
		t.Errorf("another entity of the same type: got %d, want 0", got)
	}
	if got := mustLastSeq(t, ctx, log, n.Type("other"), a); got != 0 {
		t.Errorf("the same id under another type: got %d, want 0", got)
	}
}

func streamsKeyedByTypeAndID(t *conformancetest.T, log eventlog.Log) {
	ctx, n := conformancetest.Context(t), conformancetest.NewNames(t)
	ta, tb, id := n.Type("a"), n.Type("b"), n.ID("x")
	mustAppend(t, ctx, log, ta, id, 0, ev("a1", "a1"), ev("a2", "a2"))
	if _, err := log.Append(ctx, tb, id, 0, ev("b1", "b1")); err != nil {
		t.Fatalf("first append to %s/%s: %v", tb, id, err)
	}
	for _, c := range []struct {
		typ   string
		names []string
	}{{ta, []string{"a1", "a2"}}, {tb, []string{"b1"}}} {
		recs := readEntity(t, ctx, log, c.typ, id, 1)
		var got []string
		for _, r := range recs {
			got = append(got, r.Name)
			if r.EntityType != c.typ || r.EntityID != id {
				t.Errorf("read of %s/%s yielded a record of %s/%s", c.typ, id, r.EntityType, r.EntityID)
			}
		}
		if !slices.Equal(got, c.names) {
			t.Errorf("%s/%s: got events %v, want %v", c.typ, id, got, c.names)
		}
	}
}

func appendAtomic(t *conformancetest.T, log eventlog.Log) {
	ctx, n := conformancetest.Context(t), conformancetest.NewNames(t)
	typ, id := n.Type("order"), n.ID("1")
	mustAppend(t, ctx, log, typ, id, 0, evs("ok", 1, 2)...)
	for _, expected := range []uint64{0, 1, 3} {
		_, err := log.Append(ctx, typ, id, expected, evs("bad", 1, 3)...)
		conflict(t, err)
	}
	if got := mustLastSeq(t, ctx, log, typ, id); got != 2 {
		t.Errorf("after refused appends: LastSeq %d, want 2", got)
	}
	recs := readEntity(t, ctx, log, typ, id, 1)
	for _, r := range recs {
		if r.Name != "ok-1" && r.Name != "ok-2" {
			t.Errorf("a refused append stored %q at Seq %d", r.Name, r.Seq)
		}
	}
	// A conflicting append to a stream that does not exist creates nothing.
	fresh := n.ID("fresh")
	_, err := log.Append(ctx, typ, fresh, 5, evs("bad", 1, 3)...)
	conflict(t, err)
	if got := mustLastSeq(t, ctx, log, typ, fresh); got != 0 {
		t.Errorf("refused append to a new stream: LastSeq %d, want 0", got)
	}
	// A good multi-event append stores all of its events, contiguously.
	mustAppend(t, ctx, log, typ, id, 2, evs("ok", 3, 3)...)
	recs = readEntity(t, ctx, log, typ, id, 1)
	if got, want := seqs(recs), span(1, 5); !equalSeqs(got, want) {
		ruleErrorf(t, "append is atomic: a successful multi-event append stores all of its events", "got Seqs %v, want %v", got, want)
	}
}

func guardedFirstWrite(t *conformancetest.T, log eventlog.Log) {
	ctx, n := conformancetest.Context(t), conformancetest.NewNames(t)
	typ := n.Type("account")
	for round := range 10 {
		id := n.ID(strconv.Itoa(round))
		var errs [2]error
		var wg sync.WaitGroup
		start := make(chan struct{})
		for c := range 2 {
			wg.Go(func() {
				<-start
				_, errs[c] = log.Append(ctx, typ, id, 0, ev(fmt.Sprintf("created-by-%d", c), ""))
			})
		}
		close(start)
		wg.Wait()
		winner := -1
		switch {
		case errs[0] == nil && errs[1] == nil:
			t.Fatalf("%s: both creators won", id)
		case errs[0] == nil:
			winner = 0
		case errs[1] == nil:
			winner = 1
		default:
			t.Fatalf("%s: no creator won: %v; %v", id, errs[0], errs[1])
		}
		checkConflict(t, errs[1-winner], typ, id, 0, 1)
		recs := readEntity(t, ctx, log, typ, id, 1)
		if len(recs) != 1 || recs[0].Name != fmt.Sprintf("created-by-%d", winner) {
			var got []string
			for _, r := range recs {
				got = append(got, r.Name)
			}
			t.Errorf("%s: stream holds %v, want only the winner's event created-by-%d", id, got, winner)
		}
	}
}

func staleExpectedConflicts(t *conformancetest.T, log eventlog.Log) {
	ctx, n := conformancetest.Context(t), conformancetest.NewNames(t)
	typ, id := n.Type("account"), n.ID("1")
	mustAppend(t, ctx, log, typ, id, 0, evs("e", 1, 3)...)
	for _, expected := range []uint64{0, 1, 2} {
		_, err := log.Append(ctx, typ, id, expected, ev("stale", ""))
		checkConflict(t, err, typ, id, expected, 3)
		if err != nil && err.Error() == "" {
			t.Errorf("the conflict's message is empty")
		}
	}
	if got := mustLastSeq(t, ctx, log, typ, id); got != 3 {
		t.Errorf("after stale appends: LastSeq %d, want 3", got)
	}
}

func expectedAheadConflicts(t *conformancetest.T, log eventlog.Log) {
	ctx, n := conformancetest.Context(t), conformancetest.NewNames(t)
	typ, id, fresh := n.Type("account"), n.ID("1"), n.ID("fresh")
	mustAppend(t, ctx, log, typ, id, 0, evs("e", 1, 2)...)
	_, err := log.Append(ctx, typ, id, 5, ev("ahead", ""))
	checkConflict(t, err, typ, id, 5, 2)
	_, err = log.Append(ctx, typ, id, 3, ev("ahead", ""))
	checkConflict(t, err, typ, id, 3, 2)
	_, err = log.Append(ctx, typ, fresh, 1, ev("ahead", ""))
	checkConflict(t, err, typ, fresh, 1, 0)
	if got := mustLastSeq(t, ctx, log, typ, id); got != 2 {
		t.Errorf("after refused appends: LastSeq %d, want 2", got)
	}
	if got := mustLastSeq(t, ctx, log, typ, fresh); got != 0 {
		t.Errorf("after a refused first append: LastSeq %d, want 0", got)
	}
}

func concurrentAppenders(t *conformancetest.T, log eventlog.Log) {
	const writers, each, maxAttempts = 50, 5, 100_000
	ctx, n := conformancetest.Context(t), conformancetest.NewNames(t)
	typ, id := n.Type("counter"), n.ID("hot")

	var wg sync.WaitGroup
	var mu sync.Mutex // guards positions
	positions := make(map[uint64]int)
	var conflicts atomic.Int64
	start := make(chan struct{})
	for w := range writers {
		wg.Go(func() {
			<-start
			name := "w" + strconv.Itoa(w)
			landed := 0
			for attempt := 0; landed < each; attempt++ {
				if attempt == maxAttempts || ctx.Err() != nil {
					t.Errorf("writer %d landed %d events in %d attempts (ctx: %v)", w, landed, attempt, ctx.Err())
					return
				}
				last, err := log.LastSeq(ctx, typ, id)
				if err != nil {
					t.Errorf("LastSeq: %v", err)
					return
				}
				runtime.Gosched() // invite another writer in between
				pos, err := log.Append(ctx, typ, id, last, ev(name, name))
				if err != nil {
					conflicts.Add(1)
					var ce *eventlog.ConflictError
					if !errors.As(err, &ce) {
						t.Errorf("Append at %d: %v, want success or a *ConflictError", last, err)
						return
					}
					if ce.Expected != last || ce.Actual <= last {
						ruleErrorf(t, "a ConflictError carries the expected Seq and the stream's actual last Seq", "appending at %d got Expected %d Actual %d, want Expected %d and Actual > %d",
							last, ce.Expected, ce.Actual, last, last)
					}
					continue
				}
				landed++
				mu.Lock()
				positions[pos]++
				mu.Unlock()
			}
		})
	}
	close(start)
	wg.Wait()
	t.Logf("%d appends conflicted", conflicts.Load())
	if t.Failed() {
		return
	}

	for pos, k := range positions {
		if k > 1 {
			t.Errorf("%d successful appends returned Position %d", k, pos)
		}
	}
	if got := mustLastSeq(t, ctx, log, typ, id); got != writers*each {
		t.Errorf("LastSeq %d, want %d", got, writers*each)
	}
	recs := readEntity(t, ctx, log, typ, id, 1)
	if got, want := seqs(recs), span(1, writers*each); !equalSeqs(got, want) {
		t.Fatalf("got %d events with Seqs %v, want Seqs 1..%d", len(recs), got, writers*each)
	}
	perWriter := make(map[string]int)
	for _, r := range recs {
		perWriter[r.Name]++
	}
	for w := range writers {
		if got := perWriter["w"+strconv.Itoa(w)]; got != each {
			t.Errorf("writer %d won %d appends and the stream holds %d of its events", w, each, got)
		}
	}
}

func manyEntitiesInterleaved(t *conformancetest.T, log eventlog.Log) {
	const entities, rounds = 20, 6
	ctx, n := conformancetest.Context(t), conformancetest.NewNames(t)
	typ := n.Type("cart")
	last := make([]uint64, entities)
	for r := range rounds {
		for e := range entities {
			// Batches of 1, 2 and 3 events, varying by entity and round.
			size := 1 + (e+r)%3
			batch := make([]eventlog.Event, size)
			for i := range batch {
				data := fmt.Sprintf("%d:%d", e, last[e]+uint64(i)+1)
				batch[i] = ev("item", data)
			}
			mustAppend(t, ctx, log, typ, n.ID(strconv.Itoa(e)), last[e], batch...)
			last[e] += uint64(size)
		}
	}
	for e := range entities {
		id := n.ID(strconv.Itoa(e))
		if got := mustLastSeq(t, ctx, log, typ, id); got != last[e] {
			t.Errorf("%s: LastSeq %d, want %d", id, got, last[e])
		}
		recs := readEntity(t, ctx, log, typ, id, 1)
		if got, want := seqs(recs), span(1, last[e]); !equalSeqs(got, want) {
			t.Errorf("%s: got Seqs %v, want %v", id, got, want)
			continue
		}
		for _, r := range recs {
			if want := fmt.Sprintf("%d:%d", e, r.Seq); string(r.Data) != want || r.EntityID != id {
				t.Errorf("%s Seq %d: got data %q of %s, want %q", id, r.Seq, r.Data, r.EntityID, want)
				break
			}
		}
	}
}

func recordFields(t *conformancetest.T, log eventlog.Log) {
	ctx, n := conformancetest.Context(t), conformancetest.NewNames(t)
	typ, id := n.Type("account"), n.ID("1")
	first := eventlog.Event{Name: "Opened", Revision: 0, Data: []byte(`{"owner":"ann"}`)}
	second := eventlog.Event{
		Name:     "Deposited",
		Revision: 3,
		Data:     []byte{0, 1, 2, 0xfe, 0xff, 0},
		Metadata: map[string]string{"correlation-id": "c-1", "causation-id": "k-9", "traceparent": "00-abc-def-01"},
	}
	before := time.Now()
	mustAppend(t, ctx, log, typ, id, 0, first)
	mustAppend(t, ctx, log, typ, id, 1, second)

	check := func(via string, recs []eventlog.Record) {
		t.Helper()
		if len(recs) != 2 {
			t.Errorf("%s: got %d records, want 2", via, len(recs))
			return
		}
		for i, want := range []eventlog.Event{first, second} {
			r := recs[i]
			if r.EntityType != typ || r.EntityID != id || r.Seq != uint64(i+1) {
				t.Errorf("%s: record %d is %s/%s Seq %d, want %s/%s Seq %d", via, i, r.EntityType, r.EntityID, r.Seq, typ, id, i+1)
			}
			if r.Name != want.Name || r.Revision != want.Revision {
				t.Errorf("%s: record %d is %q rev %d, want %q rev %d", via, i, r.Name, r.Revision, want.Name, want.Revision)
			}
			if string(r.Data) != string(want.Data) {
				t.Errorf("%s: record %d data %v, want %v", via, i, r.Data, want.Data)
			}
			if !maps.Equal(r.Metadata, want.Metadata) {
				t.Errorf("%s: record %d metadata %v, want %v", via, i, r.Metadata, want.Metadata)
			}
			if r.Position == 0 {
				t.Errorf("%s: record %d has Position 0", via, i)
			}
			if r.Time.IsZero() {
				t.Errorf("%s: record %d has a zero Time", via, i)
			} else if d := r.Time.Sub(before); d < -time.Hour || d > time.Hour {
				t.Errorf("%s: record %d Time %v is far from the append at %v", via, i, r.Time, before)
			}
		}
		if recs[0].Position >= recs[1].Position {
			t.Errorf("%s: Positions %d then %d do not increase", via, recs[0].Position, recs[1].Position)
		}
	}
	check("ReadEntity", readEntity(t, ctx, log, typ, id, 1))
	check("ReadType", readType(t, ctx, log, typ, 0))
}

func appendReturnsPosition(t *conformancetest.T, log eventlog.Log) {
	ctx, n := conformancetest.Context(t), conformancetest.NewNames(t)
	typ, id := n.Type("account"), n.ID("1")
	p1 := mustAppend(t, ctx, log, typ, id, 0, ev("a", ""))
	p2 := mustAppend(t, ctx, log, typ, id, 1, evs("b", 1, 3)...)
	p3 := mustAppend(t, ctx, log, typ, n.ID("2"), 0, evs("c", 1, 2)...)
	if !(p1 < p2 && p2 < p3) {
		t.Errorf("successive appends returned Positions %d, %d, %d, want increasing", p1, p2, p3)
	}
	recs := readEntity(t, ctx, log, typ, id, 1)
	if len(recs) != 4 {
		t.Fatalf("got %d records, want 4", len(recs))
	}
	if recs[0].Position != p1 || recs[3].Position != p2 {
		t.Errorf("Append returned %d and %d, records have Positions %d and %d", p1, p2, recs[0].Position, recs[3].Position)
	}
	for i := 1; i < len(recs); i++ {
		if recs[i].Position <= recs[i-1].Position {
			t.Errorf("the events of one append have Positions %d then %d", recs[i-1].Position, recs[i].Position)
		}
	}
}

func emptyDataNilMetadata(t *conformancetest.T, log eventlog.Log) {
	ctx, n := conformancetest.Context(t), conformancetest.NewNames(t)
	typ, id := n.Type("ping"), n.ID("1")
	mustAppend(t, ctx, log, typ, id, 0,
		eventlog.Event{Name: "Nil"},
		eventlog.Event{Name: "Empty", Data: []byte{}, Metadata: map[string]string{}},
		eventlog.Event{Name: "EmptyValue", Metadata: map[string]string{"k": ""}},
	)
	recs := readEntity(t, ctx, log, typ, id, 1)
	if len(recs) != 3 {
		t.Fatalf("got %d records, want 3", len(recs))
	}
	for _, r := range recs[:2] {
		if len(r.Data) != 0 || len(r.Metadata) != 0 {
			t.Errorf("%s: got data %q metadata %v, want both empty", r.Name, r.Data, r.Metadata)
		}
	}
	if r := recs[2]; len(r.Data) != 0 || !maps.Equal(r.Metadata, map[string]string{"k": ""}) {
		t.Errorf("%s: got data %q metadata %v, want empty data and metadata k=\"\"", r.Name, r.Data, r.Metadata)
	}
}

// appendMixed appends to three entities of type a and two of type b,
// interleaved, in batches of 1 to 3. It returns the keys appended to each
// type in append order.
func appendMixed(t TB, ctx context.Context, log eventlog.Log, n conformancetest.Names, a, b string) (keysA, keysB []key) {
	t.Helper()
	last := make(map[string]uint64)
	for r := range 8 {
		for e := range 5 {
			typ, keys := a, &keysA
			if e >= 3 {
				typ, keys = b, &keysB
			}
			id := n.ID(strconv.Itoa(e))
			size := 1 + (r+e)%3
			mustAppend(t, ctx, log, typ, id, last[typ+"/"+id], evs("e", int(last[typ+"/"+id])+1, size)...)
			for range size {
				last[typ+"/"+id]++
				*keys = append(*keys, key{id, last[typ+"/"+id]})
			}
		}
	}
	return keysA, keysB
}

// checkTypeRead checks that recs are exactly the events of typ with keys
// want, each once, in strictly increasing Position order.
func checkTypeRead(t *conformancetest.T, via, typ string, recs []eventlog.Record, want []key) {
	t.Helper()
	seen := make(map[key]int)
	for i, r := range recs {
		if r.EntityType != typ {
			t.Errorf("%s yielded %s of type %s", via, keyOf(r), r.EntityType)
		}
		if i > 0 && r.Position <= recs[i-1].Position {
			t.Errorf("%s yielded Position %d after %d", via, r.Position, recs[i-1].Position)
		}
		seen[keyOf(r)]++
	}
	for _, k := range want {
		switch seen[k] {
		case 0:
			t.Errorf("%s skipped %s", via, k)
		case 1:
		default:
			t.Errorf("%s yielded %s %d times", via, k, seen[k])
		}
		delete(seen, k)
	}
	for k := range seen {
		t.Errorf("%s yielded %s, which was not appended to %s", via, k, typ)
	}
	// Within one entity, Position order is Seq order.
	lastSeq := make(map[string]uint64)
	for _, r := range recs {
		if r.Seq <= lastSeq[r.EntityID] {
			t.Errorf("%s yielded %s#%d after Seq %d", via, r.EntityID, r.Seq, lastSeq[r.EntityID])
		}
		lastSeq[r.EntityID] = r.Seq
	}
}

func readTypeOrderAndFilter(t *conformancetest.T, log eventlog.Log) {
	ctx, n := conformancetest.Context(t), conformancetest.NewNames(t)
	a, b := n.Type("a"), n.Type("b")
	keysA, keysB := appendMixed(t, ctx, log, n, a, b)
	checkTypeRead(t, "ReadType(a, 0)", a, readType(t, ctx, log, a, 0), keysA)
	checkTypeRead(t, "ReadType(b, 0)", b, readType(t, ctx, log, b, 0), keysB)
	for _, after := range []uint64{lastPosition(t, ctx, log, a), 1 << 62} {
		if recs := readType(t, ctx, log, a, after); len(recs) != 0 {
			t.Errorf("ReadType after %d, beyond the last Position, yielded %d records", after, len(recs))
		}
	}
	if recs := readType(t, ctx, log, n.Type("unknown"), 0); len(recs) != 0 {
		t.Errorf("ReadType of a type without events yielded %d records", len(recs))
	}
}

// lastPosition returns the last Position of typ.
func lastPosition(t TB, ctx context.Context, log eventlog.Log, typ string) uint64 {
	t.Helper()
	recs := readType(t, ctx, log, typ, 0)
	if len(recs) == 0 {
		return 0
	}
	return recs[len(recs)-1].Position
}

func readTypeResume(t *conformancetest.T, log eventlog.Log) {
	ctx, n := conformancetest.Context(t), conformancetest.NewNames(t)
	a, b := n.Type("a"), n.Type("b")
	keysA, _ := appendMixed(t, ctx, log, n, a, b)
	all := readType(t, ctx, log, a, 0)
	others := readType(t, ctx, log, b, 0)
	// The appends were sequential, so Position order is append order.
	allKeys := make([]key, len(all))
	for i, r := range all {
		allKeys[i] = keyOf(r)
	}
	if d := diffKeys(allKeys, keysA); d != "" {
		ruleFatalf(t, "Positions grow from one append to the next: ReadType yields sequential appends in append order",
			"ReadType(a, 0): %s", d)
	}
	// Resume after each Position of the type, and after each Position of
	// the other type, which falls between them.
	var afters []uint64
	for _, r := range all {
		afters = append(afters, r.Position)
	}
	for _, r := range others {
		afters = append(afters, r.Position)
	}
	afters = append(afters, all[0].Position-1)
	for _, after := range afters {
		var want []key
		for _, r := range all {
			if r.Position > after {
				want = append(want, keyOf(r))
			}
		}
		got := readType(t, ctx, log, a, after)
		gotKeys := make([]key, len(got))
		for i, r := range got {
			gotKeys[i] = keyOf(r)
		}
		if d := diffKeys(gotKeys, want); d != "" {
			t.Errorf("after %d: %s", after, d)
		}
	}
}

func subscribeGapSafe(t *conformancetest.T, log eventlog.Log) {
	const writers, entitiesPerWriter, appendsPerWriter = 8, 4, 30
	ctx, n := conformancetest.Context(t), conformancetest.NewNames(t)
	typ := n.Type("gap")
	sub := subscribe(t, ctx, log, typ, 0)

	var wg sync.WaitGroup
	var mu sync.Mutex // guards want and maxPos
	want := make(map[key]bool)
	var maxPos uint64
	start := make(chan struct{})
	for w := range writers {
		wg.Go(func() {
			<-start
			last := make([]uint64, entitiesPerWriter)
			for i := range appendsPerWriter {
				e := i % entitiesPerWriter
				id := n.ID(fmt.Sprintf("%d_%d", w, e))
				size := 1 + i%3
				pos, err := log.Append(ctx, typ, id, last[e], evs("e", int(last[e])+1, size)...)
				if err != nil {
					t.Errorf("writer %d: Append(%s, expected %d): %v", w, id, last[e], err)
					return
				}
				mu.Lock()
				for range size {
					last[e]++
					want[key{id, last[e]}] = true
				}
				maxPos = max(maxPos, pos)
				mu.Unlock()
			}
		})
	}
	close(start)
	wg.Wait()
	if t.Failed() {
		return
	}

	// Every event has committed; the subscriber must deliver them all, the
	// one at maxPos last. A subscriber that skipped one shows it when it
	// reaches maxPos, without waiting for a timeout.
	seen := make(map[key]int)
	var prev uint64
	deadline := time.Now().Add(20 * time.Second)
	for {
		it, ok := sub.next(time.Until(deadline))
		if !ok {
			t.Fatalf("timed out after %d of %d events", len(seen), len(want))
		}
		if it.err != nil {
			t.Fatalf("Subscribe yielded %v after %d of %d events", it.err, len(seen), len(want))
		}
		r := it.rec
		if r.Position <= prev {
			t.Errorf("Subscribe yielded Position %d after %d", r.Position, prev)
		}
		prev = r.Position
		seen[keyOf(r)]++
		if !want[keyOf(r)] {
			t.Errorf("Subscribe yielded %s, which was not appended", keyOf(r))
		}
		if r.Position >= maxPos {
			break
		}
	}
	var missing []key
	for k := range want {
		switch seen[k] {
		case 0:
			missing = append(missing, k)
		case 1:
		default:
			t.Errorf("Subscribe yielded %s %d times", k, seen[k])
		}
	}
	if len(missing) > 0 {
		t.Errorf("Subscribe reached the last Position %d but skipped %d of %d events, such as %v", maxPos, len(missing), len(want), missing[0])
	}
}

func subscribeLive(t *conformancetest.T, log eventlog.Log) {
	ctx, n := conformancetest.Context(t), conformancetest.NewNames(t)
	typ, other := n.Type("live"), n.Type("other")
	x, y := n.ID("x"), n.ID("y")
	mustAppend(t, ctx, log, typ, x, 0, ev("x1", ""), ev("x2", ""))
	sub := subscribe(t, ctx, log, typ, 0)

	expect := func(s *subscription, names ...string) []eventlog.Record {
		t.Helper()
		var recs []eventlog.Record
		for _, name := range names {
			it, ok := s.next(endTimeout)
			switch {
			case !ok:
				t.Fatalf("no event within %v, want %s", endTimeout, name)
			case it.err != nil:
				t.Fatalf("got error %v, want %s", it.err, name)
			case it.rec.Name != name || it.rec.EntityType != typ:
				t.Fatalf("got %s event %s (%s), want %s", it.rec.EntityType, it.rec.Name, keyOf(it.rec), name)
			}
			recs = append(recs, it.rec)
		}
		return recs
	}
	old := expect(sub, "x1", "x2")

	mustAppend(t, ctx, log, other, x, 0, ev("not-mine", ""))
	mustAppend(t, ctx, log, typ, x, 2, ev("x3", ""))
	mustAppend(t, ctx, log, typ, y, 0, ev("y1", ""), ev("y2", ""))
	expect(sub, "x3", "y1", "y2")

	// A second subscription after the first event starts at the second.
	from := subscribe(t, ctx, log, typ, old[0].Position)
	expect(from, "x2", "x3", "y1", "y2")
	from.cancel()

	sub.cancel()
	deadline := time.Now().Add(endTimeout)
	for {
		it, ok := sub.next(time.Until(deadline))
		if !ok {
			t.Fatalf("Subscribe did not end within %v of its ctx being canceled", endTimeout)
		}
		if it.err != nil {
			if !errors.Is(it.err, context.Canceled) {
				t.Errorf("Subscribe ended with %v, want an error matching context.Canceled", it.err)
			}
			break
		}
		t.Errorf("Subscribe yielded %s after its ctx was canceled and before its error", keyOf(it.rec))
	}
	if !sub.waitDone(endTimeout) {
		t.Errorf("Subscribe did not return within %v of yielding its error", endTimeout)
	}
}

func canceledContext(t *conformancetest.T, log eventlog.Log) {
	ctx, n := conformancetest.Context(t), conformancetest.NewNames(t)
	typ, id := n.Type("order"), n.ID("1")
	mustAppend(t, ctx, log, typ, id, 0, evs("e", 1, 3)...)
	canceled, cancel := context.WithCancel(ctx)
	cancel()

	for name, seq := range map[string]iter.Seq2[eventlog.Record, error]{
		"ReadEntity": log.ReadEntity(canceled, typ, id, 1),
		"ReadType":   log.ReadType(canceled, typ, 0),
	} {
		if _, err := conformancetest.Collect(t, seq); !errors.Is(err, context.Canceled) {
			t.Errorf("%s: got error %v, want one matching context.Canceled", name, err)
		}
	}
	sub := subscribe(t, canceled, log, typ, 0)
	deadline := time.Now().Add(endTimeout)
	for {
		it, ok := sub.next(time.Until(deadline))
		if !ok {
			t.Fatalf("Subscribe with a canceled ctx did not end within %v", endTimeout)
		}
		if it.err != nil {
			if !errors.Is(it.err, context.Canceled) {
				t.Errorf("Subscribe: got error %v, want one matching context.Canceled", it.err)
			}
			break
		}
	}
	if !sub.waitDone(endTimeout) {
		t.Errorf("Subscribe did not return within %v of yielding its error", endTimeout)
	}
}

func breakEarly(t *conformancetest.T, log eventlog.Log) {
	ctx, n := conformancetest.Context(t), conformancetest.NewNames(t)
	typ, id := n.Type("order"), n.ID("1")
	mustAppend(t, ctx, log, typ, id, 0, evs("e", 1, 10)...)
	mustAppend(t, ctx, log, typ, n.ID("2"), 0, evs("e", 1, 2)...)

	// Go itself panics if an iterator calls yield after the loop broke out.
	guard := func(what string, body func() int) {
		t.Helper()
		defer func() {
			if p := recover(); p != nil {
				t.Errorf("%s: %v", what, p)
			}
		}()
		if got := body(); got != 3 {
			t.Errorf("%s: the loop body ran %d times, want 3", what, got)
		}
	}
	guard("ReadEntity", func() int {
		k := 0
		for _, err := range log.ReadEntity(ctx, typ, id, 1) {
			if err != nil {
				t.Errorf("ReadEntity: %v", err)
			}
			if k++; k == 3 {
				break
			}
		}
		return k
	})
	guard("ReadType", func() int {
		k := 0
		for _, err := range log.ReadType(ctx, typ, 0) {
			if err != nil {
				t.Errorf("ReadType: %v", err)
			}
			if k++; k == 3 {
				break
			}
		}
		return k
	})

	// Subscribe must return once the consumer breaks, though it is live.
	done := make(chan int, 1)
	go func() {
		defer func() {
			if p := recover(); p != nil {
				t.Errorf("Subscribe: %v", p)
				done <- -1
			}
		}()
		k := 0
		for _, err := range log.Subscribe(ctx, typ, 0) {
			if err != nil {
				t.Errorf("Subscribe: %v", err)
			}
			if k++; k == 3 {
				break
			}
		}
		done <- k
	}()
	select {
	case k := <-done:
		if k != 3 && k != -1 {
			t.Errorf("Subscribe: the loop body ran %d times, want 3", k)
		}
	case <-time.After(endTimeout):
		t.Fatalf("Subscribe did not return within %v of the consumer breaking out", endTimeout)
	}

	if l, ok := log.(eventlog.IDLister); ok {
		for _, err := range l.EntityIDs(ctx, typ) {
			if err != nil {
				t.Errorf("EntityIDs: %v", err)
			}
			break
		}
	}

	mustAppend(t, ctx, log, typ, id, 10, ev("e-11", ""))
	if got, want := seqs(readEntity(t, ctx, log, typ, id, 1)), span(1, 11); !equalSeqs(got, want) {
		t.Errorf("after early breaks: got Seqs %v, want %v", got, want)
	}
}

func invalidArguments(t *conformancetest.T, log eventlog.Log) {
	ctx, n := conformancetest.Context(t), conformancetest.NewNames(t)
	typ, id := n.Type("order"), n.ID("1")
	for _, c := range []struct {
		name    string
		typ, id string
		events  []eventlog.Event
	}{
		{"empty type", "", id, []eventlog.Event{ev("e", "")}},
		{"empty id", typ, "", []eventlog.Event{ev("e", "")}},
		{"no events", typ, id, nil},
		{"unnamed event", typ, id, []eventlog.Event{ev("e", ""), {Data: []byte("x")}}},
	} {
		_, err := log.Append(ctx, c.typ, c.id, 0, c.events...)
		if !errors.Is(err, eventlog.ErrInvalid) {
			t.Errorf("%s: got %v, want an error matching ErrInvalid", c.name, err)
		}
		if errors.Is(err, eventlog.ErrConflict) {
			t.Errorf("%s: got %v, which also matches ErrConflict", c.name, err)
		}
	}
	if got := mustLastSeq(t, ctx, log, typ, id); got != 0 {
		t.Errorf("after invalid appends LastSeq is %d, want 0", got)
	}
}

func nameLimits(t *conformancetest.T, log eventlog.Log) {
	ctx, n := conformancetest.Context(t), conformancetest.NewNames(t)
	typ := conformancetest.Fill(n.Type("lim"), eventlog.MaxTypeLen)
	ids := []string{conformancetest.Fill(n.ID("a"), eventlog.MaxIDLen), conformancetest.Fill(n.ID("b"), eventlog.MaxIDLen), n.ID("short")}
	for _, id := range ids {
		if len(typ) != eventlog.MaxTypeLen || (id != ids[2] && len(id) != eventlog.MaxIDLen) || !utf8.ValidString(id) {
			t.Fatalf("the test built a %d-byte type and a %d-byte id", len(typ), len(id))
		}
		mustAppend(t, ctx, log, typ, id, 0, ev("e", "1"))
		mustAppend(t, ctx, log, typ, id, 1, ev("e", "2"), ev("e", "3"))
		recs := readEntity(t, ctx, log, typ, id, 1)
		if got := seqs(recs); !equalSeqs(got, span(1, 3)) {
			t.Errorf("ReadEntity of a %d-byte id: Seqs %v, want 1..3", len(id), got)
		}
		for _, r := range recs {
			if r.EntityType != typ || r.EntityID != id {
				t.Errorf("a record of a %d-byte id names another stream: %d and %d bytes", len(id), len(r.EntityType), len(r.EntityID))
				break
			}
		}
		if got := mustLastSeq(t, ctx, log, typ, id); got != 3 {
			t.Errorf("LastSeq of a %d-byte id: %d, want 3", len(id), got)
		}
	}
	byID := make(map[string]int)
	for _, r := range readType(t, ctx, log, typ, 0) {
		byID[r.EntityID]++
	}
	for _, id := range ids {
		if byID[id] != 3 {
			t.Errorf("ReadType of a %d-byte type: %d events of a %d-byte id, want 3", len(typ), byID[id], len(id))
		}
	}
	if l, ok := log.(eventlog.IDLister); ok {
		listed, err := conformancetest.Collect(t, l.EntityIDs(ctx, typ))
		if err != nil {
			t.Errorf("EntityIDs of a %d-byte type: %v", len(typ), err)
		}
		slices.Sort(listed)
		want := slices.Clone(ids)
		slices.Sort(want)
		if !slices.Equal(listed, want) {
			t.Errorf("EntityIDs of a %d-byte type: %d ids, want the %d appended to", len(typ), len(listed), len(want))
		}
	}

	// One byte over.
	longID := conformancetest.Fill(n.ID("over"), eventlog.MaxIDLen+1)
	longType := conformancetest.Fill(n.Type("over"), eventlog.MaxTypeLen+1)
	check := func(what string, err error) {
		t.Helper()
		if !errors.Is(err, eventlog.ErrInvalid) {
			t.Errorf("%s: got %v, want an error matching ErrInvalid", what, err)
			return
		}
		if len(err.Error()) > 400 {
			t.Errorf("%s: a %d-byte message, want the id quoted as a bounded prefix", what, len(err.Error()))
		}
	}
	_, err := log.Append(ctx, typ, longID, 0, ev("e", ""))
	check("Append of a 256-byte id", err)
	_, err = log.Append(ctx, longType, ids[2], 0, ev("e", ""))
	check("Append of a 256-byte type", err)
	_, err = log.LastSeq(ctx, typ, longID)
	check("LastSeq of a 256-byte id", err)
	_, err = conformancetest.Collect(t, log.ReadEntity(ctx, typ, longID, 1))
	check("ReadEntity of a 256-byte id", err)
	_, err = conformancetest.Collect(t, log.ReadType(ctx, longType, 0))
	check("ReadType of a 256-byte type", err)
	_, err = log.Append(ctx, typ, "bad\xffutf8", 0, ev("e", ""))
	check("Append of an id that is not UTF-8", err)
	_, err = log.Append(ctx, typ, "nul\x00", 0, ev("e", ""))
	check("Append of an id with a NUL byte", err)
	if got := mustLastSeq(t, ctx, log, typ, ids[2]); got != 3 {
		t.Errorf("refused appends changed a stream: LastSeq %d, want 3", got)
	}
}

// deleter returns log as a Deleter, or reports that the capability is
// missing and returns nil.
func deleter(t TB, log eventlog.Log) eventlog.Deleter {
	d, ok := log.(eventlog.Deleter)
	if !ok {
		t.Logf("%T does not implement eventlog.Deleter; case not applicable", log)
	}
	return d
}

func deleteTo(t *conformancetest.T, log eventlog.Log) {
	d := deleter(t, log)
	if d == nil {
		return
	}
	ctx, n := conformancetest.Context(t), conformancetest.NewNames(t)
	typ, id := n.Type("order"), n.ID("1")
	mustAppend(t, ctx, log, typ, id, 0, evs("e", 1, 5)...)

	if err := d.DeleteTo(ctx, typ, id, 0); err != nil {
		t.Fatalf("DeleteTo 0: %v", err)
	}
	if got, want := seqs(readEntity(t, ctx, log, typ, id, 1)), span(1, 5); !equalSeqs(got, want) {
		t.Errorf("DeleteTo 0 must delete nothing: got Seqs %v, want %v", got, want)
	}
	if err := d.DeleteTo(ctx, typ, id, 3); err != nil {
		t.Fatalf("DeleteTo 3: %v", err)
	}
	for _, from := range []uint64{0, 1, 4} {
		if got, want := seqs(readEntity(t, ctx, log, typ, id, from)), span(4, 5); !equalSeqs(got, want) {
			t.Errorf("after DeleteTo 3, ReadEntity from %d: got Seqs %v, want %v", from, got, want)
		}
	}
	if got := mustLastSeq(t, ctx, log, typ, id); got != 5 {
		t.Errorf("after DeleteTo 3: LastSeq %d, want 5", got)
	}
	// Deleting less than already deleted changes nothing.
	if err := d.DeleteTo(ctx, typ, id, 2); err != nil {
		t.Fatalf("DeleteTo 2 after DeleteTo 3: %v", err)
	}
	if got, want := seqs(readEntity(t, ctx, log, typ, id, 1)), span(4, 5); !equalSeqs(got, want) {
		t.Errorf("after DeleteTo 2: got Seqs %v, want %v", got, want)
	}
	for _, expected := range []uint64{0, 3} {
		_, err := log.Append(ctx, typ, id, expected, ev("stale", ""))
		checkConflict(t, err, typ, id, expected, 5)
	}
	mustAppend(t, ctx, log, typ, id, 5, ev("e-6", ""))
	if got, want := seqs(readEntity(t, ctx, log, typ, id, 1)), span(4, 6); !equalSeqs(got, want) {
		t.Errorf("after appending at 5: got Seqs %v, want %v", got, want)
	}
	// Deleting from a stream that does not exist is not an error.
	if err := d.DeleteTo(ctx, typ, n.ID("unknown"), 3); err != nil {
		t.Errorf("DeleteTo of an unknown stream: %v", err)
	}
}

func deleteAll(t *conformancetest.T, log eventlog.Log) {
	d := deleter(t, log)
	if d == nil {
		return
	}
	ctx, n := conformancetest.Context(t), conformancetest.NewNames(t)
	typ := n.Type("order")
	for _, c := range []struct {
		name string
		to   uint64
	}{{"exact", 3}, {"beyond", 100}} {
		id := n.ID(c.name)
		mustAppend(t, ctx, log, typ, id, 0, evs("e", 1, 3)...)
		if err := d.DeleteTo(ctx, typ, id, c.to); err != nil {
			t.Fatalf("DeleteTo %d: %v", c.to, err)
		}
		if recs := readEntity(t, ctx, log, typ, id, 1); len(recs) != 0 {
			t.Errorf("after DeleteTo %d of 3 events: got Seqs %v, want none", c.to, seqs(recs))
		}
		if got := mustLastSeq(t, ctx, log, typ, id); got != 3 {
			t.Errorf("after DeleteTo %d: LastSeq %d, want 3", c.to, got)
		}
		_, err := log.Append(ctx, typ, id, 0, ev("again", ""))
		checkConflict(t, err, typ, id, 0, 3)
		mustAppend(t, ctx, log, typ, id, 3, ev("e-4", ""))
		if got, want := seqs(readEntity(t, ctx, log, typ, id, 1)), span(4, 4); !equalSeqs(got, want) {
			t.Errorf("after appending at 3: got Seqs %v, want %v", got, want)
		}
	}
}

func deleteHidesFromReadType(t *conformancetest.T, log eventlog.Log) {
	d := deleter(t, log)
	if d == nil {
		return
	}
	ctx, n := conformancetest.Context(t), conformancetest.NewNames(t)
	typ, x, y := n.Type("order"), n.ID("x"), n.ID("y")
	mustAppend(t, ctx, log, typ, x, 0, evs("e", 1, 2)...)
	mustAppend(t, ctx, log, typ, y, 0, evs("e", 1, 2)...)
	mustAppend(t, ctx, log, typ, x, 2, evs("e", 3, 2)...)
	if err := d.DeleteTo(ctx, typ, x, 3); err != nil {
		t.Fatalf("DeleteTo 3: %v", err)
	}
	checkTypeRead(t, "ReadType after DeleteTo", typ, readType(t, ctx, log, typ, 0),
		[]key{{y, 1}, {y, 2}, {x, 4}})
}

func entityIDs(t *conformancetest.T, log eventlog.Log) {
	l, ok := log.(eventlog.IDLister)
	if !ok {
		t.Logf("%T does not implement eventlog.IDLister; case not applicable", log)
		return
	}
	ctx, n := conformancetest.Context(t), conformancetest.NewNames(t)
	typ, other := n.Type("order"), n.Type("other")
	want := []string{n.ID("a"), n.ID("b"), n.ID("c")}
	for i, id := range want {
		mustAppend(t, ctx, log, typ, id, 0, evs("e", 1, i+1)...)
	}
	mustAppend(t, ctx, log, typ, want[0], 1, ev("e-2", ""))
	mustAppend(t, ctx, log, other, want[0], 0, ev("e", ""))
	mustAppend(t, ctx, log, other, n.ID("d"), 0, ev("e", ""))
	// A refused append creates no entity.
	_, _ = log.Append(ctx, typ, n.ID("refused"), 7, ev("e", ""))

	got := conformancetest.MustCollect(t, "EntityIDs", l.EntityIDs(ctx, typ))
	slices.Sort(got)
	slices.Sort(want)
	if !slices.Equal(got, want) {
		t.Errorf("got %v, want %v", got, want)
	}
	if got := conformancetest.MustCollect(t, "EntityIDs of an unknown type", l.EntityIDs(ctx, n.Type("unknown"))); len(got) != 0 {
		t.Errorf("a type without events: got %v, want none", got)
	}
}

func entityTypes(t *conformancetest.T, log eventlog.Log) {
	l, ok := log.(eventlog.TypeLister)
	if !ok {
		t.Logf("%T does not implement eventlog.TypeLister; case not applicable", log)
		return
	}
	ctx, n := conformancetest.Context(t), conformancetest.NewNames(t)
	a, b, readOnly, refused := n.Type("a"), n.Type("b"), n.Type("read"), n.Type("refused")
	mustAppend(t, ctx, log, a, n.ID("1"), 0, evs("e", 1, 2)...)
	mustAppend(t, ctx, log, a, n.ID("2"), 0, ev("e", ""))
	mustAppend(t, ctx, log, b, n.ID("1"), 0, ev("e", ""))
	// Reading a type, or a refused append to it, makes no type.
	conformancetest.MustCollect(t, "ReadType of a type without events", log.ReadType(ctx, readOnly, 0))
	_, _ = log.Append(ctx, refused, n.ID("1"), 7, ev("e", ""))

	// The log may hold the types of other cases: look at this case's only.
	seen := map[string]int{}
	for _, typ := range conformancetest.MustCollect(t, "EntityTypes", l.EntityTypes(ctx)) {
		seen[typ]++
	}
	for _, typ := range []string{a, b} {
		if seen[typ] != 1 {
			t.Errorf("type %q listed %d times, want once", typ, seen[typ])
		}
	}
	for _, typ := range []string{readOnly, refused} {
		if seen[typ] != 0 {
			t.Errorf("type %q has no event but is listed", typ)
		}
	}
}
