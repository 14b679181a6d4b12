// Package telemetry is what the packages of this module share to report
// through OpenTelemetry: the attribute keys and metric names, the trace
// context carried in event metadata, and the detection of a tracer that
// records nothing, so that a program without an OpenTelemetry SDK pays
// next to nothing for the instrumentation.
//
// It uses the OpenTelemetry API only (trace, metric, propagation), never an
// SDK or exporter. It is internal: the packages' options (WithTracerProvider,
// WithMeterProvider, WithPropagator) are the public surface.
//
// # Concurrency
//
// Everything here is safe for concurrent use.
//
// # Errors
//
// Instruments that cannot be created are replaced by no-op ones (the
// OpenTelemetry API's rule: telemetry never fails the program); a malformed
// trace context in metadata is ignored.
package telemetry
