package cluster_test

import (
	"os"
	"testing"

	"go.uber.org/goleak"
)

// leakOptions ignore the goroutines of protoactor-go that Member.Shutdown
// cannot stop, each by its exact function:
//
//   - actor.NewThrottle and NewThrottleWithLogger start a timer goroutine on
//     the first call of each throttle period; the gossiper's throttles run for
//     60 s (it calls them on every state update), the dead-letter one for 1 s.
//     They end on their own: bounded, not leaked.
//   - The test provider's TTL loop ranges over a ticker's channel, which
//     Ticker.Stop never closes: it blocks forever. Only the in-process test
//     provider has it; automanaged and production providers do not.
//
// Everything else of protoactor-go (gossip loop, identity lookup, remoting,
// endpoint managers, actor system) is stopped by Shutdown, which
// TestShutdownLeavesNoGoroutines checks against Cluster.Shutdown(false).
var leakOptions = []goleak.Option{
	goleak.IgnoreTopFunction("github.com/asynkron/protoactor-go/cluster.NewGossipActor.NewThrottleWithLogger.func2.1"),
	goleak.IgnoreTopFunction("github.com/asynkron/protoactor-go/cluster.(*Gossiper).StartGossiping.NewThrottle.func3.1"),
	goleak.IgnoreTopFunction("github.com/asynkron/protoactor-go/actor.NewDeadLetter.NewThrottle.func4.1"),
	goleak.IgnoreTopFunction("github.com/asynkron/protoactor-go/cluster/clusterproviders/test.(*Provider).startTtlReport.func1"),
}

func TestMain(m *testing.M) {
	switch {
	case os.Getenv(memberEnv) != "":
		os.Exit(runMemberProcess())
	case os.Getenv(etcdMemberEnv) != "":
		os.Exit(runEtcdMember())
	case os.Getenv(etcdUnreachableEnv) != "":
		os.Exit(runEtcdUnreachable())
	}
	goleak.VerifyTestMain(m, leakOptions...)
}
