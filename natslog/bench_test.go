package natslog_test

import (
	"context"
	"fmt"
	"iter"
	"sync"
	"testing"
	"time"

	"github.com/eventsourced-go/eventsourced/eventlog"
	"github.com/eventsourced-go/eventsourced/eventlog/eventlogtest"
	"github.com/eventsourced-go/eventsourced/natslog"
)

// BenchmarkLog runs the shared log benchmarks against an embedded server
// with file storage in a temporary directory.
func BenchmarkLog(b *testing.B) {
	_, js := setup(b)
	eventlogtest.Bench(b, func(b *testing.B) eventlog.Log { return newLog(b, js) })
}

// fill appends n events of 100 bytes to l, spread over 1,000 entities of
// each of types, one event per append from 100 goroutines, the types
// interleaved.
func fill(b *testing.B, l eventlog.Log, n int, types ...string) {
	b.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	const writers, entitiesPerWriter = 100, 10
	data := make([]byte, 100)
	var wg sync.WaitGroup
	errs := make(chan error, writers)
	for w := range writers {
		wg.Go(func() {
			seqs := make(map[string]uint64) // by entity
			for i := w; i < n; i += writers {
				e := (i / writers) % entitiesPerWriter
				typ := types[(i/writers/entitiesPerWriter)%len(types)]
				id := fmt.Sprintf("w%d-e%d", w, e)
				if typ != types[0] {
					id += "-" + typ
				}
				_, err := l.Append(ctx, typ, id, seqs[id], eventlog.Event{Name: "Bench", Data: data})
				if err != nil {
					errs <- err
					return
				}
				seqs[id]++
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		b.Fatal(err)
	}
}

// BenchmarkReadAll compares reads by Position of 100,000 stored events:
// ReadType and ReadAll of a stream whose events are all of one type, then
// ReadAll of every type, of two types and of one, and SubscribeAll's
// catch-up, on events of four types interleaved. It reports the records
// yielded per second.
func BenchmarkReadAll(b *testing.B) {
	const n = 100_000
	_, js := setup(b)
	setupTo := func(stream, prefix string) *natslog.Log {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		opts := []natslog.Option{natslog.WithStream(stream), natslog.WithPrefix(prefix), natslog.WithBucket(stream)}
		if err := natslog.Setup(ctx, js, opts...); err != nil {
			b.Fatal(err)
		}
		return newLog(b, js, natslog.WithStream(stream), natslog.WithPrefix(prefix))
	}
	one := setupTo("one", "one")
	fill(b, one, n, "A")
	four := setupTo("four", "four")
	fill(b, four, n, "A", "B", "C", "D")

	run := func(name string, want int, read func(ctx context.Context) iter.Seq2[eventlog.Record, error]) {
		b.Run(name, func(b *testing.B) {
			ctx := context.Background()
			for b.Loop() {
				got := 0
				for _, err := range read(ctx) {
					if err != nil {
						b.Fatal(err)
					}
					if got++; got == want {
						break // a subscription does not end
					}
				}
				if got != want {
					b.Fatalf("read %d records, want %d", got, want)
				}
			}
			b.ReportMetric(float64(want)*float64(b.N)/b.Elapsed().Seconds(), "records/s")
		})
	}
	run("one type/ReadType", n, func(ctx context.Context) iter.Seq2[eventlog.Record, error] { return one.ReadType(ctx, "A", 0) })
	run("one type/ReadAll", n, func(ctx context.Context) iter.Seq2[eventlog.Record, error] { return one.ReadAll(ctx, 0) })
	run("one type/Subscribe", n, func(ctx context.Context) iter.Seq2[eventlog.Record, error] { return one.Subscribe(ctx, "A", 0) })
	run("one type/SubscribeAll", n, func(ctx context.Context) iter.Seq2[eventlog.Record, error] { return one.SubscribeAll(ctx, 0) })
	run("four types/ReadAll", n, func(ctx context.Context) iter.Seq2[eventlog.Record, error] { return four.ReadAll(ctx, 0) })
	run("four types/ReadAll of 2", n/2, func(ctx context.Context) iter.Seq2[eventlog.Record, error] { return four.ReadAll(ctx, 0, "A", "C") })
	run("four types/ReadAll of 1", n/4, func(ctx context.Context) iter.Seq2[eventlog.Record, error] { return four.ReadAll(ctx, 0, "B") })
	run("four types/ReadType", n/4, func(ctx context.Context) iter.Seq2[eventlog.Record, error] { return four.ReadType(ctx, "B", 0) })
	run("four types/SubscribeAll", n, func(ctx context.Context) iter.Seq2[eventlog.Record, error] { return four.SubscribeAll(ctx, 0) })
	run("four types/SubscribeAll of 2", n/2, func(ctx context.Context) iter.Seq2[eventlog.Record, error] {
		return four.SubscribeAll(ctx, 0, "A", "C")
	})
}

// BenchmarkAppendAsync measures AppendAsync's pipeline as the entity
// runtime drives it: 1,000 entities, each with one append in flight, the
// next issued when the previous one's done comes. It reports appends/s;
// ns/op and allocs/op are the client's cost per append (with the embedded
// server's, which runs in the same process).
func BenchmarkAppendAsync(b *testing.B) {
	_, js := setup(b)
	l := newLog(b, js)
	const entities = 1000
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	data := make([]byte, 100)
	events := []eventlog.Event{{Name: "Bench", Data: data}}
	// next carries each entity whose append is settled back to the loop:
	// done must not call the log.
	type settled struct {
		e   int
		err error
	}
	next := make(chan settled, entities)
	seqs := make([]uint64, entities)
	ids := make([]string, entities)
	dones := make([]func(uint64, error), entities)
	for e := range entities {
		ids[e] = fmt.Sprintf("e%d", e)
		dones[e] = func(_ uint64, err error) { next <- settled{e, err} }
	}
	b.ReportAllocs()
	b.ResetTimer()
	issued, inflight := 0, 0
	for e := range min(entities, b.N) {
		l.AppendAsync(ctx, "Bench", ids[e], seqs[e], events, dones[e])
		issued++
		inflight++
	}
	for inflight > 0 {
		s := <-next
		inflight--
		if s.err != nil {
			b.Fatal(s.err)
		}
		seqs[s.e]++
		if issued < b.N {
			l.AppendAsync(ctx, "Bench", ids[s.e], seqs[s.e], events, dones[s.e])
			issued++
			inflight++
		}
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "appends/s")
}
