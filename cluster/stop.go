package cluster

// stopCluster stops protoactor-go's cluster member without its defects:
// Cluster.Shutdown(true) sleeps 2 s and still leaves goroutines behind, and
// Cluster.Shutdown(false) skips stopping the identity lookup and gossip.
func (m *Member) stopCluster() {
	pc := m.pc
	pc.IdentityLookup.Shutdown()
	pc.Gossip.Shutdown()
	pc.Remote.Shutdown(true)
	m.actors.Shutdown()
}
