package eventlogtest

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"runtime"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
	"unicode/utf8"

	"math/rand/v2"

	"github.com/eventsourced-go/eventsourced/eventlog"
)

// Cases returns the conformance cases, in the order [Run] runs them.
func Cases() []Case {
	return []Case{
		{"ReplayAll", "ReadEntity from 1 (or 0) yields every event of the stream in Seq order 1, 2, 3 ... and ends at its end", replayAll},
		{"ReplayFromSeq", "ReadEntity from a Seq yields exactly the events with Seq >= from", replayFromSeq},
		{"ReplayBeyondEnd", "ReadEntity from beyond the last Seq yields nothing and no error", replayBeyondEnd},
		{"ReplayUnknownEntity", "ReadEntity of a stream that does not exist yields nothing and no error", replayUnknownEntity},
		{"LastSeq", "LastSeq returns the stream's last Seq without a replay, 0 for an unknown stream", lastSeq},
		{"StreamsKeyedByTypeAndID", "a stream is (entity type, entity id): the same id under two types is two streams", streamsKeyedByTypeAndID},
		{"AppendAtomic", "append is atomic: a conflicting multi-event append stores none of its events", appendAtomic},
		{"GuardedFirstWrite", "the first write is guarded: of two creators with expected 0 exactly one wins, the other gets a ConflictError with Actual 1", guardedFirstWrite},
		{"StaleExpectedConflicts", "an append with a stale expected Seq fails with a *ConflictError matching ErrConflict, Expected and Actual filled in", staleExpectedConflicts},
		{"ExpectedAheadConflicts", "an append with an expected Seq ahead of the stream conflicts", expectedAheadConflicts},
		{"ConcurrentAppenders", "concurrent appenders to one entity: exactly one wins each Seq and the stream has no gaps", concurrentAppenders},
		{"ManyEntitiesInterleaved", "each stream keeps its own contiguous Seq 1..n however appends to many entities interleave", manyEntitiesInterleaved},
		{"RecordFields", "records carry the appended EntityType, EntityID, Seq, Name, Revision, Data and Metadata, a non-zero Position and Time", recordFields},
		{"AppendReturnsPosition", "Append returns the Position of its last event, the one reads report", appendReturnsPosition},
		{"EmptyDataNilMetadata", "empty data and nil or empty metadata round-trip as empty", emptyDataNilMetadata},
		{"ReadTypeOrderAndFilter", "ReadType yields every event of its type and only those, in strictly increasing Position order", readTypeOrderAndFilter},
		{"ReadTypeResume", "ReadType after any Position yields exactly the events after it: no repeats, no skips", readTypeResume},
		{"SubscribeGapSafe", "a live reader by Position sees every event exactly once, in increasing Position order, while many writers commit concurrently", subscribeGapSafe},
		{"SubscribeLive", "Subscribe yields events appended after it started and ends with ctx.Err() when ctx is canceled", subscribeLive},
		{"CanceledContext", "a read with a canceled ctx yields an error matching context.Canceled and ends", canceledContext},
		{"BreakEarly", "a consumer may break out of any iterator early and the log stays usable", breakEarly},
		{"InvalidArguments", "Append with an empty type or id, no events or an unnamed event fails with ErrInvalid and stores nothing", invalidArguments},
		{"NameLimits", "types and ids of MaxTypeLen and MaxIDLen bytes of any UTF-8 (unicode, dots, spaces, '*', '>') work in every call; one byte more is refused with ErrInvalid and a message that quotes a bounded prefix", nameLimits},
		{"DeleteTo", "Deleter: after DeleteTo k, reads start at k+1, LastSeq is unchanged and appends continue from it", deleteTo},
		{"DeleteAll", "Deleter: deleting every event keeps LastSeq, and the next append must still expect it", deleteAll},
		{"DeleteHidesFromReadType", "Deleter: deleted events are gone for readers by type too", deleteHidesFromReadType},
		{"EntityIDs", "IDLister: EntityIDs yields exactly the ids of the type's entities, once each", entityIDs},
	}
}

func replayAll(t TB, log eventlog.Log) {
	const rule = "ReadEntity from 1 (or 0) yields every event of the stream in Seq order and ends at its end"
	ctx, n := testContext(t), newNames(t)
	typ, id := n.typ("order"), n.id("1")
	mustAppend(t, ctx, log, typ, id, 0, evs("e", 1, 1)...)
	mustAppend(t, ctx, log, typ, id, 1, evs("e", 2, 2)...)
	for _, from := range []uint64{0, 1} {
		recs := readEntity(t, ctx, log, typ, id, from)
		if got, want := seqs(recs), span(1, 3); !equalSeqs(got, want) {
			ruleErrorf(t, rule, "from %d: got Seqs %v, want %v", from, got, want)
			continue
		}
		for i, r := range recs {
			if want := fmt.Sprintf("e-%d", i+1); r.Name != want || string(r.Data) != want {
				ruleErrorf(t, rule, "from %d: record %d is %q/%q, want %q", from, i, r.Name, r.Data, want)
			}
		}
	}
}

func replayFromSeq(t TB, log eventlog.Log) {
	const rule = "ReadEntity from a Seq yields exactly the events with Seq >= from"
	ctx, n := testContext(t), newNames(t)
	typ, id := n.typ("order"), n.id("1")
	mustAppend(t, ctx, log, typ, id, 0, evs("e", 1, 5)...)
	for _, from := range []uint64{2, 3, 5} {
		recs := readEntity(t, ctx, log, typ, id, from)
		if got, want := seqs(recs), span(from, 5); !equalSeqs(got, want) {
			ruleErrorf(t, rule, "from %d: got Seqs %v, want %v", from, got, want)
			continue
		}
		if r := recs[0]; r.Name != fmt.Sprintf("e-%d", from) {
			ruleErrorf(t, rule, "from %d: first record is %q", from, r.Name)
		}
	}
}

func replayBeyondEnd(t TB, log eventlog.Log) {
	const rule = "ReadEntity from beyond the last Seq yields nothing and no error"
	ctx, n := testContext(t), newNames(t)
	typ, id := n.typ("order"), n.id("1")
	mustAppend(t, ctx, log, typ, id, 0, evs("e", 1, 5)...)
	for _, from := range []uint64{6, 100, 1 << 62} {
		if recs := readEntity(t, ctx, log, typ, id, from); len(recs) != 0 {
			ruleErrorf(t, rule, "from %d: got Seqs %v", from, seqs(recs))
		}
	}
}

func replayUnknownEntity(t TB, log eventlog.Log) {
	const rule = "ReadEntity of a stream that does not exist yields nothing and no error"
	ctx, n := testContext(t), newNames(t)
	typ := n.typ("order")
	mustAppend(t, ctx, log, typ, n.id("known"), 0, ev("e", ""))
	for _, s := range [][2]string{{typ, n.id("unknown")}, {n.typ("unknown"), n.id("known")}} {
		if recs := readEntity(t, ctx, log, s[0], s[1], 1); len(recs) != 0 {
			ruleErrorf(t, rule, "%s/%s: got Seqs %v", s[0], s[1], seqs(recs))
		}
	}
}

func lastSeq(t TB, log eventlog.Log) {
	const rule = "LastSeq returns the stream's last Seq without a replay, 0 for an unknown stream"
	ctx, n := testContext(t), newNames(t)
	typ, a, b := n.typ("order"), n.id("a"), n.id("b")
	if got := mustLastSeq(t, ctx, log, typ, a); got != 0 {
		ruleErrorf(t, rule, "unknown stream: got %d, want 0", got)
	}
	mustAppend(t, ctx, log, typ, a, 0, ev("e", ""))
	if got := mustLastSeq(t, ctx, log, typ, a); got != 1 {
		ruleErrorf(t, rule, "after 1 event: got %d, want 1", got)
	}
	mustAppend(t, ctx, log, typ, a, 1, evs("e", 2, 3)...)
	if got := mustLastSeq(t, ctx, log, typ, a); got != 4 {
		ruleErrorf(t, rule, "after 4 events: got %d, want 4", got)
	}
	if got := mustLastSeq(t, ctx, log, typ, b); got != 0 {
		ruleErrorf(t, rule, "another entity of the same type: got %d, want 0", got)
	}
	if got := mustLastSeq(t, ctx, log, n.typ("other"), a); got != 0 {
		ruleErrorf(t, rule, "the same id under another type: got %d, want 0", got)
	}
}

func streamsKeyedByTypeAndID(t TB, log eventlog.Log) {
	const rule = "a stream is (entity type, entity id): the same id under two types is two streams"
	ctx, n := testContext(t), newNames(t)
	ta, tb, id := n.typ("a"), n.typ("b"), n.id("x")
	mustAppend(t, ctx, log, ta, id, 0, ev("a1", "a1"), ev("a2", "a2"))
	if _, err := log.Append(ctx, tb, id, 0, ev("b1", "b1")); err != nil {
		ruleFatalf(t, rule, "first append to %s/%s: %v", tb, id, err)
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
				ruleErrorf(t, rule, "read of %s/%s yielded a record of %s/%s", c.typ, id, r.EntityType, r.EntityID)
			}
		}
		if !slices.Equal(got, c.names) {
			ruleErrorf(t, rule, "%s/%s: got events %v, want %v", c.typ, id, got, c.names)
		}
	}
}

func appendAtomic(t TB, log eventlog.Log) {
	const rule = "append is atomic: a conflicting multi-event append must store none of its events"
	ctx, n := testContext(t), newNames(t)
	typ, id := n.typ("order"), n.id("1")
	mustAppend(t, ctx, log, typ, id, 0, evs("ok", 1, 2)...)
	for _, expected := range []uint64{0, 1, 3} {
		_, err := log.Append(ctx, typ, id, expected, evs("bad", 1, 3)...)
		conflict(t, rule, err)
	}
	if got := mustLastSeq(t, ctx, log, typ, id); got != 2 {
		ruleErrorf(t, rule, "after refused appends: LastSeq %d, want 2", got)
	}
	recs := readEntity(t, ctx, log, typ, id, 1)
	for _, r := range recs {
		if r.Name != "ok-1" && r.Name != "ok-2" {
			ruleErrorf(t, rule, "a refused append stored %q at Seq %d", r.Name, r.Seq)
		}
	}
	// A conflicting append to a stream that does not exist creates nothing.
	fresh := n.id("fresh")
	_, err := log.Append(ctx, typ, fresh, 5, evs("bad", 1, 3)...)
	conflict(t, rule, err)
	if got := mustLastSeq(t, ctx, log, typ, fresh); got != 0 {
		ruleErrorf(t, rule, "refused append to a new stream: LastSeq %d, want 0", got)
	}
	// A good multi-event append stores all of its events, contiguously.
	mustAppend(t, ctx, log, typ, id, 2, evs("ok", 3, 3)...)
	recs = readEntity(t, ctx, log, typ, id, 1)
	if got, want := seqs(recs), span(1, 5); !equalSeqs(got, want) {
		ruleErrorf(t, "append is atomic: a successful multi-event append stores all of its events", "got Seqs %v, want %v", got, want)
	}
}

func guardedFirstWrite(t TB, log eventlog.Log) {
	const rule = "the first write is guarded: of two creators with expected 0 exactly one wins, the other gets a ConflictError with Actual 1"
	ctx, n := testContext(t), newNames(t)
	typ := n.typ("account")
	for round := range 10 {
		id := n.id(strconv.Itoa(round))
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
			ruleFatalf(t, rule, "%s: both creators won", id)
		case errs[0] == nil:
			winner = 0
		case errs[1] == nil:
			winner = 1
		default:
			ruleFatalf(t, rule, "%s: no creator won: %v; %v", id, errs[0], errs[1])
		}
		checkConflict(t, rule, errs[1-winner], typ, id, 0, 1)
		recs := readEntity(t, ctx, log, typ, id, 1)
		if len(recs) != 1 || recs[0].Name != fmt.Sprintf("created-by-%d", winner) {
			var got []string
			for _, r := range recs {
				got = append(got, r.Name)
			}
			ruleErrorf(t, rule, "%s: stream holds %v, want only the winner's event created-by-%d", id, got, winner)
		}
	}
}

func staleExpectedConflicts(t TB, log eventlog.Log) {
	const rule = "an append with a stale expected Seq fails with a *ConflictError matching ErrConflict, Expected and Actual filled in"
	ctx, n := testContext(t), newNames(t)
	typ, id := n.typ("account"), n.id("1")
	mustAppend(t, ctx, log, typ, id, 0, evs("e", 1, 3)...)
	for _, expected := range []uint64{0, 1, 2} {
		_, err := log.Append(ctx, typ, id, expected, ev("stale", ""))
		checkConflict(t, rule, err, typ, id, expected, 3)
		if err != nil && err.Error() == "" {
			ruleErrorf(t, rule, "the conflict's message is empty")
		}
	}
	if got := mustLastSeq(t, ctx, log, typ, id); got != 3 {
		ruleErrorf(t, rule, "after stale appends: LastSeq %d, want 3", got)
	}
}

func expectedAheadConflicts(t TB, log eventlog.Log) {
	const rule = "an append with an expected Seq ahead of the stream conflicts"
	ctx, n := testContext(t), newNames(t)
	typ, id, fresh := n.typ("account"), n.id("1"), n.id("fresh")
	mustAppend(t, ctx, log, typ, id, 0, evs("e", 1, 2)...)
	_, err := log.Append(ctx, typ, id, 5, ev("ahead", ""))
	checkConflict(t, rule, err, typ, id, 5, 2)
	_, err = log.Append(ctx, typ, id, 3, ev("ahead", ""))
	checkConflict(t, rule, err, typ, id, 3, 2)
	_, err = log.Append(ctx, typ, fresh, 1, ev("ahead", ""))
	checkConflict(t, rule, err, typ, fresh, 1, 0)
	if got := mustLastSeq(t, ctx, log, typ, id); got != 2 {
		ruleErrorf(t, rule, "after refused appends: LastSeq %d, want 2", got)
	}
	if got := mustLastSeq(t, ctx, log, typ, fresh); got != 0 {
		ruleErrorf(t, rule, "after a refused first append: LastSeq %d, want 0", got)
	}
}

func concurrentAppenders(t TB, log eventlog.Log) {
	const rule = "concurrent appenders to one entity: exactly one wins each Seq and the stream has no gaps"
	const writers, each, maxAttempts = 50, 5, 100_000
	ctx, n := testContext(t), newNames(t)
	typ, id := n.typ("counter"), n.id("hot")

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
					t.Errorf("rule: %s: writer %d landed %d events in %d attempts (ctx: %v)", rule, w, landed, attempt, ctx.Err())
					return
				}
				last, err := log.LastSeq(ctx, typ, id)
				if err != nil {
					t.Errorf("rule: %s: LastSeq: %v", rule, err)
					return
				}
				runtime.Gosched() // invite another writer in between
				pos, err := log.Append(ctx, typ, id, last, ev(name, name))
				if err != nil {
					conflicts.Add(1)
					var ce *eventlog.ConflictError
					if !errors.As(err, &ce) {
						t.Errorf("rule: %s: Append at %d: %v, want success or a *ConflictError", rule, last, err)
						return
					}
					if ce.Expected != last || ce.Actual <= last {
						t.Errorf("rule: a ConflictError carries the expected Seq and the stream's actual last Seq: appending at %d got Expected %d Actual %d, want Expected %d and Actual > %d",
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
			ruleErrorf(t, rule, "%d successful appends returned Position %d", k, pos)
		}
	}
	if got := mustLastSeq(t, ctx, log, typ, id); got != writers*each {
		ruleErrorf(t, rule, "LastSeq %d, want %d", got, writers*each)
	}
	recs := readEntity(t, ctx, log, typ, id, 1)
	if got, want := seqs(recs), span(1, writers*each); !equalSeqs(got, want) {
		ruleFatalf(t, rule, "got %d events with Seqs %v, want Seqs 1..%d", len(recs), got, writers*each)
	}
	perWriter := make(map[string]int)
	for _, r := range recs {
		perWriter[r.Name]++
	}
	for w := range writers {
		if got := perWriter["w"+strconv.Itoa(w)]; got != each {
			ruleErrorf(t, rule, "writer %d won %d appends and the stream holds %d of its events", w, each, got)
		}
	}
}

func manyEntitiesInterleaved(t TB, log eventlog.Log) {
	const rule = "each stream keeps its own contiguous Seq 1..n however appends to many entities interleave"
	const entities, rounds = 20, 6
	ctx, n := testContext(t), newNames(t)
	typ := n.typ("cart")
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
			mustAppend(t, ctx, log, typ, n.id(strconv.Itoa(e)), last[e], batch...)
			last[e] += uint64(size)
		}
	}
	for e := range entities {
		id := n.id(strconv.Itoa(e))
		if got := mustLastSeq(t, ctx, log, typ, id); got != last[e] {
			ruleErrorf(t, rule, "%s: LastSeq %d, want %d", id, got, last[e])
		}
		recs := readEntity(t, ctx, log, typ, id, 1)
		if got, want := seqs(recs), span(1, last[e]); !equalSeqs(got, want) {
			ruleErrorf(t, rule, "%s: got Seqs %v, want %v", id, got, want)
			continue
		}
		for _, r := range recs {
			if want := fmt.Sprintf("%d:%d", e, r.Seq); string(r.Data) != want || r.EntityID != id {
				ruleErrorf(t, rule, "%s Seq %d: got data %q of %s, want %q", id, r.Seq, r.Data, r.EntityID, want)
				break
			}
		}
	}
}

func recordFields(t TB, log eventlog.Log) {
	const rule = "records carry the appended EntityType, EntityID, Seq, Name, Revision, Data and Metadata, a non-zero Position and Time"
	ctx, n := testContext(t), newNames(t)
	typ, id := n.typ("account"), n.id("1")
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
			ruleErrorf(t, rule, "%s: got %d records, want 2", via, len(recs))
			return
		}
		for i, want := range []eventlog.Event{first, second} {
			r := recs[i]
			if r.EntityType != typ || r.EntityID != id || r.Seq != uint64(i+1) {
				ruleErrorf(t, rule, "%s: record %d is %s/%s Seq %d, want %s/%s Seq %d", via, i, r.EntityType, r.EntityID, r.Seq, typ, id, i+1)
			}
			if r.Name != want.Name || r.Revision != want.Revision {
				ruleErrorf(t, rule, "%s: record %d is %q rev %d, want %q rev %d", via, i, r.Name, r.Revision, want.Name, want.Revision)
			}
			if string(r.Data) != string(want.Data) {
				ruleErrorf(t, rule, "%s: record %d data %v, want %v", via, i, r.Data, want.Data)
			}
			if !maps.Equal(r.Metadata, want.Metadata) {
				ruleErrorf(t, rule, "%s: record %d metadata %v, want %v", via, i, r.Metadata, want.Metadata)
			}
			if r.Position == 0 {
				ruleErrorf(t, rule, "%s: record %d has Position 0", via, i)
			}
			if r.Time.IsZero() {
				ruleErrorf(t, rule, "%s: record %d has a zero Time", via, i)
			} else if d := r.Time.Sub(before); d < -time.Hour || d > time.Hour {
				ruleErrorf(t, rule, "%s: record %d Time %v is far from the append at %v", via, i, r.Time, before)
			}
		}
		if recs[0].Position >= recs[1].Position {
			ruleErrorf(t, rule, "%s: Positions %d then %d do not increase", via, recs[0].Position, recs[1].Position)
		}
	}
	check("ReadEntity", readEntity(t, ctx, log, typ, id, 1))
	check("ReadType", readType(t, ctx, log, typ, 0))
}

func appendReturnsPosition(t TB, log eventlog.Log) {
	const rule = "Append returns the Position of its last event, the one reads report"
	ctx, n := testContext(t), newNames(t)
	typ, id := n.typ("account"), n.id("1")
	p1 := mustAppend(t, ctx, log, typ, id, 0, ev("a", ""))
	p2 := mustAppend(t, ctx, log, typ, id, 1, evs("b", 1, 3)...)
	p3 := mustAppend(t, ctx, log, typ, n.id("2"), 0, evs("c", 1, 2)...)
	if !(p1 < p2 && p2 < p3) {
		ruleErrorf(t, rule, "successive appends returned Positions %d, %d, %d, want increasing", p1, p2, p3)
	}
	recs := readEntity(t, ctx, log, typ, id, 1)
	if len(recs) != 4 {
		ruleFatalf(t, rule, "got %d records, want 4", len(recs))
	}
	if recs[0].Position != p1 || recs[3].Position != p2 {
		ruleErrorf(t, rule, "Append returned %d and %d, records have Positions %d and %d", p1, p2, recs[0].Position, recs[3].Position)
	}
	for i := 1; i < len(recs); i++ {
		if recs[i].Position <= recs[i-1].Position {
			ruleErrorf(t, rule, "the events of one append have Positions %d then %d", recs[i-1].Position, recs[i].Position)
		}
	}
}

func emptyDataNilMetadata(t TB, log eventlog.Log) {
	const rule = "empty data and nil or empty metadata round-trip as empty"
	ctx, n := testContext(t), newNames(t)
	typ, id := n.typ("ping"), n.id("1")
	mustAppend(t, ctx, log, typ, id, 0,
		eventlog.Event{Name: "Nil"},
		eventlog.Event{Name: "Empty", Data: []byte{}, Metadata: map[string]string{}},
		eventlog.Event{Name: "EmptyValue", Metadata: map[string]string{"k": ""}},
	)
	recs := readEntity(t, ctx, log, typ, id, 1)
	if len(recs) != 3 {
		ruleFatalf(t, rule, "got %d records, want 3", len(recs))
	}
	for _, r := range recs[:2] {
		if len(r.Data) != 0 || len(r.Metadata) != 0 {
			ruleErrorf(t, rule, "%s: got data %q metadata %v, want both empty", r.Name, r.Data, r.Metadata)
		}
	}
	if r := recs[2]; len(r.Data) != 0 || !maps.Equal(r.Metadata, map[string]string{"k": ""}) {
		ruleErrorf(t, rule, "%s: got data %q metadata %v, want empty data and metadata k=\"\"", r.Name, r.Data, r.Metadata)
	}
}

// appendMixed appends to three entities of type a and two of type b,
// interleaved, in batches of 1 to 3. It returns the keys appended to each
// type in append order.
func appendMixed(t TB, ctx context.Context, log eventlog.Log, n names, a, b string) (keysA, keysB []key) {
	t.Helper()
	last := make(map[string]uint64)
	for r := range 8 {
		for e := range 5 {
			typ, keys := a, &keysA
			if e >= 3 {
				typ, keys = b, &keysB
			}
			id := n.id(strconv.Itoa(e))
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
func checkTypeRead(t TB, rule, via, typ string, recs []eventlog.Record, want []key) {
	t.Helper()
	seen := make(map[key]int)
	for i, r := range recs {
		if r.EntityType != typ {
			ruleErrorf(t, rule, "%s yielded %s of type %s", via, keyOf(r), r.EntityType)
		}
		if i > 0 && r.Position <= recs[i-1].Position {
			ruleErrorf(t, rule, "%s yielded Position %d after %d", via, r.Position, recs[i-1].Position)
		}
		seen[keyOf(r)]++
	}
	for _, k := range want {
		switch seen[k] {
		case 0:
			ruleErrorf(t, rule, "%s skipped %s", via, k)
		case 1:
		default:
			ruleErrorf(t, rule, "%s yielded %s %d times", via, k, seen[k])
		}
		delete(seen, k)
	}
	for k := range seen {
		ruleErrorf(t, rule, "%s yielded %s, which was not appended to %s", via, k, typ)
	}
	// Within one entity, Position order is Seq order.
	lastSeq := make(map[string]uint64)
	for _, r := range recs {
		if r.Seq <= lastSeq[r.EntityID] {
			ruleErrorf(t, rule, "%s yielded %s#%d after Seq %d", via, r.EntityID, r.Seq, lastSeq[r.EntityID])
		}
		lastSeq[r.EntityID] = r.Seq
	}
}

func readTypeOrderAndFilter(t TB, log eventlog.Log) {
	const rule = "ReadType yields every event of its type and only those, in strictly increasing Position order"
	ctx, n := testContext(t), newNames(t)
	a, b := n.typ("a"), n.typ("b")
	keysA, keysB := appendMixed(t, ctx, log, n, a, b)
	checkTypeRead(t, rule, "ReadType(a, 0)", a, readType(t, ctx, log, a, 0), keysA)
	checkTypeRead(t, rule, "ReadType(b, 0)", b, readType(t, ctx, log, b, 0), keysB)
	for _, after := range []uint64{lastPosition(t, ctx, log, a), 1 << 62} {
		if recs := readType(t, ctx, log, a, after); len(recs) != 0 {
			ruleErrorf(t, rule, "ReadType after %d, beyond the last Position, yielded %d records", after, len(recs))
		}
	}
	if recs := readType(t, ctx, log, n.typ("unknown"), 0); len(recs) != 0 {
		ruleErrorf(t, rule, "ReadType of a type without events yielded %d records", len(recs))
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

func readTypeResume(t TB, log eventlog.Log) {
	const rule = "ReadType after any Position yields exactly the events after it: no repeats, no skips"
	ctx, n := testContext(t), newNames(t)
	a, b := n.typ("a"), n.typ("b")
	keysA, _ := appendMixed(t, ctx, log, n, a, b)
	all := readType(t, ctx, log, a, 0)
	others := readType(t, ctx, log, b, 0)
	// The appends were sequential, so Position order is append order.
	allKeys := make([]key, len(all))
	for i, r := range all {
		allKeys[i] = keyOf(r)
	}
	if d := diffKeys(allKeys, keysA); d != "" {
		ruleFatalf(t, "Positions grow with commit order: ReadType yields sequential appends in append order",
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
			ruleErrorf(t, rule, "after %d: %s", after, d)
		}
	}
}

func subscribeGapSafe(t TB, log eventlog.Log) {
	const rule = "a live reader by Position sees every event exactly once, in increasing Position order, while many writers commit concurrently"
	const writers, entitiesPerWriter, appendsPerWriter = 8, 4, 30
	ctx, n := testContext(t), newNames(t)
	typ := n.typ("gap")
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
				id := n.id(fmt.Sprintf("%d_%d", w, e))
				size := 1 + i%3
				pos, err := log.Append(ctx, typ, id, last[e], evs("e", int(last[e])+1, size)...)
				if err != nil {
					t.Errorf("rule: %s: writer %d: Append(%s, expected %d): %v", rule, w, id, last[e], err)
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
			ruleFatalf(t, rule, "timed out after %d of %d events", len(seen), len(want))
		}
		if it.err != nil {
			ruleFatalf(t, rule, "Subscribe yielded %v after %d of %d events", it.err, len(seen), len(want))
		}
		r := it.rec
		if r.Position <= prev {
			ruleErrorf(t, rule, "Subscribe yielded Position %d after %d", r.Position, prev)
		}
		prev = r.Position
		seen[keyOf(r)]++
		if !want[keyOf(r)] {
			ruleErrorf(t, rule, "Subscribe yielded %s, which was not appended", keyOf(r))
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
			ruleErrorf(t, rule, "Subscribe yielded %s %d times", k, seen[k])
		}
	}
	if len(missing) > 0 {
		ruleErrorf(t, rule, "Subscribe reached the last Position %d but skipped %d of %d events, such as %v", maxPos, len(missing), len(want), missing[0])
	}
}

func subscribeLive(t TB, log eventlog.Log) {
	const rule = "Subscribe yields events appended after it started and ends with ctx.Err() when ctx is canceled"
	ctx, n := testContext(t), newNames(t)
	typ, other := n.typ("live"), n.typ("other")
	x, y := n.id("x"), n.id("y")
	mustAppend(t, ctx, log, typ, x, 0, ev("x1", ""), ev("x2", ""))
	sub := subscribe(t, ctx, log, typ, 0)

	expect := func(s *subscription, names ...string) []eventlog.Record {
		t.Helper()
		var recs []eventlog.Record
		for _, name := range names {
			it, ok := s.next(endTimeout)
			switch {
			case !ok:
				ruleFatalf(t, rule, "no event within %v, want %s", endTimeout, name)
			case it.err != nil:
				ruleFatalf(t, rule, "got error %v, want %s", it.err, name)
			case it.rec.Name != name || it.rec.EntityType != typ:
				ruleFatalf(t, rule, "got %s event %s (%s), want %s", it.rec.EntityType, it.rec.Name, keyOf(it.rec), name)
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
			ruleFatalf(t, rule, "Subscribe did not end within %v of its ctx being canceled", endTimeout)
		}
		if it.err != nil {
			if !errors.Is(it.err, context.Canceled) {
				ruleErrorf(t, rule, "Subscribe ended with %v, want an error matching context.Canceled", it.err)
			}
			break
		}
		ruleErrorf(t, rule, "Subscribe yielded %s after its ctx was canceled and before its error", keyOf(it.rec))
	}
	if !sub.waitDone(endTimeout) {
		ruleErrorf(t, rule, "Subscribe did not return within %v of yielding its error", endTimeout)
	}
}

func canceledContext(t TB, log eventlog.Log) {
	const rule = "a read with a canceled ctx yields an error matching context.Canceled and ends"
	ctx, n := testContext(t), newNames(t)
	typ, id := n.typ("order"), n.id("1")
	mustAppend(t, ctx, log, typ, id, 0, evs("e", 1, 3)...)
	canceled, cancel := context.WithCancel(ctx)
	cancel()

	for name, seq := range map[string]func() ([]eventlog.Record, error){
		"ReadEntity": func() ([]eventlog.Record, error) { return collect(t, log.ReadEntity(canceled, typ, id, 1)) },
		"ReadType":   func() ([]eventlog.Record, error) { return collect(t, log.ReadType(canceled, typ, 0)) },
	} {
		if _, err := seq(); !errors.Is(err, context.Canceled) {
			ruleErrorf(t, rule, "%s: got error %v, want one matching context.Canceled", name, err)
		}
	}
	sub := subscribe(t, canceled, log, typ, 0)
	deadline := time.Now().Add(endTimeout)
	for {
		it, ok := sub.next(time.Until(deadline))
		if !ok {
			ruleFatalf(t, rule, "Subscribe with a canceled ctx did not end within %v", endTimeout)
		}
		if it.err != nil {
			if !errors.Is(it.err, context.Canceled) {
				ruleErrorf(t, rule, "Subscribe: got error %v, want one matching context.Canceled", it.err)
			}
			break
		}
	}
	if !sub.waitDone(endTimeout) {
		ruleErrorf(t, rule, "Subscribe did not return within %v of yielding its error", endTimeout)
	}
}

func breakEarly(t TB, log eventlog.Log) {
	const rule = "a consumer may break out of any iterator early and the log stays usable"
	ctx, n := testContext(t), newNames(t)
	typ, id := n.typ("order"), n.id("1")
	mustAppend(t, ctx, log, typ, id, 0, evs("e", 1, 10)...)
	mustAppend(t, ctx, log, typ, n.id("2"), 0, evs("e", 1, 2)...)

	// Go itself panics if an iterator calls yield after the loop broke out.
	guard := func(what string, body func() int) {
		t.Helper()
		defer func() {
			if p := recover(); p != nil {
				ruleErrorf(t, rule, "%s: %v", what, p)
			}
		}()
		if got := body(); got != 3 {
			ruleErrorf(t, rule, "%s: the loop body ran %d times, want 3", what, got)
		}
	}
	guard("ReadEntity", func() int {
		k := 0
		for _, err := range log.ReadEntity(ctx, typ, id, 1) {
			if err != nil {
				ruleErrorf(t, rule, "ReadEntity: %v", err)
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
				ruleErrorf(t, rule, "ReadType: %v", err)
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
				t.Errorf("rule: %s: Subscribe: %v", rule, p)
				done <- -1
			}
		}()
		k := 0
		for _, err := range log.Subscribe(ctx, typ, 0) {
			if err != nil {
				t.Errorf("rule: %s: Subscribe: %v", rule, err)
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
			ruleErrorf(t, rule, "Subscribe: the loop body ran %d times, want 3", k)
		}
	case <-time.After(endTimeout):
		ruleFatalf(t, rule, "Subscribe did not return within %v of the consumer breaking out", endTimeout)
	}

	if l, ok := log.(eventlog.IDLister); ok {
		for _, err := range l.EntityIDs(ctx, typ) {
			if err != nil {
				ruleErrorf(t, rule, "EntityIDs: %v", err)
			}
			break
		}
	}

	mustAppend(t, ctx, log, typ, id, 10, ev("e-11", ""))
	if got, want := seqs(readEntity(t, ctx, log, typ, id, 1)), span(1, 11); !equalSeqs(got, want) {
		ruleErrorf(t, rule, "after early breaks: got Seqs %v, want %v", got, want)
	}
}

func invalidArguments(t TB, log eventlog.Log) {
	const rule = "Append with an empty type or id, no events or an unnamed event fails with ErrInvalid and stores nothing"
	ctx, n := testContext(t), newNames(t)
	typ, id := n.typ("order"), n.id("1")
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
			ruleErrorf(t, rule, "%s: got %v, want an error matching ErrInvalid", c.name, err)
		}
		if errors.Is(err, eventlog.ErrConflict) {
			ruleErrorf(t, rule, "%s: got %v, which also matches ErrConflict", c.name, err)
		}
	}
	if got := mustLastSeq(t, ctx, log, typ, id); got != 0 {
		ruleErrorf(t, rule, "after invalid appends LastSeq is %d, want 0", got)
	}
}

// fill returns prefix followed by filler up to exactly n bytes of valid
// UTF-8 that does not compress: runes drawn at random, seeded by prefix,
// from several scripts and the characters subject-based logs escape.
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

func nameLimits(t TB, log eventlog.Log) {
	const rule = "types and ids of MaxTypeLen and MaxIDLen bytes of any UTF-8 work in every call; one byte more is refused with ErrInvalid and a bounded message"
	ctx, n := testContext(t), newNames(t)
	typ := fill(n.typ("lim"), eventlog.MaxTypeLen)
	ids := []string{fill(n.id("a"), eventlog.MaxIDLen), fill(n.id("b"), eventlog.MaxIDLen), n.id("short")}
	for _, id := range ids {
		if len(typ) != eventlog.MaxTypeLen || (id != ids[2] && len(id) != eventlog.MaxIDLen) || !utf8.ValidString(id) {
			ruleFatalf(t, rule, "the test built a %d-byte type and a %d-byte id", len(typ), len(id))
		}
		mustAppend(t, ctx, log, typ, id, 0, ev("e", "1"))
		mustAppend(t, ctx, log, typ, id, 1, ev("e", "2"), ev("e", "3"))
		recs := readEntity(t, ctx, log, typ, id, 1)
		if got := seqs(recs); !equalSeqs(got, span(1, 3)) {
			ruleErrorf(t, rule, "ReadEntity of a %d-byte id: Seqs %v, want 1..3", len(id), got)
		}
		for _, r := range recs {
			if r.EntityType != typ || r.EntityID != id {
				ruleErrorf(t, rule, "a record of a %d-byte id names another stream: %d and %d bytes", len(id), len(r.EntityType), len(r.EntityID))
				break
			}
		}
		if got := mustLastSeq(t, ctx, log, typ, id); got != 3 {
			ruleErrorf(t, rule, "LastSeq of a %d-byte id: %d, want 3", len(id), got)
		}
	}
	byID := make(map[string]int)
	for _, r := range readType(t, ctx, log, typ, 0) {
		byID[r.EntityID]++
	}
	for _, id := range ids {
		if byID[id] != 3 {
			ruleErrorf(t, rule, "ReadType of a %d-byte type: %d events of a %d-byte id, want 3", len(typ), byID[id], len(id))
		}
	}
	if l, ok := log.(eventlog.IDLister); ok {
		listed, err := collect(t, l.EntityIDs(ctx, typ))
		if err != nil {
			ruleErrorf(t, rule, "EntityIDs of a %d-byte type: %v", len(typ), err)
		}
		slices.Sort(listed)
		want := slices.Clone(ids)
		slices.Sort(want)
		if !slices.Equal(listed, want) {
			ruleErrorf(t, rule, "EntityIDs of a %d-byte type: %d ids, want the %d appended to", len(typ), len(listed), len(want))
		}
	}

	// One byte over.
	longID := fill(n.id("over"), eventlog.MaxIDLen+1)
	longType := fill(n.typ("over"), eventlog.MaxTypeLen+1)
	check := func(what string, err error) {
		t.Helper()
		if !errors.Is(err, eventlog.ErrInvalid) {
			ruleErrorf(t, rule, "%s: got %v, want an error matching ErrInvalid", what, err)
			return
		}
		if len(err.Error()) > 400 {
			ruleErrorf(t, rule, "%s: a %d-byte message, want the id quoted as a bounded prefix", what, len(err.Error()))
		}
	}
	_, err := log.Append(ctx, typ, longID, 0, ev("e", ""))
	check("Append of a 256-byte id", err)
	_, err = log.Append(ctx, longType, ids[2], 0, ev("e", ""))
	check("Append of a 256-byte type", err)
	_, err = log.LastSeq(ctx, typ, longID)
	check("LastSeq of a 256-byte id", err)
	_, err = collect(t, log.ReadEntity(ctx, typ, longID, 1))
	check("ReadEntity of a 256-byte id", err)
	_, err = collect(t, log.ReadType(ctx, longType, 0))
	check("ReadType of a 256-byte type", err)
	_, err = log.Append(ctx, typ, "bad\xffutf8", 0, ev("e", ""))
	check("Append of an id that is not UTF-8", err)
	_, err = log.Append(ctx, typ, "nul\x00", 0, ev("e", ""))
	check("Append of an id with a NUL byte", err)
	if got := mustLastSeq(t, ctx, log, typ, ids[2]); got != 3 {
		ruleErrorf(t, rule, "refused appends changed a stream: LastSeq %d, want 3", got)
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

func deleteTo(t TB, log eventlog.Log) {
	const rule = "Deleter: after DeleteTo k, reads start at k+1, LastSeq is unchanged and appends continue from it"
	d := deleter(t, log)
	if d == nil {
		return
	}
	ctx, n := testContext(t), newNames(t)
	typ, id := n.typ("order"), n.id("1")
	mustAppend(t, ctx, log, typ, id, 0, evs("e", 1, 5)...)

	if err := d.DeleteTo(ctx, typ, id, 0); err != nil {
		ruleFatalf(t, rule, "DeleteTo 0: %v", err)
	}
	if got, want := seqs(readEntity(t, ctx, log, typ, id, 1)), span(1, 5); !equalSeqs(got, want) {
		ruleErrorf(t, rule, "DeleteTo 0 must delete nothing: got Seqs %v, want %v", got, want)
	}
	if err := d.DeleteTo(ctx, typ, id, 3); err != nil {
		ruleFatalf(t, rule, "DeleteTo 3: %v", err)
	}
	for _, from := range []uint64{0, 1, 4} {
		if got, want := seqs(readEntity(t, ctx, log, typ, id, from)), span(4, 5); !equalSeqs(got, want) {
			ruleErrorf(t, rule, "after DeleteTo 3, ReadEntity from %d: got Seqs %v, want %v", from, got, want)
		}
	}
	if got := mustLastSeq(t, ctx, log, typ, id); got != 5 {
		ruleErrorf(t, rule, "after DeleteTo 3: LastSeq %d, want 5", got)
	}
	// Deleting less than already deleted changes nothing.
	if err := d.DeleteTo(ctx, typ, id, 2); err != nil {
		ruleFatalf(t, rule, "DeleteTo 2 after DeleteTo 3: %v", err)
	}
	if got, want := seqs(readEntity(t, ctx, log, typ, id, 1)), span(4, 5); !equalSeqs(got, want) {
		ruleErrorf(t, rule, "after DeleteTo 2: got Seqs %v, want %v", got, want)
	}
	for _, expected := range []uint64{0, 3} {
		_, err := log.Append(ctx, typ, id, expected, ev("stale", ""))
		checkConflict(t, rule, err, typ, id, expected, 5)
	}
	mustAppend(t, ctx, log, typ, id, 5, ev("e-6", ""))
	if got, want := seqs(readEntity(t, ctx, log, typ, id, 1)), span(4, 6); !equalSeqs(got, want) {
		ruleErrorf(t, rule, "after appending at 5: got Seqs %v, want %v", got, want)
	}
	// Deleting from a stream that does not exist is not an error.
	if err := d.DeleteTo(ctx, typ, n.id("unknown"), 3); err != nil {
		ruleErrorf(t, rule, "DeleteTo of an unknown stream: %v", err)
	}
}

func deleteAll(t TB, log eventlog.Log) {
	const rule = "Deleter: deleting every event keeps LastSeq, and the next append must still expect it"
	d := deleter(t, log)
	if d == nil {
		return
	}
	ctx, n := testContext(t), newNames(t)
	typ := n.typ("order")
	for _, c := range []struct {
		name string
		to   uint64
	}{{"exact", 3}, {"beyond", 100}} {
		id := n.id(c.name)
		mustAppend(t, ctx, log, typ, id, 0, evs("e", 1, 3)...)
		if err := d.DeleteTo(ctx, typ, id, c.to); err != nil {
			ruleFatalf(t, rule, "DeleteTo %d: %v", c.to, err)
		}
		if recs := readEntity(t, ctx, log, typ, id, 1); len(recs) != 0 {
			ruleErrorf(t, rule, "after DeleteTo %d of 3 events: got Seqs %v, want none", c.to, seqs(recs))
		}
		if got := mustLastSeq(t, ctx, log, typ, id); got != 3 {
			ruleErrorf(t, rule, "after DeleteTo %d: LastSeq %d, want 3", c.to, got)
		}
		_, err := log.Append(ctx, typ, id, 0, ev("again", ""))
		checkConflict(t, rule, err, typ, id, 0, 3)
		mustAppend(t, ctx, log, typ, id, 3, ev("e-4", ""))
		if got, want := seqs(readEntity(t, ctx, log, typ, id, 1)), span(4, 4); !equalSeqs(got, want) {
			ruleErrorf(t, rule, "after appending at 3: got Seqs %v, want %v", got, want)
		}
	}
}

func deleteHidesFromReadType(t TB, log eventlog.Log) {
	const rule = "Deleter: deleted events are gone for readers by type too"
	d := deleter(t, log)
	if d == nil {
		return
	}
	ctx, n := testContext(t), newNames(t)
	typ, x, y := n.typ("order"), n.id("x"), n.id("y")
	mustAppend(t, ctx, log, typ, x, 0, evs("e", 1, 2)...)
	mustAppend(t, ctx, log, typ, y, 0, evs("e", 1, 2)...)
	mustAppend(t, ctx, log, typ, x, 2, evs("e", 3, 2)...)
	if err := d.DeleteTo(ctx, typ, x, 3); err != nil {
		ruleFatalf(t, rule, "DeleteTo 3: %v", err)
	}
	checkTypeRead(t, rule, "ReadType after DeleteTo", typ, readType(t, ctx, log, typ, 0),
		[]key{{y, 1}, {y, 2}, {x, 4}})
}

func entityIDs(t TB, log eventlog.Log) {
	const rule = "IDLister: EntityIDs yields exactly the ids of the type's entities, once each"
	l, ok := log.(eventlog.IDLister)
	if !ok {
		t.Logf("%T does not implement eventlog.IDLister; case not applicable", log)
		return
	}
	ctx, n := testContext(t), newNames(t)
	typ, other := n.typ("order"), n.typ("other")
	want := []string{n.id("a"), n.id("b"), n.id("c")}
	for i, id := range want {
		mustAppend(t, ctx, log, typ, id, 0, evs("e", 1, i+1)...)
	}
	mustAppend(t, ctx, log, typ, want[0], 1, ev("e-2", ""))
	mustAppend(t, ctx, log, other, want[0], 0, ev("e", ""))
	mustAppend(t, ctx, log, other, n.id("d"), 0, ev("e", ""))
	// A refused append creates no entity.
	_, _ = log.Append(ctx, typ, n.id("refused"), 7, ev("e", ""))

	got := mustCollect(t, "EntityIDs", l.EntityIDs(ctx, typ))
	slices.Sort(got)
	slices.Sort(want)
	if !slices.Equal(got, want) {
		ruleErrorf(t, rule, "got %v, want %v", got, want)
	}
	if got := mustCollect(t, "EntityIDs of an unknown type", l.EntityIDs(ctx, n.typ("unknown"))); len(got) != 0 {
		ruleErrorf(t, rule, "a type without events: got %v, want none", got)
	}
}
