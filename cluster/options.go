package cluster

import (
	"crypto/tls"
	"fmt"
	"log/slog"
	"time"

	protocluster "github.com/asynkron/protoactor-go/cluster"
	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"

	"github.com/eventsourced-go/eventsourced/entity"
)

// config is a Member's configuration, set by [NewMember] from its defaults
// and the options.
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
	passivateAfter time.Duration // passed to every Kind as entity.WithPassivateAfter
	clusterOpts    []protocluster.ConfigOption
	tlsServer      *tls.Config // nil: plaintext remoting
	tlsClient      *tls.Config
	gossip         time.Duration // 0: off (see gossipInterval)
	pauseFence     time.Duration // 0: off (see fence.go)
	tel            telemetryConfig
}

// defaultConfig is the configuration with no options.
func defaultConfig() config {
	return config{
		host:           "127.0.0.1",
		logger:         slog.Default(),
		requestTimeout: 10 * time.Second,
		retries:        10,
		backoff:        20 * time.Millisecond,
		maxBackoff:     time.Second,
		pauseFence:     time.Second,
	}
}

// Option configures a [Member].
type Option func(*config) error

// WithAddress sets the host and port remoting listens on (default
// 127.0.0.1 and a free port). Port 0 picks a free port. Remoting listens on
// host only: an IP address or a name of this host, or "0.0.0.0" (every
// interface), which must be asked for. Remoting is gRPC without TLS unless
// [WithTLS] is set.
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

// WithLogger sets the logger of the member, of its entity system (unless
// [WithEntityOptions] sets another) and of protoactor-go (default
// slog.Default()). A healthy member logs nothing per command. protoactor-go's
// records reach it from Warn up: at Info it reports every endpoint, topology
// change and dead letter.
func WithLogger(l *slog.Logger) Option {
	return func(c *config) error {
		if l == nil {
			return fmt.Errorf("%w: WithLogger(nil)", ErrInvalid)
		}
		c.logger = l
		return nil
	}
}

// WithTracerProvider sets the tracer provider of the member's spans (a
// client span per [Ask]) and of its entity system's, unless
// [WithEntityOptions] sets another. The default is the global provider
// (otel.GetTracerProvider), which records nothing until the program
// installs an SDK.
func WithTracerProvider(tp trace.TracerProvider) Option {
	return func(c *config) error {
		if tp == nil {
			return fmt.Errorf("%w: WithTracerProvider(nil)", ErrInvalid)
		}
		c.tel.tp = tp
		return nil
	}
}

// WithMeterProvider sets the meter provider of the member's metrics and of
// its entity system's, unless [WithEntityOptions] sets another (default the
// global provider, otel.GetMeterProvider).
func WithMeterProvider(mp metric.MeterProvider) Option {
	return func(c *config) error {
		if mp == nil {
			return fmt.Errorf("%w: WithMeterProvider(nil)", ErrInvalid)
		}
		c.tel.mp = mp
		return nil
	}
}

// WithPropagator sets how a command's trace context travels in its
// envelope's metadata to the owner, and the entity system's propagator
// unless [WithEntityOptions] sets another (default W3C trace context).
// Every member must use the same.
func WithPropagator(p propagation.TextMapPropagator) Option {
	return func(c *config) error {
		if p == nil {
			return fmt.Errorf("%w: WithPropagator(nil)", ErrInvalid)
		}
		c.tel.prop = p
		return nil
	}
}

// WithEntityOptions passes options to the member's [entity.System], such as
// entity.WithSnapshotStore. entity.WithActorSystem is set by the Member.
// The member's logger, tracer provider, meter provider and propagator
// (if set) come first, so that entity options for them override them.
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

// WithPassivateAfter stops entities idle for d (0, the default, never); the
// next command activates them again. It is the entity runtime's own
// passivation: every type [Register] adds gets entity.WithPassivateAfter(d),
// which an entity.WithPassivateAfter among Register's options overrides.
// Entities whose ownership moved to another member are stopped after a
// topology change whatever d is (see the package documentation).
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

// WithTLS makes remoting gRPC over TLS: the member serves with server and
// dials other members with client (both required; clone them if they are
// shared). Every member must use TLS, with certificates valid for the
// addresses members dial: the advertised host ([WithAdvertisedHost]), else
// the listen address ([WithAddress]). For mutual TLS, set
// server.ClientAuth to tls.RequireAndVerifyClientCert with server.ClientCAs,
// and client.Certificates. Without it, remoting is plaintext gRPC
// (protoactor-go's default, grpc.WithInsecure), for loopback or a network
// of its own. The cluster provider's traffic (automanaged's HTTP endpoint,
// consul, etcd) is configured with the provider, not here.
func WithTLS(server, client *tls.Config) Option {
	return func(c *config) error {
		if server == nil || client == nil {
			return fmt.Errorf("%w: WithTLS with a nil configuration", ErrInvalid)
		}
		c.tlsServer, c.tlsClient = server, client
		return nil
	}
}

// WithPauseFence sets how long this member's process may stop running (a
// SIGSTOP, a frozen VM or container, swapping) before it fences itself
// (default 1 s; 0 turns the fence off). A fenced member runs no command:
// those it would run wait while it stops its entities (the next command
// recovers each from the log), waits d more, and asks the other members
// whether they still list it. If they all do, the commands go on; if one
// does not, it was dropped while stopped, it answers them [ErrFenced] from
// then on, and must be restarted. d must be shorter than the time the
// provider takes to drop a member that does not answer (automanaged: its
// health check's 2 s timeout; etcd, consul: the TTL), so that no pause the
// others could drop it for goes unseen; a shorter d fences more often under
// CPU starvation, which costs the fenced commands about 2d of latency.
func WithPauseFence(d time.Duration) Option {
	return func(c *config) error {
		if d < 0 {
			return fmt.Errorf("%w: WithPauseFence(%v): negative", ErrInvalid, d)
		}
		if d > 0 && d < 2*pauseTick {
			return fmt.Errorf("%w: WithPauseFence(%v): below %v, twice the pause watcher's tick", ErrInvalid, d, 2*pauseTick)
		}
		c.pauseFence = d
		return nil
	}
}
