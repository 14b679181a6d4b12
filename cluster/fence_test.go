package cluster_test

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	testprovider "github.com/asynkron/protoactor-go/cluster/clusterproviders/test"

	"github.com/eventsourced-go/eventsourced/cluster"
	"github.com/eventsourced-go/eventsourced/eventlog"
)

func TestWithPauseFenceRejectsBadDurations(t *testing.T) {
	for _, d := range []time.Duration{-time.Second, time.Millisecond, 99 * time.Millisecond} {
		_, err := cluster.NewMember("x", eventlog.NewMemory(), testprovider.NewTestProvider(testprovider.NewInMemAgent()), cluster.WithPauseFence(d))
		if !errors.Is(err, cluster.ErrInvalid) {
			t.Errorf("WithPauseFence(%v): %v, want ErrInvalid", d, err)
		}
	}
	for _, d := range []time.Duration{0, 100 * time.Millisecond, 5 * time.Second} {
		m, err := cluster.NewMember("x", eventlog.NewMemory(), testprovider.NewTestProvider(testprovider.NewInMemAgent()), cluster.WithPauseFence(d))
		if err != nil {
			t.Errorf("WithPauseFence(%v): %v", d, err)
			continue
		}
		_ = m.Shutdown(context.Background())
	}
}

// BenchmarkAskLocal measures Ask on entities the caller's member owns,
// with the pause fence's check on the hot path (default) and without it.
func BenchmarkAskLocal(b *testing.B) {
	for _, tc := range []struct {
		name string
		d    time.Duration
	}{{"fence", time.Second}, {"nofence", 0}} {
		b.Run(tc.name, func(b *testing.B) {
			nodes := startNodes(b, 1, eventlog.NewMemory(), cluster.WithPauseFence(tc.d))
			k := nodes[0].k
			ids := make([]string, 1000)
			for i := range ids {
				ids[i] = fmt.Sprintf("b-%d", i)
			}
			ctx := context.Background()
			b.ReportAllocs()
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				i := 0
				for pb.Next() {
					if _, err := cluster.Ask(ctx, k.Ref(ids[i%len(ids)]), Get{}); err != nil {
						b.Error(err)
						return
					}
					i++
				}
			})
		})
	}
}

// BenchmarkFenceCheck measures the pause fence's check alone: what every
// command run on a member pays.
func BenchmarkFenceCheck(b *testing.B) {
	nodes := startNodes(b, 1, eventlog.NewMemory())
	m := nodes[0].m
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if !cluster.FenceOpen(m) {
				b.Error("fenced")
				return
			}
		}
	})
}
