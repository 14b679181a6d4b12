package entity

import (
	"context"
	"errors"
	"slices"
	"strings"
	"testing"

	"github.com/eventsourced-go/eventsourced/binarize"
	"github.com/eventsourced-go/eventsourced/eventlog"
)

// coreCmd is a command for the core tests: handle runs as its handler.
type coreCmd struct {
	abandoned bool
	meta      map[string]string
	key       string // idempotency key; its reply is "ok"
	handle    func(tx *Tx[tState, tEvent]) error
	ran       bool
}

func (c *coreCmd) start() bool                 { return !c.abandoned }
func (c *coreCmd) metadata() map[string]string { return c.meta }
func (c *coreCmd) txRoom() *Tx[tState, tEvent] { return nil }
func (c *coreCmd) idemKey() string             { return c.key }
func (c *coreCmd) encodeReply([]replyCodecEntry) (string, error) {
	return `"ok"`, nil
}
func (c *coreCmd) run(tx *Tx[tState, tEvent]) error {
	c.ran = true
	return c.handle(tx)
}

var errReject = errors.New("rejected")

func add(n int) *coreCmd {
	return &coreCmd{handle: func(tx *Tx[tState, tEvent]) error { tx.Persist(tEvent{By: n}); return nil }}
}

func addTwice(n int) *coreCmd {
	return &coreCmd{handle: func(tx *Tx[tState, tEvent]) error { tx.Persist(tEvent{By: n}, tEvent{By: n}); return nil }}
}

func reject() *coreCmd {
	return &coreCmd{handle: func(*Tx[tState, tEvent]) error { return errReject }}
}

func rejectAfterPersist() *coreCmd {
	return &coreCmd{handle: func(tx *Tx[tState, tEvent]) error { tx.Persist(tEvent{By: 100}); return errReject }}
}

func panics() *coreCmd {
	return &coreCmd{handle: func(*Tx[tState, tEvent]) error { panic("boom") }}
}

// byOf decodes the events of a decision into their By fields.
func byOf(t *testing.T, def *Type[tState, tEvent], events []eventlog.Event) []int {
	t.Helper()
	var out []int
	for _, ev := range events {
		e, err := def.Events.Decode(ev.Name, ev.Revision, ev.Data)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, e.By)
	}
	return out
}

// The core decides a group of commands without locks, goroutines or I/O:
// what to append, each command's outcome, and whether the entity must
// recover. These cases are the batching rules of the runtime, checked on
// the core itself.
func TestDecide(t *testing.T) {
	type want struct {
		consumed int
		by       []int  // the events to append, as their By fields
		n        int    // the state after them
		seq      uint64 // the Seq after them
		errs     []bool // per consumed command: failed
		own      []bool // per consumed command: its failure stands if the append fails
		skipped  []bool
		recover  bool
	}
	for _, tc := range []struct {
		name string
		cmds []*coreCmd
		want want
	}{
		{"one command", []*coreCmd{add(1)},
			want{consumed: 1, by: []int{1}, n: 11, seq: 6, errs: []bool{false}, own: []bool{false}, skipped: []bool{false}}},
		{"a group appends all its events at once, each command seeing the ones before", []*coreCmd{add(1), addTwice(2), add(3)},
			want{consumed: 3, by: []int{1, 2, 2, 3}, n: 18, seq: 9, errs: []bool{false, false, false}, own: []bool{false, false, false}, skipped: []bool{false, false, false}}},
		{"a rejection persists nothing and the group goes on", []*coreCmd{add(1), reject(), add(3)},
			want{consumed: 3, by: []int{1, 3}, n: 14, seq: 7, errs: []bool{false, true, false}, own: []bool{false, false, false}, skipped: []bool{false, false, false}}},
		{"a rejection after Persist ends the group: the state may be modified", []*coreCmd{add(1), rejectAfterPersist(), add(3)},
			want{consumed: 2, by: []int{1}, n: 11, seq: 6, errs: []bool{false, true}, own: []bool{false, true}, skipped: []bool{false, false}, recover: true}},
		{"a panic ends the group", []*coreCmd{add(1), panics(), add(3)},
			want{consumed: 2, by: []int{1}, n: 11, seq: 6, errs: []bool{false, true}, own: []bool{false, true}, skipped: []bool{false, false}, recover: true}},
		{"a command whose caller gave up is skipped", []*coreCmd{add(1), {abandoned: true, handle: func(*Tx[tState, tEvent]) error { panic("must not run") }}, add(3)},
			want{consumed: 3, by: []int{1, 3}, n: 14, seq: 7, errs: []bool{false, false, false}, own: []bool{false, false, false}, skipped: []bool{false, true, false}}},
		{"no commands", nil, want{n: 10, seq: 5}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			def := tType()
			var d decision[tState, tEvent]
			got := decide(context.Background(), &def, "x", tState{N: 10}, 5, tc.cmds, &d, idemView{})
			w := tc.want
			if got != w.consumed {
				t.Errorf("consumed %d, want %d", got, w.consumed)
			}
			if by := byOf(t, &def, d.events); !slices.Equal(by, w.by) {
				t.Errorf("events %v, want %v", by, w.by)
			}
			if d.state.N != w.n || d.seq != w.seq {
				t.Errorf("state %d at seq %d, want %d at %d", d.state.N, d.seq, w.n, w.seq)
			}
			if d.recover != w.recover {
				t.Errorf("recover %v, want %v", d.recover, w.recover)
			}
			if len(d.outcomes) != w.consumed {
				t.Fatalf("%d outcomes for %d commands consumed", len(d.outcomes), w.consumed)
			}
			for i, o := range d.outcomes {
				if (o.err != nil) != w.errs[i] || o.own != w.own[i] || o.skipped != w.skipped[i] {
					t.Errorf("command %d: %+v, want failed %v, own %v, skipped %v", i, o, w.errs[i], w.own[i], w.skipped[i])
				}
			}
			for i, c := range tc.cmds[got:] {
				if c.ran {
					t.Errorf("command %d ran, but the group ended before it", got+i)
				}
			}
		})
	}
}

// The events a group appends carry their command's metadata, and a panic is
// a *PanicError naming the entity.
func TestDecideMetadataAndPanic(t *testing.T) {
	def := tType()
	a, b := add(1), add(2)
	a.meta, b.meta = map[string]string{"correlation_id": "a"}, map[string]string{"correlation_id": "b"}
	var d decision[tState, tEvent]
	decide(context.Background(), &def, "x", tState{}, 0, []*coreCmd{a, b, panics()}, &d, idemView{})
	if len(d.events) != 2 || d.events[0].Metadata["correlation_id"] != "a" || d.events[1].Metadata["correlation_id"] != "b" {
		t.Errorf("events %+v, want each with its command's metadata", d.events)
	}
	var pe *PanicError
	if !errors.As(d.outcomes[2].err, &pe) || pe.EntityType != "T" || pe.EntityID != "x" || pe.Value != "boom" {
		t.Errorf("panic outcome %v, want a *PanicError for T/x", d.outcomes[2].err)
	}
}

// An event that cannot be encoded fails its command, drops its events from
// the group, ends the group and makes the entity recover.
func TestDecideEncodeFailure(t *testing.T) {
	events := binarize.NewRegistry[tEvent](binarize.JSON) // tEvent is not registered
	bad := tType()
	bad.Events = events
	var d decision[tState, tEvent]
	got := decide(context.Background(), &bad, "x", tState{}, 0, []*coreCmd{add(1), add(2)}, &d, idemView{})
	if got != 1 || len(d.events) != 0 || !d.recover || d.outcomes[0].err == nil || !d.outcomes[0].own {
		t.Fatalf("encode failure: consumed %d, %d events, recover %v, outcome %+v", got, len(d.events), d.recover, d.outcomes[0])
	}
	if msg := d.outcomes[0].err.Error(); !strings.Contains(msg, "encode event") || !strings.Contains(msg, "T/x at seq 1") {
		t.Errorf("encode failure message %q, want it to name the event, the entity and the Seq", msg)
	}
}

// With keys on, the core answers a keyed command whose key the window or an
// earlier command of the group recorded without running it, and a keyed
// command that persists records its key and reply on its last event; one
// that persists nothing records nothing.
func TestDecideKeys(t *testing.T) {
	def := tType()
	keyed := func(key string, c *coreCmd) *coreCmd { c.key = key; return c }
	cmds := []*coreCmd{
		keyed("w", add(100)),    // recorded in the window: not run
		keyed("a", addTwice(1)), // runs and records a on its second event
		keyed("a", add(100)),    // a again: answered from the group
		add(2),                  // unkeyed: runs
		keyed("r", reject()),    // rejected: records nothing
		keyed("r", add(3)),      // so r runs
	}
	w := new(idemWindow)
	w.add("w", idemRecord{seq: 4, pos: 40, reply: `"w"`}, 5, 10)
	var d decision[tState, tEvent]
	got := decide(context.Background(), &def, "x", tState{N: 10}, 5, cmds, &d, idemView{cfg: &idemConfig{window: 10}, w: w})
	if got != 6 {
		t.Fatalf("consumed %d, want 6", got)
	}
	ran := make([]bool, len(cmds))
	for i, c := range cmds {
		ran[i] = c.ran
	}
	if want := []bool{false, true, false, true, true, true}; !slices.Equal(ran, want) {
		t.Errorf("ran %v, want %v", ran, want)
	}
	if by := byOf(t, &def, d.events); !slices.Equal(by, []int{1, 1, 2, 3}) {
		t.Errorf("events %v, want [1 1 2 3]", by)
	}
	keys := make([]string, len(d.events))
	for i, ev := range d.events {
		keys[i] = ev.Metadata[IdempotencyKeyMetadata] + "=" + ev.Metadata[IdempotencyReplyMetadata]
	}
	if want := []string{"=", `a="ok"`, "=", `r="ok"`}; !slices.Equal(keys, want) {
		t.Errorf("events record %q, want %q", keys, want)
	}
	answers := make([]int32, len(d.outcomes))
	for i, o := range d.outcomes {
		answers[i] = o.answer
	}
	if want := []int32{1, 0, 2, 0, 0, 0}; !slices.Equal(answers, want) {
		t.Fatalf("outcomes' answers %v, want %v", answers, want)
	}
	if a := d.keys.answers[0]; a.inBatch || a.pos != 40 || a.reply != `"w"` || !d.outcomes[0].own {
		t.Errorf("window answer %+v (own %v), want the window's record, standing whatever the append does", a, d.outcomes[0].own)
	}
	if a := d.keys.answers[1]; !a.inBatch || a.seq != 7 || a.reply != `"ok"` || d.outcomes[2].own {
		t.Errorf("group answer %+v (own %v), want a's record at seq 7, sharing the append's fate", a, d.outcomes[2].own)
	}
	if len(d.keys.recorded) != 2 || d.keys.recorded[0].key != "a" || d.keys.recorded[1].key != "r" || d.keys.recorded[1].seq != 9 {
		t.Errorf("recorded %+v, want a at 7 and r at 9", d.keys.recorded)
	}
}
