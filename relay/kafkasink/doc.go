// Package kafkasink is a [relay.Sink] that produces to Kafka through a
// franz-go client (github.com/twmb/franz-go/pkg/kgo).
//
//	cl, _ := kgo.NewClient(kgo.SeedBrokers("kafka-1:9092")) // TLS, SASL ... as needed
//	defer cl.Close()
//	sink, _ := kafkasink.New(cl)
//	r, _ := relay.New(log, []string{"Order"}, "orders-to-kafka", offsets, sink,
//		relay.WithMap(func(rec eventlog.Record) (relay.Message, bool, error) {
//			return relay.Message{Subject: "orders", Key: rec.EntityID, Data: rec.Data}, true, nil
//		}))
//
// A message's Subject is the topic, its Key the record key (the default
// partitioner keeps one key on one partition, in order), its Headers the
// record headers, plus [HeaderID] (the message ID) and [HeaderPosition].
// [Sink.Publish] produces a batch and returns when every record is
// acknowledged, or at the first failure or [WithTimeout].
//
// # Delivery
//
// The client's idempotent producer (kgo's default; keep it) makes its own
// retries safe: a partition never holds a record twice, or out of order,
// because the client sent it again. It does not cover a relay that
// crashes after a batch was acknowledged and before its offset commit:
// the restarted relay, on a new producer id, produces that batch again.
// So the topic gets every event at least once, and at most one batch
// twice per crash; consumers drop the copies by [HeaderID]. Sink is not a
// relay.Resumer: Kafka's partitions are independent, so the last record
// of each tells nothing of a gap before it in another. (A transactional
// producer would make each batch all-or-nothing, which a resumer could
// build on: not done.)
//
// An entity's records stay in order through failures too. The client
// produces a partition's records in order, and when it fails one it fails
// every record buffered behind it in that partition. So what lands of a
// failed batch is a prefix of its records in each partition, and the
// batch published again lands after it: in order once the copies are
// dropped by [HeaderID] (TestUnreachableBrokers and
// TestProduceFailsMidStream check it).
//
// The tests run against kfake (github.com/twmb/franz-go/pkg/kfake),
// franz-go's in-process implementation of the Kafka protocol, on
// loopback: no Kafka broker runs in this project's CI.
//
// # Concurrency
//
// A Sink is safe for concurrent use, as is the client.
//
// # Errors
//
// Bad arguments and options match relay.ErrInvalid. Publish returns the
// first record's error, or, past the timeout or the context's end, one
// that says how many records were not acknowledged; their produce may
// still complete later, one more way for a record to reach the topic
// twice.
package kafkasink
