package logcopy_test

import (
	"context"
	"errors"
	"fmt"
	"iter"
	"maps"
	"math/rand/v2"
	"reflect"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/eventsourced-go/eventsourced/eventlog"
)

// event is a record as a copy must keep it: everything but Position and
// Time, with empty Data and Metadata as nil.
type event struct {
	ID       string
	Seq      uint64
	Name     string
	Revision uint32
	Data     string
	Meta     string // sorted key=value pairs
}

func toEvent(r eventlog.Record) event {
	meta := ""
	for _, k := range slices.Sorted(maps.Keys(r.Metadata)) {
		meta += strconv.Quote(k) + "=" + strconv.Quote(r.Metadata[k]) + ";"
	}
	return event{ID: r.EntityID, Seq: r.Seq, Name: r.Name, Revision: r.Revision, Data: string(r.Data), Meta: meta}
}

// dump reads every type of l in Position order.
func dump(t testing.TB, l eventlog.Log, types []string) map[string][]event {
	t.Helper()
	out := map[string][]event{}
	for _, typ := range types {
		for r, err := range l.ReadType(context.Background(), typ, 0) {
			if err != nil {
				t.Fatalf("dump %s: %v", typ, err)
			}
			out[typ] = append(out[typ], toEvent(r))
		}
	}
	return out
}

// perStream reorders a dump by stream and Seq: what a copy keeps whatever
// its concurrency.
func perStream(d map[string][]event) map[string][]event {
	out := map[string][]event{}
	for typ, evs := range d {
		evs = slices.Clone(evs)
		slices.SortStableFunc(evs, func(a, b event) int {
			if a.ID != b.ID {
				if a.ID < b.ID {
					return -1
				}
				return 1
			}
			return int(a.Seq) - int(b.Seq)
		})
		out[typ] = evs
	}
	return out
}

// sameDump fails t with the first difference between got and want.
func sameDump(t testing.TB, what string, got, want map[string][]event) {
	t.Helper()
	for _, typ := range slices.Sorted(maps.Keys(want)) {
		g, w := got[typ], want[typ]
		for i := range min(len(g), len(w)) {
			if g[i] != w[i] {
				t.Fatalf("%s: type %s event %d: got %+v, want %+v", what, typ, i, g[i], w[i])
			}
		}
		if len(g) != len(w) {
			t.Fatalf("%s: type %s: got %d events, want %d", what, typ, len(g), len(w))
		}
	}
	if len(got) != len(want) {
		t.Fatalf("%s: got types %v, want %v", what, slices.Sorted(maps.Keys(got)), slices.Sorted(maps.Keys(want)))
	}
}

// chainTypes are the types generate writes.
var chainTypes = []string{"Account", "Order", "cart.item"}

// generate appends n events to l over the chainTypes and streams streams
// per type, in a fixed pseudo-random interleaving: appends of 1 to 3
// events, revisions above 0, metadata, empty data, and ids that are not
// plain subject tokens.
func generate(t testing.TB, l eventlog.Log, n, streams int) {
	t.Helper()
	ctx := context.Background()
	rng := rand.New(rand.NewPCG(1, 2))
	last := map[[2]string]uint64{}
	for written := 0; written < n; {
		typ := chainTypes[rng.IntN(len(chainTypes))]
		id := fmt.Sprintf("id-%d", rng.IntN(streams))
		if rng.IntN(10) == 0 {
			id = fmt.Sprintf("user@x.io/%d é", rng.IntN(streams))
		}
		k := min(1+rng.IntN(3), n-written)
		evs := make([]eventlog.Event, k)
		for i := range evs {
			seq := last[[2]string{typ, id}] + uint64(i) + 1
			ev := eventlog.Event{Name: fmt.Sprintf("Ev%d", rng.IntN(5)), Revision: uint32(rng.IntN(3))}
			if rng.IntN(4) != 0 {
				ev.Data = fmt.Appendf(nil, `{"n":%d,"seq":%d,"s":"%s"}`, written+i, seq, id)
			}
			if rng.IntN(3) == 0 {
				ev.Metadata = map[string]string{"correlation": fmt.Sprintf("c-%d", written), "traceparent": "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"}
			}
			evs[i] = ev
		}
		if _, err := l.Append(ctx, typ, id, last[[2]string{typ, id}], evs...); err != nil {
			t.Fatalf("generate: append %s/%s: %v", typ, id, err)
		}
		last[[2]string{typ, id}] += uint64(k)
		written += k
	}
}

// appendN appends events named name-1, name-2 ... to (typ, id).
func appendN(t testing.TB, l eventlog.Log, typ, id string, n int, name string) {
	t.Helper()
	ctx := context.Background()
	last, err := l.LastSeq(ctx, typ, id)
	if err != nil {
		t.Fatal(err)
	}
	for i := range n {
		seq := last + uint64(i) + 1
		if _, err := l.Append(ctx, typ, id, seq-1, eventlog.Event{Name: name, Data: []byte(strconv.FormatUint(seq, 10))}); err != nil {
			t.Fatalf("append %s/%s seq %d: %v", typ, id, seq, err)
		}
	}
}

// errInjected is the failure the interrupting logs inject.
var errInjected = fmt.Errorf("injected failure: %w", eventlog.ErrUnavailable)

// interrupted wraps a target log: its failAt-th Append (counting from 1)
// fails. With land set, that append first reaches the log, as an append
// whose connection broke after the server stored it; with cancel set, the
// append succeeds and cancel is called, as a process stopped right after
// it.
type interrupted struct {
	eventlog.Log
	failAt  int64
	land    bool
	cancel  context.CancelFunc
	appends atomic.Int64
}

func (l *interrupted) Append(ctx context.Context, typ, id string, expected uint64, events ...eventlog.Event) (uint64, error) {
	if l.appends.Add(1) != l.failAt {
		return l.Log.Append(ctx, typ, id, expected, events...)
	}
	switch {
	case l.cancel != nil:
		pos, err := l.Log.Append(ctx, typ, id, expected, events...)
		l.cancel()
		return pos, err
	case l.land:
		if _, err := l.Log.Append(ctx, typ, id, expected, events...); err != nil {
			return 0, err
		}
	}
	return 0, errInjected
}

// counting wraps a log and counts its calls, and the events per append.
type counting struct {
	eventlog.Log
	mu      sync.Mutex // guards the fields below
	calls   int
	batches []int
}

func (l *counting) count() {
	l.mu.Lock()
	l.calls++
	l.mu.Unlock()
}

func (l *counting) Append(ctx context.Context, typ, id string, expected uint64, events ...eventlog.Event) (uint64, error) {
	l.mu.Lock()
	l.calls++
	l.batches = append(l.batches, len(events))
	l.mu.Unlock()
	return l.Log.Append(ctx, typ, id, expected, events...)
}

func (l *counting) LastSeq(ctx context.Context, typ, id string) (uint64, error) {
	l.count()
	return l.Log.LastSeq(ctx, typ, id)
}

func (l *counting) ReadEntity(ctx context.Context, typ, id string, from uint64) iter.Seq2[eventlog.Record, error] {
	l.count()
	return l.Log.ReadEntity(ctx, typ, id, from)
}

func (l *counting) ReadType(ctx context.Context, typ string, after uint64) iter.Seq2[eventlog.Record, error] {
	l.count()
	return l.Log.ReadType(ctx, typ, after)
}

func (l *counting) Subscribe(ctx context.Context, typ string, after uint64) iter.Seq2[eventlog.Record, error] {
	l.count()
	return l.Log.Subscribe(ctx, typ, after)
}

// filtered wraps a log whose ReadType hides the records drop returns true
// for, as a backend that lost them.
type filtered struct {
	eventlog.Log
	drop func(eventlog.Record) bool
}

func (l *filtered) ReadType(ctx context.Context, typ string, after uint64) iter.Seq2[eventlog.Record, error] {
	return func(yield func(eventlog.Record, error) bool) {
		for r, err := range l.Log.ReadType(ctx, typ, after) {
			if err == nil && l.drop(r) {
				continue
			}
			if !yield(r, err) {
				return
			}
		}
	}
}

// wantErr fails t unless err matches sentinel and is a *T equal to want
// with the message msg.
func wantErr[T any, PT interface {
	*T
	error
}](t testing.TB, err error, sentinel error, want PT, msg string) {
	t.Helper()
	if !errors.Is(err, sentinel) {
		t.Fatalf("got error %v, want one matching %v", err, sentinel)
	}
	var got PT
	if !errors.As(err, &got) {
		t.Fatalf("got error %v (%T), want a %T", err, err, want)
	}
	if !reflect.DeepEqual(*got, *want) {
		t.Errorf("got %T %+v, want %+v", got, *got, *want)
	}
	if err.Error() != msg {
		t.Errorf("got message\n\t%s\nwant\n\t%s", err.Error(), msg)
	}
}
