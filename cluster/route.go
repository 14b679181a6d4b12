package cluster

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/asynkron/protoactor-go/remote"

	"github.com/eventsourced-go/eventsourced/cluster/clusterpb"
	"github.com/eventsourced-go/eventsourced/entity"
	"github.com/eventsourced-go/eventsourced/eventlog"
)

// Routing this member's commands: request finds the owner in the current
// view and runs the command here if it is this member, else sends it through
// the pipe to (owner, type) (pipe.go), retrying only what surely did not run.

// router is the state of sending this member's commands to their owners.
type router struct {
	pipes     sync.Map     // pipeKey -> *pipe, created on first use
	waiting   sync.Map     // *actor.Future -> owner address: requests awaiting a reply
	draining  sync.Map     // address -> time.Time: members that answered "leaving"
	nDraining atomic.Int32 // entries in draining: while 0, attempt skips the lookup

	// flushMu guards noFlush, and orders every flushes.Add before
	// stopRouting's flushes.Wait.
	flushMu sync.RWMutex
	noFlush bool           // set by Shutdown: callers send their batches themselves
	flushes sync.WaitGroup // goroutines sending batches for callers that may give up

	retries  atomic.Int64 // attempts retried, for Stats
	messages atomic.Int64 // messages sent to other members, for Stats
	remote   atomic.Int64 // commands they carried, for Stats
}

// retryable reports whether err says the command surely did not run, so it
// may be sent again to the (maybe new) owner.
func retryable(err error) bool {
	return errors.Is(err, ErrUnavailable) || errors.Is(err, eventlog.ErrConflict) || errors.Is(err, entity.ErrClosed)
}

// request sends env to the owner of its entity and returns the reply,
// retrying with backoff while the command surely did not run. local runs the
// command in this member when it is the owner. kt and f are the command's
// telemetry: its kind's attributes and what is measured.
func (m *Member) request(ctx context.Context, kt *kindTelemetry, f flags, env *clusterpb.CommandEnvelope, local func(context.Context) error) (*clusterpb.ReplyEnvelope, error) {
	var lastErr error
	for attempt := 0; ; attempt++ {
		if m.closed.Load() {
			return nil, ErrClosed
		}
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		rep, err := m.attempt(ctx, kt, f, env, local)
		if err == nil {
			return rep, nil
		}
		var re *RemoteError
		if !retryable(err) || errors.Is(err, ErrClosed) || (errors.Is(err, ErrFenced) && !errors.As(err, &re)) {
			// This member is fenced for good: it is no use asking it again.
			return nil, err
		}
		if errors.As(err, &re) && re.has(codeUnavailable) {
			m.markDraining(re.Member)
		}
		lastErr = err
		if attempt >= m.cfg.retries {
			return nil, fmt.Errorf("cluster: %s/%s: gave up after %d attempts: %w", eventlog.FormatID(env.GetEntityType()), eventlog.FormatID(env.GetEntityId()), attempt+1, lastErr)
		}
		m.route.retries.Add(1)
		if f != 0 {
			kt.retried(ctx, f, err)
		}
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
func (m *Member) attempt(ctx context.Context, kt *kindTelemetry, f flags, env *clusterpb.CommandEnvelope, local func(context.Context) error) (*clusterpb.ReplyEnvelope, error) {
	var skip func(string) bool
	if m.route.nDraining.Load() > 0 {
		skip = m.isDraining
	}
	owner := m.topo.view.Load().ownerSkipping(env.GetEntityType(), env.GetEntityId(), skip)
	if f != 0 && owner != "" {
		kt.owner(ctx, f, owner)
	}
	switch owner {
	case "":
		return nil, fmt.Errorf("%w: no member serves entity type %q", ErrUnavailable, env.GetEntityType())
	case m.self:
		m.mu.RLock()
		closing := m.closing
		m.mu.RUnlock()
		if !closing {
			if !m.fence.open() {
				if err := m.unfenced(ctx); err != nil {
					return nil, err
				}
			}
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
	if f == 0 {
		return m.remote(ctx, env, owner, timeout)
	}
	start := kt.startRequest(ctx, f)
	rep, err := m.remote(ctx, env, owner, timeout)
	kt.endRequest(ctx, f, start, owner, err)
	return rep, err
}

// remote sends env to owner through the pipe and returns its reply, or an
// error if it failed there.
func (m *Member) remote(ctx context.Context, env *clusterpb.CommandEnvelope, owner string, timeout time.Duration) (*clusterpb.ReplyEnvelope, error) {
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
// lost (see deregister).
func (m *Member) markDraining(addr string) {
	if _, loaded := m.route.draining.LoadOrStore(addr, time.Now()); !loaded {
		m.route.nDraining.Add(1)
	}
}

// isDraining reports whether addr answered recently that it is leaving.
func (m *Member) isDraining(addr string) bool {
	v, ok := m.route.draining.Load(addr)
	if !ok {
		return false
	}
	if time.Since(v.(time.Time)) > drainingFor {
		if m.route.draining.CompareAndDelete(addr, v) {
			m.route.nDraining.Add(-1)
		}
		return false
	}
	return true
}

// drainingFor is how long a member that answered "leaving" is avoided.
const drainingFor = 10 * time.Second

// send sends envs to the router at pid of owner and waits for the replies.
func (m *Member) send(owner string, pid *actor.PID, envs []*clusterpb.CommandEnvelope, timeout time.Duration) ([]*clusterpb.ReplyEnvelope, error) {
	// what names the commands in errors; only errors pay for it.
	what := func() string {
		if len(envs) > 1 {
			return fmt.Sprintf("%d commands for %s", len(envs), eventlog.FormatID(envs[0].GetEntityType()))
		}
		return fmt.Sprintf("%s/%s", eventlog.FormatID(envs[0].GetEntityType()), eventlog.FormatID(envs[0].GetEntityId()))
	}
	var msg any = envs[0]
	if len(envs) > 1 {
		msg = &clusterpb.CommandBatch{Commands: envs}
	}
	m.route.messages.Add(1)
	m.route.remote.Add(int64(len(envs)))
	if m.tel.metering.On() {
		m.tel.perMessage.Record(context.Background(), int64(len(envs)), m.kindTelemetry(envs[0].GetEntityType()).byType.Record...)
	}
	fut := m.actors.Root.RequestFuture(pid, msg, timeout)
	m.route.waiting.Store(fut, owner)
	switch {
	case m.closed.Load(): // stopRouting fails those it finds waiting, maybe not this one
		m.actors.Root.Send(fut.PID(), memberClosed{})
	case !m.topo.view.Load().has(owner):
		m.failFuture(fut, owner)
	}
	res, err := fut.Result()
	m.arrived()
	m.route.waiting.Delete(fut)
	switch r := res.(type) {
	case ownerLeft:
		return nil, fmt.Errorf("%w: %w: %s: owner %s left the cluster before answering", ErrTimeout, entity.ErrOutcomeUnknown, what(), r.addr)
	case memberClosed:
		return nil, fmt.Errorf("%w: %w: %s: this member shut down before %s answered", ErrTimeout, entity.ErrOutcomeUnknown, what(), owner)
	}
	switch {
	case err == nil:
	case errors.Is(err, actor.ErrDeadLetter) || errors.Is(err, remote.ErrDeadLetter):
		return nil, fmt.Errorf("%w: %s not delivered to %s", ErrUnavailable, what(), owner)
	case errors.Is(err, actor.ErrTimeout) || errors.Is(err, remote.ErrTimeout):
		return nil, fmt.Errorf("%w: %w: %s at %s after %v", ErrTimeout, entity.ErrOutcomeUnknown, what(), owner, timeout.Round(time.Millisecond))
	default:
		return nil, fmt.Errorf("cluster: %s at %s: %w", what(), owner, err)
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
	return nil, fmt.Errorf("%w: %s answered %T to %s", ErrDecode, owner, res, what())
}

// memberClosed completes a request this member sent when it shuts down.
type memberClosed struct{}

// stopRouting ends the requests still waiting for a reply, which no longer
// matters once the member is closed, and with them the goroutines sending
// them (a send after closed ends itself); it waits for those goroutines.
func (m *Member) stopRouting() {
	m.route.flushMu.Lock()
	m.route.noFlush = true
	m.route.flushMu.Unlock()
	m.route.waiting.Range(func(k, _ any) bool {
		m.actors.Root.Send(k.(*actor.Future).PID(), memberClosed{})
		return true
	})
	m.route.flushes.Wait()
}

// startFlush counts a goroutine about to send a batch, unless stopRouting
// has begun waiting for them (then the caller sends it itself).
func (m *Member) startFlush() bool {
	m.route.flushMu.RLock()
	defer m.route.flushMu.RUnlock()
	if m.route.noFlush {
		return false
	}
	m.route.flushes.Add(1)
	return true
}

// sentError is the error of a command whose caller gave up after it was
// sent: it may have run.
type sentError struct {
	env *clusterpb.CommandEnvelope
	err error // ctx's error
}

func (e *sentError) Error() string {
	return fmt.Sprintf("cluster: %s/%s: the command was on its way to its owner when its caller gave up, its outcome is unknown: %v",
		eventlog.FormatID(e.env.GetEntityType()), eventlog.FormatID(e.env.GetEntityId()), e.err)
}

func (e *sentError) Is(target error) bool { return target == entity.ErrOutcomeUnknown }

func (e *sentError) Unwrap() error { return e.err }
