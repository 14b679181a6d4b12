package cluster_test

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	testprovider "github.com/asynkron/protoactor-go/cluster/clusterproviders/test"

	"github.com/eventsourced-go/eventsourced/binarize"
	"github.com/eventsourced-go/eventsourced/cluster"
	"github.com/eventsourced-go/eventsourced/cluster/clusterpb"
	"github.com/eventsourced-go/eventsourced/entity"
	"github.com/eventsourced-go/eventsourced/eventlog"
)

// TestMemberLeavesUnderLoad: a member leaves while the others send commands;
// its entities move, no acknowledged event is lost, none is duplicated, and
// callers see no error, only bounded retries.
func TestMemberLeavesUnderLoad(t *testing.T) {
	log := eventlog.NewMemory()
	nodes := startNodes(t, 3, log)
	leaving := nodes[2]
	ids := make([]string, 60)
	for i := range ids {
		ids[i] = fmt.Sprintf("load-%d", i)
	}
	onLeaving := 0
	for _, id := range ids {
		if nodes[0].m.Owner("Tally", id) == leaving.m.Address() {
			onLeaving++
		}
	}
	if onLeaving == 0 {
		t.Fatal("no entity owned by the leaving member; pick other ids")
	}

	var (
		mu      sync.Mutex
		acked   = map[string]string{} // op -> entity id
		errs    []error
		maxWait time.Duration
		seq     atomic.Int64
	)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for w := range 8 {
		wg.Go(func() {
			n := nodes[w%2] // callers on the members that stay
			for {
				select {
				case <-stop:
					return
				default:
				}
				id := ids[rand.N(len(ids))]
				op := fmt.Sprintf("op-%d", seq.Add(1))
				start := time.Now()
				_, err := cluster.Ask(ctx, n.k.Ref(id), Add{Op: op, N: 1})
				took := time.Since(start)
				mu.Lock()
				maxWait = max(maxWait, took)
				if err != nil {
					errs = append(errs, fmt.Errorf("%s on %s: %w", op, id, err))
				} else {
					acked[op] = id
				}
				mu.Unlock()
			}
		})
	}
	time.Sleep(300 * time.Millisecond)
	shutdownCtx, cancelShutdown := context.WithTimeout(ctx, 10*time.Second)
	if err := leaving.m.Shutdown(shutdownCtx); err != nil {
		t.Errorf("Shutdown of the leaving member: %v", err)
	}
	cancelShutdown()
	time.Sleep(500 * time.Millisecond)
	close(stop)
	wg.Wait()

	for _, err := range errs {
		// Only a reply lost as the owner left is tolerated: it is reported
		// as ambiguous (ErrTimeout), never retried, and checked below to
		// be in the log at most once.
		if !errors.Is(err, cluster.ErrTimeout) {
			t.Error(err)
		} else {
			t.Log(err)
		}
	}
	if len(errs) > 2 {
		t.Errorf("%d ambiguous errors, want at most 2", len(errs))
	}
	ops := opsIn(t, log, ids)
	for op, id := range acked {
		if ops[op] != 1 {
			t.Errorf("acknowledged %s on %s appears %d times in the log, want 1", op, id, ops[op])
		}
	}
	for op, n := range ops {
		if n != 1 {
			t.Errorf("%s appears %d times in the log", op, n)
		}
	}
	// Every entity the leaving member owned now lives on another member and
	// has every acknowledged event.
	perEntity := map[string]int{}
	for _, id := range acked {
		perEntity[id]++
	}
	for _, id := range ids {
		got, err := cluster.Ask(ctx, nodes[0].k.Ref(id), Get{})
		if err != nil {
			t.Fatalf("Get %s: %v", id, err)
		}
		if got < perEntity[id] || got > perEntity[id]+len(errs) {
			t.Errorf("%s: sum %d, want %d acknowledged adds", id, got, perEntity[id])
		}
		if owner := nodes[0].m.Owner("Tally", id); owner == leaving.m.Address() {
			t.Errorf("%s still owned by the member that left", id)
		}
	}
	retries := nodes[0].m.Stats().Retries + nodes[1].m.Stats().Retries
	t.Logf("%d commands acknowledged, %d on entities of the leaving member; %d retries; slowest call %v", len(acked), onLeaving, retries, maxWait)
	if maxWait > 5*time.Second {
		t.Errorf("slowest call took %v: retries are not bounded well", maxWait)
	}
}

// TestEntitiesMoveToAJoiningMember: entities that a new member now owns are
// stopped on their old owner and continue on the new one.
func TestEntitiesMoveToAJoiningMember(t *testing.T) {
	log := eventlog.NewMemory()
	agent := testprovider.NewInMemAgent()
	a := newNode(t, "join", log, testprovider.NewTestProvider(agent))
	b := newNode(t, "join", log, testprovider.NewTestProvider(agent))
	nodes := []node{a, b}
	t.Cleanup(func() { shutdownAll(t, nodes) })
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := cluster.StartAll(ctx, a.m, b.m); err != nil {
		t.Fatal(err)
	}
	ids := make([]string, 30)
	for i := range ids {
		ids[i] = fmt.Sprintf("mv-%d", i)
		// Ask on the owner itself: no remote traffic yet, so no gRPC client
		// of a or b logs while c starts (see workarounds_probe.go: protoactor-go's
		// Remote.Start writes grpc's global logger).
		from := a
		if a.m.Owner("Tally", ids[i]) == b.m.Address() {
			from = b
		}
		if _, err := cluster.Ask(ctx, from.k.Ref(ids[i]), Add{Op: ids[i] + "-1", N: 1}); err != nil {
			t.Fatal(err)
		}
	}
	c := newNode(t, "join", log, testprovider.NewTestProvider(agent))
	nodes = append(nodes, c)
	if err := c.m.Start(ctx); err != nil {
		t.Fatal(err)
	}
	for _, n := range nodes {
		if err := n.m.WaitForMembers(ctx, 3); err != nil {
			t.Fatal(err)
		}
	}
	moved := 0
	for _, id := range ids {
		if a.m.Owner("Tally", id) == c.m.Address() {
			moved++
		}
	}
	if moved == 0 {
		t.Fatal("no entity moved to the new member; pick other ids")
	}
	deadline := time.Now().Add(5 * time.Second)
	for a.k.Local().Live()+b.k.Local().Live() != len(ids)-moved {
		if time.Now().After(deadline) {
			t.Fatalf("old members still run %d entities, want %d (the %d moved ones stopped)", a.k.Local().Live()+b.k.Local().Live(), len(ids)-moved, moved)
		}
		time.Sleep(10 * time.Millisecond)
	}
	for _, id := range ids {
		if got, err := cluster.Ask(ctx, b.k.Ref(id), Add{Op: id + "-2", N: 1}); err != nil || got != 2 {
			t.Fatalf("%s after the move: %d, %v; want 2", id, got, err)
		}
	}
	if got := c.k.Local().Live(); got != moved {
		t.Errorf("new member runs %d entities, want the %d it owns", got, moved)
	}
}

// TestStaleActivationStops: a member that still runs an entity another member
// has written since hits a conflict; its activation stops, nothing is
// written, and its next command recovers from the log.
func TestStaleActivationStops(t *testing.T) {
	log := eventlog.NewMemory()
	nodes := startNodes(t, 2, log)
	ctx := context.Background()
	var id string
	for i := 0; ; i++ {
		id = fmt.Sprintf("stale-%d", i)
		if nodes[0].m.Owner("Tally", id) == nodes[0].m.Address() {
			break
		}
	}
	owner, other := nodes[0], nodes[1]
	// other activates the entity outside the cluster (as a member with an old
	// view of the membership would), then the owner writes it.
	if _, err := cluster.Ask(ctx, owner.k.Ref(id), Add{Op: "o1", N: 1}); err != nil {
		t.Fatal(err)
	}
	stalePID := actor.NewPID(other.m.Address(), cluster.RouterName("Tally"))
	send := func(op string) *clusterpb.ReplyEnvelope {
		t.Helper()
		payload, _ := binarize.Value[Add](binarize.Msgpack).Encode(Add{Op: op, N: 1})
		env := &clusterpb.CommandEnvelope{EntityType: "Tally", EntityId: id, Command: "add", Payload: payload}
		res, err := owner.m.ActorSystem().Root.RequestFuture(stalePID, env, 5*time.Second).Result()
		if err != nil {
			t.Fatal(err)
		}
		return res.(*clusterpb.ReplyEnvelope)
	}
	if rep := send("s1"); rep.GetFailed() { // other's activation now has seq 2
		t.Fatalf("first direct command: %s", rep.GetErrorText())
	}
	if _, err := cluster.Ask(ctx, owner.k.Ref(id), Add{Op: "o2", N: 1}); err != nil { // owner is stale now...
		// ...and retried after its conflict: the log decides.
		t.Fatalf("owner after the other's write: %v", err)
	}
	if _, err := cluster.Ask(ctx, owner.k.Ref(id), Add{Op: "o3", N: 1}); err != nil {
		t.Fatal(err)
	}
	rep := send("s2") // other is stale: seq 2 in memory, 4 in the log
	if !rep.GetFailed() || !hasCode(rep.GetErrorCodes(), "eventlog.conflict") {
		t.Fatalf("stale activation: %+v, want a conflict", rep)
	}
	if got := other.k.Local().Live(); got != 0 {
		t.Errorf("stale activation still live (%d), want stopped", got)
	}
	if rep := send("s3"); rep.GetFailed() {
		t.Fatalf("after the conflict: %s, want the entity recovered from the log", rep.GetErrorText())
	}
	ops := opsIn(t, log, []string{id})
	for _, op := range []string{"o1", "s1", "o2", "o3", "s3"} {
		if ops[op] != 1 {
			t.Errorf("%s appears %d times, want 1", op, ops[op])
		}
	}
	if ops["s2"] != 0 {
		t.Errorf("the conflicting command was written")
	}
	// The owner's activation is stale again (s3); its next write conflicts,
	// stops it, and the retry recovers the log: no write is lost.
	if got, err := cluster.Ask(ctx, owner.k.Ref(id), Add{Op: "o4", N: 1}); err != nil || got != 6 {
		t.Errorf("owner after s3: sum %d, %v; want 6", got, err)
	}
}

// TestActivationsOfOthersAreStopped: an activation on a member that does not
// own the entity (as after a topology change) is stopped by the sweeper.
func TestActivationsOfOthersAreStopped(t *testing.T) {
	nodes := startNodes(t, 2, eventlog.NewMemory())
	var id string
	for i := 0; ; i++ {
		id = fmt.Sprintf("x-%d", i)
		if nodes[0].m.Owner("Tally", id) == nodes[0].m.Address() {
			break
		}
	}
	payload, _ := binarize.Value[Add](binarize.Msgpack).Encode(Add{Op: "a", N: 1})
	env := &clusterpb.CommandEnvelope{EntityType: "Tally", EntityId: id, Command: "add", Payload: payload}
	pid := actor.NewPID(nodes[1].m.Address(), cluster.RouterName("Tally"))
	if _, err := nodes[0].m.ActorSystem().Root.RequestFuture(pid, env, 5*time.Second).Result(); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for nodes[1].k.Local().Live() != 0 {
		if time.Now().After(deadline) {
			t.Fatal("activation on the member that does not own the entity was not stopped")
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func hasCode(codes []string, code string) bool {
	for _, c := range codes {
		if c == code {
			return true
		}
	}
	return false
}

// TestBadEnvelopes: an unknown type, an unknown command name or a payload
// that does not decode is answered with a clear error; the member goes on.
func TestBadEnvelopes(t *testing.T) {
	log := eventlog.NewMemory()
	nodes := startNodes(t, 2, log)
	from, to := nodes[0], nodes[1]
	pid := actor.NewPID(to.m.Address(), cluster.RouterName("Tally"))
	for _, tc := range []struct {
		name string
		env  *clusterpb.CommandEnvelope
		code string
	}{
		{"unknown command", &clusterpb.CommandEnvelope{EntityType: "Tally", EntityId: "x", Command: "explode"}, "cluster.unknown_command"},
		{"garbage payload", &clusterpb.CommandEnvelope{EntityType: "Tally", EntityId: "x", Command: "add", Payload: []byte{0xc1, 0xff, 0x00}}, "cluster.decode"},
		{"unknown type", &clusterpb.CommandEnvelope{EntityType: "Nope", EntityId: "x", Command: "add"}, "cluster.unknown_command"},
		{"empty id", &clusterpb.CommandEnvelope{EntityType: "Tally", Command: "get"}, "cluster.invalid"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			res, err := from.m.ActorSystem().Root.RequestFuture(pid, tc.env, 5*time.Second).Result()
			if err != nil {
				t.Fatal(err)
			}
			rep := res.(*clusterpb.ReplyEnvelope)
			if !rep.GetFailed() || !hasCode(rep.GetErrorCodes(), tc.code) || rep.GetErrorText() == "" {
				t.Errorf("reply %+v, want failed with code %s and a text", rep, tc.code)
			}
		})
	}
	// The same through protoactor-go's own cluster.Request (grain path).
	res, err := from.m.Cluster().Request("x", "Tally", &clusterpb.CommandEnvelope{EntityType: "Tally", EntityId: "x", Command: "explode"})
	if err != nil {
		t.Fatalf("cluster.Request: %v", err)
	}
	if rep := res.(*clusterpb.ReplyEnvelope); !hasCode(rep.GetErrorCodes(), "cluster.unknown_command") {
		t.Errorf("grain reply %+v, want unknown command", rep)
	}
	if _, err := cluster.Ask(context.Background(), from.k.Ref("x"), Add{Op: "after", N: 1}); err != nil {
		t.Errorf("member after bad envelopes: %v", err)
	}
}

func TestPassivation(t *testing.T) {
	log := eventlog.NewMemory()
	nodes := startNodes(t, 2, log, cluster.WithPassivateAfter(200*time.Millisecond))
	ctx := context.Background()
	for i := range 10 {
		if _, err := cluster.Ask(ctx, nodes[0].k.Ref(fmt.Sprint("p-", i)), Add{Op: fmt.Sprint("a-", i), N: 1}); err != nil {
			t.Fatal(err)
		}
	}
	live := func() int { return nodes[0].k.Local().Live() + nodes[1].k.Local().Live() }
	if got := live(); got != 10 {
		t.Fatalf("%d live, want 10", got)
	}
	deadline := time.Now().Add(5 * time.Second)
	for live() != 0 {
		if time.Now().After(deadline) {
			t.Fatalf("%d still live after idling, want 0", live())
		}
		time.Sleep(20 * time.Millisecond)
	}
	if got, err := cluster.Ask(ctx, nodes[1].k.Ref("p-3"), Add{Op: "b-3", N: 1}); err != nil || got != 2 {
		t.Fatalf("reactivated: %d, %v; want 2", got, err)
	}
}

// TestPassivationIsTheEntityRuntimes: WithPassivateAfter configures the
// entity runtime's own passivation, which stops idle entities however they
// were activated (here through Kind.Local, bypassing the cluster), and an
// entity.WithPassivateAfter given to Register overrides it for that type.
func TestPassivationIsTheEntityRuntimes(t *testing.T) {
	m, err := cluster.NewMember("passivate", eventlog.NewMemory(), testprovider.NewTestProvider(testprovider.NewInMemAgent()),
		cluster.WithPassivateAfter(100*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	defer m.Shutdown(context.Background())
	quick, err := cluster.Register(m, tallyType())
	if err != nil {
		t.Fatal(err)
	}
	slowType := tallyType()
	slowType.Name = "SlowTally"
	slow, err := cluster.Register(m, slowType, entity.WithPassivateAfter(time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	for i := range 5 {
		if _, err := entity.Ask(ctx, quick.Local().Ref(fmt.Sprint("q-", i)), Add{Op: "a", N: 1}); err != nil {
			t.Fatal(err)
		}
		if _, err := entity.Ask(ctx, slow.Local().Ref(fmt.Sprint("s-", i)), Add{Op: "a", N: 1}); err != nil {
			t.Fatal(err)
		}
	}
	deadline := time.Now().Add(5 * time.Second)
	for quick.Local().Live() != 0 {
		if time.Now().After(deadline) {
			t.Fatalf("%d entities still live after idling, want 0 (the member's WithPassivateAfter)", quick.Local().Live())
		}
		time.Sleep(10 * time.Millisecond)
	}
	if got := slow.Local().Live(); got != 5 {
		t.Errorf("%d entities of the type registered WithPassivateAfter(1h) live, want 5", got)
	}
}
