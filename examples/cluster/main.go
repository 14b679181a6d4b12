// Command cluster runs counter entities on a 3-member protoactor-go cluster
// on loopback, with an embedded NATS server as the shared event log.
//
// One command starts everything: the NATS server and three member
// processes (this program again, with -member), which send commands to
// each other's entities. After a few seconds it kills one member; watch its
// counters move to the two others and keep counting:
//
//	go run ./examples/cluster
//
// Or run each piece in its own terminal (the first one runs NATS):
//
//	go run ./examples/cluster -nats-dir /tmp/es-nats -serve-nats 4222
//	go run ./examples/cluster -member 0 -nats nats://127.0.0.1:4222
//	go run ./examples/cluster -member 1 -nats nats://127.0.0.1:4222
//	go run ./examples/cluster -member 2 -nats nats://127.0.0.1:4222
//
// Members find each other with the automanaged provider on ports
// 6330-6332 (-ports); stop one with Ctrl-C (graceful) or kill -9. Everything
// listens on 127.0.0.1 only: the NATS server (a free port, or -serve-nats),
// each member's automanaged health endpoint (its -ports port) and its
// remoting (a free port, printed as "up at").
package main

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"os/signal"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/eventsourced-go/eventsourced/cluster"
	"github.com/eventsourced-go/eventsourced/natslog"
)

const counters = 12

func main() {
	member := flag.Int("member", -1, "run member N (0, 1 or 2) instead of the whole demo")
	natsURL := flag.String("nats", "", "NATS server URL (member mode)")
	ports := flag.String("ports", "6330,6331,6332", "automanaged ports of the members, comma-separated")
	natsDir := flag.String("nats-dir", "", "run only an embedded NATS server with its files here")
	natsPort := flag.Int("serve-nats", 4222, "port of the NATS server started with -nats-dir")
	flag.Parse()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	var err error
	switch {
	case *natsDir != "":
		err = serveNATS(ctx, *natsDir, *natsPort)
	case *member >= 0:
		err = runMember(ctx, *member, *natsURL, *ports)
	default:
		err = demo(ctx, *ports)
	}
	if err != nil && !errors.Is(err, context.Canceled) {
		fmt.Fprintln(os.Stderr, "cluster:", err)
		os.Exit(1)
	}
}

func serveNATS(ctx context.Context, dir string, port int) error {
	srv, err := natslog.StartEmbedded(dir, natslog.WithServerPort(port))
	if err != nil {
		return err
	}
	defer srv.Shutdown()
	if err := setupLog(ctx, srv.ClientURL()); err != nil {
		return err
	}
	fmt.Println("NATS at", srv.ClientURL(), "- Ctrl-C to stop")
	<-ctx.Done()
	return nil
}

func setupLog(ctx context.Context, url string) error {
	nc, err := nats.Connect(url, nats.MaxReconnects(-1), nats.ReconnectWait(250*time.Millisecond))
	if err != nil {
		return err
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		return err
	}
	return natslog.Setup(ctx, js)
}

// runMember is one member: it serves counters and increments random ones
// until ctx ends, printing what it owns every second.
func runMember(ctx context.Context, idx int, url, portList string) error {
	portStrs := strings.Split(portList, ",")
	if idx >= len(portStrs) {
		return fmt.Errorf("-member %d: only %d ports", idx, len(portStrs))
	}
	port, err := strconv.Atoi(portStrs[idx])
	if err != nil {
		return err
	}
	hosts := make([]string, len(portStrs))
	for i, p := range portStrs {
		hosts[i] = "127.0.0.1:" + p
	}
	nc, err := nats.Connect(url, nats.MaxReconnects(-1), nats.ReconnectWait(250*time.Millisecond))
	if err != nil {
		return err
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		return err
	}
	log, err := natslog.New(ctx, js)
	if err != nil {
		return err
	}
	defer log.Close()
	// Every listener of the member is on loopback: remoting on a free port
	// (cluster.WithAddress's default host) and the automanaged health
	// endpoint on its -ports port.
	provider, err := cluster.NewAutomanagedProvider("127.0.0.1", port, 300*time.Millisecond, hosts...)
	if err != nil {
		return err
	}
	m, err := cluster.NewMember("counters", log, provider,
		cluster.WithAddress("127.0.0.1", 0), cluster.WithPassivateAfter(time.Minute))
	if err != nil {
		return err
	}
	k, err := register(m)
	if err != nil {
		return err
	}
	if err := m.Start(ctx); err != nil {
		return err
	}
	defer func() {
		shutdownCtx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = m.Shutdown(shutdownCtx)
		fmt.Printf("member %d: left the cluster\n", idx)
	}()
	fmt.Printf("member %d: up at %s\n", idx, m.Address())

	var wg sync.WaitGroup
	var mu sync.Mutex // guards sent and failed
	sent, failed := 0, 0
	for range 4 {
		wg.Go(func() {
			for ctx.Err() == nil {
				id := fmt.Sprintf("counter-%d", rand.N(counters))
				if _, err := cluster.Ask(ctx, k.Ref(id), Increment{By: 1}); err != nil {
					if ctx.Err() == nil {
						mu.Lock()
						failed++
						mu.Unlock()
					}
					continue
				}
				mu.Lock()
				sent++
				mu.Unlock()
				time.Sleep(time.Duration(rand.N(20)) * time.Millisecond)
			}
		})
	}
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			wg.Wait()
			return nil
		case <-tick.C:
		}
		var owned []string
		for i := range counters {
			id := fmt.Sprintf("counter-%d", i)
			if m.Owner("Counter", id) == m.Address() {
				owned = append(owned, strconv.Itoa(i))
			}
		}
		mu.Lock()
		fmt.Printf("member %d: %d members, owns counters [%s], %d commands acknowledged, %d failed, %d retried\n",
			idx, m.Members(), strings.Join(owned, " "), sent, failed, m.Stats().Retries)
		mu.Unlock()
	}
}

// demo starts NATS and three members, kills one, and prints the counters.
func demo(ctx context.Context, ports string) error {
	dir, err := os.MkdirTemp("", "eventsourced-cluster-*")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	srv, err := natslog.StartEmbedded(dir)
	if err != nil {
		return err
	}
	defer srv.Shutdown()
	if err := setupLog(ctx, srv.ClientURL()); err != nil {
		return err
	}
	self, err := os.Executable()
	if err != nil {
		return err
	}
	var procs []*exec.Cmd
	var out sync.WaitGroup
	defer func() {
		for _, p := range procs {
			if p.ProcessState == nil {
				_ = p.Process.Signal(os.Interrupt)
			}
		}
		for _, p := range procs {
			_ = p.Wait()
		}
		out.Wait()
	}()
	for i := range 3 {
		cmd := exec.Command(self, "-member", strconv.Itoa(i), "-nats", srv.ClientURL(), "-ports", ports)
		stdout, err := cmd.StdoutPipe()
		if err != nil {
			return err
		}
		cmd.Stderr = os.Stderr
		if err := cmd.Start(); err != nil {
			return err
		}
		procs = append(procs, cmd)
		out.Go(func() {
			sc := bufio.NewScanner(stdout)
			for sc.Scan() {
				fmt.Println(sc.Text())
			}
		})
	}
	if !sleep(ctx, 8*time.Second) {
		return ctx.Err()
	}
	fmt.Println("demo: killing member 2 (kill -9): watch its counters move to members 0 and 1")
	_ = procs[2].Process.Kill()
	_ = procs[2].Wait()
	if !sleep(ctx, 6*time.Second) {
		return ctx.Err()
	}
	fmt.Println("demo: stopping members 0 and 1")
	for _, p := range procs[:2] {
		_ = p.Process.Signal(os.Interrupt)
	}
	for _, p := range procs[:2] {
		_ = p.Wait()
	}
	return printCounters(ctx, srv.ClientURL())
}

// printCounters prints each counter's events as the log has them.
func printCounters(ctx context.Context, url string) error {
	nc, err := nats.Connect(url, nats.MaxReconnects(-1), nats.ReconnectWait(250*time.Millisecond))
	if err != nil {
		return err
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		return err
	}
	log, err := natslog.New(ctx, js)
	if err != nil {
		return err
	}
	defer log.Close()
	var lines []string
	for i := range counters {
		id := fmt.Sprintf("counter-%d", i)
		seq, err := log.LastSeq(ctx, "Counter", id)
		if err != nil {
			return err
		}
		lines = append(lines, fmt.Sprintf("%s: %d increments in the log", id, seq))
	}
	slices.Sort(lines)
	fmt.Println(strings.Join(lines, "\n"))
	return nil
}

func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}
