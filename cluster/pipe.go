package cluster

import (
	"context"
	"sync"
	"sync/atomic"
	"time"

	"github.com/asynkron/protoactor-go/actor"

	"github.com/eventsourced-go/eventsourced/cluster/clusterpb"
)

// Batching of remote commands. Commands asked concurrently for entities of
// one type owned by one member travel together: a pipe per (owner, type)
// sends at most pipeInflight batches at a time, and commands that arrive
// while they are in flight wait and leave together as the next batch. The
// caller whose command starts a batch sends it (on a goroutine of its own if
// its context can be canceled, so that it can stop waiting) and hands every
// command its reply; if more commands are waiting by then, it hands the next
// batch to one of their callers. Under no load a batch has one command and
// costs what a single request would; under load one message carries
// hundreds of commands.
//
// A caller whose context ends stops waiting at once. If its command has not
// been sent yet it never will be; if it has, whether it ran is unknown, as
// for any command whose caller gave up. A caller that gave up is never
// handed a batch to send.

const (
	pipeInflight = 1
	pipeMaxBatch = 512
	// replyGrace is how much longer than its callers' deadlines a batch's
	// answer is awaited: the time for the owner's answer to come back.
	replyGrace = 250 * time.Millisecond
)

// The states of a call.
const (
	callWaiting   int32 = iota
	callLeading         // handed a batch to send: its caller must take it
	callAbandoned       // its caller gave up before it was sent: skip it
	callSent            // on its way to the owner: it may run
)

// call is one command waiting in a pipe.
type call struct {
	env      *clusterpb.CommandEnvelope
	deadline time.Time // when its caller stops waiting
	state    atomic.Int32
	rep      *clusterpb.ReplyEnvelope
	err      error
	lead     []*call // set instead of rep/err: send this batch
	done     chan struct{}
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
	if p, ok := m.route.pipes.Load(key); ok {
		return p.(*pipe)
	}
	p, _ := m.route.pipes.LoadOrStore(key, &pipe{m: m, owner: owner, pid: actor.NewPID(owner, routerName(kind))})
	return p.(*pipe)
}

// do sends env through the pipe and returns its reply, or an error as soon
// as ctx ends: ctx's error if the command was not sent (it never will be),
// else one matching entity.ErrOutcomeUnknown and ctx's error. The owner
// gets at most timeout to answer, and runs the command under that deadline.
func (p *pipe) do(ctx context.Context, env *clusterpb.CommandEnvelope, timeout time.Duration) (*clusterpb.ReplyEnvelope, error) {
	c := &call{env: env, deadline: time.Now().Add(timeout), done: make(chan struct{}, 1)}
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
			if ctx.Done() == nil || !p.m.startFlush() {
				p.flush(batch)
			} else {
				// Ends within the batch's timeout, or when Shutdown
				// fails the requests still waiting.
				go func(batch []*call) {
					defer p.m.route.flushes.Done()
					p.flush(batch)
				}(batch)
			}
			batch = nil
		}
		select {
		case <-c.done:
		case <-ctx.Done():
			if c.state.CompareAndSwap(callWaiting, callAbandoned) {
				return nil, ctx.Err()
			}
			if c.state.Load() == callSent {
				select {
				case <-c.done: // answered meanwhile
					return c.rep, c.err
				default:
				}
				return nil, &sentError{env: env, err: ctx.Err()}
			}
			<-c.done // handed a batch meanwhile: send it first
		}
		if c.lead == nil {
			return c.rep, c.err
		}
		batch, c.lead = c.lead, nil
		c.state.Store(callWaiting) // its own command is in that batch
	}
}

// take removes up to pipeMaxBatch-1 waiting calls, skipping those whose
// callers gave up; p.mu must be held.
func (p *pipe) take() []*call {
	var b []*call
	n := 0
	for _, c := range p.queue {
		if len(b) == pipeMaxBatch-1 {
			break
		}
		n++
		if c.state.Load() != callAbandoned {
			if b == nil {
				b = make([]*call, 0, min(len(p.queue), pipeMaxBatch-1)+1)
			}
			b = append(b, c)
		}
	}
	clear(p.queue[:n])
	p.queue = p.queue[n:]
	if len(p.queue) == 0 {
		p.queue = nil
	}
	return b
}

// flush sends batch, answers its calls and passes the pipe on. Calls whose
// callers gave up before the batch left are not sent.
func (p *pipe) flush(batch []*call) {
	for {
		sent := batch[:0:0]
		for _, c := range batch {
			if c.state.CompareAndSwap(callWaiting, callSent) {
				sent = append(sent, c)
			}
		}
		var reps []*clusterpb.ReplyEnvelope
		var err error
		if len(sent) > 0 {
			// Each command runs under its own caller's deadline on the
			// owner; the batch's answer is awaited as long as its most
			// patient caller waits, and replyGrace more, so that an
			// owner's answer that a command timed out there (it never
			// ran) still arrives.
			var timeout time.Duration
			envs := make([]*clusterpb.CommandEnvelope, len(sent))
			for i, c := range sent {
				left := max(time.Until(c.deadline), time.Microsecond)
				c.env.TimeoutMicros = left.Microseconds()
				envs[i] = c.env
				timeout = max(timeout, left)
			}
			reps, err = p.m.send(p.owner, p.pid, envs, timeout+replyGrace)
		}
		for i, c := range sent {
			if err != nil {
				c.err = err
			} else {
				c.rep = reps[i]
			}
			c.done <- struct{}{}
		}
		// Pass the pipe on to the caller of a waiting call, or send the
		// next batch from here if every one of them gave up.
		p.mu.Lock()
		next := p.take() // this flush's inflight slot passes to next
		if next == nil {
			p.inflight--
		}
		p.mu.Unlock()
		if next == nil {
			return
		}
		for _, c := range next {
			if c.state.CompareAndSwap(callWaiting, callLeading) {
				c.lead = next
				c.done <- struct{}{}
				return
			}
		}
		batch = next
	}
}
