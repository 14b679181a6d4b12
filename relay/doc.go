// Package relay publishes a log's events to a message bus as integration
// events: the transactional outbox pattern, with the event log as the
// outbox. A [Relay] follows one entity type, several, or all of them,
// selects and maps each event to a [Message] of a public schema
// ([WithMap]; [DefaultMap] otherwise) and hands the messages, a batch at a
// time, to a [Sink]: package natssink for NATS JetStream, package
// kafkasink for Kafka, or any type with a Publish method.
//
//	sink, _ := natssink.New(ctx, js, "PUBLIC")
//	r, _ := relay.New(log, []string{"Order"}, "order-events", offsets, sink,
//		relay.WithMap(func(rec eventlog.Record) (relay.Message, bool, error) {
//			if rec.Name == "InternalNote" {
//				return relay.Message{}, false, nil // stays inside
//			}
//			data, err := toPublicSchema(rec)
//			return relay.Message{Subject: "shop.orders." + rec.Name, Key: rec.EntityID, Data: data}, true, err
//		}))
//	r.Start(ctx)
//	defer r.Stop(context.Background())
//
// A relay is a projection (package projection) whose handler publishes:
// its offset is stored under its name in a projection.OffsetStore and
// moves after each batch the sink has acknowledged; Start, Stop, Wait,
// pause and resume, slices, telemetry and the poison policy are the
// projection's ([Relay.Projection] gives it, for WaitFor, SetOffset and
// dead letters). [Relay.Status] is the projection's status with the
// sink's side added.
//
// # Delivery guarantees
//
// Every selected event is published, in Position order (so in Seq order
// per entity), at least once: the offset moves only after the sink has
// acknowledged the batch durably. A crash between the acknowledgement and
// the offset commit publishes the batch again on restart, with the same
// message IDs ([DefaultID]: "<type>/<id>/<seq>", stable across log
// copies). What the bus keeps of it depends on the sink:
//
//   - natssink sets the Nats-Msg-Id header to the ID, so the stream drops
//     the copies that arrive within its duplicate window (2 minutes by
//     default): exactly once in the stream when the relay restarts within
//     the window.
//   - natssink with WithExclusive (a stream of the relay's own) is a
//     [Resumer]: on Start the relay resumes after the larger of its
//     stored offset and the stream's last message, which the sink keeps
//     gap-free by chaining expected sequences: exactly once in the
//     stream, however long after the crash the relay restarts.
//   - kafkasink relies on the idempotent producer, which drops the
//     copies of its own retries within one client session, not those of a
//     restarted relay: at least once, at most one batch again after a
//     crash; consumers drop copies by the message ID header.
//
// Any projection.OffsetStore keeps the offset. A transactional one
// (pgprojection) adds nothing here, since the bus is not in its
// transaction, and it holds that transaction open while a publish waits
// for an unreachable bus: prefer projection.NewMemory (with a Resumer
// sink), natsprojection, or pgprojection on a pool with room for it,
// and bound the transaction with
// WithProjectionOptions(projection.WithStoreTimeout(d)): a publish still
// waiting after d is canceled, the transaction rolled back, and the batch
// published again.
//
// # Failures
//
// A sink that fails (the bus is unreachable, an ack times out) is never
// the events' fault: the relay publishes the batch again with exponential
// backoff ([WithRetry]) for as long as it runs, and [Status] shows the
// failed attempts ([Status.PublishFailures], also in Retries), the last
// error and the lag (the batch in hand plus the events read ahead).
// Nothing is skipped. The only poison events are those the map fails on
// (an error, a panic, a message without a subject): the projection's
// policy applies (see [WithMap]), by default stopping the relay before
// the event.
//
// # Concurrency
//
// A Relay's methods are safe for concurrent use. The relay calls its
// sink's Publish from one goroutine, one batch at a time, and the map
// from the same goroutine. Slices (projection.WithSlice through
// [WithProjectionOptions]) run in parallel, each with its own offset; a
// slice does not resume from a [Resumer], since the sink holds every
// slice's messages.
//
// # Errors
//
// [New] and the options return errors matching [ErrInvalid] that name
// the bad argument. [Relay.Wait] returns a *projection.PoisonError
// wrapping the map's error when a poison event stopped the relay. A
// [Resumer] that fails on Start fails Start.
package relay
