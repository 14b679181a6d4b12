package postgreslog_test

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/eventsourced-go/eventsourced/eventlog"
	"github.com/eventsourced-go/eventsourced/postgreslog"
)

// BenchmarkReadAll compares reading 100,000 events of 4 types (25,000
// each, interleaved) with ReadAll, of every type and of two, against
// ReadType of one type, in events per second.
func BenchmarkReadAll(b *testing.B) {
	pool := postgreslog.NewTestPool(b, nil)
	l := postgreslog.NewTestLog(b, pool)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	b.Cleanup(cancel)
	const types, idsPerType, appendsPerID, perAppend = 4, 50, 10, 50 // 100,000 events
	var wg sync.WaitGroup
	for w := range types * idsPerType {
		wg.Go(func() {
			typ, id := fmt.Sprintf("t%d", w%types), fmt.Sprintf("i%d", w)
			for i := range appendsPerID {
				if _, err := l.Append(ctx, typ, id, uint64(i*perAppend), events("e", perAppend)...); err != nil {
					b.Errorf("Append: %v", err)
					return
				}
			}
		})
	}
	wg.Wait()
	if _, err := pool.Exec(ctx, "ANALYZE "+postgreslog.EventsTable(l)); err != nil {
		b.Fatalf("ANALYZE: %v", err)
	}
	for _, c := range []struct {
		name string
		read func() func(yield func(eventlog.Record, error) bool)
	}{
		{"ReadAll/every", func() func(yield func(eventlog.Record, error) bool) { return l.ReadAll(ctx, 0) }},
		{"ReadAll/two", func() func(yield func(eventlog.Record, error) bool) { return l.ReadAll(ctx, 0, "t0", "t2") }},
		{"ReadType", func() func(yield func(eventlog.Record, error) bool) { return l.ReadType(ctx, "t1", 0) }},
	} {
		b.Run(c.name, func(b *testing.B) {
			n := 0
			for b.Loop() {
				for _, err := range c.read() {
					if err != nil {
						b.Fatal(err)
					}
					n++
				}
			}
			b.ReportMetric(float64(n)/b.Elapsed().Seconds(), "events/s")
			b.ReportMetric(float64(n)/float64(b.N), "events/op")
		})
	}
}
