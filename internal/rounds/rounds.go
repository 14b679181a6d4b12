package rounds

import (
	"sync/atomic"
)

// sealed is the bit of Group.state set when the group is sealed; the bits
// below it count the members that have not left.
const sealed = 1 << 62

// Group is the channel shared by the appends that joined between two
// seals.
type Group struct {
	ch chan struct{}
	// state is the members not yet left, plus sealed once sealed. It is
	// written by every caller that joins and every answer that leaves:
	// it has its cache line to itself.
	_     [56]byte
	state atomic.Int64
	_     [56]byte
}

func newGroup() *Group { return &Group{ch: make(chan struct{})} }

// Done returns the channel closed once g is sealed and every member has
// left.
func (g *Group) Done() <-chan struct{} { return g.ch }

// Leave records that one member's append was answered: its callback has
// returned. Each member leaves exactly once.
func (g *Group) Leave() {
	if g.state.Add(-1) == sealed {
		close(g.ch)
	}
}

// Rounds hands out the groups of one queue. Its zero value is not usable:
// see [New].
type Rounds struct {
	cur atomic.Pointer[Group]
}

// New returns the Rounds of a queue.
func New() *Rounds {
	r := new(Rounds)
	r.cur.Store(newGroup())
	return r
}

// Join adds a member to the current group and returns it. Call it before
// the member's append is queued, and Leave the group once it is answered,
// or at once if it never was queued.
func (r *Rounds) Join() *Group {
	for {
		g := r.cur.Load()
		s := g.state.Load()
		if s&sealed == 0 && g.state.CompareAndSwap(s, s+1) {
			return g
		}
		// Sealed since it was loaded: the next is current already.
	}
}

// Seal closes the current group to new members, who join a new one. A
// worker calls it after it took appends from the queue, before it answers
// any of them. The group's channel closes once its members have left,
// at once if none is left to answer. A round with no member costs a new
// group, whose channel is closed at once.
func (r *Rounds) Seal() {
	old := r.cur.Swap(newGroup())
	if old.state.Add(sealed) == sealed {
		close(old.ch)
	}
}

// Closed is a channel closed from the start, for an append answered
// before it joined any group.
var Closed = func() <-chan struct{} {
	ch := make(chan struct{})
	close(ch)
	return ch
}()
