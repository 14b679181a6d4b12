package faulttest

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/eventsourced-go/eventsourced/binarize"
	"github.com/eventsourced-go/eventsourced/entity"
	"github.com/eventsourced-go/eventsourced/eventlog"
)

// LedgerType is the name of the ledger entity type.
const LedgerType = "FaultLedger"

// Ledger is the state of a ledger entity: how many commands it recorded.
type Ledger struct{ N int }

// LedgerEvent is the event type of ledgers.
type LedgerEvent interface{ isLedgerEvent() }

// Recorded is the one event of a ledger: the id of the command that wrote
// it.
type Recorded struct {
	Cmd string `json:"cmd"`
}

func (Recorded) isLedgerEvent() {}

// Record records Cmd, which must be unique, and replies with the ledger's
// new count.
type Record struct{ Cmd string }

// Handle implements entity.Command.
func (c Record) Handle(tx *entity.Tx[Ledger, LedgerEvent]) (int, error) {
	return tx.Persist(Recorded(c)).N, nil
}

// Def returns the ledger entity type.
func Def() entity.Type[Ledger, LedgerEvent] {
	events := binarize.NewRegistry[LedgerEvent](binarize.JSON)
	binarize.MustRegister[Recorded](events, "Recorded")
	return entity.Type[Ledger, LedgerEvent]{
		Name:   LedgerType,
		Apply:  func(s Ledger, _ LedgerEvent) Ledger { s.N++; return s },
		Events: events,
		State:  binarize.Value[Ledger](binarize.JSON),
	}
}

// Load drives ledger commands at a kind: Callers goroutines, each asking
// one command after another of entity (caller*131 + k*Callers) % Entities,
// each Ask under a ctx with Deadline, pausing Pause after a failure.
type Load struct {
	Kind     *entity.Kind[Ledger, LedgerEvent]
	Entities int
	Callers  int
	Deadline time.Duration
	Pause    time.Duration
	// Slack is how late after its deadline an Ask may return before Run
	// counts it as late.
	Slack time.Duration
}

// Run is a running Load.
type Run struct {
	load  Load
	start time.Time
	stop  chan struct{}
	wg    sync.WaitGroup

	asks atomic.Int64

	mu        sync.Mutex        // guards the fields below
	acked     map[string]string // command id -> entity id
	successes []time.Duration   // when each acknowledged Ask returned, since start
	failures  []Failure
	late      []Failure
}

// Failure is one failed (or late) Ask.
type Failure struct {
	At   time.Duration // when it returned, since the start of the run
	Took time.Duration
	Err  error
}

// Start starts the load.
func (l Load) Start() *Run {
	if l.Slack == 0 {
		l.Slack = 500 * time.Millisecond
	}
	r := &Run{load: l, start: time.Now(), stop: make(chan struct{}), acked: make(map[string]string)}
	for c := range l.Callers {
		r.wg.Go(func() { r.caller(c) })
	}
	return r
}

func (r *Run) caller(c int) {
	l := &r.load
	for k := 0; ; k++ {
		select {
		case <-r.stop:
			return
		default:
		}
		id := fmt.Sprintf("e%05d", (c*131+k*l.Callers)%l.Entities)
		cmd := fmt.Sprintf("c%d-%d", c, k)
		ctx, cancel := context.WithTimeout(context.Background(), l.Deadline)
		began := time.Now()
		_, err := entity.Ask(ctx, l.Kind.Ref(id), Record{Cmd: cmd})
		cancel()
		took := time.Since(began)
		r.asks.Add(1)
		r.mu.Lock()
		at := time.Since(r.start) // under mu: successes stay in order
		if took > l.Deadline+l.Slack {
			r.late = append(r.late, Failure{At: at, Took: took, Err: err})
		}
		if err == nil {
			r.acked[cmd] = id
			r.successes = append(r.successes, at)
		} else {
			r.failures = append(r.failures, Failure{At: at, Took: took, Err: err})
		}
		r.mu.Unlock()
		if err != nil {
			select {
			case <-r.stop:
				return
			case <-time.After(l.Pause):
			}
		}
	}
}

// Now returns the time since the start of the run, for marking events
// such as a restart.
func (r *Run) Now() time.Duration { return time.Since(r.start) }

// Acked returns how many Asks succeeded so far.
func (r *Run) Acked() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.acked)
}

// Stop stops the load and waits for the callers.
func (r *Run) Stop() {
	close(r.stop)
	r.wg.Wait()
}

// AckedCommands returns the acknowledged commands: command id -> entity id.
func (r *Run) AckedCommands() map[string]string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.acked
}

// Late returns the Asks that returned later than their deadline plus the
// slack.
func (r *Run) Late() []Failure {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.late)
}

// Failures returns the failed Asks that returned in [from, to).
func (r *Run) Failures(from, to time.Duration) []Failure {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []Failure
	for _, f := range r.failures {
		if f.At >= from && f.At < to {
			out = append(out, f)
		}
	}
	return out
}

// Successes returns how many Asks succeeded in [from, to).
func (r *Run) Successes(from, to time.Duration) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	n := 0
	for _, at := range r.successes {
		if at >= from && at < to {
			n++
		}
	}
	return n
}

// FirstSuccessAfter returns how long after at (a time since the start of
// the run) the first successful Ask returned; false if none did since.
func (r *Run) FirstSuccessAfter(at time.Duration) (time.Duration, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	i, _ := slices.BinarySearch(r.successes, at)
	if i == len(r.successes) {
		return 0, false
	}
	return r.successes[i] - at, true
}

// Rate returns the successful Asks per second in [from, to).
func (r *Run) Rate(from, to time.Duration) float64 {
	return float64(r.Successes(from, to)) / (to - from).Seconds()
}

// RecoveredAfter returns how long after at the successful Asks per second
// first reached rate over a window (a sliding window, moved 50 ms at a
// time, starting at or after at); false if they never did.
func (r *Run) RecoveredAfter(at time.Duration, rate float64, window time.Duration) (time.Duration, bool) {
	end := r.Now()
	for t := at; t+window <= end; t += 50 * time.Millisecond {
		if r.Rate(t, t+window) >= rate {
			return t + window - at, true
		}
	}
	return 0, false
}

// WaitAcked waits until at least n Asks succeeded, or d passes.
func (r *Run) WaitAcked(n int, d time.Duration) bool {
	deadline := time.Now().Add(d)
	for r.Acked() < n {
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(10 * time.Millisecond)
	}
	return true
}

// Verify reads every ledger event in log and checks it against the
// acknowledged commands: each acknowledged command's event is stored
// exactly once, on its entity; no command's event is stored twice; every
// entity's Seqs run 1, 2, 3 ... It returns how many events are stored.
func Verify(t testing.TB, log eventlog.Log, acked map[string]string) int {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	count := make(map[string]int)
	where := make(map[string]string)
	lastSeq := make(map[string]uint64)
	stored := 0
	for rec, err := range log.ReadType(ctx, LedgerType, 0) {
		if err != nil {
			t.Fatalf("read the ledgers: %v", err)
		}
		var ev Recorded
		if err := json.Unmarshal(rec.Data, &ev); err != nil {
			t.Fatalf("%s#%d: %v", rec.EntityID, rec.Seq, err)
		}
		if rec.Seq != lastSeq[rec.EntityID]+1 {
			t.Errorf("%s: Seq %d follows %d", rec.EntityID, rec.Seq, lastSeq[rec.EntityID])
		}
		lastSeq[rec.EntityID] = rec.Seq
		count[ev.Cmd]++
		where[ev.Cmd] = rec.EntityID
		stored++
	}
	for cmd, n := range count {
		if n > 1 {
			t.Errorf("command %s is stored %d times", cmd, n)
		}
	}
	lost := 0
	for cmd, id := range acked {
		switch {
		case count[cmd] == 0:
			lost++
			if lost <= 5 {
				t.Errorf("acknowledged command %s on %s is not stored", cmd, id)
			}
		case where[cmd] != id:
			t.Errorf("command %s on %s is stored on %s", cmd, id, where[cmd])
		}
	}
	if lost > 0 {
		t.Errorf("%d of %d acknowledged commands lost", lost, len(acked))
	}
	return stored
}

// CheckFailures checks that every failure in fs matches one of want, and
// reports the first few that do not; it logs up to four distinct messages.
func CheckFailures(t testing.TB, what string, fs []Failure, want ...error) {
	t.Helper()
	bad := 0
	samples := make(map[string]bool)
	for _, f := range fs {
		ok := false
		for _, w := range want {
			if errors.Is(f.Err, w) {
				ok = true
				break
			}
		}
		if !ok {
			bad++
			if bad <= 3 {
				t.Errorf("%s: unexpected failure after %v: %v", what, f.Took.Round(time.Millisecond), f.Err)
			}
			continue
		}
		if len(samples) < 4 {
			samples[f.Err.Error()] = true
		}
	}
	if bad > 3 {
		t.Errorf("%s: %d unexpected failures in all", what, bad)
	}
	for s := range samples {
		t.Logf("%s: failure: %s", what, s)
	}
}

// CheckLate fails t if any Ask of r returned later than its deadline plus
// the slack.
func CheckLate(t testing.TB, r *Run) {
	t.Helper()
	late := r.Late()
	for i, f := range late {
		if i == 3 {
			t.Errorf("%d Asks late in all", len(late))
			break
		}
		t.Errorf("an Ask with a %v deadline returned after %v (slack %v): %v", r.load.Deadline, f.Took.Round(time.Millisecond), r.load.Slack, f.Err)
	}
}

// CheckBackQuickly checks that commands succeed again within d of up, the
// time the store accepted connections again after an outage that began at
// before: the first one, and as many as the load has callers within d (a
// client stuck on calls lost with the connection shows none at all). It
// logs how long the rate of the second before the outage took to come back
// to a tenth and to half: a measurement, not a check, since a restarted
// server reloads its data for a few seconds and a shared machine is noisy.
func CheckBackQuickly(t testing.TB, r *Run, before, up, d time.Duration) {
	t.Helper()
	first, ok := r.FirstSuccessAfter(up)
	if !ok {
		t.Fatalf("no command succeeded after the store was back")
	}
	rateBefore := r.Rate(before-time.Second, before)
	tenth, tenthOK := r.RecoveredAfter(up, rateBefore/10, 500*time.Millisecond)
	half, halfOK := r.RecoveredAfter(up, rateBefore/2, 500*time.Millisecond)
	show := func(d time.Duration, ok bool) string {
		if !ok {
			return "not within the run"
		}
		return d.Round(time.Millisecond).String()
	}
	within := r.Successes(up, up+d)
	t.Logf("%.0f commands/s before the outage; after the store accepted connections again: first success after %v, %d successes within %v, a tenth of the rate after %s, half after %s",
		rateBefore, first.Round(time.Millisecond), within, d, show(tenth, tenthOK), show(half, halfOK))
	if first > d {
		t.Errorf("the first command succeeded %v after the store accepted connections again, want within %v", first.Round(time.Millisecond), d)
	}
	if within < r.load.Callers {
		t.Errorf("%d commands succeeded within %v after the store accepted connections again, want at least one per caller (%d)", within, d, r.load.Callers)
	}
}

// CallsReturnByDeadline runs every call of calls at once, each under a ctx
// with the deadline, against a store that does not answer (where says
// how), and checks that each returns an error matching
// context.DeadlineExceeded no later than the deadline plus slack.
func CallsReturnByDeadline(t testing.TB, where string, deadline, slack time.Duration, calls map[string]func(ctx context.Context) error) {
	t.Helper()
	type result struct {
		what string
		err  error
		took time.Duration
	}
	results := make(chan result, len(calls))
	for what, f := range calls {
		go func() {
			ctx, cancel := context.WithTimeout(context.Background(), deadline)
			defer cancel()
			start := time.Now()
			err := f(ctx)
			results <- result{what, err, time.Since(start)}
		}()
	}
	for range calls {
		r := <-results
		if !errors.Is(r.err, context.DeadlineExceeded) {
			t.Errorf("%s %s: %v, want an error matching DeadlineExceeded", r.what, where, r.err)
		}
		if r.took > deadline+slack {
			t.Errorf("%s %s returned after %v, more than its deadline %v plus %v", r.what, where, r.took.Round(time.Millisecond), deadline, slack)
		}
	}
}
