package main

import (
	"context"
	"flag"
	"fmt"
	"time"

	"github.com/eventsourced-go/eventsourced/entity"
	"github.com/eventsourced-go/eventsourced/eventlog"
)

// The hot scenario: one entity, 64 concurrent callers, command batching on
// (the default, up to 256 commands per append) versus off (WithMaxBatch(1):
// one append per command). Batching pays where an append costs a round
// trip, so the log is eventlog.Memory behind a simulated append latency
// (-hot-latency, default 500µs: a commit on a local database); the same
// pair also runs on the bare in-memory log, where an append costs almost
// nothing and batching saves only per-append overhead.

var hotFlags struct {
	callers int
	latency time.Duration
}

func init() {
	RegisterFlags(func(fs *flag.FlagSet) {
		fs.IntVar(&hotFlags.callers, "hot-callers", 64, "hot: concurrent callers of the one entity")
		fs.DurationVar(&hotFlags.latency, "hot-latency", 500*time.Microsecond, "hot: simulated latency of every append")
	})
	Register(Scenario{
		Name:      "hot",
		Doc:       "1 entity, 64 concurrent callers: command batching on vs off (append latency simulated)",
		Unit:      "commands",
		Subject:   "batching-on",
		Reference: "batching-off",
		Targets: []Target{{
			Desc: "batching on >= 10x off (with append latency)",
			Check: func(s *Summary) (string, bool) {
				v, ok := s.Ratio("batching-on", "batching-off")
				return fmt.Sprintf("%.1fx", v), ok && v >= 10
			},
		}},
		Systems: []System{
			{Name: "batching-on", Role: Subject, Doc: "default WithMaxBatch(256), append latency -hot-latency", Run: hotRun(256, true)},
			{Name: "batching-off", Role: Variant, Doc: "WithMaxBatch(1): one append per command, append latency -hot-latency", Run: hotRun(1, true)},
			{Name: "batching-on/no-latency", Role: Variant, Doc: "default batching, bare eventlog.Memory", Run: hotRun(256, false)},
			{Name: "batching-off/no-latency", Role: Variant, Doc: "WithMaxBatch(1), bare eventlog.Memory", Run: hotRun(1, false)},
		},
	})
}

func hotRun(maxBatch int, latency bool) func(ctx context.Context, env *Env) (Result, error) {
	return func(ctx context.Context, env *Env) (Result, error) {
		log := &countingLog{Log: eventlog.NewMemory()}
		if latency {
			log.delay = hotFlags.latency
		}
		sys, err := entity.NewSystem(log)
		if err != nil {
			return Result{}, err
		}
		defer sys.Close()
		kind, err := entity.Register(sys, counterType(), entity.WithMaxBatch(maxBatch))
		if err != nil {
			return Result{}, err
		}
		ref := kind.Ref("hot")
		if _, err := entity.Ask(ctx, ref, Get{}); err != nil { // activate
			return Result{}, err
		}
		callers := env.Scale(hotFlags.callers, 8)
		per := 2000
		if latency && maxBatch == 1 {
			per = 40 // one append per command: a few thousand commands/s at most
		}
		per = env.Scale(per, 5)
		res, err := driveHot(ctx, env, ref, callers, per, 30*time.Second)
		if err != nil {
			return res, err
		}
		res.Metrics = map[string]float64{"commands/append": float64(res.Ops) / float64(max(1, log.appends.Load()))}
		if log.delay > 0 {
			res.Metrics["append latency µs"] = float64(log.avgDelay().Microseconds())
		}
		return res, nil
	}
}

// driveHot has callers send per increments each to the one entity ref,
// within budget, and checks that the counter counted every acknowledged
// one.
func driveHot(ctx context.Context, env *Env, ref entity.Ref[Counter, CounterEvent], callers, per int, budget time.Duration) (Result, error) {
	ctx, cancel := Budget(ctx, env, budget)
	defer cancel()
	res, err := Drive(ctx, env, callers, per, func(ctx context.Context, c, i int) error {
		_, err := entity.Ask(ctx, ref, Increment{By: 1})
		return err
	})
	if err != nil {
		return res, err
	}
	n, err := entity.Ask(context.Background(), ref, Get{})
	if err != nil {
		return res, err
	}
	if n != res.Ops {
		return res, fmt.Errorf("counter is %d after %d increments", n, res.Ops)
	}
	return res, nil
}
