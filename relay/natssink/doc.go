// Package natssink is a [relay.Sink] that publishes to a NATS JetStream
// stream.
//
//	nc, _ := nats.Connect(url, nats.ReconnectBufSize(-1)) // see Order below
//	js, _ := jetstream.New(nc, jetstream.WithPublishAsyncTimeout(10*time.Second))
//	_ = natssink.Setup(ctx, js, "PUBLIC", []string{"shop.>"}) // create or update the stream
//	sink, _ := natssink.New(ctx, js, "PUBLIC")
//	r, _ := relay.New(log, nil, "public", offsets, sink)
//
// [Sink.Publish] publishes a batch with asynchronous publishes, at most
// [WithWindow] waiting for their acks at once, and returns when every
// message is acknowledged. Each message carries the Nats-Msg-Id header
// set to its ID and the [HeaderPosition] header; an ack that reports a
// duplicate counts as success.
//
// # Exactly once
//
// The stream drops a message whose ID it has seen within its duplicate
// window ([WithDuplicateWindow], 2 minutes by default), so a relay that
// publishes a batch again after a crash, within the window, stores
// nothing twice. Beyond the window, a stream of the relay's own
// ([WithExclusive]) still does: the sink chains its publishes with the
// Nats-Expected-Last-Sequence header, so the stream only ever holds a
// gap-free prefix of what it was given, and [Sink.LastPublished] tells
// the relay to resume after the stream's last message. The price is that
// nobody else may publish to that stream, and that one relay (no slices)
// feeds it. Without WithExclusive the sink is no resumer (LastPublished
// knows nothing), since a batch that failed half-way may leave a gap
// before its last stored message.
//
// # Order
//
// An entity's messages reach the stream in Seq order only if a batch that
// failed leaves nothing behind that could land after the batch is
// published again. Two things in the client could:
//
//   - its reconnect buffer: publishes made while it reconnects (and the
//     rest of a batch sent in the instant the connection drops) wait there
//     and are sent first thing after the reconnect, ahead of the retry's
//     head. Without WithExclusive, [New] refuses a connection with one:
//     connect with nats.ReconnectBufSize(-1), and a publish while the
//     connection is down then fails at once, naming the message;
//   - its resends of a message that met no stream leader, each on a timer
//     of its own: the sink turns them off (jetstream.WithRetryAttempts(0)),
//     and the relay publishes the batch again.
//
// With WithExclusive neither matters: a late message's expected sequence
// is no longer the stream's last, and the stream refuses it. One case is
// left without it: a replicated stream whose leader changes in the middle
// of a batch may lose a message sent to the old leader and store a later
// one through the new; the retry then stores the lost one after it. Use
// WithExclusive where an entity's order must hold through a cluster's
// faults.
//
// # Concurrency
//
// A Sink is safe for concurrent use; its Publish calls run one at a
// time. It shares js's asynchronous publishing with any other user of
// js: create js with jetstream.WithPublishAsyncMaxPending at least the
// window and, preferably, jetstream.WithPublishAsyncTimeout.
//
// # Errors
//
// Bad arguments and options match relay.ErrInvalid. New fails if the
// stream does not exist. Publish returns the first failed publish, a
// missing ack (or, with WithExclusive, a missing reply while it reads the
// stream's last message) after [WithAckTimeout], or the context's error;
// the relay publishes the batch again. So a relay rides out a stream
// leader's failure: internal/natscluster's TestRelayThroughStreamLeaderKill
// kills the leader of a 3-replica stream, with the relay's client on it,
// and checks that the stream then holds every event once, in order with
// WithExclusive. With WithExclusive, a message in the stream
// that is not the sink's is an error naming it.
package natssink
