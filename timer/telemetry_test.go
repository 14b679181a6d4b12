package timer_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"

	"github.com/eventsourced-go/eventsourced/eventlog"
	"github.com/eventsourced-go/eventsourced/internal/telemetrytest"
	"github.com/eventsourced-go/eventsourced/projection"
	"github.com/eventsourced-go/eventsourced/timer"
)

// gauge returns the value of the int64 gauge name for the timers named
// timers, and whether it has a data point.
func gauge(t *testing.T, o *telemetrytest.Observed, name, timers string) (int64, bool) {
	t.Helper()
	data := o.Metric(t, name)
	if data == nil {
		return 0, false
	}
	g, ok := data.(metricdata.Gauge[int64])
	if !ok {
		t.Fatalf("%s is a %T, want an int64 gauge", name, data)
	}
	for _, dp := range g.DataPoints {
		if telemetrytest.Has(dp.Attributes, attribute.String("eventsourced.timers", timers)) {
			return dp.Value, true
		}
	}
	return 0, false
}

// Rule: the timers count their fire calls by outcome, record how late the
// successful ones came, and report pending, due and paused timers while
// running; the gauges go when the timers stop.
func TestMetrics(t *testing.T) {
	ctx := context.Background()
	o := telemetrytest.New(t)
	offsets := projection.NewMemory()
	failed := false
	rec := &recorder{fail: func(tm timer.Timer) error {
		if tm.ID == "b" && !failed {
			failed = true // one worker at a time fires b
			return errors.New("bus down")
		}
		return nil
	}}
	sys, tm := run(t, eventlog.NewMemory(), offsets, "tel", rec.fire, timer.WithMeterProvider(o.MP),
		timer.WithRetry(10*time.Millisecond, 10*time.Millisecond), timer.WithControlInterval(20*time.Millisecond))
	for _, id := range []string{"a", "b"} {
		if err := tm.After(ctx, id, 0, nil); err != nil {
			t.Fatal(err)
		}
	}
	if err := tm.After(ctx, "later", time.Hour, nil); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "a and b to be recorded", func() bool { st := tm.Status(); return st.Recorded == 2 && st.Pending == 1 })
	name := attribute.String("eventsourced.timers", "tel")
	if ok, bad := o.Count(t, "eventsourced.timer.fires", name, attribute.String("eventsourced.outcome", "ok")),
		o.Count(t, "eventsourced.timer.fires", name, attribute.String("eventsourced.outcome", "failed")); ok != 2 || bad != 1 {
		t.Errorf("fires: %d ok, %d failed; want 2 and 1", ok, bad)
	}
	h := telemetrytest.Histogram[float64](t, o, "eventsourced.timer.lateness", name)
	if lo, ok := h.Min.Value(); h.Count != 2 || !ok || lo < 0 || h.Sum > 10 {
		t.Errorf("lateness: %d recorded, sum %.3fs; want 2, each at least 0 and together under 10s", h.Count, h.Sum)
	}
	for _, g := range []struct {
		name string
		want int64
	}{{"eventsourced.timer.pending", 1}, {"eventsourced.timer.due", 0}, {"eventsourced.timer.paused", 0}} {
		if v, ok := gauge(t, o, g.name, "tel"); !ok || v != g.want {
			t.Errorf("%s: %d (data point %v), want %d", g.name, v, ok, g.want)
		}
	}
	if err := projection.Pause(ctx, offsets, "tel"); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the pause to be read", func() bool { return tm.Status().Paused })
	if v, _ := gauge(t, o, "eventsourced.timer.paused", "tel"); v != 1 {
		t.Errorf("paused gauge %d while paused, want 1", v)
	}
	if n := o.Count(t, "eventsourced.timer.store.errors", name); n != 0 {
		t.Errorf("store errors %d, want 0", n)
	}
	stop(t, sys, tm)
	if _, ok := gauge(t, o, "eventsourced.timer.pending", "tel"); ok {
		t.Error("the pending gauge is still reported after Stop")
	}
}

// Rule: WithMeterProvider refuses nil.
func TestMetricsBadInput(t *testing.T) {
	sys, _ := build(t, eventlog.NewMemory(), projection.NewMemory(), "ok", (&recorder{}).fire)
	_, err := timer.New(sys, "x", projection.NewMemory(), (&recorder{}).fire, timer.WithMeterProvider(nil))
	if !errors.Is(err, timer.ErrInvalid) || err.Error() != "timers x: timer: invalid argument: WithMeterProvider(nil)" {
		t.Fatalf("WithMeterProvider(nil): %v", err)
	}
}
