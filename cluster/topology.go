package cluster

import (
	"slices"
	"sync"
	"sync/atomic"

	protocluster "github.com/asynkron/protoactor-go/cluster"
	"github.com/asynkron/protoactor-go/eventstream"
)

// topology is this member's view of the member list, kept current from
// protoactor-go's topology events, and the sweeper that acts on its changes
// (ownership.go).
type topology struct {
	view    atomic.Pointer[view]      // the member list as of the last topology event
	changed chan struct{}             // the topology changed, for the sweeper; buffered 1
	sub     *eventstream.Subscription // to the topology events, set by Start
	sweeper sync.WaitGroup            // the sweeper goroutine and the pause watcher (fence.go)
}

// watchTopology keeps m.topo.view current from Start on. When members
// leave, the requests waiting for their answers end at once (failLeft) and
// the sweeper looks for entities this member no longer owns.
func (m *Member) watchTopology() {
	m.topo.sub = m.actors.EventStream.Subscribe(func(ev any) {
		if t, ok := ev.(*protocluster.ClusterTopology); ok {
			m.topo.view.Store(newView(t.Members))
			m.failLeft(t.Left)
			select {
			case m.topo.changed <- struct{}{}:
			default:
			}
		}
	})
}

// view is an immutable snapshot of the members that serve each entity type.
// Ownership is rendezvous hashing exactly as protoactor-go's disthash identity
// lookup computes it (FNV-1a of the identity then the member address, highest
// score wins), without its shared, locked hasher on the hot path.
type view struct {
	byKind  map[string][]string // entity type -> member addresses, sorted
	addrs   map[string]struct{} // every member
	members int
}

func newView(members []*protocluster.Member) *view {
	v := &view{byKind: make(map[string][]string), addrs: make(map[string]struct{}), members: len(members)}
	for _, m := range members {
		v.addrs[m.Address()] = struct{}{}
		for _, k := range m.Kinds {
			v.byKind[k] = append(v.byKind[k], m.Address())
		}
	}
	for _, addrs := range v.byKind {
		slices.Sort(addrs)
	}
	return v
}

// owner returns the address of the member owning (kind, id), "" if none.
func (v *view) owner(kind, id string) string { return v.ownerSkipping(kind, id, nil) }

// ownerSkipping is owner without the members skip reports (nil: none): the
// member that will own (kind, id) once they have left.
func (v *view) ownerSkipping(kind, id string, skip func(addr string) bool) string {
	addrs := v.byKind[kind]
	if len(addrs) == 1 && skip == nil {
		return addrs[0]
	}
	best, bestScore := "", uint32(0)
	for _, a := range addrs {
		if skip != nil && skip(a) {
			continue
		}
		if s := score(id, a); s > bestScore || best == "" {
			best, bestScore = a, s
		}
	}
	return best
}

// score is FNV-1a (32 bit) of id followed by addr.
func score(id, addr string) uint32 {
	const prime = 16777619
	h := uint32(2166136261)
	for i := 0; i < len(id); i++ {
		h ^= uint32(id[i])
		h *= prime
	}
	for i := 0; i < len(addr); i++ {
		h ^= uint32(addr[i])
		h *= prime
	}
	return h
}

// has reports whether addr is a member serving any type.
func (v *view) has(addr string) bool {
	_, ok := v.addrs[addr]
	return ok
}
