package cluster

import (
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/asynkron/protoactor-go/remote"

	"github.com/eventsourced-go/eventsourced/cluster/clusterpb"
)

// Batching of remote commands. Commands asked concurrently for entities of
// one type owned by one member travel together: a pipe per (owner, type)
// sends at most pipeInflight batches at a time, and commands that arrive
// while they are in flight wait and leave together as the next batch. No
// goroutine is added: the caller whose command starts a batch sends it,
// waits for the answer and hands every command its reply; if more commands
// are waiting by then, it hands the next batch to one of their callers.
// Under no load a batch has one command and costs what a single request
// would; under load one message carries hundreds of commands.

const (
	pipeInflight = 1
	pipeMaxBatch = 512
)

// call is one command waiting in a pipe.
type call struct {
	env     *clusterpb.CommandEnvelope
	timeout time.Duration
	rep     *clusterpb.ReplyEnvelope
	err     error
	lead    []*call // set instead of rep/err: send this batch
	done    chan struct{}
}

type pipe struct {
	m     *Member
	owner string
	pid   *actor.PID

	mu       sync.Mutex // guards queue and inflight
	queue    []*call
	inflight int
}

type pipeKey struct{ owner, kind string }

// pipe returns the pipe to owner for entity type kind.
func (m *Member) pipe(owner, kind string) *pipe {
	key := pipeKey{owner, kind}
	if p, ok := m.pipes.Load(key); ok {
		return p.(*pipe)
	}
	p, _ := m.pipes.LoadOrStore(key, &pipe{m: m, owner: owner, pid: actor.NewPID(owner, routerName(kind))})
	return p.(*pipe)
}

// do sends env through the pipe and returns its reply.
func (p *pipe) do(env *clusterpb.CommandEnvelope, timeout time.Duration) (*clusterpb.ReplyEnvelope, error) {
	c := &call{env: env, timeout: timeout, done: make(chan struct{}, 1)}
	p.mu.Lock()
	var batch []*call
	if p.inflight < pipeInflight {
		p.inflight++
		batch = append(p.take(), c)
	} else {
		p.queue = append(p.queue, c)
	}
	p.mu.Unlock()
	for {
		if batch != nil {
			p.flush(batch)
			batch = nil
		}
		<-c.done
		if c.lead == nil {
			return c.rep, c.err
		}
		batch, c.lead = c.lead, nil
	}
}

// take removes up to pipeMaxBatch-1 waiting calls; p.mu must be held.
func (p *pipe) take() []*call {
	n := min(len(p.queue), pipeMaxBatch-1)
	b := make([]*call, n, n+1)
	copy(b, p.queue[:n])
	clear(p.queue[:n])
	p.queue = p.queue[n:]
	if len(p.queue) == 0 {
		p.queue = nil
	}
	return b
}

// flush sends batch, answers its calls and passes the pipe on.
func (p *pipe) flush(batch []*call) {
	timeout := batch[0].timeout
	envs := make([]*clusterpb.CommandEnvelope, len(batch))
	for i, c := range batch {
		envs[i] = c.env
		timeout = min(timeout, c.timeout)
	}
	reps, err := p.m.send(p.owner, p.pid, envs, timeout)
	p.mu.Lock()
	var next []*call
	if len(p.queue) > 0 {
		next = p.take() // this flush's inflight slot passes to next
	} else {
		p.inflight--
	}
	p.mu.Unlock()
	for i, c := range batch {
		if err != nil {
			c.err = err
		} else {
			c.rep = reps[i]
		}
		c.done <- struct{}{}
	}
	if next != nil {
		leader := next[0]
		leader.lead = next
		leader.done <- struct{}{}
	}
}

// send sends envs to the router at pid of owner and waits for the replies.
func (m *Member) send(owner string, pid *actor.PID, envs []*clusterpb.CommandEnvelope, timeout time.Duration) ([]*clusterpb.ReplyEnvelope, error) {
	var msg any = envs[0]
	if len(envs) > 1 {
		msg = &clusterpb.CommandBatch{Commands: envs}
	}
	m.messages.Add(1)
	m.remote.Add(int64(len(envs)))
	fut := m.actors.Root.RequestFuture(pid, msg, timeout)
	m.waiting.Store(fut, owner)
	if !m.view.Load().has(owner) {
		m.failFuture(fut, owner)
	}
	res, err := fut.Result()
	syncPoint()
	m.lastIn.Store(time.Now().UnixNano())
	m.waiting.Delete(fut)
	what := fmt.Sprintf("%s/%s", envs[0].GetEntityType(), envs[0].GetEntityId())
	if len(envs) > 1 {
		what = fmt.Sprintf("%d commands for %s", len(envs), envs[0].GetEntityType())
	}
	if left, ok := res.(ownerLeft); ok {
		return nil, fmt.Errorf("%w: %s: owner %s left the cluster before answering", ErrTimeout, what, left.addr)
	}
	switch {
	case err == nil:
	case errors.Is(err, actor.ErrDeadLetter) || errors.Is(err, remote.ErrDeadLetter):
		return nil, fmt.Errorf("%w: %s not delivered to %s", ErrUnavailable, what, owner)
	case errors.Is(err, actor.ErrTimeout) || errors.Is(err, remote.ErrTimeout):
		return nil, fmt.Errorf("%w: %s at %s after %v", ErrTimeout, what, owner, timeout)
	default:
		return nil, fmt.Errorf("cluster: %s at %s: %w", what, owner, err)
	}
	switch r := res.(type) {
	case *clusterpb.ReplyEnvelope:
		if len(envs) == 1 {
			return []*clusterpb.ReplyEnvelope{r}, nil
		}
		if r.GetFailed() { // the owner refused the whole batch (leaving)
			reps := make([]*clusterpb.ReplyEnvelope, len(envs))
			for i := range reps {
				reps[i] = r
			}
			return reps, nil
		}
	case *clusterpb.ReplyBatch:
		if len(r.GetReplies()) == len(envs) {
			return r.GetReplies(), nil
		}
	}
	return nil, fmt.Errorf("%w: %s answered %T to %s", ErrDecode, owner, res, what)
}
