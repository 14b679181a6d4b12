package cluster_test

import (
	"context"
	"testing"
	"time"

	testprovider "github.com/asynkron/protoactor-go/cluster/clusterproviders/test"

	"github.com/eventsourced-go/eventsourced/binarize"
	"github.com/eventsourced-go/eventsourced/cluster"
	"github.com/eventsourced-go/eventsourced/entity"
	"github.com/eventsourced-go/eventsourced/eventlog"
)

// A command's idempotency key reaches the owner on another member: a
// re-send through any member is answered from the first outcome, and the
// key is recorded once, on the command's event, not as metadata of its own.
func TestIdempotencyKeyCrossesMembers(t *testing.T) {
	log := eventlog.NewMemory()
	agent := testprovider.NewInMemAgent()
	nodes := make([]node, 2)
	members := make([]*cluster.Member, 2)
	for i := range nodes {
		m, err := cluster.NewMember("test", log, testprovider.NewTestProvider(agent))
		if err != nil {
			t.Fatal(err)
		}
		k, err := cluster.Register(m, tallyType(), entity.WithIdempotency())
		if err != nil {
			t.Fatal(err)
		}
		if err := cluster.RegisterCommand(k, "add", binarize.Value[Add](binarize.Msgpack), binarize.Value[int](binarize.Msgpack)); err != nil {
			t.Fatal(err)
		}
		nodes[i], members[i] = node{m: m, k: k}, m
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := cluster.StartAll(ctx, members...); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { shutdownAll(t, nodes) })

	// An entity the second member owns, asked from the first.
	var id string
	for i := 0; ; i++ {
		id = "t-" + string(rune('a'+i%26)) + string(rune('a'+i/26))
		if nodes[0].m.Owner("Tally", id) == nodes[1].m.Address() {
			break
		}
	}
	keyed := entity.WithIdempotencyKey(ctx, "k")
	for i, n := range []node{nodes[0], nodes[0], nodes[1]} {
		got, err := cluster.Ask(keyed, n.k.Ref(id), Add{Op: "once", N: 5})
		if err != nil || got != 5 {
			t.Fatalf("send %d: %d, %v; want the first reply 5", i, got, err)
		}
		if _, err := cluster.Ask(ctx, n.k.Ref(id), Add{Op: "other", N: 1}); err != nil {
			t.Fatal(err)
		}
	}
	if got := opsIn(t, log, []string{id}); got["once"] != 1 || got["other"] != 3 {
		t.Errorf("log ops %v, want once applied once and other three times", got)
	}
	var keys []string
	for rec, err := range log.ReadEntity(ctx, "Tally", id, 1) {
		if err != nil {
			t.Fatal(err)
		}
		if k, ok := rec.Metadata[entity.IdempotencyKeyMetadata]; ok {
			keys = append(keys, k)
		}
	}
	if len(keys) != 1 || keys[0] != "k" {
		t.Errorf("events record keys %q, want one, k", keys)
	}
}
