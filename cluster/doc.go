// Package cluster runs entity types over a protoactor-go cluster: several
// processes serve the same types, each entity is owned by one member at a
// time, and a [Ref] reaches it from any member with [Ask], which works like
// [entity.Ask] on a local ref. The event log (Postgres, NATS) is shared by
// all members and is what enforces one writer per entity.
//
//	m, _ := cluster.NewMember("shop", log, provider)
//	carts, _ := cluster.Register(m, cartType)
//	_ = cluster.RegisterCommand(carts, "add-item",
//		binarize.Value[AddItem](binarize.Msgpack), binarize.Value[int](binarize.Msgpack))
//	_ = m.Start(ctx)
//	n, err := cluster.Ask(ctx, carts.Ref("cart-42"), AddItem{SKU: "tea"}) // n is an int
//	...
//	_ = m.Shutdown(ctx)
//
// # Types, commands and the wire
//
// [Register] adds an entity type to the member's [entity.System] and
// registers it as a protoactor-go cluster kind of the same name, so members
// advertise the types they serve. The owner of an entity is the member that
// protoactor-go's disthash identity lookup would pick for the cluster
// identity (type, id): rendezvous hashing over the members serving the type.
// Commands are registered by name with [RegisterCommand], with a codec for
// the command and one for its reply. Every member must register the same
// types and commands (under the same names) before [Member.Start], and the
// same error codes ([RegisterError]).
//
// [Ask] encodes the command into a [clusterpb.CommandEnvelope] (type, id,
// command name, payload, metadata, the caller's remaining time) and sends it
// to the owner, which decodes it, runs it with [entity.Ask] on its own
// entity and answers a [clusterpb.ReplyEnvelope]. Only these protobuf
// messages, owned by this package, cross the wire: members never need the
// user's Go types, and protoactor-go (which crashes on a message type it
// does not know) never sees one. An unknown type or command name, or a
// payload that does not decode, is answered with [ErrUnknownCommand] or
// [ErrDecode]; the error names the command, the type and the member, and an
// unknown command's lists what that member registers, so members of two
// releases that disagree on their commands (during a rolling deploy, or a
// forgotten RegisterCommand) fail those commands clearly and go on serving
// the rest. A member that does not register a type is never sent its
// entities. When the caller's own member owns the entity, Ask runs the
// command in process with no encoding. protoactor-go's own
// Cluster.Request(id, type, envelope) reaches the same entities.
//
// Commands asked concurrently for entities of one type that one member owns
// travel together: in one [clusterpb.CommandBatch], answered by one
// [clusterpb.ReplyBatch]. Under no load a message carries a single command;
// [Member.Stats] shows the mean batch size. The owner runs a batch's
// commands concurrently, so the entity runtime's own batching applies per
// entity, to remote commands as to local ones.
//
// # One writer per entity, retries and deadlines
//
// During a membership change two members may briefly both think they own an
// entity. The log decides: appends are conditional on the entity's last
// Seq, so a stale activation's append conflicts and writes nothing. Its
// activation is then stopped ([entity.Kind.Passivate]) and [Ask] retries
// against the current owner, which recovers the entity from the log.
// Besides conflicts, Ask retries what surely did not run: the owner was
// leaving ([ErrUnavailable]), the message was a dead letter, or the owner's
// entity system was closed. Retries are bounded, with exponential backoff
// and jitter ([WithRetry]). A command that may have run is never sent
// twice: a timeout or an owner that left before answering is [ErrTimeout]
// (matching [entity.ErrOutcomeUnknown]), for the caller to resolve, like an
// [entity.PersistError]. So no command is applied twice and no acknowledged
// event is lost.
//
// A caller whose ctx ends stops waiting at once. If its command was still
// waiting to be sent it never is, and the caller gets ctx's error itself; if
// it was sent, whether it ran is unknown, and the error matches
// [entity.ErrOutcomeUnknown] and ctx's error, as a timeout does. The
// envelope carries how long the caller waits, and the owner runs the
// command under that deadline (at most [WithRequestTimeout]): a command
// that waits on the owner for its entity past it never runs, as with
// [entity.Ask] in one process. So the rule of entity.Ask holds across
// members: an error that does not match entity.ErrOutcomeUnknown means the
// command did not run and will not.
//
// [Member.Shutdown] answers new commands with [ErrUnavailable] while it
// finishes those it runs, so callers retry them on the member that takes
// over; it stays in the member list a moment longer (about 0.3 s) for its
// replies to leave, then deregisters. A caller whose owner leaves before
// answering gets [ErrTimeout] as soon as its member sees the owner gone, not
// at the request timeout.
//
// # A member that stops running
//
// A member whose process stops for a while (SIGSTOP, a frozen VM or
// container, heavy swapping) may be dropped by the others, which then take
// over its entities. When it runs again nothing in the membership tells it:
// its member list did not change while it was stopped, and protoactor-go
// never admits a dropped member again. Its writes would be safe (they
// conflict in the log), but its activations would answer read-only
// commands from memory the others have made stale, and its writes between
// theirs would make their activations stale in turn. So a member watches
// for its own pauses ([WithPauseFence], 1 s by default): a goroutine ticks
// every 50 ms, and before a command runs on the member (its own caller's
// or another member's) one atomic load and a clock read check that the
// last tick is recent. After a longer gap the member is fenced: the
// commands it would run wait, it stops every local activation (the next
// command recovers from the log), waits the fence duration again, and asks
// every member in its list whether it still lists it. If all do, the
// commands go on, about twice the fence duration late. If one does not,
// the member was dropped: from then on it answers every command it would
// run with [ErrFenced] (which matches ErrUnavailable: the command did not
// run), still forwards commands for entities it does not own, logs an
// error, and must be restarted. [Member.Stats] counts the fences. The
// fence duration must be shorter than the time the provider takes to drop
// a member that does not answer (automanaged: the 2 s timeout of its
// health check), so that no pause the member could be dropped for goes
// unseen.
//
// # Passivation and moves
//
// [WithPassivateAfter] is the entity runtime's passivation
// (entity.WithPassivateAfter) for every type the member registers, unless
// [Register]'s options set another: an entity idle that long stops, and the
// next command activates it again. After a topology change, and every
// second, each member stops its live entities that it no longer owns
// (entity.Kind.LiveIDs); the next command activates them on their owner.
//
// # One call surface
//
// [Ref] implements entity.Target: entity.AskTarget sends commands to a
// cluster's entities as to local ones, so calling code written against
// entity.Target does not change when an entity type moves to a cluster.
// [RegisterCommand] with an empty name registers the command under its
// type's name.
//
// # Projections
//
// [RegisterSlices] serves a projection split into slices
// (projection.WithSlice) over the members: each slice runs on the one
// member that rendezvous hashing of its name picks among the members that
// registered it, and moves when members join or leave. The old owner stops
// a slice it lost within a second; for that moment two members may run
// it, and the offset store's compare-and-set lets only one commit, so a
// pgprojection store still handles every event exactly once.
//
// # Providers
//
// Any protoactor-go cluster provider works; the member address is
// [WithAddress] (default 127.0.0.1 and a free port):
//
//   - In one process (tests): clusterproviders/test with one InMemAgent
//     shared by the members. Shut its members down one at a time: it calls
//     every member's member list, those that left included, from the
//     goroutine of whoever joins or leaves.
//   - Several processes on one host or a LAN, no server:
//     [NewAutomanagedProvider](host, ownPort, refresh, "host:port", ...)
//     listing every member's automanaged port. It is protoactor-go's
//     automanaged provider with its HTTP health endpoint on host:ownPort;
//     protoactor-go's own automanaged.NewWithConfig serves it on every
//     interface (0.0.0.0), whatever WithAddress says.
//   - etcd: clusterproviders/etcd.NewWithConfig(keyPrefix, clientv3.Config)
//     inside [LazyProvider], so that its gRPC client starts after
//     protoactor-go's remoting. With an unreachable etcd its start never
//     returns; [Member.Start] returns ctx's error by its deadline instead.
//     Start each member once the previous one has started: the provider
//     misses a member that registers while another reads the member list.
//   - Consul: clusterproviders/consul.New() (a consul agent on localhost, or
//     consul.NewWithConfig with an api.Config); Kubernetes:
//     clusterproviders/k8s.New() with the pod allowed to list and patch
//     pods, and [WithAdvertisedHost] set to the pod IP. These are used
//     exactly as protoactor-go documents; this package only needs the
//     provider value.
//
// # Network
//
// A member listens on two ports at most, each on the host it is given:
// remoting (gRPC; [WithAddress], default 127.0.0.1 and a free port) and,
// with [NewAutomanagedProvider], the automanaged health endpoint (HTTP).
// Other providers open no port; they connect to their servers. Remoting is
// plaintext unless [WithTLS] is set, and the health endpoint is plaintext
// HTTP without authentication: on anything but loopback, use WithTLS and
// keep the health port on a private network. Members reach each other at
// the advertised host ([WithAdvertisedHost]), else the listen address, so
// a member listening on "0.0.0.0" must advertise a reachable address.
//
// # protoactor-go
//
// This package is built on an untagged protoactor-go snapshot (2024-08)
// and works around its defects, each with a test. What shows of them:
// MemberList.TopologyConsensus never succeeds, so use [Member.Start],
// [StartAll] and [Member.WaitForMembers], which poll the member list.
// Cluster.StartMember sleeps 1 s; [StartAll] starts members concurrently,
// paying it once. Gossip is off unless [WithGossipInterval] turns it on.
// [Member.Shutdown] deregisters from the provider itself (a member would
// otherwise linger in the test provider's list) and stops protoactor-go's
// goroutines, which its Cluster.Shutdown leaves running; what remains
// cannot be stopped from outside: throttle timers that end within 60 s, and
// the test provider's TTL loop, which blocks forever on a stopped ticker.
// Several members can share one process (tests, the in-process examples)
// under the race detector, provided no member sends commands to another
// while one starts: Remote.Start writes grpc's global logger, which their
// gRPC clients read.
//
// # Telemetry
//
// A member reports through OpenTelemetry ([WithTracerProvider],
// [WithMeterProvider], [WithPropagator]; the global providers and W3C trace
// context by default), and passes the same options to its entity system
// unless [WithEntityOptions] sets others. Without an SDK installed, they
// cost no span, no clock read and no allocation per command.
//
// [Ask] is a span "<type> <command>" of kind client (the registered command
// name), a child of ctx's span, with the entity type, id and command and
// the member that ran the command; retries and remote attempts are events
// on it. Its trace context travels in the envelope's metadata, and the
// owner runs the command under it as a remote parent: the owner's command
// span (package entity's) is the client span's child, in the caller's trace,
// and so are the events it writes and whatever reads them. A command the
// caller's own member owns runs in process under the client span. Members
// extract the trace context only while their own tracing is on.
//
// Metrics, by entity type: eventsourced.cluster.requests (commands sent to
// another member, each attempt once, by outcome: ok, failed, timeout,
// unavailable), eventsourced.cluster.request.duration (by outcome),
// eventsourced.cluster.retries and eventsourced.cluster.message.commands
// (commands per message). [Member.Stats] keeps its counters.
//
// The logger ([WithLogger], slog.Default() by default) gets nothing from a
// healthy cluster, per command or when a member leaves gracefully: of
// protoactor-go's records it gets those from Warn up, except the Error it
// logs for the connection it closes itself to a member that left, and none
// once the member shuts down.
//
// # Concurrency
//
// [Member], [Kind] and [Ref] are safe for concurrent use; [Ask] may be called
// from any goroutine. Registration ([Register], [RegisterCommand]) must
// happen before [Member.Start]; [RegisterError] is process-wide and safe at
// any time, but codes should be registered before commands fail with them.
// Every goroutine the Member starts is stopped and waited for by
// [Member.Shutdown].
//
// # Errors
//
// Sentinels: [ErrClosed], [ErrInvalid], [ErrUnavailable],
// [ErrUnknownCommand], [ErrDecode], [ErrTimeout], [ErrFenced]. [Ask] checks the entity id
// with the log's rule ([eventlog.ValidateStream]: 1 to 255 bytes of UTF-8
// without NUL) before it sends anything; an id that breaks it is an error
// matching both ErrInvalid and [eventlog.ErrInvalid]. An error from another
// member is a [*RemoteError] that matches (errors.Is) every registered error
// the original matched: the sentinels of entity (ErrPersist, ErrPanic ...),
// eventlog (ErrConflict ...), this package, and what the application
// registers with [RegisterError]. An unregistered error keeps its text.
// Errors of commands run in the caller's own member are returned as they
// are.
package cluster
