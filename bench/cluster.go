package main

import (
	"context"
	"fmt"
	"os"
	"time"

	testprovider "github.com/asynkron/protoactor-go/cluster/clusterproviders/test"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/eventsourced-go/eventsourced/binarize"
	"github.com/eventsourced-go/eventsourced/cluster"
	"github.com/eventsourced-go/eventsourced/cluster/clusterpb"
	"github.com/eventsourced-go/eventsourced/eventlog"
	"github.com/eventsourced-go/eventsourced/internal/natscluster"
	"github.com/eventsourced-go/eventsourced/natslog"
)

// The cluster scenario: 3 members on loopback (one process, remoting over
// 127.0.0.1 TCP, the in-process test provider), 1,000 counter entities, two
// thirds of the commands to another member, over three logs:
//   - r3: a 3-node NATS JetStream cluster (3 nats-server processes routed on
//     loopback, started by this program), event stream and snapshot bucket
//     at 3 replicas: every append is acknowledged once 2 of 3 servers have it;
//   - r1: one nats-server process, 1 replica;
//   - memory: one in-memory log shared by the members (what a cluster costs
//     without a store).
//
// The reference is protoactor-go's cluster.Request of the same envelope from
// one caller, one at a time, on r3.

func init() {
	Register(Scenario{
		Name:      "cluster",
		Doc:       "3 members on loopback, 1,000 entities, commands from every member, over a 3-node JetStream cluster (R3), one node (R1) and memory",
		Unit:      "commands",
		Subject:   "eventsourced-r3",
		Reference: "sequential-request-r3",
		Timeout:   4 * time.Minute,
		Targets: []Target{{
			Desc: "eventsourced-r3 >= 5x sequential cluster.Request on R3",
			Check: func(s *Summary) (string, bool) {
				v, ok := s.Ratio("eventsourced-r3", "sequential-request-r3")
				return fmt.Sprintf("%.2fx", v), ok && v >= 5
			},
		}},
		Reps: 2,
		Systems: []System{
			{Name: "eventsourced-r3", Role: Subject, Doc: "cluster.Ask from 600 concurrent callers spread over the 3 members; natslog on 3 nats-server processes, stream and bucket at 3 replicas", Run: clusterConcurrent(storeR3)},
			{Name: "eventsourced-r1", Role: Variant, Doc: "the same on one nats-server process, 1 replica", Run: clusterConcurrent(storeR1)},
			{Name: "eventsourced-memory", Role: Variant, Doc: "the same on one in-memory log shared by the members", Run: clusterConcurrent(storeMemory)},
			{Name: "sequential-request-r3", Role: Ceiling, Doc: "one caller, protoactor-go cluster.Request of the same envelope, one at a time, on R3", Run: clusterSequential(storeR3)},
			{Name: "sequential-request-memory", Role: Variant, Doc: "the same on the in-memory log", Run: clusterSequential(storeMemory)},
		},
	})
}

// clusterStore is a log for the members and what stops it.
type clusterStore func(ctx context.Context) (eventlog.Log, func(), error)

func storeMemory(context.Context) (eventlog.Log, func(), error) {
	return eventlog.NewMemory(), func() {}, nil
}

func storeR3(ctx context.Context) (eventlog.Log, func(), error) { return natsClusterStore(ctx, 3) }
func storeR1(ctx context.Context) (eventlog.Log, func(), error) { return natsClusterStore(ctx, 1) }

// natsClusterStore starts n nats-server processes (see
// internal/natscluster; main calls natscluster.RunIfChild) and returns
// natslog on them with everything at n replicas.
func natsClusterStore(ctx context.Context, n int) (eventlog.Log, func(), error) {
	dir, err := os.MkdirTemp("", "bench-cluster-nats-")
	if err != nil {
		return nil, nil, err
	}
	startCtx, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	c, err := natscluster.Start(startCtx, dir, n)
	if err != nil {
		os.RemoveAll(dir)
		return nil, nil, err
	}
	// A fresh bound for the setup: a stream at 3 replicas waits for its
	// raft group, which under load takes a while after the servers started.
	setupCtx, cancelSetup := context.WithTimeout(ctx, 60*time.Second)
	defer cancelSetup()
	nc, err := c.Connect(nats.Name("bench cluster"))
	var log *natslog.Log
	if err == nil {
		var js jetstream.JetStream
		if js, err = jetstream.New(nc); err == nil {
			if err = natslog.Setup(setupCtx, js, natslog.WithReplicas(n)); err == nil {
				log, err = natslog.New(setupCtx, js)
			}
		}
	}
	stop := func() {
		if log != nil {
			log.Close()
		}
		if nc != nil {
			nc.Close()
		}
		c.Stop()
		os.RemoveAll(dir)
	}
	if err != nil {
		stop()
		return nil, nil, fmt.Errorf("natslog on %d nats-server(s): %w", n, err)
	}
	return log, stop, nil
}

type clusterNode struct {
	m *cluster.Member
	k *cluster.Kind[Counter, CounterEvent]
}

// startCluster starts 3 members sharing one log of store.
func startCluster(ctx context.Context, store clusterStore) ([]clusterNode, func(), error) {
	log, stopLog, err := store(ctx)
	if err != nil {
		return nil, nil, err
	}
	agent := testprovider.NewInMemAgent()
	nodes := make([]clusterNode, 3)
	members := make([]*cluster.Member, 3)
	for i := range nodes {
		m, k, err := newClusterNode(log, agent)
		if err != nil {
			stopLog()
			return nil, nil, err
		}
		nodes[i], members[i] = clusterNode{m: m, k: k}, m
	}
	if err := cluster.StartAll(ctx, members...); err != nil {
		stopLog()
		return nil, nil, err
	}
	stop := func() {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		// One at a time: members shutting down together race inside
		// protoactor-go's remoting (see cluster's workarounds).
		for _, m := range members {
			_ = m.Shutdown(ctx)
		}
		stopLog()
	}
	return nodes, stop, nil
}

// newClusterNode is one member serving Counter with its increment command.
func newClusterNode(log eventlog.Log, agent *testprovider.InMemAgent) (*cluster.Member, *cluster.Kind[Counter, CounterEvent], error) {
	m, err := cluster.NewMember("bench", log, testprovider.NewTestProvider(agent))
	if err != nil {
		return nil, nil, err
	}
	k, err := cluster.Register(m, counterType())
	if err != nil {
		return nil, nil, err
	}
	if err := cluster.RegisterCommand(k, "increment", binarize.Value[Increment](binarize.Msgpack), binarize.Value[int64](binarize.Msgpack)); err != nil {
		return nil, nil, err
	}
	return m, k, nil
}

func clusterConcurrent(store clusterStore) func(context.Context, *Env) (Result, error) {
	return func(ctx context.Context, env *Env) (Result, error) { return runClusterConcurrent(ctx, env, store) }
}

func runClusterConcurrent(ctx context.Context, env *Env, store clusterStore) (Result, error) {
	nodes, stop, err := startCluster(ctx, store)
	if err != nil {
		return Result{}, err
	}
	defer stop()
	entities := env.Scale(1000, 30)
	callers := env.Scale(600, 6)
	perCaller := env.Scale(100_000, 600) / callers
	remote := 0
	for i := range entities {
		if nodes[i%3].m.Owner("Counter", entityID(i)) != nodes[i%3].m.Address() {
			remote++
		}
	}
	res, err := Drive(ctx, env, callers, perCaller, func(ctx context.Context, caller, i int) error {
		e := (caller + i*callers) % entities
		n := nodes[caller%3]
		_, err := cluster.Ask(ctx, n.k.Ref(entityID(e)), Increment{By: 1})
		return err
	})
	if err == nil {
		var st cluster.Stats
		for _, n := range nodes {
			s := n.m.Stats()
			st.Retries += s.Retries
			st.Messages += s.Messages
			st.Remote += s.Remote
		}
		res.Metrics = map[string]float64{
			"remote share":     float64(remote) / float64(entities),
			"retries":          float64(st.Retries),
			"commands/message": float64(st.Remote) / max(1, float64(st.Messages)),
		}
	}
	return res, err
}

func clusterSequential(store clusterStore) func(context.Context, *Env) (Result, error) {
	return func(ctx context.Context, env *Env) (Result, error) { return runClusterSequential(ctx, env, store) }
}

func runClusterSequential(ctx context.Context, env *Env, store clusterStore) (Result, error) {
	nodes, stop, err := startCluster(ctx, store)
	if err != nil {
		return Result{}, err
	}
	defer stop()
	entities := env.Scale(1000, 30)
	codec := binarize.Value[Increment](binarize.Msgpack)
	payload, err := codec.Encode(Increment{By: 1})
	if err != nil {
		return Result{}, err
	}
	c := nodes[0].m.Cluster()
	// protoactor-go's replies to Cluster.Request pass none of the cluster
	// package's hand-off points, which order its remoting's unsynchronized
	// block-list reads before a member's shutdown (see cluster's
	// workarounds): a round of cluster.Ask between every pair of members
	// passes them before stop.
	defer askEveryPair(ctx, nodes)
	return Drive(ctx, env, 1, env.Scale(5000, 100), func(ctx context.Context, _, i int) error {
		id := entityID(i % entities)
		env := &clusterpb.CommandEnvelope{EntityType: "Counter", EntityId: id, Command: "increment", Payload: payload}
		res, err := c.Request(id, "Counter", env)
		if err != nil {
			return err
		}
		if rep, ok := res.(*clusterpb.ReplyEnvelope); !ok || rep.GetFailed() {
			return fmt.Errorf("cluster.Request %s: %v", id, res)
		}
		return nil
	})
}

// askEveryPair sends, from every member, one command to an entity each other
// member owns.
func askEveryPair(ctx context.Context, nodes []clusterNode) {
	for _, from := range nodes {
		for _, to := range nodes {
			if to.m == from.m {
				continue
			}
			for i := 0; ; i++ {
				id := fmt.Sprintf("pair-%d", i)
				if from.m.Owner("Counter", id) == to.m.Address() {
					_, _ = cluster.Ask(ctx, from.k.Ref(id), Increment{By: 1})
					break
				}
			}
		}
	}
}
