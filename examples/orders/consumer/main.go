// Command consumer reads the public order events that ./examples/orders
// publishes, as another service would: from the JetStream stream SHOP,
// through an ordered consumer, from the first message on.
//
//	go run ./examples/orders -serve                       # prints the URL
//	go run ./examples/orders/consumer -nats nats://127.0.0.1:PORT
//
// It prints each event and, with -follow=false, stops once it has read
// every message the stream held when it started.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

func main() {
	url := flag.String("nats", nats.DefaultURL, "NATS server URL")
	stream := flag.String("stream", "SHOP", "JetStream stream of the public order events")
	follow := flag.Bool("follow", true, "keep waiting for new events")
	flag.Parse()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, *url, *stream, *follow); err != nil && !errors.Is(err, context.Canceled) {
		fmt.Fprintln(os.Stderr, "consumer:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, url, stream string, follow bool) error {
	nc, err := nats.Connect(url, nats.Name("orders consumer"))
	if err != nil {
		return err
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		return err
	}
	s, err := js.Stream(ctx, stream)
	if err != nil {
		return fmt.Errorf("stream %s: %w", stream, err)
	}
	info, err := s.Info(ctx)
	if err != nil {
		return err
	}
	c, err := s.OrderedConsumer(ctx, jetstream.OrderedConsumerConfig{})
	if err != nil {
		return err
	}
	for n := uint64(0); follow || n < info.State.Msgs; {
		msg, err := c.Next(jetstream.FetchMaxWait(time.Second))
		switch {
		case errors.Is(err, jetstream.ErrNoMessages) || errors.Is(err, nats.ErrTimeout):
			if ctx.Err() != nil {
				return ctx.Err()
			}
			continue
		case err != nil:
			return err
		}
		n++
		fmt.Printf("%-24s %s\n", msg.Subject(), msg.Data())
	}
	return nil
}
