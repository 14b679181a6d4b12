// Package faultproxy is a TCP proxy on loopback that injects the network
// faults the fault tests need between a client and its server: it can stop
// forwarding (a stalled server, or a peer that accepts connections and
// never answers) and drop every connection (a broken network path), while
// the server itself keeps running.
//
// It is internal: a fixture of this module's tests and benchmarks, not an
// API.
//
// # Concurrency
//
// A [Proxy] is safe for concurrent use. It owns one goroutine to accept and
// two per proxied connection; [Proxy.Close] stops and waits for all of them.
//
// # Errors
//
// [New] fails if it cannot listen on loopback. Connections the target
// refuses are closed at once.
package faultproxy
