package telemetry

import (
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/metric/noop"
)

// Metering tells the instrumentation whether measurements are worth
// making, as [Tracing] does for spans: each costs a call through the
// instrument's interface even when nothing records it.
type Metering struct {
	meter  metric.Meter
	global bool // follow the global provider
	on     bool // for a provider the caller gave
}

// initialGlobalMeter is the global meter provider as the program started.
var initialGlobalMeter = otel.GetMeterProvider()

// NewMetering returns the Metering of mp, the global provider if mp is
// nil, with a meter of instrumentation scope scope; disabled, a no-op
// meter, off for good.
func NewMetering(mp metric.MeterProvider, scope string, disabled bool) *Metering {
	switch {
	case disabled:
		return &Metering{meter: noop.NewMeterProvider().Meter(scope)}
	case mp == nil:
		return &Metering{meter: otel.GetMeterProvider().Meter(scope), global: true}
	}
	_, noopMP := mp.(noop.MeterProvider)
	return &Metering{meter: mp.Meter(scope), on: !noopMP}
}

// On reports whether measurements are worth making: an atomic load.
func (m *Metering) On() bool {
	if m.global {
		return otel.GetMeterProvider() != initialGlobalMeter
	}
	return m.on
}

// Meter returns the meter.
func (m *Metering) Meter() metric.Meter { return m.meter }

// Instruments creates instruments on a meter, falling back to no-op ones
// when the meter refuses one (an invalid name would be a bug here; the
// OpenTelemetry rule is that telemetry never fails the program), and
// remembers the first error for the component to log.
type Instruments struct {
	Meter metric.Meter
	Err   error
}

func (in *Instruments) keep(err error) {
	if err != nil && in.Err == nil {
		in.Err = err
	}
}

// Counter returns an Int64Counter.
func (in *Instruments) Counter(name, unit, desc string) metric.Int64Counter {
	c, err := in.Meter.Int64Counter(name, metric.WithUnit(unit), metric.WithDescription(desc))
	if err != nil {
		in.keep(err)
		return noop.Int64Counter{}
	}
	return c
}

// UpDownCounter returns an Int64UpDownCounter.
func (in *Instruments) UpDownCounter(name, unit, desc string) metric.Int64UpDownCounter {
	c, err := in.Meter.Int64UpDownCounter(name, metric.WithUnit(unit), metric.WithDescription(desc))
	if err != nil {
		in.keep(err)
		return noop.Int64UpDownCounter{}
	}
	return c
}

// Histogram returns a Float64Histogram with bucket boundaries bounds (the
// SDK's defaults if none).
func (in *Instruments) Histogram(name, unit, desc string, bounds ...float64) metric.Float64Histogram {
	opts := []metric.Float64HistogramOption{metric.WithUnit(unit), metric.WithDescription(desc)}
	if len(bounds) > 0 {
		opts = append(opts, metric.WithExplicitBucketBoundaries(bounds...))
	}
	h, err := in.Meter.Float64Histogram(name, opts...)
	if err != nil {
		in.keep(err)
		return noop.Float64Histogram{}
	}
	return h
}

// IntHistogram returns an Int64Histogram with bucket boundaries bounds.
func (in *Instruments) IntHistogram(name, unit, desc string, bounds ...float64) metric.Int64Histogram {
	opts := []metric.Int64HistogramOption{metric.WithUnit(unit), metric.WithDescription(desc)}
	if len(bounds) > 0 {
		opts = append(opts, metric.WithExplicitBucketBoundaries(bounds...))
	}
	h, err := in.Meter.Int64Histogram(name, opts...)
	if err != nil {
		in.keep(err)
		return noop.Int64Histogram{}
	}
	return h
}

// Gauge returns an Int64ObservableGauge; observe it with Observe.
func (in *Instruments) Gauge(name, unit, desc string) metric.Int64ObservableGauge {
	g, err := in.Meter.Int64ObservableGauge(name, metric.WithUnit(unit), metric.WithDescription(desc))
	if err != nil {
		in.keep(err)
		return noop.Int64ObservableGauge{}
	}
	return g
}

// FloatGauge returns a Float64ObservableGauge; observe it with Observe.
func (in *Instruments) FloatGauge(name, unit, desc string) metric.Float64ObservableGauge {
	g, err := in.Meter.Float64ObservableGauge(name, metric.WithUnit(unit), metric.WithDescription(desc))
	if err != nil {
		in.keep(err)
		return noop.Float64ObservableGauge{}
	}
	return g
}

// Observe registers callback for observables; Unregister the result when
// the component closes, so a meter does not keep calling a closed one.
func (in *Instruments) Observe(callback metric.Callback, observables ...metric.Observable) metric.Registration {
	reg, err := in.Meter.RegisterCallback(callback, observables...)
	if err != nil {
		in.keep(err)
		return noopRegistration{}
	}
	return reg
}

type noopRegistration struct{ metric.Registration }

func (noopRegistration) Unregister() error { return nil }

// Durations are histogram boundaries in seconds, from 50 µs to 10 s, for
// commands, appends and recoveries.
var Durations = []float64{0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10}

// Sizes are histogram boundaries for counts per batch (commands per
// append, events per append, appends per transaction).
var Sizes = []float64{1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 4096}

// Attrs is an attribute set made into the options of each kind of
// measurement, once, so that measuring allocates nothing.
type Attrs struct {
	Add     []metric.AddOption
	Record  []metric.RecordOption
	Observe []metric.ObserveOption
}

// NewAttrs returns the Attrs of kvs.
func NewAttrs(kvs ...attribute.KeyValue) Attrs {
	o := metric.WithAttributeSet(attribute.NewSet(kvs...))
	return Attrs{Add: []metric.AddOption{o}, Record: []metric.RecordOption{o}, Observe: []metric.ObserveOption{o}}
}
