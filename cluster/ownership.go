package cluster

import (
	"errors"
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
	for id := range k.local.LiveIDs() {
		if v.owner(name, id) != self {
			k.local.Passivate(id)
		}
	}
}

// stale stops the local activation of id after a conflict: another member
// wrote the entity, so this one is stale. The next command here, if any,
// recovers it from the log.
func (k *Kind[S, E]) stale(id string, err error) {
	if errors.Is(err, eventlog.ErrConflict) {
		k.local.Passivate(id)
	}
}

// stopAll stops the idle local activations and returns how many are still
// live: busy ones, stopped once idle by a later call.
func (k *Kind[S, E]) stopAll() int {
	live := 0
	for id := range k.local.LiveIDs() {
		if !k.local.Passivate(id) {
			live++
		}
	}
	return live
}
