package main

import (
	"context"
	"flag"
	"fmt"
	"sync"

	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"

	"github.com/eventsourced-go/eventsourced/binarize"
	"github.com/eventsourced-go/eventsourced/entity"
	"github.com/eventsourced-go/eventsourced/eventlog"
)

// The memory scenario: 1,000 entities x 100 commands, request/reply, one
// event per command, msgpack, everything in process memory. One caller per
// entity sends that entity's commands one after the other, each waiting for
// its reply, so all systems see the same closed-loop load: 1,000 requests in
// flight, one per entity.

var memoryFlags struct {
	entities, commands int
}

func init() {
	RegisterFlags(func(fs *flag.FlagSet) {
		fs.IntVar(&memoryFlags.entities, "memory-entities", 1000, "memory: entities (one caller each)")
		fs.IntVar(&memoryFlags.commands, "memory-commands", 100, "memory: commands per entity, sent one after the other")
	})
	Register(Scenario{
		Name:      "memory",
		Doc:       "1,000 entities x 100 commands, request/reply, 1 event/command, msgpack, in memory",
		Unit:      "commands",
		Reference: BestPeer,
		// A fast system's run takes well under a second, so a burst of
		// load from elsewhere on a shared machine moves one run a lot:
		// five runs make the median steadier.
		Reps: 5,
		Targets: []Target{{
			Desc: "eventsourced >= 3x the best peer",
			Check: func(s *Summary) (string, bool) {
				v, ok := s.Ratio("eventsourced", s.RefName)
				if !ok {
					return "n/a", false
				}
				return fmt.Sprintf("%.2fx %s", v, s.RefName), v >= 3
			},
		}, {
			Desc: "telemetry with the default (global, no SDK) providers costs <= 3% against entity.WithoutTelemetry",
			Check: func(s *Summary) (string, bool) {
				v, ok := s.Ratio("eventsourced", "eventsourced/no-telemetry")
				if !ok {
					return "n/a", false
				}
				return fmt.Sprintf("%.1f%% of no-telemetry", 100*v), v >= 0.97
			},
		}, {
			Desc: "eventsourced >= 75% of log-direct (the callers encoding and appending themselves, no runtime)",
			Check: func(s *Summary) (string, bool) {
				v, ok := s.Ratio("eventsourced", "log-direct")
				return fmt.Sprintf("%.0f%%", 100*v), ok && v >= 0.75
			},
		}},
		Systems: []System{
			{Name: "eventsourced", Role: Subject, Doc: "entity.Ask on an entity.System over eventlog.Memory", Run: memoryEventsourced},
			{Name: "protoactor-persistence", Role: Peer, Doc: "protoactor-go persistence.Mixin, in-memory provider, RequestFuture (no encoding: the provider keeps the proto message)", Run: memoryProtoactor},
			{Name: "hallgren", Role: Peer, Doc: "hallgren/eventsourcing v0.9.1: aggregate.Load, command, aggregate.Save per command; memory store, msgpack encoder", Run: memoryHallgren},
			{Name: "goes", Role: Peer, Doc: "modernice/goes v0.9.0: TypedRepository.Use per command over the in-memory event store (no encoding)", Run: memoryGoes},
			{Name: "eventhorizon", Role: Peer, Doc: "looplab/eventhorizon v0.16.0: aggregate command handler over the in-memory event store (reply = ack)", Run: memoryEventhorizon},
			{Name: "eventsourced/no-telemetry", Role: Variant, Doc: "entity.WithoutTelemetry(): no spans or metrics at all", Run: memoryEventsourcedWith(noTelemetry)},
			{Name: "eventsourced/otel-sdk", Role: Variant, Doc: "an OpenTelemetry SDK: every command sampled (spans batched to a discarding exporter), metrics to a manual reader", Run: memoryEventsourcedWith(otelSDK)},
			{Name: "log-direct", Role: Ceiling, Doc: "no runtime: the caller encodes and appends to eventlog.Memory itself", Run: memoryLogDirect},
		},
	})
}

// memorySize returns the scenario's entities and commands per entity.
func memorySize(env *Env) (entities, commands int) {
	return env.Scale(memoryFlags.entities, 20), env.Scale(memoryFlags.commands, 10)
}

func memoryEventsourced(ctx context.Context, env *Env) (Result, error) {
	return memoryEventsourcedWith(nil)(ctx, env)
}

// telemetryOptions returns the System options of a telemetry variant and
// what to call when the run ends.
type telemetryOptions func() ([]entity.Option, func())

// noTelemetry turns telemetry off.
func noTelemetry() ([]entity.Option, func()) {
	return []entity.Option{entity.WithoutTelemetry()}, func() {}
}

// otelSDK measures with an OpenTelemetry SDK: every span sampled and
// exported in batches to an exporter that discards them, every metric
// aggregated for a reader.
func otelSDK() ([]entity.Option, func()) {
	tp := sdktrace.NewTracerProvider(sdktrace.WithSampler(sdktrace.AlwaysSample()), sdktrace.WithBatcher(tracetest.NewNoopExporter()))
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(sdkmetric.NewManualReader()))
	return []entity.Option{entity.WithTracerProvider(tp), entity.WithMeterProvider(mp)}, func() {
		_ = tp.Shutdown(context.Background())
		_ = mp.Shutdown(context.Background())
	}
}

// memoryEventsourcedWith runs the eventsourced system with the telemetry
// of tel (the defaults if nil).
func memoryEventsourcedWith(tel telemetryOptions) func(ctx context.Context, env *Env) (Result, error) {
	return func(ctx context.Context, env *Env) (Result, error) {
		var sysOpts []entity.Option
		if tel != nil {
			opts, done := tel()
			defer done()
			sysOpts = opts
		}
		return memoryRun(ctx, env, sysOpts)
	}
}

func memoryRun(ctx context.Context, env *Env, sysOpts []entity.Option) (Result, error) {
	n, cmds := memorySize(env)
	cs, err := newCounterSystemWith(nil, sysOpts)
	if err != nil {
		return Result{}, err
	}
	defer cs.shutdown()
	refs := make([]entity.Ref[Counter, CounterEvent], n)
	for i := range refs {
		refs[i] = cs.kind.Ref(entityID(i))
	}
	res, err := Drive(ctx, env, n, cmds, func(ctx context.Context, c, i int) error {
		v, err := entity.Ask(ctx, refs[c], Increment{By: 1})
		if err == nil && v != int64(i+1) {
			err = fmt.Errorf("reply %d, want %d", v, i+1)
		}
		return err
	})
	return res, err
}

// memoryLogDirect is the ceiling: what the log takes when the caller does
// the runtime's work itself (apply, encode, conditional append), with no
// actor, queue or reply hand-off in between.
func memoryLogDirect(ctx context.Context, env *Env) (Result, error) {
	n, cmds := memorySize(env)
	log := eventlog.NewMemory()
	def := counterType()
	type ent struct {
		mu    sync.Mutex
		state Counter
		seq   uint64
	}
	ents := make([]ent, n)
	ids := make([]string, n)
	for i := range ids {
		ids[i] = entityID(i)
	}
	var codec binarize.EventCodec[CounterEvent] = def.Events
	return Drive(ctx, env, n, cmds, func(ctx context.Context, c, i int) error {
		e := &ents[c]
		e.mu.Lock()
		defer e.mu.Unlock()
		ev := Incremented{By: 1}
		name, rev, data, err := codec.Encode(ev)
		if err != nil {
			return err
		}
		if _, err := log.Append(ctx, def.Name, ids[c], e.seq, eventlog.Event{Name: name, Revision: rev, Data: data}); err != nil {
			return err
		}
		e.state = def.Apply(e.state, ev)
		e.seq++
		return nil
	})
}
