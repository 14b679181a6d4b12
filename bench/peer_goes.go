package main

import (
	"context"
	"fmt"
	"time"

	"github.com/google/uuid"
	"github.com/modernice/goes/aggregate"
	"github.com/modernice/goes/aggregate/repository"
	"github.com/modernice/goes/event"
	"github.com/modernice/goes/event/eventstore"
)

// The modernice/goes peer (v0.9.0), used as its aggregate README shows: an
// aggregate embedding *aggregate.Base with event.ApplyWith appliers, a
// typed repository over the in-memory event store (eventstore.New), and
// TypedRepository.Use per command (fetch, run, save). The in-memory store
// keeps event values, so this peer does no encoding; its Query scans every
// stored event, so it slows down as the store fills and is measured on what
// it finishes within its time budget (the row says so).

const goesIncremented = "counter.incremented"

// goesCounter is the aggregate.
type goesCounter struct {
	*aggregate.Base
	Value int64
}

func newGoesCounter(id uuid.UUID) *goesCounter {
	c := &goesCounter{Base: aggregate.New("counter", id)}
	event.ApplyWith(c, c.incremented, goesIncremented)
	return c
}

func (c *goesCounter) incremented(e event.Of[int64]) { c.Value += e.Data() }

// Increment is the command method.
func (c *goesCounter) Increment(by int64) error {
	aggregate.Next(c, goesIncremented, by)
	return nil
}

func memoryGoes(ctx context.Context, env *Env) (Result, error) {
	n, cmds := memorySize(env)
	repo := repository.Typed(repository.New(eventstore.New()), newGoesCounter)
	ids := make([]uuid.UUID, n)
	for i := range ids {
		ids[i] = uuid.NewSHA1(uuid.NameSpaceOID, []byte(entityID(i)))
	}
	ctx, cancel := Budget(ctx, env, 8*time.Second)
	defer cancel()
	return Drive(ctx, env, n, cmds, func(ctx context.Context, c, i int) error {
		var v int64
		err := repo.Use(ctx, ids[c], func(a *goesCounter) error {
			err := a.Increment(1)
			v = a.Value
			return err
		})
		if err == nil && v != int64(i+1) {
			err = fmt.Errorf("reply %d, want %d", v, i+1)
		}
		return err
	})
}
