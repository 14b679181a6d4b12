package eventlogtest_test

import (
	"context"
	"errors"
	"fmt"
	"iter"
	"runtime"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/eventsourced-go/eventsourced/eventlog"
	"github.com/eventsourced-go/eventsourced/eventlog/eventlogtest"
)

// fakeTB records the failures of a case instead of failing the test that
// runs it, so the suite can be run against logs that must fail it.
type fakeTB struct {
	name string

	// mu guards failed, msgs and cleanups: cases report from goroutines.
	mu       sync.Mutex
	failed   bool
	msgs     []string
	cleanups []func()
}

var _ eventlogtest.TB = (*fakeTB)(nil)

func (f *fakeTB) Helper()      {}
func (f *fakeTB) Name() string { return f.name }

func (f *fakeTB) Logf(format string, args ...any) {}

func (f *fakeTB) Errorf(format string, args ...any) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.failed = true
	f.msgs = append(f.msgs, fmt.Sprintf(format, args...))
}

// Fatalf records the failure and ends the case's goroutine, like
// testing.T.FailNow.
func (f *fakeTB) Fatalf(format string, args ...any) {
	f.Errorf(format, args...)
	runtime.Goexit()
}

func (f *fakeTB) Cleanup(fn func()) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.cleanups = append(f.cleanups, fn)
}

func (f *fakeTB) Failed() bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.failed
}

// runCase runs c against log in its own goroutine, as testing does, then
// runs the cleanups, last registered first.
func runCase(t *testing.T, c eventlogtest.Case, log eventlog.Log) *fakeTB {
	f := &fakeTB{name: t.Name() + "/" + c.Name}
	done := make(chan struct{})
	go func() {
		defer close(done)
		c.Fn(f, log)
	}()
	<-done
	f.mu.Lock()
	cleanups := f.cleanups
	f.mu.Unlock()
	for _, fn := range slices.Backward(cleanups) {
		fn()
	}
	return f
}

// TestCasesPassOnMemory checks the harness: every case passes against the
// reference log when run through the fake.
func TestCasesPassOnMemory(t *testing.T) {
	for _, c := range eventlogtest.Cases() {
		m := eventlog.NewMemory()
		if f := runCase(t, c, m); f.failed {
			t.Errorf("case %s failed against Memory:\n%s", c.Name, strings.Join(f.msgs, "\n"))
		}
		m.Close()
	}
}

func TestCasesAreNamedAndStateRules(t *testing.T) {
	seen := make(map[string]bool)
	for _, c := range eventlogtest.Cases() {
		if c.Name == "" || c.Rule == "" || c.Fn == nil {
			t.Errorf("case %+v lacks a name, rule or function", c)
		}
		if seen[c.Name] {
			t.Errorf("case name %s is used twice", c.Name)
		}
		seen[c.Name] = true
	}
}

// TestSuiteDetectsBrokenLogs runs cases against logs that each break one
// rule and checks that the cases fail, saying which rule broke.
func TestSuiteDetectsBrokenLogs(t *testing.T) {
	byName := make(map[string]eventlogtest.Case)
	for _, c := range eventlogtest.Cases() {
		byName[c.Name] = c
	}
	for _, tc := range []struct {
		name     string
		wrap     func(eventlog.Log) eventlog.Log
		mustFail []string
	}{
		{"IgnoresExpectedSeq", func(l eventlog.Log) eventlog.Log { return ignoreExpected{l} },
			[]string{"AppendAtomic", "StaleExpectedConflicts", "ExpectedAheadConflicts"}},
		{"PartialAppendOnConflict", func(l eventlog.Log) eventlog.Log { return partialAppend{l} },
			[]string{"AppendAtomic"}},
		{"UntypedConflict", func(l eventlog.Log) eventlog.Log { return untypedConflict{l} },
			[]string{"GuardedFirstWrite", "StaleExpectedConflicts"}},
		{"ReordersReadType", func(l eventlog.Log) eventlog.Log { return reorderReadType{l} },
			[]string{"ReadTypeOrderAndFilter", "ReadTypeResume"}},
		{"DropsFirstSubscribed", func(l eventlog.Log) eventlog.Log { return dropFirstSubscribed{l} },
			[]string{"SubscribeGapSafe", "SubscribeLive"}},
		{"IgnoresCancel", func(l eventlog.Log) eventlog.Log { return ignoreCancel{l} },
			[]string{"CanceledContext"}},
		{"SkipsSeq2", func(l eventlog.Log) eventlog.Log { return skipSeq2{l} },
			[]string{"ReplayAll", "ReplayFromSeq", "RecordFields", "ConcurrentAppenders"}},
		{"DeleteLowersLastSeq", func(l eventlog.Log) eventlog.Log { return deleteLowersLastSeq{l.(*eventlog.Memory)} },
			[]string{"DeleteAll"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			for _, name := range tc.mustFail {
				c, ok := byName[name]
				if !ok {
					t.Fatalf("no case %s", name)
				}
				m := eventlog.NewMemory()
				f := runCase(t, c, tc.wrap(m))
				m.Close()
				if !f.failed {
					t.Errorf("case %s passed against a log that %s", name, tc.name)
					continue
				}
				for _, msg := range f.msgs {
					if !strings.HasPrefix(msg, "rule: ") {
						t.Errorf("case %s reported %q, which does not name the rule that broke", name, msg)
					}
				}
				t.Logf("case %s: %s", name, f.msgs[0])
			}
		})
	}
}

// ignoreExpected appends at whatever the last Seq is.
type ignoreExpected struct{ eventlog.Log }

func (l ignoreExpected) Append(ctx context.Context, typ, id string, _ uint64, events ...eventlog.Event) (uint64, error) {
	last, err := l.Log.LastSeq(ctx, typ, id)
	if err != nil {
		return 0, err
	}
	return l.Log.Append(ctx, typ, id, last, events...)
}

// partialAppend stores the first event of an append that conflicted.
type partialAppend struct{ eventlog.Log }

func (l partialAppend) Append(ctx context.Context, typ, id string, expected uint64, events ...eventlog.Event) (uint64, error) {
	pos, err := l.Log.Append(ctx, typ, id, expected, events...)
	if ce := (*eventlog.ConflictError)(nil); errors.As(err, &ce) && len(events) > 1 {
		_, _ = l.Log.Append(ctx, typ, id, ce.Actual, events[0])
	}
	return pos, err
}

// untypedConflict reports conflicts as an error string, the way a backend
// that string-matches its driver's errors might.
type untypedConflict struct{ eventlog.Log }

func (l untypedConflict) Append(ctx context.Context, typ, id string, expected uint64, events ...eventlog.Event) (uint64, error) {
	pos, err := l.Log.Append(ctx, typ, id, expected, events...)
	if errors.Is(err, eventlog.ErrConflict) {
		return pos, errors.New("duplicate key value violates unique constraint")
	}
	return pos, err
}

// reorderReadType yields each read by type newest first.
type reorderReadType struct{ eventlog.Log }

func (l reorderReadType) ReadType(ctx context.Context, typ string, after uint64) iter.Seq2[eventlog.Record, error] {
	return func(yield func(eventlog.Record, error) bool) {
		var recs []eventlog.Record
		for r, err := range l.Log.ReadType(ctx, typ, after) {
			if err != nil {
				yield(r, err)
				return
			}
			recs = append(recs, r)
		}
		for _, r := range slices.Backward(recs) {
			if !yield(r, nil) {
				return
			}
		}
	}
}

// dropFirstSubscribed loses the first event of every subscription.
type dropFirstSubscribed struct{ eventlog.Log }

func (l dropFirstSubscribed) Subscribe(ctx context.Context, typ string, after uint64) iter.Seq2[eventlog.Record, error] {
	return func(yield func(eventlog.Record, error) bool) {
		first := true
		for r, err := range l.Log.Subscribe(ctx, typ, after) {
			if err == nil && first {
				first = false
				continue
			}
			if !yield(r, err) {
				return
			}
		}
	}
}

// ignoreCancel reads on even when the caller's ctx is canceled.
type ignoreCancel struct{ eventlog.Log }

func (l ignoreCancel) ReadEntity(ctx context.Context, typ, id string, from uint64) iter.Seq2[eventlog.Record, error] {
	return l.Log.ReadEntity(context.WithoutCancel(ctx), typ, id, from)
}

// skipSeq2 loses the event at Seq 2 of every replay.
type skipSeq2 struct{ eventlog.Log }

func (l skipSeq2) ReadEntity(ctx context.Context, typ, id string, from uint64) iter.Seq2[eventlog.Record, error] {
	return func(yield func(eventlog.Record, error) bool) {
		for r, err := range l.Log.ReadEntity(ctx, typ, id, from) {
			if err == nil && r.Seq == 2 {
				continue
			}
			if !yield(r, err) {
				return
			}
		}
	}
}

// deleteLowersLastSeq reports the last Seq of the events still stored, as
// a backend that derives it from MAX(seq) would.
type deleteLowersLastSeq struct{ *eventlog.Memory }

func (l deleteLowersLastSeq) LastSeq(ctx context.Context, typ, id string) (uint64, error) {
	var last uint64
	for r, err := range l.Memory.ReadEntity(ctx, typ, id, 1) {
		if err != nil {
			return 0, err
		}
		last = r.Seq
	}
	return last, nil
}

func (l deleteLowersLastSeq) Append(ctx context.Context, typ, id string, expected uint64, events ...eventlog.Event) (uint64, error) {
	last, err := l.LastSeq(ctx, typ, id)
	if err != nil {
		return 0, err
	}
	if last != expected {
		return 0, &eventlog.ConflictError{EntityType: typ, EntityID: id, Expected: expected, Actual: last}
	}
	real, err := l.Memory.LastSeq(ctx, typ, id)
	if err != nil {
		return 0, err
	}
	return l.Memory.Append(ctx, typ, id, real, events...)
}
