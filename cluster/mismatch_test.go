package cluster_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	testprovider "github.com/asynkron/protoactor-go/cluster/clusterproviders/test"

	"github.com/eventsourced-go/eventsourced/binarize"
	"github.com/eventsourced-go/eventsourced/cluster"
	"github.com/eventsourced-go/eventsourced/entity"
	"github.com/eventsourced-go/eventsourced/eventlog"
)

// AddText is an older release's "add": the same name, another payload.
type AddText struct {
	Op string
	N  string
}

func (c AddText) Handle(tx *entity.Tx[Tally, TallyEvent]) (int, error) {
	return tx.Persist(Added{Op: c.Op, N: len(c.N)}).Sum, nil
}

// TestMembersWithDifferentRegistrations: a member that registers other
// commands than its peers (a release behind, a forgotten RegisterCommand)
// answers the commands it does not know with an error naming the command,
// the type, itself and what it registers, and keeps serving; one that does
// not register a type is never sent its entities.
func TestMembersWithDifferentRegistrations(t *testing.T) {
	ctx := context.Background()
	log := eventlog.NewMemory()
	agent := testprovider.NewInMemAgent()
	full := newNode(t, "mismatch", log, testprovider.NewTestProvider(agent)) // add, get

	// behind registers Tally with "add" of another payload type and no "get".
	behindM, err := cluster.NewMember("mismatch", log, testprovider.NewTestProvider(agent))
	if err != nil {
		t.Fatal(err)
	}
	behindK, err := cluster.Register(behindM, tallyType())
	if err != nil {
		t.Fatal(err)
	}
	if err := cluster.RegisterCommand(behindK, "add", binarize.Value[AddText](binarize.Msgpack), binarize.Value[int](binarize.Msgpack)); err != nil {
		t.Fatal(err)
	}
	// other serves no Tally at all.
	otherM, err := cluster.NewMember("mismatch", log, testprovider.NewTestProvider(agent))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := cluster.Register(otherM, entity.Type[Tally, TallyEvent]{Name: "Other", Apply: tallyType().Apply, Events: tallyType().Events}); err != nil {
		t.Fatal(err)
	}
	startCtx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	if err := cluster.StartAll(startCtx, full.m, behindM, otherM); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { shutdownAll(t, []node{full, {m: behindM, k: behindK}, {m: otherM}}) })

	var onBehind, onFull string
	for i := 0; onBehind == "" || onFull == ""; i++ {
		id := fmt.Sprintf("mm-%d", i)
		switch full.m.Owner("Tally", id) {
		case behindM.Address():
			onBehind = id
		case full.m.Address():
			onFull = id
		case otherM.Address():
			t.Fatalf("%s is owned by %s, which does not serve Tally", id, otherM.Address())
		}
	}

	// A command the owner does not register.
	_, err = cluster.Ask(ctx, full.k.Ref(onBehind), Get{})
	want := fmt.Sprintf(`cluster: unknown command: "get" is not a registered command of Tally on member %s, which registers "add"; every member serving Tally must register the same commands`, behindM.Address())
	if !errors.Is(err, cluster.ErrUnknownCommand) || err.Error() != want {
		t.Fatalf("get on %s owned by the member without it:\n got %v\nwant %s (matching ErrUnknownCommand)", onBehind, err, want)
	}
	// A command whose payload the owner decodes as another type.
	_, err = cluster.Ask(ctx, full.k.Ref(onBehind), Add{Op: "a1", N: 1})
	wantDecode := fmt.Sprintf(`cluster: decode failed: command "add" of Tally/%s: `, onBehind)
	if !errors.Is(err, cluster.ErrDecode) || !strings.HasPrefix(err.Error(), wantDecode) {
		t.Fatalf("add with another payload type on %s:\n got %v\nwant an error matching ErrDecode containing\n     %s", onBehind, err, wantDecode)
	}
	// The caller's own type check: behind cannot send a Get at all.
	_, err = cluster.Ask(ctx, behindK.Ref(onFull), Get{})
	wantLocal := `cluster: unknown command: command type cluster_test.Get of Tally is not registered (RegisterCommand)`
	if err == nil || err.Error() != wantLocal {
		t.Fatalf("get from the member without it:\n got %v\nwant %s", err, wantLocal)
	}
	// Every member still serves what they agree on, and nothing was written
	// by the failed commands.
	if got, err := cluster.Ask(ctx, behindK.Ref(onBehind), AddText{Op: "b1", N: "xyz"}); err != nil || got != 3 {
		t.Fatalf("add on the member behind, for itself: %d, %v; want 3", got, err)
	}
	if got, err := cluster.Ask(ctx, full.k.Ref(onFull), Add{Op: "f1", N: 2}); err != nil || got != 2 {
		t.Fatalf("add on the full member: %d, %v; want 2", got, err)
	}
	ops := opsIn(t, log, []string{onBehind, onFull})
	if len(ops) != 2 || ops["b1"] != 1 || ops["f1"] != 1 {
		t.Fatalf("log holds %v, want b1 and f1 once each", ops)
	}
}
