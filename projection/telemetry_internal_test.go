package projection

import (
	"context"
	"testing"

	"github.com/eventsourced-go/eventsourced/eventlog"
)

// With the default (global) providers and no SDK installed, measuring a
// batch starts no span, reads no clock and allocates nothing.
func TestTelemetryOffCostsNothing(t *testing.T) {
	var tel telemetry
	tel.init(&config{}, "p", "T")
	batch := []eventlog.Record{{Position: 1, Metadata: map[string]string{"traceparent": "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"}}}
	ctx := context.Background()
	var bs batchStart
	allocs := testing.AllocsPerRun(100, func() {
		var bctx context.Context
		bctx, bs = tel.startBatch(ctx, batch, false)
		tel.endBatch(bctx, bs, len(batch), false, nil)
		tel.retried(ctx)
		tel.poisoned(ctx, true)
	})
	if allocs != 0 {
		t.Errorf("%v allocations per batch, want 0", allocs)
	}
	if bs.span != nil || !bs.start.IsZero() || bs.metered {
		t.Errorf("batch measured %+v, want nothing", bs)
	}
}
