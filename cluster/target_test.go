package cluster_test

import (
	"context"
	"errors"
	"strings"
	"testing"

	testprovider "github.com/asynkron/protoactor-go/cluster/clusterproviders/test"

	"github.com/eventsourced-go/eventsourced/binarize"
	"github.com/eventsourced-go/eventsourced/cluster"
	"github.com/eventsourced-go/eventsourced/entity"
	"github.com/eventsourced-go/eventsourced/eventlog"
)

// Peek reads the sum.
type Peek struct{}

func (Peek) Handle(tx *entity.Tx[Tally, TallyEvent]) (int, error) { return tx.State().Sum, nil }

// addVia is calling code written once against entity.Target.
func addVia(ctx context.Context, t entity.Target[Tally, TallyEvent], n int) (int, error) {
	return entity.AskTarget(ctx, t, Add{N: n})
}

// TestOneCallSurface: the same calling code sends commands to a local
// entity and to a cluster's, whichever member owns it.
func TestOneCallSurface(t *testing.T) {
	ctx := context.Background()
	log := eventlog.NewMemory()
	nodes := startNodes(t, 3, log)
	// Entities owned by each member, reached from member 0.
	for i := range 40 {
		id := "t-" + strings.Repeat("x", i%7) + string(rune('a'+i%26))
		ref := nodes[0].k.Ref(id)
		if ref.Type() != "Tally" || ref.ID() != id {
			t.Fatalf("cluster.Ref %s: Type %q ID %q", id, ref.Type(), ref.ID())
		}
		before, err := cluster.Ask(ctx, ref, Get{})
		if err != nil {
			t.Fatal(err)
		}
		got, err := addVia(ctx, ref, 2)
		if err != nil || got != before+2 {
			t.Fatalf("AskTarget through cluster.Ref %s: %d, %v; want %d", id, got, err, before+2)
		}
	}
	// The same code on a local entity system.
	sys, err := entity.NewSystem(eventlog.NewMemory(), entity.WithoutTelemetry())
	if err != nil {
		t.Fatal(err)
	}
	defer sys.Close()
	local, err := entity.Register(sys, tallyType())
	if err != nil {
		t.Fatal(err)
	}
	if got, err := addVia(ctx, local.Ref("t-a"), 5); err != nil || got != 5 {
		t.Fatalf("AskTarget through entity.Ref: %d, %v; want 5", got, err)
	}
	// A command type the cluster kind does not know fails as cluster.Ask does.
	_, err = entity.AskTarget(ctx, entity.Target[Tally, TallyEvent](nodes[0].k.Ref("t-a")), Unregistered{})
	if !errors.Is(err, cluster.ErrUnknownCommand) {
		t.Fatalf("an unregistered command through AskTarget: %v; want ErrUnknownCommand", err)
	}
}

// TestCommandNameFromType: a command registered without a name goes by
// its type's name.
func TestCommandNameFromType(t *testing.T) {
	nd := newNode(t, "names", eventlog.NewMemory(), testprovider.NewTestProvider(testprovider.NewInMemAgent()))
	t.Cleanup(func() { nd.m.Shutdown(context.Background()) })
	err := cluster.RegisterCommand(nd.k, "", binarize.Value[Get](binarize.Msgpack), binarize.Value[int](binarize.Msgpack))
	const want = `cluster: invalid argument: command type cluster_test.Get of Tally is already registered as "get"`
	if err == nil || err.Error() != want {
		t.Fatalf("RegisterCommand of Get again without a name: %v\nwant %s", err, want)
	}
	err = cluster.RegisterCommand(nd.k, "", binarize.Value[Unregistered](binarize.Msgpack), binarize.Value[int](binarize.Msgpack))
	if err != nil {
		t.Fatal(err)
	}
	err = cluster.RegisterCommand(nd.k, "Unregistered", binarize.Value[Peek](binarize.Msgpack), binarize.Value[int](binarize.Msgpack))
	const wantDup = `cluster: invalid argument: command "Unregistered" of Tally is already registered`
	if err == nil || err.Error() != wantDup {
		t.Fatalf("a second command under the derived name: %v\nwant %s", err, wantDup)
	}
}
