package cluster

// RouterName exposes the name of the actor that takes a type's envelopes on
// every member, for tests that address one member directly.
func RouterName(kind string) string { return routerName(kind) }

// Score exposes the rendezvous score, for comparison with protoactor-go's.
func Score(id, addr string) uint32 { return score(id, addr) }
