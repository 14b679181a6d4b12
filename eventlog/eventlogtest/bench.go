package eventlogtest

import (
	"context"
	"strconv"
	"sync/atomic"
	"testing"

	"github.com/eventsourced-go/eventsourced/eventlog"
	"github.com/eventsourced-go/eventsourced/internal/conformancetest"
)

// benchData is the payload of every benchmark event: the size of a small
// encoded domain event.
var benchData = make([]byte, 64)

// Bench runs the shared benchmarks against the logs newLog returns, each as
// a sub-benchmark with a fresh log. Each reports events/s besides ns/op.
//
//   - AppendParallel: one-event appends, every goroutine to its own many
//     entities, as a busy runtime does.
//   - AppendBatch10: ten-event appends to one entity after another.
//   - ReadEntity1000: replaying a 1,000-event stream, as recovery does.
func Bench(b *testing.B, newLog func(b *testing.B) eventlog.Log) {
	b.Run("AppendParallel", func(b *testing.B) { benchAppendParallel(b, newLog(b)) })
	b.Run("AppendBatch10", func(b *testing.B) { benchAppendBatch(b, newLog(b), 10) })
	b.Run("ReadEntity1000", func(b *testing.B) { benchReadEntity(b, newLog(b), 1000) })
}

// benchType is unique per run so benchmarks can share a database.
func benchType(b *testing.B) string { return conformancetest.NewNames(b).Type("bench") }

func benchAppendParallel(b *testing.B, log eventlog.Log) {
	const entities = 1000
	ctx := context.Background()
	typ := benchType(b)
	var worker atomic.Int64
	var events atomic.Int64
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		w := strconv.FormatInt(worker.Add(1), 10)
		ids := make([]string, entities)
		for i := range ids {
			ids[i] = w + "_" + strconv.Itoa(i)
		}
		last := make([]uint64, entities)
		e := eventlog.Event{Name: "Incremented", Data: benchData}
		n := int64(0)
		for i := 0; pb.Next(); i++ {
			k := i % entities
			if _, err := log.Append(ctx, typ, ids[k], last[k], e); err != nil {
				b.Error(err)
				return
			}
			last[k]++
			n++
		}
		events.Add(n)
	})
	b.ReportMetric(float64(events.Load())/b.Elapsed().Seconds(), "events/s")
}

func benchAppendBatch(b *testing.B, log eventlog.Log, size int) {
	const entities = 1000
	ctx := context.Background()
	typ := benchType(b)
	batch := make([]eventlog.Event, size)
	for i := range batch {
		batch[i] = eventlog.Event{Name: "Incremented", Data: benchData}
	}
	ids := make([]string, entities)
	for i := range ids {
		ids[i] = strconv.Itoa(i)
	}
	last := make([]uint64, entities)
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		k := i % entities
		if _, err := log.Append(ctx, typ, ids[k], last[k], batch...); err != nil {
			b.Fatal(err)
		}
		last[k] += uint64(size)
		i++
	}
	b.ReportMetric(float64(i*size)/b.Elapsed().Seconds(), "events/s")
}

func benchReadEntity(b *testing.B, log eventlog.Log, n int) {
	ctx := context.Background()
	typ, id := benchType(b), "replay"
	batch := make([]eventlog.Event, 100)
	for i := range batch {
		batch[i] = eventlog.Event{Name: "Incremented", Data: benchData}
	}
	for seq := 0; seq < n; seq += len(batch) {
		if _, err := log.Append(ctx, typ, id, uint64(seq), batch[:min(len(batch), n-seq)]...); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportAllocs()
	reads := 0
	for b.Loop() {
		k := 0
		for _, err := range log.ReadEntity(ctx, typ, id, 1) {
			if err != nil {
				b.Fatal(err)
			}
			k++
		}
		if k != n {
			b.Fatalf("read %d events, want %d", k, n)
		}
		reads++
	}
	b.ReportMetric(float64(reads*n)/b.Elapsed().Seconds(), "events/s")
}
