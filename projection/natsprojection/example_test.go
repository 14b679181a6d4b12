package natsprojection_test

import (
	"context"
	"sync"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/eventsourced-go/eventsourced/eventlog"
	"github.com/eventsourced-go/eventsourced/projection"
	"github.com/eventsourced-go/eventsourced/projection/natsprojection"
)

// An idempotent read model with its offset in NATS KV: delivery is at
// least once, so the handler remembers the last Seq it applied per entity.
// The maps stand in for durable storage: the offset survives a restart, so
// the read model must too (examples/cafe keeps its views, with their last
// Seq, in KV buckets).
func Example() {
	ctx := context.Background()
	nc, err := nats.Connect(nats.DefaultURL)
	if err != nil {
		panic(err)
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		panic(err)
	}
	store, err := natsprojection.New(ctx, js)
	if err != nil {
		panic(err)
	}
	var log eventlog.Log = eventlog.NewMemory() // or a natslog.Log on js

	var mu sync.Mutex // guards lastSeq and counts
	lastSeq := map[string]uint64{}
	counts := map[string]int{}
	h := projection.PerEvent(func(ctx context.Context, rec eventlog.Record) error {
		mu.Lock()
		defer mu.Unlock()
		if rec.Seq <= lastSeq[rec.EntityID] {
			return nil // delivered again after a crash
		}
		lastSeq[rec.EntityID] = rec.Seq
		counts[rec.EntityID]++
		return nil
	})
	p, err := projection.New(log, "Tab", "tab-events", store, h)
	if err != nil {
		panic(err)
	}
	if err := p.Start(ctx); err != nil {
		panic(err)
	}
	defer p.Stop(ctx)
}
