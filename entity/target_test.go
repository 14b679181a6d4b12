package entity_test

import (
	"context"
	"errors"
	"testing"

	"github.com/eventsourced-go/eventsourced/entity"
	"github.com/eventsourced-go/eventsourced/eventlog"
)

// remoteTarget is a Target that is not a local Ref: it runs calls on a
// Ref of another system, as a cluster.Ref runs them on another member.
type remoteTarget struct {
	ref   entity.Ref[Counter, CounterEvent]
	calls int
	reply any // if not nil, replaces the reply
}

func (r *remoteTarget) ID() string   { return r.ref.ID() }
func (r *remoteTarget) Type() string { return r.ref.Type() }
func (r *remoteTarget) Call(ctx context.Context, c *entity.Call[Counter, CounterEvent]) (any, error) {
	r.calls++
	if _, ok := c.Command().(Add); !ok {
		return nil, errors.New("not an Add")
	}
	v, err := c.RunOn(ctx, r.ref)
	if r.reply != nil {
		return r.reply, err
	}
	return v, err
}

// increment is calling code written once against Target.
func increment(ctx context.Context, t entity.Target[Counter, CounterEvent], n int) (int, error) {
	return entity.AskTarget(ctx, t, Add{N: n})
}

func TestAskTarget(t *testing.T) {
	ctx := context.Background()
	k := register(t, newSystem(t, eventlog.NewMemory()))
	if got, err := increment(ctx, k.Ref("a"), 2); err != nil || got != 2 {
		t.Fatalf("local Ref as a Target: %d, %v; want 2", got, err)
	}
	remote := &remoteTarget{ref: k.Ref("a")}
	if got, err := increment(ctx, remote, 3); err != nil || got != 5 || remote.calls != 1 {
		t.Fatalf("another Target: %d, %v, %d calls; want 5 through one Call", got, err, remote.calls)
	}
	remote.reply = "five"
	_, err := increment(ctx, remote, 1)
	if err == nil || err.Error() != "entity: AskTarget Counter/a: reply of type string, want int" {
		t.Fatalf("a reply of the wrong type: %v", err)
	}
	if _, err := entity.AskTarget[Counter, CounterEvent, int](ctx, nil, Add{N: 1}); !errors.Is(err, entity.ErrInvalid) {
		t.Fatalf("nil Target: %v", err)
	}
	if got, err := increment(ctx, k.Ref("a"), 0); err != nil || got != 6 {
		t.Fatalf("after the Calls, the local Ref sees every Add: %d, %v; want 6", got, err)
	}
}
