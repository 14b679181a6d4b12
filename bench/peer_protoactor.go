package main

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/asynkron/protoactor-go/persistence"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/wrapperspb"
)

// The protoactor-go persistence peer: an actor per entity with the
// persistence.Mixin and the package's in-memory provider, asked with
// RequestFuture, as protoactor-go's persistence example does. Its events
// must be protobuf messages; the counter's Incremented is a
// wrapperspb.Int64Value. The in-memory provider stores the message itself,
// so this peer does no encoding at all (the others use msgpack).

// paIncrement is the command; a local send needs no protobuf message.
type paIncrement struct{ by int64 }

// paCounter is the persistent actor.
type paCounter struct {
	persistence.Mixin
	value int64
}

func (a *paCounter) Receive(ctx actor.Context) {
	switch msg := ctx.Message().(type) {
	case *wrapperspb.Int64Value:
		// An event: from replay, or from our own PersistReceive below.
		a.value += msg.Value
	case *persistence.RequestSnapshot:
		// The provider's interval is set beyond the workload; ignore.
	case *persistence.ReplayComplete:
	case *paGet:
		ctx.Respond(a.value)
	case *paIncrement:
		// PersistReceive may deliver a RequestSnapshot through the same
		// context before it returns, which replaces ctx's current message
		// and sender (protoactor-go issue #256): take the sender first.
		sender := ctx.Sender()
		ev := wrapperspb.Int64(msg.by)
		a.PersistReceive(ev)
		a.value += ev.Value
		ctx.Send(sender, a.value)
	}
}

// paProvider adapts the in-memory provider to persistence.Provider, as the
// package's own tests do.
type paProvider struct{ state persistence.ProviderState }

func (p *paProvider) GetState() persistence.ProviderState { return p.state }

// paSystem is an actor system with the persistence middleware.
type paSystem struct {
	as    *actor.ActorSystem
	props *actor.Props
}

func newPASystem(snapshotInterval int) *paSystem {
	as := actor.NewActorSystem(actor.WithLoggerFactory(func(*actor.ActorSystem) *slog.Logger {
		return slog.New(slog.DiscardHandler)
	}))
	provider := &paProvider{state: persistence.NewInMemoryProvider(snapshotInterval)}
	props := actor.PropsFromProducer(func() actor.Actor { return &paCounter{} },
		actor.WithReceiverMiddleware(persistence.Using(provider)))
	return &paSystem{as: as, props: props}
}

func (s *paSystem) spawn(id string) (*actor.PID, error) {
	return s.as.Root.SpawnNamed(s.props, id)
}

func (s *paSystem) increment(pid *actor.PID) (int64, error) {
	res, err := s.as.Root.RequestFuture(pid, &paIncrement{by: 1}, 30*time.Second).Result()
	if err != nil {
		return 0, err
	}
	v, ok := res.(int64)
	if !ok {
		return 0, fmt.Errorf("reply %T", res)
	}
	return v, nil
}

var _ proto.Message = (*wrapperspb.Int64Value)(nil)

func memoryProtoactor(ctx context.Context, env *Env) (Result, error) {
	n, cmds := memorySize(env)
	s := newPASystem(1 << 30)
	defer s.as.Shutdown()
	pids := make([]*actor.PID, n)
	ctx, cancel := Budget(ctx, env, 30*time.Second)
	defer cancel()
	return Drive(ctx, env, n, cmds, func(ctx context.Context, c, i int) error {
		if i == 0 {
			// Activation is part of the work, as it is for eventsourced.
			pid, err := s.spawn(entityID(c))
			if err != nil {
				return err
			}
			pids[c] = pid
		}
		v, err := s.increment(pids[c])
		if err == nil && v != int64(i+1) {
			err = fmt.Errorf("reply %d, want %d", v, i+1)
		}
		return err
	})
}
