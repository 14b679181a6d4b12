package main

import (
	"context"
	"iter"
	"sync/atomic"
	"time"

	"github.com/eventsourced-go/eventsourced/eventlog"
)

// countingLog wraps a Log: it counts appends and the records ReadEntity
// yields, and can add a fixed latency to every Append, standing in for a
// store's round trip.
type countingLog struct {
	eventlog.Log
	delay   time.Duration
	appends atomic.Int64
	read    atomic.Int64
	waited  atomic.Int64 // nanoseconds spent in the simulated latency
}

// avgDelay returns the mean simulated latency an append really waited.
func (l *countingLog) avgDelay() time.Duration {
	n := l.appends.Load()
	if n == 0 {
		return 0
	}
	return time.Duration(l.waited.Load() / n)
}

func (l *countingLog) Append(ctx context.Context, typ, id string, expected uint64, events ...eventlog.Event) (uint64, error) {
	if l.delay > 0 {
		t0 := time.Now()
		defer func() { l.waited.Add(int64(time.Since(t0))) }()
		t := time.NewTimer(l.delay)
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			return 0, ctx.Err()
		}
	}
	l.appends.Add(1)
	return l.Log.Append(ctx, typ, id, expected, events...)
}

func (l *countingLog) ReadEntity(ctx context.Context, typ, id string, from uint64) iter.Seq2[eventlog.Record, error] {
	return func(yield func(eventlog.Record, error) bool) {
		for rec, err := range l.Log.ReadEntity(ctx, typ, id, from) {
			if err == nil {
				l.read.Add(1)
			}
			if !yield(rec, err) {
				return
			}
		}
	}
}
