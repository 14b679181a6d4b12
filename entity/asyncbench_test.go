package entity_test

import (
	"context"
	"fmt"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/eventsourced-go/eventsourced/entity"
	"github.com/eventsourced-go/eventsourced/eventlog"
)

// roundLog is an in-memory log whose AppendAsync settles appends as
// postgreslog does, without a database: a worker goroutine takes every
// append waiting (up to maxRound), appends them to a Memory log and calls
// each one's done, then waits latency (a commit's round trip) before the
// next round. With inline set, AppendAsync appends and calls done on the
// caller's goroutine instead.
type roundLog struct {
	*eventlog.Memory
	inline   bool
	latency  time.Duration
	maxRound int
	in       chan roundReq
	wg       sync.WaitGroup
}

type roundReq struct {
	ctx      context.Context
	typ, id  string
	expected uint64
	events   []eventlog.Event
	done     func(uint64, error)
}

func newRoundLog(inline bool, latency time.Duration) *roundLog {
	l := &roundLog{Memory: eventlog.NewMemory(), inline: inline, latency: latency, maxRound: 3000, in: make(chan roundReq, 8192)}
	if !inline {
		l.wg.Add(1)
		go l.work()
	}
	return l
}

func (l *roundLog) AppendAsync(ctx context.Context, typ, id string, expected uint64, events []eventlog.Event, done func(uint64, error)) {
	if l.inline {
		done(l.Memory.Append(ctx, typ, id, expected, events...))
		return
	}
	l.in <- roundReq{ctx, typ, id, expected, events, done}
}

func (l *roundLog) work() {
	defer l.wg.Done()
	round := make([]roundReq, 0, l.maxRound)
	for {
		r, ok := <-l.in
		if !ok {
			return
		}
		round = append(round[:0], r)
	gather:
		for len(round) < l.maxRound {
			select {
			case r, ok := <-l.in:
				if !ok {
					break gather
				}
				round = append(round, r)
			default:
				break gather
			}
		}
		if l.latency > 0 {
			time.Sleep(l.latency)
		}
		for _, r := range round {
			r.done(l.Memory.Append(r.ctx, r.typ, r.id, r.expected, r.events...))
		}
		clear(round)
	}
}

func (l *roundLog) stop() { close(l.in); l.wg.Wait() }

var _ eventlog.AsyncAppender = (*roundLog)(nil)

// cpuTime is the process's user and system CPU time so far.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// BenchmarkAskAsync measures the asynchronous append path alone: 1,000
// callers, each with an entity of its own, against a log that settles
// appends in rounds on a worker goroutine ("rounds", "rounds-1ms" with a
// commit's latency) or on the caller's goroutine ("inline"); "sync" is the
// same log with WithSyncAppends. The callers share a context that can end,
// as in the bench's postgres scenario, except in "rounds-bg", which asks
// with context.Background: the difference is what selecting on a Done
// channel that 1,000 callers wait on costs. cpu-ns/op is the process's CPU
// time per command, idle spinning of the scheduler included: it varies
// more from run to run than ns/op, which for "rounds" is CPU-bound.
func BenchmarkAskAsync(b *testing.B) {
	for _, tc := range []struct {
		name    string
		inline  bool
		latency time.Duration
		opts    []entity.KindOption
		bg      bool // callers ask with context.Background
	}{
		{"inline", true, 0, nil, false},
		{"sync", true, 0, []entity.KindOption{entity.WithSyncAppends()}, false},
		{"rounds", false, 0, nil, false},
		{"rounds-1ms", false, time.Millisecond, nil, false},
		{"rounds-bg", false, 0, nil, true},
	} {
		b.Run(tc.name, func(b *testing.B) {
			log := newRoundLog(tc.inline, tc.latency)
			defer log.stop()
			sys, err := entity.NewSystem(log, entity.WithoutTelemetry())
			if err != nil {
				b.Fatal(err)
			}
			defer sys.Close()
			k, err := entity.Register(sys, benchType(), tc.opts...)
			if err != nil {
				b.Fatal(err)
			}
			// The callers share a context that can end, as a server's do.
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			if tc.bg {
				ctx = context.Background()
			}
			const callers = 1000
			var mu sync.Mutex
			id := 0
			b.SetParallelism((callers + 1) / 2)
			b.ReportAllocs()
			start := cpuTime()
			b.RunParallel(func(pb *testing.PB) {
				mu.Lock()
				id++
				ref := k.Ref(fmt.Sprint(id))
				mu.Unlock()
				for pb.Next() {
					if _, err := entity.Ask(ctx, ref, benchAdd{}); err != nil {
						b.Error(err)
						return
					}
				}
			})
			b.ReportMetric(float64(cpuTime()-start)/float64(b.N), "cpu-ns/op")
		})
	}
}
