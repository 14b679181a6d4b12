package cluster

import (
	"context"
	"fmt"
	"maps"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"sync"

	"go.opentelemetry.io/otel/trace"

	"github.com/eventsourced-go/eventsourced/binarize"
	"github.com/eventsourced-go/eventsourced/cluster/clusterpb"
	"github.com/eventsourced-go/eventsourced/entity"
	"github.com/eventsourced-go/eventsourced/eventlog"
	itel "github.com/eventsourced-go/eventsourced/internal/telemetry"
)

// Kind is an entity type served by a cluster: registered with the member's
// [entity.System] and as a protoactor-go cluster kind whose identities are
// entity ids. Create it with [Register], add its commands with
// [RegisterCommand] and reach its entities with [Kind.Ref].
type Kind[S, E any] struct {
	m     *Member
	local *entity.Kind[S, E]
	tel   kindTelemetry

	mu     sync.RWMutex // guards byName and byType; writes only before Start
	byName map[string]*command[S, E]
	byType map[reflect.Type]*command[S, E]
}

// command is one registered command type, its type parameters C and R erased.
type command[S, E any] struct {
	name string
	// serve decodes a payload, runs it on the local entity and encodes the reply.
	serve func(ctx context.Context, ref entity.Ref[S, E], payload []byte) ([]byte, error)
	// encode encodes a command value (a C) for the wire.
	encode func(cmd any) ([]byte, error)
	// decode decodes a reply payload into an R, boxed.
	decode func(payload []byte) (any, error)
	// run runs a command value (a C) on the local entity, reply boxed.
	run func(ctx context.Context, ref entity.Ref[S, E], cmd any) (any, error)
}

// Register registers entity type def with m, before [Member.Start]: on the
// member's entity system, with opts, and as a protoactor-go cluster kind of
// the same name. Every member serving the type must register it, with the
// same commands. The member's [WithPassivateAfter] comes first among the
// entity options, so an entity.WithPassivateAfter in opts overrides it.
func Register[S, E any](m *Member, def entity.Type[S, E], opts ...entity.KindOption) (*Kind[S, E], error) {
	if m == nil {
		return nil, fmt.Errorf("%w: Register with a nil Member", ErrInvalid)
	}
	opts = append([]entity.KindOption{entity.WithPassivateAfter(m.cfg.passivateAfter)}, opts...)
	local, err := entity.Register(m.sys, def, opts...)
	if err != nil {
		return nil, fmt.Errorf("cluster: %w", err)
	}
	k := &Kind[S, E]{
		m:      m,
		local:  local,
		byName: make(map[string]*command[S, E]),
		byType: make(map[reflect.Type]*command[S, E]),
	}
	k.tel.init(&m.tel, def.Name)
	if err := m.addKind(def.Name, k); err != nil {
		return nil, err
	}
	return k, nil
}

// RegisterCommand registers the command type C of entity kind k under name,
// with the codecs of the command and of its reply. An empty name is C's
// type name without its package ("Add" for main.Add or *main.Add), which
// every member derives alike; name commands explicitly when two types of
// one kind share a name or a type may be renamed while members of the old
// release still run. Register every command on every member before
// [Member.Start]. Commands are found by name on the owner and by Go type on
// the caller, so a name and a type are registered once each.
func RegisterCommand[C entity.Command[S, E, R], S, E, R any](k *Kind[S, E], name string, cmd binarize.Codec[C], reply binarize.Codec[R]) error {
	if name == "" {
		t := reflect.TypeFor[C]()
		if t.Kind() == reflect.Pointer {
			t = t.Elem()
		}
		name = t.Name() // not empty: a type with methods has a name
	}
	switch {
	case k == nil:
		return fmt.Errorf("%w: RegisterCommand(%q) with a nil Kind", ErrInvalid, name)
	case cmd == nil || reply == nil:
		return fmt.Errorf("%w: RegisterCommand(%q) with a nil codec", ErrInvalid, name)
	}
	typ := reflect.TypeFor[C]()
	c := &command[S, E]{
		name: name,
		serve: func(ctx context.Context, ref entity.Ref[S, E], payload []byte) ([]byte, error) {
			v, err := cmd.Decode(payload)
			if err != nil {
				return nil, fmt.Errorf("%w: command %q of %s: %v", ErrDecode, name, ref, err)
			}
			r, err := entity.Ask[S, E, R](ctx, ref, v)
			if err != nil {
				return nil, err
			}
			b, err := reply.Encode(r)
			if err != nil {
				return nil, fmt.Errorf("%w: encode reply of %q from %s (the command ran): %v", ErrDecode, name, ref, err)
			}
			return b, nil
		},
		encode: func(v any) ([]byte, error) { return cmd.Encode(v.(C)) },
		decode: func(b []byte) (any, error) { return reply.Decode(b) },
		run: func(ctx context.Context, ref entity.Ref[S, E], v any) (any, error) {
			return entity.Ask[S, E, R](ctx, ref, v.(C))
		},
	}
	k.mu.Lock()
	defer k.mu.Unlock()
	k.m.mu.RLock()
	started := k.m.started
	k.m.mu.RUnlock()
	if started {
		return fmt.Errorf("%w: RegisterCommand(%q) after Start", ErrInvalid, name)
	}
	if _, dup := k.byName[name]; dup {
		return fmt.Errorf("%w: command %q of %s is already registered", ErrInvalid, name, k.local.Name())
	}
	if prev, dup := k.byType[typ]; dup {
		return fmt.Errorf("%w: command type %v of %s is already registered as %q", ErrInvalid, typ, k.local.Name(), prev.name)
	}
	k.byName[name] = c
	k.byType[typ] = c
	return nil
}

// Name returns the entity type name.
func (k *Kind[S, E]) Name() string { return k.local.Name() }

func (k *Kind[S, E]) telemetry() *kindTelemetry { return &k.tel }

// Local returns the kind in the member's own entity system. Commands sent
// through it bypass the cluster: use it only for entities this member owns.
func (k *Kind[S, E]) Local() *entity.Kind[S, E] { return k.local }

// Ref returns a reference to entity id, wherever in the cluster it lives. It
// is cheap and activates nothing; [Ask] finds the owner.
func (k *Kind[S, E]) Ref(id string) Ref[S, E] { return Ref[S, E]{kind: k, id: id} }

// Ref is a cheap, copyable reference to one entity of a cluster [Kind]. The
// zero Ref is invalid.
type Ref[S, E any] struct {
	kind *Kind[S, E]
	id   string
}

// ID returns the entity id.
func (r Ref[S, E]) ID() string { return r.id }

// String returns "type/id".
func (r Ref[S, E]) String() string {
	if r.kind == nil {
		return "/" + r.id
	}
	return r.kind.Name() + "/" + r.id
}

// quoted is String with the id as eventlog.FormatID quotes it, for errors.
func (r Ref[S, E]) quoted() string {
	if r.kind == nil {
		return "/" + eventlog.FormatID(r.id)
	}
	return r.kind.Name() + "/" + eventlog.FormatID(r.id)
}

// Ask sends cmd to the entity ref on the member that owns it and waits for
// the reply, like [entity.Ask] does for a local entity. The command travels
// encoded with its registered codec; errors registered with [RegisterError]
// (and the sentinels of entity, eventlog and cluster) match with errors.Is on
// the caller, others arrive as a [*RemoteError] with their text.
//
// A command that surely did not run (the owner was leaving, the message was
// not delivered, or its append conflicted because another member wrote the
// entity meanwhile) is retried against the current owner, a bounded number
// of times with backoff (see [WithRetry]). A command that may have run is
// never sent twice: a timeout is [ErrTimeout]; other errors are the owner's.
// If ctx ends, Ask returns at once: ctx's error itself if the command had
// not been sent (it never runs), else an error matching
// [entity.ErrOutcomeUnknown] and ctx's error. The owner runs the command
// under the caller's deadline, so what entity.Ask promises about errors
// holds here too. An entity id that breaks the log's rule
// ([eventlog.ValidateStream]) is refused before anything is sent, with an
// error matching [ErrInvalid] and [eventlog.ErrInvalid].
func Ask[S, E, R any](ctx context.Context, ref Ref[S, E], cmd entity.Command[S, E, R]) (R, error) {
	var zero R
	if cmd == nil {
		return zero, ref.checkNil()
	}
	c, payload, err := ref.prepare(cmd)
	if err != nil {
		return zero, err
	}
	k := ref.kind
	f := k.m.tel.active()
	if f == 0 {
		// Nothing records: the usual case without an OpenTelemetry SDK.
		return ask(ctx, ref, c, cmd, payload, 0)
	}
	ctx, span := k.tel.startAsk(ctx, f, ref.id, c.name)
	r, err := ask(ctx, ref, c, cmd, payload, f)
	itel.EndSpan(span, err)
	return r, err
}

// Type returns the entity type name.
func (r Ref[S, E]) Type() string {
	if r.kind == nil {
		return ""
	}
	return r.kind.Name()
}

// Call implements entity.Target, so that code written against
// entity.Target and entity.AskTarget sends commands to a cluster's
// entities as to local ones: it sends c's command as [Ask] does, with the
// codecs registered for its type.
func (r Ref[S, E]) Call(ctx context.Context, c *entity.Call[S, E]) (any, error) {
	if c == nil || c.Command() == nil {
		return nil, r.checkNil()
	}
	cmd := c.Command()
	rc, payload, err := r.prepare(cmd)
	if err != nil {
		return nil, err
	}
	k := r.kind
	f := k.m.tel.active()
	var span trace.Span
	if f != 0 {
		ctx, span = k.tel.startAsk(ctx, f, r.id, rc.name)
	}
	var local any
	rep, err := r.send(ctx, rc, payload, f, func(ctx context.Context) error {
		v, err := c.RunOn(ctx, k.local.Ref(r.id))
		local = v
		return err
	})
	var v any
	if err == nil {
		v, err = r.reply(rc, rep, local)
	}
	itel.EndSpan(span, err)
	return v, err
}

// checkNil is the error of a nil command (or of a zero Ref).
func (r Ref[S, E]) checkNil() error {
	if r.kind == nil {
		return fmt.Errorf("%w: Ask on a zero Ref", ErrInvalid)
	}
	return fmt.Errorf("%w: Ask %s with a nil command", ErrInvalid, r.quoted())
}

// prepare checks ref and finds and encodes cmd's registered command.
func (r Ref[S, E]) prepare(cmd any) (*command[S, E], []byte, error) {
	k := r.kind
	if k == nil {
		return nil, nil, fmt.Errorf("%w: Ask on a zero Ref", ErrInvalid)
	}
	if err := eventlog.ValidateStream(k.Name(), r.id); err != nil {
		return nil, nil, fmt.Errorf("%w: Ask: %w", ErrInvalid, err)
	}
	k.mu.RLock()
	c := k.byType[reflect.TypeOf(cmd)]
	k.mu.RUnlock()
	if c == nil {
		return nil, nil, fmt.Errorf("%w: command type %T of %s is not registered (RegisterCommand)", ErrUnknownCommand, cmd, k.Name())
	}
	payload, err := c.encode(cmd)
	if err != nil {
		return nil, nil, fmt.Errorf("cluster: encode command %q of %s: %w", c.name, r.quoted(), err)
	}
	return c, payload, nil
}

// send sends the encoded command to the entity's owner, or runs local if
// this member owns it (then the reply envelope is nil).
func (r Ref[S, E]) send(ctx context.Context, c *command[S, E], payload []byte, f flags, local func(context.Context) error) (*clusterpb.ReplyEnvelope, error) {
	k := r.kind
	md := entity.MetadataFrom(ctx)
	if key, ok := entity.IdempotencyKeyFrom(ctx); ok {
		// The key rides in the envelope's metadata to the owner, which
		// takes it out again (handle): the command is as idempotent
		// there as here.
		md = maps.Clone(md)
		if md == nil {
			md = make(map[string]string, 1)
		}
		md[entity.IdempotencyKeyMetadata] = key
	}
	if f&traced != 0 {
		// The envelope carries the client span's trace context, so the
		// owner's command span is its child.
		md = itel.Inject(ctx, k.m.tel.prop, md)
	}
	env := &clusterpb.CommandEnvelope{
		EntityType: k.Name(),
		EntityId:   r.id,
		Command:    c.name,
		Payload:    payload,
		Metadata:   md,
	}
	return k.m.request(ctx, &k.tel, f, env, func(ctx context.Context) error {
		err := local(ctx)
		if err != nil {
			k.stale(r.id, err)
		}
		return err
	})
}

// reply is the boxed reply of a command send answered: local if it ran
// here (rep nil), else rep's payload decoded.
func (r Ref[S, E]) reply(c *command[S, E], rep *clusterpb.ReplyEnvelope, local any) (any, error) {
	if rep == nil {
		return local, nil
	}
	v, err := c.decode(rep.GetPayload())
	if err != nil {
		return nil, fmt.Errorf("%w: reply of %q from %s (the command ran): %v", ErrDecode, c.name, r.quoted(), err)
	}
	return v, nil
}

// ask is Ask once the command is encoded and its span, if traced, started.
// It unboxes only a reply that came over the wire; a local one keeps its
// type, so the common local path allocates no box.
func ask[S, E, R any](ctx context.Context, ref Ref[S, E], c *command[S, E], cmd entity.Command[S, E, R], payload []byte, f flags) (R, error) {
	var zero, local R
	rep, err := ref.send(ctx, c, payload, f, func(ctx context.Context) error {
		r, err := entity.Ask(ctx, ref.kind.local.Ref(ref.id), cmd)
		local = r
		return err
	})
	if err != nil {
		return zero, err
	}
	if rep == nil { // ran locally
		return local, nil
	}
	v, err := ref.reply(c, rep, nil)
	if err != nil {
		return zero, err
	}
	return v.(R), nil
}

// commandNames lists the registered command names, sorted and quoted, for
// errors: "none" if there are none.
func (k *Kind[S, E]) commandNames() string {
	k.mu.RLock()
	names := slices.Sorted(maps.Keys(k.byName))
	k.mu.RUnlock()
	if len(names) == 0 {
		return "none"
	}
	return strings.Join(quoteAll(names), ", ")
}

// handle runs one envelope from another member on the local entity.
func (k *Kind[S, E]) handle(ctx context.Context, env *clusterpb.CommandEnvelope) *clusterpb.ReplyEnvelope {
	k.mu.RLock()
	c := k.byName[env.GetCommand()]
	k.mu.RUnlock()
	if c == nil {
		return failure(fmt.Errorf("%w: %q is not a registered command of %s on member %s, which registers %s; every member serving %s must register the same commands",
			ErrUnknownCommand, env.GetCommand(), k.Name(), k.m.self, k.commandNames(), k.Name()))
	}
	id := env.GetEntityId()
	if id == "" {
		return failure(fmt.Errorf("%w: command %q of %s with an empty entity id", ErrInvalid, env.GetCommand(), k.Name()))
	}
	if md := env.GetMetadata(); len(md) > 0 {
		if k.m.tel.tracing.On() {
			// The caller's client span is the parent of the command span.
			if sc := itel.Extract(k.m.tel.prop, md); sc.IsValid() {
				ctx = trace.ContextWithRemoteSpanContext(ctx, sc)
			}
		}
		if key := md[entity.IdempotencyKeyMetadata]; key != "" {
			// The sender's idempotency key (see send): the command's,
			// not metadata for every event of it.
			md = maps.Clone(md)
			delete(md, entity.IdempotencyKeyMetadata)
			ctx = entity.WithIdempotencyKey(ctx, key)
		}
		ctx = entity.WithMetadata(ctx, md)
	}
	if !k.m.fence.open() {
		if err := k.m.unfenced(ctx); err != nil {
			return failure(err)
		}
	}
	b, err := c.serve(ctx, k.local.Ref(id), env.GetPayload())
	if err != nil {
		k.stale(id, err)
		return failure(err)
	}
	return &clusterpb.ReplyEnvelope{Payload: b}
}

// quoteAll quotes each of names as Go strings.
func quoteAll(names []string) []string {
	q := make([]string, len(names))
	for i, n := range names {
		q[i] = strconv.Quote(n)
	}
	return q
}
