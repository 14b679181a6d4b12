package cluster

import (
	"errors"
	"sync"
	"sync/atomic"
	"time"

	"github.com/eventsourced-go/eventsourced/eventlog"
)

// Ownership: after a topology change, or when another member's stale view
// sent it a command, a member may run entities it does not own. The log
// keeps that safe (a stale activation's append conflicts), and the sweeper
// keeps it short: it stops the local activations of entities this member no
// longer owns. Idle entities are the entity runtime's business
// (entity.WithPassivateAfter, see WithPassivateAfter): nothing here tracks
// time per entity.

// sweepEvery is how often the sweeper looks, besides after every topology
// change: for activations another member's command started here, and for
// entities that were busy when it last looked.
const sweepEvery = time.Second

// sweeper stops local entities this member no longer owns, after every
// topology change and every sweepEvery.
func (m *Member) sweeper() {
	tick := time.NewTicker(sweepEvery)
	defer tick.Stop()
	for {
		select {
		case <-m.done:
			return
		case <-m.topo.changed:
		case <-tick.C:
		}
		v := m.topo.view.Load()
		for _, h := range m.served {
			h.sweep(v, m.self)
		}
	}
}

// sweep passivates the local entities that self does not own in v; one that
// is busy is looked at again next time.
func (k *Kind[S, E]) sweep(v *view, self string) {
	name := k.Name()
	k.ids.each(func(id string) {
		if v.owner(name, id) == self {
			return
		}
		k.ids.remove(id)
		if !k.local.Passivate(id) {
			k.ids.add(id) // busy: try again next sweep
		}
	})
	k.ids.prune(k.local.Live())
}

// stale stops the local activation of id after a conflict: another member
// wrote the entity, so this one is stale. The next command here, if any,
// recovers it from the log.
func (k *Kind[S, E]) stale(id string, err error) {
	if errors.Is(err, eventlog.ErrConflict) {
		k.local.Passivate(id)
	}
}

// servedIDs is the set of the ids of one entity type that ran a command on
// this member: the entities that may be live here, for the sweeper. Package
// entity does not list its live entities, hence this set; it holds no
// times.
//
// An entity the runtime passivated (idle) leaves its id behind, so the set
// is pruned: when it holds more than twice as many ids as the type has live
// entities, plus pruneFloor, it forgets the ids that ran no command since
// the previous pruning (it keeps two generations). An id forgotten while
// its entity is live only means that a move does not stop that entity:
// it stops on its own when idle, or at its first conflict. Ids are added
// by many goroutines (add); each, remove and prune run on the sweeper's.
type servedIDs struct {
	cur  atomic.Pointer[idGen] // where add puts ids
	prev *idGen                // the generation before cur; nil at first
}

// pruneFloor is how many ids beyond twice the live entities servedIDs keeps
// before it prunes.
const pruneFloor = 1024

// idGen is one generation of a servedIDs.
type idGen struct {
	ids sync.Map     // id -> struct{}
	n   atomic.Int64 // entries in ids
}

func newServedIDs() *servedIDs {
	s := &servedIDs{}
	s.cur.Store(new(idGen))
	return s
}

// add records id. It costs one map lookup when id is known already.
func (s *servedIDs) add(id string) {
	g := s.cur.Load()
	if _, ok := g.ids.Load(id); ok {
		return
	}
	if _, loaded := g.ids.LoadOrStore(id, struct{}{}); !loaded {
		g.n.Add(1)
	}
}

// remove forgets id.
func (s *servedIDs) remove(id string) {
	for _, g := range s.gens() {
		if g == nil {
			continue
		}
		if _, ok := g.ids.LoadAndDelete(id); ok {
			g.n.Add(-1)
		}
	}
}

// each calls f with every id; an id in both generations may come twice.
func (s *servedIDs) each(f func(id string)) {
	for _, g := range s.gens() {
		if g == nil {
			continue
		}
		g.ids.Range(func(k, _ any) bool {
			f(k.(string))
			return true
		})
	}
}

// prune starts a new generation, dropping the oldest, if the set holds
// more than twice live ids plus pruneFloor.
func (s *servedIDs) prune(live int) {
	if s.len() <= 2*int64(live)+pruneFloor {
		return
	}
	s.prev = s.cur.Load()
	s.cur.Store(new(idGen))
}

// len returns how many ids the set holds, counting twice those in both
// generations.
func (s *servedIDs) len() int64 {
	n := int64(0)
	for _, g := range s.gens() {
		if g != nil {
			n += g.n.Load()
		}
	}
	return n
}

// gens returns the generations, oldest first; the first is nil until the
// first pruning.
func (s *servedIDs) gens() [2]*idGen { return [2]*idGen{s.prev, s.cur.Load()} }
