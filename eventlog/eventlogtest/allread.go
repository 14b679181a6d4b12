package eventlogtest

import (
	"context"
	"errors"
	"fmt"
	"iter"
	"maps"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/eventsourced-go/eventsourced/eventlog"
	"github.com/eventsourced-go/eventsourced/internal/conformancetest"
)

// The cases of [eventlog.AllReader]: every entity type, or a set of types,
// in one Position order.
//
// Backends may run the suite on tables or streams shared by its cases, so
// a read of every type may yield events that earlier cases appended. The
// cases check the order of everything a read yields, and its contents
// only for the events of their own types, which their names make unique.

// allReadCases returns the cases of [eventlog.AllReader], in the order
// [Run] runs them.
func allReadCases() []Case {
	c := conformancetest.New[eventlog.Log]
	return []Case{
		c("ReadAllOrder", "AllReader: ReadAll yields the events of every type in strictly increasing Position order: exactly the union of ReadType of each type sorted by Position, with the same records", readAllOrder),
		c("ReadAllTypes", "AllReader: ReadAll of a set of types yields exactly the union of ReadType of those types in Position order; a type named twice counts once and a type without events adds nothing", readAllTypes),
		c("ReadAllResume", "AllReader: ReadAll after any Position yields exactly the events after it, of every type or of the types named: no repeats, no skips", readAllResume),
		c("ReadAllEmpty", "AllReader: ReadAll of types without events, or after the last Position, yields nothing and no error", readAllEmpty),
		c("ReadAllInvalidType", "AllReader: ReadAll and SubscribeAll naming a type that ValidateType refuses yield one error matching ErrInvalid, before any I/O (even with a canceled ctx), and end", readAllInvalidType),
		c("ReadAllSkipsDeleted", "AllReader with Deleter or StreamDeleter: ReadAll and SubscribeAll skip deleted events and yield the others in Position order", readAllSkipsDeleted),
		c("SubscribeAllLive", "AllReader: SubscribeAll yields the events of every type, or of the types it names (also ones without events yet), appended after it started, in Position order, and ends with ctx.Err() when ctx is canceled", subscribeAllLive),
		c("SubscribeAllGapSafe", "AllReader: live readers of every type and of a set of types see every event exactly once, in strictly increasing Position order and each stream in Seq order, while writers of several types commit concurrently", subscribeAllGapSafe),
	}
}

// allReader returns log as an eventlog.AllReader, or logs that the case
// does not apply and returns nil.
func allReader(t TB, log eventlog.Log) eventlog.AllReader {
	r, ok := log.(eventlog.AllReader)
	if !ok {
		t.Logf("%T does not implement eventlog.AllReader; case not applicable", log)
	}
	return r
}

// readAll reads every type, or the types given, after a Position.
func readAll(t TB, ctx context.Context, r eventlog.AllReader, after uint64, types ...string) []eventlog.Record {
	t.Helper()
	return conformancetest.MustCollect(t, fmt.Sprintf("ReadAll(after %d, %v)", after, types), r.ReadAll(ctx, after, types...))
}

// ownRecords returns the records of recs whose type is one of the case's,
// in their order.
func ownRecords(n conformancetest.Names, recs []eventlog.Record) []eventlog.Record {
	prefix := n.Type("")
	var out []eventlog.Record
	for _, r := range recs {
		if strings.HasPrefix(r.EntityType, prefix) {
			out = append(out, r)
		}
	}
	return out
}

// unionByPosition returns the events of types as ReadType yields them,
// merged in Position order.
func unionByPosition(t TB, ctx context.Context, log eventlog.Log, types ...string) []eventlog.Record {
	t.Helper()
	var out []eventlog.Record
	for _, typ := range types {
		out = append(out, readType(t, ctx, log, typ, 0)...)
	}
	slices.SortStableFunc(out, func(a, b eventlog.Record) int {
		switch {
		case a.Position < b.Position:
			return -1
		case a.Position > b.Position:
			return 1
		}
		return 0
	})
	return out
}

// recName names a record for reports: type/id#seq@position.
func recName(r eventlog.Record) string {
	return fmt.Sprintf("%s/%s#%d@%d", r.EntityType, r.EntityID, r.Seq, r.Position)
}

// sameRecord reports whether a and b are the same stored event with the
// same contents.
func sameRecord(a, b eventlog.Record) bool {
	return a.EntityType == b.EntityType && a.EntityID == b.EntityID && a.Seq == b.Seq &&
		a.Position == b.Position && a.Name == b.Name && a.Revision == b.Revision &&
		string(a.Data) == string(b.Data) && maps.Equal(a.Metadata, b.Metadata) && a.Time.Equal(b.Time)
}

// checkIncreasing reports, under the case's rule, each record of recs
// whose Position is not above the one before it.
func checkIncreasing(t *conformancetest.T, via string, recs []eventlog.Record) {
	t.Helper()
	for i := 1; i < len(recs); i++ {
		if recs[i].Position <= recs[i-1].Position {
			t.Errorf("%s yielded %s after %s", via, recName(recs[i]), recName(recs[i-1]))
			return
		}
	}
}

// checkSameRecords reports, under the case's rule, how got differs from
// want, record by record.
func checkSameRecords(t *conformancetest.T, via string, got, want []eventlog.Record) {
	t.Helper()
	for i := range min(len(got), len(want)) {
		if !sameRecord(got[i], want[i]) {
			if recName(got[i]) == recName(want[i]) {
				t.Errorf("%s: element %d, %s, differs from the record ReadType yields: got %+v, want %+v", via, i, recName(got[i]), got[i], want[i])
			} else {
				t.Errorf("%s: element %d is %s, want %s (%d elements, want %d)", via, i, recName(got[i]), recName(want[i]), len(got), len(want))
			}
			return
		}
	}
	switch {
	case len(got) > len(want):
		t.Errorf("%s: %d elements, want %d: extra %s", via, len(got), len(want), recName(got[len(want)]))
	case len(got) < len(want):
		t.Errorf("%s: %d elements, want %d: missing %s", via, len(got), len(want), recName(want[len(got)]))
	}
}

// appendTypes appends to two entities of each of types, interleaved, in
// batches of 1 to 3 events, in rounds rounds.
func appendTypes(t TB, ctx context.Context, log eventlog.Log, n conformancetest.Names, rounds int, types ...string) {
	t.Helper()
	last := make(map[[2]string]uint64)
	for r := range rounds {
		for e := range 2 * len(types) {
			typ, id := types[e%len(types)], n.ID(strconv.Itoa(e/len(types)))
			k := [2]string{typ, id}
			size := 1 + (r+e)%3
			mustAppend(t, ctx, log, typ, id, last[k], evs(typ[len(typ)-1:], int(last[k])+1, size)...)
			last[k] += uint64(size)
		}
	}
}

func readAllOrder(t *conformancetest.T, log eventlog.Log) {
	ar := allReader(t, log)
	if ar == nil {
		return
	}
	ctx, n := conformancetest.Context(t), conformancetest.NewNames(t)
	a, b, c := n.Type("a"), n.Type("b"), n.Type("c")
	appendTypes(t, ctx, log, n, 7, a, b, c)
	got := readAll(t, ctx, ar, 0)
	checkIncreasing(t, "ReadAll(after 0)", got)
	checkSameRecords(t, "ReadAll(after 0), the case's types", ownRecords(n, got), unionByPosition(t, ctx, log, a, b, c))
}

func readAllTypes(t *conformancetest.T, log eventlog.Log) {
	ar := allReader(t, log)
	if ar == nil {
		return
	}
	ctx, n := conformancetest.Context(t), conformancetest.NewNames(t)
	a, b, c, none := n.Type("a"), n.Type("b"), n.Type("c"), n.Type("none")
	appendTypes(t, ctx, log, n, 5, a, b, c)
	for _, tc := range []struct {
		types, want []string
	}{
		{[]string{a, c}, []string{a, c}},
		{[]string{c, a}, []string{a, c}},
		{[]string{a, c, a}, []string{a, c}},
		{[]string{b, b}, []string{b}},
		{[]string{b}, []string{b}},
		{[]string{a, none}, []string{a}},
		{[]string{a, b, c}, []string{a, b, c}},
		{[]string{none}, nil},
		{[]string{none, n.Type("none2")}, nil},
	} {
		via := fmt.Sprintf("ReadAll(after 0, %v)", tc.types)
		got := readAll(t, ctx, ar, 0, tc.types...)
		checkIncreasing(t, via, got)
		checkSameRecords(t, via, got, unionByPosition(t, ctx, log, tc.want...))
	}
}

func readAllResume(t *conformancetest.T, log eventlog.Log) {
	ar := allReader(t, log)
	if ar == nil {
		return
	}
	ctx, n := conformancetest.Context(t), conformancetest.NewNames(t)
	a, b, c := n.Type("a"), n.Type("b"), n.Type("c")
	appendTypes(t, ctx, log, n, 4, a, b, c)
	all := ownRecords(n, readAll(t, ctx, ar, 0))
	if len(all) == 0 {
		t.Fatalf("ReadAll(after 0) yielded none of the case's events")
	}
	afters := []uint64{all[0].Position - 1}
	for _, r := range all {
		afters = append(afters, r.Position)
	}
	for i, after := range afters {
		var want, wantAC []eventlog.Record
		for _, r := range all {
			if r.Position > after {
				want = append(want, r)
				if r.EntityType != b {
					wantAC = append(wantAC, r)
				}
			}
		}
		via := fmt.Sprintf("ReadAll(after %d)", after)
		got := readAll(t, ctx, ar, after)
		checkIncreasing(t, via, got)
		checkSameRecords(t, via, ownRecords(n, got), want)
		if i%3 == 0 {
			via := fmt.Sprintf("ReadAll(after %d, %s, %s)", after, a, c)
			checkSameRecords(t, via, readAll(t, ctx, ar, after, a, c), wantAC)
		}
	}
}

func readAllEmpty(t *conformancetest.T, log eventlog.Log) {
	ar := allReader(t, log)
	if ar == nil {
		return
	}
	ctx, n := conformancetest.Context(t), conformancetest.NewNames(t)
	a, b := n.Type("a"), n.Type("b")
	// A fresh log yields nothing at all; one shared with earlier cases
	// nothing of this case's types.
	if got := ownRecords(n, readAll(t, ctx, ar, 0)); len(got) != 0 {
		t.Errorf("ReadAll(after 0) before any append of the case yielded %s", recName(got[0]))
	}
	for _, types := range [][]string{{a}, {a, b}} {
		if got := readAll(t, ctx, ar, 0, types...); len(got) != 0 {
			t.Errorf("ReadAll(after 0, %v) of types without events yielded %s", types, recName(got[0]))
		}
	}
	appendTypes(t, ctx, log, n, 2, a, b)
	all := ownRecords(n, readAll(t, ctx, ar, 0))
	if len(all) == 0 {
		t.Fatalf("ReadAll(after 0) yielded none of the case's events")
	}
	last := all[len(all)-1].Position
	for _, after := range []uint64{last, last + 1000, 1 << 62} {
		for _, types := range [][]string{nil, {a}, {a, b}, {n.Type("none"), n.Type("none2")}} {
			if got := readAll(t, ctx, ar, after, types...); len(got) != 0 {
				t.Errorf("ReadAll(after %d, %v), at or beyond the last Position %d, yielded %s", after, types, last, recName(got[0]))
			}
		}
	}
}

// collectWithin consumes seq in a goroutine and returns what it yielded and
// its error, or ok false if it did not end within timeout.
func collectWithin(t TB, seq iter.Seq2[eventlog.Record, error], timeout time.Duration) (recs []eventlog.Record, err error, ok bool) {
	type result struct {
		recs []eventlog.Record
		err  error
	}
	done := make(chan result, 1)
	go func() {
		recs, err := conformancetest.Collect(t, seq)
		done <- result{recs, err}
	}()
	timer := time.NewTimer(timeout)
	defer timer.Stop()
	select {
	case r := <-done:
		return r.recs, r.err, true
	case <-timer.C:
		return nil, nil, false
	}
}

func readAllInvalidType(t *conformancetest.T, log eventlog.Log) {
	ar := allReader(t, log)
	if ar == nil {
		return
	}
	ctx, n := conformancetest.Context(t), conformancetest.NewNames(t)
	a := n.Type("a")
	mustAppend(t, ctx, log, a, n.ID("x"), 0, ev("e", ""))
	// A canceled ctx: a log that did I/O (or checked ctx) before checking
	// the types would yield context.Canceled instead.
	canceled, cancel := context.WithCancel(ctx)
	cancel()
	long := strings.Repeat("t", eventlog.MaxTypeLen+1)
	for _, types := range [][]string{{""}, {long}, {"nul\x00"}, {"\xff"}, {a, ""}, {"", a}, {a, a, long}} {
		for _, call := range []struct {
			name string
			seq  func(ctx context.Context) iter.Seq2[eventlog.Record, error]
		}{
			{"ReadAll", func(ctx context.Context) iter.Seq2[eventlog.Record, error] { return ar.ReadAll(ctx, 0, types...) }},
			{"SubscribeAll", func(ctx context.Context) iter.Seq2[eventlog.Record, error] { return ar.SubscribeAll(ctx, 0, types...) }},
		} {
			for _, c := range []struct {
				name string
				ctx  context.Context
			}{{"", ctx}, {", canceled ctx", canceled}} {
				via := fmt.Sprintf("%s(after 0, %q%s)", call.name, types, c.name)
				recs, err, ok := collectWithin(t, call.seq(c.ctx), endTimeout)
				switch {
				case !ok:
					t.Errorf("%s did not end within %v", via, endTimeout)
				case len(recs) > 0:
					t.Errorf("%s yielded %s", via, recName(recs[0]))
				case !errors.Is(err, eventlog.ErrInvalid):
					t.Errorf("%s: got error %v, want one matching ErrInvalid", via, err)
				}
			}
		}
	}
}

func readAllSkipsDeleted(t *conformancetest.T, log eventlog.Log) {
	ar := allReader(t, log)
	if ar == nil {
		return
	}
	d, _ := log.(eventlog.Deleter)
	sd, _ := log.(eventlog.StreamDeleter)
	if d == nil && sd == nil {
		t.Logf("%T implements neither eventlog.Deleter nor eventlog.StreamDeleter; case not applicable", log)
		return
	}
	ctx, n := conformancetest.Context(t), conformancetest.NewNames(t)
	a, b := n.Type("a"), n.Type("b")
	x, y, z := n.ID("x"), n.ID("y"), n.ID("z")
	mustAppend(t, ctx, log, a, x, 0, evs("a", 1, 4)...)
	mustAppend(t, ctx, log, b, y, 0, evs("b", 1, 2)...)
	mustAppend(t, ctx, log, a, z, 0, evs("a", 1, 2)...)
	mustAppend(t, ctx, log, b, x, 0, evs("b", 1, 2)...)
	mustAppend(t, ctx, log, a, x, 4, evs("a", 5, 1)...)
	// Appended one after another, so in this Position order.
	type stored struct {
		typ, id string
		seq     uint64
	}
	want := []stored{{a, x, 1}, {a, x, 2}, {a, x, 3}, {a, x, 4}, {b, y, 1}, {b, y, 2}, {a, z, 1}, {a, z, 2}, {b, x, 1}, {b, x, 2}, {a, x, 5}}
	gone := func(s stored) bool { return false }
	if d != nil {
		if err := d.DeleteTo(ctx, a, x, 2); err != nil {
			t.Fatalf("DeleteTo(%s/%s, 2): %v", a, x, err)
		}
		prev := gone
		gone = func(s stored) bool { return prev(s) || s.typ == a && s.id == x && s.seq <= 2 }
	}
	if sd != nil {
		if _, err := sd.DeleteStream(ctx, b, y, false); err != nil {
			t.Fatalf("DeleteStream(%s/%s): %v", b, y, err)
		}
		prev := gone
		gone = func(s stored) bool { return prev(s) || s.typ == b && s.id == y }
	}
	want = slices.DeleteFunc(want, gone)
	names := func(recs []eventlog.Record) []string {
		out := make([]string, len(recs))
		for i, r := range recs {
			out[i] = fmt.Sprintf("%s/%s#%d", r.EntityType, r.EntityID, r.Seq)
		}
		return out
	}
	wantNames := make([]string, len(want))
	for i, s := range want {
		wantNames[i] = fmt.Sprintf("%s/%s#%d", s.typ, s.id, s.seq)
	}
	for _, types := range [][]string{nil, {a, b}} {
		via := fmt.Sprintf("ReadAll(after 0, %v) after the deletes", types)
		got := readAll(t, ctx, ar, 0, types...)
		checkIncreasing(t, via, got)
		if g := names(ownRecords(n, got)); !slices.Equal(g, wantNames) {
			t.Errorf("%s: got %v, want %v", via, g, wantNames)
		}
	}
	// A subscription reads the same, then goes on live.
	for _, types := range [][]string{nil, {a, b}} {
		via := fmt.Sprintf("SubscribeAll(after 0, %v) after the deletes", types)
		sub := consume(t, ctx, via, 1024, func(ctx context.Context) iter.Seq2[eventlog.Record, error] {
			return ar.SubscribeAll(ctx, 0, types...)
		})
		got := nextOwn(t, n, sub, via, len(want))
		checkIncreasing(t, via, got)
		if g := names(got); !slices.Equal(g, wantNames) {
			t.Errorf("%s: got %v, want %v", via, g, wantNames)
		}
		sub.cancel()
	}
}

// nextOwn returns the next count records of the case's types that sub
// yields, skipping others, and ends the case if an error or a timeout
// comes first.
func nextOwn(t *conformancetest.T, n conformancetest.Names, sub *subscription, via string, count int) []eventlog.Record {
	t.Helper()
	var out []eventlog.Record
	deadline := time.Now().Add(endTimeout)
	for len(out) < count {
		it, ok := sub.next(time.Until(deadline))
		switch {
		case !ok:
			t.Fatalf("%s: %d of %d events within %v", via, len(out), count, endTimeout)
		case it.err != nil:
			t.Fatalf("%s yielded %v after %d of %d events", via, it.err, len(out), count)
		}
		if own := ownRecords(n, []eventlog.Record{it.rec}); len(own) == 1 {
			out = append(out, it.rec)
		}
	}
	return out
}

func subscribeAllLive(t *conformancetest.T, log eventlog.Log) {
	ar := allReader(t, log)
	if ar == nil {
		return
	}
	ctx, n := conformancetest.Context(t), conformancetest.NewNames(t)
	a, b, c, d := n.Type("a"), n.Type("b"), n.Type("c"), n.Type("d")
	x := n.ID("x")
	next := map[string]uint64{}
	put := func(typ string) {
		t.Helper()
		mustAppend(t, ctx, log, typ, x, next[typ], ev(fmt.Sprintf("%s-%d", typ[len(typ)-1:], next[typ]+1), ""))
		next[typ]++
	}
	start := mustAppend(t, ctx, log, a, x, 0, ev("a-1", "")) - 1
	next[a] = 1
	put(b)
	put(c)
	put(a)

	open := func(types ...string) *subscription {
		via := fmt.Sprintf("SubscribeAll(after %d, %v)", start, types)
		return consume(t, ctx, via, 1024, func(ctx context.Context) iter.Seq2[eventlog.Record, error] {
			return ar.SubscribeAll(ctx, start, types...)
		})
	}
	expect := func(s *subscription, via string, names ...string) {
		t.Helper()
		got := nextOwn(t, n, s, via, len(names))
		checkIncreasing(t, via, got)
		g := make([]string, len(got))
		for i, r := range got {
			g[i] = r.Name
		}
		if !slices.Equal(g, names) {
			t.Errorf("%s: got events %v, want %v", via, g, names)
		}
	}
	all, some, later := open(), open(a, c), open(d, n.Type("never"))
	expect(all, "SubscribeAll of every type", "a-1", "b-1", "c-1", "a-2")
	expect(some, "SubscribeAll of a and c", "a-1", "c-1", "a-2")

	put(c)
	put(b)
	put(d)
	put(a)
	put(d)
	expect(all, "SubscribeAll of every type, live", "c-2", "b-2", "d-1", "a-3", "d-2")
	expect(some, "SubscribeAll of a and c, live", "c-2", "a-3")
	expect(later, "SubscribeAll of d and a type never written, live", "d-1", "d-2")

	for _, s := range []struct {
		sub *subscription
		via string
	}{{all, "SubscribeAll of every type"}, {some, "SubscribeAll of a and c"}, {later, "SubscribeAll of d"}} {
		s.sub.cancel()
		deadline := time.Now().Add(endTimeout)
		for {
			it, ok := s.sub.next(time.Until(deadline))
			if !ok {
				t.Fatalf("%s did not end within %v of its ctx being canceled", s.via, endTimeout)
			}
			if it.err != nil {
				if !errors.Is(it.err, context.Canceled) {
					t.Errorf("%s ended with %v, want an error matching context.Canceled", s.via, it.err)
				}
				break
			}
			t.Errorf("%s yielded %s after its ctx was canceled and before its error", s.via, recName(it.rec))
		}
		if !s.sub.waitDone(endTimeout) {
			t.Errorf("%s did not return within %v of yielding its error", s.via, endTimeout)
		}
	}
}

func subscribeAllGapSafe(t *conformancetest.T, log eventlog.Log) {
	ar := allReader(t, log)
	if ar == nil {
		return
	}
	// 4 writers x 3 types x 100 appends of 1 to 3 events: 2,400 events.
	const writers, appendsPerType = 4, 100
	ctx, n := conformancetest.Context(t), conformancetest.NewNames(t)
	types := []string{n.Type("t0"), n.Type("t1"), n.Type("t2")}
	followed := []string{types[0], types[2]}
	start := mustAppend(t, ctx, log, n.Type("mark"), n.ID("mark"), 0, ev("mark", ""))
	const buffer = 3 * writers * appendsPerType * 3
	all := consume(t, ctx, "SubscribeAll of every type", buffer, func(ctx context.Context) iter.Seq2[eventlog.Record, error] {
		return ar.SubscribeAll(ctx, start)
	})
	some := consume(t, ctx, "SubscribeAll of two types", buffer, func(ctx context.Context) iter.Seq2[eventlog.Record, error] {
		return ar.SubscribeAll(ctx, start, followed...)
	})

	var wg sync.WaitGroup
	var mu sync.Mutex // guards want, maxAll and maxSome
	want := make(map[key]string)
	var maxAll, maxSome uint64
	begin := make(chan struct{})
	for w := range writers {
		wg.Go(func() {
			<-begin
			last := make(map[string]uint64)
			for i := range 3 * appendsPerType {
				ti := i % 3
				typ := types[ti]
				id := n.ID(fmt.Sprintf("%d_%d_%d", w, ti, (i/3)%2))
				size := 1 + (i/3)%3
				pos, err := log.Append(ctx, typ, id, last[id], evs("e", int(last[id])+1, size)...)
				if err != nil {
					t.Errorf("writer %d: Append(%s/%s, expected %d): %v", w, typ, id, last[id], err)
					return
				}
				mu.Lock()
				for range size {
					last[id]++
					want[key{id, last[id]}] = typ
				}
				maxAll = max(maxAll, pos)
				if ti != 1 {
					maxSome = max(maxSome, pos)
				}
				mu.Unlock()
			}
		})
	}
	close(begin)
	wg.Wait()
	if t.Failed() {
		return
	}

	// Every event has committed; each subscriber must deliver all of its
	// own, the one at its last Position last. One that skipped an event
	// shows it when it reaches that Position, without waiting for a
	// timeout.
	check := func(sub *subscription, via string, follows func(typ string) bool, maxPos uint64) {
		t.Helper()
		seen := make(map[key]int)
		lastSeq := make(map[key]uint64) // by stream: key{id, 0}
		var prev uint64
		deadline := time.Now().Add(30 * time.Second)
		for prev < maxPos {
			it, ok := sub.next(time.Until(deadline))
			if !ok {
				t.Errorf("%s: timed out after %d events, at Position %d of %d", via, len(seen), prev, maxPos)
				return
			}
			if it.err != nil {
				t.Errorf("%s yielded %v after %d events", via, it.err, len(seen))
				return
			}
			r := it.rec
			if r.Position <= prev {
				t.Errorf("%s yielded %s after Position %d", via, recName(r), prev)
			}
			prev = r.Position
			if len(ownRecords(n, []eventlog.Record{r})) == 0 {
				continue
			}
			k := keyOf(r)
			typ, ok := want[k]
			switch {
			case !ok || typ != r.EntityType:
				t.Errorf("%s yielded %s, which was not appended", via, recName(r))
				continue
			case !follows(typ):
				t.Errorf("%s yielded %s, of a type it does not follow", via, recName(r))
				continue
			}
			seen[k]++
			s := key{id: r.EntityID}
			if r.Seq != lastSeq[s]+1 {
				t.Errorf("%s yielded %s after Seq %d of its stream", via, recName(r), lastSeq[s])
			}
			lastSeq[s] = r.Seq
		}
		var missing []key
		for k, typ := range want {
			if !follows(typ) {
				continue
			}
			switch seen[k] {
			case 0:
				missing = append(missing, k)
			case 1:
			default:
				t.Errorf("%s yielded %v %d times", via, k, seen[k])
			}
		}
		if len(missing) > 0 {
			t.Errorf("%s reached Position %d, the last of its events, but skipped %d of them, such as %v", via, maxPos, len(missing), missing[0])
		}
	}
	check(all, "SubscribeAll of every type", func(string) bool { return true }, maxAll)
	check(some, "SubscribeAll of two types", func(typ string) bool { return slices.Contains(followed, typ) }, maxSome)
}
