package cluster_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/eventsourced-go/eventsourced/cluster"
	"github.com/eventsourced-go/eventsourced/eventlog"
)

func TestCommandsFromEveryMemberReachTheOwner(t *testing.T) {
	log := eventlog.NewMemory()
	nodes := startNodes(t, 3, log)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	const entities = 30
	owners := map[string]int{}
	for e := range entities {
		id := fmt.Sprintf("t-%d", e)
		owner := nodes[0].m.Owner("Tally", id)
		owners[owner]++
		for i, n := range nodes {
			got, err := cluster.Ask(ctx, n.k.Ref(id), Add{Op: fmt.Sprintf("%s-%d", id, i), N: 1})
			if err != nil {
				t.Fatalf("Ask %s from member %d: %v", id, i, err)
			}
			if got != i+1 {
				t.Fatalf("Ask %s from member %d: sum %d, want %d", id, i, got, i+1)
			}
		}
		// Only the owner has the entity live.
		for _, n := range nodes {
			live := n.k.Local().Live()
			_ = live
		}
	}
	if len(owners) != 3 {
		t.Errorf("owners of %d entities: %v, want all 3 members to own some", entities, owners)
	}
	total := 0
	for _, n := range nodes {
		total += n.k.Local().Live()
	}
	if total != entities {
		t.Errorf("%d live activations over the members, want %d (one per entity, on its owner)", total, entities)
	}
}

func TestErrorsRoundTrip(t *testing.T) {
	log := eventlog.NewMemory()
	nodes := startNodes(t, 2, log)
	ctx := context.Background()
	// Find an entity owned by the other member, so the error crosses the wire.
	var id string
	for i := 0; ; i++ {
		id = fmt.Sprintf("e-%d", i)
		if nodes[0].m.Owner("Tally", id) == nodes[1].m.Address() {
			break
		}
	}
	ref := nodes[0].k.Ref(id)
	_, err := cluster.Ask(ctx, ref, Add{N: -1})
	if !errors.Is(err, ErrNegative) {
		t.Errorf("registered error: %v, want errors.Is ErrNegative", err)
	}
	_, err = cluster.Ask(ctx, ref, Add{N: -1000})
	var re *cluster.RemoteError
	if !errors.As(err, &re) || re.Text != "tally: something unregistered" || len(re.Codes) != 0 {
		t.Errorf("unregistered error: %#v, want a RemoteError with the text and no codes", err)
	}
	_, err = cluster.Ask(ctx, ref, Unregistered{})
	if !errors.Is(err, cluster.ErrUnknownCommand) {
		t.Errorf("unregistered command type: %v, want ErrUnknownCommand", err)
	}
}

// TestConcurrentAsksAreBatched: concurrent commands for entities of one
// owner travel in shared messages, and each gets its own reply.
func TestConcurrentAsksAreBatched(t *testing.T) {
	log := eventlog.NewMemory()
	nodes := startNodes(t, 2, log)
	var ids []string
	for i := 0; len(ids) < 50; i++ {
		id := fmt.Sprintf("b-%d", i)
		if nodes[0].m.Owner("Tally", id) == nodes[1].m.Address() {
			ids = append(ids, id)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	errs := make(chan error, 400)
	var wg sync.WaitGroup
	for c := range 400 {
		wg.Go(func() {
			id := ids[c%len(ids)]
			if _, err := cluster.Ask(ctx, nodes[0].k.Ref(id), Add{Op: fmt.Sprint("op-", c), N: 1}); err != nil {
				errs <- err
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	for _, id := range ids {
		if got, err := cluster.Ask(ctx, nodes[0].k.Ref(id), Get{}); err != nil || got != 8 {
			t.Errorf("%s: %d, %v; want 8", id, got, err)
		}
	}
	st := nodes[0].m.Stats()
	t.Logf("%d remote commands in %d messages", st.Remote, st.Messages)
	if st.Remote < 450 || st.Messages >= st.Remote {
		t.Errorf("stats %+v: want 450 remote commands in fewer messages", st)
	}
}

// TestAskRefusesInvalidID: Ask checks the entity id with the log's one rule
// (eventlog.ValidateStream) before it sends anything, and its error quotes
// only a bounded prefix of the id.
func TestAskRefusesInvalidID(t *testing.T) {
	nodes := startNodes(t, 2, eventlog.NewMemory())
	ctx := context.Background()
	before := nodes[0].m.Stats()
	for _, tc := range []struct{ name, id string }{
		{"10 KB", strings.Repeat("x", 10<<10)},
		{"empty", ""},
		{"NUL", "a\x00b"},
		{"not UTF-8", "\xff\xfe"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := cluster.Ask(ctx, nodes[0].k.Ref(tc.id), Add{Op: "x", N: 1})
			if !errors.Is(err, cluster.ErrInvalid) || !errors.Is(err, eventlog.ErrInvalid) {
				t.Fatalf("Ask: %v, want cluster.ErrInvalid and eventlog.ErrInvalid", err)
			}
			if n := len(err.Error()); n >= 300 {
				t.Errorf("error message is %d bytes, want < 300: %.100s...", n, err)
			}
		})
	}
	if after := nodes[0].m.Stats(); after != before {
		t.Errorf("stats went from %+v to %+v: something was sent", before, after)
	}
	for i, n := range nodes {
		if live := n.k.Local().Live(); live != 0 {
			t.Errorf("member %d runs %d entities, want 0: something ran", i, live)
		}
	}
}
