package main

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/hallgren/eventsourcing"
	"github.com/hallgren/eventsourcing/aggregate"
	"github.com/hallgren/eventsourcing/core"
	"github.com/hallgren/eventsourcing/eventstore/memory"

	"github.com/eventsourced-go/eventsourced/binarize"
)

// The hallgren/eventsourcing peer (v0.9.1), used as its README shows: an
// aggregate embedding aggregate.Root, registered once; each command loads
// the aggregate from the event store (aggregate.Load), calls a command
// method that tracks a change, and saves it (aggregate.Save). The event
// encoder is set to msgpack (eventsourcing.SetEventEncoder) so it encodes
// what eventsourced encodes. There is no runtime that keeps aggregates in
// memory between requests: that is the application's job, and a cache of
// aggregates with a lock per entity is what the log-direct ceiling does.

// hgCounter is the aggregate.
type hgCounter struct {
	aggregate.Root
	Value int64
}

// hgIncremented is the event.
type hgIncremented struct {
	By int64 `msgpack:"by"`
}

func (c *hgCounter) Transition(e eventsourcing.Event) {
	if ev, ok := e.Data().(*hgIncremented); ok {
		c.Value += ev.By
	}
}

func (c *hgCounter) Register(r aggregate.RegisterFunc) { r(&hgIncremented{}) }

// increment is the command method.
func (c *hgCounter) increment(by int64) { aggregate.TrackChange(c, &hgIncremented{By: by}) }

// hgMsgpack is the msgpack eventsourcing.Encoder.
type hgMsgpack struct{}

func (hgMsgpack) Serialize(v any) ([]byte, error)      { return binarize.Msgpack.Marshal(v) }
func (hgMsgpack) Deserialize(data []byte, v any) error { return binarize.Msgpack.Unmarshal(data, v) }

func hgSetup() {
	eventsourcing.SetEventEncoder(hgMsgpack{})
	aggregate.Register(&hgCounter{})
}

// hgIncrement runs one command the documented way: load, act, save.
func hgIncrement(ctx context.Context, es core.EventStore, id string) (int64, error) {
	c := &hgCounter{}
	err := aggregate.Load(ctx, es, id, c)
	switch {
	case errors.Is(err, eventsourcing.ErrAggregateNotFound):
		if err := c.SetID(id); err != nil {
			return 0, err
		}
	case err != nil:
		return 0, err
	}
	c.increment(1)
	if err := aggregate.Save(es, c); err != nil {
		return 0, err
	}
	return c.Value, nil
}

func memoryHallgren(ctx context.Context, env *Env) (Result, error) {
	n, cmds := memorySize(env)
	hgSetup()
	es := memory.Create()
	ids := make([]string, n)
	for i := range ids {
		ids[i] = entityID(i)
	}
	ctx, cancel := Budget(ctx, env, 30*time.Second)
	defer cancel()
	return Drive(ctx, env, n, cmds, func(ctx context.Context, c, i int) error {
		v, err := hgIncrement(ctx, es, ids[c])
		if err == nil && v != int64(i+1) {
			err = fmt.Errorf("reply %d, want %d", v, i+1)
		}
		return err
	})
}
