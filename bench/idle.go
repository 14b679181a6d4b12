package main

import (
	"context"
	"flag"
	"fmt"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"github.com/asynkron/protoactor-go/actor"

	"github.com/eventsourced-go/eventsourced/entity"
)

// The idle scenario: activate 1,000,000 entities (one read-only command
// each, so the log stays empty and only the live entities hold memory),
// then measure the settled RSS (after GC, memory returned to the OS) over
// the settled RSS before: bytes per idle live entity. The same for bare
// protoactor-go actors (the substrate alone) and for protoactor-go
// persistence actors (a peer's live entity).

var idleFlags struct{ entities int }

func init() {
	RegisterFlags(func(fs *flag.FlagSet) {
		fs.IntVar(&idleFlags.entities, "idle-entities", 1_000_000, "idle: entities to activate")
	})
	Register(Scenario{
		Name:          "idle",
		Doc:           "activate 1,000,000 entities, RSS per idle live entity",
		Unit:          "activations",
		Metric:        "bytes/entity",
		LowerIsBetter: true,
		Reference:     "protoactor-actor",
		Targets: []Target{{
			Desc: "eventsourced <= 1.5 KB (1,536 B) per idle live entity",
			Check: func(s *Summary) (string, bool) {
				v, ok := s.Value("eventsourced")
				return fmt.Sprintf("%.0f B", v), ok && v <= 1536
			},
		}},
		Systems: []System{
			{Name: "eventsourced", Role: Subject, Doc: "one Get per entity id on an entity.System", Run: idleEventsourced},
			{Name: "protoactor-persistence", Role: Peer, Doc: "one persistent actor per id (SpawnNamed) and one RequestFuture", Run: idleProtoactorPersistence},
			{Name: "protoactor-actor", Role: Ceiling, Doc: "the substrate alone: one bare actor per id (SpawnNamed)", Run: idleProtoactorBare},
		},
	})
}

const idleCallers = 64

// idleRun activates n entities with callers goroutines calling activate(i)
// and reports activations/s and bytes per entity. keep holds on to what
// must stay alive until the measurement.
func idleRun(ctx context.Context, env *Env, activate func(i int) error) (Result, error) {
	n := env.Scale(idleFlags.entities, 2000)
	before := SettledRSS()
	var next atomic.Int64
	var wg sync.WaitGroup
	var firstErr error
	var once sync.Once
	sw := startStopwatch()
	for range idleCallers {
		wg.Go(func() {
			rec := env.Recorder(n / idleCallers)
			for {
				i := int(next.Add(1) - 1)
				if i >= n || ctx.Err() != nil {
					return
				}
				s := time.Now()
				if err := activate(i); err != nil {
					once.Do(func() { firstErr = fmt.Errorf("activate %d: %w", i, err) })
					return
				}
				rec.Record(time.Since(s))
				if i&4095 == 0 {
					env.Progress(int64(i), int64(n))
				}
			}
		})
	}
	wg.Wait()
	elapsed, cpu := sw.stop()
	if firstErr != nil {
		return Result{}, firstErr
	}
	after := SettledRSS()
	return Result{
		Ops:     int64(n),
		Elapsed: elapsed,
		CPU:     cpu,
		Metrics: map[string]float64{
			"bytes/entity": float64(after-before) / float64(n),
			"RSS bytes":    float64(after),
		},
	}, nil
}

func idleEventsourced(ctx context.Context, env *Env) (Result, error) {
	cs, err := newCounterSystem(nil)
	if err != nil {
		return Result{}, err
	}
	defer cs.sys.Close()
	res, err := idleRun(ctx, env, func(i int) error {
		_, err := entity.Ask(ctx, cs.kind.Ref(entityID(i)), Get{})
		return err
	})
	if err == nil && cs.kind.Live() != int(res.Ops) {
		err = fmt.Errorf("%d live entities after %d activations", cs.kind.Live(), res.Ops)
	}
	return res, err
}

func idleProtoactorPersistence(ctx context.Context, env *Env) (Result, error) {
	s := newPASystem(1 << 30)
	defer runtime.KeepAlive(s)
	return idleRun(ctx, env, func(i int) error {
		pid, err := s.spawn(entityID(i))
		if err != nil {
			return err
		}
		_, err = s.as.Root.RequestFuture(pid, &paGet{}, 30*time.Second).Result()
		return err
	})
}

// paGet asks a protoactor-go persistence counter for its value.
type paGet struct{}

// bareActor is an actor that does nothing.
type bareActor struct{}

func (bareActor) Receive(actor.Context) {}

func idleProtoactorBare(ctx context.Context, env *Env) (Result, error) {
	s := newPASystem(1 << 30)
	props := actor.PropsFromProducer(func() actor.Actor { return bareActor{} })
	defer runtime.KeepAlive(s)
	return idleRun(ctx, env, func(i int) error {
		_, err := s.as.Root.SpawnNamed(props, entityID(i))
		return err
	})
}
