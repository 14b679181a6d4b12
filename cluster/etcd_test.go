package cluster_test

import (
	"bufio"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	protocluster "github.com/asynkron/protoactor-go/cluster"
	"github.com/asynkron/protoactor-go/cluster/clusterproviders/etcd"
	"github.com/nats-io/nats.go/jetstream"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/eventsourced-go/eventsourced/cluster"
	"github.com/eventsourced-go/eventsourced/eventlog"
	"github.com/eventsourced-go/eventsourced/internal/freeport"
	"github.com/eventsourced-go/eventsourced/natslog"
)

// The etcd tests: member processes (the test binary started again) find
// each other through protoactor-go's etcd provider, on the etcd server that
// make test provisions (EVENTSOURCED_ETCD_ENDPOINTS); and a member whose etcd
// is unreachable fails Start by the start context's deadline.

const (
	etcdMemberEnv      = "EVENTSOURCED_CLUSTER_TEST_ETCD_MEMBER"
	etcdUnreachableEnv = "EVENTSOURCED_CLUSTER_TEST_ETCD_UNREACHABLE"
)

// etcdEntities is how many entities the discovery test commands: enough
// that each of three members owns some (each misses all of them with
// probability (2/3)^60, about 3e-11).
const etcdEntities = 60

func etcdID(i int) string { return fmt.Sprintf("etcd-%d", i) }

// etcdEndpoints returns the test etcd's client endpoints. Without them the
// test skips, or fails with CI=true.
func etcdEndpoints(t *testing.T) []string {
	t.Helper()
	v := os.Getenv("EVENTSOURCED_ETCD_ENDPOINTS")
	if v == "" {
		if os.Getenv("CI") == "true" {
			t.Fatal("EVENTSOURCED_ETCD_ENDPOINTS is not set; CI must provide an etcd server (make test does)")
		}
		t.Skip("EVENTSOURCED_ETCD_ENDPOINTS is not set: skipping (make test provisions a server)")
	}
	return strings.Split(v, ",")
}

// etcdProvider returns protoactor-go's etcd provider on endpoints, under
// baseKey, built when the member starts (see cluster.LazyProvider).
func etcdProvider(baseKey string, endpoints []string) protocluster.ClusterProvider {
	return cluster.LazyProvider(func() (protocluster.ClusterProvider, error) {
		return etcd.NewWithConfig(baseKey, clientv3.Config{
			Endpoints:   endpoints,
			DialTimeout: 5 * time.Second,
		})
	})
}

// runEtcdMember is the child of TestEtcdDiscoveryThreeProcesses. It joins
// the cluster through etcd, prints "started <address>" once Start returns
// and "ready <address>" once it sees three members, then serves and runs what stdin says until stdin closes:
//
//	add: for every entity i, Add{N: i+1} twice, printing "reply <id> <sum>"
//	     and "owner <id> <address>", then "added <remote commands>"
//	get: for every entity, Get, printing "sum <id> <sum>", then "got"
//
// Errors are printed as "err <text>", fatal ones as "fatal <text>".
func runEtcdMember() int {
	say := childSay()
	fail := func(err error) int {
		say("fatal %s", strings.ReplaceAll(err.Error(), "\n", " "))
		return 1
	}
	ctx := context.Background()
	log, closeLog, err := childLog(ctx, os.Getenv("ETCD_TEST_NATS_URL"))
	if err != nil {
		return fail(err)
	}
	defer closeLog()
	provider := etcdProvider(os.Getenv("ETCD_TEST_BASE_KEY"), strings.Split(os.Getenv("EVENTSOURCED_ETCD_ENDPOINTS"), ","))
	n := newNode(&processTB{fail: func(s string) { say("fatal %s", s); os.Exit(1) }},
		os.Getenv("ETCD_TEST_CLUSTER"), log, provider,
		cluster.WithAddress("127.0.0.1", 0), cluster.WithRequestTimeout(5*time.Second))
	startCtx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	if err := n.m.Start(startCtx); err != nil {
		return fail(err)
	}
	say("started %s", n.m.Address())
	if err := n.m.WaitForMembers(startCtx, 3); err != nil {
		return fail(err)
	}
	say("ready %s", n.m.Address())

	in := bufio.NewScanner(os.Stdin)
	for in.Scan() {
		askCtx, cancelAsk := context.WithTimeout(ctx, 20*time.Second)
		switch in.Text() {
		case "add":
			for i := range etcdEntities {
				id := etcdID(i)
				for k := range 2 {
					sum, err := cluster.Ask(askCtx, n.k.Ref(id), Add{Op: fmt.Sprintf("%s-%d", id, k), N: i + 1})
					if err != nil {
						say("err add %s: %s", id, strings.ReplaceAll(err.Error(), "\n", " "))
						continue
					}
					say("reply %s %d", id, sum)
				}
				say("owner %s %s", id, n.m.Owner("Tally", id))
			}
			say("added %d", n.m.Stats().Remote)
		case "get":
			for i := range etcdEntities {
				id := etcdID(i)
				sum, err := cluster.Ask(askCtx, n.k.Ref(id), Get{})
				if err != nil {
					say("err get %s: %s", id, strings.ReplaceAll(err.Error(), "\n", " "))
					continue
				}
				say("sum %s %d", id, sum)
			}
			say("got")
		}
		cancelAsk()
	}
	shutdownCtx, cancelShutdown := context.WithTimeout(ctx, 20*time.Second)
	defer cancelShutdown()
	if err := n.m.Shutdown(shutdownCtx); err != nil {
		return fail(err)
	}
	say("done")
	return 0
}

// etcdChild is a member process of TestEtcdDiscoveryThreeProcesses.
type etcdChild struct {
	cmd   *exec.Cmd
	stdin io.WriteCloser
	lines chan []string // stdout, split in fields; closed at EOF
}

// next returns the child's next line, failing the test at EOF or after
// timeout.
func (c *etcdChild) next(t *testing.T, i int, timeout time.Duration) []string {
	t.Helper()
	select {
	case f, ok := <-c.lines:
		if !ok {
			t.Fatalf("member %d exited early", i)
		}
		if f[0] == "fatal" || f[0] == "err" {
			t.Fatalf("member %d: %s", i, strings.Join(f, " "))
		}
		return f
	case <-time.After(timeout):
		t.Fatalf("member %d: no output for %v", i, timeout)
	}
	return nil
}

func randomName() string { return strings.ToLower(rand.Text()[:10]) }

func TestEtcdDiscoveryThreeProcesses(t *testing.T) {
	if testing.Short() {
		t.Skip("starts processes")
	}
	endpoints := etcdEndpoints(t)
	srv, err := natslog.StartEmbedded(t.TempDir())
	if err != nil {
		t.Fatalf("embedded NATS: %v", err)
	}
	defer srv.Shutdown()
	nc, err := srv.Connect()
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := natslog.Setup(ctx, js); err != nil {
		t.Fatal(err)
	}
	log, err := natslog.New(ctx, js)
	if err != nil {
		t.Fatal(err)
	}
	defer log.Close()

	// A fresh key prefix and cluster name per run: runs never see each
	// other's members, even on a shared etcd.
	baseKey := "/eventsourced-test/" + randomName()
	clusterName := "etcd-" + randomName()
	// The children log data races to files instead of failing at exit:
	// checkRaces fails the test on every race but the etcd provider's.
	raceDir := t.TempDir()
	// One at a time: protoactor-go's etcd provider reads the member list,
	// then starts watching from the current revision, so a member that
	// registers in between is never seen by the one starting (see
	// workarounds.go).
	children := make([]*etcdChild, 3)
	for i := range children {
		cmd := exec.Command(os.Args[0], "-test.run=^$")
		cmd.Env = append(os.Environ(),
			"GORACE=exitcode=0 log_path="+filepath.Join(raceDir, fmt.Sprintf("race-%d", i)),
			etcdMemberEnv+"="+strconv.Itoa(i),
			"ETCD_TEST_NATS_URL="+srv.ClientURL(),
			"ETCD_TEST_BASE_KEY="+baseKey,
			"ETCD_TEST_CLUSTER="+clusterName,
			"EVENTSOURCED_ETCD_ENDPOINTS="+strings.Join(endpoints, ","),
		)
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
		c := &etcdChild{cmd: cmd, stdin: stdin, lines: make(chan []string, 4*etcdEntities)}
		children[i] = c
		t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
		go func() { // ends when the child's stdout closes
			defer close(c.lines)
			sc := bufio.NewScanner(stdout)
			for sc.Scan() {
				c.lines <- strings.Fields(sc.Text())
			}
		}()
		if f := c.next(t, i, 30*time.Second); f[0] != "started" {
			t.Fatalf("member %d: %v, want started", i, f)
		}
	}
	addrs := map[string]int{}
	for i, c := range children {
		f := c.next(t, i, 30*time.Second)
		if f[0] != "ready" {
			t.Fatalf("member %d: %v, want ready", i, f)
		}
		addrs[f[1]] = i
		t.Logf("member %d ready at %s", i, f[1])
	}

	// Member 0 commands every entity; the others own most of them.
	fmt.Fprintln(children[0].stdin, "add")
	owned := map[int]int{} // member index -> entities it owns
	for i := range etcdEntities {
		id := etcdID(i)
		for k := range 2 {
			f := children[0].next(t, 0, 30*time.Second)
			if want := []string{"reply", id, strconv.Itoa((k + 1) * (i + 1))}; strings.Join(f, " ") != strings.Join(want, " ") {
				t.Fatalf("member 0: %v, want %v", f, want)
			}
		}
		f := children[0].next(t, 0, 30*time.Second)
		owner, ok := addrs[f[len(f)-1]]
		if f[0] != "owner" || f[1] != id || len(f) != 3 || !ok {
			t.Fatalf("member 0: %v, want the owner of %s among %v", f, id, addrs)
		}
		owned[owner]++
	}
	f := children[0].next(t, 0, 30*time.Second)
	if f[0] != "added" {
		t.Fatalf("member 0: %v, want added", f)
	}
	remote, _ := strconv.Atoi(f[1])
	if len(owned) != 3 || owned[1]+owned[2] == 0 || remote < 2*(owned[1]+owned[2]) {
		t.Fatalf("entities owned per member %v, %d commands sent to other members: want all three owning some, and every command on them remote", owned, remote)
	}
	t.Logf("entities owned per member: %v; member 0 sent %d of %d commands to the others", owned, remote, 2*etcdEntities)

	// Every member reads every entity's state.
	for i, c := range children {
		fmt.Fprintln(c.stdin, "get")
		for e := range etcdEntities {
			f := c.next(t, i, 30*time.Second)
			if want := fmt.Sprintf("sum %s %d", etcdID(e), 2*(e+1)); strings.Join(f, " ") != want {
				t.Fatalf("member %d: %v, want %s", i, f, want)
			}
		}
		if f := c.next(t, i, 30*time.Second); f[0] != "got" {
			t.Fatalf("member %d: %v, want got", i, f)
		}
	}

	// They stop by themselves once stdin closes, one at a time: a member
	// that stops remoting while another's connection to it is closing is a
	// data race in protoactor-go's remoting (see workarounds.go).
	for i, c := range children {
		c.stdin.Close()
		if f := c.next(t, i, 30*time.Second); f[0] != "done" {
			t.Fatalf("member %d: %v, want done", i, f)
		}
		if err := c.cmd.Wait(); err != nil {
			t.Errorf("member %d: %v", i, err)
		}
	}

	checkRaces(t, raceDir, etcdShutdownFlagRace)

	// The log holds each command once.
	ids := make([]string, etcdEntities)
	for i := range ids {
		ids[i] = etcdID(i)
	}
	ops := opsIn(t, log, ids)
	if len(ops) != 2*etcdEntities {
		t.Errorf("%d events in the log, want %d", len(ops), 2*etcdEntities)
	}
	for op, n := range ops {
		if n != 1 {
			t.Errorf("%s appears %d times in the log", op, n)
		}
	}

	// Shutdown deregistered every member from etcd.
	cli, err := clientv3.New(clientv3.Config{Endpoints: endpoints, DialTimeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer cli.Close()
	resp, err := cli.Get(ctx, baseKey, clientv3.WithPrefix(), clientv3.WithCountOnly())
	if err != nil {
		t.Fatal(err)
	}
	if resp.Count != 0 {
		t.Errorf("%d keys left under %s after every member shut down, want 0", resp.Count, baseKey)
	}
}

// etcdShutdownFlagRace reports whether a race report is a write by the etcd
// provider's Shutdown against a read by its keepalive or watch loop.
func etcdShutdownFlagRace(report string) bool {
	const pkg = "github.com/asynkron/protoactor-go/cluster/clusterproviders/etcd."
	var write, read string
	lines := strings.Split(report, "\n")
	for i, l := range lines[:len(lines)-1] {
		next := strings.TrimSpace(lines[i+1])
		switch {
		case strings.HasPrefix(l, "Write at "):
			write = next
		case strings.HasPrefix(l, "Previous read at "), strings.HasPrefix(l, "Read at "):
			read = next
		case strings.HasPrefix(l, "Previous write at "):
			if write != "" {
				return false // two writes
			}
			write = next
		}
	}
	return write == pkg+"(*Provider).Shutdown()" &&
		(read == pkg+"(*Provider).keepAliveForever()" || read == pkg+"(*Provider).startWatching.func1()")
}

// startTimeout and startSlack bound Start with an unreachable etcd.
const (
	startTimeout = 2 * time.Second
	startSlack   = 500 * time.Millisecond
)

// runEtcdUnreachable is the child of TestEtcdUnreachableAtStart: a member
// whose etcd provider points at a closed port. It prints "start <elapsed>
// <deadline exceeded?> <error>" and "shutdown <elapsed> <error>". It runs in
// its own process because the provider's StartMember never returns: its
// goroutine and the etcd client's stay behind.
func runEtcdUnreachable() int {
	provider := etcdProvider("/eventsourced-test", []string{os.Getenv(etcdUnreachableEnv)})
	m, err := cluster.NewMember("unreachable", eventlog.NewMemory(), provider, cluster.WithAddress("127.0.0.1", 0))
	if err != nil {
		fmt.Printf("fatal %v\n", err)
		return 1
	}
	ctx, cancel := context.WithTimeout(context.Background(), startTimeout)
	defer cancel()
	began := time.Now()
	err = m.Start(ctx)
	fmt.Printf("start %d %t %v\n", time.Since(began).Milliseconds(), errors.Is(err, context.DeadlineExceeded), err)
	shutdownCtx, cancelShutdown := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancelShutdown()
	began = time.Now()
	err = m.Shutdown(shutdownCtx)
	fmt.Printf("shutdown %d %v\n", time.Since(began).Milliseconds(), err)
	return 0
}

func TestEtcdUnreachableAtStart(t *testing.T) {
	closed := fmt.Sprintf("127.0.0.1:%d", freeport.Port(t)) // nobody listens
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), etcdUnreachableEnv+"="+closed)
	cmd.Stderr = os.Stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("child: %v; output:\n%s", err, out)
	}
	var start, shutdown []string
	for line := range strings.Lines(string(out)) {
		f := strings.SplitN(strings.TrimSpace(line), " ", 4)
		switch f[0] {
		case "start":
			start = f
		case "shutdown":
			shutdown = f
		}
	}
	if len(start) != 4 || len(shutdown) < 2 {
		t.Fatalf("child output:\n%s", out)
	}
	t.Logf("Start: %s ms, %s; Shutdown: %s ms", start[1], start[3], shutdown[1])
	if ms, _ := strconv.Atoi(start[1]); time.Duration(ms)*time.Millisecond > startTimeout+startSlack {
		t.Errorf("Start returned after %d ms, want <= %v", ms, startTimeout+startSlack)
	}
	if start[2] != "true" {
		t.Errorf("Start: %s, want an error wrapping context.DeadlineExceeded", start[3])
	}
	if ms, _ := strconv.Atoi(shutdown[1]); time.Duration(ms)*time.Millisecond > 8*time.Second {
		t.Errorf("Shutdown after the failed Start took %d ms", ms)
	}
}
