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
// the command and one for its reply. [Ask] encodes the command into a
// [clusterpb.CommandEnvelope] (type, id, command name, payload, metadata)
// and sends it to the owner's router actor for the type; the owner decodes
// it, runs it with [entity.Ask] on its own entity and answers a
// [clusterpb.ReplyEnvelope]. Only these two protobuf messages, owned by this
// package, cross the wire: members never need the user's Go types, and
// protoactor-go (which crashes on a message type it does not know) never
// sees one. An unknown type or command name, or a payload that does not
// decode, is answered with [ErrUnknownCommand] or [ErrDecode]. When the
// caller's own member owns the entity, Ask runs the command in process with
// no encoding.
//
// Commands asked concurrently for entities that one member owns are batched:
// per (owner, type) one message is in flight at a time, and the commands
// that arrive meanwhile leave together in the next [clusterpb.CommandBatch],
// answered by one [clusterpb.ReplyBatch]. No goroutine is added for it (the
// caller whose command starts a batch sends it); under no load a batch is a
// single envelope. The owner runs a batch's commands concurrently, so the
// entity runtime's own batching applies per entity. [Member.Stats] shows the
// mean batch size.
//
// Every member must register the same types and commands (under the same
// names) before [Member.Start], and the same error codes ([RegisterError]).
//
// The router actor per type never blocks: each command runs on its own
// goroutine (owned by the Member and waited for by Shutdown), so the
// entity runtime's command batching applies to remote commands too. The
// router is also the props of the cluster kind, so protoactor-go's
// cluster.Request(id, type, envelope) reaches the same code.
//
// # One writer per entity
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
// [entity.PersistError]. So no command is
// applied twice and no acknowledged event is lost.
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
// After a topology change each member stops the activations of the
// entities it no longer owns; with [WithPassivateAfter] it also stops the
// idle ones. The next command activates them again.
//
// # Providers
//
// Any protoactor-go cluster provider works; the member address is
// [WithAddress] (default 127.0.0.1 and a free port):
//
//   - In one process (tests): clusterproviders/test with one InMemAgent
//     shared by the members.
//   - Several processes on one host or a LAN, no server:
//     clusterproviders/automanaged.NewWithConfig(refresh, ownPort,
//     "host:port", ...) listing every member's automanaged port.
//   - Consul: clusterproviders/consul.New() (a consul agent on localhost, or
//     consul.NewWithConfig with an api.Config); etcd:
//     clusterproviders/etcd.New() or NewWithConfig("/protoactor", clientv3
//     config); Kubernetes: clusterproviders/k8s.New() with the pod allowed to
//     list and patch pods, and [WithAdvertisedHost] set to the pod IP. These
//     are used exactly as protoactor-go documents; this package only needs
//     the provider value.
//
// # Workarounds for protoactor-go
//
// The protoactor-go version this package is built on (untagged, 2024-08)
// has defects this package works around, each with a test:
//
//   - MemberList.TopologyConsensus never succeeds: [Member.Start],
//     [StartAll] and [Member.WaitForMembers] poll the member list instead.
//   - Cluster.StartMember sleeps 1 s: [StartAll] starts members concurrently,
//     paying it once.
//   - Cluster.Shutdown deregisters from the provider only when graceful
//     (then it sleeps 2 s), so a test-provider member lingers in the others'
//     lists: [Member.Shutdown] deregisters itself, without the sleep. The
//     test provider also keeps calling members that left, from the goroutine
//     of whoever joins or leaves: shut members of one process down one at a
//     time.
//   - Cluster.Shutdown leaves goroutines running (gossip, identity lookup,
//     remoting): [Member.Shutdown] stops each of them. What remains cannot
//     be stopped from outside: throttle timers that end within 60 s, and the
//     test provider's TTL loop, which blocks forever on a stopped ticker.
//   - Remote.Shutdown drops replies still queued, and members drop messages
//     from a member that left: Shutdown answers [ErrUnavailable] while it
//     drains, lets the replies leave, and only then deregisters; a caller
//     whose owner leaves before answering gets [ErrTimeout] at once instead
//     of waiting for the request timeout.
//   - Data races that matter when several members share one process (tests,
//     the in-process examples), found with -race: Remote.Start writes grpc's
//     global logger, which running gRPC servers read (Start serializes
//     starts and sends a probe through its own server, see probe.go); gossip
//     informers share an unsynchronized random source (gossip is off by
//     default, [WithGossipInterval]); the block list is read without its
//     lock (every message delivered to this package passes a handoff point
//     that joins and leaves pass too, see racesync.go); and Remote.Shutdown
//     races with connections that are still open or just closing (Shutdown
//     waits until the others have dropped their connections and nothing
//     arrives, then stops remoting).
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
// [ErrUnknownCommand], [ErrDecode], [ErrTimeout]. An error from another
// member is a [*RemoteError] that matches (errors.Is) every registered error
// the original matched: the sentinels of entity (ErrPersist, ErrPanic ...),
// eventlog (ErrConflict ...), this package, and what the application
// registers with [RegisterError]. An unregistered error keeps its text.
// Errors of commands run in the caller's own member are returned as they
// are.
package cluster
