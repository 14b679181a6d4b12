package cluster

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/asynkron/protoactor-go/actor"

	"github.com/eventsourced-go/eventsourced/cluster/clusterpb"
)

// The pause fence. A member whose process stops running for a while (SIGSTOP,
// a VM or container freeze, swapping) may be dropped by the others meanwhile:
// they take over its entities and write them. When it runs again nothing
// tells it: its member list did not change while it was stopped, and
// protoactor-go never admits a dropped member again (its block list), so the
// others never route to it again either. Its writes are safe (they conflict
// in the log), but its activations answer reads from memory the others have
// made stale, and its recovered activations write between the others'
// writes, which makes theirs stale too. Membership alone cannot get this
// right; the member has to notice that it was stopped.
//
// A watcher goroutine ticks every pauseTick and keeps the monotonic time of
// its last tick. Before a command runs here (the caller's own member owns
// the entity, or another member sent it), one atomic load and a clock read
// check that the last tick is recent. A gap longer than the threshold, seen
// by the watcher or by a command, fences the member: commands about to run
// here wait, every local activation is stopped (the next command recovers
// from the log), and after the threshold again, once the health checks that
// were waiting on this member when it stopped have had their answer, the
// member asks every other member in its list whether it still lists it. If
// all do, the fence lifts and the waiting commands run. If one does not,
// this member was dropped for good: it stays fenced, answers every command
// it would run with ErrFenced, and logs that it must be restarted.

// pauseTick is how often the pause watcher ticks.
const pauseTick = 50 * time.Millisecond

// memberProbe is the command name of the question "do you list the member at
// EntityId?", asked in a CommandEnvelope with no entity type; the answer is
// a ReplyEnvelope with payload "yes" or "no".
const memberProbe = "eventsourced.cluster.member?"

// probeTimeout bounds one probe of another member.
const probeTimeout = time.Second

// Fence states.
const (
	fenceOpen    int32 = iota // serving
	fenceUp                   // a pause was seen: commands wait
	fenceDropped              // the others dropped this member: commands fail
)

// pauseFence is the state of the pause fence; see above.
type pauseFence struct {
	threshold time.Duration // 0: off
	base      time.Time     // the origin of now, with a monotonic reading
	lastTick  atomic.Int64  // now() at the watcher's last tick
	state     atomic.Int32  // fenceOpen, fenceUp or fenceDropped
	tripped   chan struct{} // a command saw a gap before the watcher; buffered 1
	fenced    atomic.Int64  // fences raised, for Stats

	mu       sync.Mutex    // guards resolved and the transitions out of fenceOpen
	resolved chan struct{} // closed when the current fence lifts or expires
	pause    time.Duration // the gap that raised the current fence, for errors
}

func newPauseFence(threshold time.Duration) pauseFence {
	return pauseFence{threshold: threshold, base: time.Now(), tripped: make(chan struct{}, 1)}
}

// now is the monotonic time since base.
func (f *pauseFence) now() int64 { return int64(time.Since(f.base)) }

// open reports whether commands may run here now: the hot path.
func (f *pauseFence) open() bool {
	return f.threshold == 0 || (f.state.Load() == fenceOpen && f.now()-f.lastTick.Load() <= int64(f.threshold))
}

// raise fences the member unless it is already, and returns the channel
// closed when the fence is resolved.
func (f *pauseFence) raise(pause time.Duration) chan struct{} {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.state.Load() == fenceOpen {
		f.state.Store(fenceUp)
		f.resolved = make(chan struct{})
		f.pause = pause
		f.fenced.Add(1)
		select {
		case f.tripped <- struct{}{}:
		default:
		}
	}
	return f.resolved
}

// unfenced returns nil once commands may run here: at once unless the member
// is fenced, else when the fence lifts. It returns an error matching
// ErrFenced if the member was dropped, ctx's error if ctx ends first, and
// ErrClosed if the member shuts down.
func (m *Member) unfenced(ctx context.Context) error {
	f := &m.fence
	for !f.open() {
		if f.state.Load() == fenceDropped {
			f.mu.Lock()
			pause := f.pause
			f.mu.Unlock()
			return fmt.Errorf("%w: %s stopped running for %v and the other members dropped it; restart it", ErrFenced, m.self, pause.Round(time.Millisecond))
		}
		resolved := f.raise(time.Duration(f.now() - f.lastTick.Load()))
		select {
		case <-resolved:
		case <-ctx.Done():
			return ctx.Err()
		case <-m.done:
			return ErrClosed
		}
	}
	return nil
}

// watchPauses is the watcher: it ticks, and resolves the fences raised by
// the gaps it or a command sees. Start starts it; Shutdown waits for it.
func (m *Member) watchPauses() {
	f := &m.fence
	tick := time.NewTicker(pauseTick)
	defer tick.Stop()
	for {
		select {
		case <-m.done:
			return
		case <-tick.C:
		case <-f.tripped:
		}
		if f.state.Load() == fenceDropped {
			continue
		}
		now := f.now()
		gap := time.Duration(now - f.lastTick.Load())
		if f.state.Load() == fenceOpen && gap <= f.threshold {
			f.lastTick.Store(now)
			continue
		}
		resolved := f.raise(gap)
		f.mu.Lock()
		gap = f.pause
		f.mu.Unlock()
		m.cfg.logger.Warn("cluster: this member stopped running for a while; fencing it until the others confirm it is a member", "member", m.self, "pause", gap.Round(time.Millisecond))
		dropped, ok := m.resolveFence()
		if !ok {
			return // shutting down; admit returns ErrClosed
		}
		f.mu.Lock()
		if dropped {
			f.state.Store(fenceDropped)
			m.cfg.logger.Error("cluster: the other members dropped this member while it was not running and will not admit it again; it answers every command it would run with ErrFenced: restart it", "member", m.self, "pause", f.pause.Round(time.Millisecond))
		} else {
			f.lastTick.Store(f.now()) // before the state: a command that sees it open sees a fresh tick
			f.state.Store(fenceOpen)
		}
		close(resolved)
		f.mu.Unlock()
	}
}

// resolveFence stops every local activation, waits the threshold for the
// health checks that waited on this member to settle, then asks the other
// members whether they still list this one until each answers: dropped
// reports whether one does not. ok is false if the member shuts down.
func (m *Member) resolveFence() (dropped, ok bool) {
	wait := func(d time.Duration) bool {
		t := time.NewTimer(d)
		defer t.Stop()
		select {
		case <-m.done:
			return false
		case <-t.C:
			return true
		}
	}
	settle := time.Now().Add(m.fence.threshold)
	for {
		live := 0
		for _, h := range m.served {
			live += h.stopAll()
		}
		if live == 0 && !time.Now().Before(settle) {
			break
		}
		if !wait(10 * time.Millisecond) {
			return false, false
		}
	}
	for {
		answers := m.probeMembers()
		confirmed := true
		for _, a := range answers {
			switch a {
			case probeNo:
				return true, true
			case probeUnknown:
				confirmed = false
			}
		}
		if confirmed {
			return false, true
		}
		if !wait(100 * time.Millisecond) {
			return false, false
		}
	}
}

// Probe answers.
const (
	probeUnknown = iota // no answer
	probeYes
	probeNo
)

// probeMembers asks every other member in this member's list whether it
// lists this member, concurrently, and returns their answers.
func (m *Member) probeMembers() []int {
	v := m.topo.view.Load()
	var router string
	for name := range m.served {
		router = routerName(name)
		break
	}
	var peers []string
	for a := range v.addrs {
		if a != m.self {
			peers = append(peers, a)
		}
	}
	answers := make([]int, len(peers))
	var wg sync.WaitGroup
	for i, addr := range peers {
		wg.Go(func() {
			env := &clusterpb.CommandEnvelope{Command: memberProbe, EntityId: m.self}
			res, err := m.actors.Root.RequestFuture(actor.NewPID(addr, router), env, probeTimeout).Result()
			if err != nil {
				return
			}
			if r, ok := res.(*clusterpb.ReplyEnvelope); ok && !r.GetFailed() {
				switch string(r.GetPayload()) {
				case "yes":
					answers[i] = probeYes
				case "no":
					answers[i] = probeNo
				}
			}
		})
	}
	wg.Wait()
	return answers
}

// answerProbe answers another member's memberProbe.
func (m *Member) answerProbe(env *clusterpb.CommandEnvelope) *clusterpb.ReplyEnvelope {
	if m.topo.view.Load().has(env.GetEntityId()) {
		return &clusterpb.ReplyEnvelope{Payload: []byte("yes")}
	}
	return &clusterpb.ReplyEnvelope{Payload: []byte("no")}
}

// isProbe reports whether env is a memberProbe.
func isProbe(env *clusterpb.CommandEnvelope) bool {
	return env.GetEntityType() == "" && env.GetCommand() == memberProbe
}
