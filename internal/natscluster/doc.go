// Package natscluster runs a NATS JetStream cluster of several nats-server
// processes on the loopback interface, for the fault tests and the
// benchmarks that need replicated streams: a node can be killed with
// SIGKILL mid-load and restarted on the same ports and data directory.
//
// Each node is a separate process: [Start] re-executes the current binary
// (os.Args[0]) with an environment variable that [RunIfChild] recognises.
// A program or test binary that uses the package calls RunIfChild first
// thing in main or TestMain; in a node process it runs the nats-server (in
// that process, from github.com/nats-io/nats-server/v2/server) until it is
// killed or gets SIGTERM or SIGINT, and exits; elsewhere it returns at once.
//
//	func TestMain(m *testing.M) {
//		natscluster.RunIfChild()
//		os.Exit(m.Run())
//	}
//
// Every node listens on 127.0.0.1 only, on free ports: one for clients,
// one for the routes between the nodes and one for HTTP monitoring (which
// [Cluster.StreamState] reads). The nodes are named "n0", "n1", ... in the
// cluster [ClusterName], each with JetStream storing its files in its own
// directory under the cluster's directory, where its output goes too
// (n0.log, ...), for debugging.
//
// A node process dies with its parent: on Linux the kernel kills it when
// the parent dies (Pdeathsig), and everywhere it exits when it sees that its
// parent process changed.
//
// It is internal: a fixture of this module's tests and benchmarks, not an
// API.
//
// # Concurrency
//
// A [Cluster] is safe for concurrent use. It owns one goroutine per running
// node process, which waits for the process to exit; [Cluster.Kill] and
// [Cluster.Stop] wait for it.
//
// # Errors
//
// Bad arguments ([Start] with no directory or fewer than one node, a node
// index out of range) fail with an error matching [ErrInvalid] that names
// the value. A node that does not come up within the ctx of [Start] or
// [Cluster.Restart] fails with an error naming the node and its log file.
// [Cluster.Kill], [Cluster.Restart] and [Cluster.StreamState] called after
// [Cluster.Stop] return [ErrStopped].
package natscluster
