package cluster

import (
	"time"

	"github.com/asynkron/protoactor-go/actor"

	"github.com/eventsourced-go/eventsourced/cluster/clusterpb"
)

// RouterName exposes the name of the actor that takes a type's envelopes on
// every member, for tests that address one member directly.
func RouterName(kind string) string { return routerName(kind) }

// Score exposes the rendezvous score, for comparison with protoactor-go's.
func Score(id, addr string) uint32 { return score(id, addr) }

// PipeQueueLen exposes how many commands wait in m's pipe to owner for
// entity type kind.
func PipeQueueLen(m *Member, owner, kind string) int {
	p := m.pipe(owner, kind)
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.queue)
}

// SendUnanswered sends a command as if to owner, but to an actor of m that
// never answers, from a goroutine m counts like the pipes' senders, and
// returns the outcome.
func SendUnanswered(m *Member, owner string, timeout time.Duration) <-chan error {
	pid := m.actors.Root.Spawn(actor.PropsFromFunc(func(actor.Context) {}))
	res := make(chan error, 1)
	m.route.flushes.Add(1)
	go func() {
		defer m.route.flushes.Done()
		_, err := m.send(owner, pid, []*clusterpb.CommandEnvelope{{EntityType: "Tally", EntityId: "x", Command: "add"}}, timeout)
		res <- err
	}()
	return res
}

// Waiting exposes how many of m's requests wait for a reply.
func Waiting(m *Member) int {
	n := 0
	m.route.waiting.Range(func(any, any) bool { n++; return true })
	return n
}

// CodesOf returns the registered codes err matches.
func CodesOf(err error) []string { return codesOf(err) }

// FenceOpen runs the pause fence's hot-path check of m.
func FenceOpen(m *Member) bool { return m.fence.open() }
