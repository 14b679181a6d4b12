package cluster

import "sync/atomic"

// handoff orders, for the race detector, protoactor-go's unsynchronized
// BlockList: its endpoint reader reads the block list without the lock when
// a member connects, and MemberList.UpdateClusterTopology replaces it (under
// the lock) whenever a member joins or leaves, on whatever goroutine the
// provider calls it from; in one process the test provider calls every
// member's from the goroutine of the member that joins or leaves. Every
// message remoting delivers to this package (a command to a router, a reply
// to a request, the start probe) passes handoff after the connection's
// reader goroutine read the block list, and a member passes it again before
// it registers with or deregisters from the provider, so the reads come
// before the replacement. It costs one uncontended-in-practice atomic add
// per command on each side.
var handoff atomic.Int64

func syncPoint() { handoff.Add(1) }
