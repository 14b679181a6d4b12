package cluster

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/eventsourced-go/eventsourced/cluster/clusterpb"
	"github.com/eventsourced-go/eventsourced/projection"
)

// Slices is a sliced projection (projection.WithSlice) served by a
// cluster: each of its n slices runs on exactly one member at a time, the
// member that rendezvous hashing of the slice's name picks among the
// members that registered it, as entities are placed. When members join or
// leave, slices move: the member that no longer owns a slice stops it at
// its next look (after the topology change, or within a second), the new
// owner starts it at once. For the moment both may run it, the offset
// store's compare-and-set keeps one of them from committing: with
// pgprojection every event is still handled exactly once.
type Slices struct {
	m    *Member
	kind string // the cluster kind the members running the slices advertise
	name string
	n    int
	open func(i, n int) (*projection.Projection, error)
	tel  kindTelemetry

	mu      sync.Mutex // guards the fields below
	running map[int]*projection.Projection
	stopped bool
	ctx     context.Context // the slices' context, canceled at shutdown
	cancel  context.CancelFunc
}

// SlicesKind returns the name of the cluster kind under which members
// advertise that they run the slices of projection name.
func SlicesKind(name string) string { return "projection/" + name }

// sliceStopTimeout bounds how long a member waits for a slice it no longer
// owns, or at shutdown, to stop.
const sliceStopTimeout = 10 * time.Second

// RegisterSlices registers the projection name, split into n slices, with
// m, before [Member.Start]. open makes slice i of n, with
// projection.WithSlice(i, n) and the same log, types, offset store and
// handler on every member; it is called each time this member gains the
// slice. Every member that may run the slices registers them, with the
// same n. To change n, stop the cluster's slices and use
// projection.Reslice.
func RegisterSlices(m *Member, name string, n int, open func(i, n int) (*projection.Projection, error)) (*Slices, error) {
	switch {
	case m == nil:
		return nil, fmt.Errorf("%w: RegisterSlices with a nil Member", ErrInvalid)
	case name == "":
		return nil, fmt.Errorf("%w: RegisterSlices with an empty projection name", ErrInvalid)
	case n < 1 || n > projection.MaxSlices:
		return nil, fmt.Errorf("%w: RegisterSlices %q: %d slices, want 1 to %d", ErrInvalid, name, n, projection.MaxSlices)
	case open == nil:
		return nil, fmt.Errorf("%w: RegisterSlices %q with a nil open function", ErrInvalid, name)
	}
	ctx, cancel := context.WithCancel(context.Background())
	s := &Slices{m: m, kind: SlicesKind(name), name: name, n: n, open: open,
		running: map[int]*projection.Projection{}, ctx: ctx, cancel: cancel}
	s.tel.init(&m.tel, s.kind)
	if err := m.addKind(s.kind, s); err != nil {
		cancel()
		return nil, err
	}
	return s, nil
}

// Running returns the slices this member runs, in order.
func (s *Slices) Running() []int {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]int, 0, len(s.running))
	for i := range s.running {
		out = append(out, i)
	}
	slices.Sort(out)
	return out
}

// Slice returns slice i if this member runs it, nil otherwise: for its
// Status, WaitFor and dead letters.
func (s *Slices) Slice(i int) *projection.Projection {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.running[i]
}

// handle implements kindHandle: the slices take no commands.
func (s *Slices) handle(context.Context, *clusterpb.CommandEnvelope) *clusterpb.ReplyEnvelope {
	return failure(fmt.Errorf("%w: %s is a projection, not an entity type", ErrUnknownCommand, s.kind))
}

// stopAll implements kindHandle: slices have no activations to stop; the
// offset store's compare-and-set guards a slice run by a stale owner.
func (s *Slices) stopAll() int { return 0 }

// telemetry implements kindHandle.
func (s *Slices) telemetry() *kindTelemetry { return &s.tel }

// sweep implements kindHandle: it starts the slices self owns in v and
// stops those it does not.
func (s *Slices) sweep(v *view, self string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.stopped {
		return
	}
	for i := range s.n {
		owned := v.owner(s.kind, projection.SliceName(s.name, i, s.n)) == self
		p := s.running[i]
		switch {
		case owned && p == nil:
			p, err := s.start(i)
			if err != nil {
				s.m.cfg.logger.Error("cluster: start projection slice", "projection", s.name, "slice", i, "slices", s.n, "err", err)
				continue
			}
			s.running[i] = p
		case !owned && p != nil:
			s.stop(p)
			delete(s.running, i)
		}
	}
}

// start opens and starts slice i.
func (s *Slices) start(i int) (*projection.Projection, error) {
	p, err := s.open(i, s.n)
	if err != nil {
		return nil, err
	}
	if p == nil {
		return nil, fmt.Errorf("open returned a nil projection")
	}
	if want := projection.SliceName(s.name, i, s.n); p.Name() != want {
		return nil, fmt.Errorf("%w: open(%d, %d) made projection %q, want %q: give it projection.WithSlice(%d, %d) and the name %q", ErrInvalid, i, s.n, p.Name(), want, i, s.n, s.name)
	}
	if err := p.Start(s.ctx); err != nil {
		return nil, err
	}
	return p, nil
}

// stop stops p, bounded by sliceStopTimeout.
func (s *Slices) stop(p *projection.Projection) {
	ctx, cancel := context.WithTimeout(context.Background(), sliceStopTimeout)
	defer cancel()
	if err := p.Stop(ctx); err != nil {
		s.m.cfg.logger.Warn("cluster: stop projection slice", "projection", p.Name(), "err", err)
	}
}

// shutdown stops every slice this member runs; none starts again.
func (s *Slices) shutdown() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.stopped = true
	s.cancel()
	for i, p := range s.running {
		s.stop(p)
		delete(s.running, i)
	}
}
