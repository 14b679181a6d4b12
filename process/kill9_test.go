package process_test

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/eventsourced-go/eventsourced/binarize"
	"github.com/eventsourced-go/eventsourced/entity"
	"github.com/eventsourced-go/eventsourced/eventlog"
	"github.com/eventsourced-go/eventsourced/internal/ledgertest"
	"github.com/eventsourced-go/eventsourced/internal/natstest"
	"github.com/eventsourced-go/eventsourced/process"
	"github.com/eventsourced-go/eventsourced/projection/natsprojection"
)

// The kill -9 test: a child process (this test binary, re-run with
// killChildEnv set) runs a process manager on an embedded JetStream server
// that the test runs. Each of killOrders source events makes a step send
// two commands, each adding a unique item to a ledger entity that keeps
// idempotency keys. The first child kills itself with SIGKILL right after
// the first command of step killSelfAt went out (the step is recorded, its
// second command not sent, the projection's offset not moved); the test
// kills the second at a moment of its own choosing; a third runs to the
// end. Every item must be in the log exactly once, and every instance must
// have recorded exactly one step.

const (
	killChildEnv  = "EVENTSOURCED_PROCESS_KILL9_CHILD" // the mode: "self", "run"
	killNATSEnv   = "EVENTSOURCED_PROCESS_KILL9_NATS"  // the server's URL
	killLastEnv   = "EVENTSOURCED_PROCESS_KILL9_LAST"  // the last source Position
	killOrders    = 300
	killLedgers   = 10
	killSelfAt    = 40 // order the first child dies in
	killChildTime = 25 * time.Second
)

func TestMain(m *testing.M) {
	if mode := os.Getenv(killChildEnv); mode != "" {
		os.Exit(runKillChild(mode))
	}
	os.Exit(m.Run())
}

type (
	ledger    = ledgertest.Ledger
	itemAdded = ledgertest.ItemAdded
	addItem   = ledgertest.AddItem
)

// suicidal is a Target that forwards to a ledger and, when it has
// forwarded item die, kills its process with SIGKILL.
type suicidal struct {
	entity.Ref[ledger, itemAdded]
	die int
}

func (s suicidal) Call(ctx context.Context, c *entity.Call[ledger, itemAdded]) (any, error) {
	v, err := c.RunOn(ctx, s.Ref)
	if err == nil && c.Command().(addItem).Item == s.die {
		_ = syscall.Kill(os.Getpid(), syscall.SIGKILL)
		select {} // never returns
	}
	return v, err
}

// runKillChild runs the process manager until it has handled the last
// source event, then prints "done"; mode "self" kills itself at
// killSelfAt.
func runKillChild(mode string) int {
	ctx, cancel := context.WithTimeout(context.Background(), killChildTime)
	defer cancel()
	fail := func(err error) int {
		fmt.Fprintln(os.Stderr, "kill9 child:", err)
		return 1
	}
	last, err := strconv.ParseUint(os.Getenv(killLastEnv), 10, 64)
	if err != nil {
		return fail(err)
	}
	log, js, closing, err := natstest.Dial(ctx, os.Getenv(killNATSEnv))
	if err != nil {
		return fail(err)
	}
	defer closing()
	offsets, err := natsprojection.New(ctx, js)
	if err != nil {
		return fail(err)
	}
	sys, err := entity.NewSystem(log, entity.WithoutTelemetry())
	if err != nil {
		return fail(err)
	}
	ledgers, err := entity.Register(sys, ledgertest.Type(), entity.WithIdempotency())
	if err != nil {
		return fail(err)
	}
	die := -1
	if mode == "self" {
		die = 2 * killSelfAt
	}
	m, err := process.New(sys, process.Definition[int]{
		Name:    "Filler",
		Sources: []string{"Order"},
		Correlate: func(rec eventlog.Record) (string, bool) {
			return rec.EntityID, true
		},
		Handle: func(steps int, in process.Input) (int, process.Effects, error) {
			i, err := strconv.Atoi(strings.TrimPrefix(in.Instance, "o-"))
			if err != nil {
				return steps, process.Effects{}, err
			}
			target := suicidal{Ref: ledgers.Ref("l-" + strconv.Itoa(i%killLedgers)), die: die}
			return steps + 1, process.Effects{Commands: []process.Command{
				process.Send[ledger, itemAdded, int](target, addItem{Item: 2 * i}),
				process.Send[ledger, itemAdded, int](target, addItem{Item: 2*i + 1}),
			}}, nil
		},
	}, offsets)
	if err != nil {
		return fail(err)
	}
	if err := m.Start(ctx); err != nil {
		return fail(err)
	}
	if err := m.WaitFor(ctx, last); err != nil {
		return fail(err)
	}
	if err := m.Stop(ctx); err != nil {
		return fail(err)
	}
	st := m.Stats()
	fmt.Printf("done steps=%d resent=%d\n", st.Steps, st.Resent)
	return 0
}

// TestKill9BetweenSendingAndRecording checks that every command a step
// decides acts exactly once across SIGKILLs of the process manager's
// process.
func TestKill9BetweenSendingAndRecording(t *testing.T) {
	srv := natstest.Server(t)
	log := natstest.SetUp(t, natstest.Connect(t, srv))
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	var last uint64
	var err error
	for i := range killOrders {
		if last, err = log.Append(ctx, "Order", fmt.Sprintf("o-%d", i), 0, eventlog.Event{Name: "Placed"}); err != nil {
			t.Fatal(err)
		}
	}
	items := func() map[int]int {
		got := map[int]int{}
		for rec, err := range log.ReadType(ctx, "Ledger", 0) {
			if err != nil {
				t.Fatal(err)
			}
			var e itemAdded
			if err := binarize.JSON.Unmarshal(rec.Data, &e); err != nil {
				t.Fatal(err)
			}
			got[e.Item]++
		}
		return got
	}
	child := func(mode string, killWhen func() bool) (out string, killed bool) {
		t.Helper()
		cmd := exec.Command(os.Args[0], "-test.run=^$")
		cmd.Env = append(os.Environ(), killChildEnv+"="+mode, killNATSEnv+"="+srv.ClientURL(),
			killLastEnv+"="+strconv.FormatUint(last, 10))
		var stdout, stderr bytes.Buffer
		cmd.Stdout, cmd.Stderr = &stdout, &stderr
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		exited := make(chan error, 1)
		go func() { exited <- cmd.Wait() }()
		var werr error
	wait:
		for {
			select {
			case werr = <-exited:
				break wait
			case <-time.After(20 * time.Millisecond):
				if killWhen != nil && !killed && killWhen() {
					_ = cmd.Process.Signal(syscall.SIGKILL)
					killed = true
				}
			case <-ctx.Done():
				_ = cmd.Process.Kill()
				t.Fatalf("%s child did not end: %s", mode, stderr.String())
			}
		}
		if ee, ok := werr.(*exec.ExitError); ok && ee.Sys().(syscall.WaitStatus).Signal() == syscall.SIGKILL {
			killed = true
		} else if werr != nil {
			t.Fatalf("%s child: %v: %s", mode, werr, stderr.String())
		}
		return stdout.String(), killed
	}

	if out, killed := child("self", nil); !killed {
		t.Fatalf("the first child was not killed at order %d: %s", killSelfAt, out)
	}
	got := items()
	if got[2*killSelfAt] != 1 || got[2*killSelfAt+1] != 0 {
		t.Fatalf("after the first child: item %d x%d, item %d x%d; want the step's first command applied, its second not",
			2*killSelfAt, got[2*killSelfAt], 2*killSelfAt+1, got[2*killSelfAt+1])
	}
	start := len(got)
	if _, killed := child("run", func() bool { return len(items()) >= start+100 }); !killed {
		t.Logf("the second child finished before the test killed it")
	}
	out, killed := child("run", nil)
	if killed || !strings.HasPrefix(out, "done") {
		t.Fatalf("the last child: %q, killed %v", out, killed)
	}
	t.Logf("last child: %s", strings.TrimSpace(out))
	got = items()
	for i := range 2 * killOrders {
		if got[i] != 1 {
			t.Errorf("item %d applied %d times, want 1", i, got[i])
		}
	}
	if len(got) != 2*killOrders {
		t.Errorf("%d distinct items, want %d", len(got), 2*killOrders)
	}
	for i := range killOrders {
		n := 0
		for _, err := range log.ReadEntity(ctx, "Filler", fmt.Sprintf("o-%d", i), 1) {
			if err != nil {
				t.Fatal(err)
			}
			n++
		}
		if n != 1 {
			t.Errorf("instance o-%d recorded %d steps, want 1", i, n)
		}
	}
}
