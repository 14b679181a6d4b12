package postgreslog

import (
	"context"
	"errors"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/eventsourced-go/eventsourced/eventlog"
)

// TestPlan checks the pure part of a group-commit round: how appends are
// grouped by stream, and what each gets once the database has answered.
func TestPlan(t *testing.T) {
	req := func(typ, id string, expected uint64, n int) *appendReq {
		return &appendReq{typ: typ, id: id, expected: expected, events: make([]reqEvent, n)}
	}
	type want struct {
		pos      uint64
		actual   uint64 // conflict with this Actual when conflict is set, DeletedError at this Seq when deleted is
		conflict bool
		deleted  bool
		deferred bool
	}
	for _, c := range []struct {
		name    string
		reqs    []*appendReq
		streams int
		events  int
		actual  map[int]refusal // what the database reports, by stream
		lastPos uint64
		want    []want
	}{
		{
			name:    "appends to different streams all commit",
			reqs:    []*appendReq{req("t", "a", 0, 3), req("t", "b", 5, 1), req("u", "a", 2, 2)},
			streams: 3, events: 6, lastPos: 106,
			want: []want{{pos: 103}, {pos: 104}, {pos: 106}},
		},
		{
			name:    "a conflict leaves the others alone, and skips its Positions",
			reqs:    []*appendReq{req("t", "a", 0, 2), req("t", "b", 4, 1), req("t", "c", 0, 1)},
			streams: 3, events: 4, lastPos: 4,
			actual: map[int]refusal{1: {seq: 7}},
			want:   []want{{pos: 2}, {conflict: true, actual: 7}, {pos: 4}},
		},
		{
			name:    "an append continuing another of its stream joins the round",
			reqs:    []*appendReq{req("t", "a", 1, 2), req("t", "a", 3, 1)},
			streams: 1, events: 3, lastPos: 10,
			want: []want{{pos: 9}, {pos: 10}},
		},
		{
			name:    "a second creator of a stream is deferred",
			reqs:    []*appendReq{req("t", "a", 0, 2), req("t", "a", 0, 1)},
			streams: 1, events: 2, lastPos: 2,
			want: []want{{pos: 2}, {deferred: true}},
		},
		{
			name:    "a continuation of a conflicting append conflicts unless it matches",
			reqs:    []*appendReq{req("t", "a", 1, 1), req("t", "a", 2, 1), req("t", "b", 1, 1), req("t", "b", 2, 1)},
			streams: 2, events: 4, lastPos: 4,
			actual: map[int]refusal{0: {seq: 5}, 1: {seq: 2}},
			want:   []want{{conflict: true, actual: 5}, {conflict: true, actual: 5}, {conflict: true, actual: 2}, {deferred: true}},
		},
		{
			name:    "every append to a stream deleted for good gets a DeletedError, even one expecting its last Seq",
			reqs:    []*appendReq{req("t", "a", 3, 1), req("t", "a", 4, 2), req("t", "b", 0, 1)},
			streams: 2, events: 4, lastPos: 4,
			actual: map[int]refusal{0: {seq: 3, final: true}},
			want:   []want{{deleted: true, actual: 3}, {deleted: true, actual: 3}, {pos: 4}},
		},
	} {
		t.Run(c.name, func(t *testing.T) {
			p := plan(c.reqs, nil)
			if len(p.streams) != c.streams || p.events != c.events {
				t.Fatalf("plan: %d streams and %d events, want %d and %d", len(p.streams), p.events, c.streams, c.events)
			}
			outs := p.settle(c.reqs, c.actual, c.lastPos)
			for i, o := range outs {
				w := c.want[i]
				var ce *eventlog.ConflictError
				var de *eventlog.DeletedError
				switch {
				case w.deleted:
					if !errors.As(o.err, &de) || *de != (eventlog.DeletedError{EntityType: "t", EntityID: c.reqs[i].id, Seq: w.actual}) {
						t.Errorf("append %d: %+v, want a DeletedError at Seq %d", i, o, w.actual)
					}
				case w.deferred:
					if !o.deferred {
						t.Errorf("append %d: %+v, want deferred", i, o)
					}
				case w.conflict:
					if !errors.As(o.err, &ce) || ce.Actual != w.actual || ce.Expected != c.reqs[i].expected {
						t.Errorf("append %d: %+v, want a conflict with Actual %d", i, o, w.actual)
					}
				default:
					if o.err != nil || o.deferred || o.pos != w.pos {
						t.Errorf("append %d: %+v, want Position %d", i, o, w.pos)
					}
				}
			}
		})
	}
}

func TestNotifyPayload(t *testing.T) {
	for _, c := range []struct {
		types []string
		want  string
	}{
		{[]string{"b", "a", "b"}, "a\nb"},
		{[]string{"line\nbreak"}, ""},
		{[]string{string(make([]byte, maxPayload))}, ""},
	} {
		var streams []streamKey
		for _, typ := range c.types {
			streams = append(streams, streamKey{typ, "id"})
		}
		got := notifyPayload(streams)
		if got != c.want {
			t.Errorf("notifyPayload(%q) = %q, want %q", c.types, got, c.want)
		}
		parsed := parsePayload(got)
		if got == "" && parsed != nil {
			t.Errorf("parsePayload(%q) = %q, want nil (wake all)", got, parsed)
		}
	}
	if got := parsePayload("a\nb"); !slices.Equal(got, []string{"a", "b"}) {
		t.Errorf("parsePayload = %q", got)
	}
}

func TestValidIdentifier(t *testing.T) {
	for _, c := range []struct {
		s  string
		ok bool
	}{
		{"events", true},
		{"_x1", true},
		{"Mixed_Case", true},
		{"", false},
		{"1x", false},
		{"a-b", false},
		{"a b", false},
		{`a"b`, false},
		{"ä", false},
		{"x123456789012345678901234567890123456789012345678", false}, // 49 bytes
	} {
		if err := validIdentifier(c.s, maxTableName); (err == nil) != c.ok {
			t.Errorf("validIdentifier(%q) = %v, want ok %v", c.s, err, c.ok)
		}
	}
}

// TestNamesQuoted checks that every name is quoted and schema-qualified,
// and that the channel and lock derive from the tables.
func TestNamesQuoted(t *testing.T) {
	cfg, err := newConfig(forLog, []Option{WithSchema("App"), WithTablePrefix("Es_")})
	if err != nil {
		t.Fatal(err)
	}
	n := resolveNames(cfg)
	if n.events != `"App"."Es_events"` || n.meta != `"App"."Es_meta"` || n.schema != `"App"` {
		t.Errorf("names %+v", n)
	}
	other, _ := newConfig(forLog, []Option{WithSchema("App"), WithTablePrefix("Other_")})
	m := resolveNames(other)
	if n.channel == m.channel || n.migrateLock == m.migrateLock {
		t.Errorf("two sets of tables share channel %q or lock %d", n.channel, n.migrateLock)
	}
	if len(n.channel) > 63 {
		t.Errorf("channel %q is longer than an identifier may be", n.channel)
	}
}

// TestHub checks the wake-ups subscriptions rely on.
func TestHub(t *testing.T) {
	h := newHub()
	a, b := h.wait("a"), h.wait("b")
	if h.wait("a") != a {
		t.Fatal("two waiters of one type got different channels")
	}
	h.wake([]string{"a"})
	if !closed(a) || closed(b) {
		t.Fatal("waking a must close a's channel only")
	}
	if h.wait("a") == a {
		t.Fatal("after a wake, a waiter must get a fresh channel")
	}
	h.wake(nil)
	if !closed(b) {
		t.Fatal("waking all must close b's channel")
	}
	h.close()
	if !closed(h.wait("c")) {
		t.Fatal("a closed hub must return closed channels")
	}
}

func closed(c <-chan struct{}) bool {
	select {
	case <-c:
		return true
	case <-time.After(10 * time.Millisecond):
		return false
	}
}

// TestSeqCache checks what the cache vouches for: the highest Seq learned,
// 0 for a stream learned empty, nothing for a stream it never saw, and
// that it forgets the least recent half when full.
func TestSeqCache(t *testing.T) {
	c := newSeqCache(4)
	a, b := streamKey{"t", "a"}, streamKey{"t", "b"}
	if c.knows(a, 0) {
		t.Error("an unknown stream is vouched for as empty")
	}
	c.learn(a, 0)
	if !c.knows(a, 0) {
		t.Error("a stream learned empty is not vouched for as empty")
	}
	c.learn(a, 5)
	c.learn(a, 3) // Seqs only grow: an older report changes nothing
	if !c.knows(a, 5) || c.knows(a, 3) || c.knows(a, 0) {
		t.Error("the cache must vouch for the highest Seq learned only")
	}
	c.learn(b, 1)
	// The generation is full (2 streams): the next two new streams move
	// a and b to the old generation, the two after them drop them.
	for i := range 4 {
		c.learn(streamKey{"t", strconv.Itoa(i)}, 1)
		if i == 1 && !c.knows(a, 5) {
			t.Error("a stream of the previous generation was forgotten too early")
		}
	}
	if c.knows(a, 5) || c.knows(b, 1) {
		t.Error("streams two generations old are still vouched for")
	}
	c.learn(streamKey{"t", "2"}, 7)
	if !c.knows(streamKey{"t", "2"}, 7) {
		t.Error("relearning a stream of the old generation failed")
	}
}

func TestTextArrayLiteral(t *testing.T) {
	got := textArray(4, func(i int) string { return []string{`a"b`, `c\d`, `,{} NULL`, ""}[i] })
	want := `{"a\"b","c\\d",",{} NULL",""}`
	if got != want {
		t.Fatalf("textArray: %s, want %s", got, want)
	}
	if got := textArray(0, nil); got != "{}" {
		t.Fatalf("empty textArray: %s, want {}", got)
	}
}

// TestSortRound checks the order of a round's appends against a stable
// sort by type and id: also for ids that share long prefixes, that are
// prefixes of each other, that repeat, and of one type or several.
func TestSortRound(t *testing.T) {
	ids := []string{"", "a", "ab", "abc", "abcdefgh", "abcdefghi", "abcdefghij", "abcdefghia", "abd", "b", "order-1", "order-10", "order-2", "order-\xff", "ordes", `"q"`, "ü"}
	types := []string{"t", "u", "tt"}
	for seed := range 60 {
		var reqs []*appendReq
		for i := range 30 + seed {
			n := i*7919 + seed*104729
			r := &appendReq{typ: types[n%len(types)], id: ids[(n/3)%len(ids)]}
			switch seed % 3 {
			case 1: // one type, ids with a long shared prefix
				r.typ, r.id = "t", "order-"+r.id
			case 2: // one type
				r.typ = "t"
			}
			reqs = append(reqs, r)
		}
		want := slices.Clone(reqs)
		slices.SortStableFunc(want, func(a, b *appendReq) int {
			if c := strings.Compare(a.typ, b.typ); c != 0 {
				return c
			}
			return strings.Compare(a.id, b.id)
		})
		keys := make([]sortKey, len(reqs))
		sortRound(reqs, keys)
		for i, k := range keys {
			if got := reqs[k.slot]; got != want[i] {
				t.Fatalf("seed %d: append %d is %q/%q (slot %d), want %q/%q", seed, i, got.typ, got.id, k.slot, want[i].typ, want[i].id)
			}
		}
	}
}

// TestQuoteLiteral checks that the server reads quoteLiteral's constants
// back as the strings they quote, with standard_conforming_strings on and
// off.
func TestQuoteLiteral(t *testing.T) {
	pool := NewTestPool(t, nil)
	ctx := context.Background()
	conn, err := pool.Acquire(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Release()
	for _, scs := range []string{"on", "off"} {
		if _, err := conn.Exec(ctx, "SET standard_conforming_strings = "+scs); err != nil {
			t.Fatal(err)
		}
		for _, s := range []string{"", "plain", "it's", `back\slash`, `\'`, "line\nbreak", `''\\`, "ü'ß"} {
			var got string
			if err := conn.QueryRow(ctx, "SELECT "+quoteLiteral(s)+"::text").Scan(&got); err != nil {
				t.Fatalf("standard_conforming_strings %s, %q: %v", scs, s, err)
			}
			if got != s {
				t.Errorf("standard_conforming_strings %s: %s reads back as %q, want %q", scs, quoteLiteral(s), got, s)
			}
		}
	}
	if _, err := conn.Exec(ctx, "RESET standard_conforming_strings"); err != nil {
		t.Fatal(err)
	}
}
