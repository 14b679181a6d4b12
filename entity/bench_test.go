package entity_test

import (
	"context"
	"fmt"
	"strconv"
	"sync/atomic"
	"testing"

	"github.com/eventsourced-go/eventsourced/binarize"
	"github.com/eventsourced-go/eventsourced/entity"
	"github.com/eventsourced-go/eventsourced/eventlog"
)

// The benchmarks use a counter without the test domain's history, whose
// Apply copies a growing slice on purpose.
type benchState struct{ N int64 }

type benchEvent interface{ isBenchEvent() }

type benchAdded struct {
	By int64 `json:"by"`
}

func (benchAdded) isBenchEvent() {}

type benchAdd struct{}

func (benchAdd) Handle(tx *entity.Tx[benchState, benchEvent]) (int64, error) {
	return tx.Persist(benchAdded{By: 1}).N, nil
}

func benchType() entity.Type[benchState, benchEvent] {
	events := binarize.NewRegistry[benchEvent](binarize.Msgpack)
	binarize.MustRegister[benchAdded](events, "Added")
	return entity.Type[benchState, benchEvent]{
		Name: "Counter",
		Apply: func(s benchState, e benchEvent) benchState {
			if e, ok := e.(benchAdded); ok {
				s.N += e.By
			}
			return s
		},
		Events: events,
	}
}

// BenchmarkAsk measures a command round trip (one event, in-memory log):
// "idle" gives every goroutine an entity of its own, so commands never wait
// for one another; "hot" sends every command to one entity, so commands
// queue up and are batched.
func BenchmarkAsk(b *testing.B) {
	for _, tc := range []struct {
		name     string
		entities int64
	}{{"idle", 1 << 30}, {"hot", 1}} {
		b.Run(tc.name, func(b *testing.B) {
			sys, err := entity.NewSystem(eventlog.NewMemory())
			if err != nil {
				b.Fatal(err)
			}
			defer sys.Close()
			k, err := entity.Register(sys, benchType())
			if err != nil {
				b.Fatal(err)
			}
			var next atomic.Int64
			ctx := context.Background()
			b.SetParallelism(32)
			b.ReportAllocs()
			b.RunParallel(func(pb *testing.PB) {
				ref := k.Ref(fmt.Sprint(next.Add(1) % tc.entities))
				for pb.Next() {
					if _, err := entity.Ask(ctx, ref, benchAdd{}); err != nil {
						b.Error(err)
						return
					}
				}
			})
		})
	}
}

// BenchmarkAskSequential measures one caller's command round trips on one
// idle entity, with the default telemetry (global providers, no SDK) and
// with none: what telemetry costs a command when nothing records it.
func BenchmarkAskSequential(b *testing.B) {
	for _, tc := range []struct {
		name string
		opts []entity.Option
	}{{"default", nil}, {"no-telemetry", []entity.Option{entity.WithoutTelemetry()}}} {
		b.Run(tc.name, func(b *testing.B) {
			sys, err := entity.NewSystem(eventlog.NewMemory(), tc.opts...)
			if err != nil {
				b.Fatal(err)
			}
			defer sys.Close()
			k, err := entity.Register(sys, benchType())
			if err != nil {
				b.Fatal(err)
			}
			ref := k.Ref("one")
			ctx := context.Background()
			b.ReportAllocs()
			for b.Loop() {
				if _, err := entity.Ask(ctx, ref, benchAdd{}); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkAskIdempotent measures one caller's command round trips on one
// idle entity of a type that keeps idempotency keys: "unkeyed" commands
// (what keeping keys costs the others), "keyed" ones with a new key each
// (recording the key and the reply as JSON, the context included), and
// "resend", one key sent again and again (answered from the window).
func BenchmarkAskIdempotent(b *testing.B) {
	for _, name := range []string{"unkeyed", "keyed", "resend"} {
		b.Run(name, func(b *testing.B) {
			sys, err := entity.NewSystem(eventlog.NewMemory())
			if err != nil {
				b.Fatal(err)
			}
			defer sys.Close()
			k, err := entity.Register(sys, benchType(), entity.WithIdempotency())
			if err != nil {
				b.Fatal(err)
			}
			ref := k.Ref("one")
			ctx := context.Background()
			resend := entity.WithIdempotencyKey(ctx, "once")
			b.ReportAllocs()
			i := 0
			for b.Loop() {
				cctx := ctx
				switch name {
				case "keyed":
					i++
					cctx = entity.WithIdempotencyKey(ctx, "k/"+strconv.Itoa(i))
				case "resend":
					cctx = resend
				}
				if _, err := entity.Ask(cctx, ref, benchAdd{}); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
