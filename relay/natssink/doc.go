// Package natssink is a [relay.Sink] that publishes to a NATS JetStream
// stream.
//
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
// missing ack after [WithAckTimeout], or the context's error; the relay
// publishes the batch again. With WithExclusive, a message in the stream
// that is not the sink's is an error naming it.
package natssink
