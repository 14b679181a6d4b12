package cluster

import (
	"context"
	"fmt"
	"maps"
)

// routerName is the name of the actor that takes the envelopes of entity
// type kind on every member.
func routerName(kind string) string { return "eventsourced-" + kind }

// Start joins the cluster: it starts remoting, serves the registered entity
// types and returns once this member sees itself in the member list. It polls
// the member list instead of waiting for protoactor-go's topology consensus,
// which never succeeds in the version this package is built on.
// protoactor-go's StartMember sleeps 1 s; start several members concurrently
// (see [StartAll]) to pay it once.
func (m *Member) Start(ctx context.Context) error {
	m.mu.Lock()
	switch {
	case m.closing:
		m.mu.Unlock()
		return ErrClosed
	case m.started:
		m.mu.Unlock()
		return fmt.Errorf("%w: Start called twice", ErrInvalid)
	}
	m.started = true
	m.served = maps.Clone(m.kinds)
	m.mu.Unlock()

	m.watchTopology()
	for name := range m.served {
		if _, err := m.actors.Root.SpawnNamed(m.grainProps(), routerName(name)); err != nil {
			return fmt.Errorf("cluster: spawn router for %q: %w", name, err)
		}
	}
	if err := m.startMember(ctx); err != nil {
		return err
	}
	m.self = m.actors.Address()
	m.watchEndpoints()
	m.watchDeadLetters()
	m.topo.sweeper.Go(m.sweeper)
	if m.fence.threshold > 0 {
		m.fence.lastTick.Store(m.fence.now())
		m.topo.sweeper.Go(m.watchPauses)
	}
	m.startWorkers()
	return m.pollMemberList(ctx, func(v *view) bool {
		for _, addrs := range v.byKind {
			for _, a := range addrs {
				if a == m.self {
					return true
				}
			}
		}
		return len(m.served) == 0 && v.members > 0
	})
}

// StartAll starts members concurrently, paying protoactor-go's 1 s sleep in
// StartMember once instead of once per member, and waits until each sees all
// of them.
func StartAll(ctx context.Context, members ...*Member) error {
	if err := startConcurrently(ctx, members); err != nil {
		return err
	}
	for _, m := range members {
		if err := m.WaitForMembers(ctx, len(members)); err != nil {
			return err
		}
	}
	return nil
}

// WaitForMembers returns once this member's member list has at least n
// members, or ctx ends. Use it instead of protoactor-go's
// MemberList.TopologyConsensus, which never succeeds in the version this
// package is built on.
func (m *Member) WaitForMembers(ctx context.Context, n int) error {
	return m.pollMemberList(ctx, func(v *view) bool { return v.members >= n })
}

// Shutdown leaves the cluster: it deregisters from the provider so the other
// members take over this member's entities, answers new commands with a
// retryable [ErrUnavailable], waits for the commands it is running, shuts the
// entity system down and stops protoactor-go's cluster, remoting and actor
// system, leaving no goroutine of its own behind. If ctx ends first the
// entity system is closed at once and ctx.Err() returned. Later calls return
// [ErrClosed].
func (m *Member) Shutdown(ctx context.Context) error {
	err := ErrClosed
	m.stopOnce.Do(func() { err = m.shutdown(ctx) })
	return err
}

func (m *Member) shutdown(ctx context.Context) error {
	m.quiet.Store(true)
	m.mu.Lock()
	m.closing = true // from now on commands are answered ErrUnavailable
	started := m.started
	m.mu.Unlock()
	for _, h := range m.served {
		if s, ok := h.(*Slices); ok {
			s.shutdown() // before leaving, so the next owners start them soon
		}
	}
	err := m.drain(ctx)
	switch {
	case !started:
	case m.providerJoined():
		m.deregister()
	default:
		m.abandonProvider()
	}
	m.closed.Store(true)
	close(m.done)
	m.stopRouting()
	if started {
		m.stopWorkers()
	}
	m.topo.sweeper.Wait()
	if started {
		m.stopProtoactor()
	} else {
		m.actors.Shutdown()
	}
	return err
}

// drain waits for the commands this member runs for others, then shuts the
// entity system down; if ctx ends first it closes the entity system, which
// ends those commands, and returns ctx's error.
func (m *Member) drain(ctx context.Context) error {
	drained := make(chan struct{})
	go func() { // owned: waited for below, or bounded by the entity Close
		m.srv.inflight.Wait()
		close(drained)
	}()
	select {
	case <-drained:
		return m.sys.Shutdown(ctx)
	case <-ctx.Done():
		_ = m.sys.Close()
		<-drained
		return ctx.Err()
	}
}
