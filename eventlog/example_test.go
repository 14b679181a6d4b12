package eventlog_test

import (
	"context"
	"errors"
	"fmt"

	"github.com/eventsourced-go/eventsourced/eventlog"
	"github.com/eventsourced-go/eventsourced/testkit"
)

func Example() {
	ctx := context.Background()
	log := eventlog.NewMemory()
	defer log.Close()

	// Open an account: expected 0 means the stream must not exist yet.
	_, err := log.Append(ctx, "account", "alice", 0,
		eventlog.Event{Name: "Opened", Data: []byte(`{"owner":"Alice"}`)},
		eventlog.Event{Name: "Deposited", Data: []byte(`{"amount":100}`)},
	)
	if err != nil {
		panic(err)
	}
	if _, err := log.Append(ctx, "order", "o-1", 0, eventlog.Event{Name: "Placed"}); err != nil {
		panic(err)
	}

	// A second writer that still believes the account is new is refused.
	_, err = log.Append(ctx, "account", "alice", 0, eventlog.Event{Name: "Opened"})
	var conflict *eventlog.ConflictError
	if errors.As(err, &conflict) {
		fmt.Println(errors.Is(err, eventlog.ErrConflict), "expected", conflict.Expected, "actual", conflict.Actual)
	}

	// Appending at the last Seq succeeds.
	last, _ := log.LastSeq(ctx, "account", "alice")
	pos, _ := log.Append(ctx, "account", "alice", last, eventlog.Event{Name: "Withdrawn", Data: []byte(`{"amount":30}`)})
	fmt.Println("appended at position", pos)

	fmt.Println("replay alice:")
	for r, err := range log.ReadEntity(ctx, "account", "alice", 1) {
		if err != nil {
			panic(err)
		}
		fmt.Printf("  seq %d %s %s\n", r.Seq, r.Name, r.Data)
	}

	fmt.Println("every account event after position 1:")
	for r, err := range log.ReadType(ctx, "account", 1) {
		if err != nil {
			panic(err)
		}
		fmt.Printf("  position %d %s/%s seq %d %s\n", r.Position, r.EntityType, r.EntityID, r.Seq, r.Name)
	}
	// Output:
	// true expected 0 actual 2
	// appended at position 4
	// replay alice:
	//   seq 1 Opened {"owner":"Alice"}
	//   seq 2 Deposited {"amount":100}
	//   seq 3 Withdrawn {"amount":30}
	// every account event after position 1:
	//   position 2 account/alice seq 2 Deposited
	//   position 4 account/alice seq 3 Withdrawn
}

// A caller of a log that settles appends in rounds (postgreslog's Log, or
// here the testkit's wrapper, which has every capability) starts many
// appends without waiting, and waits on the channels AppendRound returns:
// appends of one round share a channel, closed once all of them are
// answered, and done's results are there when it is closed.
func ExampleRoundAppender() {
	ctx := context.Background()
	var log eventlog.Log = testkit.NewLog(eventlog.NewMemory())
	ra, ok := log.(eventlog.RoundAppender)
	if !ok {
		fmt.Println("no rounds: use Append")
		return
	}
	seqs := make([]uint64, 3)
	errs := make([]error, 3)
	chans := make([]<-chan struct{}, 3)
	for i := range 3 {
		ev := eventlog.Event{Name: "Opened", Data: []byte(`{}`)}
		chans[i] = ra.AppendRound(ctx, "account", fmt.Sprint("acc-", i), 0, []eventlog.Event{ev}, func(pos uint64, err error) {
			seqs[i], errs[i] = pos, err // recorded only: the channel wakes the caller
		})
	}
	for i, ch := range chans {
		<-ch
		fmt.Printf("acc-%d: appended: %v\n", i, errs[i] == nil && seqs[i] > 0)
	}
	// A second creator of acc-0 conflicts.
	var err error
	<-ra.AppendRound(ctx, "account", "acc-0", 0, []eventlog.Event{{Name: "Opened"}}, func(_ uint64, e error) { err = e })
	fmt.Println(errors.Is(err, eventlog.ErrConflict))
	// Output:
	// acc-0: appended: true
	// acc-1: appended: true
	// acc-2: appended: true
	// true
}
