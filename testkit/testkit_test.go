package testkit_test

import (
	"context"
	"errors"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/eventsourced-go/eventsourced/eventlog"
	"github.com/eventsourced-go/eventsourced/eventlog/eventlogtest"
	"github.com/eventsourced-go/eventsourced/snapshotstore"
	"github.com/eventsourced-go/eventsourced/snapshotstore/snapshotstoretest"
	"github.com/eventsourced-go/eventsourced/testkit"
)

var ev = eventlog.Event{Name: "E", Data: []byte("x")}

func must[T any](t *testing.T) func(T, error) T {
	return func(v T, err error) T {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
}

func lastSeq(t *testing.T, l eventlog.Log, id string) uint64 {
	t.Helper()
	seq, err := l.LastSeq(context.Background(), "T", id)
	if err != nil {
		t.Fatal(err)
	}
	return seq
}

// TestWithoutRulesConforms runs the eventlog conformance suite on a Log
// without rules around eventlog.Memory: the wrapper changes nothing.
func TestWithoutRulesConforms(t *testing.T) {
	eventlogtest.Run(t, func(t *testing.T) eventlog.Log { return testkit.NewLog(eventlog.NewMemory()) })
}

// TestStoreWithoutRulesConforms does the same for a Store.
func TestStoreWithoutRulesConforms(t *testing.T) {
	snapshotstoretest.Run(t, func(t *testing.T) snapshotstore.Store { return testkit.NewStore(snapshotstore.NewMemory()) })
}

func TestFailRejectAmbiguousAppend(t *testing.T) {
	ctx := context.Background()
	for _, tc := range []struct {
		name        string
		inject      func(l *testkit.Log) (*testkit.Injection, error)
		unavailable bool   // the error matches eventlog.ErrUnavailable
		invalid     bool   // the error matches eventlog.ErrInvalid
		landed      bool   // the event was written
		text        string // in the error's text
	}{
		{"fail", func(l *testkit.Log) (*testkit.Injection, error) { return l.FailNext(1, testkit.OpAppend) }, true, false, false, "store unavailable"},
		{"reject", func(l *testkit.Log) (*testkit.Injection, error) { return l.RejectNext(1, testkit.OpAppend) }, false, true, false, "rejected, nothing written"},
		{"ambiguous", func(l *testkit.Log) (*testkit.Injection, error) { return l.AmbiguousNext(1, testkit.OpAppend) }, true, false, true, "store unavailable after the write landed"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			l := testkit.NewLog(eventlog.NewMemory())
			inj := must[*testkit.Injection](t)(tc.inject(l))
			_, err := l.Append(ctx, "T", "a", 0, ev)
			var ie *testkit.InjectedError
			switch {
			case !errors.As(err, &ie):
				t.Fatalf("err = %v, want an *InjectedError", err)
			case !errors.Is(err, testkit.ErrInjected):
				t.Errorf("%v does not match ErrInjected", err)
			case errors.Is(err, eventlog.ErrUnavailable) != tc.unavailable:
				t.Errorf("%v: matches ErrUnavailable = %t, want %t", err, !tc.unavailable, tc.unavailable)
			case errors.Is(err, eventlog.ErrInvalid) != tc.invalid:
				t.Errorf("%v: matches ErrInvalid = %t, want %t", err, !tc.invalid, tc.invalid)
			}
			if want := "testkit: injected failure of append T/a expecting seq 0: " + tc.text; !strings.HasPrefix(err.Error(), want) {
				t.Errorf("err = %q, want it to start with %q", err, want)
			}
			want := uint64(0)
			if tc.landed {
				want = 1
			}
			if got := lastSeq(t, l, "a"); got != want {
				t.Errorf("after the failed append the last Seq is %d, want %d", got, want)
			}
			// Spent: the next append runs.
			if _, err := l.Append(ctx, "T", "a", want, ev); err != nil {
				t.Fatalf("the append after the rule was spent: %v", err)
			}
			if got := inj.Hits(); got != 1 {
				t.Errorf("Hits = %d, want 1", got)
			}
			if got := l.Calls(testkit.OpAppend); got != 2 {
				t.Errorf("Calls(append) = %d, want 2", got)
			}
		})
	}
}

func TestMatchAndTimes(t *testing.T) {
	ctx := context.Background()
	l := testkit.NewLog(eventlog.NewMemory())
	boom := errors.New("boom")
	inj := must[*testkit.Injection](t)(l.Inject(testkit.Rule{
		Ops:     []testkit.Op{testkit.OpAppend},
		Match:   func(c testkit.Call) bool { return c.ID == "b" && len(c.Events) == 1 },
		Times:   2,
		Failure: testkit.Fail,
		Err:     boom,
	}))
	var failed []string
	for _, id := range []string{"a", "b", "a", "b", "b", "c"} {
		seq := lastSeq(t, l, id)
		if _, err := l.Append(ctx, "T", id, seq, ev); err != nil {
			if !errors.Is(err, boom) {
				t.Errorf("%s: %v does not wrap the rule's Err", id, err)
			}
			failed = append(failed, id)
		}
	}
	if strings.Join(failed, ",") != "b,b" {
		t.Errorf("failed appends of %v, want the first two of b", failed)
	}
	for id, want := range map[string]uint64{"a": 2, "b": 1, "c": 1} {
		if got := lastSeq(t, l, id); got != want {
			t.Errorf("%s: last Seq %d, want %d", id, got, want)
		}
	}
	if inj.Hits() != 2 {
		t.Errorf("Hits = %d, want 2", inj.Hits())
	}
}

func TestRemoveAndClear(t *testing.T) {
	ctx := context.Background()
	l := testkit.NewLog(eventlog.NewMemory())
	inj := must[*testkit.Injection](t)(l.Inject(testkit.Rule{Failure: testkit.Fail})) // every call, until removed
	for range 3 {
		if _, err := l.LastSeq(ctx, "T", "a"); !errors.Is(err, testkit.ErrInjected) {
			t.Fatalf("LastSeq: %v, want an injected failure", err)
		}
	}
	inj.Remove()
	inj.Remove()
	if _, err := l.LastSeq(ctx, "T", "a"); err != nil {
		t.Fatalf("after Remove: %v", err)
	}
	must[*testkit.Injection](t)(l.FailNext(5))
	l.Clear()
	if _, err := l.Append(ctx, "T", "a", 0, ev); err != nil {
		t.Fatalf("after Clear: %v", err)
	}
	if inj.Hits() != 3 {
		t.Errorf("Hits = %d, want 3", inj.Hits())
	}
}

func TestDelay(t *testing.T) {
	l := testkit.NewLog(eventlog.NewMemory())
	const d = 50 * time.Millisecond
	must[*testkit.Injection](t)(l.DelayNext(2, d, testkit.OpAppend))

	// A context that ends during the delay: nothing runs.
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Millisecond)
	defer cancel()
	if _, err := l.Append(ctx, "T", "a", 0, ev); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("append under a 5 ms deadline delayed 50 ms: %v, want the deadline", err)
	}
	if got := lastSeq(t, l, "a"); got != 0 {
		t.Fatalf("the append that timed out in its delay wrote: last Seq %d", got)
	}
	began := time.Now()
	if _, err := l.Append(context.Background(), "T", "a", 0, ev); err != nil {
		t.Fatal(err)
	}
	if took := time.Since(began); took < d {
		t.Errorf("the delayed append took %v, want at least %v", took, d)
	}
	began = time.Now()
	if _, err := l.Append(context.Background(), "T", "a", 1, ev); err != nil {
		t.Fatal(err)
	}
	if took := time.Since(began); took >= d {
		t.Errorf("the third append took %v: the rule should be spent", took)
	}
}

// syncOnly hides every capability of the log but eventlog.Log.
type syncOnly struct{ eventlog.Log }

func TestAppendAsync(t *testing.T) {
	for _, inner := range []struct {
		name string
		log  func() eventlog.Log
	}{
		{"async", func() eventlog.Log { return eventlog.NewMemory() }},
		{"sync-only", func() eventlog.Log { return syncOnly{eventlog.NewMemory()} }},
	} {
		t.Run(inner.name, func(t *testing.T) {
			ctx := context.Background()
			l := testkit.NewLog(inner.log())
			must[*testkit.Injection](t)(l.AmbiguousNext(1, testkit.OpAppend))
			must[*testkit.Injection](t)(l.Inject(testkit.Rule{Ops: []testkit.Op{testkit.OpAppend}, Times: 1, Delay: 20 * time.Millisecond, Failure: testkit.Reject}))
			type res struct {
				pos uint64
				err error
			}
			appendAsync := func(expected uint64) res {
				ch := make(chan res, 2)
				var calls atomic.Int32
				l.AppendAsync(ctx, "T", "a", expected, []eventlog.Event{ev}, func(pos uint64, err error) {
					calls.Add(1)
					ch <- res{pos, err}
				})
				r := <-ch
				time.Sleep(10 * time.Millisecond)
				if n := calls.Load(); n != 1 {
					t.Errorf("done called %d times, want once", n)
				}
				return r
			}
			if r := appendAsync(0); !errors.Is(r.err, eventlog.ErrUnavailable) || r.pos != 0 {
				t.Errorf("ambiguous: %+v, want ErrUnavailable and no Position", r)
			}
			if got := lastSeq(t, l, "a"); got != 1 {
				t.Errorf("the ambiguous append did not land: last Seq %d", got)
			}
			if r := appendAsync(1); !errors.Is(r.err, eventlog.ErrInvalid) {
				t.Errorf("delayed reject: %+v, want ErrInvalid", r)
			}
			if r := appendAsync(1); r.err != nil || r.pos == 0 {
				t.Errorf("append after the rules were spent: %+v", r)
			}
			if got := lastSeq(t, l, "a"); got != 2 {
				t.Errorf("last Seq %d, want 2", got)
			}
		})
	}
}

func TestReadFailsWhenIterationStarts(t *testing.T) {
	ctx := context.Background()
	l := testkit.NewLog(eventlog.NewMemory())
	if _, err := l.Append(ctx, "T", "a", 0, ev, ev); err != nil {
		t.Fatal(err)
	}
	must[*testkit.Injection](t)(l.FailNext(1, testkit.OpReadEntity, testkit.OpReadType))
	it := l.ReadEntity(ctx, "T", "a", 1) // not decided yet
	if got := l.Calls(testkit.OpReadEntity); got != 0 {
		t.Fatalf("Calls(read-entity) = %d before the iteration, want 0", got)
	}
	var got []error
	n := 0
	for _, err := range it {
		n++
		got = append(got, err)
	}
	if n != 1 || !errors.Is(got[0], testkit.ErrInjected) || !strings.Contains(got[0].Error(), "read-entity T/a") {
		t.Fatalf("the failed read yielded %d elements %v, want one injected error naming read-entity T/a", n, got)
	}
	n = 0
	for _, err := range l.ReadType(ctx, "T", 0) {
		if err != nil {
			t.Fatal(err)
		}
		n++
	}
	if n != 2 {
		t.Errorf("the read after the rule was spent yielded %d records, want 2", n)
	}
}

func TestUnsupportedCapability(t *testing.T) {
	ctx := context.Background()
	l := testkit.NewLog(syncOnly{eventlog.NewMemory()})
	for _, err := range l.ReadAll(ctx, 0) {
		if !errors.Is(err, testkit.ErrUnsupported) || !strings.Contains(err.Error(), "has no ReadAll") {
			t.Errorf("ReadAll on a log without it: %v", err)
		}
	}
	if err := l.DeleteTo(ctx, "T", "a", 1); !errors.Is(err, testkit.ErrUnsupported) || !errors.Is(err, eventlog.ErrInvalid) {
		t.Errorf("DeleteTo on a log without it: %v", err)
	}
}

func TestInvalidRules(t *testing.T) {
	l := testkit.NewLog(eventlog.NewMemory())
	s := testkit.NewStore(snapshotstore.NewMemory())
	for _, tc := range []struct {
		name string
		try  func() (*testkit.Injection, error)
		text string
	}{
		{"ambiguous read", func() (*testkit.Injection, error) { return l.AmbiguousNext(1, testkit.OpReadEntity) }, `"read-entity" does not write`},
		{"ambiguous every op", func() (*testkit.Injection, error) { return l.Inject(testkit.Rule{Failure: testkit.Ambiguous}) }, `"last-seq" does not write`},
		{"store op on a log", func() (*testkit.Injection, error) { return l.FailNext(1, testkit.OpSaveSnapshot) }, `operation "save-snapshot" is not one of`},
		{"log op on a store", func() (*testkit.Injection, error) { return s.FailNext(1, testkit.OpAppend) }, `operation "append" is not one of`},
		{"unknown op", func() (*testkit.Injection, error) { return l.FailNext(1, "apend") }, `operation "apend" is not one of`},
		{"zero calls", func() (*testkit.Injection, error) { return l.FailNext(0, testkit.OpAppend) }, "fail of the next 0 calls"},
		{"negative times", func() (*testkit.Injection, error) { return l.Inject(testkit.Rule{Times: -1, Failure: testkit.Fail}) }, "Times -1 is negative"},
		{"negative delay", func() (*testkit.Injection, error) {
			return l.Inject(testkit.Rule{Delay: -time.Second, Failure: testkit.Fail})
		}, "Delay -1s is negative"},
		{"unknown failure", func() (*testkit.Injection, error) { return l.Inject(testkit.Rule{Failure: 9}) }, "unknown Failure(9)"},
		{"does nothing", func() (*testkit.Injection, error) { return l.Inject(testkit.Rule{}) }, "does nothing"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			inj, err := tc.try()
			if inj != nil || !errors.Is(err, testkit.ErrInvalidRule) || !strings.Contains(err.Error(), tc.text) {
				t.Errorf("got %v, %v; want ErrInvalidRule saying %q", inj, err, tc.text)
			}
		})
	}
}

func TestStoreFaults(t *testing.T) {
	ctx := context.Background()
	s := testkit.NewStore(snapshotstore.NewMemory())
	snap := snapshotstore.Snapshot{EntityType: "T", EntityID: "a", Seq: 3, Data: []byte("s")}
	must[*testkit.Injection](t)(s.FailNext(1, testkit.OpSaveSnapshot))
	if err := s.Save(ctx, snap, 0); !errors.Is(err, eventlog.ErrUnavailable) || !strings.Contains(err.Error(), "save-snapshot T/a at seq 3") {
		t.Fatalf("Save: %v", err)
	}
	if _, found, err := s.Load(ctx, "T", "a"); err != nil || found {
		t.Fatalf("after the failed Save: found %t, %v; want nothing", found, err)
	}
	must[*testkit.Injection](t)(s.AmbiguousNext(1, testkit.OpSaveSnapshot))
	if err := s.Save(ctx, snap, 0); !errors.Is(err, testkit.ErrInjected) {
		t.Fatalf("ambiguous Save: %v", err)
	}
	must[*testkit.Injection](t)(s.FailNext(1, testkit.OpLoadSnapshot))
	if _, _, err := s.Load(ctx, "T", "a"); !errors.Is(err, testkit.ErrInjected) {
		t.Fatalf("Load: %v, want an injected failure", err)
	}
	got, found, err := s.Load(ctx, "T", "a")
	if err != nil || !found || got.Seq != 3 {
		t.Fatalf("the ambiguous Save did not land: %+v %t %v", got, found, err)
	}
}
