package cluster_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/eventsourced-go/eventsourced/cluster"
	"github.com/eventsourced-go/eventsourced/entity"
	"github.com/eventsourced-go/eventsourced/eventlog"
)

// gatedLog holds appends to entities whose id starts with "slow" until gate
// is closed, and reports each on entered.
type gatedLog struct {
	eventlog.Log
	gate    chan struct{}
	entered chan string
}

func (g *gatedLog) Append(ctx context.Context, typ, id string, expected uint64, events ...eventlog.Event) (uint64, error) {
	if strings.HasPrefix(id, "slow") {
		g.entered <- id
		<-g.gate
	}
	return g.Log.Append(ctx, typ, id, expected, events...)
}

// TestCancelStopsWaiting checks that a caller whose context ends stops
// waiting for a remote command at once: the one whose command is in flight
// (its outcome is then unknown: here it runs) and one queued behind it (its
// command is then never sent). The pipe carries on: the next caller in the
// queue, not the one who gave up, sends the next batch.
func TestCancelStopsWaiting(t *testing.T) {
	log := &gatedLog{Log: eventlog.NewMemory(), gate: make(chan struct{}), entered: make(chan string, 4)}
	nodes := startNodes(t, 2, log)
	opened := false
	open := func() {
		if !opened {
			opened = true
			close(log.gate)
		}
	}
	t.Cleanup(open) // before the members shut down
	from, owner := nodes[0], nodes[1].m.Address()
	pick := func(prefix string) string {
		for i := 0; ; i++ {
			if id := fmt.Sprintf("%s-%d", prefix, i); from.m.Owner("Tally", id) == owner {
				return id
			}
		}
	}
	slow, b, c := pick("slow"), pick("b"), pick("c")
	type result struct {
		n   int
		err error
	}
	ask := func(ctx context.Context, id, op string) chan result {
		ch := make(chan result, 1)
		go func() {
			n, err := cluster.Ask(ctx, from.k.Ref(id), Add{Op: op, N: 1})
			ch <- result{n, err}
		}()
		return ch
	}
	within := func(what string, ch chan result, d time.Duration) result {
		t.Helper()
		select {
		case r := <-ch:
			return r
		case <-time.After(d):
			t.Fatalf("%s: no answer within %v", what, d)
			return result{}
		}
	}
	queued := func(n int) {
		t.Helper()
		deadline := time.Now().Add(10 * time.Second)
		for cluster.PipeQueueLen(from.m, owner, "Tally") != n {
			if time.Now().After(deadline) {
				t.Fatalf("%d commands queued, want %d", cluster.PipeQueueLen(from.m, owner, "Tally"), n)
			}
			time.Sleep(time.Millisecond)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	ctxA, cancelA := context.WithCancel(ctx)
	defer cancelA()
	resA := ask(ctxA, slow, "a")
	select {
	case <-log.entered: // A is in flight, held at the owner's log
	case <-time.After(10 * time.Second):
		t.Fatal("the first command never reached the owner's log")
	}
	ctxB, cancelB := context.WithCancel(ctx)
	defer cancelB()
	resB := ask(ctxB, b, "b")
	queued(1)
	resC := ask(ctx, c, "c")
	queued(2)

	cancelB()
	if r := within("queued caller after cancel", resB, 2*time.Second); !errors.Is(r.err, context.Canceled) || errors.Is(r.err, entity.ErrOutcomeUnknown) {
		t.Errorf("queued caller after cancel: %d, %v; want context.Canceled, not ErrOutcomeUnknown (never sent)", r.n, r.err)
	}
	cancelA()
	if r := within("in-flight caller after cancel", resA, 2*time.Second); !errors.Is(r.err, context.Canceled) || !errors.Is(r.err, entity.ErrOutcomeUnknown) {
		t.Errorf("in-flight caller after cancel: %d, %v; want context.Canceled and ErrOutcomeUnknown (sent)", r.n, r.err)
	}
	select {
	case r := <-resC:
		t.Fatalf("the third command was answered (%d, %v) while the first was still held", r.n, r.err)
	default:
	}

	open()
	if r := within("third caller", resC, 10*time.Second); r.err != nil || r.n != 1 {
		t.Fatalf("third caller: %d, %v; want 1", r.n, r.err)
	}
	get := func(id string) int {
		t.Helper()
		n, err := cluster.Ask(ctx, from.k.Ref(id), Get{})
		if err != nil {
			t.Fatalf("Get %s: %v", id, err)
		}
		return n
	}
	// A was sent before its caller gave up, so it ran; B was not.
	if got := get(slow); got != 1 {
		t.Errorf("%s = %d, want 1 (sent before its caller gave up)", slow, got)
	}
	if got := get(b); got != 0 {
		t.Errorf("%s = %d, want 0 (its caller gave up before it was sent)", b, got)
	}
	if n, err := cluster.Ask(ctx, from.k.Ref(b), Add{Op: "b2", N: 1}); err != nil || n != 1 {
		t.Errorf("a later command to %s: %d, %v; want 1", b, n, err)
	}
}

// TestOwnerRunsUnderCallersDeadline checks that a remote command runs on
// its owner under its caller's deadline: a command that waits there for its
// entity (busy with a command of the owner's own, held in the log) past the
// deadline never runs, although the owner's request timeout is long. Its
// caller returns at its deadline with an error matching ErrOutcomeUnknown:
// from where it stands the command was sent and may have run.
func TestOwnerRunsUnderCallersDeadline(t *testing.T) {
	log := &gatedLog{Log: eventlog.NewMemory(), gate: make(chan struct{}), entered: make(chan string, 4)}
	nodes := startNodes(t, 2, log, cluster.WithRequestTimeout(time.Minute))
	opened := false
	open := func() {
		if !opened {
			opened = true
			close(log.gate)
		}
	}
	t.Cleanup(open)
	from, owner := nodes[0], nodes[1]
	var slow string
	for i := 0; ; i++ {
		if slow = fmt.Sprintf("slow-%d", i); from.m.Owner("Tally", slow) == owner.m.Address() {
			break
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	held := make(chan error, 1)
	go func() {
		_, err := cluster.Ask(ctx, owner.k.Ref(slow), Add{Op: "held", N: 1})
		held <- err
	}()
	select {
	case <-log.entered:
	case <-time.After(10 * time.Second):
		t.Fatal("the owner's own command never reached the log")
	}
	const deadline = 300 * time.Millisecond
	dctx, dcancel := context.WithTimeout(ctx, deadline)
	defer dcancel()
	start := time.Now()
	_, err := cluster.Ask(dctx, from.k.Ref(slow), Add{Op: "late", N: 10})
	if took := time.Since(start); took > deadline+500*time.Millisecond {
		t.Errorf("the remote Ask returned after %v, its deadline was %v", took.Round(time.Millisecond), deadline)
	}
	if !errors.Is(err, context.DeadlineExceeded) || !errors.Is(err, entity.ErrOutcomeUnknown) {
		t.Fatalf("remote Ask past its deadline: %v, want DeadlineExceeded and ErrOutcomeUnknown", err)
	}
	time.Sleep(2 * deadline) // the owner's copy of the deadline passes too
	open()
	if err := <-held; err != nil {
		t.Fatalf("the owner's own command: %v", err)
	}
	if n, err := cluster.Ask(ctx, from.k.Ref(slow), Get{}); err != nil || n != 1 {
		t.Fatalf("%s = %d, %v; want 1: the late command must not run after its caller's deadline", slow, n, err)
	}
	if ops := opsIn(t, log, []string{slow}); ops["late"] != 0 || ops["held"] != 1 {
		t.Errorf("events in the log: %v, want held once and late never", ops)
	}
}

// TestShutdownEndsRequestsInFlight checks that a member shutting down does
// not wait out the request timeout of its own requests still in flight: they
// end with ErrTimeout (the outcome is unknown), and Shutdown, which waits for
// the goroutines sending them, returns at once.
func TestShutdownEndsRequestsInFlight(t *testing.T) {
	nodes := startNodes(t, 2, eventlog.NewMemory(), cluster.WithRequestTimeout(time.Minute))
	m := nodes[0].m
	res := cluster.SendUnanswered(m, nodes[1].m.Address(), time.Minute)
	deadline := time.Now().Add(10 * time.Second)
	for cluster.Waiting(m) == 0 {
		if time.Now().After(deadline) {
			t.Fatal("the request never started waiting")
		}
		time.Sleep(time.Millisecond)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	start := time.Now()
	if err := m.Shutdown(ctx); err != nil {
		t.Fatalf("Shutdown: %v", err)
	}
	if d := time.Since(start); d > 15*time.Second {
		t.Errorf("Shutdown took %v with a request in flight", d)
	}
	select {
	case err := <-res:
		if !errors.Is(err, cluster.ErrTimeout) || !strings.Contains(err.Error(), "shut down") {
			t.Errorf("request in flight at Shutdown: %v, want ErrTimeout saying the member shut down", err)
		}
	default:
		t.Fatal("Shutdown returned before the request in flight ended")
	}
}
