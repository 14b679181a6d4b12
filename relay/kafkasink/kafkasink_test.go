package kafkasink_test

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/eventsourced-go/eventsourced/eventlog"
	"github.com/eventsourced-go/eventsourced/internal/freeport"
	"github.com/eventsourced-go/eventsourced/projection"
	"github.com/eventsourced-go/eventsourced/relay"
	"github.com/eventsourced-go/eventsourced/relay/kafkasink"
)

// The tests run against kfake, franz-go's in-process implementation of the
// Kafka protocol, on loopback: no broker can run here.

const topic = "orders"

func cluster(t *testing.T, opts ...kfake.Opt) *kfake.Cluster {
	t.Helper()
	c, err := kfake.NewCluster(append([]kfake.Opt{kfake.NumBrokers(1), kfake.SeedTopics(3, topic)}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	return c
}

func client(t *testing.T, c *kfake.Cluster, opts ...kgo.Opt) *kgo.Client {
	t.Helper()
	cl, err := kgo.NewClient(append([]kgo.Opt{kgo.SeedBrokers(c.ListenAddrs()...)}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cl.Close)
	return cl
}

func toTopic(rec eventlog.Record) (relay.Message, bool, error) {
	return relay.Message{Subject: topic, Key: rec.EntityID, Data: rec.Data}, true, nil
}

// consumeAll reads the topic until it has seen want distinct message ids
// (or fails after a while) and returns the number of times each was read,
// checking that each entity's records come in Seq order once copies are
// dropped.
func consumeAll(t *testing.T, c *kfake.Cluster, want int) map[string]int {
	t.Helper()
	cl := client(t, c, kgo.ConsumeTopics(topic), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	ids := map[string]int{}
	last := map[string]uint64{}
	n := 0
	for len(ids) < want {
		fs := cl.PollFetches(ctx)
		if ctx.Err() != nil {
			t.Fatalf("read %d records, want %d", n, want)
		}
		fs.EachRecord(func(r *kgo.Record) {
			n++
			var id string
			for _, h := range r.Headers {
				if h.Key == kafkasink.HeaderID {
					id = string(h.Value)
				}
			}
			ids[id]++
			if ids[id] > 1 {
				return // a duplicate: the order is that of first appearances
			}
			parts := strings.Split(id, "/") // Order/<entity>/<seq>
			seq, _ := strconv.ParseUint(parts[2], 10, 64)
			if string(r.Key) != parts[1] {
				t.Errorf("record %s has key %q", id, r.Key)
			}
			if seq < last[parts[1]] {
				t.Errorf("record %s after seq %d: out of order", id, last[parts[1]])
			}
			last[parts[1]] = seq
		})
	}
	return ids
}

// start starts r, stopped when t ends.
func start(t *testing.T, r *relay.Relay) {
	t.Helper()
	if err := r.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Stop(context.Background()) })
}

// waitFor waits up to 20 s for r to have published Position pos.
func waitFor(t *testing.T, r *relay.Relay, pos uint64) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := r.Projection().WaitFor(ctx, pos); err != nil {
		t.Fatalf("waiting for position %d: %v (status %+v)", pos, err, r.Status())
	}
}

func appendEvents(t *testing.T, log eventlog.Log, entities, n, round0 int) (last uint64) {
	t.Helper()
	for r := round0; r < round0+n; r++ {
		for e := range entities {
			pos, err := log.Append(context.Background(), "Order", fmt.Sprintf("e%d", e), uint64(r), eventlog.Event{Name: "Changed", Data: []byte("x")})
			if err != nil {
				t.Fatal(err)
			}
			last = pos
		}
	}
	return last
}

// crashSink produces, then once fails and cancels the relay: a crash
// between the produce and the offset commit.
type crashSink struct {
	relay.Sink
	at      uint64
	crash   func()
	crashed atomic.Bool
}

func (s *crashSink) Publish(ctx context.Context, msgs []relay.Message) error {
	if err := s.Sink.Publish(ctx, msgs); err != nil {
		return err
	}
	if msgs[len(msgs)-1].Position >= s.at && s.crashed.CompareAndSwap(false, true) {
		s.crash()
		return errors.New("crashed after producing")
	}
	return nil
}

// Rule: every event reaches the topic, in order per entity; a relay that
// crashes between a produce and its offset commit, restarted with a new
// client, loses nothing and produces at most that one batch again.
func TestPublishRestartNoLoss(t *testing.T) {
	c := cluster(t)
	log := eventlog.NewMemory()
	const entities, rounds, batch = 6, 20, 16
	last := appendEvents(t, log, entities, rounds, 0)
	offsets := projection.NewMemory()

	sink, err := kafkasink.New(client(t, c))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	cs := &crashSink{Sink: sink, at: last / 2, crash: cancel}
	r, err := relay.New(log, []string{"Order"}, "to-kafka", offsets, cs, relay.WithMap(toTopic), relay.WithBatchSize(batch))
	if err != nil {
		t.Fatal(err)
	}
	if err := r.Run(ctx); err != nil {
		t.Fatal(err)
	}
	if !cs.crashed.Load() {
		t.Fatal("the first run ended without crashing")
	}

	sink, err = kafkasink.New(client(t, c))
	if err != nil {
		t.Fatal(err)
	}
	r, err = relay.New(log, []string{"Order"}, "to-kafka", offsets, sink, relay.WithMap(toTopic), relay.WithBatchSize(batch))
	if err != nil {
		t.Fatal(err)
	}
	start(t, r)
	waitFor(t, r, last)
	ids := consumeAll(t, c, entities*rounds)
	dups := 0
	for e := range entities {
		for s := 1; s <= rounds; s++ {
			id := fmt.Sprintf("Order/e%d/%d", e, s)
			switch n := ids[id]; {
			case n == 0:
				t.Errorf("%s lost", id)
			case n > 1:
				dups += n - 1
			}
		}
	}
	if len(ids) != entities*rounds || dups > batch {
		t.Errorf("%d distinct ids, %d duplicates; want %d, at most %d (one batch)", len(ids), dups, entities*rounds, batch)
	}
}

// Rule: while the brokers are unreachable the relay retries and reports
// it, and delivers everything once they are back.
func TestUnreachableBrokers(t *testing.T) {
	dir := t.TempDir()
	// A port no listen(:0) of another test takes while the broker is down.
	port := freeport.Port(t)
	c, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(3, topic), kfake.DataDir(dir), kfake.Ports(port))
	if err != nil {
		t.Fatal(err)
	}
	addrs := c.ListenAddrs()
	cl, err := kgo.NewClient(kgo.SeedBrokers(addrs...), kgo.RetryBackoffFn(func(int) time.Duration { return 50 * time.Millisecond }))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	sink, err := kafkasink.New(cl, kafkasink.WithTimeout(500*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	log := eventlog.NewMemory()
	last := appendEvents(t, log, 3, 4, 0)
	r, err := relay.New(log, []string{"Order"}, "to-kafka", projection.NewMemory(), sink, relay.WithMap(toTopic),
		relay.WithRetry(20*time.Millisecond, 100*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	start(t, r)
	waitFor(t, r, last)
	c.Close()
	last = appendEvents(t, log, 3, 4, 4)
	deadline := time.Now().Add(20 * time.Second)
	for r.Status().PublishFailures < 2 {
		if time.Now().After(deadline) {
			t.Fatalf("no failures reported with the brokers down: %+v", r.Status())
		}
		time.Sleep(20 * time.Millisecond)
	}
	if st := r.Status(); st.Lag == 0 || st.SkippedTotal != 0 {
		t.Errorf("status with the brokers down: lag %d, skipped %d; want lag > 0, none skipped", st.Lag, st.SkippedTotal)
	}
	c, err = kfake.NewCluster(kfake.NumBrokers(1), kfake.DataDir(dir), kfake.Ports(port))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	waitFor(t, r, last)
	ids := consumeAll(t, c, 3*8)
	for e := range 3 {
		for s := 1; s <= 8; s++ {
			if id := fmt.Sprintf("Order/e%d/%d", e, s); ids[id] == 0 {
				t.Errorf("%s lost", id)
			}
		}
	}
}

// Rule: when the brokers fail a produce for good in the middle of the
// stream (a retriable error past the client's retries), the records
// behind it in the partition fail with it: the relay publishes the batch
// again, and every entity's records are in the topic in order, once the
// copies are dropped, none lost.
func TestProduceFailsMidStream(t *testing.T) {
	c := cluster(t)
	var produces, failed atomic.Int32
	c.ControlKey(int16(kmsg.Produce), func(kreq kmsg.Request) (kmsg.Response, error, bool) {
		c.KeepControl()
		if produces.Add(1) <= 3 || failed.Load() >= 6 {
			return nil, nil, false
		}
		failed.Add(1)
		req := kreq.(*kmsg.ProduceRequest)
		resp := req.ResponseKind().(*kmsg.ProduceResponse)
		for _, rt := range req.Topics {
			st := kmsg.NewProduceResponseTopic()
			st.Topic, st.TopicID = rt.Topic, rt.TopicID
			for _, rp := range rt.Partitions {
				sp := kmsg.NewProduceResponseTopicPartition()
				sp.Partition, sp.ErrorCode = rp.Partition, kerr.NotEnoughReplicas.Code
				st.Partitions = append(st.Partitions, sp)
			}
			resp.Topics = append(resp.Topics, st)
		}
		return resp, nil, true
	})
	cl := client(t, c, kgo.RecordRetries(1), kgo.RetryBackoffFn(func(int) time.Duration { return 5 * time.Millisecond }), kgo.MetadataMinAge(10*time.Millisecond))
	sink, err := kafkasink.New(cl)
	if err != nil {
		t.Fatal(err)
	}
	log := eventlog.NewMemory()
	const entities, rounds = 6, 40
	last := appendEvents(t, log, entities, rounds, 0)
	r, err := relay.New(log, []string{"Order"}, "to-kafka", projection.NewMemory(), sink, relay.WithMap(toTopic),
		relay.WithBatchSize(24), relay.WithRetry(5*time.Millisecond, 20*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	start(t, r)
	waitFor(t, r, last)
	if st := r.Status(); failed.Load() == 0 || st.PublishErrors == 0 {
		t.Fatalf("%d produce requests failed, %d publishes; want some of each (status %+v)", failed.Load(), st.PublishErrors, st)
	}
	ids := consumeAll(t, c, entities*rounds)
	for e := range entities {
		for s := 1; s <= rounds; s++ {
			if id := fmt.Sprintf("Order/e%d/%d", e, s); ids[id] == 0 {
				t.Errorf("%s lost", id)
			}
		}
	}
	t.Logf("%d produce requests failed; %d publishes failed and were retried", failed.Load(), r.Status().PublishErrors)
}

// Rule: bad arguments are refused with errors naming them.
func TestBadInput(t *testing.T) {
	if _, err := kafkasink.New(nil); !errors.Is(err, relay.ErrInvalid) || !strings.Contains(err.Error(), "nil client") {
		t.Errorf("New(nil): %v", err)
	}
	c := cluster(t)
	if _, err := kafkasink.New(client(t, c), kafkasink.WithTimeout(0)); !errors.Is(err, relay.ErrInvalid) || !strings.Contains(err.Error(), "WithTimeout(0s)") {
		t.Errorf("WithTimeout(0): %v", err)
	}
}
