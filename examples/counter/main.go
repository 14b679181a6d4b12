// Command counter runs counter entities: it increments a few counters from
// many goroutines, shows a rejected command, and prints the final values.
//
//	go run ./examples/counter
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"sync"
	"syscall"
	"time"

	"github.com/eventsourced-go/eventsourced/entity"
	"github.com/eventsourced-go/eventsourced/eventlog"
	"github.com/eventsourced-go/eventsourced/snapshotstore"
)

func main() {
	counters := flag.Int("counters", 3, "how many counter entities")
	increments := flag.Int("increments", 1000, "increments per counter, sent concurrently")
	flag.Parse()
	if err := run(*counters, *increments); err != nil {
		fmt.Fprintln(os.Stderr, "counter:", err)
		os.Exit(1)
	}
}

func run(counters, increments int) error {
	if counters < 1 || increments < 1 {
		return fmt.Errorf("-counters (%d) and -increments (%d) must be at least 1", counters, increments)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	log := eventlog.NewMemory()
	sys, err := entity.NewSystem(log, entity.WithSnapshotStore(snapshotstore.NewMemory()))
	if err != nil {
		return err
	}
	defer func() {
		shutdownCtx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		sys.Shutdown(shutdownCtx)
	}()
	kind, err := entity.Register(sys, CounterType(), entity.WithSnapshotEvery(100))
	if err != nil {
		return err
	}

	start := time.Now()
	var wg sync.WaitGroup
	errs := make(chan error, counters)
	for c := range counters {
		ref := kind.Ref(fmt.Sprintf("counter-%d", c+1))
		for range increments {
			wg.Go(func() {
				if _, err := entity.Ask(ctx, ref, Increment{By: 1}); err != nil {
					select {
					case errs <- err:
					default:
					}
				}
			})
		}
	}
	wg.Wait()
	select {
	case err := <-errs:
		return err
	default:
	}
	elapsed := time.Since(start)

	for c := range counters {
		ref := kind.Ref(fmt.Sprintf("counter-%d", c+1))
		v, err := entity.Ask(ctx, ref, Get{})
		if err != nil {
			return err
		}
		fmt.Printf("%s = %d\n", ref, v)
	}
	_, err = entity.Ask(ctx, kind.Ref("counter-1"), Decrement{By: increments + 1})
	fmt.Printf("rejected: %v (ErrBelowZero: %t)\n", err, errors.Is(err, ErrBelowZero))
	total := counters * increments
	fmt.Printf("%d commands in %v (%.0f commands/s)\n", total, elapsed.Round(time.Millisecond), float64(total)/elapsed.Seconds())
	return nil
}
