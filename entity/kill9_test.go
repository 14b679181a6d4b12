package entity_test

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/eventsourced-go/eventsourced/entity"
	"github.com/eventsourced-go/eventsourced/internal/ledgertest"
	"github.com/eventsourced-go/eventsourced/internal/natstest"
	"github.com/eventsourced-go/eventsourced/natslog"
)

// The kill -9 test: a child process (this test binary, re-run with
// killChildEnv set) sends keyed commands to entities on an embedded
// JetStream server that the test runs; the test kills it with SIGKILL
// mid-way, with appends in flight whose outcome the child never learns;
// a second child sends every command again. Each command adds a unique
// item: every item must be in the log, and in its entity's state, exactly
// once.

const (
	killChildEnv    = "EVENTSOURCED_ENTITY_KILL9_CHILD" // "first" or "all"
	killNATSEnv     = "EVENTSOURCED_ENTITY_KILL9_NATS"  // the server's URL
	killCommands    = 2000
	killEntities    = 20
	killSenders     = 32
	killWave        = 100 // the first child's commands in flight at once
	killAfterWaves  = 5   // it is killed during the wave after these
	killChildBudget = 25 * time.Second
)

func TestMain(m *testing.M) {
	if mode := os.Getenv(killChildEnv); mode != "" {
		os.Exit(runKillChild(mode))
	}
	os.Exit(m.Run())
}

// The kill test's entity type, shared with package process's.
type (
	Ledger    = ledgertest.Ledger
	ItemAdded = ledgertest.ItemAdded
	AddItem   = ledgertest.AddItem
	Items     = ledgertest.Items
)

func ledgerType() entity.Type[Ledger, ItemAdded] { return ledgertest.Type() }

func ledgerOf(item int) string { return fmt.Sprintf("l-%d", item%killEntities) }

// runKillChild is the child process: mode "first" sends the commands in
// order, killWave at a time, printing "wave" after each and waiting for a
// line on stdin before the next, until it is killed; "all" sends every
// command, in another order, retrying each until it has an answer. It
// prints "ack <item> <reply>" per answer and "done" at the end.
func runKillChild(mode string) int {
	ctx, cancel := context.WithTimeout(context.Background(), killChildBudget)
	defer cancel()
	fail := func(err error) int {
		fmt.Fprintln(os.Stderr, "kill9 child:", err)
		return 1
	}
	log, _, closing, err := natstest.Dial(ctx, os.Getenv(killNATSEnv))
	if err != nil {
		return fail(err)
	}
	defer closing()
	sys, err := entity.NewSystem(log, entity.WithoutTelemetry())
	if err != nil {
		return fail(err)
	}
	k, err := entity.Register(sys, ledgerType(), entity.WithIdempotency())
	if err != nil {
		return fail(err)
	}
	order := make([]int, killCommands)
	for i := range order {
		order[i] = i
	}
	if mode == "all" {
		rand.Shuffle(len(order), func(i, j int) { order[i], order[j] = order[j], order[i] })
	}
	var mu sync.Mutex // guards out and failed
	out := bufio.NewWriter(os.Stdout)
	var failed error
	// send sends the command of item until it has an answer ("all") or
	// once ("first").
	send := func(item int) {
		cctx := entity.WithIdempotencyKey(ctx, "add/"+strconv.Itoa(item))
		for {
			reply, err := entity.Ask(cctx, k.Ref(ledgerOf(item)), AddItem{Item: item})
			if err == nil {
				mu.Lock()
				fmt.Fprintf(out, "ack %d %d\n", item, reply)
				out.Flush()
				mu.Unlock()
				return
			}
			if mode == "first" {
				return
			}
			// Every failure here may be retried: that is what the key
			// is for.
			if ctx.Err() != nil {
				mu.Lock()
				failed = errors.Join(failed, fmt.Errorf("item %d: %w", item, err))
				mu.Unlock()
				return
			}
			time.Sleep(5 * time.Millisecond)
		}
	}
	items := make(chan int)
	var wg, wave sync.WaitGroup
	for range killSenders {
		wg.Go(func() {
			for item := range items {
				send(item)
				wave.Done()
			}
		})
	}
	stdin := bufio.NewScanner(os.Stdin)
	for i, item := range order {
		wave.Add(1)
		items <- item
		if mode == "first" && (i+1)%killWave == 0 {
			// The parent paces the waves, so that it kills this process
			// while one is in flight, never after the last.
			wave.Wait()
			mu.Lock()
			fmt.Fprintln(out, "wave")
			out.Flush()
			mu.Unlock()
			if !stdin.Scan() {
				return fail(errors.New("stdin closed"))
			}
		}
	}
	close(items)
	wg.Wait()
	if failed != nil {
		return fail(failed)
	}
	if err := sys.Shutdown(ctx); err != nil {
		return fail(err)
	}
	fmt.Fprintln(out, "done")
	out.Flush()
	return 0
}

// killChild runs a child in mode and returns its answers (item to reply)
// and whether it said done. If killAfterWaves > 0, it lets the child send
// that many waves and kills it with SIGKILL at the first answer of the
// next: the rest of that wave is in flight.
func killChild(t *testing.T, url, mode string, killAfterWaves int) (map[int]int, bool) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), killChildBudget+5*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), killChildEnv+"="+mode, killNATSEnv+"="+url)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	defer stdin.Close()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	acks, done, killed, waves := map[int]int{}, false, false, 0
	sc := bufio.NewScanner(stdout)
	for sc.Scan() {
		line := sc.Text()
		switch line {
		case "done":
			done = true
			continue
		case "wave":
			waves++
			if _, err := fmt.Fprintln(stdin, "next"); err != nil {
				t.Fatal(err)
			}
			continue
		}
		var item, reply int
		if _, err := fmt.Sscanf(line, "ack %d %d", &item, &reply); err != nil {
			continue // not ours
		}
		if prev, dup := acks[item]; dup && prev != reply {
			t.Errorf("%s child: item %d answered twice, %d and %d", mode, item, prev, reply)
		}
		acks[item] = reply
		if killAfterWaves > 0 && waves == killAfterWaves && !killed {
			if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
				t.Fatal(err)
			}
			killed = true
		}
	}
	err = cmd.Wait()
	switch {
	case killed:
		var ee *exec.ExitError
		if !errors.As(err, &ee) || ee.Sys().(syscall.WaitStatus).Signal() != syscall.SIGKILL {
			t.Fatalf("%s child: %v, want killed by SIGKILL; stderr:\n%s", mode, err, stderr.String())
		}
	case err != nil:
		t.Fatalf("%s child: %v; stderr:\n%s", mode, err, stderr.String())
	}
	return acks, done
}

// ledgerItems reads the items of every ledger from the log.
func ledgerItems(t *testing.T, log *natslog.Log) map[string][]int {
	t.Helper()
	events := ledgerType().Events
	out := map[string][]int{}
	for e := range killEntities {
		id := ledgerOf(e)
		for rec, err := range log.ReadEntity(context.Background(), "Ledger", id, 1) {
			if err != nil {
				t.Fatal(err)
			}
			ev, err := events.Decode(rec.Name, rec.Revision, rec.Data)
			if err != nil {
				t.Fatal(err)
			}
			out[id] = append(out[id], ev.Item)
		}
	}
	return out
}

func TestIdempotentCommandsSurviveKill9(t *testing.T) {
	srv := natstest.Server(t)
	log := natstest.SetUp(t, natstest.Connect(t, srv))

	first, done := killChild(t, srv.ClientURL(), "first", killAfterWaves)
	if done || len(first) >= killCommands {
		t.Fatalf("the first child answered %d of %d commands and was not killed mid-way", len(first), killCommands)
	}
	landed := 0
	for _, items := range ledgerItems(t, log) {
		landed += len(items)
	}
	t.Logf("killed after %d answers; %d commands had landed, %d of them unanswered", len(first), landed, landed-len(first))

	all, done := killChild(t, srv.ClientURL(), "all", 0)
	if !done || len(all) != killCommands {
		t.Fatalf("the second child answered %d of %d commands (done %v)", len(all), killCommands, done)
	}
	for item, reply := range first {
		if all[item] != reply {
			t.Errorf("item %d: first answer %d, re-send's %d: a re-send must get the first outcome", item, reply, all[item])
		}
	}

	// Every item exactly once in the log, at the place its answer says.
	seen := make(map[int]int, killCommands)
	for id, items := range ledgerItems(t, log) {
		for i, item := range items {
			seen[item]++
			if ledgerOf(item) != id {
				t.Errorf("item %d in %s", item, id)
			}
			if all[item] != i+1 {
				t.Errorf("item %d is number %d of %s, its answer says %d", item, i+1, id, all[item])
			}
		}
	}
	for item := range killCommands {
		if seen[item] != 1 {
			t.Errorf("item %d is in the log %d times, want exactly once", item, seen[item])
		}
	}

	// And exactly once in the state a new process recovers.
	sys := newSystem(t, log)
	k, err := entity.Register(sys, ledgerType(), entity.WithIdempotency())
	if err != nil {
		t.Fatal(err)
	}
	fromLog := ledgerItems(t, log)
	total := 0
	for e := range killEntities {
		items, err := entity.Ask(context.Background(), k.Ref(ledgerOf(e)), Items{})
		if err != nil {
			t.Fatal(err)
		}
		total += len(items)
		for _, item := range items {
			if seen[item] != 1 {
				t.Errorf("state of %s has item %d, seen %d times in the log", ledgerOf(e), item, seen[item])
			}
		}
		if !slices.Equal(items, fromLog[ledgerOf(e)]) {
			t.Errorf("state of %s holds %v, its log %v", ledgerOf(e), items, fromLog[ledgerOf(e)])
		}
	}
	if total != killCommands {
		t.Errorf("the recovered states hold %d items, want %d", total, killCommands)
	}
}
