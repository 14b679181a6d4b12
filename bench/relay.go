package main

import (
	"context"
	"flag"
	"fmt"
	"strconv"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/eventsourced-go/eventsourced/eventlog"
	"github.com/eventsourced-go/eventsourced/projection"
	"github.com/eventsourced-go/eventsourced/relay"
	"github.com/eventsourced-go/eventsourced/relay/natssink"
)

// The relay scenario: 100,000 events of 1,000 entities in an in-memory
// log (appended before the clock starts), published to a JetStream stream
// on a nats-server in a helper process (or -nats-url). The subject is a
// relay with natssink and the default map, from offset 0 until the
// projection's WaitFor of the last event returns. The ceiling is the same
// messages (subjects, headers, payloads, Nats-Msg-Id), built before the
// clock starts, published by PublishMsgAsync from one goroutine with the
// same window of pending acks.

var relayFlags struct {
	events int
	batch  int
	window int
}

func init() {
	RegisterFlags(func(fs *flag.FlagSet) {
		fs.IntVar(&relayFlags.events, "relay-events", 100_000, "relay: events to publish (1,000 entities)")
		fs.IntVar(&relayFlags.batch, "relay-batch", relay.DefaultBatchSize, "relay: the relay's batch size")
		fs.IntVar(&relayFlags.window, "relay-window", 1024, "relay: publishes waiting for their acks at once, for the relay's sink and raw-async")
	})
	Register(Scenario{
		Name:      "relay",
		Doc:       "100,000 events of 1,000 entities in memory, published to a JetStream stream on a local NATS server in its own process",
		Unit:      "events",
		Subject:   "relay",
		Reference: "raw-async",
		Timeout:   3 * time.Minute,
		Targets: []Target{{
			Desc: "relay >= 70% of raw async publishing of the same messages",
			Check: func(s *Summary) (string, bool) {
				v, ok := s.Ratio("relay", "raw-async")
				return fmt.Sprintf("%.0f%%", 100*v), ok && v >= 0.7
			},
		}},
		Systems: []System{
			{Name: "relay", Role: Subject, Doc: "relay.New (default map, batch -relay-batch) + natssink (window -relay-window), memory offsets", Run: relayRun(false)},
			{Name: "relay-exclusive", Role: Variant, Doc: "relay with natssink.WithExclusive (expected-last-sequence chain)", Run: relayRun(true)},
			{Name: "raw-async", Role: Ceiling, Doc: "the same messages, jetstream PublishMsgAsync from one goroutine, max pending -relay-window", Run: relayRaw},
		},
	})
}

const relayEntities = 1000

// relayLog returns an in-memory log holding the scenario's events and the
// Position of the last one.
func relayLog(ctx context.Context, env *Env) (*eventlog.Memory, uint64, error) {
	n := env.Scale(relayFlags.events, 2000)
	log := eventlog.NewMemory()
	data := []byte(`{"by":1}`)
	rounds := (n + relayEntities - 1) / relayEntities
	var last uint64
	for r := range rounds {
		for e := range relayEntities {
			if r*relayEntities+e >= n {
				break
			}
			pos, err := log.Append(ctx, "Counter", entityID(e), uint64(r), eventlog.Event{Name: "Incremented", Data: data})
			if err != nil {
				return nil, 0, err
			}
			last = pos
		}
	}
	return log, last, nil
}

// relaySetup connects to a server and creates the destination stream.
func relaySetup(ctx context.Context, jsOpts ...jetstream.JetStreamOpt) (*natsEnv, string, error) {
	ne, err := natsSetup(ctx, jsOpts...)
	if err != nil {
		return nil, "", err
	}
	stream := "pub_" + ne.stream
	if err := natssink.Setup(ctx, ne.js, stream, []string{ne.prefix + "_pub.>"}); err != nil {
		ne.close()
		return nil, "", err
	}
	return ne, stream, nil
}

func relayCount(ctx context.Context, js jetstream.JetStream, stream string) (uint64, error) {
	s, err := js.Stream(ctx, stream)
	if err != nil {
		return 0, err
	}
	info, err := s.Info(ctx)
	if err != nil {
		return 0, err
	}
	return info.State.Msgs, nil
}

func relayRun(exclusive bool) func(ctx context.Context, env *Env) (Result, error) {
	return func(ctx context.Context, env *Env) (Result, error) {
		ne, stream, err := relaySetup(ctx, jetstream.WithPublishAsyncMaxPending(relayFlags.window), jetstream.WithPublishAsyncTimeout(30*time.Second))
		if err != nil {
			return Result{}, err
		}
		defer ne.close()
		log, last, err := relayLog(ctx, env)
		if err != nil {
			return Result{}, err
		}
		opts := []natssink.Option{natssink.WithWindow(relayFlags.window)}
		if exclusive {
			opts = append(opts, natssink.WithExclusive())
		}
		sink, err := natssink.New(ctx, ne.js, stream, opts...)
		if err != nil {
			return Result{}, err
		}
		r, err := relay.New(log, []string{"Counter"}, "bench", projection.NewMemory(), sink,
			relay.WithPrefix(ne.prefix+"_pub"), relay.WithBatchSize(relayFlags.batch))
		if err != nil {
			return Result{}, err
		}
		ctx, cancel := Budget(ctx, env, 90*time.Second)
		defer cancel()
		srvBefore := ne.serverCPU()
		sw := startStopwatch()
		if err := r.Start(ctx); err != nil {
			return Result{}, err
		}
		defer r.Stop(context.Background())
		if err := r.Projection().WaitFor(ctx, last); err != nil {
			return Result{}, fmt.Errorf("waiting for the relay: %w (status %+v)", err, r.Status())
		}
		elapsed, cpu := sw.stop()
		st := r.Status()
		stored, err := relayCount(ctx, ne.js, stream)
		if err != nil {
			return Result{}, err
		}
		if stored != st.Published || st.PublishErrors != 0 {
			return Result{}, fmt.Errorf("the stream holds %d messages, the relay published %d with %d errors", stored, st.Published, st.PublishErrors)
		}
		res := Result{Ops: int64(st.Published), Elapsed: elapsed, CPU: cpu,
			Metrics: map[string]float64{"batch": float64(relayFlags.batch), "window": float64(relayFlags.window)}}
		ne.setServerCPU(&res, srvBefore)
		return res, nil
	}
}

func relayRaw(ctx context.Context, env *Env) (Result, error) {
	var failed asyncFailures
	ne, stream, err := relaySetup(ctx, jetstream.WithPublishAsyncMaxPending(relayFlags.window), failed.handler())
	if err != nil {
		return Result{}, err
	}
	defer ne.close()
	log, _, err := relayLog(ctx, env)
	if err != nil {
		return Result{}, err
	}
	// The messages the relay would publish, built before the clock starts.
	mapf := relay.DefaultMap(ne.prefix + "_pub")
	var msgs []*nats.Msg
	for rec, err := range log.ReadType(ctx, "Counter", 0) {
		if err != nil {
			return Result{}, err
		}
		m, _, err := mapf(rec)
		if err != nil {
			return Result{}, err
		}
		h := make(nats.Header, len(m.Headers)+2)
		for k, v := range m.Headers {
			h[k] = []string{v}
		}
		h[jetstream.MsgIDHeader] = []string{relay.DefaultID(rec)}
		h[natssink.HeaderPosition] = []string{strconv.FormatUint(rec.Position, 10)}
		msgs = append(msgs, &nats.Msg{Subject: m.Subject, Header: h, Data: m.Data})
	}
	ctx, cancel := Budget(ctx, env, 90*time.Second)
	defer cancel()
	srvBefore := ne.serverCPU()
	sw := startStopwatch()
	if err := publishAllAsync(ctx, env, ne.js, msgs); err != nil {
		return Result{}, err
	}
	elapsed, cpu := sw.stop()
	if err := failed.err(len(msgs)); err != nil {
		return Result{}, err
	}
	stored, err := relayCount(ctx, ne.js, stream)
	if err != nil {
		return Result{}, err
	}
	if stored != uint64(len(msgs)) {
		return Result{}, fmt.Errorf("the stream holds %d messages, want %d", stored, len(msgs))
	}
	res := Result{Ops: int64(len(msgs)), Elapsed: elapsed, CPU: cpu,
		Metrics: map[string]float64{"window": float64(relayFlags.window)},
		Notes:   []string{"one pipeline of async publishes"}}
	ne.setServerCPU(&res, srvBefore)
	return res, nil
}
