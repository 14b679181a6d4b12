package main

import (
	"context"
	"fmt"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// consume hands f every message the public stream holds now, in order,
// through an ordered consumer, as a subscriber of the public events would
// read them (see ./consumer).
func consume(ctx context.Context, js jetstream.JetStream, f func(subject string, data []byte)) error {
	s, err := js.Stream(ctx, PublicStream)
	if err != nil {
		return err
	}
	info, err := s.Info(ctx)
	if err != nil {
		return err
	}
	c, err := s.OrderedConsumer(ctx, jetstream.OrderedConsumerConfig{})
	if err != nil {
		return err
	}
	for i := uint64(0); i < info.State.Msgs; i++ {
		msg, err := c.Next(jetstream.FetchMaxWait(5 * time.Second))
		if err != nil {
			return fmt.Errorf("read message %d of %d of %s: %w", i+1, info.State.Msgs, PublicStream, err)
		}
		f(msg.Subject(), msg.Data())
	}
	return nil
}
