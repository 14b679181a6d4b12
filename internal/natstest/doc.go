// Package natstest gives tests an embedded NATS JetStream server: started
// in the test's temporary directory, connected to, set up for natslog, and
// stopped when the test ends.
//
// It is for tests only; the library packages never import it.
//
// # Concurrency
//
// The functions are safe to call from parallel tests: each starts its own
// server on a free loopback port.
//
// # Errors
//
// A server that does not start, a connection or a set-up that fails fails
// the test at once (t.Fatal), naming what failed.
package natstest
