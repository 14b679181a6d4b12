package main

import (
	"context"
	"fmt"
	"sync"
	"time"

	testprovider "github.com/asynkron/protoactor-go/cluster/clusterproviders/test"

	"github.com/eventsourced-go/eventsourced/binarize"
	"github.com/eventsourced-go/eventsourced/cluster"
	"github.com/eventsourced-go/eventsourced/cluster/clusterpb"
	"github.com/eventsourced-go/eventsourced/eventlog"
)

// The cluster scenario: 3 members on loopback (one process, remoting over
// 127.0.0.1 TCP, the in-process test provider), one shared in-memory log,
// 1,000 counter entities. Two thirds of the commands go to another member.

func init() {
	Register(Scenario{
		Name:      "cluster",
		Doc:       "3 members on loopback, 1,000 entities, commands from every member",
		Unit:      "commands",
		Reference: "sequential-cluster-request",
		Targets: []Target{{
			Desc: "eventsourced >= 5x sequential cluster.Request",
			Check: func(s *Summary) (string, bool) {
				v, ok := s.Ratio("eventsourced", "sequential-cluster-request")
				return fmt.Sprintf("%.2fx", v), ok && v >= 5
			},
		}},
		Reps: 2,
		Systems: []System{
			{Name: "eventsourced", Role: Subject, Doc: "cluster.Ask from 600 concurrent callers spread over the 3 members", Run: clusterConcurrent},
			{Name: "sequential-cluster-request", Role: Ceiling, Doc: "one caller, protoactor-go cluster.Request of the same envelope, one at a time", Run: clusterSequential},
		},
	})
}

type clusterNode struct {
	m *cluster.Member
	k *cluster.Kind[Counter, CounterEvent]
}

// startCluster starts 3 members sharing one memory log.
func startCluster(ctx context.Context) ([]clusterNode, func(), error) {
	log := eventlog.NewMemory()
	agent := testprovider.NewInMemAgent()
	nodes := make([]clusterNode, 3)
	members := make([]*cluster.Member, 3)
	for i := range nodes {
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
		nodes[i], members[i] = clusterNode{m: m, k: k}, m
	}
	if err := cluster.StartAll(ctx, members...); err != nil {
		return nil, nil, err
	}
	stop := func() {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		var wg sync.WaitGroup
		for _, m := range members {
			wg.Go(func() { _ = m.Shutdown(ctx) })
		}
		wg.Wait()
	}
	return nodes, stop, nil
}

func clusterConcurrent(ctx context.Context, env *Env) (Result, error) {
	nodes, stop, err := startCluster(ctx)
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

func clusterSequential(ctx context.Context, env *Env) (Result, error) {
	nodes, stop, err := startCluster(ctx)
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
