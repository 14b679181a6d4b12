package timer

import (
	"context"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"

	itel "github.com/eventsourced-go/eventsourced/internal/telemetry"
)

// scope is the OpenTelemetry instrumentation scope of this package.
const scope = "github.com/eventsourced-go/eventsourced/timer"

// timersKey is the metric attribute naming the timers (their slice's
// name for a slice).
const timersKey = attribute.Key("eventsourced.timers")

// telemetry is the Timers' instruments. Nothing is measured until a meter
// provider is installed (the global one by default).
type telemetry struct {
	metering *itel.Metering
	inst     itel.Instruments

	fires       metric.Int64Counter
	lateness    metric.Float64Histogram
	storeErrors metric.Int64Counter
	pending     metric.Int64ObservableGauge
	due         metric.Int64ObservableGauge
	paused      metric.Int64ObservableGauge

	byTimers, ok, failed itel.Attrs
}

// lateBounds are the lateness histogram's boundaries in seconds, from
// 1 ms to an hour.
var lateBounds = []float64{0.001, 0.005, 0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900, 3600}

func (t *telemetry) init(mp metric.MeterProvider, name string) {
	t.metering = itel.NewMetering(mp, scope, false)
	t.inst = itel.Instruments{Meter: t.metering.Meter()}
	in := &t.inst
	t.fires = in.Counter("eventsourced.timer.fires", "{fire}", "Calls of the fire function, by timers and outcome (ok, failed: it returned an error or panicked).")
	t.lateness = in.Histogram("eventsourced.timer.lateness", "s", "How long after its due time a timer's fire function was called successfully, by timers.", lateBounds...)
	t.storeErrors = in.Counter("eventsourced.timer.store.errors", "{command}", "Commands to the timer entities that failed (checking, recording a firing, renewing) and are retried, by timers.")
	t.pending = in.Gauge("eventsourced.timer.pending", "{timer}", "Timers read as scheduled and not yet as fired or cancelled (Status.Pending), by timers.")
	t.due = in.Gauge("eventsourced.timer.due", "{timer}", "Pending timers that are due and wait for a worker or a retry (Status.Due), by timers.")
	t.paused = in.Gauge("eventsourced.timer.paused", "1", "1 while the control records pause the running timers, else 0, by timers.")
	n := timersKey.String(name)
	t.byTimers = itel.NewAttrs(n)
	t.ok = itel.NewAttrs(n, itel.Outcome.String("ok"))
	t.failed = itel.NewAttrs(n, itel.Outcome.String("failed"))
}

// fired counts a fire call and, if it succeeded, how late it came.
func (t *telemetry) fired(ok bool, at, now time.Time) {
	if !t.metering.On() {
		return
	}
	ctx := context.Background()
	if !ok {
		t.fires.Add(ctx, 1, t.failed.Add...)
		return
	}
	t.fires.Add(ctx, 1, t.ok.Add...)
	t.lateness.Record(ctx, max(now.Sub(at), 0).Seconds(), t.byTimers.Record...)
}

// storeError counts a failed command to a timer entity.
func (t *telemetry) storeError() {
	if t.metering.On() {
		t.storeErrors.Add(context.Background(), 1, t.byTimers.Add...)
	}
}

// observe reports the gauges of the running timers.
func (t *Timers) observe(_ context.Context, o metric.Observer) error {
	st := t.Status()
	paused := int64(0)
	if st.Paused {
		paused = 1
	}
	o.ObserveInt64(t.tel.pending, int64(st.Pending), t.tel.byTimers.Observe...)
	o.ObserveInt64(t.tel.due, int64(st.Due), t.tel.byTimers.Observe...)
	o.ObserveInt64(t.tel.paused, paused, t.tel.byTimers.Observe...)
	return nil
}
