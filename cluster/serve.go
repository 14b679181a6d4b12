package cluster

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/asynkron/protoactor-go/actor"

	"github.com/eventsourced-go/eventsourced/cluster/clusterpb"
	"github.com/eventsourced-go/eventsourced/eventlog"
)

// Serving other members: the envelopes they send arrive at a grain, and
// each command runs on a goroutine of its own (a worker's when one is idle),
// so the router actor never blocks and the entity runtime's own batching
// applies to remote commands too.

// server runs the commands other members send.
type server struct {
	// inflight counts the goroutines running commands for other members;
	// Shutdown waits for it. Its Add happens under Member.mu (see there).
	inflight sync.WaitGroup
	tasks    chan func()    // to the idle workers; unbuffered; closed by Shutdown
	workers  sync.WaitGroup // the workers
}

// workers is how many goroutines wait to run commands for other members.
// Their stacks stay grown between commands, where a fresh goroutine per
// command would grow its stack through the codecs every time.
const workers = 64

// grain receives the envelopes sent to this member: it is both the router
// actor per entity type and the props of the protoactor-go cluster kind, so
// cluster.Request(id, type, envelope) works too. It never blocks: each
// command runs on its own goroutine, owned by the Member, and the reply is
// sent to the requester from there.
type grain struct{ m *Member }

// grainProps returns the props of the router actors and cluster kinds.
func (m *Member) grainProps() *actor.Props {
	return actor.PropsFromProducer(func() actor.Actor { return &grain{m: m} })
}

// Receive implements actor.Actor.
func (g *grain) Receive(c actor.Context) {
	switch msg := c.Message().(type) {
	case *clusterpb.CommandEnvelope:
		g.m.arrived()
		g.m.serve(c.Sender(), msg)
	case *clusterpb.CommandBatch:
		g.m.arrived()
		g.m.serveBatch(c.Sender(), msg)
	}
}

// serve runs env for sender on a goroutine and answers it from there.
func (m *Member) serve(sender *actor.PID, env *clusterpb.CommandEnvelope) {
	if isProbe(env) {
		m.replyNow(sender, m.answerProbe(env))
		return
	}
	h := m.served[env.GetEntityType()]
	if h == nil {
		m.replyNow(sender, failure(fmt.Errorf("%w: entity type %s is not served by %s", ErrUnknownCommand, eventlog.FormatID(env.GetEntityType()), m.self)))
		return
	}
	if !m.admit() {
		m.replyNow(sender, failure(fmt.Errorf("%w: %s is leaving", ErrUnavailable, m.self)))
		return
	}
	m.spawn(func() {
		defer m.srv.inflight.Done()
		ctx, cancel := m.commandCtx(env)
		defer cancel()
		m.reply(sender, h.handle(ctx, env))
	})
}

// serveBatch runs the commands of a batch concurrently, each as serve would,
// and answers them together.
func (m *Member) serveBatch(sender *actor.PID, b *clusterpb.CommandBatch) {
	if !m.admit() {
		m.replyNow(sender, failure(fmt.Errorf("%w: %s is leaving", ErrUnavailable, m.self)))
		return
	}
	m.spawn(func() {
		defer m.srv.inflight.Done()
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
					reps[i] = failure(fmt.Errorf("%w: entity type %s is not served by %s", ErrUnknownCommand, eventlog.FormatID(env.GetEntityType()), m.self))
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

// admit counts a command in srv.inflight, unless the member is leaving
// (then it reports false and the command is refused).
func (m *Member) admit() bool {
	m.mu.RLock()
	defer m.mu.RUnlock()
	if m.closing {
		return false
	}
	m.srv.inflight.Add(1)
	return true
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

// replyNow is reply from the router actor, for a command that is not
// counted in srv.inflight (a probe, an unknown type, a refusal while
// leaving): it passes syncPoint after sending, as Shutdown does before it
// stops remoting, since remoting reads the stop flag it writes there
// without synchronization (see workarounds.go).
func (m *Member) replyNow(to *actor.PID, r *clusterpb.ReplyEnvelope) {
	m.reply(to, r)
	syncPoint()
}

// failure is the reply envelope of err.
func failure(err error) *clusterpb.ReplyEnvelope {
	return &clusterpb.ReplyEnvelope{Failed: true, ErrorCodes: codesOf(err), ErrorText: err.Error()}
}

// startWorkers starts the workers; Start calls it.
func (m *Member) startWorkers() {
	for range workers {
		m.srv.workers.Go(m.worker)
	}
}

// stopWorkers stops the workers once nothing is spawned any more (inflight
// is drained) and waits for them.
func (m *Member) stopWorkers() {
	close(m.srv.tasks)
	m.srv.workers.Wait()
}

// worker runs tasks until stopWorkers closes them.
func (m *Member) worker() {
	for f := range m.srv.tasks {
		f()
	}
}

// spawn runs f on an idle worker, or on a new goroutine if none is idle.
// The caller owns f's completion (a WaitGroup).
func (m *Member) spawn(f func()) {
	select {
	case m.srv.tasks <- f:
	default:
		go f()
	}
}
