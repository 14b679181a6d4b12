// Package telemetrytest records what the module's packages report through
// OpenTelemetry, for their tests: an SDK tracer provider with an in-memory
// exporter and a meter provider with a manual reader, and the look-ups the
// tests make on them (spans by name, a counter's sum, a histogram's data
// point, a span's attributes and links).
//
// It imports the OpenTelemetry SDK and is meant for tests only; the
// library packages never import it.
//
// # Concurrency
//
// An Observed is safe for concurrent use: the components under test report
// to it from their goroutines while the test reads it.
//
// # Errors
//
// A look-up that finds data of the wrong kind, or not exactly the data
// point asked for, fails the test with a message naming the metric.
package telemetrytest
