package logcopy_test

import (
	"context"
	"fmt"
	"testing"

	"github.com/eventsourced-go/eventsourced/eventlog"
	"github.com/eventsourced-go/eventsourced/internal/natstest"
	"github.com/eventsourced-go/eventsourced/logcopy"
)

// BenchmarkCopy copies the chain test's 10,000 events over each hop into
// a fresh target, one append at a time and 8 at once (with windows of
// 1,000 events and of all 10,000), and reports events per second,
// verification included.
func BenchmarkCopy(b *testing.B) {
	ctx := context.Background()
	mem := eventlog.NewMemory()
	generate(b, mem, chainEvents, 200)
	nats, _ := natstest.Log(b)
	pg := postgresLog(b)
	for _, dst := range []eventlog.Log{nats, pg} {
		if _, err := logcopy.Copy(ctx, mem, dst, chainTypes, logcopy.WithConcurrency(8)); err != nil {
			b.Fatal(err)
		}
	}
	for _, hop := range []struct {
		name string
		src  eventlog.Log
		dst  func(b *testing.B) eventlog.Log
	}{
		{"memory-memory", mem, func(*testing.B) eventlog.Log { return eventlog.NewMemory() }},
		{"memory-NATS", mem, func(b *testing.B) eventlog.Log { l, _ := natstest.Log(b); return l }},
		{"NATS-PostgreSQL", nats, func(b *testing.B) eventlog.Log { return postgresLog(b) }},
		{"PostgreSQL-memory", pg, func(*testing.B) eventlog.Log { return eventlog.NewMemory() }},
	} {
		for _, mode := range []struct{ conc, every int }{{1, logcopy.DefaultCheckpointEvery}, {8, logcopy.DefaultCheckpointEvery}, {8, chainEvents}} {
			b.Run(fmt.Sprintf("%s/concurrency=%d/every=%d", hop.name, mode.conc, mode.every), func(b *testing.B) {
				for range b.N {
					b.StopTimer()
					dst := hop.dst(b)
					b.StartTimer()
					if _, err := logcopy.Copy(ctx, hop.src, dst, chainTypes, logcopy.WithConcurrency(mode.conc), logcopy.WithCheckpointEvery(mode.every)); err != nil {
						b.Fatal(err)
					}
				}
				b.ReportMetric(float64(chainEvents*b.N)/b.Elapsed().Seconds(), "events/s")
			})
		}
	}
}
