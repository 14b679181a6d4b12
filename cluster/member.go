package cluster

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	protocluster "github.com/asynkron/protoactor-go/cluster"
	"github.com/asynkron/protoactor-go/cluster/identitylookup/disthash"
	"github.com/asynkron/protoactor-go/eventstream"
	"github.com/asynkron/protoactor-go/remote"

	"github.com/eventsourced-go/eventsourced/cluster/clusterpb"
	"github.com/eventsourced-go/eventsourced/entity"
	"github.com/eventsourced-go/eventsourced/eventlog"
)

// Member is one process's membership in a cluster: a protoactor-go actor
// system with remoting, a cluster member serving the registered entity types,
// and the [entity.System] that runs the entities this member owns. Create it
// with [NewMember], register types with [Register] and commands with
// [RegisterCommand], then [Member.Start]; stop it with [Member.Shutdown].
type Member struct {
	cfg    config
	signal *startSignal
	probe  *probe
	actors *actor.ActorSystem
	pc     *protocluster.Cluster
	sys    *entity.System

	mu      sync.RWMutex // guards kinds (until Start), started, closing and the inflight Add
	kinds   map[string]kindHandle
	started bool
	closing bool

	served   map[string]kindHandle // frozen copy of kinds, set by Start
	self     string                // this member's address, set by Start
	view     atomic.Pointer[view]
	closed   atomic.Bool
	retries  atomic.Int64 // attempts retried, for Stats
	messages atomic.Int64 // messages sent to other members, for Stats
	remote   atomic.Int64 // commands they carried, for Stats
	lastIn   atomic.Int64 // unix nanoseconds of the last message from another member
	waiting  sync.Map     // *actor.Future -> owner address: requests awaiting a reply
	pipes    sync.Map     // pipeKey -> *pipe

	draining  sync.Map     // address -> time.Time: members that answered "leaving"
	nDraining atomic.Int32 // entries in draining
	deadSub   *eventstream.Subscription
	topoSub   *eventstream.Subscription
	epSub     *eventstream.Subscription

	epMu      sync.Mutex      // guards endpoints
	endpoints map[string]bool // addresses remoting has a connected endpoint writer to
	epChanged chan struct{}   // an endpoint terminated; buffered 1
	changed   chan struct{}   // topology changed; buffered 1
	done      chan struct{}   // closed by Shutdown
	inflight  sync.WaitGroup  // goroutines running commands for other members
	flushes   sync.WaitGroup  // goroutines sending batches for callers that may give up
	flushMu   sync.RWMutex    // guards noFlush, and orders flushes.Add before Wait
	noFlush   bool            // set by Shutdown: send batches without a goroutine
	tasks     chan func()     // to the idle workers; unbuffered
	bg        sync.WaitGroup  // the sweeper
	stopOnce  sync.Once
}

// kindHandle is what the Member needs of a Kind, whatever its type parameters.
type kindHandle interface {
	// handle runs env on the local entity; ctx bounds it.
	handle(ctx context.Context, env *clusterpb.CommandEnvelope) *clusterpb.ReplyEnvelope
	sweep(v *view, self string, idleBefore int64)
}

type config struct {
	host           string
	port           int
	advertisedHost string
	logger         *slog.Logger
	entityOpts     []entity.Option
	requestTimeout time.Duration
	retries        int
	backoff        time.Duration
	maxBackoff     time.Duration
	passivateAfter time.Duration
	lookup         protocluster.IdentityLookup
	clusterOpts    []protocluster.ConfigOption
	gossip         time.Duration
}

// Option configures a [Member].
type Option func(*config) error

// WithAddress sets the host and port remoting listens on (default
// 127.0.0.1 and a free port). Port 0 picks a free port.
func WithAddress(host string, port int) Option {
	return func(c *config) error {
		if host == "" || port < 0 || port > 65535 {
			return fmt.Errorf("%w: WithAddress(%q, %d)", ErrInvalid, host, port)
		}
		c.host, c.port = host, port
		return nil
	}
}

// WithAdvertisedHost sets the host:port other members use to reach this one,
// when it differs from the listen address (NAT, containers).
func WithAdvertisedHost(hostPort string) Option {
	return func(c *config) error {
		if hostPort == "" {
			return fmt.Errorf("%w: WithAdvertisedHost(\"\")", ErrInvalid)
		}
		c.advertisedHost = hostPort
		return nil
	}
}

// WithLogger sets the logger of the member and of protoactor-go. The default
// discards everything (protoactor-go logs a lot at Info).
func WithLogger(l *slog.Logger) Option {
	return func(c *config) error {
		if l == nil {
			return fmt.Errorf("%w: WithLogger(nil)", ErrInvalid)
		}
		c.logger = l
		return nil
	}
}

// WithEntityOptions passes options to the member's [entity.System], such as
// entity.WithSnapshotStore. entity.WithActorSystem is set by the Member.
func WithEntityOptions(opts ...entity.Option) Option {
	return func(c *config) error {
		c.entityOpts = append(c.entityOpts, opts...)
		return nil
	}
}

// WithRequestTimeout bounds each attempt of a remote command (default 10 s);
// a ctx deadline that comes sooner wins. The owner runs the command under
// that bound, and its answer is awaited a little longer (250 ms), so that a
// command that timed out waiting on the owner, which never ran, is reported
// as the owner's context error. An attempt with no answer at all fails with
// [ErrTimeout] and is not retried, since the command may have run.
func WithRequestTimeout(d time.Duration) Option {
	return func(c *config) error {
		if d <= 0 {
			return fmt.Errorf("%w: WithRequestTimeout(%v): must be > 0", ErrInvalid, d)
		}
		c.requestTimeout = d
		return nil
	}
}

// WithRetry sets how often a command that surely did not run (the owner was
// leaving, the message was not delivered, or the append conflicted with the
// entity's current owner) is retried against the current owner, and the first
// backoff, which doubles per attempt up to 1 s with jitter. The default is 10
// retries from 20 ms: about 5 s, enough for a membership change to settle.
func WithRetry(retries int, backoff time.Duration) Option {
	return func(c *config) error {
		if retries < 0 || backoff <= 0 {
			return fmt.Errorf("%w: WithRetry(%d, %v)", ErrInvalid, retries, backoff)
		}
		c.retries, c.backoff = retries, backoff
		return nil
	}
}

// WithPassivateAfter stops entities that served no command here for d (0, the
// default, never); the next command activates them again. Entities whose
// ownership moved to another member are stopped whatever d is.
func WithPassivateAfter(d time.Duration) Option {
	return func(c *config) error {
		if d < 0 {
			return fmt.Errorf("%w: WithPassivateAfter(%v): must be >= 0", ErrInvalid, d)
		}
		c.passivateAfter = d
		return nil
	}
}

// WithGossipInterval turns protoactor-go's gossip on, every d (0: off, the
// default). This package does not need gossip: membership comes from the
// provider, ownership from rendezvous hashing and the single writer from the
// log. It is off by default because in the protoactor-go version this
// package is built on, the gossip informers of all members in one process
// share an unsynchronized random source (a data race), and its throttles
// leave 60 s timers running after Shutdown. Turn it on for protoactor-go
// features that need it, with one member per process.
func WithGossipInterval(d time.Duration) Option {
	return func(c *config) error {
		if d < 0 {
			return fmt.Errorf("%w: WithGossipInterval(%v): must be >= 0", ErrInvalid, d)
		}
		c.gossip = d
		return nil
	}
}

// WithClusterOptions passes options to protoactor-go's cluster.Configure,
// such as cluster.WithRequestTimeout or gossip settings.
func WithClusterOptions(opts ...protocluster.ConfigOption) Option {
	return func(c *config) error {
		c.clusterOpts = append(c.clusterOpts, opts...)
		return nil
	}
}

// NewMember returns a member of the cluster clusterName that stores events in
// log (shared by all members: the log decides who writes) and finds the other
// members with provider, such as the test provider (one process), automanaged
// (loopback or LAN), consul, etcd or k8s.
func NewMember(clusterName string, log eventlog.Log, provider protocluster.ClusterProvider, opts ...Option) (*Member, error) {
	switch {
	case clusterName == "":
		return nil, fmt.Errorf("%w: NewMember with an empty cluster name", ErrInvalid)
	case log == nil:
		return nil, fmt.Errorf("%w: NewMember with a nil log", ErrInvalid)
	case provider == nil:
		return nil, fmt.Errorf("%w: NewMember with a nil provider", ErrInvalid)
	}
	cfg := config{
		host:           "127.0.0.1",
		logger:         slog.New(slog.DiscardHandler),
		requestTimeout: 10 * time.Second,
		retries:        10,
		backoff:        20 * time.Millisecond,
		maxBackoff:     time.Second,
	}
	for _, opt := range opts {
		if err := opt(&cfg); err != nil {
			return nil, err
		}
	}
	if cfg.lookup == nil {
		cfg.lookup = disthash.New()
	}
	logger := cfg.logger
	as := actor.NewActorSystem(actor.WithLoggerFactory(func(*actor.ActorSystem) *slog.Logger { return logger }))
	var ropts []remote.ConfigOption
	if cfg.advertisedHost != "" {
		ropts = append(ropts, remote.WithAdvertisedHost(cfg.advertisedHost))
	}
	signal := &startSignal{ClusterProvider: provider, started: make(chan struct{})}
	gossip := cfg.gossip
	if gossip == 0 {
		gossip = gossipOff
	}
	copts := append([]protocluster.ConfigOption{func(c *protocluster.Config) { c.GossipInterval = gossip }}, cfg.clusterOpts...)
	pcfg := protocluster.Configure(clusterName, signal, cfg.lookup, remote.Configure(cfg.host, cfg.port, ropts...), copts...)
	sys, err := entity.NewSystem(log, append(cfg.entityOpts, entity.WithActorSystem(as))...)
	if err != nil {
		as.Shutdown()
		return nil, fmt.Errorf("cluster: %w", err)
	}
	m := &Member{
		cfg:       cfg,
		signal:    signal,
		probe:     newProbe(),
		actors:    as,
		pc:        protocluster.New(as, pcfg),
		sys:       sys,
		kinds:     make(map[string]kindHandle),
		changed:   make(chan struct{}, 1),
		tasks:     make(chan func()),
		endpoints: make(map[string]bool),
		epChanged: make(chan struct{}, 1),
		done:      make(chan struct{}),
	}
	m.view.Store(newView(nil))
	return m, nil
}

// System returns the member's entity system, which runs the entities this
// member owns. Its kinds are registered by [Register].
func (m *Member) System() *entity.System { return m.sys }

// ActorSystem returns the member's protoactor-go actor system.
func (m *Member) ActorSystem() *actor.ActorSystem { return m.actors }

// Cluster returns the protoactor-go cluster, for what this package does not
// cover (pub/sub, other grains).
func (m *Member) Cluster() *protocluster.Cluster { return m.pc }

// Address returns the member's host:port once started.
func (m *Member) Address() string { return m.self }

// addKind registers h under name before Start.
func (m *Member) addKind(name string, h kindHandle) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	switch {
	case m.closing:
		return ErrClosed
	case m.started:
		return fmt.Errorf("%w: register entity type %q after Start", ErrInvalid, name)
	}
	if _, dup := m.kinds[name]; dup {
		return fmt.Errorf("%w: entity type %q is already registered", ErrInvalid, name)
	}
	m.kinds[name] = h
	props := actor.PropsFromProducer(func() actor.Actor { return &grain{m: m} })
	m.pc.Config.Kinds[name] = protocluster.NewKind(name, props)
	return nil
}

// gossipOff is the gossip interval that turns it off in practice:
// protoactor-go always starts the gossip loop, and a zero interval panics.
const gossipOff = 24 * time.Hour

// remoteStartMu serializes protoactor-go's Remote.Start in this process: it
// sets grpc's global logger without synchronization, a data race when
// members start concurrently. Start holds it until the provider is asked to
// register the member, which Cluster.StartMember does after Remote.Start and
// before its 1 s sleep, so concurrent starts still overlap their sleeps.
var remoteStartMu sync.Mutex

// startSignal is the cluster provider, wrapped to tell Start when
// Cluster.StartMember has reached it.
type startSignal struct {
	protocluster.ClusterProvider
	once    sync.Once
	started chan struct{}
}

// StartMember implements cluster.ClusterProvider.
func (s *startSignal) StartMember(c *protocluster.Cluster) error {
	syncPoint()
	s.once.Do(func() { close(s.started) })
	return s.ClusterProvider.StartMember(c)
}

// waitQuiet waits until no message has arrived for quietFor, at most
// quietMax.
func (m *Member) waitQuiet() {
	deadline := time.Now().Add(quietMax)
	for time.Now().Before(deadline) {
		time.Sleep(quietFor / 3)
		if time.Since(time.Unix(0, m.lastIn.Load())) >= quietFor {
			return
		}
	}
}

const (
	quietFor = 150 * time.Millisecond
	quietMax = 3 * time.Second
)

// replyLinger is how long Shutdown keeps remoting up after the last reply.
const replyLinger = 300 * time.Millisecond

func routerName(kind string) string { return "eventsourced-" + kind }

// Start joins the cluster: it starts remoting, serves the registered entity
// types and returns once this member sees itself in the member list. It polls
// the member list instead of waiting for protoactor-go's topology consensus,
// which never succeeds in the version this package is built on.
// protoactor-go's StartMember sleeps 1 s; start several members concurrently
// (see [StartAll]) to pay it once.
func (m *Member) Start(ctx context.Context) error {
	m.mu.Lock()
	switch {
	case m.closing:
		m.mu.Unlock()
		return ErrClosed
	case m.started:
		m.mu.Unlock()
		return fmt.Errorf("%w: Start called twice", ErrInvalid)
	}
	m.started = true
	m.served = make(map[string]kindHandle, len(m.kinds))
	for name, h := range m.kinds {
		m.served[name] = h
	}
	m.mu.Unlock()

	m.topoSub = m.actors.EventStream.Subscribe(func(ev any) {
		if t, ok := ev.(*protocluster.ClusterTopology); ok {
			m.view.Store(newView(t.Members))
			m.failLeft(t.Left)
			select {
			case m.changed <- struct{}{}:
			default:
			}
		}
	})
	for name := range m.served {
		props := actor.PropsFromProducer(func() actor.Actor { return &grain{m: m} })
		if _, err := m.actors.Root.SpawnNamed(props, routerName(name)); err != nil {
			return fmt.Errorf("cluster: spawn router for %q: %w", name, err)
		}
	}
	if _, err := m.actors.Root.SpawnNamed(m.probe.props(), probeName); err != nil {
		return fmt.Errorf("cluster: spawn probe: %w", err)
	}
	started := make(chan error, 1)
	remoteStartMu.Lock()
	go func() { // waited for below, whatever ctx does
		defer func() {
			if v := recover(); v != nil {
				m.signal.once.Do(func() { close(m.signal.started) })
				started <- fmt.Errorf("cluster: start member: %v", v)
			}
		}()
		m.pc.StartMember()
		started <- nil
	}()
	// Remoting is up once the cluster asks the provider to register us.
	<-m.signal.started
	probeErr := m.probe.run(ctx, m.actors.Address())
	remoteStartMu.Unlock()
	if err := <-started; err != nil {
		return err
	}
	if probeErr != nil {
		return probeErr
	}
	m.self = m.actors.Address()
	// Subscribed after remoting's endpoint manager, so this runs after it
	// has handled each event (see settleEndpoints).
	m.epSub = m.actors.EventStream.Subscribe(func(ev any) {
		switch e := ev.(type) {
		case *remote.EndpointConnectedEvent:
			m.epMu.Lock()
			m.endpoints[e.Address] = true
			m.epMu.Unlock()
		case *remote.EndpointTerminatedEvent:
			m.epMu.Lock()
			delete(m.endpoints, e.Address)
			m.epMu.Unlock()
			select {
			case m.epChanged <- struct{}{}:
			default:
			}
		}
	})
	// A reply that arrives after its request gave up is a dead letter; it
	// passes the handoff point too (see racesync.go).
	m.deadSub = m.actors.EventStream.Subscribe(func(ev any) {
		if _, ok := ev.(*actor.DeadLetterEvent); ok {
			syncPoint()
		}
	})
	m.bg.Add(1)
	go m.sweeper()
	for range workers {
		m.bg.Add(1)
		go m.worker()
	}
	return m.waitFor(ctx, func(v *view) bool {
		for _, addrs := range v.byKind {
			for _, a := range addrs {
				if a == m.self {
					return true
				}
			}
		}
		return len(m.served) == 0 && v.members > 0
	})
}

// StartAll starts members concurrently, paying protoactor-go's 1 s sleep in
// StartMember once instead of once per member, and waits until each sees all
// of them.
func StartAll(ctx context.Context, members ...*Member) error {
	errs := make([]error, len(members))
	var wg sync.WaitGroup
	for i, m := range members {
		wg.Go(func() { errs[i] = m.Start(ctx) })
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return err
	}
	for _, m := range members {
		if err := m.WaitForMembers(ctx, len(members)); err != nil {
			return err
		}
	}
	return nil
}

// WaitForMembers returns once this member's member list has at least n
// members, or ctx ends. Use it instead of protoactor-go's
// MemberList.TopologyConsensus, which never succeeds in the version this
// package is built on.
func (m *Member) WaitForMembers(ctx context.Context, n int) error {
	return m.waitFor(ctx, func(v *view) bool { return v.members >= n })
}

// Stats are counters of the commands asked through a [Member].
type Stats struct {
	// Retries counts attempts retried (see [WithRetry]).
	Retries int64
	// Messages and Remote count the messages sent to other members and the
	// commands they carried: Remote/Messages is the mean batch size.
	Messages, Remote int64
}

// Stats returns the member's counters since it was created.
func (m *Member) Stats() Stats {
	return Stats{Retries: m.retries.Load(), Messages: m.messages.Load(), Remote: m.remote.Load()}
}

// Members returns how many members this member currently sees.
func (m *Member) Members() int { return m.view.Load().members }

// Owner returns the address of the member that owns entity id of type kind in
// this member's current view, "" if no member serves the type.
func (m *Member) Owner(kind, id string) string { return m.view.Load().owner(kind, id) }

func (m *Member) waitFor(ctx context.Context, cond func(*view) bool) error {
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for !cond(m.view.Load()) {
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

// sweeper stops local entities this member no longer owns, after every
// topology change, and idle ones when passivation is on.
func (m *Member) sweeper() {
	defer m.bg.Done()
	period := time.Second
	if d := m.cfg.passivateAfter; d > 0 {
		period = min(period, d/2)
	}
	tick := time.NewTicker(period)
	defer tick.Stop()
	for {
		select {
		case <-m.done:
			return
		case <-m.changed:
		case <-tick.C:
		}
		idleBefore := int64(0)
		if d := m.cfg.passivateAfter; d > 0 {
			idleBefore = time.Now().Add(-d).UnixNano()
		}
		v := m.view.Load()
		for _, h := range m.served {
			h.sweep(v, m.self, idleBefore)
		}
	}
}

// grain receives the envelopes sent to this member: it is both the router
// actor per entity type and the props of the protoactor-go cluster kind, so
// cluster.Request(id, type, envelope) works too. It never blocks: each
// command runs on its own goroutine, owned by the Member, and the reply is
// sent to the requester from there.
type grain struct{ m *Member }

// Receive implements actor.Actor.
func (g *grain) Receive(c actor.Context) {
	switch msg := c.Message().(type) {
	case *clusterpb.CommandEnvelope:
		syncPoint()
		g.m.lastIn.Store(time.Now().UnixNano())
		g.m.serve(c.Sender(), msg)
	case *clusterpb.CommandBatch:
		syncPoint()
		g.m.lastIn.Store(time.Now().UnixNano())
		g.m.serveBatch(c.Sender(), msg)
	}
}

func (m *Member) serve(sender *actor.PID, env *clusterpb.CommandEnvelope) {
	h := m.served[env.GetEntityType()]
	if h == nil {
		m.reply(sender, failure(fmt.Errorf("%w: entity type %q is not served by %s", ErrUnknownCommand, env.GetEntityType(), m.self)))
		return
	}
	m.mu.RLock()
	if m.closing {
		m.mu.RUnlock()
		m.reply(sender, failure(fmt.Errorf("%w: %s is leaving", ErrUnavailable, m.self)))
		return
	}
	m.inflight.Add(1)
	m.mu.RUnlock()
	m.spawn(func() {
		defer m.inflight.Done()
		ctx, cancel := m.commandCtx(env)
		defer cancel()
		m.reply(sender, h.handle(ctx, env))
	})
}

// workers is how many goroutines wait to run commands for other members.
// Their stacks stay grown between commands, where a fresh goroutine per
// command would grow its stack through the codecs every time.
const workers = 64

// worker runs tasks until Shutdown closes m.tasks.
func (m *Member) worker() {
	defer m.bg.Done()
	for f := range m.tasks {
		f()
	}
}

// spawn runs f on an idle worker, or on a new goroutine if none is idle.
// The caller owns f's completion (a WaitGroup).
func (m *Member) spawn(f func()) {
	select {
	case m.tasks <- f:
	default:
		go f()
	}
}

// serveBatch runs the commands of a batch concurrently, each as serve would,
// and answers them together.
func (m *Member) serveBatch(sender *actor.PID, b *clusterpb.CommandBatch) {
	m.mu.RLock()
	if m.closing {
		m.mu.RUnlock()
		m.reply(sender, failure(fmt.Errorf("%w: %s is leaving", ErrUnavailable, m.self)))
		return
	}
	m.inflight.Add(1)
	m.mu.RUnlock()
	m.spawn(func() {
		defer m.inflight.Done()
		envs := b.GetCommands()
		reps := make([]*clusterpb.ReplyEnvelope, len(envs))
		var wg sync.WaitGroup
		for i, env := range envs {
			run := func() {
				if h := m.served[env.GetEntityType()]; h != nil {
					ctx, cancel := m.commandCtx(env)
					defer cancel()
					reps[i] = h.handle(ctx, env)
				} else {
					reps[i] = failure(fmt.Errorf("%w: entity type %q is not served by %s", ErrUnknownCommand, env.GetEntityType(), m.self))
				}
			}
			if i == len(envs)-1 {
				run()
			} else {
				wg.Add(1)
				m.spawn(func() {
					defer wg.Done()
					run()
				})
			}
		}
		wg.Wait()
		if sender != nil {
			m.actors.Root.Send(sender, &clusterpb.ReplyBatch{Replies: reps})
		}
	})
}

// commandCtx returns the context a command from another member runs
// under: its caller's deadline as the envelope carries it, at most the
// request timeout. A command still waiting for its entity when the deadline
// passes never runs (see entity.Ask).
func (m *Member) commandCtx(env *clusterpb.CommandEnvelope) (context.Context, context.CancelFunc) {
	timeout := m.cfg.requestTimeout
	if us := env.GetTimeoutMicros(); us > 0 {
		timeout = min(timeout, time.Duration(us)*time.Microsecond)
	}
	return context.WithTimeout(context.Background(), timeout)
}

func (m *Member) reply(to *actor.PID, r *clusterpb.ReplyEnvelope) {
	if to != nil {
		m.actors.Root.Send(to, r)
	}
}

// failure is the reply envelope of err.
func failure(err error) *clusterpb.ReplyEnvelope {
	return &clusterpb.ReplyEnvelope{Failed: true, ErrorCodes: codesOf(err), ErrorText: err.Error()}
}

// retryable reports whether err says the command surely did not run, so it
// may be sent again to the (maybe new) owner.
func retryable(err error) bool {
	return errors.Is(err, ErrUnavailable) || errors.Is(err, eventlog.ErrConflict) || errors.Is(err, entity.ErrClosed)
}

// request sends env to the owner of its entity and returns the reply,
// retrying with backoff while the command surely did not run. local runs the
// command in this member when it is the owner.
func (m *Member) request(ctx context.Context, env *clusterpb.CommandEnvelope, local func(context.Context) error) (*clusterpb.ReplyEnvelope, error) {
	var lastErr error
	for attempt := 0; ; attempt++ {
		if m.closed.Load() {
			return nil, ErrClosed
		}
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		rep, err := m.attempt(ctx, env, local)
		if err == nil {
			return rep, nil
		}
		if !retryable(err) || errors.Is(err, ErrClosed) {
			return nil, err
		}
		var re *RemoteError
		if errors.As(err, &re) && re.has(codeUnavailable) {
			m.markDraining(re.Member)
		}
		lastErr = err
		if attempt >= m.cfg.retries {
			return nil, fmt.Errorf("cluster: %s/%s: gave up after %d attempts: %w", eventlog.FormatID(env.GetEntityType()), eventlog.FormatID(env.GetEntityId()), attempt+1, lastErr)
		}
		m.retries.Add(1)
		d := min(m.cfg.backoff<<attempt, m.cfg.maxBackoff)
		d = d/2 + rand.N(d/2+1)
		t := time.NewTimer(d)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil, ctx.Err()
		case <-t.C:
		}
	}
}

// attempt sends env once.
func (m *Member) attempt(ctx context.Context, env *clusterpb.CommandEnvelope, local func(context.Context) error) (*clusterpb.ReplyEnvelope, error) {
	var skip func(string) bool
	if m.nDraining.Load() > 0 {
		skip = m.isDraining
	}
	owner := m.view.Load().ownerSkipping(env.GetEntityType(), env.GetEntityId(), skip)
	switch owner {
	case "":
		return nil, fmt.Errorf("%w: no member serves entity type %q", ErrUnavailable, env.GetEntityType())
	case m.self:
		m.mu.RLock()
		closing := m.closing
		m.mu.RUnlock()
		if !closing {
			return nil, local(ctx)
		}
	}
	timeout := m.cfg.requestTimeout
	if dl, ok := ctx.Deadline(); ok {
		timeout = min(timeout, time.Until(dl))
	}
	if timeout <= 0 {
		return nil, context.DeadlineExceeded
	}
	rep, err := m.pipe(owner, env.GetEntityType()).do(ctx, env, timeout)
	if err != nil {
		if errors.Is(err, ErrTimeout) && ctx.Err() != nil {
			// The answer did not come before the caller's deadline.
			return nil, &sentError{env: env, err: ctx.Err()}
		}
		return nil, err
	}
	if rep.GetFailed() {
		return nil, &RemoteError{Codes: rep.GetErrorCodes(), Text: rep.GetErrorText(), Member: owner}
	}
	return rep, nil
}

// markDraining routes commands away from addr, which answered that it is
// leaving, to the member that will own them once it has left: so few
// commands are on their way to it when it deregisters, and their answers
// lost (see Shutdown).
func (m *Member) markDraining(addr string) {
	if _, loaded := m.draining.LoadOrStore(addr, time.Now()); !loaded {
		m.nDraining.Add(1)
	}
}

// isDraining reports whether addr answered recently that it is leaving.
func (m *Member) isDraining(addr string) bool {
	v, ok := m.draining.Load(addr)
	if !ok {
		return false
	}
	if time.Since(v.(time.Time)) > drainingFor {
		if m.draining.CompareAndDelete(addr, v) {
			m.nDraining.Add(-1)
		}
		return false
	}
	return true
}

// drainingFor is how long a member that answered "leaving" is avoided.
const drainingFor = 10 * time.Second

// ownerLeft completes a request whose owner left the cluster: protoactor-go
// blocks members that left, so their answer would never arrive.
type ownerLeft struct{ addr string }

// memberClosed completes a request this member sent when it shuts down.
type memberClosed struct{}

// startFlush counts a goroutine about to send a batch, unless Shutdown has
// begun waiting for them (then the caller sends it itself).
func (m *Member) startFlush() bool {
	m.flushMu.RLock()
	defer m.flushMu.RUnlock()
	if m.noFlush {
		return false
	}
	m.flushes.Add(1)
	return true
}

// failLeft completes the requests waiting for members that left.
func (m *Member) failLeft(left []*protocluster.Member) {
	if len(left) == 0 {
		return
	}
	gone := make(map[string]bool, len(left))
	for _, l := range left {
		gone[l.Address()] = true
	}
	m.waiting.Range(func(k, v any) bool {
		if addr := v.(string); gone[addr] {
			m.failFuture(k.(*actor.Future), addr)
		}
		return true
	})
}

func (m *Member) failFuture(f *actor.Future, addr string) {
	m.actors.Root.Send(f.PID(), ownerLeft{addr: addr})
}

// Shutdown leaves the cluster: it deregisters from the provider so the other
// members take over this member's entities, answers new commands with a
// retryable [ErrUnavailable], waits for the commands it is running, shuts the
// entity system down and stops protoactor-go's cluster, remoting and actor
// system, leaving no goroutine of its own behind. If ctx ends first the
// entity system is closed at once and ctx.Err() returned. Later calls return
// [ErrClosed].
func (m *Member) Shutdown(ctx context.Context) error {
	err := ErrClosed
	m.stopOnce.Do(func() { err = m.shutdown(ctx) })
	return err
}

func (m *Member) shutdown(ctx context.Context) error {
	m.mu.Lock()
	m.closing = true // from now on commands are answered ErrUnavailable
	started := m.started
	m.mu.Unlock()
	drained := make(chan struct{})
	go func() { // owned: waited for below, or bounded by the entity Close
		m.inflight.Wait()
		close(drained)
	}()
	var err error
	select {
	case <-drained:
		err = m.sys.Shutdown(ctx)
	case <-ctx.Done():
		err = ctx.Err()
		_ = m.sys.Close()
		<-drained
	}
	if started {
		// Replies handed to remoting wait in its endpoint writers, which
		// Remote.Shutdown drops without a flush, and once we deregister the
		// other members block us and drop what we send. So stay a member
		// until the replies have left; only then deregister. Meanwhile new
		// commands get ErrUnavailable and are retried.
		time.Sleep(replyLinger)
		// protoactor-go's Cluster.Shutdown deregisters only when graceful
		// (and then sleeps 2 s); without it the member lingers in the
		// test provider's list.
		syncPoint()
		_ = m.pc.Config.ClusterProvider.Shutdown(true)
		// The others now drop their connections to us. Remote.Shutdown
		// signals each connection still open on a channel that the
		// connection's own goroutine closes when it ends (a data race, and a
		// panic if the close comes first), and flags the connections'
		// readers as suspended without synchronization: so wait until
		// nothing has arrived for a while, then pass the handoff point every
		// arrival passed (see racesync.go).
		m.waitQuiet()
		syncPoint()
	}
	m.closed.Store(true)
	close(m.done)
	// Replies to requests still waiting no longer matter: end them, and with
	// them the goroutines sending them (a send after closed ends itself).
	m.flushMu.Lock()
	m.noFlush = true
	m.flushMu.Unlock()
	m.waiting.Range(func(k, _ any) bool {
		m.actors.Root.Send(k.(*actor.Future).PID(), memberClosed{})
		return true
	})
	m.flushes.Wait()
	if started {
		close(m.tasks) // nothing is spawned any more: inflight is drained
	}
	m.bg.Wait()
	if started {
		m.probe.close()
		m.settleEndpoints()
		m.actors.EventStream.Unsubscribe(m.topoSub)
		m.actors.EventStream.Unsubscribe(m.epSub)
		m.actors.EventStream.Unsubscribe(m.deadSub)
		m.stopCluster()
	} else {
		m.actors.Shutdown()
	}
	return err
}

// settleEndpoints waits (at most endpointSettle) until remoting has handled
// the loss of its connections to members that left. protoactor-go's
// endpoint manager handles that on the connection's goroutine and reads its
// stopped flag unsynchronized, so stopping remoting meanwhile is a data race.
func (m *Member) settleEndpoints() {
	deadline := time.NewTimer(endpointSettle)
	defer deadline.Stop()
	for {
		v := m.view.Load()
		m.epMu.Lock()
		pending := 0
		for addr := range m.endpoints {
			if !v.has(addr) {
				pending++
			}
		}
		m.epMu.Unlock()
		if pending == 0 {
			return
		}
		select {
		case <-m.epChanged:
		case <-deadline.C:
			return
		}
	}
}

// endpointSettle bounds settleEndpoints.
const endpointSettle = 3 * time.Second
