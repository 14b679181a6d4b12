package natscluster

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/eventsourced-go/eventsourced/internal/freeport"
)

// ClusterName is the name of every cluster [Start] starts.
const ClusterName = "eventsourced"

// childEnv carries a node's configuration (JSON) to the process that runs
// it; its presence is what [RunIfChild] looks for.
const childEnv = "EVENTSOURCED_NATSCLUSTER_NODE"

// stopGrace is how long [Cluster.Stop] lets a node shut down after SIGTERM
// before it kills it.
const stopGrace = 10 * time.Second

var (
	// ErrInvalid reports a bad argument; the message names it.
	ErrInvalid = errors.New("natscluster: invalid argument")
	// ErrStopped is returned by [Cluster.Kill], [Cluster.Restart] and
	// [Cluster.StreamState] after [Cluster.Stop].
	ErrStopped = errors.New("natscluster: cluster stopped")
)

// nodeConfig is what a node process needs to run its server.
type nodeConfig struct {
	Name        string `json:"name"`
	ClientPort  int    `json:"client_port"`
	ClusterPort int    `json:"cluster_port"`
	HTTPPort    int    `json:"http_port"`
	Routes      []int  `json:"routes"` // the other nodes' cluster ports
	StoreDir    string `json:"store_dir"`
	ParentPID   int    `json:"parent_pid"`
}

// node is one member of a Cluster.
type node struct {
	cfg     nodeConfig
	logPath string
	cmd     *exec.Cmd     // nil while not running
	exited  chan struct{} // closed when cmd has exited; nil while not running
}

// Cluster is a running cluster of nats-server processes; see the package
// documentation.
type Cluster struct {
	dir string

	mu      sync.Mutex // guards the cmd and exited fields of nodes, and stopped
	nodes   []*node    // fixed after Start
	stopped bool
}

// Start starts n nats-server processes on 127.0.0.1, routed to each other
// in one cluster with JetStream on, keeping their data and logs under dir
// (created if missing), and waits until every node is healthy and the
// JetStream meta group has a leader, or ctx ends. On failure it stops what
// it started.
func Start(ctx context.Context, dir string, n int) (*Cluster, error) {
	if dir == "" {
		return nil, fmt.Errorf("%w: Start: empty directory", ErrInvalid)
	}
	if n < 1 {
		return nil, fmt.Errorf("%w: Start: %d nodes, want at least 1", ErrInvalid, n)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("natscluster: start: %w", err)
	}
	ports, err := freeport.Ports(3 * n)
	if err != nil {
		return nil, err
	}
	c := &Cluster{dir: dir, nodes: make([]*node, n)}
	for i := range n {
		cfg := nodeConfig{
			Name:        "n" + strconv.Itoa(i),
			ClientPort:  ports[3*i],
			ClusterPort: ports[3*i+1],
			HTTPPort:    ports[3*i+2],
			StoreDir:    filepath.Join(dir, "n"+strconv.Itoa(i)),
			ParentPID:   os.Getpid(),
		}
		for j := range n {
			if j != i {
				cfg.Routes = append(cfg.Routes, ports[3*j+1])
			}
		}
		c.nodes[i] = &node{cfg: cfg, logPath: filepath.Join(dir, cfg.Name+".log")}
	}
	c.mu.Lock()
	for i := range c.nodes {
		if err := c.startLocked(i); err != nil {
			c.mu.Unlock()
			c.Stop()
			return nil, err
		}
	}
	c.mu.Unlock()
	for i := range c.nodes {
		if err := c.waitReady(ctx, i); err != nil {
			c.Stop()
			return nil, err
		}
	}
	return c, nil
}

// startLocked starts node i's process. c.mu is held.
func (c *Cluster) startLocked(i int) error {
	nd := c.nodes[i]
	cfg, err := json.Marshal(nd.cfg)
	if err != nil {
		return fmt.Errorf("natscluster: node %s: %w", nd.cfg.Name, err)
	}
	out, err := os.OpenFile(nd.logPath, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
	if err != nil {
		return fmt.Errorf("natscluster: node %s: log file: %w", nd.cfg.Name, err)
	}
	cmd := exec.Command(os.Args[0])
	cmd.Env = append(os.Environ(), childEnv+"="+string(cfg))
	cmd.Stdout = out
	cmd.Stderr = out
	cmd.SysProcAttr = sysProcAttr()
	if err := cmd.Start(); err != nil {
		out.Close()
		return fmt.Errorf("natscluster: node %s: start %s: %w", nd.cfg.Name, os.Args[0], err)
	}
	exited := make(chan struct{})
	go func() {
		cmd.Wait()
		out.Close()
		close(exited)
	}()
	nd.cmd, nd.exited = cmd, exited
	return nil
}

// waitReady waits until node i answers /healthz with 200 (JetStream on and
// current with the meta leader) and a JetStream account info request made
// through it succeeds, or ctx ends or the process exits.
func (c *Cluster) waitReady(ctx context.Context, i int) error {
	nd := c.nodes[i]
	c.mu.Lock()
	exited := nd.exited
	c.mu.Unlock()
	if exited == nil {
		return fmt.Errorf("natscluster: node %s is not running", nd.cfg.Name)
	}
	var last error
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	for {
		if last = c.probe(ctx, nd); last == nil {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("natscluster: node %s not ready (see %s): %w; last: %v", nd.cfg.Name, nd.logPath, context.Cause(ctx), last)
		case <-exited:
			return fmt.Errorf("natscluster: node %s exited before it was ready (see %s); last: %v", nd.cfg.Name, nd.logPath, last)
		case <-tick.C:
		}
	}
}

// probe checks once that nd is ready.
func (c *Cluster) probe(ctx context.Context, nd *node) error {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	if err := httpGet(ctx, nd.cfg.HTTPPort, "/healthz", nil); err != nil {
		return err
	}
	nc, err := nats.Connect(nodeURL(nd.cfg.ClientPort), nats.NoReconnect(), nats.Timeout(time.Second), nats.Name("natscluster probe"))
	if err != nil {
		return err
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		return err
	}
	_, err = js.AccountInfo(ctx)
	return err
}

// monitorClient keeps no idle connections: a node may be killed at any
// time, and nothing should linger after a call.
var monitorClient = &http.Client{Transport: &http.Transport{DisableKeepAlives: true}}

// httpGet gets path from the monitoring port and decodes the JSON body into
// v (if not nil); a status other than 200 is an error.
func httpGet(ctx context.Context, port int, path string, v any) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+net.JoinHostPort("127.0.0.1", strconv.Itoa(port))+path, nil)
	if err != nil {
		return err
	}
	resp, err := monitorClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		var body [512]byte
		k, _ := resp.Body.Read(body[:])
		return fmt.Errorf("GET %s: %s: %s", path, resp.Status, strings.TrimSpace(string(body[:k])))
	}
	if v == nil {
		return nil
	}
	return json.NewDecoder(resp.Body).Decode(v)
}

func nodeURL(port int) string { return "nats://" + net.JoinHostPort("127.0.0.1", strconv.Itoa(port)) }

// node returns node i, or an error naming i if there is none or the cluster
// is stopped. c.mu is held.
func (c *Cluster) nodeLocked(op string, i int) (*node, error) {
	if c.stopped {
		return nil, fmt.Errorf("natscluster: %s: %w", op, ErrStopped)
	}
	if i < 0 || i >= len(c.nodes) {
		return nil, fmt.Errorf("%w: %s: node %d of %d", ErrInvalid, op, i, len(c.nodes))
	}
	return c.nodes[i], nil
}

// Len returns the number of nodes.
func (c *Cluster) Len() int { return len(c.nodes) }

// Dir returns the directory of the nodes' data and logs.
func (c *Cluster) Dir() string { return c.dir }

// Name returns the server name of node i, "n<i>", or "" if there is no node
// i.
func (c *Cluster) Name(i int) string {
	if i < 0 || i >= len(c.nodes) {
		return ""
	}
	return c.nodes[i].cfg.Name
}

// Index returns the index of the node whose server name is serverName, as
// JetStream reports leaders and replicas, or -1 if none is.
func (c *Cluster) Index(serverName string) int {
	for i, nd := range c.nodes {
		if nd.cfg.Name == serverName {
			return i
		}
	}
	return -1
}

// LogFile returns the file node i's output goes to, or "" if there is no
// node i.
func (c *Cluster) LogFile(i int) string {
	if i < 0 || i >= len(c.nodes) {
		return ""
	}
	return c.nodes[i].logPath
}

// URL returns the client URL of node i, nats://127.0.0.1:<port>, or "" if
// there is no node i. It stays the same across restarts.
func (c *Cluster) URL(i int) string {
	if i < 0 || i >= len(c.nodes) {
		return ""
	}
	return nodeURL(c.nodes[i].cfg.ClientPort)
}

// URLs returns the client URLs of all nodes, in node order.
func (c *Cluster) URLs() []string {
	urls := make([]string, len(c.nodes))
	for i := range c.nodes {
		urls[i] = c.URL(i)
	}
	return urls
}

// Connect connects to the cluster through any of its nodes. The connection
// reconnects forever, every 100 ms, to whichever node is up, so a client
// rides out nodes being killed and restarted; opts come after those
// defaults and may override them.
func (c *Cluster) Connect(opts ...nats.Option) (*nats.Conn, error) {
	all := append([]nats.Option{
		nats.Name("natscluster client"),
		nats.MaxReconnects(-1),
		nats.ReconnectWait(100 * time.Millisecond),
		nats.ReconnectJitter(0, 0),
	}, opts...)
	nc, err := nats.Connect(strings.Join(c.URLs(), ","), all...)
	if err != nil {
		return nil, fmt.Errorf("natscluster: connect to %s: %w", strings.Join(c.URLs(), ","), err)
	}
	return nc, nil
}

// ConnectVia connects to the cluster through node i: the connection tries
// node i first and fails over to the others in node order, reconnecting as
// [Cluster.Connect] does. Tests use it to put a client on a node they will
// kill, or on one they will not.
func (c *Cluster) ConnectVia(i int, opts ...nats.Option) (*nats.Conn, error) {
	if i < 0 || i >= len(c.nodes) {
		return nil, fmt.Errorf("%w: ConnectVia: node %d of %d", ErrInvalid, i, len(c.nodes))
	}
	urls := []string{c.URL(i)}
	for j := range c.nodes {
		if j != i {
			urls = append(urls, c.URL(j))
		}
	}
	all := append([]nats.Option{
		nats.Name("natscluster client via " + c.Name(i)),
		nats.DontRandomize(),
		nats.MaxReconnects(-1),
		nats.ReconnectWait(100 * time.Millisecond),
		nats.ReconnectJitter(0, 0),
	}, opts...)
	nc, err := nats.Connect(strings.Join(urls, ","), all...)
	if err != nil {
		return nil, fmt.Errorf("natscluster: connect via %s (%s): %w", c.Name(i), c.URL(i), err)
	}
	return nc, nil
}

// Kill kills node i's process with SIGKILL and waits until it has exited:
// a crash, with no shutdown of the server.
func (c *Cluster) Kill(i int) error {
	c.mu.Lock()
	nd, err := c.nodeLocked("Kill", i)
	if err != nil {
		c.mu.Unlock()
		return err
	}
	cmd, exited := nd.cmd, nd.exited
	nd.cmd, nd.exited = nil, nil
	c.mu.Unlock()
	if cmd == nil {
		return fmt.Errorf("natscluster: Kill: node %s is not running", nd.cfg.Name)
	}
	if err := cmd.Process.Signal(syscall.SIGKILL); err != nil && !errors.Is(err, os.ErrProcessDone) {
		return fmt.Errorf("natscluster: kill node %s: %w", nd.cfg.Name, err)
	}
	<-exited // SIGKILL cannot be caught: it exits
	return nil
}

// Restart starts node i again, after [Cluster.Kill], on the same ports and
// data directory, and waits as [Start] does until it is ready: healthy and
// in touch with the meta leader. Its streams may still be catching up;
// [Cluster.StreamState] tells.
func (c *Cluster) Restart(ctx context.Context, i int) error {
	c.mu.Lock()
	nd, err := c.nodeLocked("Restart", i)
	if err == nil && c.runningLocked(nd) {
		err = fmt.Errorf("natscluster: Restart: node %s is running", nd.cfg.Name)
	}
	if err == nil {
		err = c.startLocked(i)
	}
	c.mu.Unlock()
	if err != nil {
		return err
	}
	return c.waitReady(ctx, i)
}

// Running reports whether node i's process is running (started and not
// killed or stopped).
func (c *Cluster) Running(i int) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if i < 0 || i >= len(c.nodes) {
		return false
	}
	return c.runningLocked(c.nodes[i])
}

// runningLocked reports whether nd's process is running. c.mu is held.
func (c *Cluster) runningLocked(nd *node) bool {
	if nd.cmd == nil {
		return false
	}
	select {
	case <-nd.exited:
		return false
	default:
		return true
	}
}

// StreamState is what one node reports of its copy of a stream.
type StreamState struct {
	// Node is the name of the node that reported.
	Node string
	// Leader is the name of the stream's leader as the node knows it; ""
	// if none.
	Leader string
	// Msgs, FirstSeq and LastSeq describe the messages of the node's copy.
	Msgs, FirstSeq, LastSeq uint64
}

// StreamState returns node i's own copy's state of the stream named stream
// (of any account), from its monitoring endpoint (/jsz): unlike JetStream's
// stream info, which the leader answers, it shows how far that node's
// replica is.
func (c *Cluster) StreamState(ctx context.Context, i int, stream string) (StreamState, error) {
	c.mu.Lock()
	nd, err := c.nodeLocked("StreamState", i)
	c.mu.Unlock()
	if err != nil {
		return StreamState{}, err
	}
	var info server.JSInfo
	if err := httpGet(ctx, nd.cfg.HTTPPort, "/jsz?accounts=true&streams=true", &info); err != nil {
		return StreamState{}, fmt.Errorf("natscluster: stream %q on node %s: %w", stream, nd.cfg.Name, err)
	}
	for _, acc := range info.AccountDetails {
		for _, s := range acc.Streams {
			if s.Name != stream {
				continue
			}
			st := StreamState{Node: nd.cfg.Name, Msgs: s.State.Msgs, FirstSeq: s.State.FirstSeq, LastSeq: s.State.LastSeq}
			if s.Cluster != nil {
				st.Leader = s.Cluster.Leader
			}
			return st, nil
		}
	}
	return StreamState{}, fmt.Errorf("natscluster: node %s has no stream %q", nd.cfg.Name, stream)
}

// Stop stops every running node: SIGTERM, which shuts the server down
// cleanly, and SIGKILL for a node still running 10 s later. It waits until
// all have exited. Calls after the first do nothing.
func (c *Cluster) Stop() {
	c.mu.Lock()
	if c.stopped {
		c.mu.Unlock()
		return
	}
	c.stopped = true
	var running []*node
	for _, nd := range c.nodes {
		if nd.cmd != nil {
			running = append(running, &node{cfg: nd.cfg, cmd: nd.cmd, exited: nd.exited})
			nd.cmd, nd.exited = nil, nil
		}
	}
	c.mu.Unlock()
	for _, nd := range running {
		nd.cmd.Process.Signal(syscall.SIGTERM)
	}
	deadline := time.NewTimer(stopGrace)
	defer deadline.Stop()
	for _, nd := range running {
		select {
		case <-nd.exited:
		case <-deadline.C:
			// Expired: kill this one and every later one still running.
			nd.cmd.Process.Kill()
			<-nd.exited
			for _, rest := range running {
				rest.cmd.Process.Kill()
				<-rest.exited
			}
			return
		}
	}
}
