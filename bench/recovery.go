package main

import (
	"context"
	"flag"
	"fmt"
	"time"

	"github.com/eventsourced-go/eventsourced/entity"
	"github.com/eventsourced-go/eventsourced/eventlog"
	"github.com/eventsourced-go/eventsourced/snapshotstore"
)

// The recovery scenario: activate an entity that has 100,000 events, with
// no snapshot (replay everything) and with a snapshot every 1,000 events
// (load the latest snapshot, replay the tail), and the raw ceiling: the
// same log read and decoded in a loop, no runtime. Setup (writing the
// events) is not measured; each repetition recovers the entity several
// times, each on a fresh System, and the latency columns are per recovery.

var recoveryFlags struct {
	events, recoveries int
}

func init() {
	RegisterFlags(func(fs *flag.FlagSet) {
		fs.IntVar(&recoveryFlags.events, "recovery-events", 100_000, "recovery: events of the entity")
		fs.IntVar(&recoveryFlags.recoveries, "recovery-times", 5, "recovery: recoveries per repetition")
	})
	Register(Scenario{
		Name:      "recovery",
		Doc:       "recover an entity with 100,000 events, without and with a snapshot every 1,000",
		Unit:      "events",
		Subject:   "eventsourced/snapshot-1000",
		Reference: "eventsourced",
		Targets: []Target{
			{
				Desc: "replay without snapshot >= 500k events/s",
				Check: func(s *Summary) (string, bool) {
					v, ok := s.Value("eventsourced")
					return fmtCount(v) + " events/s", ok && v >= 500e3
				},
			},
			{
				Desc: "with a snapshot every 1,000 events, recovery reads <= 1,000 events",
				Check: func(s *Summary) (string, bool) {
					v, ok := s.MetricOf("eventsourced/snapshot-1000", "events read")
					return fmt.Sprintf("%.0f events read", v), ok && v <= 1000
				},
			},
		},
		Systems: []System{
			{Name: "eventsourced", Role: Subject, Doc: "first Ask on a fresh System: replay every event", Run: recoveryRun(0)},
			{Name: "eventsourced/snapshot-1000", Role: Variant, Doc: "WithSnapshotEvery(1000), 100,999 events: latest snapshot (at 100,000), then the 999-event tail", Run: recoveryRun(1000)},
			{Name: "log-read+decode", Role: Ceiling, Doc: "no runtime: ReadEntity, decode, Apply in a loop", Run: recoveryCeiling},
		},
	})
}

// recoverySize returns the events of the entity and the recoveries per rep.
func recoverySize(env *Env) (events, times int) {
	return env.Scale(recoveryFlags.events, 2500), env.Scale(recoveryFlags.recoveries, 2)
}

// populate writes events increments to entity "r" of log, in appends of
// 1,000, encoded as the runtime encodes them.
func populate(ctx context.Context, log eventlog.Log, events int) error {
	def := counterType()
	var seq uint64
	batch := make([]eventlog.Event, 0, 1000)
	for seq < uint64(events) {
		batch = batch[:0]
		for range min(1000, events-int(seq)) {
			name, rev, data, err := def.Events.Encode(Incremented{By: 1})
			if err != nil {
				return err
			}
			batch = append(batch, eventlog.Event{Name: name, Revision: rev, Data: data})
		}
		if _, err := log.Append(ctx, def.Name, "r", seq, batch...); err != nil {
			return err
		}
		seq += uint64(len(batch))
	}
	return nil
}

func recoveryRun(snapshotEvery int) func(ctx context.Context, env *Env) (Result, error) {
	return func(ctx context.Context, env *Env) (Result, error) {
		events, times := recoverySize(env)
		if snapshotEvery > 0 {
			// The worst case: the longest tail after the latest snapshot.
			events += snapshotEvery - 1
		}
		mem := eventlog.NewMemory()
		log := &countingLog{Log: mem}
		snaps := snapshotstore.NewMemory()
		if snapshotEvery == 0 {
			if err := populate(ctx, mem, events); err != nil {
				return Result{}, err
			}
		} else {
			// Through the runtime, one command at a time, so it snapshots
			// at every multiple of snapshotEvery, as an entity would.
			sys, err := entity.NewSystem(mem, entity.WithSnapshotStore(snaps))
			if err != nil {
				return Result{}, err
			}
			kind, err := entity.Register(sys, counterType(), entity.WithSnapshotEvery(snapshotEvery))
			if err != nil {
				return Result{}, err
			}
			ref := kind.Ref("r")
			for range events {
				if _, err := entity.Ask(ctx, ref, Increment{By: 1}); err != nil {
					return Result{}, err
				}
			}
			if err := sys.Shutdown(ctx); err != nil { // waits for the last snapshot
				return Result{}, err
			}
		}
		rec := env.Recorder(times)
		var total, cpu time.Duration
		for i := range times {
			opts := []entity.Option{}
			kopts := []entity.KindOption{}
			if snapshotEvery > 0 {
				opts = append(opts, entity.WithSnapshotStore(snaps))
				kopts = append(kopts, entity.WithSnapshotEvery(snapshotEvery))
			}
			// Only the snapshot variant needs the read count; the
			// counting wrapper costs a little per event.
			var l eventlog.Log = mem
			if snapshotEvery > 0 {
				l = log
			}
			sys, err := entity.NewSystem(l, opts...)
			if err != nil {
				return Result{}, err
			}
			kind, err := entity.Register(sys, counterType(), kopts...)
			if err != nil {
				return Result{}, err
			}
			sw := startStopwatch()
			v, err := entity.Ask(ctx, kind.Ref("r"), Get{})
			d, c := sw.stop()
			sys.Close()
			if err != nil {
				return Result{}, err
			}
			if v != int64(events) {
				return Result{}, fmt.Errorf("recovered value %d, want %d", v, events)
			}
			rec.Record(d)
			total += d
			cpu += c
			env.Progress(int64(i+1), int64(times))
		}
		return Result{
			Ops:     int64(events) * int64(times),
			Elapsed: total,
			CPU:     cpu,
			Metrics: map[string]float64{"events read": eventsRead(snapshotEvery, log, events, times)},
		}, nil
	}
}

// recoveryCeiling reads and decodes the events with no runtime around it.
func recoveryCeiling(ctx context.Context, env *Env) (Result, error) {
	events, times := recoverySize(env)
	log := eventlog.NewMemory()
	if err := populate(ctx, log, events); err != nil {
		return Result{}, err
	}
	def := counterType()
	rec := env.Recorder(times)
	var total, cpu time.Duration
	for i := range times {
		sw := startStopwatch()
		var s Counter
		for r, err := range log.ReadEntity(ctx, def.Name, "r", 1) {
			if err != nil {
				return Result{}, err
			}
			e, err := def.Events.Decode(r.Name, r.Revision, r.Data)
			if err != nil {
				return Result{}, err
			}
			s = def.Apply(s, e)
		}
		d, c := sw.stop()
		if s.Value != int64(events) {
			return Result{}, fmt.Errorf("value %d, want %d", s.Value, events)
		}
		rec.Record(d)
		total += d
		cpu += c
		env.Progress(int64(i+1), int64(times))
	}
	return Result{Ops: int64(events) * int64(times), Elapsed: total, CPU: cpu}, nil
}

// eventsRead is the mean number of events one recovery read: counted with a
// snapshot, all of them without.
func eventsRead(snapshotEvery int, log *countingLog, events, times int) float64 {
	if snapshotEvery == 0 {
		return float64(events)
	}
	return float64(log.read.Load()) / float64(times)
}
