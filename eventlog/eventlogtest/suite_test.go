package eventlogtest_test

import (
	"context"
	"errors"
	"iter"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/eventsourced-go/eventsourced/eventlog"
	"github.com/eventsourced-go/eventsourced/eventlog/eventlogtest"
	"github.com/eventsourced-go/eventsourced/internal/conformancetest"
)

// memory returns a fresh reference log, closed when the test ends.
func memory(t *testing.T) *eventlog.Memory {
	m := eventlog.NewMemory()
	t.Cleanup(func() { m.Close() })
	return m
}

// TestCasesPassOnMemory checks the harness: every case passes against the
// reference log when run through the recorder.
func TestCasesPassOnMemory(t *testing.T) {
	conformancetest.CheckPass(t, eventlogtest.Cases(), func(t *testing.T) eventlog.Log { return memory(t) })
}

func TestCasesAreNamedAndStateRules(t *testing.T) {
	conformancetest.CheckCases(t, eventlogtest.Cases())
}

// TestSuiteDetectsBrokenLogs runs cases against logs that each break one
// rule and checks that the cases fail, saying which rule broke.
func TestSuiteDetectsBrokenLogs(t *testing.T) {
	wrap := func(f func(*eventlog.Memory) eventlog.Log) func(t *testing.T) eventlog.Log {
		return func(t *testing.T) eventlog.Log { return f(memory(t)) }
	}
	b := conformancetest.Break[eventlog.Log]
	conformancetest.CheckCaught(t, eventlogtest.Cases(), []conformancetest.Broken[eventlog.Log]{
		b("IgnoresExpectedSeq", wrap(func(m *eventlog.Memory) eventlog.Log { return ignoreExpected{m} }),
			"AppendAtomic", "StaleExpectedConflicts", "ExpectedAheadConflicts"),
		b("PartialAppendOnConflict", wrap(func(m *eventlog.Memory) eventlog.Log { return partialAppend{m} }),
			"AppendAtomic"),
		b("UntypedConflict", wrap(func(m *eventlog.Memory) eventlog.Log { return untypedConflict{m} }),
			"GuardedFirstWrite", "StaleExpectedConflicts"),
		b("ReordersReadType", wrap(func(m *eventlog.Memory) eventlog.Log { return reorderReadType{m} }),
			"ReadTypeOrderAndFilter", "ReadTypeResume"),
		b("DropsFirstSubscribed", wrap(func(m *eventlog.Memory) eventlog.Log { return dropFirstSubscribed{m} }),
			"SubscribeGapSafe", "SubscribeLive"),
		b("IgnoresCancel", wrap(func(m *eventlog.Memory) eventlog.Log { return ignoreCancel{m} }),
			"CanceledContext"),
		b("SkipsSeq2", wrap(func(m *eventlog.Memory) eventlog.Log { return skipSeq2{m} }),
			"ReplayAll", "ReplayFromSeq", "RecordFields", "ConcurrentAppenders"),
		b("DeleteLowersLastSeq", wrap(func(m *eventlog.Memory) eventlog.Log { return deleteLowersLastSeq{m} }),
			"DeleteAll"),
		b("FinalTombstoneReusable", wrap(func(m *eventlog.Memory) eventlog.Log { return finalAsReuse{m} }),
			"DeleteStreamFinal", "DeleteStreamAgain", "DeleteStreamNeverWritten", "DeleteStreamLiveSubscription", "DeleteStreamRacingAppends"),
		b("DeletedErrorWithoutSeq", wrap(func(m *eventlog.Memory) eventlog.Log { return deletedWithoutSeq{m} }),
			"DeleteStreamFinal", "DeleteStreamAgain", "DeleteStreamRacingAppends"),
		b("ReadAllByType", wrap(func(m *eventlog.Memory) eventlog.Log { return newByTypeAll(m) }),
			"ReadAllOrder", "ReadAllTypes", "ReadAllResume", "ReadAllSkipsDeleted"),
		b("ReadAllIgnoresTypes", wrap(func(m *eventlog.Memory) eventlog.Log { return ignoreTypesAll{m} }),
			"ReadAllTypes", "SubscribeAllLive"),
		b("SubscribeAllFansIn", wrap(func(m *eventlog.Memory) eventlog.Log { return fanInAll{m} }),
			"SubscribeAllGapSafe"),
		b("TombstoneHidesOnlyFromReadEntity", wrap(func(m *eventlog.Memory) eventlog.Log {
			return &shallowTombstone{Memory: m, final: make(map[[2]string]uint64)}
		}),
			"DeleteStreamHidesFromReadType", "DeleteStreamEntityIDs", "DeleteStreamRacingAppends"),
		b("RoundClosesBeforeDone", wrap(func(m *eventlog.Memory) eventlog.Log { return earlyRound{m} }),
			"RoundClosesAfterDone", "RoundPipelined"),
	})
}

// earlyRound is a RoundAppender whose channel is closed before done is
// called: its caller would read the outcome before it is there.
type earlyRound struct{ *eventlog.Memory }

func (l earlyRound) AppendAsync(ctx context.Context, typ, id string, expected uint64, events []eventlog.Event, done func(uint64, error)) {
	done(l.Memory.Append(ctx, typ, id, expected, events...))
}

func (l earlyRound) AppendRound(ctx context.Context, typ, id string, expected uint64, events []eventlog.Event, done func(uint64, error)) <-chan struct{} {
	ch := make(chan struct{})
	close(ch)
	go func() {
		time.Sleep(5 * time.Millisecond)
		done(l.Memory.Append(ctx, typ, id, expected, events...))
	}()
	return ch
}

// finalAsReuse leaves a reuse tombstone when asked for a final one.
type finalAsReuse struct{ *eventlog.Memory }

func (l finalAsReuse) DeleteStream(ctx context.Context, typ, id string, _ bool) (uint64, error) {
	return l.Memory.DeleteStream(ctx, typ, id, true)
}

// deletedWithoutSeq refuses appends to a deleted stream with a
// DeletedError that lacks the tombstone's Seq.
type deletedWithoutSeq struct{ *eventlog.Memory }

func (l deletedWithoutSeq) Append(ctx context.Context, typ, id string, expected uint64, events ...eventlog.Event) (uint64, error) {
	pos, err := l.Memory.Append(ctx, typ, id, expected, events...)
	if errors.Is(err, eventlog.ErrDeleted) {
		return 0, &eventlog.DeletedError{EntityType: typ, EntityID: id}
	}
	return pos, err
}

// shallowTombstone implements a final delete as a flag that Append and
// ReadEntity honour, leaving the events in place for every other reader.
type shallowTombstone struct {
	*eventlog.Memory
	mu    sync.Mutex // guards final
	final map[[2]string]uint64
}

func (l *shallowTombstone) tomb(typ, id string) (uint64, bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	seq, ok := l.final[[2]string{typ, id}]
	return seq, ok
}

func (l *shallowTombstone) DeleteStream(ctx context.Context, typ, id string, reuse bool) (uint64, error) {
	if reuse {
		return l.Memory.DeleteStream(ctx, typ, id, true)
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if seq, ok := l.final[[2]string{typ, id}]; ok {
		return seq, nil
	}
	// Taking the last Seq and setting the flag under one lock, which
	// appends take too, keeps the flag exact.
	seq, err := l.Memory.LastSeq(ctx, typ, id)
	if err != nil {
		return 0, err
	}
	l.final[[2]string{typ, id}] = seq
	return seq, nil
}

func (l *shallowTombstone) Append(ctx context.Context, typ, id string, expected uint64, events ...eventlog.Event) (uint64, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if seq, ok := l.final[[2]string{typ, id}]; ok {
		return 0, &eventlog.DeletedError{EntityType: typ, EntityID: id, Seq: seq}
	}
	return l.Memory.Append(ctx, typ, id, expected, events...)
}

func (l *shallowTombstone) ReadEntity(ctx context.Context, typ, id string, from uint64) iter.Seq2[eventlog.Record, error] {
	if seq, ok := l.tomb(typ, id); ok {
		return func(yield func(eventlog.Record, error) bool) {
			yield(eventlog.Record{}, &eventlog.DeletedError{EntityType: typ, EntityID: id, Seq: seq})
		}
	}
	return l.Memory.ReadEntity(ctx, typ, id, from)
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

// byTypeAll yields a ReadAll type by type, each in Position order, rather
// than merging the types by Position. For a read of every type it uses the
// types appended through it.
type byTypeAll struct {
	*eventlog.Memory
	mu    sync.Mutex // guards types
	types []string
}

func newByTypeAll(m *eventlog.Memory) *byTypeAll { return &byTypeAll{Memory: m} }

func (l *byTypeAll) Append(ctx context.Context, typ, id string, expected uint64, events ...eventlog.Event) (uint64, error) {
	l.mu.Lock()
	if !slices.Contains(l.types, typ) {
		l.types = append(l.types, typ)
	}
	l.mu.Unlock()
	return l.Memory.Append(ctx, typ, id, expected, events...)
}

func (l *byTypeAll) ReadAll(ctx context.Context, after uint64, types ...string) iter.Seq2[eventlog.Record, error] {
	if len(types) == 0 {
		l.mu.Lock()
		types = slices.Clone(l.types)
		l.mu.Unlock()
	}
	return func(yield func(eventlog.Record, error) bool) {
		for _, typ := range types {
			for r, err := range l.Memory.ReadType(ctx, typ, after) {
				if !yield(r, err) || err != nil {
					return
				}
			}
		}
	}
}

// ignoreTypesAll reads every type whatever types it is given.
type ignoreTypesAll struct{ *eventlog.Memory }

func (l ignoreTypesAll) ReadAll(ctx context.Context, after uint64, types ...string) iter.Seq2[eventlog.Record, error] {
	return l.Memory.ReadAll(ctx, after)
}

func (l ignoreTypesAll) SubscribeAll(ctx context.Context, after uint64, types ...string) iter.Seq2[eventlog.Record, error] {
	return l.Memory.SubscribeAll(ctx, after)
}

// fanInAll subscribes to a set of types with one Subscribe per type and
// yields their events as they arrive, dropping those at or below the last
// Position it yielded to keep its order: the way a reader built from
// readers by type skips events under concurrent writers. A subscription of
// every type is the log's own.
type fanInAll struct{ *eventlog.Memory }

func (l fanInAll) SubscribeAll(ctx context.Context, after uint64, types ...string) iter.Seq2[eventlog.Record, error] {
	if len(types) < 2 {
		return l.Memory.SubscribeAll(ctx, after, types...)
	}
	return func(yield func(eventlog.Record, error) bool) {
		ctx, cancel := context.WithCancel(ctx)
		defer cancel()
		type item struct {
			r   eventlog.Record
			err error
		}
		items := make(chan item)
		var wg sync.WaitGroup
		defer wg.Wait()
		defer cancel()
		for _, typ := range types {
			wg.Go(func() {
				for r, err := range l.Memory.Subscribe(ctx, typ, after) {
					select {
					case items <- item{r, err}:
					case <-ctx.Done():
						return
					}
				}
			})
		}
		last := after
		for it := range items {
			if it.err != nil {
				yield(eventlog.Record{}, it.err)
				return
			}
			if it.r.Position <= last {
				continue
			}
			last = it.r.Position
			if !yield(it.r, nil) {
				return
			}
		}
	}
}
