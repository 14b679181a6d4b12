package cluster_test

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/eventsourced-go/eventsourced/cluster"
	"github.com/eventsourced-go/eventsourced/natslog"
)

// The multi-process test: the test binary starts itself three times as
// cluster members (automanaged provider on loopback, an embedded NATS server
// in the test process as the shared log), lets them load the cluster, kills
// one with SIGKILL mid-load, and checks the log.

const memberEnv = "EVENTSOURCED_CLUSTER_TEST_MEMBER"

const mpEntities = 60

func mpID(i int) string { return fmt.Sprintf("mp-%d", i) }

// runMemberProcess is the child: it serves, and on "go" on stdin sends
// commands until stdin closes, printing "ack <op> <id>" or "err <op> <id>
// <ambiguous> <text>" per command.
func runMemberProcess() int {
	idx, _ := strconv.Atoi(os.Getenv(memberEnv))
	out := bufio.NewWriter(os.Stdout)
	var outMu sync.Mutex
	say := func(format string, args ...any) {
		outMu.Lock()
		defer outMu.Unlock()
		fmt.Fprintf(out, format+"\n", args...)
		out.Flush()
	}
	fail := func(err error) int {
		say("fatal %v", err)
		return 1
	}
	ctx := context.Background()
	nc, err := nats.Connect(os.Getenv("MP_NATS_URL"))
	if err != nil {
		return fail(err)
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		return fail(err)
	}
	log, err := natslog.New(ctx, js)
	if err != nil {
		return fail(err)
	}
	defer log.Close()
	port, _ := strconv.Atoi(os.Getenv("MP_AUTOMAN_PORT"))
	provider, err := cluster.NewAutomanagedProvider("127.0.0.1", port, 300*time.Millisecond, strings.Split(os.Getenv("MP_AUTOMAN_HOSTS"), ",")...)
	if err != nil {
		return fail(err)
	}
	n := newNode(&processTB{fail: func(s string) { say("fatal %s", s); os.Exit(1) }}, "mp", log, provider,
		cluster.WithRequestTimeout(5*time.Second))
	startCtx, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	if err := n.m.Start(startCtx); err != nil {
		return fail(err)
	}
	if err := n.m.WaitForMembers(startCtx, 3); err != nil {
		return fail(err)
	}
	say("ready %s", n.m.Address())

	in := bufio.NewScanner(os.Stdin)
	if !in.Scan() || in.Text() != "go" {
		return fail(errors.New("no go"))
	}
	stop := make(chan struct{})
	var wg sync.WaitGroup
	var seq atomic.Int64
	for w := range 4 {
		wg.Go(func() {
			for {
				select {
				case <-stop:
					return
				default:
				}
				id := mpID(rand.N(mpEntities))
				op := fmt.Sprintf("m%d-w%d-%d", idx, w, seq.Add(1))
				_, err := cluster.Ask(ctx, n.k.Ref(id), Add{Op: op, N: 1})
				if err != nil {
					say("err %s %s %t %s", op, id, errors.Is(err, cluster.ErrTimeout), strings.ReplaceAll(err.Error(), "\n", " "))
				} else {
					say("ack %s %s", op, id)
				}
			}
		})
	}
	for in.Scan() { // until stdin closes
	}
	close(stop)
	wg.Wait()
	shutdownCtx, cancelShutdown := context.WithTimeout(ctx, 20*time.Second)
	defer cancelShutdown()
	if err := n.m.Shutdown(shutdownCtx); err != nil {
		return fail(err)
	}
	say("done retries=%d", n.m.Stats().Retries)
	return 0
}

// processTB lets newNode run outside a test.
type processTB struct {
	testing.TB
	fail func(string)
}

func (p *processTB) Helper()                        {}
func (p *processTB) Fatalf(format string, a ...any) { p.fail(fmt.Sprintf(format, a...)) }
func (p *processTB) Fatal(a ...any)                 { p.fail(fmt.Sprint(a...)) }

type child struct {
	cmd   *exec.Cmd
	stdin io.WriteCloser
	ready chan string
	done  chan struct{} // stdout closed
}

func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

func TestMultiProcessMemberKilledUnderLoad(t *testing.T) {
	if testing.Short() {
		t.Skip("starts processes")
	}
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
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	if err := natslog.Setup(ctx, js); err != nil {
		t.Fatal(err)
	}
	log, err := natslog.New(ctx, js)
	if err != nil {
		t.Fatal(err)
	}
	defer log.Close()

	ports := []int{freePort(t), freePort(t), freePort(t)}
	hosts := make([]string, len(ports))
	for i, p := range ports {
		hosts[i] = fmt.Sprintf("127.0.0.1:%d", p)
	}
	var (
		mu        sync.Mutex
		acked     = map[string]string{} // op -> id
		ambiguous = map[string]string{}
		failures  []string
		retries   []string
	)
	children := make([]*child, 3)
	for i := range children {
		cmd := exec.Command(os.Args[0], "-test.run=^$")
		cmd.Env = append(os.Environ(),
			fmt.Sprintf("%s=%d", memberEnv, i),
			"MP_NATS_URL="+srv.ClientURL(),
			fmt.Sprintf("MP_AUTOMAN_PORT=%d", ports[i]),
			"MP_AUTOMAN_HOSTS="+strings.Join(hosts, ","),
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
		c := &child{cmd: cmd, stdin: stdin, ready: make(chan string, 1), done: make(chan struct{})}
		children[i] = c
		t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
		go func() { // ends when the child's stdout closes; waited for via done
			defer close(c.done)
			sc := bufio.NewScanner(stdout)
			for sc.Scan() {
				f := strings.SplitN(sc.Text(), " ", 5)
				mu.Lock()
				switch f[0] {
				case "ready":
					c.ready <- f[1]
				case "ack":
					acked[f[1]] = f[2]
				case "err":
					if f[3] == "true" {
						ambiguous[f[1]] = f[2]
					} else {
						failures = append(failures, fmt.Sprintf("member %d: %s on %s: %s", i, f[1], f[2], f[4]))
					}
				case "done":
					retries = append(retries, fmt.Sprintf("member %d %s", i, f[1]))
				case "fatal":
					failures = append(failures, fmt.Sprintf("member %d fatal: %s", i, strings.Join(f[1:], " ")))
				}
				mu.Unlock()
			}
		}()
	}
	for i, c := range children {
		select {
		case addr := <-c.ready:
			t.Logf("member %d ready at %s", i, addr)
		case <-c.done:
			t.Fatalf("member %d exited before ready: %v", i, failures)
		case <-time.After(90 * time.Second):
			t.Fatalf("member %d not ready", i)
		}
	}
	for _, c := range children {
		fmt.Fprintln(c.stdin, "go")
	}
	time.Sleep(1500 * time.Millisecond)
	mu.Lock()
	before := len(acked)
	mu.Unlock()
	if err := children[2].cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	t.Logf("killed member 2 after %d acknowledged commands", before)
	time.Sleep(3 * time.Second)
	for _, c := range children[:2] {
		c.stdin.Close()
	}
	for i, c := range children[:2] {
		select {
		case <-c.done:
		case <-time.After(60 * time.Second):
			t.Fatalf("member %d did not stop", i)
		}
		if err := c.cmd.Wait(); err != nil {
			t.Errorf("member %d: %v", i, err)
		}
	}
	<-children[2].done

	mu.Lock()
	defer mu.Unlock()
	for _, f := range failures {
		t.Error(f)
	}
	ids := make([]string, mpEntities)
	for i := range ids {
		ids[i] = mpID(i)
	}
	ops := opsIn(t, log, ids)
	lost, dup := 0, 0
	for op := range acked {
		if ops[op] != 1 {
			lost++
			t.Errorf("acknowledged %s appears %d times in the log, want 1", op, ops[op])
		}
	}
	for op, n := range ops {
		if n > 1 {
			dup++
			t.Errorf("%s appears %d times in the log", op, n)
		}
	}
	if len(acked) <= before {
		t.Errorf("no command acknowledged after the kill (%d before, %d total)", before, len(acked))
	}
	t.Logf("%d acknowledged (%d after the kill), %d ambiguous (owner died before answering), %d events in the log; %v",
		len(acked), len(acked)-before, len(ambiguous), len(ops), retries)
}
