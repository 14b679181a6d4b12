package cluster_test

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	protocluster "github.com/asynkron/protoactor-go/cluster"
	testprovider "github.com/asynkron/protoactor-go/cluster/clusterproviders/test"

	"github.com/eventsourced-go/eventsourced/binarize"
	"github.com/eventsourced-go/eventsourced/cluster"
	"github.com/eventsourced-go/eventsourced/entity"
	"github.com/eventsourced-go/eventsourced/eventlog"
)

// The test domain: a tally whose events record the operation id, so the log
// shows whether any command was applied twice.

type Tally struct{ Sum int }

type TallyEvent interface{ tallyEvent() }

type Added struct {
	Op string
	N  int
}

func (Added) tallyEvent() {}

var ErrNegative = errors.New("tally: negative amount")

func init() {
	if err := cluster.RegisterError("tally.negative", ErrNegative); err != nil {
		panic(err)
	}
}

// Add persists Added and replies with the new sum. N < 0 is rejected with
// ErrNegative; N == -1000 with an unregistered error.
type Add struct {
	Op string
	N  int
}

func (c Add) Handle(tx *entity.Tx[Tally, TallyEvent]) (int, error) {
	switch {
	case c.N == -1000:
		return 0, errors.New("tally: something unregistered")
	case c.N < 0:
		return 0, fmt.Errorf("add %d: %w", c.N, ErrNegative)
	}
	return tx.Persist(Added{Op: c.Op, N: c.N}).Sum, nil
}

// Get replies with the sum.
type Get struct{}

func (Get) Handle(tx *entity.Tx[Tally, TallyEvent]) (int, error) { return tx.State().Sum, nil }

// Unregistered is never registered with RegisterCommand.
type Unregistered struct{}

func (Unregistered) Handle(tx *entity.Tx[Tally, TallyEvent]) (int, error) { return 0, nil }

func tallyType() entity.Type[Tally, TallyEvent] {
	events := binarize.NewRegistry[TallyEvent](binarize.Msgpack)
	binarize.MustRegister[Added](events, "Added")
	return entity.Type[Tally, TallyEvent]{
		Name: "Tally",
		Apply: func(s Tally, e TallyEvent) Tally {
			if a, ok := e.(Added); ok {
				s.Sum += a.N
			}
			return s
		},
		Events: events,
	}
}

// node is one member with its Tally kind.
type node struct {
	m *cluster.Member
	k *cluster.Kind[Tally, TallyEvent]
}

func newNode(t testing.TB, name string, log eventlog.Log, provider protocluster.ClusterProvider, opts ...cluster.Option) node {
	t.Helper()
	m, err := cluster.NewMember(name, log, provider, opts...)
	if err != nil {
		t.Fatalf("NewMember: %v", err)
	}
	k, err := cluster.Register(m, tallyType())
	if err != nil {
		t.Fatalf("Register: %v", err)
	}
	if err := cluster.RegisterCommand(k, "add", binarize.Value[Add](binarize.Msgpack), binarize.Value[int](binarize.Msgpack)); err != nil {
		t.Fatal(err)
	}
	if err := cluster.RegisterCommand(k, "get", binarize.Value[Get](binarize.Msgpack), binarize.Value[int](binarize.Msgpack)); err != nil {
		t.Fatal(err)
	}
	return node{m: m, k: k}
}

// startNodes starts n members sharing log over the in-process test provider.
func startNodes(t testing.TB, n int, log eventlog.Log, opts ...cluster.Option) []node {
	t.Helper()
	agent := testprovider.NewInMemAgent()
	nodes := make([]node, n)
	members := make([]*cluster.Member, n)
	for i := range nodes {
		nodes[i] = newNode(t, "test", log, testprovider.NewTestProvider(agent), opts...)
		members[i] = nodes[i].m
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := cluster.StartAll(ctx, members...); err != nil {
		t.Fatalf("StartAll: %v", err)
	}
	t.Cleanup(func() { shutdownAll(t, nodes) })
	return nodes
}

// shutdownAll shuts the members down one at a time: the test provider calls
// every member's member list, including members that left, from the
// goroutine of whoever deregisters, so concurrent shutdowns race inside
// protoactor-go.
func shutdownAll(t testing.TB, nodes []node) {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	for _, n := range nodes {
		if err := n.m.Shutdown(ctx); err != nil && !errors.Is(err, cluster.ErrClosed) {
			t.Errorf("Shutdown %s: %v", n.m.Address(), err)
		}
	}
}

// opsIn returns how many times each Op appears in the log for type Tally.
func opsIn(t testing.TB, log eventlog.Log, ids []string) map[string]int {
	t.Helper()
	ops := make(map[string]int)
	for _, id := range ids {
		for rec, err := range log.ReadEntity(context.Background(), "Tally", id, 1) {
			if err != nil {
				t.Fatal(err)
			}
			e, err := tallyType().Events.Decode(rec.Name, rec.Revision, rec.Data)
			if err != nil {
				t.Fatal(err)
			}
			ops[e.(Added).Op]++
		}
	}
	return ops
}
