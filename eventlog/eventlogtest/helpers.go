package eventlogtest

import (
	"context"
	"errors"
	"fmt"
	"iter"
	"slices"
	"strings"
	"time"

	"github.com/eventsourced-go/eventsourced/eventlog"
	"github.com/eventsourced-go/eventsourced/internal/conformancetest"
)

// endTimeout bounds how long a subscription may take to end after its ctx is
// canceled or its consumer breaks out.
const endTimeout = 5 * time.Second

// ruleErrorf and ruleFatalf report a rule other than the running case's,
// such as one a helper checks.
var (
	ruleErrorf = conformancetest.RuleErrorf
	ruleFatalf = conformancetest.RuleFatalf
)

// ev returns an event named name with data.
func ev(name, data string) eventlog.Event {
	return eventlog.Event{Name: name, Data: []byte(data)}
}

// evs returns n events named name-1 ... name-n with data of the same text.
func evs(name string, from, n int) []eventlog.Event {
	out := make([]eventlog.Event, n)
	for i := range out {
		s := fmt.Sprintf("%s-%d", name, from+i)
		out[i] = ev(s, s)
	}
	return out
}

// mustAppend appends and ends the case on an error.
func mustAppend(t TB, ctx context.Context, log eventlog.Log, typ, id string, expected uint64, events ...eventlog.Event) uint64 {
	t.Helper()
	pos, err := log.Append(ctx, typ, id, expected, events...)
	if err != nil {
		ruleFatalf(t, "an append at the stream's last Seq succeeds",
			"Append(%s/%s, expected %d, %d events): %v", typ, id, expected, len(events), err)
	}
	return pos
}

// mustLastSeq returns the stream's last Seq and ends the case on an error.
func mustLastSeq(t TB, ctx context.Context, log eventlog.Log, typ, id string) uint64 {
	t.Helper()
	seq, err := log.LastSeq(ctx, typ, id)
	if err != nil {
		ruleFatalf(t, "LastSeq of a valid stream succeeds", "LastSeq(%s/%s): %v", typ, id, err)
	}
	return seq
}

// readEntity reads a whole stream from a Seq.
func readEntity(t TB, ctx context.Context, log eventlog.Log, typ, id string, from uint64) []eventlog.Record {
	t.Helper()
	return conformancetest.MustCollect(t, fmt.Sprintf("ReadEntity(%s/%s, from %d)", typ, id, from), log.ReadEntity(ctx, typ, id, from))
}

// readType reads a whole type after a Position.
func readType(t TB, ctx context.Context, log eventlog.Log, typ string, after uint64) []eventlog.Record {
	t.Helper()
	return conformancetest.MustCollect(t, fmt.Sprintf("ReadType(%s, after %d)", typ, after), log.ReadType(ctx, typ, after))
}

// seqList is a list of Seqs that prints runs compactly: [1-3 5 7-250].
type seqList []uint64

// String implements fmt.Stringer.
func (l seqList) String() string {
	var b strings.Builder
	b.WriteByte('[')
	for i := 0; i < len(l); {
		j := i
		for j+1 < len(l) && l[j+1] == l[j]+1 {
			j++
		}
		if i > 0 {
			b.WriteByte(' ')
		}
		if j > i {
			fmt.Fprintf(&b, "%d-%d", l[i], l[j])
		} else {
			fmt.Fprintf(&b, "%d", l[i])
		}
		i = j + 1
	}
	b.WriteByte(']')
	return b.String()
}

// seqs returns the Seqs of records.
func seqs(recs []eventlog.Record) seqList {
	out := make(seqList, len(recs))
	for i, r := range recs {
		out[i] = r.Seq
	}
	return out
}

// span returns the Seqs from..to.
func span(from, to uint64) seqList {
	var out seqList
	for s := from; s <= to; s++ {
		out = append(out, s)
	}
	return out
}

// equalSeqs reports whether a and b are equal.
func equalSeqs(a, b seqList) bool { return slices.Equal(a, b) }

// key names a record for comparisons and reports.
type key struct {
	id  string
	seq uint64
}

func keyOf(r eventlog.Record) key { return key{r.EntityID, r.Seq} }

func (k key) String() string { return fmt.Sprintf("%s#%d", k.id, k.seq) }

// diffKeys describes how got differs from want, briefly; "" if they match.
func diffKeys(got, want []key) string {
	for i := range min(len(got), len(want)) {
		if got[i] != want[i] {
			return fmt.Sprintf("element %d is %v, want %v (%d elements, want %d)", i, got[i], want[i], len(got), len(want))
		}
	}
	switch {
	case len(got) > len(want):
		return fmt.Sprintf("%d elements, want %d: extra %v", len(got), len(want), got[len(want)])
	case len(got) < len(want):
		return fmt.Sprintf("%d elements, want %d: missing %v", len(got), len(want), want[len(got)])
	}
	return ""
}

// conflict returns err as a *ConflictError, reporting a broken rule if it is
// not one: the case's if err is nil.
func conflict(t *conformancetest.T, err error) *eventlog.ConflictError {
	t.Helper()
	if err == nil {
		t.Errorf("Append succeeded, want a conflict")
		return nil
	}
	if !errors.Is(err, eventlog.ErrConflict) {
		ruleErrorf(t, "a conflict matches errors.Is(err, eventlog.ErrConflict)", "got %v", err)
	}
	var ce *eventlog.ConflictError
	if !errors.As(err, &ce) {
		ruleErrorf(t, "a conflict is a *eventlog.ConflictError (errors.As)", "got %T: %v", err, err)
		return nil
	}
	return ce
}

// checkConflict reports a broken rule unless err is a conflict on typ/id
// with the given Expected and Actual.
func checkConflict(t *conformancetest.T, err error, typ, id string, expected, actual uint64) {
	t.Helper()
	ce := conflict(t, err)
	if ce == nil {
		return
	}
	if ce.EntityType != typ || ce.EntityID != id {
		ruleErrorf(t, "a ConflictError names its stream", "got %s/%s, want %s/%s", ce.EntityType, ce.EntityID, typ, id)
	}
	if ce.Expected != expected || ce.Actual != actual {
		ruleErrorf(t, "a ConflictError carries the expected Seq and the stream's actual last Seq",
			"got Expected %d Actual %d, want Expected %d Actual %d", ce.Expected, ce.Actual, expected, actual)
	}
}

// item is one element of an iterator, passed between goroutines.
type item struct {
	rec eventlog.Record
	err error
}

// subscription consumes a Subscribe iterator in its own goroutine.
type subscription struct {
	items  chan item
	done   chan struct{}
	cancel context.CancelFunc
}

// subscribe starts consuming log.Subscribe(typ, after) under a child of ctx.
// Every element goes to s.items; s.done closes when the iterator returns.
func subscribe(t TB, ctx context.Context, log eventlog.Log, typ string, after uint64) *subscription {
	return consume(t, ctx, "Subscribe", 1024, func(ctx context.Context) iter.Seq2[eventlog.Record, error] {
		return log.Subscribe(ctx, typ, after)
	})
}

// consume starts consuming the live iterator that open returns for a child
// of ctx, in its own goroutine, with room for buffer elements the case has
// not taken yet. what names the call in reports.
func consume(t TB, ctx context.Context, what string, buffer int, open func(context.Context) iter.Seq2[eventlog.Record, error]) *subscription {
	ctx, cancel := context.WithCancel(ctx)
	s := &subscription{items: make(chan item, buffer), done: make(chan struct{}), cancel: cancel}
	go func() {
		defer close(s.done)
		defer func() {
			if p := recover(); p != nil {
				ruleErrorf(t, "an iterator is a well-behaved range function", "%s panicked: %v", what, p)
			}
		}()
		for rec, err := range open(ctx) {
			select {
			case s.items <- item{rec, err}:
			case <-ctx.Done():
				// Keep draining so the iterator sees the cancellation, but
				// never block on a consumer that stopped listening.
				select {
				case s.items <- item{rec, err}:
				default:
				}
			}
		}
	}()
	t.Cleanup(func() {
		cancel()
		if !s.waitDone(endTimeout) {
			ruleErrorf(t, what+" ends when its ctx is canceled", "it was still running %v after the case canceled it", endTimeout)
		}
	})
	return s
}

// next returns the subscription's next element, or ok false after timeout.
func (s *subscription) next(timeout time.Duration) (it item, ok bool) {
	timer := time.NewTimer(timeout)
	defer timer.Stop()
	select {
	case it := <-s.items:
		return it, true
	case <-timer.C:
		return item{}, false
	}
}

// waitDone reports whether the iterator returned within timeout.
func (s *subscription) waitDone(timeout time.Duration) bool {
	timer := time.NewTimer(timeout)
	defer timer.Stop()
	select {
	case <-s.done:
		return true
	case <-timer.C:
		return false
	}
}
