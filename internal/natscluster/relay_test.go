package natscluster_test

import (
	"context"
	"fmt"
	"strconv"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/eventsourced-go/eventsourced/eventlog"
	"github.com/eventsourced-go/eventsourced/internal/natscluster"
	"github.com/eventsourced-go/eventsourced/projection"
	"github.com/eventsourced-go/eventsourced/relay"
	"github.com/eventsourced-go/eventsourced/relay/natssink"
)

const (
	relayEntities = 500
	relayEvents   = 100 // per entity
	relayStream   = "PUBLIC"
)

// Rule: a relay publishing to a stream of 3 replicas rides out a SIGKILL
// of the stream's leader, with its client connected to that node. With
// natssink.WithExclusive the stream then holds every event exactly once,
// in Position order. Without it, every event is there exactly once (the
// duplicate window drops the batches published again); the natssink
// package documents that a leader change in the middle of a batch may put
// an entity's messages out of order, and the test reports how many were.
func TestRelayThroughStreamLeaderKill(t *testing.T) {
	if testing.Short() {
		t.Skip("starts processes")
	}
	for _, exclusive := range []bool{true, false} {
		t.Run(fmt.Sprintf("exclusive=%v", exclusive), func(t *testing.T) {
			relayThroughLeaderKill(t, exclusive)
		})
	}
}

func relayThroughLeaderKill(t *testing.T, exclusive bool) {
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Second)
	defer cancel()
	c, err := natscluster.Start(ctx, t.TempDir(), 3)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Stop)
	admin, err := c.Connect()
	if err != nil {
		t.Fatal(err)
	}
	defer admin.Close()
	ajs, err := jetstream.New(admin)
	if err != nil {
		t.Fatal(err)
	}
	if err := natssink.Setup(ctx, ajs, relayStream, []string{"public.>"}, natssink.WithReplicas(3)); err != nil {
		t.Fatal(err)
	}
	s, err := ajs.Stream(ctx, relayStream)
	if err != nil {
		t.Fatal(err)
	}
	leader := c.Index(s.CachedInfo().Cluster.Leader)
	if leader < 0 {
		t.Fatalf("stream leader %q is not a node of the cluster", s.CachedInfo().Cluster.Leader)
	}

	// The relay's client is on the leader: killing it drops the
	// connection, and the client reconnects to another node.
	nc, err := c.ConnectVia(leader, nats.ReconnectBufSize(-1))
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, err := jetstream.New(nc, jetstream.WithPublishAsyncMaxPending(4096), jetstream.WithPublishAsyncTimeout(5*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	opts := []natssink.Option{natssink.WithAckTimeout(2 * time.Second)}
	if exclusive {
		opts = append(opts, natssink.WithExclusive())
	}
	sink, err := natssink.New(ctx, js, relayStream, opts...)
	if err != nil {
		t.Fatal(err)
	}

	log := eventlog.NewMemory()
	var last uint64
	for r := range relayEvents {
		for e := range relayEntities {
			if last, err = log.Append(ctx, "Order", fmt.Sprintf("o%d", e), uint64(r), eventlog.Event{Name: "Changed", Data: []byte("x")}); err != nil {
				t.Fatal(err)
			}
		}
	}
	r, err := relay.New(log, []string{"Order"}, "public-orders", projection.NewMemory(), sink,
		relay.WithPrefix("public"), relay.WithBatchSize(256), relay.WithRetry(50*time.Millisecond, 500*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	if err := r.Start(ctx); err != nil {
		t.Fatal(err)
	}
	defer r.Stop(context.Background())

	// Kill the leader a fifth of the way through.
	for r.Status().Offset < last/5 {
		if ctx.Err() != nil {
			t.Fatalf("the relay did not reach Position %d: %+v", last/5, r.Status())
		}
		time.Sleep(5 * time.Millisecond)
	}
	killedAt, at := time.Now(), r.Status().Offset
	if err := c.Kill(leader); err != nil {
		t.Fatal(err)
	}
	for r.Status().Offset <= at+relayEntities && ctx.Err() == nil {
		time.Sleep(5 * time.Millisecond)
	}
	resumed := time.Since(killedAt)
	if err := r.Projection().WaitFor(ctx, last); err != nil {
		t.Fatalf("waiting for the relay to publish Position %d: %v (status %+v)", last, err, r.Status())
	}
	st := r.Status()
	t.Logf("leader %s killed at Position %d; publishing went on %v later; %d publishes failed",
		c.Name(leader), at, resumed.Round(time.Millisecond), st.PublishErrors)
	if err := r.Stop(ctx); err != nil {
		t.Fatal(err)
	}

	positions, outOfOrder := readRelayStream(ctx, t, ajs)
	if len(positions) != int(last) {
		t.Errorf("the stream holds %d messages, want %d", len(positions), last)
	}
	seen := make(map[uint64]bool, len(positions))
	for i, p := range positions {
		if seen[p] {
			t.Errorf("message %d: Position %d stored twice", i+1, p)
		}
		seen[p] = true
		if exclusive && p != uint64(i+1) {
			t.Fatalf("message %d holds Position %d, want %d: the exclusive stream is not the log's prefix in order", i+1, p, i+1)
		}
	}
	for p := uint64(1); p <= last; p++ {
		if !seen[p] {
			t.Fatalf("Position %d is missing from the stream", p)
		}
	}
	switch {
	case exclusive && outOfOrder > 0:
		t.Errorf("%d messages out of their entity's Seq order", outOfOrder)
	case !exclusive:
		t.Logf("without WithExclusive: %d messages out of their entity's Seq order", outOfOrder)
	}
}

// readRelayStream reads the relay stream in order and returns the
// Relay-Position of each message, and how many messages came after a
// later Seq of their entity. A request that fails (the cluster may still
// be settling after the kill) starts the read again, until ctx ends.
func readRelayStream(ctx context.Context, t *testing.T, js jetstream.JetStream) (positions []uint64, outOfOrder int) {
	t.Helper()
	for {
		positions, outOfOrder, err := readRelayStreamOnce(ctx, js)
		if err == nil {
			return positions, outOfOrder
		}
		if ctx.Err() != nil {
			t.Fatalf("reading the stream: %v", err)
		}
		t.Logf("reading the stream: %v; again", err)
		time.Sleep(200 * time.Millisecond)
	}
}

func readRelayStreamOnce(ctx context.Context, js jetstream.JetStream) (positions []uint64, outOfOrder int, err error) {
	s, err := js.Stream(ctx, relayStream)
	if err != nil {
		return nil, 0, err
	}
	info, err := s.Info(ctx)
	if err != nil {
		return nil, 0, err
	}
	cons, err := js.OrderedConsumer(ctx, relayStream, jetstream.OrderedConsumerConfig{})
	if err != nil {
		return nil, 0, err
	}
	lastSeq := map[string]uint64{}
	for len(positions) < int(info.State.Msgs) {
		batch, err := cons.Fetch(1000, jetstream.FetchMaxWait(5*time.Second))
		if err != nil {
			return nil, 0, err
		}
		n := 0
		for m := range batch.Messages() {
			n++
			h := m.Headers()
			pos, err := strconv.ParseUint(h.Get(natssink.HeaderPosition), 10, 64)
			if err != nil {
				return nil, 0, fmt.Errorf("message without a position: %w", err)
			}
			positions = append(positions, pos)
			id, seq := h.Get(relay.HeaderID), h.Get(relay.HeaderSeq)
			sn, err := strconv.ParseUint(seq, 10, 64)
			if err != nil {
				return nil, 0, fmt.Errorf("message at Position %d: Seq %q: %w", pos, seq, err)
			}
			if sn <= lastSeq[id] {
				outOfOrder++
			}
			lastSeq[id] = max(lastSeq[id], sn)
		}
		if err := batch.Error(); err != nil {
			return nil, 0, err
		}
		if n == 0 {
			return nil, 0, fmt.Errorf("read %d of the stream's %d messages, then nothing", len(positions), info.State.Msgs)
		}
	}
	return positions, outOfOrder, nil
}
