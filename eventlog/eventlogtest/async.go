package eventlogtest

import (
	"context"
	"errors"
	"iter"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/eventsourced-go/eventsourced/eventlog"
	"github.com/eventsourced-go/eventsourced/internal/conformancetest"
)

// The asynchronous path: a log that implements [eventlog.AsyncAppender]
// runs every case a second time with its Append going through AppendAsync
// (see [Run]), and the cases below check what only AppendAsync promises.
// A log that is an [eventlog.RoundAppender] too sends every other append
// of that pass through AppendRound, so both paths keep every rule.

// doneTimeout bounds how long AppendAsync may take to call done once the
// append is settled.
const doneTimeout = 30 * time.Second

// asyncAppend calls AppendAsync and waits for done, checking that done is
// called exactly once.
func asyncAppend(ctx context.Context, a eventlog.AsyncAppender, typ, id string, expected uint64, events []eventlog.Event) (uint64, error) {
	type result struct {
		pos uint64
		err error
	}
	out := make(chan result, 2)
	var calls atomic.Int32
	a.AppendAsync(ctx, typ, id, expected, events, func(pos uint64, err error) {
		calls.Add(1)
		out <- result{pos, err}
	})
	select {
	case r := <-out:
		// A second call would find room in out: look once more, briefly.
		select {
		case <-out:
			return 0, errDoneTwice
		case <-time.After(10 * time.Millisecond):
		}
		return r.pos, r.err
	case <-time.After(doneTimeout):
		return 0, errNoDone
	}
}

// roundAppend calls AppendRound and waits for its channel, checking that
// done was called exactly once before the channel closed.
func roundAppend(ctx context.Context, a eventlog.RoundAppender, typ, id string, expected uint64, events []eventlog.Event) (uint64, error) {
	return startRound(ctx, a, typ, id, expected, events)()
}

// startRound calls AppendRound and returns a function that waits for its
// channel, checking that done was called exactly once before it closed.
func startRound(ctx context.Context, a eventlog.RoundAppender, typ, id string, expected uint64, events []eventlog.Event) func() (uint64, error) {
	var (
		calls atomic.Int32
		pos   uint64
		err   error
	)
	ch := a.AppendRound(ctx, typ, id, expected, events, func(p uint64, e error) {
		if calls.Add(1) == 1 {
			pos, err = p, e
		}
	})
	return func() (uint64, error) {
		if ch == nil {
			return 0, errNilRound
		}
		select {
		case <-ch:
		case <-time.After(doneTimeout):
			if calls.Load() == 0 {
				return 0, errNoDone
			}
			return 0, errNoClose
		}
		// done happened before the close: pos and err are its.
		switch calls.Load() {
		case 0:
			return 0, errClosedEarly
		case 1:
		default:
			return 0, errDoneTwice
		}
		time.Sleep(time.Millisecond) // a second call would count
		if calls.Load() != 1 {
			return 0, errDoneTwice
		}
		return pos, err
	}
}

var (
	errDoneTwice   = errors.New("eventlogtest: AppendAsync called done twice")
	errNoDone      = errors.New("eventlogtest: AppendAsync did not call done within 30s")
	errNilRound    = errors.New("eventlogtest: AppendRound returned a nil channel")
	errClosedEarly = errors.New("eventlogtest: AppendRound's channel closed before done was called")
	errNoClose     = errors.New("eventlogtest: AppendRound called done but did not close its channel within 30s")
)

// asyncLog is a log whose Append goes through AppendAsync, or every other
// time through AppendRound if the log has it.
type asyncLog struct {
	eventlog.Log
	async eventlog.AsyncAppender
	round eventlog.RoundAppender // nil if the log has none
	calls *atomic.Uint64
}

func (l asyncLog) Append(ctx context.Context, typ, id string, expected uint64, events ...eventlog.Event) (uint64, error) {
	if l.round != nil && l.calls.Add(1)%2 == 0 {
		return roundAppend(ctx, l.round, typ, id, expected, events)
	}
	return asyncAppend(ctx, l.async, typ, id, expected, events)
}

// fullAsyncLog is asyncLog for a log with every optional capability the
// cases use, so that those cases run on the asynchronous path too.
type fullAsyncLog struct {
	asyncLog
	all     eventlog.AllReader
	del     eventlog.Deleter
	sdel    eventlog.StreamDeleter
	ids     eventlog.IDLister
	typeLst eventlog.TypeLister
}

func (l fullAsyncLog) ReadAll(ctx context.Context, after uint64, types ...string) iter.Seq2[eventlog.Record, error] {
	return l.all.ReadAll(ctx, after, types...)
}

func (l fullAsyncLog) SubscribeAll(ctx context.Context, after uint64, types ...string) iter.Seq2[eventlog.Record, error] {
	return l.all.SubscribeAll(ctx, after, types...)
}

func (l fullAsyncLog) DeleteTo(ctx context.Context, typ, id string, seq uint64) error {
	return l.del.DeleteTo(ctx, typ, id, seq)
}

func (l fullAsyncLog) DeleteStream(ctx context.Context, typ, id string, reuse bool) (uint64, error) {
	return l.sdel.DeleteStream(ctx, typ, id, reuse)
}

func (l fullAsyncLog) EntityIDs(ctx context.Context, typ string) iter.Seq2[string, error] {
	return l.ids.EntityIDs(ctx, typ)
}

func (l fullAsyncLog) EntityTypes(ctx context.Context) iter.Seq2[string, error] {
	return l.typeLst.EntityTypes(ctx)
}

// viaAsync returns log with its Append going through AppendAsync, and
// whether log has that capability. The result keeps every optional
// capability of log if log has all of them, else none.
func viaAsync(log eventlog.Log) (eventlog.Log, bool) {
	a, ok := log.(eventlog.AsyncAppender)
	if !ok {
		return log, false
	}
	r, _ := log.(eventlog.RoundAppender)
	base := asyncLog{Log: log, async: a, round: r, calls: new(atomic.Uint64)}
	all, ok1 := log.(eventlog.AllReader)
	del, ok2 := log.(eventlog.Deleter)
	sdel, ok3 := log.(eventlog.StreamDeleter)
	ids, ok4 := log.(eventlog.IDLister)
	types, ok5 := log.(eventlog.TypeLister)
	if ok1 && ok2 && ok3 && ok4 && ok5 {
		return fullAsyncLog{asyncLog: base, all: all, del: del, sdel: sdel, ids: ids, typeLst: types}, true
	}
	return base, true
}

// asyncCases check what AppendAsync promises beyond Append's rules; they
// pass trivially on a log without it.
func asyncCases() []Case {
	c := conformancetest.New[eventlog.Log]
	return []Case{
		c("AsyncDoneOnce", "AppendAsync calls done exactly once, with Append's results: the Position on success, a *ConflictError on a conflict, ErrInvalid for invalid arguments", asyncDoneOnce),
		c("AsyncCanceledBeforeSend", "AppendAsync with a ctx that already ended calls done with ctx's error and appends nothing", asyncCanceledBeforeSend),
		c("AsyncPipelined", "appends to many streams started with AppendAsync before any of them is settled all land, each at its Seq", asyncPipelined),
		c("RoundClosesAfterDone", "AppendRound closes its channel after done returned, with Append's results: the Position on success, a *ConflictError on a conflict, ErrInvalid for invalid arguments, ctx's error for a ctx that ended", roundClosesAfterDone),
		c("RoundPipelined", "appends to many streams started with AppendRound before any of them is settled all land, each at its Seq, and each one's channel closes after its done", roundPipelined),
	}
}

func asyncAppender(log eventlog.Log) eventlog.AsyncAppender {
	a, _ := log.(eventlog.AsyncAppender)
	return a
}

func roundAppender(log eventlog.Log) eventlog.RoundAppender {
	a, _ := log.(eventlog.RoundAppender)
	return a
}

// appendFunc appends as Append does, through one of the asynchronous
// paths, and checks that path's own promises (see asyncAppend and
// roundAppend).
type appendFunc func(ctx context.Context, typ, id string, expected uint64, events []eventlog.Event) (uint64, error)

// checkOutcomes checks that app reports Append's results: the Position on
// success, a *ConflictError on a conflict, ErrInvalid for invalid
// arguments. what names the path in messages.
func checkOutcomes(t *conformancetest.T, log eventlog.Log, what string, app appendFunc) {
	ctx, n := conformancetest.Context(t), conformancetest.NewNames(t)
	typ, id := n.Type("order"), n.ID("1")
	pos, err := app(ctx, typ, id, 0, evs("e", 1, 2))
	if err != nil {
		t.Fatalf("%s of 2 events to a new stream: %v", what, err)
	}
	recs := readEntity(t, ctx, log, typ, id, 1)
	if len(recs) != 2 || recs[1].Position != pos {
		t.Fatalf("after %s reported Position %d: read %d records, want 2, the last at that Position", what, pos, len(recs))
	}
	_, err = app(ctx, typ, id, 1, evs("e", 3, 1))
	var ce *eventlog.ConflictError
	if !errors.As(err, &ce) || ce.Expected != 1 || ce.Actual != 2 {
		t.Fatalf("%s expecting 1 on a stream at 2: %v, want a *ConflictError with Expected 1 and Actual 2", what, err)
	}
	if _, err := app(ctx, typ, "", 0, evs("e", 1, 1)); !errors.Is(err, eventlog.ErrInvalid) {
		t.Fatalf("%s with an empty id: %v, want ErrInvalid", what, err)
	}
	if _, err := app(ctx, typ, id, 2, nil); !errors.Is(err, eventlog.ErrInvalid) {
		t.Fatalf("%s of no events: %v, want ErrInvalid", what, err)
	}
	if got := mustLastSeq(t, ctx, log, typ, id); got != 2 {
		t.Fatalf("LastSeq after the refused appends: %d, want 2", got)
	}
}

// checkCanceled checks that app with a ctx that already ended reports
// ctx's error and appends nothing.
func checkCanceled(t *conformancetest.T, log eventlog.Log, what string, app appendFunc) {
	ctx, n := conformancetest.Context(t), conformancetest.NewNames(t)
	typ, id := n.Type("order"), n.ID("1")
	canceled, cancel := context.WithCancel(ctx)
	cancel()
	if _, err := app(canceled, typ, id, 0, evs("e", 1, 1)); !errors.Is(err, context.Canceled) {
		t.Fatalf("%s with a canceled ctx: %v, want context.Canceled", what, err)
	}
	if got := mustLastSeq(t, ctx, log, typ, id); got != 0 {
		t.Fatalf("LastSeq after %s with a canceled ctx: %d, want 0", what, got)
	}
}

// startFunc starts an append through one of the asynchronous paths and
// returns a function that waits for its outcome, checking that path's own
// promises.
type startFunc func(ctx context.Context, typ, id string, expected uint64, events []eventlog.Event) (wait func() (uint64, error))

// checkPipelined starts appends to many streams, round after round, each
// round's before any of them is settled: all land, each at its Seq, and
// no Position is reported twice.
func checkPipelined(t *conformancetest.T, log eventlog.Log, start startFunc) {
	ctx, n := conformancetest.Context(t), conformancetest.NewNames(t)
	typ := n.Type("order")
	const streams, rounds = 50, 4
	for round := range rounds {
		waits := make([]func() (uint64, error), streams)
		for i := range streams {
			waits[i] = start(ctx, typ, n.ID(strconv.Itoa(i)), uint64(round), evs("e", round+1, 1))
		}
		seen := make(map[uint64]bool)
		for i, wait := range waits {
			pos, err := wait()
			if err != nil {
				t.Fatalf("round %d, stream %d: %v", round, i, err)
			}
			if seen[pos] {
				t.Fatalf("round %d: Position %d reported for two appends", round, pos)
			}
			seen[pos] = true
		}
	}
	for i := range streams {
		id := n.ID(strconv.Itoa(i))
		if got := seqs(readEntity(t, ctx, log, typ, id, 1)); !equalSeqs(got, span(1, rounds)) {
			t.Fatalf("stream %s: Seqs %v, want 1..%d", id, got, rounds)
		}
	}
}

func asyncDoneOnce(t *conformancetest.T, log eventlog.Log) {
	if a := asyncAppender(log); a != nil {
		checkOutcomes(t, log, "AppendAsync", func(ctx context.Context, typ, id string, expected uint64, events []eventlog.Event) (uint64, error) {
			return asyncAppend(ctx, a, typ, id, expected, events)
		})
	}
}

func asyncCanceledBeforeSend(t *conformancetest.T, log eventlog.Log) {
	if a := asyncAppender(log); a != nil {
		checkCanceled(t, log, "AppendAsync", func(ctx context.Context, typ, id string, expected uint64, events []eventlog.Event) (uint64, error) {
			return asyncAppend(ctx, a, typ, id, expected, events)
		})
	}
}

func asyncPipelined(t *conformancetest.T, log eventlog.Log) {
	a := asyncAppender(log)
	if a == nil {
		return
	}
	checkPipelined(t, log, func(ctx context.Context, typ, id string, expected uint64, events []eventlog.Event) func() (uint64, error) {
		type result struct {
			pos uint64
			err error
		}
		out := make(chan result, 1)
		a.AppendAsync(ctx, typ, id, expected, events, func(pos uint64, err error) { out <- result{pos, err} })
		return func() (uint64, error) {
			select {
			case r := <-out:
				return r.pos, r.err
			case <-time.After(doneTimeout):
				return 0, errNoDone
			}
		}
	})
}

func roundClosesAfterDone(t *conformancetest.T, log eventlog.Log) {
	if a := roundAppender(log); a != nil {
		app := func(ctx context.Context, typ, id string, expected uint64, events []eventlog.Event) (uint64, error) {
			return roundAppend(ctx, a, typ, id, expected, events)
		}
		checkOutcomes(t, log, "AppendRound", app)
		checkCanceled(t, log, "AppendRound", app)
	}
}

func roundPipelined(t *conformancetest.T, log eventlog.Log) {
	if a := roundAppender(log); a != nil {
		checkPipelined(t, log, func(ctx context.Context, typ, id string, expected uint64, events []eventlog.Event) func() (uint64, error) {
			return startRound(ctx, a, typ, id, expected, events)
		})
	}
}
