package main

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"time"

	"github.com/eventsourced-go/eventsourced/natslog"
)

// Helper processes
//
// A system run measures the CPU time of its own process (see
// Result.CPU), so a server the workload talks to must not run inside it:
// its work would be counted as the client's. The embedded NATS server and
// the latency proxy of postgres-remote therefore run in a helper process:
// the same executable started again with helperEnv set. The helper prints
// the address it serves on its first stdout line and runs until its stdin
// reaches EOF, which happens when the system run closes it or when the
// system run's process dies in any way (a hang killed by the parent
// included), so a helper never outlives the run that started it.

// helperEnv carries a helperSpec to a helper process.
const helperEnv = "EVENTSOURCED_BENCH_HELPER"

// helperSpec says what a helper process serves.
type helperSpec struct {
	// Kind is "nats-server" or "delay-proxy".
	Kind string `json:"kind"`
	// Dir is the nats-server's JetStream directory.
	Dir string `json:"dir,omitempty"`
	// Upstream is the delay-proxy's target, host:port.
	Upstream string `json:"upstream,omitempty"`
	// Delay is the delay-proxy's latency per direction.
	Delay time.Duration `json:"delay,omitempty"`
}

// helper is a running helper process, owned by the system run that
// started it.
type helper struct {
	cmd   *exec.Cmd
	stdin io.WriteCloser
	// addr is what the helper serves: a nats:// URL or a host:port.
	addr string
	done chan error // receives cmd.Wait's result once
}

// startHelper starts a helper process and waits (at most 30 s) for the
// address it serves.
func startHelper(spec helperSpec) (*helper, error) {
	exe, err := os.Executable()
	if err != nil {
		return nil, err
	}
	b, _ := json.Marshal(spec)
	cmd := exec.Command(exe, "-test.run=^$")
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, childEnv+"=") {
			cmd.Env = append(cmd.Env, kv)
		}
	}
	cmd.Env = append(cmd.Env, helperEnv+"="+string(b))
	cmd.Stderr = os.Stderr
	stdin, err := cmd.StdinPipe()
	if err != nil {
		return nil, err
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s helper: %w", spec.Kind, err)
	}
	h := &helper{cmd: cmd, stdin: stdin, done: make(chan error, 1)}
	lines := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stdout)
		if sc.Scan() {
			lines <- sc.Text()
		}
		close(lines)
		_, _ = io.Copy(io.Discard, stdout) // until the helper exits
		h.done <- cmd.Wait()
	}()
	select {
	case line, ok := <-lines:
		if ok && line != "" {
			h.addr = line
			return h, nil
		}
		h.close()
		return nil, fmt.Errorf("%s helper exited before serving", spec.Kind)
	case <-time.After(30 * time.Second):
		h.close()
		return nil, fmt.Errorf("%s helper did not start within 30s", spec.Kind)
	}
}

// close asks the helper to stop (EOF on its stdin) and waits for it; after
// 15 s it is killed.
func (h *helper) close() {
	_ = h.stdin.Close()
	select {
	case <-h.done:
	case <-time.After(15 * time.Second):
		_ = h.cmd.Process.Kill()
		<-h.done
	}
}

// cpu returns the helper's user+system CPU time so far, from
// /proc/<pid>/stat (clock ticks of 10 ms), or 0 where there is no /proc.
func (h *helper) cpu() time.Duration {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(h.cmd.Process.Pid) + "/stat")
	if err != nil {
		return 0
	}
	// The command name (field 2) is in parentheses and may hold spaces:
	// count the fields after its closing parenthesis. utime and stime are
	// fields 14 and 15, so the 12th and 13th after it.
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return 0
	}
	f := strings.Fields(s[i+1:])
	if len(f) < 13 {
		return 0
	}
	ut, _ := strconv.ParseInt(f[11], 10, 64)
	st, _ := strconv.ParseInt(f[12], 10, 64)
	const tick = 10 * time.Millisecond // USER_HZ is 100 on Linux
	return time.Duration(ut+st) * tick
}

// helperMain is the helper process: it serves spec until stdin reaches EOF.
func helperMain(specJSON string, stderr io.Writer) int {
	var spec helperSpec
	if err := json.Unmarshal([]byte(specJSON), &spec); err != nil {
		fmt.Fprintf(stderr, "bench helper: bad spec: %v\n", err)
		return 1
	}
	waitStdin := func() { _, _ = io.Copy(io.Discard, os.Stdin) }
	switch spec.Kind {
	case "nats-server":
		srv, err := natslog.StartEmbedded(spec.Dir)
		if err != nil {
			fmt.Fprintf(stderr, "bench helper: %v\n", err)
			return 1
		}
		fmt.Println(srv.ClientURL())
		waitStdin()
		srv.Shutdown()
		return 0
	case "delay-proxy":
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			fmt.Fprintf(stderr, "bench helper: %v\n", err)
			return 1
		}
		p := newDelayProxy(spec.Upstream, spec.Delay)
		served := make(chan error, 1)
		go func() { served <- p.serve(ln) }()
		fmt.Println(ln.Addr().String())
		waitStdin()
		p.close()
		if err := <-served; err != nil && !errors.Is(err, net.ErrClosed) {
			fmt.Fprintf(stderr, "bench helper: proxy: %v\n", err)
			return 1
		}
		return 0
	}
	fmt.Fprintf(stderr, "bench helper: unknown kind %q\n", spec.Kind)
	return 1
}
