package main

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/google/uuid"
	eh "github.com/looplab/eventhorizon"
	"github.com/looplab/eventhorizon/aggregatestore/events"
	ehcommand "github.com/looplab/eventhorizon/commandhandler/aggregate"
	"github.com/looplab/eventhorizon/eventstore/memory"
)

// The looplab/eventhorizon peer (v0.16.0), used as its docs and examples
// show: an aggregate embedding *events.AggregateBase registered with
// eh.RegisterAggregate, a registered command and event data type, and the
// aggregate command handler over an events.AggregateStore on the in-memory
// event store. HandleCommand loads the aggregate, handles the command,
// saves the events; its reply is the error only (eventhorizon replies come
// from read models), so a nil error is the acknowledgement. The in-memory
// store deep-copies events (jinzhu/copier) instead of encoding them.

const (
	ehCounterType    eh.AggregateType = "counter"
	ehIncrementType  eh.CommandType   = "counter.increment"
	ehIncrementedEvt eh.EventType     = "counter.incremented"
)

// ehIncrement is the command.
type ehIncrement struct {
	ID uuid.UUID
	By int64
}

func (c *ehIncrement) AggregateID() uuid.UUID          { return c.ID }
func (c *ehIncrement) AggregateType() eh.AggregateType { return ehCounterType }
func (c *ehIncrement) CommandType() eh.CommandType     { return ehIncrementType }

// ehIncrementedData is the event data.
type ehIncrementedData struct{ By int64 }

// ehCounter is the aggregate.
type ehCounter struct {
	*events.AggregateBase
	value int64
}

func (a *ehCounter) HandleCommand(ctx context.Context, cmd eh.Command) error {
	c, ok := cmd.(*ehIncrement)
	if !ok {
		return fmt.Errorf("unexpected command %T", cmd)
	}
	a.AppendEvent(ehIncrementedEvt, &ehIncrementedData{By: c.By}, time.Now())
	return nil
}

func (a *ehCounter) ApplyEvent(ctx context.Context, e eh.Event) error {
	if d, ok := e.Data().(*ehIncrementedData); ok {
		a.value += d.By
	}
	return nil
}

var ehRegister sync.Once

func memoryEventhorizon(ctx context.Context, env *Env) (Result, error) {
	n, cmds := memorySize(env)
	ehRegister.Do(func() {
		eh.RegisterAggregate(func(id uuid.UUID) eh.Aggregate {
			return &ehCounter{AggregateBase: events.NewAggregateBase(ehCounterType, id)}
		})
		eh.RegisterCommand(func() eh.Command { return &ehIncrement{} })
		eh.RegisterEventData(ehIncrementedEvt, func() eh.EventData { return &ehIncrementedData{} })
	})
	store, err := memory.NewEventStore()
	if err != nil {
		return Result{}, err
	}
	aggStore, err := events.NewAggregateStore(store)
	if err != nil {
		return Result{}, err
	}
	handler, err := ehcommand.NewCommandHandler(ehCounterType, aggStore)
	if err != nil {
		return Result{}, err
	}
	ids := make([]uuid.UUID, n)
	for i := range ids {
		ids[i] = uuid.NewSHA1(uuid.NameSpaceOID, []byte(entityID(i)))
	}
	ctx, cancel := Budget(ctx, env, 8*time.Second)
	defer cancel()
	return Drive(ctx, env, n, cmds, func(ctx context.Context, c, i int) error {
		return handler.HandleCommand(ctx, &ehIncrement{ID: ids[c], By: 1})
	})
}
