package cluster

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"

	"github.com/asynkron/protoactor-go/actor"
	protocluster "github.com/asynkron/protoactor-go/cluster"
	"github.com/asynkron/protoactor-go/cluster/identitylookup/disthash"
	"github.com/asynkron/protoactor-go/remote"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"

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
	actors *actor.ActorSystem
	pc     *protocluster.Cluster
	sys    *entity.System

	// mu guards kinds, started and closing. admit holds it (read) around
	// srv.inflight.Add while closing is false, so that once Shutdown has set
	// closing (write) every command let in is counted before it Waits.
	mu      sync.RWMutex
	kinds   map[string]kindHandle // registered types; written only before Start
	started bool
	closing bool // set by Shutdown: new commands are answered ErrUnavailable

	// Set by Start before it serves anything, read-only afterwards.
	served map[string]kindHandle // frozen copy of kinds
	self   string                // this member's address

	closed   atomic.Bool   // set by Shutdown once it has drained: requests end with ErrClosed
	quiet    *atomic.Bool  // set by Shutdown: protoactor-go's records are dropped
	done     chan struct{} // closed by Shutdown: stops the sweeper and pollMemberList
	stopOnce sync.Once     // runs shutdown once

	tel   memberTelemetry // spans and metrics (telemetry.go)
	topo  topology        // the member list and who owns what (topology.go, ownership.go)
	route router          // sending this member's commands (route.go, pipe.go)
	srv   server          // running other members' commands (serve.go)
	up    upstream        // state of the protoactor-go workarounds (workarounds.go)
	fence pauseFence      // stops serving after a pause (fence.go)
}

// kindHandle is what the Member needs of a Kind, whatever its type parameters.
type kindHandle interface {
	// handle runs env on the local entity; ctx bounds it.
	handle(ctx context.Context, env *clusterpb.CommandEnvelope) *clusterpb.ReplyEnvelope
	// sweep stops the local activations of entities that self does not own
	// in v (see ownership.go).
	sweep(v *view, self string)
	// stopAll stops every local activation that is idle and returns how
	// many are still live (see fence.go).
	stopAll() int
	// telemetry returns the kind's attributes for measurements.
	telemetry() *kindTelemetry
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
	cfg := defaultConfig()
	for _, opt := range opts {
		if err := opt(&cfg); err != nil {
			return nil, err
		}
	}
	quiet := new(atomic.Bool)
	paLogger := slog.New(protoactorLog{cfg.logger.Handler(), quiet})
	as := actor.NewActorSystem(actor.WithLoggerFactory(func(*actor.ActorSystem) *slog.Logger { return paLogger }))
	var ropts []remote.ConfigOption
	if cfg.advertisedHost != "" {
		ropts = append(ropts, remote.WithAdvertisedHost(cfg.advertisedHost))
	}
	if cfg.tlsServer != nil {
		ropts = append(ropts,
			remote.WithServerOptions(grpc.Creds(credentials.NewTLS(cfg.tlsServer))),
			remote.WithDialOptions(grpc.WithTransportCredentials(credentials.NewTLS(cfg.tlsClient))))
	}
	signal := newStartSignal(provider)
	copts := append([]protocluster.ConfigOption{gossipInterval(cfg.gossip)}, cfg.clusterOpts...)
	// The identity lookup must be disthash: view.owner computes the same
	// owners without asking it.
	pcfg := protocluster.Configure(clusterName, signal, disthash.New(), remote.Configure(cfg.host, cfg.port, ropts...), copts...)
	sys, err := entity.NewSystem(log, entityOptions(cfg, as)...)
	if err != nil {
		as.Shutdown()
		return nil, fmt.Errorf("cluster: %w", err)
	}
	m := &Member{
		cfg:    cfg,
		actors: as,
		pc:     protocluster.New(as, pcfg),
		sys:    sys,
		kinds:  make(map[string]kindHandle),
		done:   make(chan struct{}),
		topo:   topology{changed: make(chan struct{}, 1)},
		srv:    server{tasks: make(chan func())},
		up:     newUpstream(signal),
		quiet:  quiet,
		fence:  newPauseFence(cfg.pauseFence),
	}
	m.up.probe.tls = cfg.tlsClient
	m.tel.init(cfg.tel)
	if err := m.tel.inst.Err; err != nil {
		cfg.logger.Warn("cluster metrics unavailable", "err", err)
	}
	m.topo.view.Store(newView(nil))
	return m, nil
}

// entityOptions returns the options of the member's entity system: the
// member's logger and telemetry options first, so that the user's entity
// options for them win, and the actor system last.
func entityOptions(cfg config, as *actor.ActorSystem) []entity.Option {
	opts := []entity.Option{entity.WithLogger(cfg.logger)}
	if cfg.tel.tp != nil {
		opts = append(opts, entity.WithTracerProvider(cfg.tel.tp))
	}
	if cfg.tel.mp != nil {
		opts = append(opts, entity.WithMeterProvider(cfg.tel.mp))
	}
	if cfg.tel.prop != nil {
		opts = append(opts, entity.WithPropagator(cfg.tel.prop))
	}
	opts = append(opts, cfg.entityOpts...)
	return append(opts, entity.WithActorSystem(as))
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

// Members returns how many members this member currently sees.
func (m *Member) Members() int { return m.topo.view.Load().members }

// Owner returns the address of the member that owns entity id of type kind in
// this member's current view, "" if no member serves the type.
func (m *Member) Owner(kind, id string) string { return m.topo.view.Load().owner(kind, id) }

// Stats are counters of the commands asked through a [Member].
type Stats struct {
	// Retries counts attempts retried (see [WithRetry]).
	Retries int64
	// Messages and Remote count the messages sent to other members and the
	// commands they carried: Remote/Messages is the mean batch size.
	Messages, Remote int64
	// Fences counts the pauses that fenced the member (see [WithPauseFence]).
	Fences int64
}

// Stats returns the member's counters since it was created.
func (m *Member) Stats() Stats {
	r := &m.route
	return Stats{Retries: r.retries.Load(), Messages: r.messages.Load(), Remote: r.remote.Load(), Fences: m.fence.fenced.Load()}
}

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
	m.pc.Config.Kinds[name] = protocluster.NewKind(name, m.grainProps())
	return nil
}
