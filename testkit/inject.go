package testkit

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/eventsourced-go/eventsourced/eventlog"
)

// Op names an operation of a [Log] or a [Store].
type Op string

// The operations of a Log.
const (
	// OpAppend is Append and AppendAsync.
	OpAppend       Op = "append"
	OpLastSeq      Op = "last-seq"
	OpReadEntity   Op = "read-entity"
	OpReadType     Op = "read-type"
	OpSubscribe    Op = "subscribe"
	OpReadAll      Op = "read-all"
	OpSubscribeAll Op = "subscribe-all"
	OpDeleteTo     Op = "delete-to"
	OpDeleteStream Op = "delete-stream"
	OpEntityIDs    Op = "entity-ids"
	OpEntityTypes  Op = "entity-types"
)

// The operations of a Store.
const (
	OpSaveSnapshot    Op = "save-snapshot"
	OpLoadSnapshot    Op = "load-snapshot"
	OpDeleteSnapshots Op = "delete-snapshots"
	OpListSnapshots   Op = "list-snapshots"
)

// writes are the operations that change what is stored: the only ones an
// ambiguous failure applies to.
var writes = []Op{OpAppend, OpDeleteTo, OpDeleteStream, OpSaveSnapshot, OpDeleteSnapshots}

var logOps = []Op{OpAppend, OpLastSeq, OpReadEntity, OpReadType, OpSubscribe, OpReadAll, OpSubscribeAll, OpDeleteTo, OpDeleteStream, OpEntityIDs, OpEntityTypes}

var storeOps = []Op{OpSaveSnapshot, OpLoadSnapshot, OpDeleteSnapshots, OpListSnapshots}

// Call is an operation about to run, as a [Rule]'s Match sees it. Fields
// that do not apply to the operation are zero.
type Call struct {
	Op Op
	// Type and ID name the stream or the entity; Type alone for the reads
	// of a type, neither for the reads of the whole log.
	Type, ID string
	// Types are the types of ReadAll and SubscribeAll (none: every type).
	Types []string
	// Expected is the last Seq an append expects.
	Expected uint64
	// Events are the events of an append; Match must not change them.
	Events []eventlog.Event
	// Seq is the Seq of DeleteTo, of a saved snapshot, or the first Seq
	// of ReadEntity.
	Seq uint64
	// After is the Position ReadType, Subscribe, ReadAll and SubscribeAll
	// read after.
	After uint64
}

// String names the call, for errors: "append Order/o-1 expecting seq 2".
func (c Call) String() string {
	s := string(c.Op)
	switch {
	case c.ID != "":
		s += " " + eventlog.FormatID(c.Type) + "/" + eventlog.FormatID(c.ID)
	case c.Type != "":
		s += " " + eventlog.FormatID(c.Type)
	}
	switch c.Op {
	case OpAppend:
		s += fmt.Sprintf(" expecting seq %d", c.Expected)
	case OpDeleteTo, OpSaveSnapshot:
		s += fmt.Sprintf(" at seq %d", c.Seq)
	}
	return s
}

// Failure is how a [Rule] fails the calls it acts on.
type Failure int

const (
	// Pass lets the call run (after the rule's Delay).
	Pass Failure = iota
	// Fail fails the call without running it, with an error matching
	// [ErrInjected] and [eventlog.ErrUnavailable]: a store that could not
	// be reached. To the entity runtime an append that fails so has an
	// unknown outcome, as it would in production.
	Fail
	// Reject fails the call without running it, with an error matching
	// [ErrInjected] and [eventlog.ErrInvalid]: the store refused it, and
	// nothing was written.
	Reject
	// Ambiguous runs the call and then fails it as Fail does: the write
	// lands, the caller gets an error. Only for the operations that write
	// (append, delete-to, delete-stream, save-snapshot, delete-snapshots).
	Ambiguous
)

func (f Failure) String() string {
	switch f {
	case Pass:
		return "pass"
	case Fail:
		return "fail"
	case Reject:
		return "reject"
	case Ambiguous:
		return "ambiguous"
	}
	return fmt.Sprintf("Failure(%d)", int(f))
}

// ErrInjected is matched by every error a [Rule] injects.
var ErrInjected = errors.New("testkit: injected failure")

// ErrInvalidRule reports a [Rule] that [Injector.Inject] refuses.
var ErrInvalidRule = errors.New("testkit: invalid rule")

// InjectedError is the error of a call a [Rule] failed. It matches
// [ErrInjected] and, by its Failure, [eventlog.ErrUnavailable] (Fail,
// Ambiguous) or [eventlog.ErrInvalid] (Reject), and wraps the rule's Err
// if it has one.
type InjectedError struct {
	Call    Call
	Failure Failure
	// Err is the rule's Err, nil if none.
	Err error
}

// Error implements error.
func (e *InjectedError) Error() string {
	what := "store unavailable"
	switch e.Failure {
	case Reject:
		what = "rejected, nothing written"
	case Ambiguous:
		what = "store unavailable after the write landed"
	}
	s := fmt.Sprintf("testkit: injected failure of %s: %s", e.Call, what)
	if e.Err != nil {
		s += ": " + e.Err.Error()
	}
	return s
}

// Is reports whether target is ErrInjected or the contract's sentinel of
// the failure.
func (e *InjectedError) Is(target error) bool {
	switch target {
	case ErrInjected:
		return true
	case eventlog.ErrUnavailable:
		return e.Failure == Fail || e.Failure == Ambiguous
	case eventlog.ErrInvalid:
		return e.Failure == Reject
	}
	return false
}

// Unwrap returns the rule's Err.
func (e *InjectedError) Unwrap() error { return e.Err }

// Rule says which calls to act on and what to do to them.
type Rule struct {
	// Ops are the operations it applies to; none means all of the
	// wrapper's.
	Ops []Op
	// Match, if not nil, picks the calls among those of Ops; a call it
	// returns false for passes untouched and does not count. It runs with
	// the injector's lock held: it must not call the injector.
	Match func(Call) bool
	// Times is how many calls it acts on before it is spent; 0 means every
	// matching call until removed.
	Times int
	// Delay is how long a call waits before it runs or fails; a context
	// that ends meanwhile fails the call with its error, and nothing runs.
	Delay time.Duration
	// Failure is what happens after the delay.
	Failure Failure
	// Err, if not nil, is wrapped by the injected error, so a test can
	// tell its rules' failures apart.
	Err error
}

// Injection is a rule in force.
type Injection struct {
	in   *Injector
	rule Rule
	hits int // calls acted on; guarded by in.mu
}

// Hits returns how many calls the rule has acted on.
func (i *Injection) Hits() int {
	i.in.mu.Lock()
	defer i.in.mu.Unlock()
	return i.hits
}

// Remove takes the rule out of force; calls already delayed or failed by
// it are not affected. Removing twice is harmless.
func (i *Injection) Remove() {
	i.in.mu.Lock()
	defer i.in.mu.Unlock()
	i.in.rules = slices.DeleteFunc(i.in.rules, func(r *Injection) bool { return r == i })
}

// Injector holds the rules of a [Log] or a [Store] and counts their calls.
// The first rule in force (in the order injected) that matches a call acts
// on it; the others do not see it.
type Injector struct {
	ops []Op // the operations of the wrapper

	mu    sync.Mutex // guards what follows
	rules []*Injection
	calls map[Op]int
}

func newInjector(ops []Op) *Injector {
	return &Injector{ops: ops, calls: make(map[Op]int)}
}

// Inject puts r in force. It fails with an error matching ErrInvalidRule if
// r names an operation the wrapper does not have, has a negative Times or
// Delay or an unknown Failure, or is Ambiguous for an operation that does
// not write.
func (in *Injector) Inject(r Rule) (*Injection, error) {
	for _, op := range r.Ops {
		if !slices.Contains(in.ops, op) {
			return nil, fmt.Errorf("%w: operation %q is not one of %v", ErrInvalidRule, op, in.ops)
		}
	}
	switch {
	case r.Times < 0:
		return nil, fmt.Errorf("%w: Times %d is negative", ErrInvalidRule, r.Times)
	case r.Delay < 0:
		return nil, fmt.Errorf("%w: Delay %v is negative", ErrInvalidRule, r.Delay)
	case r.Failure < Pass || r.Failure > Ambiguous:
		return nil, fmt.Errorf("%w: unknown %v", ErrInvalidRule, r.Failure)
	case r.Failure == Pass && r.Delay == 0:
		return nil, fmt.Errorf("%w: a rule that passes calls without a Delay does nothing", ErrInvalidRule)
	}
	if r.Failure == Ambiguous {
		ops := r.Ops
		if len(ops) == 0 {
			ops = in.ops
		}
		for _, op := range ops {
			if !slices.Contains(writes, op) {
				return nil, fmt.Errorf("%w: an ambiguous failure needs a write, and %q does not write (name the ops: one of %v)", ErrInvalidRule, op, writes)
			}
		}
	}
	r.Ops = slices.Clone(r.Ops)
	inj := &Injection{in: in, rule: r}
	in.mu.Lock()
	defer in.mu.Unlock()
	in.rules = append(in.rules, inj)
	return inj, nil
}

// FailNext fails the next n calls of ops (all of the wrapper's if none)
// with Fail: nothing runs, the caller gets an error matching
// eventlog.ErrUnavailable.
func (in *Injector) FailNext(n int, ops ...Op) (*Injection, error) {
	return in.injectNext(n, ops, Fail)
}

// RejectNext fails the next n calls of ops with Reject: nothing runs, the
// caller gets an error matching eventlog.ErrInvalid.
func (in *Injector) RejectNext(n int, ops ...Op) (*Injection, error) {
	return in.injectNext(n, ops, Reject)
}

// AmbiguousNext fails the next n calls of ops with Ambiguous: each write
// lands, then the caller gets an error matching eventlog.ErrUnavailable.
// ops must all write.
func (in *Injector) AmbiguousNext(n int, ops ...Op) (*Injection, error) {
	return in.injectNext(n, ops, Ambiguous)
}

// DelayNext delays the next n calls of ops by d, then lets them run.
func (in *Injector) DelayNext(n int, d time.Duration, ops ...Op) (*Injection, error) {
	if n <= 0 {
		return nil, fmt.Errorf("%w: DelayNext of %d calls", ErrInvalidRule, n)
	}
	return in.Inject(Rule{Ops: ops, Times: n, Delay: d})
}

func (in *Injector) injectNext(n int, ops []Op, f Failure) (*Injection, error) {
	if n <= 0 {
		return nil, fmt.Errorf("%w: %v of the next %d calls", ErrInvalidRule, f, n)
	}
	return in.Inject(Rule{Ops: ops, Times: n, Failure: f})
}

// Clear removes every rule.
func (in *Injector) Clear() {
	in.mu.Lock()
	defer in.mu.Unlock()
	in.rules = nil
}

// Calls returns how many calls of op the wrapper has seen, acted on or
// not.
func (in *Injector) Calls(op Op) int {
	in.mu.Lock()
	defer in.mu.Unlock()
	return in.calls[op]
}

// fault is what a rule decided for one call.
type fault struct {
	delay   time.Duration
	failure Failure
	err     error // the rule's Err
}

// decide counts c and returns what the first matching rule does to it.
func (in *Injector) decide(c Call) fault {
	in.mu.Lock()
	defer in.mu.Unlock()
	in.calls[c.Op]++
	for k, inj := range in.rules {
		r := &inj.rule
		if len(r.Ops) > 0 && !slices.Contains(r.Ops, c.Op) {
			continue
		}
		if r.Match != nil && !r.Match(c) {
			continue
		}
		inj.hits++
		if r.Times > 0 && inj.hits == r.Times {
			in.rules = slices.Delete(in.rules, k, k+1)
		}
		return fault{delay: r.Delay, failure: r.Failure, err: r.Err}
	}
	return fault{}
}

// before waits out f's delay and returns the error a call fails with
// before it runs: ctx's if it ended during the delay, the injected error
// for Fail and Reject, nil if the call is to run.
func (f fault) before(ctx context.Context, c Call) error {
	if f.delay > 0 {
		t := time.NewTimer(f.delay)
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			return context.Cause(ctx)
		}
	}
	if f.failure == Fail || f.failure == Reject {
		return &InjectedError{Call: c, Failure: f.failure, Err: f.err}
	}
	return nil
}

// after returns the error of a call that ran and returned err: the
// injected error if the call succeeded and f is Ambiguous, else err.
func (f fault) after(c Call, err error) error {
	if err == nil && f.failure == Ambiguous {
		return &InjectedError{Call: c, Failure: Ambiguous, Err: f.err}
	}
	return err
}
