package cluster

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	protocluster "github.com/asynkron/protoactor-go/cluster"
	"github.com/asynkron/protoactor-go/eventstream"
	"github.com/asynkron/protoactor-go/remote"
)

// Workarounds for the defects of the protoactor-go version this package is
// built on (github.com/asynkron/protoactor-go v0.0.0-20240822202345-3c0e61ca19c9,
// an untagged snapshot of 2024-08). Every one lives in this file or in
// workarounds_probe.go, under a comment naming the defect; the tests are in
// workaround_test.go unless said otherwise. Check each when upgrading.
//
//   - MemberList.TopologyConsensus never succeeds: pollMemberList.
//     TestTopologyConsensusWorkaround.
//   - Cluster.StartMember sleeps 1 s: startConcurrently (StartAll).
//     TestStartAllPaysTheStartSleepOnce.
//   - Cluster.StartMember takes no context, panics when the provider's
//     StartMember fails, and never returns when the provider blocks: the
//     etcd provider's calls use context.TODO(), so with an unreachable etcd
//     its first Get waits forever. startMember waits for it only until
//     Start's context ends, and Shutdown then never calls the provider
//     (its Shutdown would block the same way): joined, joinErr.
//     TestEtcdUnreachableAtStart (etcd_test.go).
//   - Cluster.Shutdown deregisters from the provider only when graceful, and
//     then sleeps 2 s, so test-provider members linger: deregister.
//     TestShutdownDeregisters.
//   - Cluster.Shutdown leaves goroutines running: stopProtoactor.
//     TestShutdownLeavesNoGoroutines, and goleak over every test (main_test.go).
//   - Remote.Shutdown drops replies still queued, and members drop what a
//     member that left sends: deregister (replyLinger), failLeft.
//     TestMemberLeavesUnderLoad (move_test.go), TestOwnerLeftEndsRequestsAtOnce.
//   - Data races between members in one process, found with -race:
//     Remote.Start writes grpc's global logger (startMember, remoteStartMu,
//     startSignal, probe): TestConcurrentStartsAreOrdered. Gossip informers
//     share an unsynchronized random source (gossipInterval: off by default):
//     TestGossipIsOffByDefault. The block list is read without its lock
//     (syncPoint, arrived, watchDeadLetters): TestMemberLeavesUnderLoad and
//     TestEntitiesMoveToAJoiningMember (move_test.go). Remote.Shutdown races
//     with connections still open or closing (deregister, waitQuiet,
//     settleEndpoints, watchEndpoints): TestMemberLeavesUnderLoad,
//     TestShutdownLeavesNoGoroutines. Remote.Shutdown also writes the
//     endpoint manager's stopped flag, which every remote send reads
//     without synchronization: a refusal sent by the router while the
//     member leaves (not counted in srv.inflight, whose Wait orders the
//     others) raced with it in TestMultiProcessRollingRestart (replyNow
//     and the syncPoint before Remote.Shutdown). The multi-process tests
//     keep the members' race reports, log each race whose two access
//     stacks are protoactor-go's or gRPC's alone and fail on any other
//     (checkRaces, upstreamRace, races_test.go).
//   - A zero gossip interval panics: gossipInterval. TestGossipIsOffByDefault.
//   - Remote.Start replaces gRPC's global logger, which the gRPC client of
//     a provider built before it (etcd's) reads: LazyProvider (provider.go)
//     builds the provider after remoting. TestEtcdDiscoveryThreeProcesses,
//     TestEtcdUnreachableAtStart (etcd_test.go), whose members run with
//     -race.
//   - Not worked around, outside this package's reach (the provider's state
//     is unexported): the etcd provider reads the member list, then watches
//     from the current revision, so a member registering in between is
//     missed until its key changes (start each member once the previous
//     one has started); and its Shutdown writes
//     a flag that its keepalive and watch goroutines read without
//     synchronization, a data race that Member.Shutdown accepts to
//     deregister at once. TestEtcdDiscoveryThreeProcesses starts its
//     members one at a time and allows exactly that race (checkRaces).
//   - The automanaged provider serves its health endpoint on 0.0.0.0,
//     whatever WithAddress says: NewAutomanagedProvider (automanaged.go)
//     gives it a listener on the host it is given.
//     TestAutomanagedListensOnEveryInterface notices when upstream is
//     fixed, TestAutomanagedProviderListensOnHostOnly (network_test.go)
//     checks the workaround.

// upstream is the state of the workarounds.
type upstream struct {
	signal *startSignal // tells startMember when StartMember reached the provider
	// joined is closed when protoactor-go's Cluster.StartMember has
	// returned (or panicked), joinErr set before: a provider that blocks
	// leaves it open forever.
	joined  chan struct{}
	joinErr error
	probe   *probe       // orders this member's start before the next one's
	lastIn  atomic.Int64 // unix nanoseconds of the last message from another member

	epMu      sync.Mutex      // guards endpoints
	endpoints map[string]bool // addresses remoting has a connected endpoint writer to
	epChanged chan struct{}   // an endpoint terminated; buffered 1
	epSub     *eventstream.Subscription
	deadSub   *eventstream.Subscription
}

func newUpstream(signal *startSignal) upstream {
	return upstream{
		signal:    signal,
		joined:    make(chan struct{}),
		probe:     newProbe(),
		endpoints: make(map[string]bool),
		epChanged: make(chan struct{}, 1),
	}
}

// MemberList.TopologyConsensus never succeeds.

// pollMemberList returns once cond holds for the member list, ErrClosed if
// the member shuts down first, or an error wrapping ctx's. It polls the view
// watchTopology keeps, which is current: only the consensus never comes.
func (m *Member) pollMemberList(ctx context.Context, cond func(*view) bool) error {
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for !cond(m.topo.view.Load()) {
		select {
		case <-ctx.Done():
			return fmt.Errorf("cluster: waiting for the member list: %w", ctx.Err())
		case <-m.done:
			return ErrClosed
		case <-tick.C:
		}
	}
	return nil
}

// Cluster.StartMember sleeps 1 s.

// startConcurrently starts members at once, so that their StartMember
// sleeps overlap: remoteStartMu serializes only what comes before them.
func startConcurrently(ctx context.Context, members []*Member) error {
	errs := make([]error, len(members))
	var wg sync.WaitGroup
	for i, m := range members {
		wg.Go(func() { errs[i] = m.Start(ctx) })
	}
	wg.Wait()
	return errors.Join(errs...)
}

// Remote.Start writes grpc's global logger without synchronization, a data
// race with the gRPC servers of members already started in the process,
// which read it.

// remoteStartMu serializes protoactor-go's Remote.Start in this process.
// startMember holds it until the provider is asked to register the member,
// which Cluster.StartMember does after Remote.Start and before its 1 s
// sleep, so concurrent starts still overlap their sleeps; and until the
// probe has made the race detector see this member's gRPC server as
// started before the next member's Remote.Start (workarounds_probe.go).
var remoteStartMu sync.Mutex

// startSignal is the cluster provider, wrapped to tell startMember when
// Cluster.StartMember has reached it: remoting is up then.
type startSignal struct {
	protocluster.ClusterProvider
	once    sync.Once
	started chan struct{}
}

func newStartSignal(p protocluster.ClusterProvider) *startSignal {
	return &startSignal{ClusterProvider: p, started: make(chan struct{})}
}

// StartMember implements cluster.ClusterProvider.
func (s *startSignal) StartMember(c *protocluster.Cluster) error {
	syncPoint()
	s.fire()
	return s.ClusterProvider.StartMember(c)
}

func (s *startSignal) fire() { s.once.Do(func() { close(s.started) }) }

// startMember runs protoactor-go's Cluster.StartMember (remoting, then the
// provider, then the 1 s sleep), with Remote.Start serialized and ordered
// by the probe, and waits for it until ctx ends.
func (m *Member) startMember(ctx context.Context) error {
	if _, err := m.actors.Root.SpawnNamed(m.up.probe.props(), probeName); err != nil {
		return fmt.Errorf("cluster: spawn probe: %w", err)
	}
	remoteStartMu.Lock()
	// Waited for below until ctx ends. A provider that blocks forever keeps
	// it forever: Cluster.StartMember cannot be cancelled.
	go func() {
		defer close(m.up.joined)
		defer func() {
			if v := recover(); v != nil {
				m.up.signal.fire()
				m.up.joinErr = fmt.Errorf("cluster: start member: %v", v)
			}
		}()
		m.pc.StartMember()
	}()
	<-m.up.signal.started // remoting is up: Remote.Start does not block
	probeErr := m.up.probe.run(ctx, m.actors.Address())
	remoteStartMu.Unlock()
	select {
	case <-m.up.joined:
	case <-ctx.Done():
		return fmt.Errorf("cluster: start member: the cluster provider did not register this member: %w", ctx.Err())
	}
	if m.up.joinErr != nil {
		return m.up.joinErr
	}
	return probeErr
}

// abandonProvider is Shutdown's deregister when Start gave up on the
// provider (or it failed): the provider is not called now, since it may
// block like its StartMember; should its StartMember return after all, the
// goroutine still waiting for it deregisters the member then.
func (m *Member) abandonProvider() {
	select {
	case <-m.up.joined: // it failed: nothing to deregister
		return
	default:
	}
	m.cfg.logger.Warn("cluster: the cluster provider never registered this member; not deregistering", "member", m.actors.Address())
	go func() { // ends when the provider's StartMember does, if ever
		<-m.up.joined
		if m.up.joinErr == nil {
			_ = m.pc.Config.ClusterProvider.Shutdown(true)
		}
	}()
}

// providerJoined reports whether protoactor-go's Cluster.StartMember has
// returned without error, so the provider may be called again.
func (m *Member) providerJoined() bool {
	select {
	case <-m.up.joined:
		return m.up.joinErr == nil
	default:
		return false
	}
}

// Gossip informers share an unsynchronized random source (a data race
// between members in one process), and gossip throttles leave 60 s timers
// running after Shutdown. A zero gossip interval panics.

// gossipOff is the gossip interval that turns it off in practice:
// protoactor-go always starts the gossip loop.
const gossipOff = 24 * time.Hour

// gossipInterval is the cluster option for WithGossipInterval(d): gossipOff
// for 0.
func gossipInterval(d time.Duration) protocluster.ConfigOption {
	if d == 0 {
		d = gossipOff
	}
	return func(c *protocluster.Config) { c.GossipInterval = d }
}

// The block list is read without its lock: protoactor-go's endpoint reader
// reads it when a member connects, and MemberList.UpdateClusterTopology
// replaces it (under the lock) whenever a member joins or leaves, on
// whatever goroutine the provider calls it from; in one process the test
// provider calls every member's from the goroutine of the member that joins
// or leaves.

// handoff orders those reads before the replacement, for the race
// detector. Every message remoting delivers to this package (a command to a
// router, a reply to a request, a dead letter, the start probe) passes
// syncPoint after the connection's reader goroutine read the block list,
// and a member passes it again before it registers with or deregisters from
// the provider. It costs one atomic add, uncontended in practice, per
// command on each side.
var handoff atomic.Int64

func syncPoint() { handoff.Add(1) }

// arrived marks a message from another member: it passes syncPoint and
// notes the time for waitQuiet.
func (m *Member) arrived() {
	syncPoint()
	m.up.lastIn.Store(time.Now().UnixNano())
}

// watchDeadLetters passes syncPoint for every dead letter: a reply that
// arrives after its request gave up is one.
func (m *Member) watchDeadLetters() {
	m.up.deadSub = m.actors.EventStream.Subscribe(func(ev any) {
		if _, ok := ev.(*actor.DeadLetterEvent); ok {
			syncPoint()
		}
	})
}

// Cluster.Shutdown deregisters from the provider only when graceful, and
// then sleeps 2 s; without it a test-provider member lingers in the others'
// lists. Remote.Shutdown drops the replies still queued in its endpoint
// writers, without a flush; and once a member has deregistered, the others
// block it and drop what it sends. Remote.Shutdown also races with the
// connections still open or just closing (see deregister).

// replyLinger is how long deregister keeps the member registered after the
// last command it ran, for the replies to leave.
const replyLinger = 300 * time.Millisecond

const (
	quietFor = 150 * time.Millisecond // no message for this long is quiet
	quietMax = 3 * time.Second        // waitQuiet gives up after this long
)

// deregister leaves the provider's member list, once the replies of the
// commands this member ran have left: Shutdown calls it after draining, so
// meanwhile new commands get ErrUnavailable and are retried elsewhere.
func (m *Member) deregister() {
	time.Sleep(replyLinger)
	syncPoint()
	if err := m.pc.Config.ClusterProvider.Shutdown(true); err != nil {
		// The others find out when the provider's TTL expires: until
		// then they send this member commands that fail and are retried.
		m.cfg.logger.Warn("cluster: deregister from the provider failed", "member", m.self, "err", err)
	}
	// The others now drop their connections to us. Remote.Shutdown signals
	// each connection still open on a channel that the connection's own
	// goroutine closes when it ends (a data race, and a panic if the close
	// comes first), and flags the connections' readers as suspended without
	// synchronization: so wait until nothing has arrived for a while, then
	// pass the handoff point every arrival passed.
	m.waitQuiet()
	syncPoint()
}

// waitQuiet waits until no message has arrived for quietFor, at most
// quietMax.
func (m *Member) waitQuiet() {
	deadline := time.Now().Add(quietMax)
	for time.Now().Before(deadline) {
		time.Sleep(quietFor / 3)
		if time.Since(time.Unix(0, m.up.lastIn.Load())) >= quietFor {
			return
		}
	}
}

// ownerLeft completes a request whose owner left the cluster: the answer
// of a member that left would be dropped, so it would never arrive.
type ownerLeft struct{ addr string }

// failLeft completes the requests waiting for members that left, so that
// their callers get ErrTimeout at once instead of at the request timeout.
func (m *Member) failLeft(left []*protocluster.Member) {
	if len(left) == 0 {
		return
	}
	gone := make(map[string]bool, len(left))
	for _, l := range left {
		gone[l.Address()] = true
	}
	m.route.waiting.Range(func(k, v any) bool {
		if addr := v.(string); gone[addr] {
			m.failFuture(k.(*actor.Future), addr)
		}
		return true
	})
}

func (m *Member) failFuture(f *actor.Future, addr string) {
	m.actors.Root.Send(f.PID(), ownerLeft{addr: addr})
}

// Cluster.Shutdown leaves goroutines running: Shutdown(true) sleeps 2 s
// and still leaves some, Shutdown(false) skips stopping the identity lookup
// and gossip. And protoactor-go's endpoint manager handles the loss of a
// connection on the connection's goroutine, reading its stopped flag
// without synchronization, so stopping remoting meanwhile is a data race.

// endpointSettle bounds settleEndpoints.
const endpointSettle = 3 * time.Second

// watchEndpoints tracks the endpoints remoting has connected, for
// settleEndpoints. Start subscribes it after remoting's endpoint manager,
// so it runs after the manager has handled each event.
func (m *Member) watchEndpoints() {
	m.up.epSub = m.actors.EventStream.Subscribe(func(ev any) {
		switch e := ev.(type) {
		case *remote.EndpointConnectedEvent:
			m.up.epMu.Lock()
			m.up.endpoints[e.Address] = true
			m.up.epMu.Unlock()
		case *remote.EndpointTerminatedEvent:
			m.up.epMu.Lock()
			delete(m.up.endpoints, e.Address)
			m.up.epMu.Unlock()
			select {
			case m.up.epChanged <- struct{}{}:
			default:
			}
		}
	})
}

// settleEndpoints waits (at most endpointSettle) until remoting has handled
// the loss of its connections to members that left.
func (m *Member) settleEndpoints() {
	deadline := time.NewTimer(endpointSettle)
	defer deadline.Stop()
	for {
		v := m.topo.view.Load()
		m.up.epMu.Lock()
		pending := 0
		for addr := range m.up.endpoints {
			if !v.has(addr) {
				pending++
			}
		}
		m.up.epMu.Unlock()
		if pending == 0 {
			return
		}
		select {
		case <-m.up.epChanged:
		case <-deadline.C:
			return
		}
	}
}

// stopProtoactor stops what Start started of protoactor-go: the probe's
// connection, the subscriptions, the identity lookup, gossip, remoting and
// the actor system, in place of Cluster.Shutdown. What remains cannot be
// stopped from outside: throttle timers that end within 60 s, and the test
// provider's TTL loop, which blocks forever on a stopped ticker.
func (m *Member) stopProtoactor() {
	m.up.probe.close()
	m.settleEndpoints()
	m.actors.EventStream.Unsubscribe(m.topo.sub)
	m.actors.EventStream.Unsubscribe(m.up.epSub)
	m.actors.EventStream.Unsubscribe(m.up.deadSub)
	pc := m.pc
	pc.IdentityLookup.Shutdown()
	pc.Gossip.Shutdown()
	syncPoint() // after the replies sent outside srv.inflight (replyNow)
	pc.Remote.Shutdown(true)
	m.actors.Shutdown()
}
