package cluster_test

import (
	"context"
	"errors"
	"fmt"

	testprovider "github.com/asynkron/protoactor-go/cluster/clusterproviders/test"

	"github.com/eventsourced-go/eventsourced/binarize"
	"github.com/eventsourced-go/eventsourced/cluster"
	"github.com/eventsourced-go/eventsourced/eventlog"
)

// Two members in one process share a log; a command asked on either
// reaches the entity's owner, and a registered error matches on the caller.
func Example() {
	ctx := context.Background()
	log := eventlog.NewMemory() // a shared database in a real deployment
	agent := testprovider.NewInMemAgent()
	var members []*cluster.Member
	var kinds []*cluster.Kind[Tally, TallyEvent]
	for range 2 {
		m, err := cluster.NewMember("example", log, testprovider.NewTestProvider(agent))
		if err != nil {
			panic(err)
		}
		k, err := cluster.Register(m, tallyType())
		if err != nil {
			panic(err)
		}
		if err := cluster.RegisterCommand(k, "add", binarize.Value[Add](binarize.Msgpack), binarize.Value[int](binarize.Msgpack)); err != nil {
			panic(err)
		}
		members, kinds = append(members, m), append(kinds, k)
	}
	if err := cluster.StartAll(ctx, members...); err != nil {
		panic(err)
	}
	defer func() {
		for _, m := range members { // one at a time with the test provider
			_ = m.Shutdown(ctx)
		}
	}()

	for i, k := range kinds {
		sum, err := cluster.Ask(ctx, k.Ref("tally-1"), Add{Op: fmt.Sprint(i), N: 10})
		fmt.Println(sum, err)
	}
	_, err := cluster.Ask(ctx, kinds[0].Ref("tally-1"), Add{N: -1})
	fmt.Println(errors.Is(err, ErrNegative))
	// Output:
	// 10 <nil>
	// 20 <nil>
	// true
}
