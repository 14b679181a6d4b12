package timer

import (
	"container/heap"
	"context"
	"maps"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/eventsourced-go/eventsourced/eventlog"
)

// Rule: whatever the order of schedules, reschedules, renewals, cancels
// and fires, a scheduler that starts reading after the low-water mark
// knows exactly the pending timers (id and generation) that one reading
// the whole log knows, and every pending timer's Scheduled is after the
// mark.
func TestMarkInvariant(t *testing.T) {
	codec := Events()
	for seed := range uint64(200) {
		rng := rand.New(rand.NewPCG(seed, 1))
		var log []eventlog.Record
		gens := map[string]uint64{}       // the last generation of each id
		pending := map[string]uint64{}    // the pending generation of each id
		at := time.Unix(1_700_000_000, 0) // any time: the test reads, it does not fire
		add := func(id string, e Event) {
			name, rev, data, err := codec.Encode(e)
			if err != nil {
				t.Fatal(err)
			}
			log = append(log, eventlog.Record{EntityType: "x", EntityID: id, Name: name, Revision: rev, Data: data, Position: uint64(len(log) + 1)})
		}
		for range 300 {
			id := string(rune('a' + rng.IntN(12)))
			switch g, p := gens[id], pending[id]; {
			case rng.IntN(3) == 0 || g == 0:
				gens[id]++
				pending[id] = gens[id]
				add(id, Scheduled{At: at, Generation: gens[id]})
			case p != 0 && rng.IntN(4) == 0:
				add(id, Scheduled{At: at, Generation: p}) // a renewal
			case p != 0 && rng.IntN(2) == 0:
				delete(pending, id)
				add(id, Cancelled{Generation: p})
			case p != 0:
				delete(pending, id)
				add(id, Fired{Generation: p})
			}
		}
		whole, marks := read(t, codec, log, 0, rng)
		mark := whole.markLocked()
		got := pendingOf(whole)
		if !maps.Equal(got, pending) {
			t.Fatalf("seed %d: the whole log read gives pending %v, want %v", seed, got, pending)
		}
		for id := range pending {
			if e := whole.byID[id]; e.pos <= mark {
				t.Fatalf("seed %d: pending %s has its Scheduled at %d, not after the mark %d", seed, id, e.pos, mark)
			}
		}
		// The marks taken along the way are safe too (a sample of them): a
		// crash then, and a restart that reads the whole log after them.
		rng.Shuffle(len(marks), func(i, j int) { marks[i], marks[j] = marks[j], marks[i] })
		for _, m := range append(marks[:min(len(marks), 8)], mark) {
			if restarted, _ := read(t, codec, log, m, rng); !maps.Equal(pendingOf(restarted), pending) {
				t.Fatalf("seed %d: reading after the mark %d gives pending %v, want %v", seed, m, pendingOf(restarted), pending)
			}
		}
	}
}

// read feeds the records after mark to a new scheduler state, in batches
// of random sizes, as the projection does, and returns it and the marks
// it had after each batch.
func read(t *testing.T, codec interface {
	Decode(string, uint32, []byte) (Event, error)
}, log []eventlog.Record, mark uint64, rng *rand.Rand) (*sched, []uint64) {
	t.Helper()
	tm := &Timers{name: "x", codec: codec}
	tm.cur.Store(newSched(mark))
	rest := log[mark:]
	var marks []uint64
	for len(rest) > 0 {
		n := min(len(rest), 1+rng.IntN(8))
		if err := tm.handle(context.Background(), rest[:n]); err != nil {
			t.Fatal(err)
		}
		rest = rest[n:]
		tm.cur.Load().mu.Lock()
		marks = append(marks, tm.cur.Load().markLocked())
		tm.cur.Load().mu.Unlock()
	}
	return tm.cur.Load(), marks
}

func pendingOf(s *sched) map[string]uint64 {
	out := map[string]uint64{}
	for id, e := range s.byID {
		out[id] = e.gen
	}
	return out
}

// Rule: countDue counts the entries due by a time, as a scan of the
// whole heap would.
func TestCountDue(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	var h entryHeap
	for i := range 500 {
		heap.Push(&h, &entry{next: rng.Int64N(1000), pos: uint64(i)})
	}
	for _, now := range []int64{-1, 0, 10, 500, 999, 1000} {
		want := 0
		for _, e := range h {
			if e.next <= now {
				want++
			}
		}
		if got := h.countDue(now); got != want {
			t.Errorf("countDue(%d) = %d, want %d", now, got, want)
		}
	}
}
